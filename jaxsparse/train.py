"""Training a zoo from a config into a workdir, resuming where a run stopped.

:func:`train_and_evaluate` is what ``python -m jaxsparse.main`` runs. Each
epoch it trains every member in one compiled call, evaluates validation and
test accuracy per member, appends the metrics, then checkpoints the whole
population. Running it again on the same workdir restores the latest complete
checkpoint and continues; a finished run returns at once.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Callable, NamedTuple

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxsparse import build, checkpoints, engine, masks, memory, metrics, progress, sharding
from jaxsparse import data as data_lib
from jaxsparse import workdir as workdir_lib
from jaxsparse.config import resolve, run_length_dependence
from jaxsparse.data import Dataset, check_dataset
from jaxsparse.errors import UserError
from jaxsparse.workdir import MEMBERS_FILE, METRICS_FILE


class Origin(NamedTuple):
  """What a population derives from (a twin population's originals), if anything.

  Attributes:
    variables: ``(params, batch_stats)`` with a leading member axis to start from
      instead of fresh initialisations; used only when no checkpoint exists yet.
    links: extra entries for ``metadata.json`` (a twin run records its original).
    reference_predictions: test-set predictions [members, examples] that each
      member's are compared with at every evaluation (its original's): their
      ``agreement`` is logged beside the test accuracy.
    hparams: per-member columns for the TensorBoard HParams sessions beside the member
      table (a twin's original member, method, scope and level), by name.
  """
  variables: tuple | None = None
  links: dict | None = None
  reference_predictions: np.ndarray | None = None
  hparams: dict | None = None


def train_and_evaluate(config: ml_collections.ConfigDict | build.Setup, workdir: str,
                       dataset: Dataset | None = None, *, origin: Origin = Origin(),
                       on_epoch_end: Callable[[int, engine.TrainState], None] | None = None,
                       overwrite: bool = False,
                       study_progress: progress.Bar | None = None) -> pd.DataFrame:
  """Trains (or resumes) the zoo of ``config`` under ``workdir``.

  Args:
    config: a config (resolved here, once: :func:`jaxsparse.config.resolve`), or a
      ready :class:`jaxsparse.build.Setup` of ``dataset`` (a study's phase, set up
      once by the study; members split over the devices: ``sharded=True``).
    workdir: where checkpoints, metadata and metrics go.
    dataset: the data, if already loaded (otherwise from ``config.data``).
    origin: what the population derives from (see :class:`Origin`).
    on_epoch_end: called with (epoch, population) after each epoch's
      checkpoint is complete (for tests and custom logging).
    overwrite: if ``workdir`` holds a run of another config, discard it
      (otherwise that is refused; see :mod:`jaxsparse.workdir`).
    study_progress: a study's overall bar, advanced by this population's
      member-steps (its own bar then sits below it).

  Returns:
    The member table with each member's final metrics (also written to
    ``workdir/members.csv``).
  """
  run = config if isinstance(config, build.Setup) else None
  config = run.config if run is not None else resolve(config)
  with workdir_lib.locked(workdir):
    return _train_and_evaluate(config, run, workdir, dataset, origin, on_epoch_end, overwrite,
                               study_progress)


def _train_and_evaluate(config, run, workdir, dataset, origin, on_epoch_end, overwrite,
                        study_progress) -> pd.DataFrame:
  """:func:`train_and_evaluate` once the workdir is locked (``run``: the setup, if ready)."""
  table = run.table if run is not None else build.config_member_table(config)
  workdir_lib.prepare_workdir(workdir, config, overwrite, origin.links,
                              build.member_records(table), run_length_dependence(config))
  num_epochs = config.training.num_epochs
  manager = checkpoints.checkpoint_manager(workdir, config.checkpoint.max_to_keep)
  start_epoch = manager.latest_step() or 0
  if start_epoch >= num_epochs and _has_final_outputs(workdir, start_epoch):
    # A finished run (its metadata checked against the config above): report without
    # loading data or compiling anything.
    try:
      checkpoints.check_member_count(manager, start_epoch, len(table))
    finally:
      manager.close()
    print(f"Already trained for {start_epoch} epochs; nothing to do.", flush=True)
    return _report(workdir, table, start_epoch)
  try:
    dataset = _checked_dataset(config, workdir, dataset, start_epoch)
    run = run or build.setup(config, build.data_shape(dataset), sharded=True)
    memory.check_fits(run, sum(len(split[1]) for split in _splits(dataset).values()),
                      dataset.input_shape)
    if sharding.is_writer():
      workdir_lib.write_metadata(workdir, run.config, dataset.input_shape, dataset.num_classes,
                                 run.table, run.declaration.module, origin.links,
                                 data_lib.digest(dataset))
    splits = {name: sharding.replicate(arrays, run.mesh)
              for name, arrays in _splits(dataset).items()}
    if origin.reference_predictions is not None:
      splits["reference"] = sharding.pad_members(np.asarray(origin.reference_predictions),
                                                 run.padded_size)
    with metrics.MetricsWriter(workdir, config.logging.tensorboard and sharding.is_writer(),
                               run.table, run.steps_per_epoch, origin.hparams) as writer:
      _print_start(run, dataset)
      state = _initial_state(run, manager, start_epoch, origin.variables, workdir)
      _reconcile_metrics(run, state, splits, writer, start_epoch, dataset.test_labels)
      _train_epochs(run, state, splits, writer, manager, start_epoch, dataset.test_labels,
                    on_epoch_end, study_progress)
  finally:
    manager.close()
    _remove_empty_checkpoint_dir(workdir)
  if not sharding.is_writer():
    return run.table
  return _report(workdir, run.table, num_epochs)


def _train_epochs(run: build.Setup, state: engine.TrainState, splits: dict,
                  writer: metrics.MetricsWriter, manager, start_epoch: int,
                  test_labels: np.ndarray, on_epoch_end, study_progress) -> None:
  """Trains, evaluates and checkpoints the epochs after ``start_epoch``, with a progress bar
  that moves inside each epoch."""
  config, num_epochs, steps = run.config, run.config.training.num_epochs, run.steps_per_epoch
  mode = progress.resolve_mode(config.logging.progress) if sharding.is_writer() else "none"
  bar = progress.new_bar(mode, num_epochs * steps, start_epoch * steps,
                         desc=os.path.basename(os.path.normpath(writer.workdir)),
                         parent=study_progress, weight=run.num_members,
                         position=None if study_progress is None else 1,
                         every_seconds=config.logging.lines_every_seconds,
                         steps_per_epoch=steps)
  tracker = progress.EpochTracker(bar, steps, _reports_per_epoch(run))
  if start_epoch == 0 and evaluates_at(config, 0):
    _write_initial_evaluation(run, state, splits, writer)
  with bar, engine.listening_to_progress(tracker.report):
    for epoch in range(start_epoch + 1, num_epochs + 1):
      tracker.start_epoch(epoch)
      state, epoch_metrics, test_evaluation = _train_and_save_epoch(
          run, state, splits, epoch, writer, manager, mode != "none")
      if epoch == num_epochs:
        _write_final_predictions(writer.workdir, run, state, test_evaluation, test_labels)
      if on_epoch_end is not None:
        on_epoch_end(epoch, state)
      tracker.end_epoch(epoch)
      bar.end_epoch(epoch, num_epochs, float(epoch_metrics["epoch_seconds"][0]), epoch_metrics)


def _write_initial_evaluation(run: build.Setup, state: engine.TrainState,
                              splits: dict, writer: metrics.MetricsWriter) -> None:
  """The metrics rows of epoch 0: the members as they start, before any training (a twin
  just sparsified, e.g. magnitude pruning without fine-tuning); no training loss."""
  epoch_metrics, _ = _evaluate_epoch(run, state, splits, 0)
  nan = np.full(run.num_members, np.nan)
  if sharding.is_writer():
    writer.write_epoch(0, {**epoch_metrics, "train_loss": nan, "train_accuracy": nan})


def _reports_per_epoch(run: build.Setup) -> int:
  """Progress reports one epoch's training call makes in this process: one per
  :func:`progress.report_interval` steps, chunk of members and local device."""
  members_per_device = run.padded_size // sharding.num_shards(run.mesh)
  chunk = run.config.population.chunk_size
  chunks = 1 if chunk <= 0 or chunk >= members_per_device else -(-members_per_device // chunk)
  reports = run.steps_per_epoch // progress.report_interval(run.steps_per_epoch)
  return reports * chunks * sharding.local_shards(run.mesh)


def _has_final_outputs(workdir: str, epoch: int) -> bool:
  """Whether a finished run's metrics hold a row of its last epoch for every member, and
  its final predictions exist (otherwise they are recomputed from the checkpoint)."""
  num_members = len(workdir_lib.read_metadata(workdir)["members"])
  rows = metrics.epoch_rows(os.path.join(workdir, METRICS_FILE), epoch)
  return (len(rows) == num_members and
          os.path.exists(os.path.join(workdir, workdir_lib.PREDICTIONS_FILE)))


def _remove_empty_checkpoint_dir(workdir: str) -> None:
  """A run that failed before its first checkpoint leaves no empty ``checkpoints/``."""
  directory = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
  if sharding.is_writer() and os.path.isdir(directory) and not os.listdir(directory):
    os.rmdir(directory)


def _reconcile_metrics(run: build.Setup, state: engine.TrainState, splits: dict,
                       writer: metrics.MetricsWriter, epoch: int,
                       test_labels: np.ndarray) -> None:
  """Makes ``metrics.jsonl`` agree with the restored checkpoint of ``epoch`` (0: none).

  Rows after it and partial lines are dropped. If rows of ``epoch`` itself
  are missing, the epoch's evaluation is recomputed from the checkpoint
  (training loss and accuracy, which were averages over the epoch's steps,
  become NaN, and ``recomputed`` is 1); so are the final predictions of a
  finished run that lacks them. Missing rows of earlier epochs are named in
  one line (the learning curves have a gap there). Every process takes part
  (evaluating is collective); the decisions are made before anything is written.
  """
  rows = metrics.read_metrics(writer.path)
  missing_rows = epoch > 0 and len(metrics.epoch_rows(writer.path, epoch)) < run.num_members
  missing_predictions = epoch == run.config.training.num_epochs and not os.path.exists(
      os.path.join(writer.workdir, workdir_lib.PREDICTIONS_FILE))
  if missing_rows or missing_predictions:
    epoch_metrics, evaluation = _evaluate_epoch(run, state, splits, epoch)
  if missing_predictions:
    _write_final_predictions(writer.workdir, run, state, evaluation, test_labels)
  if not sharding.is_writer():
    return
  writer.truncate_after(epoch - 1 if missing_rows else epoch)
  if missing_rows:
    nan = np.full(run.num_members, np.nan)
    epoch_metrics.update(train_loss=nan, train_accuracy=nan,
                         recomputed=np.ones(run.num_members))
    writer.write_epoch(epoch, epoch_metrics)
    print(f"Recomputed the metrics of epoch {epoch} from its checkpoint (they were missing "
          "from metrics.jsonl; its training loss and accuracy cannot be, and are NaN).",
          flush=True)
  counts = collections.Counter(row["epoch"] for row in rows)
  gaps = [earlier for earlier in range(1, epoch) if counts[earlier] < run.num_members]
  if gaps:
    print(f"metrics.jsonl lacks rows of epoch(s) {gaps}; their learning-curve points are "
          "missing (the final results do not depend on them).", flush=True)


def _checked_dataset(config, workdir: str, dataset: Dataset | None,
                     start_epoch: int) -> Dataset:
  """The run's data (loaded if not given), checked against the config and a resumed run."""
  if dataset is None:
    print(f"Loading {config.data.name} ...", flush=True)
    dataset = data_lib.dataset_from_config(config)
  check_dataset(dataset)
  if start_epoch:
    _check_same_data(workdir, dataset)
  if config.training.batch_size > len(dataset.train_labels):
    raise UserError(f"config.training.batch_size={config.training.batch_size} is larger than "
                    f"the {len(dataset.train_labels)} training examples; use a smaller batch")
  return dataset


def _initial_state(run: build.Setup, manager, start_epoch: int,
                   initial_variables: tuple | None, workdir: str) -> engine.TrainState:
  """The restored population of a resumed run, or a fresh one (from ``initial_variables``)."""
  if start_epoch:
    state = checkpoints.restore_members(manager, run.program, run.table, start_epoch,
                                        run.padded_size)
    print(f"Resuming from the checkpoint of epoch {start_epoch} in {workdir}.", flush=True)
    return state
  initial = sharding.pad_members(tuple(initial_variables), run.padded_size) \
      if initial_variables else ()
  state = engine.init_population(run.program, run.hyper, *initial)
  return engine.between_epochs(run.program, state, run.hyper, 0, run.num_members)


def _print_start(run: build.Setup, dataset: Dataset) -> None:
  padding = run.padded_size - run.num_members
  training = run.config.training
  print(f"jaxsparse: {run.num_members} members of {run.model.name} on {dataset.name} "
        f"({len(dataset.train_labels)} train / {len(dataset.validation_labels)} validation / "
        f"{len(dataset.test_labels)} test), {training.num_epochs} epochs of batch "
        f"{training.batch_size}, on {jax.default_backend()} "
        f"({sharding.num_shards(run.mesh)} of {jax.device_count()} device(s)"
        f"{f', {padding} padding members' if padding else ''}).", flush=True)


def _splits(dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  return {"train": (dataset.train_images, dataset.train_labels),
          "validation": (dataset.validation_images, dataset.validation_labels),
          "test": (dataset.test_images, dataset.test_labels)}


def _train_and_save_epoch(run: build.Setup, state: engine.TrainState, splits: dict,
                          epoch: int, writer: metrics.MetricsWriter, manager,
                          report_progress: bool = False) -> tuple[engine.TrainState, dict, dict]:
  """Trains every member for ``epoch`` (reporting its progress if ``report_progress``),
  evaluates, appends the metrics and checkpoints.

  Returns the population, the epoch's metrics (on the host, padding dropped)
  and the test split's evaluation (on the devices, for the final predictions;
  None for an epoch that evaluated only ``training.curve_test_examples``).
  """
  started = time.time()
  config = run.config
  program = run.program._replace(
      progress_every=progress.report_interval(run.steps_per_epoch) if report_progress else 0)
  state, epoch_metrics = engine.train_epoch(program, state, run.hyper, *splits["train"],
                                            (epoch - 1) * run.steps_per_epoch)
  state = engine.between_epochs(run.program, state, run.hyper, epoch, run.num_members,
                                splits["train"][0])
  evaluation_metrics, evaluation = _evaluate_epoch(run, state, splits, epoch)
  epoch_metrics = {**sharding.unpad_members(sharding.to_host(epoch_metrics), run.num_members),
                   **evaluation_metrics}
  loss_curve = epoch_metrics.pop("train_loss_curve")  # TensorBoard's, not a row's
  epoch_metrics["epoch_seconds"] = np.full(run.num_members, time.time() - started)
  if sharding.is_writer():
    writer.write_epoch(epoch, epoch_metrics)
    writer.write_loss_curve(epoch, loss_curve)
  try:
    checkpoints.save_population(manager, epoch, state)
  except BaseException:
    # Without its checkpoint the epoch did not happen: drop its metrics now
    # (a resumed run would drop them anyway).
    if sharding.is_writer():
      _forget_epoch(writer, epoch)
    raise
  if sharding.is_writer() and epoch == config.training.num_epochs:
    writer.write_hparams(run.table, epoch_metrics, epoch)
  return state, epoch_metrics, evaluation


def record_population(workdir: str, run: build.Setup, state: engine.TrainState,
                      dataset: Dataset | None, epoch: int
                      ) -> tuple[pd.DataFrame, engine.TrainState]:
  """Evaluates a population trained elsewhere (an imported zoo) and writes what a finished
  run of ``epoch`` epochs has besides its checkpoint: the epoch's metrics, the final test
  predictions and ``members.csv``. A member whose evaluation loss is not finite (non-finite
  logits) is marked diverged. Returns the members (``members.csv``) and the population
  with those marks. The training loss is unknown (NaN). ``dataset`` None: nothing is
  evaluated (no accuracies, no predictions; the twins compute their originals' later)."""
  if dataset is None:
    epoch_metrics, evaluation = _unevaluated_metrics(run, state), None
  else:
    splits = {name: sharding.replicate(arrays, run.mesh)
              for name, arrays in _splits(dataset).items()}
    epoch_metrics, evaluation = _evaluate_epoch(run, state, splits, epoch)
  losses = [epoch_metrics[name] for name in ("validation_loss", "test_loss") if name in epoch_metrics]
  diverged = np.asarray(epoch_metrics["diverged"], bool) | ~np.isfinite(losses).all(axis=0)
  state = state._replace(diverged=jax.numpy.asarray(
      sharding.pad_members(diverged, run.padded_size)))
  nan = np.full(run.num_members, np.nan)
  epoch_metrics.update(train_loss=nan, train_accuracy=nan, diverged=diverged)
  if sharding.is_writer():
    with metrics.MetricsWriter(workdir, tensorboard=False) as writer:
      writer.write_epoch(epoch, epoch_metrics)
  if dataset is not None:
    _write_final_predictions(workdir, run, state, evaluation, dataset.test_labels)
  return _report(workdir, run.table, epoch, announce=False), state


def evaluates_at(config: ml_collections.ConfigDict, epoch: int) -> bool:
  """Whether the run evaluates its members after ``epoch`` (0: before training): every
  ``training.evaluate_every`` epochs and after the last; before the first only with
  ``training.evaluate_at_start``."""
  training = config.training
  if epoch == 0:
    return bool(training.evaluate_at_start)
  return epoch == training.num_epochs or epoch % training.evaluate_every == 0


def _evaluate_epoch(run: build.Setup, state: engine.TrainState, splits: dict,
                    epoch: int) -> tuple[dict, dict | None]:
  """The population's evaluation after ``epoch``: achieved sparsity, divergence and, at the
  epochs :func:`evaluates_at` names, validation and test metrics (on the host, padding
  dropped), with each member's agreement with its reference predictions (a twin's
  original: ``splits['reference']``) when there are any; and the test split's evaluation
  (on the devices, for the final predictions; None for an epoch that evaluated only
  ``training.curve_test_examples`` or nothing)."""
  config = run.config
  if not evaluates_at(config, epoch):
    return _unevaluated_metrics(run, state), None
  epoch_metrics = _sparsity_and_divergence(state)
  evaluate = lambda images, labels: engine.evaluate(run.program, state, run.hyper, images,
                                                    labels)
  if config.training.evaluate_validation:
    validation = evaluate(*splits["validation"])
    epoch_metrics["validation_accuracy"] = validation["accuracy"]
    epoch_metrics["validation_loss"] = validation["loss"]
  curve_examples = config.training.curve_test_examples
  evaluation = None
  if not curve_examples or epoch in (0, config.training.num_epochs):  # the start and the end
    evaluation = evaluate(*splits["test"])
    epoch_metrics["test_accuracy"] = evaluation["accuracy"]
    epoch_metrics["test_loss"] = evaluation["loss"]
  predictions = None if evaluation is None else evaluation["predictions"]
  if curve_examples:
    # The learning curve's subset; at the last epoch read off the whole test pass.
    subset_labels = splits["test"][1][:curve_examples]
    subset = (evaluate(splits["test"][0][:curve_examples], subset_labels)["predictions"]
              if evaluation is None else evaluation["predictions"][:, :curve_examples])
    epoch_metrics["curve_accuracy"] = (subset == subset_labels).mean(axis=1)
    predictions = subset if predictions is None else predictions
  if splits.get("reference") is not None:
    reference = splits["reference"][:, :predictions.shape[1]]
    epoch_metrics["agreement"] = (predictions == reference).mean(axis=1)
  return sharding.unpad_members(sharding.to_host(epoch_metrics), run.num_members), evaluation


def _sparsity_and_divergence(state: engine.TrainState) -> dict:
  """Every member's achieved sparsity and divergence (on the devices, padding kept)."""
  return {"achieved_sparsity": jax.vmap(masks.sparsity)(state.masks),
          "diverged": state.diverged}


def _unevaluated_metrics(run: build.Setup, state: engine.TrainState) -> dict:
  """What an epoch records without evaluating: achieved sparsity and divergence (on the
  host, padding dropped)."""
  return sharding.unpad_members(sharding.to_host(_sparsity_and_divergence(state)),
                                run.num_members)


def _write_final_predictions(workdir: str, run: build.Setup, state: engine.TrainState,
                             evaluation: dict, test_labels: np.ndarray) -> None:
  """The final test predictions, for the twins report (saves evaluating again). Every
  process takes part in gathering them; one writes them."""
  final = sharding.unpad_members(sharding.to_host((state.masks, state.diverged, evaluation)),
                                 run.num_members)
  if sharding.is_writer():
    metrics.write_predictions(workdir, metrics.prediction_record(*final, test_labels))


def _forget_epoch(writer: metrics.MetricsWriter, epoch: int) -> None:
  try:
    writer.truncate_after(epoch - 1)
  except OSError:
    pass  # e.g. the disk is full; the next resume truncates instead


def _check_same_data(workdir: str, dataset: Dataset) -> None:
  """A run resumes only on the data it was trained on: same shape, classes, splits and order."""
  metadata = workdir_lib.read_metadata(workdir)
  if (tuple(metadata["input_shape"]) != tuple(dataset.input_shape)
      or metadata["num_classes"] != dataset.num_classes):
    raise UserError(
        f"{workdir} was trained on inputs of shape {tuple(metadata['input_shape'])} with "
        f"{metadata['num_classes']} classes, but the data now has {tuple(dataset.input_shape)} "
        f"and {dataset.num_classes}; use the run's data or another --workdir")
  recorded = metadata.get("data_digest")  # absent in runs written before it was recorded
  current = data_lib.digest(dataset)
  if recorded and recorded != current:
    raise UserError(
        f"{workdir} was trained on other data than {dataset.name!r} gives now (its splits, order "
        f"or pixels differ: data digest {recorded} vs {current}); resume on the run's data or "
        "start a new --workdir")


def _report(workdir: str, table: pd.DataFrame, num_epochs: int,
            announce: bool = True) -> pd.DataFrame:
  """Writes ``members.csv`` and prints the population summary (and, if ``announce``, what
  the run wrote where); returns the members."""
  members = metrics.final_member_table(table, os.path.join(workdir, METRICS_FILE), num_epochs)
  if "diverged" in members:
    members["diverged"] = members["diverged"].astype(bool)
  members.to_csv(os.path.join(workdir, MEMBERS_FILE), index=False)
  if "diverged" in members and members["diverged"].any():
    diverged = members.index[members["diverged"]].tolist()
    print(f"{len(diverged)} member(s) diverged (non-finite loss or weights) and were frozen at "
          f"their last finite state: {diverged}; see the 'diverged' column of members.csv.",
          flush=True)
  print(f"Population after epoch {num_epochs} ({len(members)} members):\n"
        f"{metrics.population_summary(members)}", flush=True)
  if announce:
    print(f"Written to {workdir}: checkpoints/, metadata.json, metrics.jsonl, members.csv, "
          f"tensorboard/.", flush=True)
  return members
