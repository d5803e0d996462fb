"""The sparsified-twins study: a zoo, its twins per method and level, and the report.

A config with ``job = 'twins'`` (``python -m jaxsparse.main
--config=configs/twins.py --workdir=DIR``), or :func:`run_study`, does, under
``DIR``:

1. ``original/``: trains the zoo of the config densely (or finds it trained);
2. ``twins/<method>_<level>/``: for every method in ``config.twins.methods``
   and level (what a level sets is the method's declaration: a target
   sparsity, or e.g. a KL weight when sparsity is an outcome), one
   population of twins, member i starting from original member i's final
   weights, sparsified with the ``config.sparsify`` settings and fine-tuned
   for ``config.twins.num_epochs`` in one compiled program per epoch. Each
   is an ordinary run directory (Orbax checkpoints, metrics, members.csv)
   whose ``metadata.json`` names its original;
3. ``report.md``, ``summary.json`` and ``figures/``: see :mod:`jaxsparse.report`.

Every step is resumable: a finished run is not recomputed, an interrupted
one continues from its last complete checkpoint, and the report is rebuilt
from the runs' cached predictions.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxsparse import analysis, checkpoints, engine, experiment, metrics, sparsify, train
from jaxsparse.config import default_config, validate_config
from jaxsparse.data import Dataset
from jaxsparse.workdir import ORIGINAL_DIR, read_metadata, twin_run_dir


class TwinRun(NamedTuple):
  """One population of twins: a method at a level, and where it lives."""
  method: str
  level: float
  workdir: str

  @property
  def twin_level(self) -> sparsify.TwinLevel:
    """What the level sets for this method (see :class:`jaxsparse.sparsify.TwinLevel`)."""
    return sparsify.declaration(self.method).twin_level

  @property
  def level_field(self) -> str:
    """What the level sets: 'sparsity' (the members' target) or a ``config.sparsify`` field."""
    return self.twin_level.setting


def twin_runs(config: ml_collections.ConfigDict, workdir: str) -> list[TwinRun]:
  """Every (method, level) of the study, in order."""
  runs = []
  for method in config.twins.methods:
    levels = config.twins[sparsify.declaration(method).twin_level.levels_field]
    runs += [TwinRun(method, float(level), twin_run_dir(workdir, method, level))
             for level in levels]
  return runs


def original_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The zoo's own run: the config, trained densely (its twin settings play no part)."""
  original = config.copy_and_resolve_references()
  original.twins = default_config().twins
  original.twins.methods = config.twins.methods  # (a twins job must name its methods)
  original.sparsify.method = sparsify.DENSE
  original.population.grid.sparsity = (0.0,)
  return original


def twin_config(config: ml_collections.ConfigDict, run: TwinRun) -> ml_collections.ConfigDict:
  """The run of one twin population: the zoo's grid, the method at its level."""
  twin = original_config(config)
  twin.sparsify.method = run.method
  if run.level_field == "sparsity":
    twin.population.grid.sparsity = (run.level,)
  else:
    twin.sparsify[run.level_field] = run.level
  twin.training.num_epochs = config.twins.num_epochs
  # The study reads only test predictions; a twin's validation pass would cost
  # more than its fine-tuning epoch.
  twin.training.evaluate_validation = False
  # Recorded so that resuming with another fine-tuning set is refused.
  twin.twins.num_epochs = config.twins.num_epochs
  twin.twins.train_examples = config.twins.train_examples
  return twin


def _training_subset(dataset: Dataset, num_examples: int) -> Dataset:
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
  run = experiment.from_metadata(read_metadata(workdir))
  evaluation = engine.evaluate(run.model, run.method, state, run.hyper,
                               jax.numpy.asarray(dataset.test_images),
                               jax.numpy.asarray(dataset.test_labels), batch_size=batch_size)
  record = metrics.prediction_record(state.masks, state.diverged, evaluation,
                                     dataset.test_labels)
  metrics.write_predictions(workdir, record)
  return record


def run_study(config: ml_collections.ConfigDict, workdir: str,
              dataset: Dataset | None = None, overwrite: bool = False) -> dict:
  """Trains the zoo and its twins under ``workdir`` (resuming) and writes the report.

  ``overwrite``: runs under ``workdir`` made with another config are
  discarded instead of refused (see :mod:`jaxsparse.workdir`).
  Returns the summary written to ``summary.json``.
  """
  from jaxsparse import report  # matplotlib is imported only when a report is made
  validate_config(config)
  runs = twin_runs(config, workdir)
  for run in runs:
    validate_config(twin_config(config, run))
  dataset = dataset or train.dataset_from_config(config)
  original_dir = os.path.join(workdir, ORIGINAL_DIR)
  print(f"== original zoo -> {original_dir}", flush=True)
  train.train_and_evaluate(original_config(config), original_dir, dataset, overwrite=overwrite)
  original_state, table = checkpoints.load_population(original_dir)
  final_epoch = int(original_state.epoch[0])
  twin_data = _training_subset(dataset, config.twins.train_examples)
  for run in runs:
    print(f"== twins: {run.method} at {run.level_field} {run.level:g} -> {run.workdir}",
          flush=True)
    train.train_and_evaluate(
        twin_config(config, run), run.workdir, twin_data,
        initial_variables=(original_state.params, original_state.batch_stats),
        links={"original": {"workdir": os.path.relpath(original_dir, run.workdir),
                            "epoch": final_epoch,
                            "members": "twin member i is the twin of original member i"}},
        overwrite=overwrite)
  del original_state
  batch_size = config.training.eval_batch_size
  original = cache_predictions(original_dir, dataset, batch_size)
  twins = [(run, cache_predictions(run.workdir, dataset, batch_size)) for run in runs]
  return report.write_report(workdir, config, table, original, twins)


def load_twins(workdir: str, method: str, level: float, epoch: int | None = None
               ) -> tuple[engine.TrainState, pd.DataFrame]:
  """A twin population of a study and its member table.

  The table has one row per twin (hyperparameters, ``original_member``, the
  original's and the twin's test accuracy, achieved sparsity and agreement
  with the original, from the study's predictions).
  """
  run_dir = twin_run_dir(workdir, method, level)
  state, table = checkpoints.load_population(run_dir, epoch)
  table = table.copy()
  table["original_member"] = table["member"]
  original = metrics.read_predictions(os.path.join(workdir, ORIGINAL_DIR))
  twin = metrics.read_predictions(run_dir)
  if original is not None and twin is not None:
    table["original_test_accuracy"] = original["accuracy"]
    table["test_accuracy"] = twin["accuracy"]
    table["achieved_sparsity"] = twin["sparsity"]
    table["agreement"] = analysis.agreement(original["predictions"], twin["predictions"])
  return state, table

