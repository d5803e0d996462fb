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
import math
import os
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxsparse import build, checkpoints, engine, memory, models, train
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
#: ``members.csv``'s companion: the trials an import left out and why (``skip_unreadable``).
SKIPPED_TRIALS_FILE = "skipped_trials.csv"


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


class Skipped(NamedTuple):
  """A trial an import left out (``skip_unreadable``), and why (one line)."""
  trial: str
  reason: str


def read_trials(source: str) -> list[str]:
  """The trial names of a zoo directory: its subdirectories that hold a ``params.json``
  entry (a trial whose entry is not a readable file is reported when it is read)."""
  if not os.path.isdir(source):
    raise UserError(f"{source} is not a directory; give the zoo's directory of trials")
  names = sorted(name for name in os.listdir(source)
                 if os.path.lexists(os.path.join(source, name, "params.json")))
  if not names:
    raise UserError(f"{source} holds no trials (subdirectories with a params.json); give the "
                    "directory Ray Tune wrote the zoo to")
  return names


def _read_trial(source: str, name: str) -> Trial:
  """A trial's ``params.json`` (an object) and ``result.json`` (one object per line)."""
  path = os.path.join(source, name)
  try:
    with open(os.path.join(path, "params.json"), encoding="utf-8") as file:
      params = json.load(file)
  except (OSError, ValueError) as error:
    raise UserError(f"trial {name}: params.json is not a readable JSON file ({error})") \
        from error
  if not isinstance(params, dict):
    raise UserError(f"trial {name}: params.json is not a JSON object")
  results = []
  result_path = os.path.join(path, "result.json")
  if os.path.lexists(result_path):
    try:
      with open(result_path, "rb") as file:
        text = file.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
      raise UserError(f"trial {name}: result.json is not a readable UTF-8 text file "
                      f"({error}); restore it from the zoo, or remove it") from error
    for number, line in enumerate(text.splitlines(), start=1):
      if line.strip():
        try:
          row = json.loads(line)
        except ValueError as error:
          raise UserError(f"trial {name}: line {number} of result.json is not JSON "
                          f"({error}); repair or remove the line") from error
        if not isinstance(row, dict):
          raise UserError(f"trial {name}: line {number} of result.json is a JSON "
                          f"{type(row).__name__}, not an object of metrics; repair or remove "
                          "the line")
        results.append(row)
  return Trial(name, path, params, results)


def _checkpoint_epochs(trial: Trial) -> set[int]:
  """The epochs of a trial's ``checkpoint_{epoch:06d}`` directories."""
  return {int(entry.split("_", 1)[1]) for entry in os.listdir(trial.path)
          if entry.startswith("checkpoint_") and entry.split("_", 1)[1].isdigit()}


def latest_common_epoch(trials: list[Trial]) -> int:
  """The last epoch every trial has a checkpoint of."""
  epochs = None
  for trial in trials:
    own = _checkpoint_epochs(trial)
    if not own:
      raise UserError(f"trial {trial.name} has no checkpoint_* directory; give a zoo whose "
                      "trials saved checkpoints")
    if epochs is not None and not epochs & own:
      raise UserError(f"trial {trial.name} has no checkpoint of an epoch the trials before it "
                      f"have (it has {sorted(own)[:5]}); give an epoch with --epoch, or "
                      "--skip_unreadable to leave it out")
    epochs = own if epochs is None else epochs & own
  return max(epochs)


def _check_checkpoint(trial: Trial, epoch: int) -> None:
  """The trial's checkpoint of ``epoch`` is a file."""
  path = trial.checkpoint(epoch)
  if os.path.isdir(path):
    raise UserError(f"trial {trial.name}: {path} is a directory, not the state-dict file the "
                    "zoos save there")
  if not os.path.isfile(path):
    raise UserError(f"trial {trial.name} has no checkpoint of epoch {epoch} ({path} is "
                    "missing); choose another --epoch")


def _each_trial(trials: list, action, skipped: list[Skipped] | None) -> list:
  """``action(trial)`` for every trial. A trial it refuses (a :class:`UserError`) stops the
  import, or, when ``skipped`` is a list, is left out and listed there."""
  results = []
  for trial in trials:
    try:
      results.append(action(trial))
    except UserError as error:
      if skipped is None:
        raise UserError(f"{error}; or pass --skip_unreadable to import the other trials "
                        "and list this one") from error
      skipped.append(Skipped(trial if isinstance(trial, str) else trial.name, str(error)))
  if not results:
    raise UserError("no trial could be read: " + "; ".join(
        skip.reason for skip in (skipped or [])[:3]))
  return results


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


def member_row(trial: Trial, architecture: layout.ZooArchitecture) -> dict[str, Any]:
  """A trial's member fields from its ``params.json`` (``optim::momentum`` absent: 0; Adam
  members do not read it), but the fields the PyTorch class fixes
  (:attr:`layout.ZooArchitecture.fixed_members`) have its value."""
  fixed = dict(architecture.fixed_members)
  return {field: fixed[field] if field in fixed else _member_value(
              trial, key, field, trial.params.get(key, 0.0 if key == "optim::momentum" else None))
          for key, field in MEMBER_KEYS.items()}


def member_columns(trials: list[Trial], architecture: layout.ZooArchitecture
                   ) -> dict[str, tuple]:
  """``config.population.members`` of the zoo: one column per field (:func:`member_row`)."""
  rows = [member_row(trial, architecture) for trial in trials]
  return {field: tuple(row[field] for row in rows) for field in MEMBER_KEYS.values()}


#: Seeds a member can have: jaxsparse keys its PRNG with a 32-bit signed integer.
MAX_SEED = 2**31 - 1


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
    if not 0 <= value <= MAX_SEED:
      raise UserError(f"trial {trial.name}: seed={value} is outside 0 to {MAX_SEED}, the "
                      "seeds jaxsparse can give a member")
    return value
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise UserError(f"trial {trial.name}: {key}={value!r} is not a finite number")
  return float(value)


class DataOptions(NamedTuple):
  """The data an import evaluates the zoo on: ``name`` (:data:`jaxsparse.data.SUPPORTED_DATASETS`),
  ``local_dir`` (``config.data.local_dir``, Tiny-ImageNet's copy) and ``validation_size``
  (examples of the training split held out; the CIFAR zoos hold out 10,000)."""
  name: str = "fashion_mnist"
  local_dir: str = ""
  validation_size: int = 10_000


def zoo_config(trials: list[Trial], architecture: layout.ZooArchitecture, epoch: int,
               data: DataOptions):
  """The jaxsparse config of an imported zoo (of ``architecture``): its model, members,
  batch size and epochs, on ``data`` normalised as the zoo's generator did (0.5 / 0.5, or
  per channel: :attr:`layout.ZooArchitecture.normalisation`)."""
  batch_size = trials[0].params.get("training::batchsize")
  for trial in trials:
    value = trial.params.get("training::batchsize")
    if value != batch_size or isinstance(value, bool) or not isinstance(value, int):
      raise UserError(f"trial {trial.name} trains with training::batchsize={value!r} and "
                      f"trial {trials[0].name} with {batch_size!r}; the batch sizes must be "
                      "one whole number (a jaxsparse population shares it)")
  config = default_config()
  config.model.name = architecture.model
  config.model.padding = architecture.padding
  config.data.name, config.data.local_dir = data.name, data.local_dir
  config.data.validation_size = data.validation_size
  config.data.mean, config.data.std = 0.5, 0.5
  mean, std = (architecture.normalisation or {}).get(data.name, ((), ()))
  config.data.channel_mean, config.data.channel_std = mean, std
  for field, values in member_columns(trials, architecture).items():
    config.population.members[field] = values
  config.training.batch_size = batch_size
  config.training.num_epochs = epoch
  config.logging.tensorboard = False
  validate_config(config)
  return config


def import_zoo(source: str, workdir: str, epoch: int | None = None,
               data: DataOptions | str = DataOptions(), dataset: Dataset | None = None,
               skip_unreadable: bool = False, evaluate: bool = True) -> pd.DataFrame:
  """Imports the zoo in ``source`` at ``epoch`` (None: the last epoch every trial has) as
  an ordinary jaxsparse run in ``workdir``, and returns its ``members.csv``. ``data``: the
  zoo's dataset (a name, or :class:`DataOptions`); ``dataset``: its loaded splits (None:
  loaded from ``data``); ``evaluate=False``: the members are not evaluated (no data is
  needed; ``members.csv`` says ``evaluated`` False and has no accuracies of its own).

  ``workdir`` gets the population as an Orbax checkpoint of that epoch,
  ``metadata.json`` (members listed in ``config.population.members``; the
  source under ``imported_from``), ``metrics.jsonl`` and ``predictions.npz``
  from evaluating every member here on ``data``'s splits, ``members.csv``
  (``test_accuracy`` computed here beside ``source_test_accuracy`` from
  ``result.json``, the trial's name, and every ``params.json`` key that is not
  a member field as a column of its own) and ``source_results.csv`` (every
  trial's ``result.json``). It is written beside ``workdir`` and renamed into
  place at the end (:func:`jaxsparse.workdir.staged_directory`), so a failed import
  leaves nothing there. The optimizer state is not imported (it starts fresh,
  e.g. for twins).

  Members whose weights or test logits are not finite are marked diverged (and
  left out of every statistic); tensors whose cast to float32 loses
  information are named in a warning. A trial that cannot be read stops the
  import, unless ``skip_unreadable``: then it is left out and listed, with
  the reason, in ``skipped_trials.csv`` beside ``members.csv``.

  Raises:
    UserError: one line naming the trial and the problem.
  """
  data = DataOptions(data) if isinstance(data, str) else data
  skipped: list[Skipped] | None = [] if skip_unreadable else None
  trials = _each_trial(read_trials(source), lambda name: _read_trial(source, name), skipped)
  with workdir_lib.staged_directory(workdir, "import") as staging:
    trials, epoch = _checked_epoch(trials, epoch, skipped)
    architecture, channels = zoo_architecture(trials)
    trials = _each_trial(trials, lambda trial: (member_row(trial, architecture), trial)[1],
                         skipped)
    config = zoo_config(trials, architecture, epoch, data)
    if evaluate and dataset is None:
      print(f"Loading {config.data.name} ...", flush=True)
      dataset = data_lib.dataset_from_config(config)
    shape = _checked_shape(config, architecture, channels, trials[0], dataset)
    run = build.setup(_fitted(config, shape, len(trials)), shape)
    layout.torch_module()  # one line if PyTorch is missing, before any trial is read
    tensors = _each_trial(list(zip(trials, run.table["dropout_rate"])), lambda pair: (
        pair[0], _member_tensors(pair[0], epoch, architecture, run, pair[1])), skipped)
    if len(tensors) < len(trials):  # a state dict was refused: the members are the others
      trials = [trial for trial, _ in tensors]
      run = build.setup(_fitted(zoo_config(trials, architecture, epoch, data), shape,
                                len(trials)), shape)
    _warn_lossy_casts([(trial.name, member.lossy_keys) for trial, member in tensors])
    variables = _zoo_variables([member.tensors for _, member in tensors], architecture, run)
    state = engine.init_population(run.program, run.hyper, variables["params"],
                                   variables.get("batch_stats", {}))
    state = state._replace(epoch=jnp.full_like(state.epoch, epoch),
                           diverged=~_finite_members(variables))
    members = _write_run(staging, run, state, dataset if evaluate else None, epoch, trials,
                         source, skipped or [])
  _announce(source, workdir, epoch, trials, members, skipped or [])
  if not evaluate:
    print("The members were not evaluated (--no_evaluation): members.csv has the zoo's own "
          "accuracies (source_test_accuracy) only, and evaluated=False.", flush=True)
  return pd.read_csv(os.path.join(workdir, workdir_lib.MEMBERS_FILE))


def _announce(source: str, workdir: str, epoch: int, trials: list[Trial],
              members: pd.DataFrame, skipped: list[Skipped]) -> None:
  """What the import did, with what it left out and which members diverged."""
  print(f"Imported {len(trials)} trials of {source} at epoch {epoch} into {workdir}.",
        flush=True)
  if skipped:
    print(f"Skipped {len(skipped)} trial(s) that cannot be read, listed with the reason in "
          f"{SKIPPED_TRIALS_FILE}: {', '.join(skip.trial for skip in skipped)}.", flush=True)
  diverged = np.flatnonzero(members["diverged"].astype(bool).to_numpy())
  if len(diverged):
    print(f"{len(diverged)} of {len(members)} members have non-finite weights or test logits "
          f"and are marked diverged (left out of every statistic): trials "
          f"{', '.join(members['trial'].iloc[diverged])}.", flush=True)


def _checked_epoch(trials: list[Trial], epoch: int | None, skipped: list[Skipped] | None
                   ) -> tuple[list[Trial], int]:
  """The trials that have a checkpoint of the epoch to import, and that epoch (None: the
  last every trial has). A trial without it stops the import, or is skipped when
  ``skipped`` is a list."""
  if epoch is None:
    if skipped is None:
      epoch = latest_common_epoch(trials)
    else:  # the last epoch the readable trials share
      own = _each_trial(trials, _saved_epochs, skipped)
      epoch = max(set.intersection(*own) or {0})
  if epoch < 1:
    raise UserError(f"--epoch={epoch} is the zoo before training (or the trials share no "
                    "checkpoint epoch); a jaxsparse run holds trained epochs, so import epoch "
                    "1 or later")
  trials = [trial for trial in trials if skipped is None or trial.name not in
            {skip.trial for skip in skipped}]
  return _each_trial(trials, lambda trial: (_check_checkpoint(trial, epoch), trial)[1],
                     skipped), epoch


def _saved_epochs(trial: Trial) -> set[int]:
  """The epochs of a trial's checkpoint files (a trial with none is refused)."""
  epochs = {epoch for epoch in _checkpoint_epochs(trial)
            if os.path.isfile(trial.checkpoint(epoch))}
  if not epochs:
    raise UserError(f"trial {trial.name} has no checkpoint file (checkpoint_*/checkpoints)")
  return epochs


def _warn_lossy_casts(lossy: list[tuple[str, tuple[str, ...]]]) -> None:
  """One line on stderr naming the trials whose tensors lost information as float32."""
  named = [(trial, keys) for trial, keys in lossy if keys]
  if named:
    listed = "; ".join(f"{trial} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                       for trial, keys in named[:5])
    print(f"warning: {len(named)} trial(s) hold tensors that float32 cannot represent "
          f"exactly, rounded on import: {listed}{'; ...' if len(named) > 5 else ''}",
          file=sys.stderr, flush=True)


def _finite_members(params: dict[str, Any]) -> jax.Array:
  """Per member, whether every variable is finite."""
  leaves = [jnp.isfinite(leaf).reshape(leaf.shape[0], -1).all(axis=1)
            for leaf in jax.tree.leaves(params)]
  return jnp.stack(leaves).all(axis=0)


def _fitted(config, shape: build.DataShape, num_members: int):
  """``config`` evaluating few enough members and examples at once to fit in memory
  (:func:`jaxsparse.memory.fitted_evaluation`; a ResNet-18 zoo needs it), saying so."""
  fitted = memory.fitted_evaluation(config, build.config_model(config, shape), num_members)
  if fitted is not config:
    print(f"Evaluating {fitted.population.chunk_size} member at a time in batches of "
          f"{fitted.training.eval_batch_size} examples (config.population.chunk_size, "
          "config.training.eval_batch_size), to fit in memory; the twins inherit both.",
          flush=True)
  return fitted


def _checked_shape(config, architecture: layout.ZooArchitecture, channels: int, trial: Trial,
                   dataset: Dataset | None) -> build.DataShape:
  """The shape of the zoo's data (of ``dataset``, else known from its name), checked against
  the model's inputs and the trials' ``model::o_dim``."""
  if dataset is not None:
    shape = build.data_shape(dataset)
  else:
    input_shape, classes, examples = data_lib.DATASET_SHAPES[config.data.name]
    shape = build.DataShape(input_shape, classes,
                            max(1, examples - config.data.validation_size))
  size = architecture.image_size
  if tuple(shape.input_shape[2:]) != (channels,) or (
      size and tuple(shape.input_shape[:2]) != (size, size)):
    expected = f"{size}x{size}x{channels}" if size else f"{channels}-channel"
    raise UserError(f"{architecture.model_type} takes {expected} inputs, but "
                    f"{config.data.name!r} has {tuple(shape.input_shape)}; give the zoo's "
                    "dataset with --dataset")
  classes = trial.params.get("model::o_dim", shape.num_classes)
  if classes != shape.num_classes:
    raise UserError(f"trial {trial.name}: model::o_dim={classes!r} but {config.data.name!r} "
                    f"has {shape.num_classes} classes; give the zoo's dataset with --dataset")
  return shape


def _member_tensors(trial: Trial, epoch: int, architecture: layout.ZooArchitecture,
                    run: build.Setup, dropout: float) -> layout.MemberTensors:
  """A trial's state dict at ``epoch``, checked and converted (see
  :func:`layout.member_tensors`)."""
  return layout.member_tensors(layout.load_state_dict(trial.checkpoint(epoch), trial.name),
                               trial.name, dropout, architecture, _template(run))


def _template(run: build.Setup) -> dict[str, tuple[int, ...]]:
  """The shapes of one member's variables by dotted name (``params.Conv_0.kernel``)."""
  shapes = jax.eval_shape(lambda key: models.init_variables(run.model, key),
                          jax.random.PRNGKey(0))
  return {name: leaf.shape for name, leaf in layout.dotted(shapes).items()}


def _zoo_variables(members: list[dict[str, np.ndarray]], architecture: layout.ZooArchitecture,
                   run: build.Setup) -> dict[str, Any]:
  """The members' variables (``params``, ``batch_stats``; member axis first) from their
  converted tensors."""
  leaves = layout.params_from_member_tensors(members, list(run.table["dropout_rate"]),
                                             architecture, _template(run))
  return layout.nested({name: jnp.asarray(leaf) for name, leaf in leaves.items()})


def _write_run(directory: str, run: build.Setup, state: engine.TrainState,
               dataset: Dataset | None, epoch: int, trials: list[Trial], source: str,
               skipped: list[Skipped]) -> pd.DataFrame:
  """Everything a finished run of ``epoch`` epochs has, plus the source's records; returns
  ``members.csv``. Members whose test logits are not finite are marked diverged before the
  checkpoint is written. ``dataset`` None: the members are not evaluated."""
  links = {"imported_from": {"source": os.path.abspath(source), "epoch": epoch,
                             "trials": [trial.name for trial in trials],
                             "skipped_trials": [skip.trial for skip in skipped],
                             "evaluated": dataset is not None}}
  workdir_lib.write_metadata(directory, run.config, run.model.input_shape,
                             run.model.module.num_classes, run.table, run.declaration.module,
                             links, None if dataset is None else data_lib.digest(dataset))
  members, state = train.record_population(directory, run, state, dataset, epoch)
  members.insert(len(members.columns), "evaluated", dataset is not None)
  manager = checkpoints.checkpoint_manager(directory)
  try:
    checkpoints.save_population(manager, epoch, state)
  finally:
    manager.close()
  members = _with_source_columns(members, trials, epoch)
  members.to_csv(os.path.join(directory, workdir_lib.MEMBERS_FILE), index=False)
  _source_results(trials).to_csv(os.path.join(directory, SOURCE_RESULTS_FILE), index=False)
  if skipped:
    pd.DataFrame(skipped, columns=Skipped._fields).to_csv(
        os.path.join(directory, SKIPPED_TRIALS_FILE), index=False)
  return members


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
