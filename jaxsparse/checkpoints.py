"""Population checkpoints with Orbax, and the public loaders.

A run's workdir holds:
- ``checkpoints/<epoch>/``: the whole population state (params, BatchNorm
  statistics, optimizer state, masks, PRNG keys, epoch) written by Orbax's
  CheckpointManager, which writes to a temporary directory and renames it
  when complete, so a half-written checkpoint is never restored;
- ``metadata.json``: the config, the dataset's input shape and class count,
  and the member table (one row per member).

:func:`load_population` and :func:`load_member` rebuild the abstract state
from ``metadata.json`` and restore it, so a population can be analysed
without its training script.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
import pandas as pd

from jaxsparse import engine, models, population, sparsify
from jaxsparse.config import default_config

METADATA_FILE = "metadata.json"
CHECKPOINT_DIR = "checkpoints"


def checkpoint_manager(workdir: str, max_to_keep: int = 0) -> ocp.CheckpointManager:
  """Orbax manager for ``workdir/checkpoints`` (``max_to_keep=0`` keeps every epoch)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep or None, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
                               options=options)


def save_population(manager: ocp.CheckpointManager, epoch: int, state: engine.TrainState) -> None:
  """Saves the population state as checkpoint ``epoch`` and waits until it is complete."""
  manager.save(epoch, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()


def restore_population(manager: ocp.CheckpointManager, abstract_state: engine.TrainState,
                       epoch: int | None = None) -> engine.TrainState:
  """Restores checkpoint ``epoch`` (latest if None) into the structure of ``abstract_state``."""
  epoch = manager.latest_step() if epoch is None else epoch
  return manager.restore(epoch, args=ocp.args.StandardRestore(abstract_state))


def write_metadata(workdir: str, config: ml_collections.ConfigDict, input_shape, num_classes: int,
                   table: pd.DataFrame, links: dict | None = None) -> None:
  """Writes ``metadata.json`` atomically (write to a temporary file, then rename).

  ``links`` are extra entries, e.g. a twin run's ``original``.
  """
  metadata = {"config": config.to_dict(), "input_shape": list(input_shape),
              "num_classes": int(num_classes), "members": table.to_dict(orient="records"),
              **(links or {})}
  path = os.path.join(workdir, METADATA_FILE)
  with open(path + ".tmp", "w") as file:
    json.dump(metadata, file, indent=1)
  os.replace(path + ".tmp", path)


def read_metadata(workdir: str) -> dict[str, Any]:
  """The parsed ``metadata.json`` of a run."""
  with open(os.path.join(workdir, METADATA_FILE)) as file:
    return json.load(file)


def model_from_metadata(metadata: dict[str, Any]) -> models.Model:
  """The model a run trained, rebuilt from its metadata."""
  model_config = metadata["config"]["model"]
  return models.get_model(model_config["name"], tuple(metadata["input_shape"]),
                          metadata["num_classes"], model_config["conv_implementation"],
                          model_config["width"])


def method_from_metadata(metadata: dict[str, Any]) -> sparsify.SparsifyMethod:
  """The sparsification method of a run, for restoring and evaluating its population.

  Fields added to the config schema after the run was made take their
  defaults. The schedule is not the run's (only the state's structure and
  the evaluation weights matter here).
  """
  settings = default_config().sparsify
  settings.update(metadata["config"]["sparsify"])
  return sparsify.get_method(settings, sparsify.TrainingSchedule(steps_per_epoch=1))


def load_population(workdir: str, epoch: int | None = None
                    ) -> tuple[engine.TrainState, pd.DataFrame]:
  """Loads a whole population from a run's workdir.

  Args:
    workdir: the ``--workdir`` of a training run.
    epoch: which epoch's checkpoint (None: the latest).

  Returns:
    The population state (leaves with a leading member axis) and the member
    table (one row per member: hyperparameters and seed).
  """
  metadata = read_metadata(workdir)
  table = pd.DataFrame(metadata["members"])
  model = model_from_metadata(metadata)
  hyper = population.member_hyperparameters(table)
  method = method_from_metadata(metadata)
  abstract = jax.eval_shape(engine.init_population, model, method, hyper)
  manager = checkpoint_manager(workdir)
  if manager.latest_step() is None:
    raise FileNotFoundError(f"no complete checkpoint under {os.path.join(workdir, CHECKPOINT_DIR)}")
  return restore_population(manager, abstract, epoch), table


def load_member(workdir: str, member: int, epoch: int | None = None
                ) -> tuple[engine.TrainState, dict[str, Any]]:
  """Loads member ``member`` of a run: its state (no member axis) and its table row."""
  state, table = load_population(workdir, epoch)
  if not 0 <= member < len(table):
    raise IndexError(f"member {member} does not exist; the population has {len(table)} members")
  return engine.member(state, member), table.iloc[member].to_dict()
