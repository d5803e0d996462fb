"""Exporting a jaxsparse run (a zoo or a twin population) in the model zoos' layout, or as
one flat array of weights.

``format='zoo'`` writes one Ray-Tune-style trial directory per member:
``params.json`` in the zoos' keys (plus ``jaxsparse::*`` keys for the method,
its level and the member), ``result.json`` from the run's metrics (one line
per epoch, ``training_iteration`` = epoch), and for every saved epoch
``checkpoint_{epoch:06d}/checkpoints``, a PyTorch state dict with the weights
the member is evaluated with (pruned weights are zeros), and
``checkpoint_{epoch:06d}/masks`` (the masks of the weights, same keys).
``torch.load(..., weights_only=True)`` and the zoo's PyTorch class give the
member's predictions (tests/test_modelzoo.py checks this).

``format='arrays'`` writes ``weights.npy`` and ``masks.npy`` ([members,
parameters], float32, in the zoos' state-dict order for their
architectures, else in Flax's), ``index.json`` (each parameter's name, first
position and shape in a row) and ``members.csv`` (hyperparameters and final
metrics)::

    weights = np.load("OUT/weights.npy"); members = pd.read_csv("OUT/members.csv")
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import numpy as np
import pandas as pd

from jaxsparse import build, checkpoints, engine, flat, metrics
from jaxsparse import workdir as workdir_lib
from jaxsparse.errors import UserError
from jaxsparse.modelzoo import layout

FORMATS = ("zoo", "arrays")
#: jaxsparse metric -> the zoos' ``result.json`` key.
RESULT_KEYS = {"train_loss": "train_loss", "train_accuracy": "train_acc",
               "test_loss": "test_loss", "test_accuracy": "test_acc",
               "validation_loss": "val_loss", "validation_accuracy": "val_acc",
               "epoch_seconds": "time_this_iter_s", "achieved_sparsity": "sparsity"}


def export_run(workdir: str, out: str, format: str = "zoo", epoch: int | None = None,
               allow_modules: tuple[str, ...] = ()) -> str:
  """Writes the run in ``workdir`` to the new directory ``out`` (see the module's docstring);
  ``epoch``: for ``'arrays'``, which checkpoint (None: the last; ``'zoo'`` writes them all);
  ``allow_modules``: see :func:`jaxsparse.checkpoints.load_population`.
  Written beside ``out`` and renamed into place at the end
  (:func:`jaxsparse.workdir.staged_directory`). Returns ``out``."""
  if format not in FORMATS:
    raise UserError(f"--format={format!r} is unknown; use one of {', '.join(FORMATS)}")
  if not os.path.isfile(os.path.join(workdir, workdir_lib.METADATA_FILE)):
    raise UserError(f"{workdir} is not a jaxsparse run (no {workdir_lib.METADATA_FILE}); give "
                    "a run's --workdir, e.g. runs/default/original")
  with workdir_lib.staged_directory(out, "export") as staging:
    if format == "zoo":
      layout.torch_module()  # one line if PyTorch is missing, before any work
    run = build.load_setup(workdir, allow_modules)
    manager = checkpoints.checkpoint_manager(workdir)
    try:
      if format == "zoo":
        _write_zoo(staging, workdir, run, manager)
      else:
        _write_arrays(staging, workdir, run, manager, epoch)
    finally:
      manager.close()
  print(f"Exported {run.num_members} members of {workdir} to {out} ({format}).", flush=True)
  return out


def _saved_epochs(manager, workdir: str) -> list[int]:
  epochs = sorted(manager.all_steps())
  if not epochs:
    raise UserError(f"{workdir} has no checkpoint yet; train it first")
  return epochs


def _evaluated(manager, run: build.Setup, epoch: int):
  """The variables the members are evaluated with at ``epoch`` (the weights and BatchNorm's
  statistics), and the weights' masks (on the host, by dotted name, ``params.Conv_0.kernel``;
  masks only for pruned leaves)."""
  state = checkpoints.restore_members(manager, run.program, run.table, epoch)
  variables = {"params": engine.evaluation_params(run.method, state, run.hyper),
               "batch_stats": state.batch_stats}
  masks = {name: leaf for name, leaf in layout.dotted(
      jax.device_get({"params": state.masks})).items() if leaf is not None}
  return layout.dotted(jax.device_get(variables)), masks


def _write_zoo(directory: str, workdir: str, run: build.Setup, manager) -> None:
  architecture = layout.architecture_of_model(run.model.name)
  table = run.table
  dropouts = list(table["dropout_rate"])
  trials = [f"jaxsparse_{member:05d}_seed={seed}" for member, seed in
            zip(table["member"], table["seed"])]
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(workdir, workdir_lib.METRICS_FILE)))
  epochs = _saved_epochs(manager, workdir)
  for member, trial in enumerate(trials):
    os.makedirs(os.path.join(directory, trial))
    _write_json(os.path.join(directory, trial, "params.json"),
                _zoo_params(run, architecture, member, workdir, epochs[-1]))
    member_rows = rows[rows["member"] == member] if len(rows) else rows
    with open(os.path.join(directory, trial, "result.json"), "w") as file:
      for _, row in member_rows.sort_values("epoch").iterrows():
        file.write(json.dumps(_result_row(row)) + "\n")
  for epoch in epochs:
    variables, masks = _evaluated(manager, run, epoch)
    weights = layout.state_dicts_from_variables(variables, architecture, dropouts)
    mask_dicts = layout.state_dicts_from_variables(
        {name: masks.get(name, np.ones_like(leaf)) for name, leaf in variables.items()},
        architecture, dropouts)
    for member, trial in enumerate(trials):
      checkpoint = os.path.join(directory, trial, f"checkpoint_{epoch:06d}")
      os.makedirs(checkpoint)
      layout.save_state_dict(weights[member], os.path.join(checkpoint, "checkpoints"))
      layout.save_state_dict({key: value for key, value in mask_dicts[member].items()
                              if key.endswith(".weight")},
                             os.path.join(checkpoint, "masks"))


def _zoo_params(run: build.Setup, architecture: layout.ZooArchitecture, member: int,
                workdir: str, epochs: int) -> dict[str, Any]:
  """``params.json`` of one member in the zoos' keys, plus jaxsparse's own."""
  row = run.table.iloc[member]
  params = {"model::type": architecture.model_type,
            "model::channels_in": int(run.model.input_shape[-1]),
            "model::o_dim": int(run.model.module.num_classes),
            "model::nlin": row["activation"], "model::init_type": row["initializer"],
            "model::dropout": float(row["dropout_rate"]),
            "optim::optimizer": row["optimizer"], "optim::lr": float(row["learning_rate"]),
            "optim::wd": float(row["weight_decay"]), "optim::momentum": float(row["momentum"]),
            "seed": int(row["seed"]),
            "training::batchsize": int(run.config.training.batch_size),
            "training::epochs_train": int(epochs)}
  if architecture.mlp_dims is not None:
    i_dim, h_dim, o_dim = architecture.mlp_dims
    params.update({"model::i_dim": i_dim, "model::h_dim": list(h_dim), "model::o_dim": o_dim})
  params.update({"jaxsparse::workdir": os.path.abspath(workdir), "jaxsparse::member": member,
                 "jaxsparse::method": run.config.sparsify.method,
                 "jaxsparse::sparsity": float(row["sparsity"])})
  for setting in run.declaration.member_settings:
    if setting in row:
      params[f"jaxsparse::{setting}"] = float(row[setting])
  return params


def _result_row(row: pd.Series) -> dict[str, Any]:
  result = {"training_iteration": int(row["epoch"])}
  for name, key in RESULT_KEYS.items():
    if name in row and not pd.isna(row[name]):
      result[key] = float(row[name])
  return result


def _write_arrays(directory: str, workdir: str, run: build.Setup, manager,
                  epoch: int | None) -> None:
  epochs = _saved_epochs(manager, workdir)
  epoch = epochs[-1] if epoch is None else epoch
  if epoch not in epochs:
    raise UserError(f"{workdir} has no checkpoint of epoch {epoch}; it has {epochs}")
  variables, masks = _evaluated(manager, run, epoch)
  params = layout.nested(variables)["params"]
  try:
    zoo_cnn = layout.architecture_of_model(run.model.name).state_dict == "module_list"
  except UserError:
    zoo_cnn = False
  order = "pytorch" if zoo_cnn else "flax"  # e.g. a ResNet: flat weights in Flax's order
  flattened = flat.flat_weights(params, layout.nested(masks)["params"] if masks else None,
                                order)
  np.save(os.path.join(directory, "weights.npy"), flattened.weights.astype(np.float32))
  np.save(os.path.join(directory, "masks.npy"), flattened.masks.astype(np.float32))
  _write_json(os.path.join(directory, "index.json"), {
      "order": order, "epoch": epoch, "members": int(flattened.weights.shape[0]),
      "parameters": int(flattened.weights.shape[1]),
      "segments": [{"name": name, "start": start, "shape": list(shape),
                    "size": math.prod(shape)} for name, start, shape in flattened.segments]})
  members_path = os.path.join(workdir, workdir_lib.MEMBERS_FILE)
  table = pd.read_csv(members_path) if os.path.isfile(members_path) else run.table
  table.to_csv(os.path.join(directory, "members.csv"), index=False)


def _write_json(path: str, value: Any) -> None:
  with open(path, "w") as file:
    json.dump(value, file, indent=1)
