"""The paper's claims, tested on a twins study: one record per claim, with its statistics.

Built from the study's summary (:func:`jaxsparse.report.summarise`), pure
NumPy / pandas / SciPy; :mod:`jaxsparse.report` writes them as Markdown.

Every claim record says what it is (``kind``: 'robust', 'paired', 'agreement' or
'correlation'; ``series``: the method and scope it is about; ``against``, ``band`` and
``level`` where they apply) and what its interval estimates:

- ``unit``: ``'member'`` for a zoo of seeds of one recipe, ``'grid cell'`` for a
  grid zoo with several seeds per configuration (the interval is a t interval
  over the cells' means: configurations like these). A grid zoo's claims also
  carry ``corner_ci``, the interval for these very cells (a bootstrap that
  resamples seeds within cells); see :mod:`jaxsparse.analysis`.
- ``interval_method``: ``'t'``, ``'stratified_bootstrap'`` or ``'fisher_z'``
  (correlations).
- ``family``: ``'primary'`` for the paper's crossover (every method that prunes
  to a target against every method whose sparsity is an outcome, below and at
  or above :data:`~jaxsparse.analysis.CROSSOVER_SPARSITY`, paired per member),
  judged with Holm-adjusted p-values (``p_holm``) over that family;
  ``'descriptive'`` for the rest, judged by the unadjusted 95 % interval.

Thresholds (:data:`~jaxsparse.analysis.ROBUST_DROP` and the others) are this
project's operationalisation of the paper's words; robustness verdicts are
also given at other drops (``sensitivity``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from jaxsparse import analysis, sparsify
from jaxsparse.analysis import (CROSSOVER_SPARSITY, HIGH_CORRELATION, HIGH_KAPPA, ROBUST_DROP,
                                ROBUST_DROP_SENSITIVITY, ROBUST_RELATIVE_DROP)

#: The sparsity band robustness is judged in, the same for every method (matched bands:
#: a VD twin at 30 % does not make VD "robust" beside magnitude twins at 50 to 80 %).
ROBUST_BAND = (0.5, CROSSOVER_SPARSITY)
#: The family-wise error rate of the primary claims.
ALPHA = 0.05


def verdict(low: float, high: float, threshold: float, above: bool) -> str:
  """'holds' if the interval lies on the claim's side of ``threshold`` (above it if
  ``above``), 'fails' if on the other side, 'inconclusive' if it straddles it."""
  if not (np.isfinite(low) and np.isfinite(high)):
    return "not tested"
  if (low > threshold) if above else (high < threshold):
    return "holds"
  if (high < threshold) if above else (low > threshold):
    return "fails"
  return "inconclusive"


def _or_none(value) -> float | None:
  return float(value) if value is not None and np.isfinite(value) else None


def _nan_if_none(value: float | None) -> float:
  return float("nan") if value is None else float(value)


def _record(claim: str, statistic: str, *, estimate: analysis.Estimate, threshold: float,
            above: bool, family: str = "descriptive", corner: analysis.Estimate | None = None,
            members: int | None = None, **extra) -> dict:
  """One claim's record: ``estimate`` (over ``members`` members; default its ``n``) judged
  against ``threshold``."""
  return {"claim": claim, "statistic": statistic, "value": _or_none(estimate.value),
          "ci_low": _or_none(estimate.low), "ci_high": _or_none(estimate.high),
          "threshold": threshold, "members": int(estimate.n if members is None else members),
          "units": int(estimate.n), "unit": estimate.unit,
          "interval_method": estimate.method, "family": family,
          "p_value": _or_none(estimate.p_value), "p_holm": None,
          "corner_ci": None if corner is None else [_or_none(corner.low), _or_none(corner.high)],
          "verdict": verdict(estimate.low, estimate.high, threshold, above), **extra}


def mean_estimate(values: pd.Series, cells: dict[int, int], null: float = 0.0) -> dict:
  """The estimate of a claim about per-member ``values`` (indexed by member): over grid
  cells for a grid zoo (with the corner's estimate beside it), else over members; as the
  keyword arguments of :func:`_record` (``estimate``, ``corner``, ``members``)."""
  values = values[np.isfinite(values.to_numpy(np.float64))]
  member_cells = [cells.get(member, member) for member in values.index]
  if analysis.is_grid(member_cells):
    return {"estimate": analysis.cell_mean_estimate(values.to_numpy(), member_cells, null),
            "corner": analysis.stratified_bootstrap_estimate(values.to_numpy(), member_cells,
                                                             null),
            "members": len(values)}
  return {"estimate": analysis.t_estimate(values.to_numpy(), null), "corner": None,
          "members": len(values)}


def _by_member(entries: list[dict], key: str, band: Callable[[float], bool]) -> pd.Series:
  """Per original member, the mean of ``key`` over its twins in ``entries`` whose achieved
  sparsity satisfies ``band`` (members with none are left out), indexed by member."""
  per_member: dict[int, list[float]] = {}
  for entry in entries:
    for member, sparsity, value in zip(entry["member_indices"], entry["sparsity"], entry[key]):
      if band(sparsity) and value is not None and np.isfinite(value):
        per_member.setdefault(member, []).append(value)
  return pd.Series({member: np.mean(values) for member, values in per_member.items()},
                   dtype=float)


def series_entries(summary: dict) -> dict[str, list[dict]]:
  """The summary's level entries by series (method and scope), in order."""
  by_series: dict[str, list[dict]] = {}
  for entry in summary["twins"]:
    by_series.setdefault(entry["series"], []).append(entry)
  return by_series


def _bands() -> list[tuple[str, Callable[[float], bool]]]:
  return [(f"below {CROSSOVER_SPARSITY:.0%}", lambda s: s < CROSSOVER_SPARSITY),
          (f"at or above {CROSSOVER_SPARSITY:.0%}", lambda s: s >= CROSSOVER_SPARSITY)]


def _cells(summary: dict) -> dict[int, int]:
  """Each original member's grid cell (its configuration; its own index if unknown)."""
  rows = summary["original"].get("hyperparameters", [])
  return {int(row["member"]): int(row.get("configuration", row["member"])) for row in rows}


def claims(summary: dict) -> list[dict]:
  """The paper's claims, each tested on this study (see the module's docstring): per
  method robustness in the matched band, the paired crossover (primary, Holm), agreement
  per band and the correlation per level. Verdict: 'holds', 'fails', 'inconclusive' (the
  interval straddles the threshold; for primary claims: the Holm-adjusted p is 0.05 or
  more) or 'not tested' (no twins there, or no spread in their accuracy to correlate)."""
  cells = _cells(summary)
  by_series = series_entries(summary)
  rows = [_robustness(series, entries, cells) for series, entries in by_series.items()]
  rows += _holm(_paired_claims(by_series, cells, summary))
  for series, entries in by_series.items():
    for band_name, band in _bands():
      rows.append(_record(f"{series} twins agree highly with their originals ({band_name} "
                          "sparsity)", "mean Cohen's kappa of twin vs original predictions",
                          threshold=HIGH_KAPPA, above=True, kind="agreement", series=series,
                          band=band_name, **mean_estimate(
                              _by_member(entries, "cohen_kappa", band), cells, HIGH_KAPPA)))
  for series, entries in by_series.items():
    rows += [_correlation(series, entry) for entry in entries]
  return rows


def _robustness(series: str, entries: list[dict], cells: dict[int, int]) -> dict:
  """'Robust': the mean drop in the matched band, judged at :data:`ROBUST_DROP`, with the
  verdicts at the other drops and at a relative drop beside it."""
  low, high = ROBUST_BAND
  band = lambda s: low <= s < high
  drops = mean_estimate(_by_member(entries, "accuracy_drop", band), cells, ROBUST_DROP)
  relative = mean_estimate(_by_member([{**entry, "relative_drop": [
      drop / original if original else np.nan
      for drop, original in zip(entry["accuracy_drop"], entry["original_accuracy"])]}
      for entry in entries], "relative_drop", band), cells, ROBUST_RELATIVE_DROP)["estimate"]
  estimate = drops["estimate"]
  sensitivity = {f"drop {threshold:g}": verdict(estimate.low, estimate.high, threshold, False)
                 for threshold in sorted(ROBUST_DROP_SENSITIVITY + (ROBUST_DROP,))}
  sensitivity[f"relative drop {ROBUST_RELATIVE_DROP:.0%}"] = verdict(
      relative.low, relative.high, ROBUST_RELATIVE_DROP, False)
  return _record(f"{series} is robust: its twins lose at most {ROBUST_DROP:.0%} accuracy at "
                 f"{low:.0%} to {high:.0%} sparsity", "mean accuracy drop (original - twin)",
                 threshold=ROBUST_DROP, above=False, sensitivity=sensitivity, kind="robust",
                 series=series, **drops)


def _correlation(series: str, entry: dict) -> dict:
  """'Original and twin accuracy highly correlated' at one level (Fisher-z interval)."""
  level = f"{sparsify.declaration(entry['method']).twin_level.label} {entry['level']:g}"
  accuracies = np.asarray(entry["twin_accuracy"], np.float64)
  constant = len(accuracies) > 2 and np.ptp(accuracies) == 0
  sparse = f"{np.mean(entry['sparsity']):.0%} sparse" if entry["members"] else "no twins"
  low, high = map(_nan_if_none, entry["pearson_ci"])
  estimate = analysis.Estimate(_nan_if_none(entry["pearson"]), low, high, entry["members"],
                               "member", "fisher_z", float("nan"))
  return _record(f"{series} at {level} ({sparse}): original and twin accuracy are highly "
                 "correlated", "Pearson r across members" + (
                     " (undefined: every twin has the same test accuracy)"
                     if constant and entry["pearson"] is None else ""),
                 estimate=estimate, threshold=HIGH_CORRELATION, above=True, kind="correlation",
                 series=series, level=entry["level"])


def _paired_claims(by_series: dict[str, list[dict]], cells: dict[int, int],
                   summary: dict) -> list[dict]:
  """Every method that prunes to a target (e.g. magnitude, per scope) against every method
  whose sparsity is an outcome (e.g. VD), paired per member: the target method's own curve,
  anchored at the member's dense accuracy at 0 %, interpolated at the outcome twin's
  sparsity (:func:`jaxsparse.analysis.paired_differences`), below and above the crossover."""
  is_target = lambda entries: entries[0]["level_field"] == "sparsity"
  dense = dict(enumerate(summary["original"]["test_accuracy"]))
  rows = []
  for target, target_entries in by_series.items():
    if not is_target(target_entries):
      continue
    for outcome, outcome_entries in by_series.items():
      if is_target(outcome_entries):
        continue
      pairs = _paired_entries(target_entries, outcome_entries, dense)
      for index, (band_name, band) in enumerate(_bands()):
        ahead, behind = (target, outcome) if index == 0 else (outcome, target)
        sign = 1.0 if index == 0 else -1.0
        rows.append(_record(
            f"{ahead} beats {behind} {band_name} sparsity (paired per member)",
            f"mean accuracy difference {ahead} - {behind} at the {outcome} twin's sparsity",
            threshold=0.0, above=True, family="primary", kind="paired", series=outcome,
            against=target, band=band_name,
            **mean_estimate(sign * _by_member(pairs, "difference", band), cells)))
  return rows


def _holm(rows: list[dict]) -> list[dict]:
  """The primary family's verdicts by Holm-adjusted p-values (two-sided, at :data:`ALPHA`):
  'holds' when significant on the claim's side, 'fails' on the other, else 'inconclusive'."""
  adjusted = analysis.holm([_nan_if_none(row["p_value"]) for row in rows])
  for row, p in zip(rows, adjusted):
    row["p_holm"] = _or_none(p)
    if not np.isfinite(p) or row["value"] is None:
      row["verdict"] = "not tested"
    elif p >= ALPHA:
      row["verdict"] = "inconclusive"
    else:
      row["verdict"] = "holds" if row["value"] > row["threshold"] else "fails"
  return rows


def _paired_entries(target_entries: list[dict], outcome_entries: list[dict],
                    dense: dict[int, float]) -> list[dict]:
  """Pseudo-entries holding, per outcome level, each member's paired difference."""
  common = sorted(set.intersection(*(set(e["member_indices"]) for e in target_entries)))
  curve = lambda key: np.asarray([[dict(zip(e["member_indices"], e[key]))[m] for m in common]
                                  for e in target_entries]).reshape(len(target_entries), -1)
  curve_sparsity, curve_accuracy = curve("sparsity"), curve("twin_accuracy")
  pairs = []
  for entry in outcome_entries:
    own = dict(zip(entry["member_indices"], zip(entry["sparsity"], entry["twin_accuracy"])))
    members = [m for m in common if m in own]
    columns = [common.index(m) for m in members]
    sparsity = np.asarray([own[m][0] for m in members])
    accuracy = np.asarray([own[m][1] for m in members])
    differences = analysis.paired_differences(
        curve_sparsity[:, columns], curve_accuracy[:, columns], sparsity, accuracy,
        anchor_accuracy=np.asarray([dense[m] for m in members])) if members else np.zeros(0)
    pairs.append({"member_indices": members, "sparsity": sparsity.tolist(),
                  "difference": differences.tolist()})
  return pairs
