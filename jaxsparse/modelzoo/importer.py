"""Importing a published model zoo (a directory of Ray Tune trials) as a jaxsparse run.

The layout (ModelZoos/ModelZooDataset, ``def_NN_experiment.py`` and the zoo
generators): one directory per model holding ``params.json`` (the trial's
config: ``model::type``, ``model::nlin``, ``model::init_type``,
``model::dropout``, ``optim::optimizer``, ``optim::lr``, ``optim::wd``,
``seed``, ``training::batchsize``, ...), ``result.json`` (one JSON object per
line and epoch: ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` and
Ray Tune's own fields; ``training_iteration`` is the epoch) and
``checkpoint_{epoch:06d}/checkpoints`` (a ``torch.save``d state dict).
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsparse import checkpoints, engine, experiment, models, train
from jaxsparse import data as data_lib
from jaxsparse import workdir as workdir_lib
from jaxsparse.config import default_config, validate_config
from jaxsparse.data import Dataset
from jaxsparse.errors import UserError
from jaxsparse.modelzoo import layout
from jaxsparse.population import CATEGORICAL_FIELDS

#: ``params.json`` keys that become member-table fields, and the field each becomes.
MEMBER_KEYS = {"seed": "seed", "model::nlin": "activation", "model::init_type": "initializer",
               "optim::optimizer": "optimizer", "optim::lr": "learning_rate",
               "optim::wd": "weight_decay", "optim::momentum": "momentum",
               "model::dropout": "dropout_rate"}
#: The zoos' test-set metrics in ``result.json`` and the ``members.csv`` columns they fill.
SOURCE_METRICS = {"test_acc": "source_test_accuracy", "test_loss": "source_test_loss",
                  "train_acc": "source_train_accuracy", "train_loss": "source_train_loss"}
#: Where an import keeps every trial's ``result.json`` rows (one row per trial and epoch).
SOURCE_RESULTS_FILE = "source_results.csv"


class Trial(NamedTuple):
  """One model of a zoo: its directory's name and path, ``params.json`` and ``result.json``."""
  name: str
  path: str
  params: dict[str, Any]
  results: list[dict[str, Any]]

  def checkpoint(self, epoch: int) -> str:
    """The path of the trial's state dict after ``epoch``."""
    return os.path.join(self.path, f"checkpoint_{epoch:06d}", "checkpoints")

  def result(self, epoch: int) -> dict[str, Any]:
    """The trial's ``result.json`` row of ``epoch`` (empty if it has none)."""
    rows = [row for row in self.results if row.get("training_iteration") == epoch]
    return rows[-1] if rows else {}


def read_trials(source: str) -> list[Trial]:
  """The trials of a zoo directory (subdirectories with a ``params.json``), by name."""
  if not os.path.isdir(source):
    raise UserError(f"{source} is not a directory; give the zoo's directory of trials")
  names = sorted(name for name in os.listdir(source)
                 if os.path.isfile(os.path.join(source, name, "params.json")))
  if not names:
    raise UserError(f"{source} holds no trials (subdirectories with a params.json); give the "
                    "directory Ray Tune wrote the zoo to")
  return [_read_trial(source, name) for name in names]


def _read_trial(source: str, name: str) -> Trial:
  path = os.path.join(source, name)
  try:
    with open(os.path.join(path, "params.json")) as file:
      params = json.load(file)
  except (OSError, ValueError) as error:
    raise UserError(f"trial {name}: params.json is not readable JSON ({error})") from error
  if not isinstance(params, dict):
    raise UserError(f"trial {name}: params.json is not a JSON object")
  results = []
  result_path = os.path.join(path, "result.json")
  if os.path.isfile(result_path):
    with open(result_path) as file:
      for number, line in enumerate(file, start=1):
        if line.strip():
          try:
            results.append(json.loads(line))
          except ValueError as error:
            raise UserError(f"trial {name}: line {number} of result.json is not JSON "
                            f"({error}); repair or remove the line") from error
  return Trial(name, path, params, results)


def latest_common_epoch(trials: list[Trial]) -> int:
  """The last epoch every trial has a checkpoint of."""
  epochs = None
  for trial in trials:
    own = {int(entry.split("_", 1)[1]) for entry in os.listdir(trial.path)
           if entry.startswith("checkpoint_") and entry.split("_", 1)[1].isdigit()
           and os.path.isfile(os.path.join(trial.path, entry, "checkpoints"))}
    epochs = own if epochs is None else epochs & own
  if not epochs:
    raise UserError(f"the trials have no epoch with a checkpoint in common (e.g. trial "
                    f"{trials[0].name}); give one with --epoch")
  return max(epochs)


def zoo_architecture(trials: list[Trial]) -> tuple[layout.ZooArchitecture, int]:
  """The zoo's architecture and input channels; one line if a trial differs or jaxsparse
  lacks it."""
  def described(trial):
    keys = ("model::type", "model::channels_in", "model::o_dim", "model::i_dim",
            "model::h_dim")
    return ", ".join(f"{key}={json.dumps(trial.params[key])}" for key in keys
                     if key in trial.params)
  first = trials[0]
  for trial in trials[1:]:
    if described(trial) != described(first):
      raise UserError(f"the zoo mixes architectures: trial {first.name} has "
                      f"{described(first)} and trial {trial.name} has {described(trial)}; "
                      "import one architecture at a time")
  model_type = first.params.get("model::type")
  if model_type not in layout.ARCHITECTURES:
    raise UserError(f"trial {first.name}: model::type={model_type!r} has no jaxsparse model; "
                    f"importable: {', '.join(layout.ARCHITECTURES)}")
  architecture = layout.ARCHITECTURES[model_type]
  if architecture.mlp_dims is not None:
    dims = (first.params.get("model::i_dim"), tuple(first.params.get("model::h_dim") or ()),
            first.params.get("model::o_dim"))
    if dims != architecture.mlp_dims:
      raise UserError(f"trial {first.name}: an MLP of i_dim/h_dim/o_dim {dims} has no "
                      f"jaxsparse model; importable: {architecture.mlp_dims} "
                      f"({architecture.model})")
  channels = first.params.get("model::channels_in", 1)
  if not isinstance(channels, int) or channels < 1:
    raise UserError(f"trial {first.name}: model::channels_in={channels!r} is not a channel "
                    "count")
  return architecture, channels


def member_columns(trials: list[Trial]) -> dict[str, tuple]:
  """``config.population.members`` of the zoo: one column per field, from ``params.json``
  (``optim::momentum`` absent: 0; Adam members do not read it)."""
  columns: dict[str, list] = {field: [] for field in MEMBER_KEYS.values()}
  for trial in trials:
    for key, field in MEMBER_KEYS.items():
      value = trial.params.get(key, 0.0 if key == "optim::momentum" else None)
      columns[field].append(_member_value(trial, key, field, value))
  return {field: tuple(values) for field, values in columns.items()}


def _member_value(trial: Trial, key: str, field: str, value: Any) -> Any:
  allowed = CATEGORICAL_FIELDS.get(field)
  if allowed is not None:
    if value not in allowed:
      raise UserError(f"trial {trial.name}: {key}={value!r} has no jaxsparse equivalent; "
                      f"jaxsparse has {', '.join(allowed)}")
    return value
  if field == "seed":
    if isinstance(value, bool) or not isinstance(value, int):
      raise UserError(f"trial {trial.name}: seed={value!r} is not a whole number")
    return value
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise UserError(f"trial {trial.name}: {key}={value!r} is not a number")
  return float(value)


def zoo_config(trials: list[Trial], architecture: layout.ZooArchitecture, epoch: int,
               data_name: str):
  """The jaxsparse config of an imported zoo (of ``architecture``): its model, members,
  batch size and epochs, on ``data_name`` normalised as the zoos were (mean 0.5, std 0.5)."""
  batch_size = trials[0].params.get("training::batchsize")
  for trial in trials:
    value = trial.params.get("training::batchsize")
    if value != batch_size or isinstance(value, bool) or not isinstance(value, int):
      raise UserError(f"trial {trial.name} trains with training::batchsize={value!r} and "
                      f"trial {trials[0].name} with {batch_size!r}; the batch sizes must be "
                      "one whole number (a jaxsparse population shares it)")
  config = default_config()
  config.model.name = architecture.model
  config.data.name = data_name
  config.data.mean, config.data.std = 0.5, 0.5
  for field, values in member_columns(trials).items():
    config.population.members[field] = values
  config.training.batch_size = batch_size
  config.training.num_epochs = epoch
  config.logging.tensorboard = False
  validate_config(config)
  return config


def import_zoo(source: str, workdir: str, epoch: int | None = None,
               data_name: str = "fashion_mnist", dataset: Dataset | None = None
               ) -> pd.DataFrame:
  """Imports the zoo in ``source`` at ``epoch`` (None: the last epoch every trial has) as
  an ordinary jaxsparse run in ``workdir``, and returns its ``members.csv``.

  ``workdir`` gets the population as an Orbax checkpoint of that epoch,
  ``metadata.json`` (members listed in ``config.population.members``; the
  source under ``imported_from``), ``metrics.jsonl`` and ``predictions.npz``
  from evaluating every member here on ``data_name``'s splits, ``members.csv``
  (``test_accuracy`` computed here beside ``source_test_accuracy`` from
  ``result.json``, the trial's name, and every ``params.json`` key that is not
  a member field as a column of its own) and ``source_results.csv`` (every
  trial's ``result.json``). It is written beside ``workdir`` and renamed into
  place at the end (:func:`jaxsparse.workdir.staged_directory`), so a failed import
  leaves nothing there. The optimizer
  state is not imported (it starts fresh, e.g. for twins).

  Raises:
    UserError: one line naming the trial and the problem.
  """
  trials = read_trials(source)
  with workdir_lib.staged_directory(workdir, "import") as staging:
    epoch = _checked_epoch(trials, epoch)
    architecture, channels = zoo_architecture(trials)
    config = zoo_config(trials, architecture, epoch, data_name)
    dataset = _checked_dataset(config, architecture, channels, dataset)
    run = experiment.setup(config, experiment.data_shape(dataset))
    state = engine.init_population(run.model, run.method, run.hyper,
                                   _zoo_params(trials, epoch, architecture, run), {})
    state = state._replace(epoch=jnp.full_like(state.epoch, epoch))
    _write_run(staging, run, state, dataset, epoch, trials, source)
  print(f"Imported {len(trials)} trials of {source} at epoch {epoch} into {workdir}.",
        flush=True)
  return pd.read_csv(os.path.join(workdir, workdir_lib.MEMBERS_FILE))


def _checked_epoch(trials: list[Trial], epoch: int | None) -> int:
  """The epoch to import (None: the last every trial has), which every trial must have."""
  epoch = latest_common_epoch(trials) if epoch is None else epoch
  if epoch < 1:
    raise UserError(f"--epoch={epoch} is the zoo before training; a jaxsparse run holds "
                    "trained epochs, so import epoch 1 or later")
  for trial in trials:
    if not os.path.isfile(trial.checkpoint(epoch)):
      raise UserError(f"trial {trial.name} has no checkpoint of epoch {epoch} "
                      f"({trial.checkpoint(epoch)} is missing); choose another --epoch")
  return epoch


def _checked_dataset(config, architecture: layout.ZooArchitecture, channels: int,
                     dataset: Dataset | None) -> Dataset:
  """The zoo's data (loaded from ``config.data`` if not given), of the model's input shape."""
  if dataset is None:
    print(f"Loading {config.data.name} ...", flush=True)
    dataset = train.dataset_from_config(config)
  expected_shape = (architecture.image_size, architecture.image_size, channels)
  if tuple(dataset.input_shape) != expected_shape:
    raise UserError(f"{architecture.model_type} takes {expected_shape} inputs, but "
                    f"{config.data.name!r} has {tuple(dataset.input_shape)}; give the zoo's "
                    "dataset with --dataset")
  return dataset


def _zoo_params(trials: list[Trial], epoch: int, architecture: layout.ZooArchitecture,
                run: experiment.Experiment) -> dict[str, Any]:
  """The members' parameters at ``epoch``, read from their state dicts."""
  template = jax.eval_shape(lambda key: models.init_variables(run.model, key),
                            jax.random.PRNGKey(0))["params"]
  shapes = {name: leaf.shape for name, leaf in layout.dotted(template).items()}
  state_dicts = [layout.load_state_dict(trial.checkpoint(epoch), trial.name)
                 for trial in trials]
  dropouts = list(run.table["dropout_rate"])
  leaves = layout.params_from_state_dicts(state_dicts, [trial.name for trial in trials],
                                          dropouts, architecture, shapes)
  return layout.nested({name: jnp.asarray(leaf) for name, leaf in leaves.items()})


def _write_run(directory: str, run: experiment.Experiment, state: engine.TrainState,
               dataset: Dataset, epoch: int, trials: list[Trial], source: str) -> None:
  """Everything a finished run of ``epoch`` epochs has, plus the source's records."""
  links = {"imported_from": {"source": os.path.abspath(source), "epoch": epoch,
                             "trials": [trial.name for trial in trials]}}
  workdir_lib.write_metadata(directory, run.config, dataset.input_shape, dataset.num_classes,
                             run.table, run.declaration.module, links, data_lib.digest(dataset))
  manager = checkpoints.checkpoint_manager(directory)
  try:
    checkpoints.save_population(manager, epoch, state)
  finally:
    manager.close()
  members = train.record_population(directory, run, state, dataset, epoch)
  members = _with_source_columns(members, trials, epoch)
  members.to_csv(os.path.join(directory, workdir_lib.MEMBERS_FILE), index=False)
  _source_results(trials).to_csv(os.path.join(directory, SOURCE_RESULTS_FILE), index=False)


def _with_source_columns(members: pd.DataFrame, trials: list[Trial], epoch: int
                         ) -> pd.DataFrame:
  """``members`` with the trial's name, its ``result.json`` metrics at ``epoch`` and its
  other ``params.json`` keys."""
  members = members.copy()
  members.insert(1, "trial", [trial.name for trial in trials])
  for key, column in SOURCE_METRICS.items():
    members[column] = [_number(trial.result(epoch).get(key)) for trial in trials]
  extra_keys = sorted({key for trial in trials for key in trial.params} - set(MEMBER_KEYS))
  for key in extra_keys:
    members[key] = [_cell(trial.params.get(key)) for trial in trials]
  return members


def _source_results(trials: list[Trial]) -> pd.DataFrame:
  """Every trial's ``result.json`` rows (its nested ``config`` left out: it is params.json)."""
  rows = [{"member": member, "trial": trial.name,
           **{key: _cell(value) for key, value in row.items() if key != "config"}}
          for member, trial in enumerate(trials) for row in trial.results]
  return pd.DataFrame(rows, columns=None if rows else ["member", "trial"])


def _number(value: Any) -> float:
  return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
      else float("nan")


def _cell(value: Any) -> Any:
  """A JSON value as a table cell (lists and objects as JSON text)."""
  return json.dumps(value) if isinstance(value, (list, dict)) else value
