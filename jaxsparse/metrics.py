"""Per-member metrics of a run: JSON lines, CSV, TensorBoard and a console summary.

TensorBoard (``tensorboard/`` of a run: one TensorBoard run per population)
holds every scalar on one axis, the global optimizer step, so that an epoch's
values sit at the step where it ended (epoch 0, before training, at step 0):
every member's metrics as ``members/<metric>/<name>``, where the name is the
member's hyperparameters that vary across the population (e.g.
``activation-tanh/initializer-uniform/seed-1``: a tag allows no '=' or ',';
overlaid in one chart per metric on the Custom Scalars tab), the
population's mean, min and max
(``population/<metric>/mean``) and a histogram; the training loss about 20
times per epoch (``members/train_loss_steps/<name>``); and at the end one
HParams session per member under ``tensorboard/hparams/<name>`` (its row of
the member table, for a twin its original member, method, scope and level,
and its final metrics; the run's name is ``activation=tanh,initializer=uniform,seed=1``),
for the HParams tab.

``metrics.jsonl`` has one row per (epoch, member). The checkpoint is the
truth: on resume the rows of epochs after the restored checkpoint are
dropped (a run interrupted between writing metrics and writing its
checkpoint), a partial last line (a disk that filled during the append) is
dropped, and a repeated (epoch, member) row keeps its last value; missing
rows of the checkpoint's epoch are recomputed by :mod:`jaxsparse.train`.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Mapping

import jax
import numpy as np
import pandas as pd

from jaxsparse import masks
from jaxsparse.workdir import (METRICS_FILE, PREDICTIONS_FILE, TENSORBOARD_DIR, read_metadata,
                               run_fingerprint)

SUMMARY_METRICS = ("train_loss", "validation_accuracy", "test_accuracy", "achieved_sparsity")
#: Member-table columns that never name a member (indices, not hyperparameters).
_UNNAMED = ("member", "configuration")


def member_names(table: pd.DataFrame) -> list[str]:
  """Each member's name in TensorBoard: the hyperparameters that vary across the population,
  e.g. ``activation=tanh,initializer=uniform,seed=1`` (its index when none varies, or to
  tell identical rows apart)."""
  varying = [column for column in table.columns
             if column not in _UNNAMED and table[column].nunique(dropna=False) > 1]
  names = [",".join(f"{column}={_short(row[column])}" for column in varying)
           for _, row in table.iterrows()]
  if not varying or len(set(names)) < len(names):
    names = [f"{name},member={index}" if name else f"member={index}"
             for index, name in enumerate(names)]
  return names


def tag_name(name: str) -> str:
  """A member's name as a TensorBoard tag allows it (no '=' or ','):
  ``activation=tanh,seed=1`` -> ``activation-tanh/seed-1``."""
  return name.replace(",", "/").replace("=", "-")


def _short(value) -> str:
  return f"{value:g}" if isinstance(value, float) else str(value)


class MetricsWriter:
  """Appends each epoch's per-member metrics to ``metrics.jsonl`` and, with ``table`` and
  ``steps_per_epoch`` (the members and the steps of an epoch: TensorBoard's step axis), to
  TensorBoard."""

  def __init__(self, workdir: str, tensorboard: bool = True, table: pd.DataFrame | None = None,
               steps_per_epoch: int = 1, hparams: Mapping[str, list] | None = None):
    self.workdir = workdir
    self._extra_hparams = dict(hparams or {})
    self.path = os.path.join(workdir, METRICS_FILE)
    self._summary_writer = None
    self._layout_written = False
    self._steps_per_epoch = max(steps_per_epoch, 1)
    self._names = member_names(table) if table is not None else []
    if tensorboard:
      from tensorboardX import SummaryWriter  # local: optional output, slow import
      self._summary_writer = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))

  def truncate_after(self, epoch: int) -> None:
    """Keeps the well-formed rows of epochs up to ``epoch`` (those in the checkpoint), one
    per (epoch, member), and drops everything else."""
    if not os.path.exists(self.path):
      return
    rows = {(row["epoch"], row["member"]): row for row in read_metrics(self.path)
            if row["epoch"] <= epoch}
    rows = [rows[key] for key in sorted(rows)]
    with open(self.path + ".tmp", "w") as file:
      file.writelines(json.dumps(row) + "\n" for row in rows)
    os.replace(self.path + ".tmp", self.path)

  def write_epoch(self, epoch: int, metrics: Mapping[str, np.ndarray]) -> None:
    """Writes one row per member; ``metrics`` maps a name to a [P] array. TensorBoard gets
    them at the step where the epoch ended."""
    metrics = {name: np.asarray(values, np.float64) for name, values in metrics.items()}
    num_members = len(next(iter(metrics.values())))
    with open(self.path, "a") as file:
      for index in range(num_members):
        row = {"epoch": epoch, "member": index}
        row.update({name: float(values[index]) for name, values in metrics.items()})
        file.write(json.dumps(row) + "\n")
    if self._summary_writer is None:
      return
    if not self._layout_written:
      self._write_layout(metrics)
    step = epoch * self._steps_per_epoch
    for name, values in metrics.items():
      self._write_population(name, values, step)
      finite = values[np.isfinite(values)]
      if finite.size:  # (a recomputed epoch's training loss is NaN for every member)
        self._summary_writer.add_histogram(f"population/{name}", finite, step)
    self._summary_writer.flush()

  def write_loss_curve(self, epoch: int, curve: np.ndarray) -> None:
    """Writes the training-loss curve of ``epoch`` ([P, points], window means as
    :func:`jaxsparse.engine.loss_curve` makes them) to TensorBoard, each point at the
    optimizer step where its window ends."""
    if self._summary_writer is None:
      return
    curve = np.asarray(curve, np.float64)
    window = self._steps_per_epoch // curve.shape[1]
    for point in range(curve.shape[1]):
      step = (epoch - 1) * self._steps_per_epoch + (point + 1) * window
      self._write_population("train_loss_steps", curve[:, point], step)
    self._summary_writer.flush()

  def write_hparams(self, table: pd.DataFrame, final: Mapping[str, np.ndarray],
                    epoch: int) -> None:
    """One TensorBoard HParams session per member under ``tensorboard/hparams/<name>``: its
    row of the member table with the writer's ``hparams`` columns (a twin's original
    member, method, scope and level) and its final metrics (``hparam/<metric>``)."""
    if self._summary_writer is None:
      return
    names = self._names or member_names(table)
    for index, row in enumerate(table.to_dict("records")):
      hparams = {key: value.item() if hasattr(value, "item") else value
                 for key, value in row.items() if key != "member"}
      hparams.update({key: values[index] for key, values in self._extra_hparams.items()})
      hparams = {key: "none" if value is None else value for key, value in hparams.items()}
      values = {f"hparam/{name}": float(np.asarray(final[name], np.float64)[index])
                for name in final}
      self._summary_writer.add_hparams(hparams, values, name=os.path.join("hparams",
                                                                          names[index]),
                                       global_step=epoch * self._steps_per_epoch)

  def _write_population(self, name: str, values: np.ndarray, step: int) -> None:
    """Every member's value and the population's mean / min / max of metric ``name``;
    a diverged member's NaN or inf is left out."""
    finite = np.isfinite(values)
    names = self._names or [f"member={index}" for index in range(len(values))]
    for index in np.flatnonzero(finite):
      self._summary_writer.add_scalar(f"members/{name}/{tag_name(names[index])}",
                                      values[index], step)
    if finite.any():
      for statistic in ("mean", "min", "max"):
        self._summary_writer.add_scalar(f"population/{name}/{statistic}",
                                        getattr(values[finite], statistic)(), step)

  def _write_layout(self, metrics: Mapping[str, np.ndarray]) -> None:
    """The Custom Scalars layout: one chart per metric with every member's curve."""
    charts = {name: ["Multiline", [f"^members/{name}/"]]
              for name in (*metrics, "train_loss_steps")}
    self._summary_writer.add_custom_scalars({"members": charts})
    self._layout_written = True

  def close(self) -> None:
    """Flushes and closes TensorBoard's event file."""
    if self._summary_writer is not None:
      self._summary_writer.close()

  def __enter__(self) -> "MetricsWriter":
    return self

  def __exit__(self, *exception) -> None:
    self.close()


def read_metrics(path: str) -> list[dict]:
  """The well-formed rows of a ``metrics.jsonl`` file (none if it is missing); a line that
  is not a JSON object with an epoch and a member (a partial write) is skipped."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path, errors="replace") as file:
    for line in file:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(row, dict) and isinstance(row.get("epoch"), int) \
          and isinstance(row.get("member"), int):
        rows.append(row)
  return rows


def epoch_rows(path: str, epoch: int) -> dict[int, dict]:
  """The rows of ``epoch`` in a ``metrics.jsonl`` file, by member (the last of repeats)."""
  return {row["member"]: row for row in read_metrics(path) if row["epoch"] == epoch}


def final_member_table(table: pd.DataFrame, metrics_path: str, epoch: int) -> pd.DataFrame:
  """The member table joined with each member's metrics of ``epoch`` (the run's last
  checkpoint, whatever rows the file holds beyond it)."""
  rows = pd.DataFrame(list(epoch_rows(metrics_path, epoch).values()))
  if rows.empty:
    return table.assign(epoch=epoch)
  return table.merge(rows.drop(columns="epoch"), on="member", how="left")


def population_summary(members: pd.DataFrame) -> str:
  """A few lines: mean / std / min / max over members of the summary metrics.

  Diverged members (see :func:`jaxsparse.engine.train_member_epoch`) are left
  out of these statistics.
  """
  if "diverged" in members:
    members = members[~members["diverged"].astype(bool)]
  if members.empty:
    return "(no statistics: every member diverged)"
  lines = [f"{'metric':<22}{'mean':>9}{'std':>9}{'min':>9}{'max':>9}"]
  for name in SUMMARY_METRICS:
    if name in members:
      values = members[name].to_numpy(np.float64)
      lines.append(f"{name:<22}{values.mean():>9.4f}{values.std():>9.4f}"
                   f"{values.min():>9.4f}{values.max():>9.4f}")
  return "\n".join(lines)


def write_predictions(workdir: str, record: Mapping[str, np.ndarray]) -> None:
  """Writes a run's final test-set record (predictions [P, N], labels, accuracy, sparsity
  overall and per layer, diverged) to ``predictions.npz``, atomically, tied to the run
  by its fingerprint (see :func:`jaxsparse.workdir.run_fingerprint`)."""
  path = os.path.join(workdir, PREDICTIONS_FILE)
  fingerprint = run_fingerprint(read_metadata(workdir))
  with open(path + ".tmp", "wb") as file:
    np.savez(file, **record, run_fingerprint=np.array(fingerprint))
  os.replace(path + ".tmp", path)


def read_predictions(workdir: str) -> dict[str, np.ndarray] | None:
  """The record of :func:`write_predictions`, or None if the run has none that can be
  trusted: missing, unreadable, or written for another run (a copied file) or an earlier
  config of this one."""
  path = os.path.join(workdir, PREDICTIONS_FILE)
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as cached:
      record = dict(cached)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile):
    return None
  fingerprint = record.pop("run_fingerprint", None)
  if fingerprint is None or str(fingerprint) != run_fingerprint(read_metadata(workdir)):
    return None
  return record


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
