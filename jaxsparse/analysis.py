"""Comparing populations of twins with their originals: agreement, correlation, effects,
and the statistics the claims are judged with.

Pure functions of predictions, accuracies and member tables (NumPy /
pandas / SciPy), used by :mod:`jaxsparse.claims` and the study's report.

Intervals state their unit and estimand (:class:`Estimate`). A zoo whose
members are seeds of one recipe has members as its unit. A grid zoo (several
configurations, several seeds each) has two estimands: configurations like
these (the unit is the grid cell: a t interval over the cells' means), or
these very cells (the unit is the member: a bootstrap that resamples seeds
within their cells). Resampling members as if independent does neither: it
under-covers the first and is too wide for the second.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

#: Where the paper puts the crossover of magnitude pruning and variational
#: dropout (Honegger et al. 2023; docs/twins.md): twins are compared below and above it.
CROSSOVER_SPARSITY = 0.8
#: This project's thresholds for the paper's claims (the paper gives none; docs/twins.md):
#: a robust method loses at most 2 accuracy points (the public VD twins' headline, about
#: 2 % at about 80 % sparsity); "high" agreement is Cohen's kappa of at least 0.8 (McHugh
#: 2012: strong); "highly correlated" is Pearson's r of at least 0.7.
ROBUST_DROP, HIGH_KAPPA, HIGH_CORRELATION = 0.02, 0.8, 0.7
#: Other drops the robustness verdicts are also given at (absolute), and a relative one:
#: at most this fraction of the original's accuracy.
ROBUST_DROP_SENSITIVITY = (0.01, 0.05)
ROBUST_RELATIVE_DROP = 0.02

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
  if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:  # (rounding would give 0, not nan)
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
                       sparsity: np.ndarray, accuracy: np.ndarray,
                       anchor_accuracy: np.ndarray | None = None) -> np.ndarray:
  """Per member, its own curve's accuracy at another twin's sparsity, minus that twin's.

  For a paired comparison of two methods: member i's twins under the first
  method (a curve: accuracy at several sparsities) are linearly interpolated
  at the sparsity its twin under the second method reached. NaN where that
  sparsity lies outside member i's curve (no extrapolation).

  Args:
    curve_sparsity, curve_accuracy: [levels, members], the first method.
    sparsity, accuracy: [members], the second method's twins.
    anchor_accuracy: [members], if given, each member's dense accuracy, its
      curve's point at sparsity 0 (so that a twin sparser than nothing but
      below the curve's lowest level still gets a pair).

  Returns:
    [members]: interpolated first-method accuracy minus second-method accuracy
    (positive: the first method is ahead at that sparsity).
  """
  curve_sparsity, curve_accuracy = np.asarray(curve_sparsity), np.asarray(curve_accuracy)
  if anchor_accuracy is not None:
    curve_sparsity = np.vstack([np.zeros((1, curve_sparsity.shape[1])), curve_sparsity])
    curve_accuracy = np.vstack([np.asarray(anchor_accuracy)[None], curve_accuracy])
  differences = np.full(len(sparsity), np.nan)
  for member, (at, own) in enumerate(zip(sparsity, accuracy)):
    order = np.argsort(curve_sparsity[:, member])
    xs, ys = curve_sparsity[order, member], curve_accuracy[order, member]
    if xs[0] <= at <= xs[-1]:
      differences[member] = np.interp(at, xs, ys) - own
  return differences


def paired_twins(target: pd.DataFrame, outcome: pd.DataFrame, anchor: bool = True
                 ) -> pd.DataFrame:
  """Every twin of ``outcome`` paired with its original's twins under ``target``.

  ``target`` and ``outcome`` are the rows of two twin populations of one zoo
  (:func:`jaxsparse.tables.load_study`: ``original_member``,
  ``achieved_sparsity``, ``test_accuracy``, ``original_test_accuracy``,
  ``diverged``), e.g. magnitude pruning at its target levels and variational
  dropout at its KL weights. Per outcome twin: its original's target curve
  (its twins' accuracy over their achieved sparsities, anchored at the
  original's dense accuracy at 0 % when ``anchor``) linearly interpolated at
  the twin's achieved sparsity, and ``difference`` = outcome accuracy minus that
  (positive: the outcome method is ahead); NaN outside the curve (no
  extrapolation). Diverged twins and originals are left out.
  """
  target, outcome = _healthy(target), _healthy(outcome)
  records = []
  for member, twins in outcome.groupby("original_member"):
    curve = target[target["original_member"] == member].sort_values("achieved_sparsity")
    xs, ys = curve["achieved_sparsity"].to_numpy(), curve["test_accuracy"].to_numpy()
    if anchor:
      xs = np.concatenate([[0.0], xs])
      ys = np.concatenate([[twins["original_test_accuracy"].iloc[0]], ys])
    for _, twin in twins.iterrows():
      at = twin["achieved_sparsity"]
      inside = len(xs) > 0 and xs[0] <= at <= xs[-1]
      paired = float(np.interp(at, xs, ys)) if inside else float("nan")
      records.append({"original_member": member, "level": twin.get("level"),
                      "achieved_sparsity": at, "test_accuracy": twin["test_accuracy"],
                      "paired_accuracy": paired, "difference": twin["test_accuracy"] - paired})
  return pd.DataFrame(records, columns=["original_member", "level", "achieved_sparsity",
                                        "test_accuracy", "paired_accuracy", "difference"])


def member_means(pairs: pd.DataFrame, low: float = 0.0, high: float = 1.0,
                 column: str = "difference") -> pd.Series:
  """Per original member, the mean of ``column`` over its twins whose achieved sparsity lies
  in [``low``, ``high``) (NaNs dropped; members with none left out): one value per member,
  the unit a member-level interval resamples."""
  band = pairs[(pairs["achieved_sparsity"] >= low) & (pairs["achieved_sparsity"] < high)]
  band = band[np.isfinite(band[column])]
  return band.groupby("original_member")[column].mean()


def _healthy(rows: pd.DataFrame) -> pd.DataFrame:
  """The rows whose twin and original did not diverge (columns absent: none did)."""
  keep = np.ones(len(rows), bool)
  for column in ("diverged", "original_diverged"):
    if column in rows:
      keep &= ~rows[column].fillna(False).to_numpy(bool)
  return rows[keep]


class Estimate(NamedTuple):
  """A mean with its interval, and what they estimate.

  Attributes:
    value: the estimate (a mean over ``unit``s).
    low, high: its confidence interval (NaN when undefined: fewer than 2 units).
    n: how many units.
    unit: what is resampled or averaged: ``'member'`` or ``'grid cell'``.
    method: how the interval was made: ``'t'``, ``'bca'``, ``'stratified_bootstrap'``.
    p_value: two-sided p of the null mean (NaN when undefined).
  """
  value: float
  low: float
  high: float
  n: int
  unit: str
  method: str
  p_value: float


def _finite(values) -> np.ndarray:
  values = np.asarray(values, np.float64)
  return values[np.isfinite(values)]


def t_estimate(values, null: float = 0.0, confidence: float = 0.95,
               unit: str = "member") -> Estimate:
  """The mean of ``values`` (NaNs dropped) with Student's t interval and the two-sided
  t-test p of mean = ``null``."""
  from scipy import stats
  values = _finite(values)
  mean = float(values.mean()) if len(values) else float("nan")
  if len(values) < 2:
    return Estimate(mean, float("nan"), float("nan"), len(values), unit, "t", float("nan"))
  if np.ptp(values) == 0:
    p = 1.0 if mean == null else 0.0
    return Estimate(mean, mean, mean, len(values), unit, "t", p)
  low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=stats.sem(values))
  p = stats.ttest_1samp(values, null).pvalue
  return Estimate(mean, float(low), float(high), len(values), unit, "t", float(p))


def bca_estimate(values, null: float = 0.0, confidence: float = 0.95, seed: int = 0,
                 num_resamples: int = 9_999, statistic: str = "mean") -> Estimate:
  """The mean (or, with ``statistic="median"``, the median) of ``values`` with the
  bias-corrected and accelerated bootstrap interval (:func:`scipy.stats.bootstrap`, fixed
  seed: reproducible); ``p_value`` is the t-test's for the mean, NaN for the median."""
  from scipy import stats
  estimate = t_estimate(values, null, confidence)
  values = _finite(values)
  if statistic == "median":
    middle = float(np.median(values)) if len(values) else float("nan")
    estimate = estimate._replace(value=middle, low=middle, high=middle, p_value=float("nan"))
  elif statistic != "mean":
    raise ValueError(f"statistic={statistic!r}: use 'mean' or 'median'")
  if len(values) < 3 or np.ptp(values) == 0:
    return estimate._replace(method="bca")
  result = stats.bootstrap((values,), getattr(np, statistic), confidence_level=confidence,
                           method="BCa", n_resamples=num_resamples,
                           random_state=np.random.default_rng(seed))
  return estimate._replace(low=float(result.confidence_interval.low),
                           high=float(result.confidence_interval.high), method="bca")


def cell_mean_estimate(values, cells, null: float = 0.0,
                       confidence: float = 0.95) -> Estimate:
  """Configurations like these: the mean over grid cells of their members' mean, with a t
  interval over the cell means (the unit is the grid cell)."""
  frame = pd.DataFrame({"value": np.asarray(values, np.float64), "cell": np.asarray(cells)})
  means = frame[np.isfinite(frame.value)].groupby("cell")["value"].mean()
  return t_estimate(means.to_numpy(), null, confidence, unit="grid cell")


def stratified_bootstrap_estimate(values, cells, null: float = 0.0, confidence: float = 0.95,
                                  seed: int = 0, num_resamples: int = 9_999) -> Estimate:
  """These very cells: the mean over grid cells of their members' mean, with its standard
  error from a bootstrap that resamples members within their cells, and a t interval with
  members - cells degrees of freedom (the unit is the member; cells with one member add
  no spread). A cell's resampled members are its mean plus its deviations inflated by
  sqrt(n / (n - 1)): a plain bootstrap of 2 seeds would halve their variance."""
  from scipy import stats
  frame = pd.DataFrame({"value": np.asarray(values, np.float64), "cell": np.asarray(cells)})
  groups = [group.to_numpy() for _, group in
            frame[np.isfinite(frame.value)].groupby("cell")["value"]]
  n = sum(len(group) for group in groups)
  mean = float(np.mean([group.mean() for group in groups])) if groups else float("nan")
  degrees = n - len(groups)
  if degrees < 1:
    return Estimate(mean, float("nan"), float("nan"), n, "member", "stratified_bootstrap",
                    float("nan"))
  rng = np.random.default_rng(seed)

  def resampled_mean(group):
    if len(group) < 2:
      return np.full(num_resamples, group.mean())
    inflated = group.mean() + (group - group.mean()) * np.sqrt(len(group) / (len(group) - 1))
    return inflated[rng.integers(0, len(group), (num_resamples, len(group)))].mean(axis=1)
  resampled = np.mean([resampled_mean(group) for group in groups], axis=0)
  error = float(resampled.std(ddof=1))
  if error == 0:
    return Estimate(mean, mean, mean, n, "member", "stratified_bootstrap",
                    1.0 if mean == null else 0.0)
  quantile = stats.t.ppf(0.5 + confidence / 2, degrees)
  p = 2 * stats.t.sf(abs(mean - null) / error, degrees)
  return Estimate(mean, mean - quantile * error, mean + quantile * error, n, "member",
                  "stratified_bootstrap", float(p))


def is_grid(cells) -> bool:
  """Whether members fall in several grid cells with several seeds in some of them (a grid
  zoo: intervals over cells, not members)."""
  counts = pd.Series(np.asarray(cells)).value_counts()
  return len(counts) >= 2 and counts.max() >= 2


def holm(p_values) -> np.ndarray:
  """Holm's step-down adjustment of a family of p-values (NaNs stay NaN and do not count)."""
  p = np.asarray(p_values, np.float64)
  adjusted = np.full(p.shape, np.nan)
  finite = np.flatnonzero(np.isfinite(p))
  order = finite[np.argsort(p[finite], kind="stable")]
  running = 0.0
  for rank, index in enumerate(order):
    running = max(running, min(1.0, (len(order) - rank) * p[index]))
    adjusted[index] = running
  return adjusted
