"""Tidy tables of finished runs and studies: one pandas row per (run, member).

``load_study(workdir)`` is the analysis entry point: for a twins study it
holds the originals and every twin population, for a plain training run its
members. Columns:

- ``run`` ('original', the twin population's directory such as
  'magnitude_global', or the run directory's name), ``method``, ``scope``
  (None for methods without one), ``member`` (index in its run) and
  ``original_member`` (the original it derives from; itself for originals);
- the member table's hyperparameters (``seed``, ``activation``,
  ``learning_rate``, ..., and method settings such as ``kl_weight``);
- ``target_sparsity`` (the member's target; NaN for methods whose sparsity is
  an outcome, such as variational dropout) and ``achieved_sparsity``;
- ``level_field`` and ``level`` (what a twins-study level set, e.g.
  'target_sparsity' 0.9 or 'kl_weight' 750; NaN for originals);
- the final metrics (``test_accuracy``, ``validation_accuracy``,
  ``train_loss``, ...), ``diverged``;
- ``layer_sparsity/<layer>`` for every prunable layer (from ``predictions.npz``);
- for twins: ``original_test_accuracy``, ``original_diverged``, ``accuracy_drop``
  (original - twin), ``agreement`` and ``cohen_kappa`` with the original's test
  predictions.

Example (twin against original accuracy, coloured by activation)::

  rows = tables.load_study("runs/default")
  twins = rows[rows.run != "original"]
  twins.plot.scatter("original_test_accuracy", "test_accuracy", c=twins.activation.astype("category").cat.codes)
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import pandas as pd

from jaxsparse import analysis, build, metrics, sparsify
from jaxsparse.errors import UserError
from jaxsparse.workdir import (MEMBERS_FILE, METADATA_FILE, METRICS_FILE, ORIGINAL_DIR,
                               study_original_dir,
                               TWINS_DIR, read_metadata)


def run_rows(name: str, method: str, scope: str | None, table: pd.DataFrame,
             record: dict | None = None) -> pd.DataFrame:
  """The rows of one run from its member table and its prediction record
  (:func:`jaxsparse.metrics.prediction_record`: test accuracy, achieved sparsity overall
  and per layer, divergence), without reading files."""
  rows = table.reset_index(drop=True).rename(columns={"sparsity": "target_sparsity"})
  if "target_sparsity" in rows and not sparsify.declaration(method).uses_target_sparsity:
    rows["target_sparsity"] = np.nan
  rows.insert(0, "run", name)
  rows.insert(1, "method", method)
  rows.insert(2, "scope", scope)
  rows.insert(4, "original_member", rows["member"])
  if record is not None:
    members = rows["member"].to_numpy()
    rows["test_accuracy"] = record["accuracy"][members]
    rows["achieved_sparsity"] = record["sparsity"][members]
    rows["diverged"] = np.asarray(record.get("diverged", np.zeros(len(record["accuracy"]))),
                                  bool)[members]
    for key in sorted(key for key in record if key.startswith("layer/")):
      rows["layer_sparsity/" + key[len("layer/"):].replace("/kernel", "")] = record[key][members]
  return rows


def with_twin_columns(rows: pd.DataFrame, original: pd.DataFrame,
                      original_record: dict | None, twin_record: dict | None) -> pd.DataFrame:
  """A twin population's rows with their level and their comparison with the originals
  (twin ``k * P + i`` derives from original ``i``)."""
  rows = rows.copy()
  rows["original_member"] = rows["member"] % len(original)
  setting = sparsify.declaration(rows["method"].iloc[0]).twin_level.setting
  level_field = "target_sparsity" if setting == "sparsity" else setting
  rows["level_field"], rows["level"] = level_field, rows[level_field]
  originals = original.set_index("member").loc[rows["original_member"]]
  rows["original_test_accuracy"] = originals["test_accuracy"].to_numpy()
  if "diverged" in originals:
    rows["original_diverged"] = originals["diverged"].to_numpy(bool)
  rows["accuracy_drop"] = rows["original_test_accuracy"] - rows["test_accuracy"]
  if original_record is not None and twin_record is not None:
    original_predictions = original_record["predictions"][rows["original_member"]]
    twin_predictions = twin_record["predictions"][rows["member"]]
    rows["agreement"] = analysis.agreement(original_predictions, twin_predictions)
    rows["cohen_kappa"] = analysis.cohen_kappa(original_predictions, twin_predictions)
  return rows


def study_table(table: pd.DataFrame, original_record: dict, twins: list) -> pd.DataFrame:
  """:func:`load_study`'s table from a study's records in memory (what the report has):
  the originals' member ``table`` and record, and per twin population its
  :class:`jaxsparse.twins.TwinRun` and record (all levels; its table is the originals'
  repeated per level, with the level's setting)."""
  original = run_rows(ORIGINAL_DIR, "none", None, table, original_record)
  frames = [original.assign(level_field=None, level=np.nan)]
  for run, record, *_ in twins:
    setting = sparsify.declaration(run.method).twin_level.setting
    twin_table = pd.concat([table.assign(**{setting: level}) for level in run.levels],
                           ignore_index=True).assign(member=lambda rows: rows.index)
    rows = run_rows(os.path.basename(run.workdir), run.method, run.scope, twin_table, record)
    frames.append(with_twin_columns(rows, original, original_record, record))
  return pd.concat(frames, ignore_index=True)


def load_run(workdir: str, name: str | None = None,
             allow_modules: Iterable[str] = ()) -> pd.DataFrame:
  """One row per member of the training run in ``workdir`` (columns as for
  :func:`load_study`, without the twin columns) with its final metrics; ``name`` fills
  ``run`` (default: the directory's name); ``allow_modules``: see :func:`load_study`."""
  metadata = read_metadata(workdir)
  build.import_recorded_methods(metadata, os.path.join(workdir, METADATA_FILE),
                                     allow_modules)
  settings = metadata["config"]["sparsify"]
  method = settings["method"]
  scope = settings.get("scope") if "scope" in sparsify.declaration(method).fields else None
  rows = run_rows(name or os.path.basename(os.path.normpath(workdir)), method, scope,
                  pd.DataFrame(metadata["members"]), metrics.read_predictions(workdir))
  final = _final_metrics(workdir, len(rows))
  final = final[["member"] + [column for column in final
                             if column not in rows and column != "sparsity"]]
  rows = rows.merge(final, on="member", how="left")
  if "diverged" in rows:
    rows["diverged"] = rows["diverged"].fillna(0).astype(bool)
  return rows


def _final_metrics(workdir: str, num_members: int) -> pd.DataFrame:
  """members.csv of a finished run, else the metrics of the last epoch every member has."""
  members_path = os.path.join(workdir, MEMBERS_FILE)
  if os.path.exists(members_path):
    try:
      members = pd.read_csv(members_path)
    except (OSError, ValueError, pd.errors.ParserError) as error:  # EmptyDataError too
      members, problem = None, f"{type(error).__name__}: {error}".splitlines()[0]
    else:
      problem = (None if "member" in members and len(members) == num_members and
                 (members["member"].to_numpy() == np.arange(num_members)).all() else
                 f"it lists {len(members)} rows for {num_members} members")
    if problem is not None:
      raise UserError(f"{members_path} is unreadable or incomplete ({problem}); delete it and "
                      "run the training command again, which rewrites it from the run's metrics")
    return members
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(workdir, METRICS_FILE)))
  if rows.empty:
    raise UserError(f"{workdir} has no metrics yet; train the run first")
  complete = rows.groupby("epoch")["member"].nunique()
  if not (complete == num_members).any():
    raise UserError(f"{workdir} has no epoch with metrics of all {num_members} members yet; "
                    "train the run further")
  last = rows[rows["epoch"] == complete[complete == num_members].index.max()]
  return last.drop_duplicates("member", keep="last")


def load_study(workdir: str, allow_modules: Iterable[str] = ()) -> pd.DataFrame:
  """One row per (run, member) of a twins study (the originals, then every twin
  population), or per member of a plain run; see the module's docstring.

  A method from a module that is not imported yet (not a built-in one) is read
  only if ``allow_modules`` names its module: a study on disk is data, and
  loading it runs no code it names (docs/bad_inputs.md).
  """
  original_dir = study_original_dir(workdir)
  if original_dir is None:
    return load_run(workdir, allow_modules=allow_modules)
  original = load_run(original_dir, ORIGINAL_DIR, allow_modules)
  original_record = metrics.read_predictions(original_dir)
  twins_dir = os.path.join(workdir, TWINS_DIR)
  names = sorted(name for name in os.listdir(twins_dir)
                 if os.path.exists(os.path.join(twins_dir, name, METADATA_FILE))) \
      if os.path.isdir(twins_dir) else []
  frames = [original.assign(level_field=None, level=np.nan)]
  for name in names:
    run_dir = os.path.join(twins_dir, name)
    frames.append(with_twin_columns(load_run(run_dir, name, allow_modules), original,
                                    original_record,
                                    metrics.read_predictions(run_dir)))
  return pd.concat(frames, ignore_index=True)


def load_trajectories(workdir: str, allow_modules: Iterable[str] = ()) -> pd.DataFrame:
  """One row per (twin population, twin, evaluated epoch) of a twins study, as the public
  model-zoo dataset stores its trajectories: ``run``, ``method``, ``scope``, ``member``,
  ``original_member``, ``level_field``, ``level``, ``epoch`` (0: before fine-tuning, with
  ``twins.evaluate_at_start``) and the metrics logged then (``test_accuracy``,
  ``achieved_sparsity``, ``agreement`` with the original, ``diverged``, ...). Epochs
  without an evaluation (``twins.evaluate_every``) have NaN accuracies."""
  twins_dir = os.path.join(workdir, TWINS_DIR)
  names = sorted(name for name in os.listdir(twins_dir)
                 if os.path.exists(os.path.join(twins_dir, name, METADATA_FILE))) \
      if os.path.isdir(twins_dir) else []
  frames = []
  for name in names:
    run_dir = os.path.join(twins_dir, name)
    members = load_run(run_dir, name, allow_modules)
    setting = sparsify.declaration(members["method"].iloc[0]).twin_level.setting
    level_field = "target_sparsity" if setting == "sparsity" else setting
    rows = pd.DataFrame(metrics.read_metrics(os.path.join(run_dir, METRICS_FILE)))
    if rows.empty:
      continue
    keys = members[["member", "run", "method", "scope", level_field]].rename(
        columns={level_field: "level"}).assign(level_field=level_field)
    rows = keys.merge(rows, on="member").sort_values(["epoch", "member"])
    rows.insert(4, "original_member", rows["member"] % (len(members) // rows["level"].nunique()))
    frames.append(rows)
  if not frames:
    raise UserError(f"{workdir} holds no twin runs with metrics; give a twins study's --workdir")
  return pd.concat(frames, ignore_index=True)
