"""Training a zoo from a config into a workdir, resuming where a run stopped.

:func:`train_and_evaluate` is what ``python -m jaxsparse.main`` runs. Each
epoch it trains every member in one compiled call, evaluates validation and
test accuracy per member, appends the metrics, then checkpoints the whole
population. Running it again on the same workdir restores the latest complete
checkpoint and continues; a finished run returns at once.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
from tqdm import tqdm

from jaxsparse import checkpoints, engine, masks, metrics, models, population, sparsify
from jaxsparse.config import validate_config
from jaxsparse.data import Dataset, load_dataset
from jaxsparse.errors import UserError


def dataset_from_config(config: ml_collections.ConfigDict) -> Dataset:
  """Loads the dataset described by ``config.data``."""
  data = config.data
  return load_dataset(data.name, validation_size=data.validation_size,
                      split_seed=data.split_seed, mean=data.mean, std=data.std,
                      image_size=data.image_size, train_examples=data.train_examples,
                      tfds_data_dir=data.tfds_data_dir or None)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       dataset: Dataset | None = None,
                       on_epoch_end: Callable[[int, engine.TrainState], None] | None = None,
                       initial_variables: tuple | None = None,
                       links: dict | None = None) -> pd.DataFrame:
  """Trains (or resumes) the zoo of ``config`` under ``workdir``.

  Args:
    config: a config following :func:`jaxsparse.config.default_config`.
    workdir: where checkpoints, metadata and metrics go.
    dataset: the data, if already loaded (otherwise from ``config.data``).
    on_epoch_end: called with (epoch, population) after each epoch's
      checkpoint is complete (for tests and custom logging).
    initial_variables: ``(params, batch_stats)`` with a leading member axis to
      start from instead of fresh initialisations (a population of twins
      starts from its originals); used only when no checkpoint exists yet.
    links: extra entries for ``metadata.json`` (a twin run records its
      original there).

  Returns:
    The member table with each member's final metrics (also written to
    ``workdir/members.csv``).
  """
  validate_config(config)
  os.makedirs(workdir, exist_ok=True)
  num_epochs = config.training.num_epochs
  manager = checkpoints.checkpoint_manager(workdir, config.checkpoint.max_to_keep)
  metrics_path = os.path.join(workdir, metrics.METRICS_FILE)
  start_epoch = manager.latest_step() or 0
  if start_epoch >= num_epochs and os.path.exists(metrics_path):
    # A finished run: report without loading data or compiling anything.
    manager.close()
    table = pd.DataFrame(checkpoints.read_metadata(workdir)["members"])
    print(f"Already trained for {start_epoch} epochs; nothing to do.", flush=True)
    return _report(workdir, table, start_epoch)
  dataset = dataset or dataset_from_config(config)
  if config.training.batch_size > len(dataset.train_labels):
    raise UserError(f"config.training.batch_size={config.training.batch_size} is larger than "
                    f"the {len(dataset.train_labels)} training examples; use a smaller batch")

  model = models.get_model(config.model.name, dataset.input_shape, dataset.num_classes,
                           config.model.conv_implementation, config.model.width)
  steps_per_epoch = len(dataset.train_labels) // config.training.batch_size
  method = sparsify.get_method(config.sparsify, sparsify.TrainingSchedule(
      steps_per_epoch, num_examples=len(dataset.train_labels),
      num_steps=num_epochs * steps_per_epoch))
  table = population.member_table(config.population.grid, config.population.num_seeds,
                                  config.population.first_seed)
  if method.copies > 1:
    table = population.with_copies(table, method.copies)
  hyper = population.member_hyperparameters(table)
  checkpoints.write_metadata(workdir, config, dataset.input_shape, dataset.num_classes, table,
                             links)
  writer = metrics.MetricsWriter(workdir, config.logging.tensorboard)

  if start_epoch:
    abstract = jax.eval_shape(engine.init_population, model, method, hyper)
    state = checkpoints.restore_population(manager, abstract, start_epoch)
    print(f"Resuming from the checkpoint of epoch {start_epoch} in {workdir}.", flush=True)
  else:
    state = engine.init_population(model, method, hyper, *(initial_variables or ()))
    if method.between_epochs is not None:
      state = method.between_epochs(state, hyper, 0)
  writer.truncate_after(start_epoch)

  print(f"jaxsparse: {len(table)} members of {model.name} on {dataset.name} "
        f"({len(dataset.train_labels)} train / {len(dataset.validation_labels)} validation / "
        f"{len(dataset.test_labels)} test), {num_epochs} epochs of batch "
        f"{config.training.batch_size}, on {jax.default_backend()} "
        f"({jax.device_count()} device(s)).", flush=True)

  splits = {name: (jnp.asarray(images), jnp.asarray(labels)) for name, images, labels in (
      ("train", dataset.train_images, dataset.train_labels),
      ("validation", dataset.validation_images, dataset.validation_labels),
      ("test", dataset.test_images, dataset.test_labels))}
  chunk_size = config.population.chunk_size
  progress = tqdm(total=num_epochs, initial=start_epoch, unit="epoch", desc="zoo",
                  disable=not config.logging.progress_bar)
  try:
    for epoch in range(start_epoch + 1, num_epochs + 1):
      started = time.time()
      state, epoch_metrics = engine.train_epoch(
          model, method, state, hyper, *splits["train"], (epoch - 1) * steps_per_epoch,
          batch_size=config.training.batch_size, chunk_size=chunk_size)
      if method.between_epochs is not None:
        state = method.between_epochs(state, hyper, epoch)
      epoch_metrics["achieved_sparsity"] = jax.vmap(masks.sparsity)(state.masks)
      for split in ("validation", "test"):
        evaluation = engine.evaluate(model, method, state, hyper, *splits[split],
                                     batch_size=config.training.eval_batch_size,
                                     chunk_size=chunk_size)
        epoch_metrics[f"{split}_accuracy"] = evaluation["accuracy"]
        epoch_metrics[f"{split}_loss"] = evaluation["loss"]
      epoch_metrics = jax.device_get(epoch_metrics)
      epoch_metrics["epoch_seconds"] = np.full(len(table), time.time() - started)
      writer.write_epoch(epoch, epoch_metrics)
      checkpoints.save_population(manager, epoch, state)
      if on_epoch_end is not None:
        on_epoch_end(epoch, state)
      progress.update(1)
      progress.set_postfix(
          validation_accuracy=f"{np.mean(epoch_metrics['validation_accuracy']):.4f}",
          train_loss=f"{np.mean(epoch_metrics['train_loss']):.4f}")
  finally:
    progress.close()
    writer.close()
    manager.close()

  return _report(workdir, table, num_epochs)


def _report(workdir: str, table: pd.DataFrame, num_epochs: int) -> pd.DataFrame:
  """Writes ``members.csv`` and prints the population summary; returns the members."""
  members = metrics.final_member_table(table, os.path.join(workdir, metrics.METRICS_FILE))
  members.to_csv(os.path.join(workdir, metrics.MEMBERS_FILE), index=False)
  print(f"Population after epoch {num_epochs} ({len(members)} members):\n"
        f"{metrics.population_summary(members)}\n"
        f"Written to {workdir}: checkpoints/, metadata.json, metrics.jsonl, members.csv, "
        f"tensorboard/.", flush=True)
  return members
