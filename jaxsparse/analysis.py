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
  """Mean, standard deviation, min, max and :data:`QUANTILES` of values across members
  (all NaN when there are none, e.g. every member diverged)."""
  values = np.asarray(values, np.float64)
  if not values.size:
    return {name: float("nan") for name in
            ("mean", "std", "min", "max", *(f"q{round(q * 100)}" for q in QUANTILES))}
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


def cohen_kappa(original: np.ndarray, twin: np.ndarray) -> np.ndarray:
  """Per member, Cohen's kappa of twin and original predictions: agreement beyond chance.

  kappa = (p_o - p_e) / (1 - p_e), with p_o the agreement and p_e the
  agreement expected if the two predicted independently with their own class
  frequencies. 1: identical; 0: no better than chance (raw agreement of 0.15
  between two 10-class predictors can be chance); NaN when both predict one
  and the same class everywhere (p_e = 1).

  Args:
    original, twin: predicted classes [members, inputs] (or [inputs]).
  """
  original, twin = np.atleast_2d(original), np.atleast_2d(twin)
  if original.size == 0:  # no members (all diverged) or no inputs
    return np.full(original.shape[0], np.nan)
  classes = int(max(original.max(), twin.max())) + 1
  observed = agreement(original, twin)
  frequencies = lambda p: np.stack([np.bincount(row, minlength=classes) for row in p]) / p.shape[-1]
  expected = np.sum(frequencies(original) * frequencies(twin), axis=-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(expected < 1, (observed - expected) / (1 - expected), np.nan)


def _interval_of_mean(values: np.ndarray, interval) -> tuple[float, float]:
  """``interval(finite values)`` with the NaNs dropped; (NaN, NaN) with fewer than 2 values;
  a sample with no spread gives its value as both ends."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  if len(values) < 2:
    return float("nan"), float("nan")
  if np.ptp(values) == 0:
    return float(values[0]), float(values[0])
  low, high = interval(values)
  return float(low), float(high)


def mean_interval(values: np.ndarray, confidence: float = 0.95, seed: int = 0,
                  num_resamples: int = 9_999) -> tuple[float, float]:
  """A bootstrap confidence interval of the mean of ``values`` (one per member; NaNs dropped).

  The percentile bootstrap of :func:`scipy.stats.bootstrap` with a fixed seed, so a
  report is reproducible. (NaN, NaN) with fewer than 2 values; a sample with no
  spread gives its value as both ends.
  """
  from scipy import stats

  def bootstrap(sample):
    result = stats.bootstrap((sample,), np.mean, confidence_level=confidence,
                             method="percentile", n_resamples=num_resamples,
                             random_state=np.random.default_rng(seed))
    return result.confidence_interval.low, result.confidence_interval.high
  return _interval_of_mean(values, bootstrap)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
  """Student's t confidence interval of the mean of ``values`` (NaNs dropped), the interval
  for a handful of seeds (the bootstrap needs more); (NaN, NaN) with fewer than 2 values."""
  from scipy import stats
  return _interval_of_mean(values, lambda sample: stats.t.interval(
      confidence, len(sample) - 1, loc=sample.mean(), scale=stats.sem(sample)))


def group_means(frame: pd.DataFrame, by: list[str], column: str = "test_accuracy",
                confidence: float = 0.95, also: tuple[str, ...] = ()) -> pd.DataFrame:
  """One row per group of ``frame`` by the columns ``by`` (in order of appearance): the mean
  of ``column``, its Student's t interval (``low``, ``high``; see :func:`t_interval`), the
  group's size (``seeds``) and the means of the columns ``also``."""
  rows = []
  for keys, group in frame.groupby(by, sort=False):
    low, high = t_interval(group[column], confidence)
    rows.append({**dict(zip(by, keys)), column: group[column].mean(), "low": low,
                 "high": high, "seeds": len(group),
                 **{name: group[name].mean() for name in also}})
  return pd.DataFrame(rows)


def pearson_interval(x: np.ndarray, y: np.ndarray,
                     confidence: float = 0.95) -> tuple[float, float]:
  """The confidence interval of Pearson's r from Fisher's z transform (scipy); NaNs with
  fewer than 4 members or without variance."""
  from scipy import stats
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return float("nan"), float("nan")
  interval = stats.pearsonr(x, y).confidence_interval(confidence)
  return float(interval.low), float(interval.high)


def paired_differences(curve_sparsity: np.ndarray, curve_accuracy: np.ndarray,
                       sparsity: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
  """Per member, its own curve's accuracy at another twin's sparsity, minus that twin's.

  For a paired comparison of two methods: member i's twins under the first
  method (a curve: accuracy at several sparsities) are linearly interpolated
  at the sparsity its twin under the second method reached. NaN where that
  sparsity lies outside member i's curve (no extrapolation).

  Args:
    curve_sparsity, curve_accuracy: [levels, members], the first method.
    sparsity, accuracy: [members], the second method's twins.

  Returns:
    [members]: interpolated first-method accuracy minus second-method accuracy
    (positive: the first method is ahead at that sparsity).
  """
  curve_sparsity, curve_accuracy = np.asarray(curve_sparsity), np.asarray(curve_accuracy)
  differences = np.full(len(sparsity), np.nan)
  for member, (at, own) in enumerate(zip(sparsity, accuracy)):
    order = np.argsort(curve_sparsity[:, member])
    xs, ys = curve_sparsity[order, member], curve_accuracy[order, member]
    if xs[0] <= at <= xs[-1]:
      differences[member] = np.interp(at, xs, ys) - own
  return differences
