"""Per-member metrics of a run: JSON lines, CSV, TensorBoard and a console summary.

``metrics.jsonl`` has one row per (epoch, member). On resume the rows of
epochs after the restored checkpoint are dropped, so a run interrupted
between writing metrics and writing its checkpoint leaves no duplicate rows.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import jax
import numpy as np
import pandas as pd

from jaxsparse import masks
from jaxsparse.workdir import METRICS_FILE, PREDICTIONS_FILE, TENSORBOARD_DIR

SUMMARY_METRICS = ("train_loss", "validation_accuracy", "test_accuracy", "achieved_sparsity")


class MetricsWriter:
  """Appends each epoch's per-member metrics to ``metrics.jsonl`` and TensorBoard."""

  def __init__(self, workdir: str, tensorboard: bool = True):
    self.path = os.path.join(workdir, METRICS_FILE)
    self._summary_writer = None
    if tensorboard:
      from tensorboardX import SummaryWriter  # local: optional output, slow import
      self._summary_writer = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))

  def truncate_after(self, epoch: int) -> None:
    """Drops the rows of epochs later than ``epoch`` (those not in the checkpoint)."""
    if not os.path.exists(self.path):
      return
    rows = [row for row in read_metrics(self.path) if row["epoch"] <= epoch]
    with open(self.path + ".tmp", "w") as file:
      file.writelines(json.dumps(row) + "\n" for row in rows)
    os.replace(self.path + ".tmp", self.path)

  def write_epoch(self, epoch: int, metrics: Mapping[str, np.ndarray]) -> None:
    """Writes one row per member; ``metrics`` maps a name to a [P] array."""
    metrics = {name: np.asarray(values, np.float64) for name, values in metrics.items()}
    num_members = len(next(iter(metrics.values())))
    with open(self.path, "a") as file:
      for index in range(num_members):
        row = {"epoch": epoch, "member": index}
        row.update({name: float(values[index]) for name, values in metrics.items()})
        file.write(json.dumps(row) + "\n")
    if self._summary_writer is not None:
      for name, values in metrics.items():
        values = values[np.isfinite(values)]  # a diverged member's loss is NaN or inf
        if not len(values):
          continue
        self._summary_writer.add_scalar(f"population_mean/{name}", values.mean(), epoch)
        self._summary_writer.add_scalar(f"population_min/{name}", values.min(), epoch)
        self._summary_writer.add_scalar(f"population_max/{name}", values.max(), epoch)
        self._summary_writer.add_histogram(f"members/{name}", values, epoch)
      self._summary_writer.flush()

  def close(self) -> None:
    """Flushes and closes TensorBoard's event file."""
    if self._summary_writer is not None:
      self._summary_writer.close()


def read_metrics(path: str) -> list[dict]:
  """The rows of a ``metrics.jsonl`` file."""
  with open(path) as file:
    return [json.loads(line) for line in file if line.strip()]


def final_member_table(table: pd.DataFrame, metrics_path: str) -> pd.DataFrame:
  """The member table joined with each member's metrics of the last epoch."""
  rows = pd.DataFrame(read_metrics(metrics_path))
  last = rows[rows["epoch"] == rows["epoch"].max()].drop(columns="epoch")
  return table.merge(last, on="member", how="left")


def population_summary(members: pd.DataFrame) -> str:
  """A few lines: mean / std / min / max over members of the summary metrics.

  Diverged members (see :func:`jaxsparse.engine.train_member_epoch`) are left
  out of these statistics.
  """
  if "diverged" in members:
    members = members[~members["diverged"].astype(bool)]
  lines = [f"{'metric':<22}{'mean':>9}{'std':>9}{'min':>9}{'max':>9}"]
  for name in SUMMARY_METRICS:
    if name in members:
      values = members[name].to_numpy(np.float64)
      lines.append(f"{name:<22}{values.mean():>9.4f}{values.std():>9.4f}"
                   f"{values.min():>9.4f}{values.max():>9.4f}")
  return "\n".join(lines)


def write_predictions(workdir: str, record: Mapping[str, np.ndarray]) -> None:
  """Writes a run's final test-set record (predictions [P, N], labels, accuracy, sparsity
  overall and per layer, diverged) to ``predictions.npz``, atomically."""
  path = os.path.join(workdir, PREDICTIONS_FILE)
  with open(path + ".tmp", "wb") as file:
    np.savez(file, **record)
  os.replace(path + ".tmp", path)


def read_predictions(workdir: str) -> dict[str, np.ndarray] | None:
  """The record of :func:`write_predictions`, or None if the run has none yet."""
  path = os.path.join(workdir, PREDICTIONS_FILE)
  if not os.path.exists(path):
    return None
  with np.load(path) as cached:
    return dict(cached)


def prediction_record(member_masks, diverged, evaluation: dict,
                      labels: np.ndarray) -> dict[str, np.ndarray]:
  """What the report needs of a finished run (arrays with a member axis): test predictions,
  accuracy, sparsity overall and per layer, and which members diverged."""
  layer_sparsity = jax.vmap(masks.layer_sparsity)(member_masks)
  return {"predictions": np.asarray(evaluation["predictions"], np.int16),
          "labels": np.asarray(labels, np.int16),
          "accuracy": np.asarray(evaluation["accuracy"]),
          "sparsity": np.asarray(jax.vmap(masks.sparsity)(member_masks)),
          "diverged": np.asarray(diverged),
          **{f"layer/{name}": np.asarray(value) for name, value in layer_sparsity.items()}}
