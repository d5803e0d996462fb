"""The sparsified-twins study: a zoo, its twins per method and level, and the report.

A config with ``job = 'twins'`` (``python -m jaxsparse.main
--config=configs/twins.py --workdir=DIR``), or :func:`run_study`, does, under
``DIR``:

1. ``original/``: trains the zoo of the config densely (or finds it trained;
   with ``twins.original_workdir`` the twins start from that run instead, e.g.
   a zoo imported by :mod:`jaxsparse.modelzoo`);
2. ``twins/<method>[_<scope>]/``: for every method in ``config.twins.methods``
   (and, for a method with a ``scope`` field, every scope in
   ``config.twins.scopes``), ONE population of twins holding all its levels
   (what a level sets is the method's declaration: a target sparsity, or
   e.g. a KL weight when sparsity is an outcome): twin ``k * P + i`` starts
   from original member i's final weights at the k-th level, is sparsified
   with the ``config.sparsify`` settings and fine-tuned for
   ``config.twins.num_epochs`` in one compiled program per epoch. Each is an
   ordinary run directory (Orbax checkpoints, metrics, members.csv) whose
   ``metadata.json`` names its original;
3. ``report.md``, ``summary.json`` and ``figures/``: see :mod:`jaxsparse.report`.

Every step is resumable: a finished run is not recomputed, an interrupted
one continues from its last complete checkpoint, and the report is rebuilt
from the runs' cached predictions.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxsparse import (analysis, build, checkpoints, engine, metrics, progress, sharding, sparsify,
                       train)
from jaxsparse import data as data_lib
from jaxsparse import workdir as workdir_lib
from jaxsparse.config import check_values, completed_config, default_config, resolve
from jaxsparse.data import Dataset
from jaxsparse.errors import UserError
from jaxsparse.workdir import (METADATA_FILE, METRICS_FILE, ORIGINAL_DIR, read_metadata,
                               twin_run_dir)


class TwinRun(NamedTuple):
  """One population of twins: a method (at one scope) at all its levels, and where it lives.

  The population holds ``len(levels) x P`` members for a zoo of P: member
  ``k * P + i`` is original member i's twin at ``levels[k]`` (the level is the
  outermost axis of the member table), so a method's levels train in one
  compiled program.
  """
  method: str
  scope: str | None
  levels: tuple[float, ...]
  workdir: str

  @property
  def twin_level(self) -> sparsify.TwinLevel:
    """What a level sets for this method (see :class:`jaxsparse.sparsify.TwinLevel`)."""
    return sparsify.declaration(self.method).twin_level

  @property
  def level_field(self) -> str:
    """What a level sets: 'sparsity' (the members' target) or a ``config.sparsify`` field."""
    return self.twin_level.setting

  @property
  def name(self) -> str:
    """The method, with its scope when it has one (e.g. ``magnitude (global)``)."""
    return self.method if self.scope is None else f"{self.method} ({self.scope})"

  def level_members(self, num_originals: int, level_index: int) -> slice:
    """The twins at ``levels[level_index]``, in the order of the originals."""
    return slice(level_index * num_originals, (level_index + 1) * num_originals)


def twin_runs(config: ml_collections.ConfigDict, workdir: str,
              overwrite: bool = False) -> list[TwinRun]:
  """Every population of the study, in order: per method, per scope in ``twins.scopes`` if
  the method has a ``scope`` field, the populations of its levels (:func:`series_runs`;
  with ``overwrite``, one population of all its levels, replacing what was trained)."""
  runs = []
  for method in config.twins.methods:
    spec = sparsify.declaration(method)
    levels = tuple(float(level) for level in config.twins[spec.twin_level.levels_field])
    scopes = tuple(config.twins.scopes) if "scope" in spec.fields else (None,)
    for scope in scopes:
      runs += ([TwinRun(method, scope, levels, twin_run_dir(workdir, method, scope))]
               if overwrite else
               series_runs(method, scope, levels, workdir, spec.twin_level.levels_field))
  return runs


def series_runs(method: str, scope: str | None, levels: tuple[float, ...], workdir: str,
                levels_field: str = "levels", allow_dropped: bool = False) -> list[TwinRun]:
  """The populations that hold ``method``'s twins (at ``scope``) at ``levels``: those the
  study already trained (each kept whole, with its own levels), and one more,
  ``twins/<method>[_<scope>]+<new levels>``, for the levels none of them holds, so that a
  level added to a finished study trains only the new twins.

  Raises:
    UserError: a trained population holds a level ``levels`` no longer lists (unless
      ``allow_dropped``: then every trained population is listed, and none is added).
  """
  base = twin_run_dir(workdir, method, scope)
  directories = [base] + sorted(glob.glob(glob.escape(base) + "+*"))
  runs, covered = [], set()
  for directory in directories:
    if not os.path.exists(os.path.join(directory, METADATA_FILE)):
      continue
    trained = _trained_levels(directory, method)
    dropped = [level for level in trained if level not in levels]
    if dropped and not allow_dropped:
      raise UserError(
          f"config.twins.{levels_field} no longer lists {', '.join(f'{l:g}' for l in dropped)}, "
          f"which {os.path.relpath(directory, workdir)} trained with "
          f"{', '.join(f'{l:g}' for l in trained)}; list them again (a study keeps what it "
          "trained), or use another --workdir or --overwrite")
    runs.append(TwinRun(method, scope, trained, directory))
    covered.update(trained)
  missing = tuple(level for level in levels if level not in covered)
  if missing and not allow_dropped:
    directory = base if not runs else f"{base}+{'+'.join(f'{level:g}' for level in missing)}"
    runs.append(TwinRun(method, scope, missing, directory))
  return runs


def _trained_levels(run_dir: str, method: str) -> tuple[float, ...]:
  """The levels a twin population on disk holds, in its own order."""
  config = read_metadata(run_dir)["config"]
  setting = sparsify.declaration(method).twin_level.setting
  values = (config["population"]["grid"]["sparsity"] if setting == "sparsity" else
            config["population"]["method_grid"][setting])
  return tuple(float(value) for value in values)


def original_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The zoo's own run: the config, trained densely (its twin settings play no part)."""
  original = config.copy_and_resolve_references()
  original.job = "train"  # each run of the study is a training run
  original.twins = default_config().twins
  original.sparsify.method = sparsify.DENSE
  original.population.grid.sparsity = (0.0,)
  return original


def twin_config(config: ml_collections.ConfigDict, run: TwinRun) -> ml_collections.ConfigDict:
  """The run of one twin population: the zoo's grid times the method's levels."""
  twin = original_config(config)
  twin.sparsify.method = run.method
  if run.scope is not None:
    twin.sparsify.scope = run.scope
  if run.level_field == "sparsity":
    twin.population.grid.sparsity = run.levels
  else:
    twin.population.method_grid[run.level_field] = run.levels
  twin.training.num_epochs = config.twins.num_epochs
  # The study reads only test predictions; a twin's validation pass would cost
  # more than its fine-tuning epoch.
  twin.training.evaluate_validation = False
  twin.training.evaluate_every = config.twins.evaluate_every
  twin.training.evaluate_at_start = config.twins.evaluate_at_start
  # Recorded so that resuming with another fine-tuning set is refused.
  twin.twins.num_epochs = config.twins.num_epochs
  twin.twins.train_examples = config.twins.train_examples
  return twin


def tile_members(variables, copies: int):
  """Every member's variables repeated ``copies`` times along the member axis (level-major)."""
  return jax.tree.map(lambda leaf: np.concatenate([np.asarray(leaf)] * copies), variables)


def training_subset(dataset: Dataset, num_examples: int) -> Dataset:
  """The first ``num_examples`` training examples of ``dataset`` (0: all of them)."""
  if not num_examples or num_examples >= len(dataset.train_labels):
    return dataset
  return dataset._replace(train_images=dataset.train_images[:num_examples],
                          train_labels=dataset.train_labels[:num_examples])


def cache_predictions(workdir: str, dataset: Dataset, batch_size: int) -> dict[str, np.ndarray]:
  """Test-set predictions and per-layer sparsity of a finished run, cached in predictions.npz.

  A run writes the file itself after its last epoch (from that epoch's test
  evaluation); for a run that has none, it is computed here once from the
  final checkpoint, so that the report of a resumed study does not evaluate
  finished runs again.
  """
  cached = metrics.read_predictions(workdir)
  if cached is not None:
    return cached
  state, _ = checkpoints.load_population(workdir)
  run = build.load_setup(workdir)
  program = run.program._replace(eval_batch_size=batch_size, mesh=None)
  evaluation = engine.evaluate(program, state, run.hyper, jax.numpy.asarray(dataset.test_images),
                               jax.numpy.asarray(dataset.test_labels))
  record = metrics.prediction_record(state.masks, state.diverged, evaluation,
                                     dataset.test_labels)
  metrics.write_predictions(workdir, record)
  return record


def study_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The study's config, from a resolved one. With ``twins.original_workdir`` (a zoo trained
  elsewhere, e.g. imported), the zoo's own config with this one's ``sparsify``, ``twins``,
  ``logging`` and ``checkpoint`` settings: twins keep their originals' model, data,
  members and recipe."""
  source = config.twins.original_workdir
  if not source:
    return config
  if not os.path.exists(os.path.join(source, METADATA_FILE)):
    raise UserError(f"config.twins.original_workdir={source!r} is not a jaxsparse run (no "
                    f"{METADATA_FILE}); give a run directory, e.g. one made by "
                    "`python -m jaxsparse.modelzoo import`")
  metadata = read_metadata(source)
  # The zoo's own method module is imported only with the user's consent (it is data).
  build.import_recorded_methods(metadata, os.path.join(source, METADATA_FILE))
  zoo = completed_config(ml_collections.ConfigDict(metadata["config"]))
  for section in ("sparsify", "twins", "logging", "checkpoint"):
    zoo[section] = config[section]
  zoo.job = config.job
  return zoo


def original_run_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Where the study's original zoo lives: ``twins.original_workdir``, or ``workdir/original``."""
  return config.twins.original_workdir or os.path.join(workdir, ORIGINAL_DIR)


def run_study(config: ml_collections.ConfigDict, workdir: str,
              dataset: Dataset | None = None, overwrite: bool = False,
              allow_modules: tuple[str, ...] = ()) -> dict:
  """Trains the zoo (unless ``twins.original_workdir`` names one) and its twins under
  ``workdir`` (resuming) and writes the report.

  ``overwrite``: runs under ``workdir`` made with another config are
  discarded instead of refused (see :mod:`jaxsparse.workdir`).
  ``allow_modules``: modules that the zoo of ``twins.original_workdir`` may
  import for its method (see :func:`jaxsparse.checkpoints.load_population`).
  Returns the summary written to ``summary.json``.
  """
  with sparsify.allowing_modules(allow_modules):
    config = study_config(resolve(config))  # resolved once, at the door
    runs = twin_runs(config, workdir, overwrite)
    for run in runs:
      check_values(twin_config(config, run))  # each derived run's values, once
    with workdir_lib.locked(workdir):  # the whole tree: the original, the twins, the report
      return _run_study(config, workdir, runs, dataset, overwrite)


def _run_study(config: ml_collections.ConfigDict, workdir: str, runs: list[TwinRun],
               dataset: Dataset | None, overwrite: bool) -> dict:
  """:func:`run_study` once the study's workdir is locked."""
  from jaxsparse import report  # matplotlib is imported only when a report is made
  if overwrite:  # populations of levels added to an earlier study: replaced by the runs
    for run in runs:
      for stale in glob.glob(glob.escape(run.workdir) + "+*"):
        shutil.rmtree(stale)
  if dataset is None:
    print(f"Loading {config.data.name} ...", flush=True)
    dataset = data_lib.dataset_from_config(config)
  twin_data = training_subset(dataset, config.twins.train_examples)
  # Every phase is set up once, up front: its model-dependent checks (e.g. a level that
  # prunes whole layers) run before anything trains, and its size gives the study's bar
  # its total of member-steps.
  zoo = [] if config.twins.original_workdir else [
      build.setup(original_config(config), build.data_shape(dataset), sharded=True)]
  twin_setups = [build.setup(twin_config(config, run), build.data_shape(twin_data),
                             sharded=True) for run in runs]
  member_steps = [phase.num_members * phase.steps_per_epoch * phase.config.training.num_epochs
                  for phase in zoo + twin_setups]
  mode = progress.resolve_mode(config.logging.progress) if sharding.is_writer() else "none"
  # In lines mode each population writes its own lines; the study's only its phases.
  with progress.new_bar(mode, sum(member_steps), desc="study", unit="member-steps", position=0,
                        every_seconds=float("inf")) as bar:
    _train_phases(config, workdir, zoo, list(zip(runs, twin_setups)), dataset, twin_data,
                  overwrite, bar, np.cumsum(member_steps))
  original_dir = original_run_dir(config, workdir)
  table = zoo[0].table if zoo else build.load_setup(original_dir).table
  batch_size = config.training.eval_batch_size
  original = cache_predictions(original_dir, dataset, batch_size)
  twins = [(run, cache_predictions(run.workdir, dataset, batch_size),
            epoch_test_accuracy(run.workdir)) for run in runs]
  return report.write_report(workdir, config, table, original, twins)


def _train_phases(config, workdir: str, zoo: list[build.Setup],
                  twin_phases: list[tuple[TwinRun, build.Setup]], dataset: Dataset,
                  twin_data: Dataset, overwrite: bool, bar: progress.Bar,
                  member_steps_after: np.ndarray) -> None:
  """Trains (or resumes) the zoo (its setup in ``zoo``, unless it was trained elsewhere),
  then each twin population from the zoo's final weights, advancing the study's bar
  (``member_steps_after[k]``: its position after phase k)."""
  original_dir = original_run_dir(config, workdir)
  phases = len(twin_phases) + len(zoo)
  if zoo:
    bar.write(f"== phase 1/{phases}: the original zoo -> {original_dir}")
    train.train_and_evaluate(zoo[0], original_dir, dataset, overwrite=overwrite,
                             study_progress=bar)
    bar.skip(int(member_steps_after[0]) - bar.n)
  original_state, table = checkpoints.load_population(original_dir,
                                                     setup=zoo[0] if zoo else None)
  final_epoch = int(original_state.epoch[0])
  originals = (original_state.params, original_state.batch_stats)
  del original_state
  # Every evaluation of a twin logs its agreement with its original's test predictions.
  predictions = cache_predictions(original_dir, dataset,
                                  config.training.eval_batch_size)["predictions"]
  for phase, (run, setup) in enumerate(twin_phases, start=1 + len(zoo)):
    levels = ", ".join(f"{level:g}" for level in run.levels)
    bar.write(f"== phase {phase}/{phases}: twins {run.name} at {run.twin_level.label} {levels} "
              f"({len(run.levels)} x {len(table)} members) -> {run.workdir}")
    link = {"workdir": os.path.relpath(original_dir, run.workdir), "epoch": final_epoch,
            "members": f"twin member k * {len(table)} + i is the twin of original member i "
                       "at the k-th level"}
    members = len(run.levels) * len(table)
    hparams = {"original_member": [member % len(table) for member in range(members)],
               "method": [run.method] * members, "scope": [run.scope or "none"] * members,
               "level": [run.levels[member // len(table)] for member in range(members)]}
    origin = train.Origin(tile_members(originals, len(run.levels)), {"original": link},
                          tile_members(predictions, len(run.levels)), hparams)
    train.train_and_evaluate(setup, run.workdir, twin_data, origin=origin, overwrite=overwrite,
                             study_progress=bar)
    bar.skip(int(member_steps_after[phase - 1]) - bar.n)


def epoch_test_accuracy(run_dir: str) -> pd.DataFrame:
  """Test accuracy of every member after every evaluated epoch of a run (a frame: epochs by
  members; epoch 0 is the members before training, if they were evaluated then), from
  ``metrics.jsonl``: on the curve's test subset if the run logged one
  (``training.curve_test_examples``; epoch 0 and the last evaluate the whole set), else
  on the whole test set."""
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(run_dir, METRICS_FILE)))
  accuracy = rows["curve_accuracy"] if "curve_accuracy" in rows else rows["test_accuracy"]
  if "test_accuracy" in rows:  # (epochs that evaluated the whole test set only)
    accuracy = accuracy.fillna(rows["test_accuracy"])
  rows = rows.assign(accuracy=accuracy).dropna(subset=["accuracy"])
  return rows.pivot(index="epoch", columns="member", values="accuracy")


def load_twins(workdir: str, method: str, level: float, epoch: int | None = None,
               scope: str | None = None) -> tuple[engine.TrainState, pd.DataFrame]:
  """The twins of a study at one level of ``method`` (and ``scope``: e.g. 'global' for
  magnitude pruning; None: the method's only population, or its default scope's), with
  their member table.

  The table has one row per twin (hyperparameters, ``original_member``, the
  original's and the twin's test accuracy, achieved sparsity and agreement
  with the original, from the study's predictions).
  """
  spec = sparsify.declaration(method)
  if scope is None and "scope" in spec.fields:
    scope = spec.fields["scope"].default
  level_field = spec.twin_level.setting
  runs = [run for run in series_runs(method, scope, (), workdir, allow_dropped=True)
          if any(np.isclose(run.levels, level))]
  if not runs:
    trained = sorted(level for run in series_runs(method, scope, (), workdir,
                                                  allow_dropped=True) for level in run.levels)
    raise UserError(f"{twin_run_dir(workdir, method, scope)} has no twins at "
                    f"{level_field}={level:g}; its levels are "
                    f"{', '.join(f'{value:g}' for value in trained) or 'none'}")
  run_dir = runs[0].workdir
  state, table = checkpoints.load_population(run_dir, epoch)
  chosen = np.flatnonzero(np.isclose(table[level_field].to_numpy(float), level))
  state = jax.tree.map(lambda leaf: leaf[chosen], state)
  table = table.iloc[chosen].reset_index(drop=True)
  table["original_member"] = np.arange(len(table))
  original = metrics.read_predictions(workdir_lib.study_original_dir(workdir))
  twin = metrics.read_predictions(run_dir)
  if original is not None and twin is not None:
    twin = {name: value[chosen] for name, value in twin.items() if name != "labels"}
    table["original_test_accuracy"] = original["accuracy"]
    table["test_accuracy"] = twin["accuracy"]
    table["achieved_sparsity"] = twin["sparsity"]
    table["agreement"] = analysis.agreement(original["predictions"], twin["predictions"])
    table["cohen_kappa"] = analysis.cohen_kappa(original["predictions"], twin["predictions"])
  return state, table

