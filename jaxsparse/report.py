"""The sparsified-twins report: ``summary.json``, ``report.md`` and ``figures/*.png``.

Built from each run's cached test-set predictions (see
:func:`jaxsparse.twins.cache_predictions`), so it is cheap to rebuild.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import matplotlib
matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jaxsparse import analysis, sparsify, tables  # noqa: E402
from jaxsparse.population import GRID_FIELDS  # noqa: E402
from jaxsparse.workdir import FIGURES_DIR, REPORT_FILE, SUMMARY_FILE  # noqa: E402


def _layers(result: dict) -> dict[str, np.ndarray]:
  return {name[len("layer/"):].replace("/kernel", ""): value
          for name, value in result.items() if name.startswith("layer/")}


def _diverged(result: dict) -> np.ndarray:
  """Which members of a run diverged (all False for caches written before the flag)."""
  return np.asarray(result.get("diverged", np.zeros(len(result["accuracy"]), bool)), bool)


def _level_record(result: dict, members: slice) -> dict:
  """The part of a run's prediction record that belongs to one level's twins."""
  return {name: value if name == "labels" else value[members] for name, value in result.items()}


def summarise(table: pd.DataFrame, original: dict, twins: list) -> dict:
  """The study's numbers: one entry per (method, scope, level) with per-member arrays.

  ``twins`` holds, per population of twins (:class:`jaxsparse.twins.TwinRun`,
  all its levels), its prediction record and its test accuracy per
  fine-tuning epoch [epochs, members] (or None). Members whose original or
  twin training diverged (non-finite loss or weights; see
  :func:`jaxsparse.engine.train_member_epoch`) are left out of an entry's
  arrays and statistics and listed in its ``diverged_members``. Statistics:
  see :mod:`jaxsparse.analysis`; the claims computed from them:
  :func:`claims`.
  """
  original_ok = ~_diverged(original)
  entries = []
  for run, result, per_epoch in twins:
    for index, level in enumerate(run.levels):
      members = run.level_members(len(table), index)
      entries.append(_entry(table, original, original_ok, run, level,
                            _level_record(result, members),
                            None if per_epoch is None else per_epoch[:, members]))
  summary = {"original": {"members": int(len(table)),
                          "test_accuracy": original["accuracy"].tolist(),
                          "diverged_members": np.flatnonzero(~original_ok).tolist(),
                          "distribution": analysis.distribution(
                              original["accuracy"][original_ok]),
                          "hyperparameters": table.to_dict(orient="records")},
             "twins": entries}
  summary["claims"] = claims(summary)
  return summary


def _entry(table, original: dict, original_ok: np.ndarray, run, level: float, result: dict,
           per_epoch: np.ndarray | None) -> dict:
  """The summary of one level's twins (see :func:`summarise`)."""
  keep = original_ok & ~_diverged(result)
  original_accuracy, twin_accuracy = original["accuracy"][keep], result["accuracy"][keep]
  original_predictions, twin_predictions = original["predictions"][keep], \
      result["predictions"][keep]
  drop = original_accuracy - twin_accuracy
  fields = [field for field in GRID_FIELDS if field != "sparsity"]
  effects = analysis.hyperparameter_effects(table[keep].reset_index(drop=True), drop, fields)
  kappa = analysis.cohen_kappa(original_predictions, twin_predictions)
  return {
      "method": run.method, "scope": run.scope, "series": run.name, "level": level,
      "level_field": run.level_field,
      "workdir": os.path.relpath(run.workdir, os.path.dirname(os.path.dirname(run.workdir))),
      "members": int(keep.sum()),
      "member_indices": np.flatnonzero(keep).tolist(),
      "diverged_members": np.flatnonzero(~keep).tolist(),
      "original_accuracy": original_accuracy.tolist(),
      "twin_accuracy": twin_accuracy.tolist(),
      "accuracy_drop": drop.tolist(),
      "sparsity": result["sparsity"][keep].tolist(),
      "layer_sparsity": {name: value[keep].tolist() for name, value in _layers(result).items()},
      "agreement": analysis.agreement(original_predictions, twin_predictions).tolist(),
      "cohen_kappa": kappa.tolist(),
      "agreement_where_original_correct": analysis.agreement_where_correct(
          original_predictions, twin_predictions, original["labels"]).tolist(),
      # None (JSON null) where a correlation is undefined (no variance).
      "pearson": _finite_or_none(analysis.pearson(original_accuracy, twin_accuracy)),
      "pearson_ci": [_finite_or_none(bound) for bound in
                     analysis.pearson_interval(original_accuracy, twin_accuracy)],
      "spearman": _finite_or_none(analysis.spearman(original_accuracy, twin_accuracy)),
      "twin_accuracy_distribution": analysis.distribution(twin_accuracy),
      "accuracy_per_epoch": ([] if per_epoch is None else
                             np.nanmean(per_epoch[:, keep], axis=1).tolist()),
      "hyperparameter_effects": effects.to_dict(orient="records"),
  }


#: Where the paper puts the crossover of magnitude pruning and variational
#: dropout (Honegger et al. 2023; docs/twins.md): twins are compared below and above it.
CROSSOVER_SPARSITY = 0.8
#: Thresholds of the claims (stated in the report): a robust method loses at most
#: 2 accuracy points (the public VD twins' headline, about 2 % at about 80 %
#: sparsity); "high" agreement is Cohen's kappa of at least 0.8 (McHugh 2012: strong);
#: "highly correlated" is Pearson's r of at least 0.7.
ROBUST_DROP, HIGH_KAPPA, HIGH_CORRELATION = 0.02, 0.8, 0.7


def _verdict(low: float, high: float, threshold: float, above: bool) -> str:
  """'holds' if the interval lies on the claim's side of ``threshold`` (above it if
  ``above``), 'fails' if on the other side, 'inconclusive' if it straddles it."""
  if not (np.isfinite(low) and np.isfinite(high)):
    return "not tested"
  if (low > threshold) if above else (high < threshold):
    return "holds"
  if (high < threshold) if above else (low > threshold):
    return "fails"
  return "inconclusive"


def _claim(claim: str, statistic: str, value: float, interval: tuple[float, float],
           members: int, threshold: float, above: bool) -> dict:
  """One row of the claims table: ``value`` and its ``interval``, judged against
  ``threshold`` (see :func:`_verdict`)."""
  low, high = interval
  return {"claim": claim, "statistic": statistic, "value": _finite_or_none(value),
          "ci_low": _finite_or_none(low), "ci_high": _finite_or_none(high),
          "threshold": threshold, "members": int(members),
          "verdict": _verdict(low, high, threshold, above)}


def _mean_claim(claim: str, statistic: str, values: np.ndarray, threshold: float,
                above: bool) -> dict:
  """A claim about the mean of per-member ``values``, with its bootstrap interval."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  value = float(values.mean()) if len(values) else float("nan")
  return _claim(claim, statistic, value, analysis.mean_interval(values), len(values),
                threshold, above)


def _finite_or_none(value: float) -> float | None:
  return float(value) if np.isfinite(value) else None


def _nan_if_none(value: float | None) -> float:
  return float("nan") if value is None else float(value)


def _by_member(entries: list[dict], key: str, band) -> np.ndarray:
  """Per original member, the mean of ``key`` over its twins in ``entries`` whose achieved
  sparsity satisfies ``band`` (members with none are left out): one value per member, so
  a bootstrap over them resamples independent units."""
  per_member: dict[int, list[float]] = {}
  for entry in entries:
    for member, sparsity, value in zip(entry["member_indices"], entry["sparsity"], entry[key]):
      if band(sparsity) and np.isfinite(value):
        per_member.setdefault(member, []).append(value)
  return np.asarray([np.mean(values) for values in per_member.values()])


def _series(summary: dict) -> dict[str, list[dict]]:
  by_series: dict[str, list[dict]] = {}
  for entry in summary["twins"]:
    by_series.setdefault(entry["series"], []).append(entry)
  return by_series


def _bands() -> list[tuple[str, Callable[[float], bool]]]:
  return [(f"below {CROSSOVER_SPARSITY:.0%}", lambda s: s < CROSSOVER_SPARSITY),
          (f"at or above {CROSSOVER_SPARSITY:.0%}", lambda s: s >= CROSSOVER_SPARSITY)]


def claims(summary: dict) -> list[dict]:
  """The paper's claims, each tested on this study (thresholds: see :data:`ROBUST_DROP` and
  the others). Every value is a mean over members (a member's twins in a sparsity band
  averaged first) with a 95 % percentile-bootstrap interval over members; correlations
  have Fisher-z intervals. Verdict: 'holds', 'fails', 'inconclusive' (the interval
  straddles the threshold) or 'not tested' (no twins there, or no spread in their accuracy
  to correlate)."""
  rows = []
  by_series = _series(summary)
  for series, entries in by_series.items():
    below_name, below = _bands()[0]
    rows.append(_mean_claim(f"{series} is robust: its twins lose at most {ROBUST_DROP:.0%} "
                            f"accuracy {below_name} sparsity",
                            "mean accuracy drop (original - twin)",
                            _by_member(entries, "accuracy_drop", below), ROBUST_DROP,
                            above=False))
  rows += _paired_claims(by_series)
  for series, entries in by_series.items():
    for band_name, band in _bands():
      rows.append(_mean_claim(f"{series} twins agree highly with their originals "
                              f"({band_name} sparsity)",
                              "mean Cohen's kappa of twin vs original predictions",
                              _by_member(entries, "cohen_kappa", band), HIGH_KAPPA, above=True))
  for series, entries in by_series.items():
    for entry in entries:
      level = f"{sparsify.declaration(entry['method']).twin_level.label} {entry['level']:g}"
      accuracies = np.asarray(entry["twin_accuracy"], np.float64)
      constant = len(accuracies) > 2 and np.ptp(accuracies) == 0
      sparse = f"{np.mean(entry['sparsity']):.0%} sparse" if entry["members"] else "no twins"
      rows.append(_claim(
          f"{series} at {level} ({sparse}): original and twin "
          "accuracy are highly correlated", "Pearson r across members" + (
              " (undefined: every twin has the same test accuracy)"
              if constant and entry["pearson"] is None else ""),
          _nan_if_none(entry["pearson"]), tuple(map(_nan_if_none, entry["pearson_ci"])),
          entry["members"], HIGH_CORRELATION, above=True))
  return rows


def _paired_claims(by_series: dict[str, list[dict]]) -> list[dict]:
  """Every method that prunes to a target (e.g. magnitude, per scope) against every method
  whose sparsity is an outcome (e.g. VD), paired per member: the target method's own
  curve interpolated at the outcome twin's sparsity (see
  :func:`jaxsparse.analysis.paired_differences`), below and above the crossover."""
  is_target = lambda entries: entries[0]["level_field"] == "sparsity"
  rows = []
  for target, target_entries in by_series.items():
    if not is_target(target_entries) or len(target_entries) < 2:
      continue
    for outcome, outcome_entries in by_series.items():
      if is_target(outcome_entries):
        continue
      pairs = _paired_entries(target_entries, outcome_entries)
      for index, (band_name, band) in enumerate(_bands()):
        ahead, behind = (target, outcome) if index == 0 else (outcome, target)
        sign = 1.0 if index == 0 else -1.0
        rows.append(_mean_claim(
            f"{ahead} beats {behind} {band_name} sparsity (paired per member)",
            f"mean accuracy difference {ahead} - {behind} at the {outcome} twin's sparsity",
            sign * _by_member(pairs, "difference", band), 0.0, above=True))
  return rows


def _paired_entries(target_entries: list[dict], outcome_entries: list[dict]) -> list[dict]:
  """Pseudo-entries holding, per outcome level, each member's paired difference."""
  common = sorted(set.intersection(*(set(e["member_indices"]) for e in target_entries)))
  curve = lambda key: np.asarray([[dict(zip(e["member_indices"], e[key]))[m] for m in common]
                                  for e in target_entries])
  curve_sparsity, curve_accuracy = curve("sparsity"), curve("twin_accuracy")
  pairs = []
  for entry in outcome_entries:
    own = dict(zip(entry["member_indices"], zip(entry["sparsity"], entry["twin_accuracy"])))
    members = [m for m in common if m in own]
    columns = [common.index(m) for m in members]
    sparsity = np.asarray([own[m][0] for m in members])
    accuracy = np.asarray([own[m][1] for m in members])
    differences = analysis.paired_differences(curve_sparsity[:, columns],
                                              curve_accuracy[:, columns], sparsity, accuracy) \
        if members else np.zeros(0)
    pairs.append({"member_indices": members, "sparsity": sparsity.tolist(),
                  "difference": differences.tolist()})
  return pairs


def claims_table(summary: dict) -> str:
  """Markdown: one row per claim (see :func:`claims`)."""
  number = lambda value: "n/a" if value is None else f"{value:.3f}"
  lines = ["| claim | statistic | value | 95 % interval | threshold | members | verdict |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for row in summary["claims"]:
    lines.append(f"| {row['claim']} | {row['statistic']} | {number(row['value'])} | "
                 f"[{number(row['ci_low'])}, {number(row['ci_high'])}] | {row['threshold']:g} | "
                 f"{row['members']} | **{row['verdict']}** |")
  return "\n".join(lines)


def headline_table(summary: dict) -> str:
  """Markdown: one line per (method, level) with the population's means."""
  lines = ["| method | level | sparsity | twin accuracy (mean ± std) | drop | agreement | "
           "Cohen's κ | agreement where original right | Pearson r | Spearman ρ |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  original = summary["original"]["distribution"]
  accuracy = f"{original['mean']:.4f} ± {original['std']:.4f}" if np.isfinite(original["mean"]) \
      else "every member diverged"
  lines.append(f"| original (dense) | | 0 | {accuracy} | | | | | | |")
  for entry in summary["twins"]:
    level = f"{sparsify.declaration(entry['method']).twin_level.label} {entry['level']:g}"
    accuracy = entry["twin_accuracy_distribution"]
    if not entry["members"]:
      lines.append(f"| {entry['series']} | {level} | every twin diverged | | | | | | | |")
      continue
    lines.append(
        f"| {entry['series']} | {level} | {np.mean(entry['sparsity']):.3f} | "
        f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f} | {np.mean(entry['accuracy_drop']):.4f} | "
        f"{np.mean(entry['agreement']):.3f} | {np.nanmean(entry['cohen_kappa']):.3f} | "
        f"{np.nanmean(entry['agreement_where_original_correct']):.3f} | "
        f"{_number(entry['pearson'])} | {_number(entry['spearman'])} |")
  return "\n".join(lines)


def _number(value: float | None) -> str:
  """Three decimals, or 'n/a' for a statistic that is undefined (JSON null)."""
  return "n/a" if value is None else f"{value:.3f}"


def _range(values: list[float]) -> str:
  """'low to high' of the finite ``values`` (three decimals), or 'undefined' if none is."""
  finite = [value for value in values if np.isfinite(value)]
  return f"{min(finite):.3f} to {max(finite):.3f}" if finite else "undefined"


def findings(summary: dict) -> list[str]:
  """Findings in words, computed from the summary (no hand-written claims)."""
  lines = []
  if summary["original"].get("diverged_members"):
    lines.append(f"- Original members {summary['original']['diverged_members']} diverged "
                 "(non-finite loss or weights) and are left out of every statistic.")
  for entry in summary["twins"]:
    twin_only = sorted(set(entry["diverged_members"]) -
                       set(summary["original"].get("diverged_members", [])))
    if twin_only:
      lines.append(f"- The {entry['series']} {entry['level']:g} twins of members {twin_only} "
                   "diverged and are left out of that entry.")
  for series, entries in _series(summary).items():
    entries = [entry for entry in entries if entry["members"]]
    if not entries:
      lines.append(f"- **{series}**: no twin left to summarise (every one diverged).")
      continue
    mean = lambda key: [float(np.nanmean(e[key])) for e in entries]
    correlations = [_nan_if_none(e["pearson"]) for e in entries]
    lines.append(
        f"- **{series}**: mean sparsity {min(mean('sparsity')):.1%} to "
        f"{max(mean('sparsity')):.1%}; mean accuracy drop {min(mean('accuracy_drop')):+.4f} to "
        f"{max(mean('accuracy_drop')):+.4f}; agreement with the originals "
        f"{min(mean('agreement')):.3f} to {max(mean('agreement')):.3f} (Cohen's kappa "
        f"{min(mean('cohen_kappa')):.3f} to {max(mean('cohen_kappa')):.3f}); Pearson r of "
        f"original vs twin accuracy {_range(correlations)}.")
    strongest = max(entries, key=lambda e: np.mean(e["sparsity"]))
    if strongest["hyperparameter_effects"]:
      effect = strongest["hyperparameter_effects"][0]
      lines.append(
          f"  At its sparsest level ({np.mean(strongest['sparsity']):.1%}), the grid field that "
          f"separates the accuracy drop most is `{effect['field']}`: mean drop "
          f"{effect['mean_drop_there']:.4f} at {effect['largest_drop_at']} against "
          f"{effect['mean_drop_there_min']:.4f} at {effect['smallest_drop_at']}.")
    last = [e for e in entries if len(e["accuracy_per_epoch"]) >= 2]
    if last:
      gains = [e["accuracy_per_epoch"][-1] - e["accuracy_per_epoch"][-2] for e in last]
      lines.append(f"  Twin test accuracy changed by {min(gains):+.4f} to {max(gains):+.4f} "
                   "(population mean, per level) in the last fine-tuning epoch.")
  return lines


def _figures(workdir: str, rows: pd.DataFrame, twins: list, num_classes: int) -> list[str]:
  """The study's figures (:func:`jaxsparse.figures.study_figures` over its tidy table) and
  the convergence of the twins' fine-tuning (healthy members only)."""
  from jaxsparse import figures  # local: figures imports this module's constants
  directory = os.path.join(workdir, FIGURES_DIR)
  os.makedirs(directory, exist_ok=True)
  written = figures.study_figures(rows, directory, num_classes=num_classes)
  healthy = figures.healthy(rows)
  num_originals = int((rows["run"] == "original").sum())
  curves = {}
  for run, _, per_epoch in twins:
    if per_epoch is None:
      continue
    name = os.path.basename(run.workdir)
    for index, level in enumerate(run.levels):
      members = np.arange(per_epoch.shape[1])[run.level_members(num_originals, index)]
      keep = np.isin(members, healthy[healthy.run == name]["member"])
      if keep.any():
        curves[f"{run.name} {level:g}"] = per_epoch[:, members[keep]]
  if not written or not curves:
    return written
  originals = healthy[healthy.run == "original"]["test_accuracy"].to_numpy()
  return written + [figures.save(figures.convergence(curves, originals), directory,
                                 "convergence")]


def write_report(workdir: str, config, table: pd.DataFrame, original: dict,
                 twins: list) -> dict:
  """Writes summary.json, report.md and figures/ under ``workdir``; returns the summary.

  The summary holds the per-level statistics (``twins``), the ``claims`` and, record
  by record, every member of every run (``members``: the rows of
  :func:`jaxsparse.tables.load_study`, without the final metrics that only the runs'
  files hold, such as validation accuracy).
  """
  summary = summarise(table, original, twins)
  rows = tables.study_table(table, original, twins)
  # Record-oriented: one object per (run, member), the table of tables.load_study (NaN -> null).
  summary["members"] = json.loads(rows.to_json(orient="records"))
  figure_files = _figures(workdir, rows, twins, len(np.unique(original["labels"])))
  lines = [f"# Sparsified twins of a {config.model.name} zoo on {config.data.name}", "",
           f"{summary['original']['members']} members, trained densely for "
           f"{config.training.num_epochs} epochs; twins derived from their final checkpoints "
           f"and fine-tuned for {config.twins.num_epochs} epoch(s). Agreement: fraction of test "
           "inputs where twin and original predict the same class; Pearson / Spearman: "
           "correlation of original and twin test accuracy across members.", "",
           headline_table(summary), "", "## Claims", "", _claims_preamble(), "",
           claims_table(summary), "", "## Findings", "", *findings(summary), "",
           "## Figures", "", *[f"![{name}]({FIGURES_DIR}/{name})" for name in figure_files], ""]
  _write_atomically(os.path.join(workdir, REPORT_FILE), "\n".join(lines))
  _write_atomically(os.path.join(workdir, SUMMARY_FILE), json.dumps(summary, indent=1))
  print("\n".join(lines[:lines.index("## Figures")]), flush=True)
  print(f"Written to {workdir}: {REPORT_FILE}, {SUMMARY_FILE}, {FIGURES_DIR}/.", flush=True)
  return summary


def _claims_preamble() -> str:
  return (f"Each claim of the paper, tested here. Values are means over members (a member's "
          f"twins in a sparsity band averaged first), with 95 % percentile-bootstrap intervals "
          f"over members; correlations have Fisher-z intervals. Paired comparisons interpolate "
          f"each member's own curve of the target-sparsity method (its twins' accuracy over "
          f"their sparsities) at its other twin's achieved sparsity. Thresholds: robust = a "
          f"drop of at most {ROBUST_DROP:g}; agreeing highly = Cohen's kappa above "
          f"{HIGH_KAPPA:g}; highly correlated = Pearson r above {HIGH_CORRELATION:g}; the "
          f"crossover at {CROSSOVER_SPARSITY:.0%} sparsity. Verdict: holds (the interval lies on "
          "the claim's side of the threshold), fails (on the other side), inconclusive (it "
          "straddles the threshold), not tested (no twins there, or every twin at the same "
          "accuracy, so that no correlation is defined).")


def _write_atomically(path: str, text: str) -> None:
  with open(path + ".tmp", "w") as file:
    file.write(text)
  os.replace(path + ".tmp", path)
