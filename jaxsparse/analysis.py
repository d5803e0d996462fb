"""Comparing populations of twins with their originals: agreement, correlation, effects.

Pure functions of predictions, accuracies and member tables (NumPy /
pandas), used by :mod:`jaxsparse.twins` to write the study's report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Quantiles reported for accuracy distributions across members.
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def agreement(original: np.ndarray, twin: np.ndarray) -> np.ndarray:
  """Per member, the fraction of inputs on which both predict the same class.

  Args:
    original, twin: predicted classes [members, inputs].
  """
  return np.mean(np.asarray(original) == np.asarray(twin), axis=-1)


def agreement_where_correct(original: np.ndarray, twin: np.ndarray,
                            labels: np.ndarray) -> np.ndarray:
  """Per member, agreement restricted to the inputs the original classifies correctly
  (NaN for a member that gets none right)."""
  original, twin, labels = map(np.asarray, (original, twin, labels))
  correct = original == labels
  same = (original == twin) & correct
  with np.errstate(invalid="ignore", divide="ignore"):
    return same.sum(-1) / correct.sum(-1)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
  """Pearson's r (NaN when either has no variance or fewer than 2 members)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if len(x) < 2:
    return float("nan")
  dx, dy = x - x.mean(), y - y.mean()
  denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
  return float(np.sum(dx * dy) / denominator) if denominator > 0 else float("nan")


def ranks(x: np.ndarray) -> np.ndarray:
  """Ranks from 1, ties sharing their average rank (as Spearman's rho needs)."""
  return pd.Series(np.asarray(x, np.float64)).rank(method="average").to_numpy()


def spearman(x: np.ndarray, y: np.ndarray) -> float:
  """Spearman's rho: Pearson's r of the ranks."""
  return pearson(ranks(x), ranks(y))


def distribution(values: np.ndarray) -> dict[str, float]:
  """Mean, standard deviation, min, max and :data:`QUANTILES` of values across members."""
  values = np.asarray(values, np.float64)
  summary = {"mean": float(values.mean()), "std": float(values.std()),
             "min": float(values.min()), "max": float(values.max())}
  summary.update({f"q{round(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES})
  return summary


def hyperparameter_effects(table: pd.DataFrame, drop: np.ndarray,
                           fields: list[str]) -> pd.DataFrame:
  """How much each grid field's value shifts the accuracy drop (original - twin).

  For every field that takes more than one value: the mean drop per value,
  and the field's ``spread`` (largest minus smallest of those means). Sorted
  by spread, so the first field is the one that predicts a large drop best.
  """
  rows = []
  frame = table.assign(drop=np.asarray(drop))
  for field in fields:
    if field not in frame or frame[field].nunique() < 2:
      continue
    means = frame.groupby(field)["drop"].mean()
    rows.append({"field": field, "spread": float(means.max() - means.min()),
                 "largest_drop_at": str(means.idxmax()), "mean_drop_there": float(means.max()),
                 "smallest_drop_at": str(means.idxmin()), "mean_drop_there_min": float(means.min())})
  columns = ["field", "spread", "largest_drop_at", "mean_drop_there", "smallest_drop_at",
             "mean_drop_there_min"]
  return pd.DataFrame(rows, columns=columns).sort_values("spread", ascending=False,
                                                         ignore_index=True)
