"""The sparsified-twins report: ``summary.json``, ``report.md`` and ``figures/*.png``.

Built from each run's cached test-set predictions (see
:func:`jaxsparse.twins.cache_predictions`), so it is cheap to rebuild.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from jaxsparse import analysis, claims, sparsify, tables
from jaxsparse.analysis import (CROSSOVER_SPARSITY, HIGH_CORRELATION, HIGH_KAPPA, ROBUST_DROP,
                                ROBUST_DROP_SENSITIVITY, ROBUST_RELATIVE_DROP)
from jaxsparse.population import GRID_FIELDS
from jaxsparse.workdir import FIGURES_DIR, REPORT_FILE, SUMMARY_FILE


def _layers(result: dict) -> dict[str, np.ndarray]:
  return {name[len("layer/"):].replace("/kernel", ""): value
          for name, value in result.items() if name.startswith("layer/")}


def _diverged(result: dict) -> np.ndarray:
  """Which members of a run diverged (all False for caches written before the flag)."""
  return np.asarray(result.get("diverged", np.zeros(len(result["accuracy"]), bool)), bool)


def _level_record(result: dict, members: slice) -> dict:
  """The part of a run's prediction record that belongs to one level's twins."""
  return {name: value if name == "labels" else value[members] for name, value in result.items()}


def _finite_or_none(value: float) -> float | None:
  return float(value) if np.isfinite(value) else None


def summarise(table: pd.DataFrame, original: dict, twins: list) -> dict:
  """The study's numbers: one entry per (method, scope, level) with per-member arrays.

  ``twins`` holds, per population of twins (:class:`jaxsparse.twins.TwinRun`,
  all its levels), its prediction record and its test accuracy per
  fine-tuning epoch (a frame: epochs by members; or None). Members whose original or
  twin training diverged (non-finite loss or weights; see
  :func:`jaxsparse.engine.train_member_epoch`) are left out of an entry's
  arrays and statistics and listed in its ``diverged_members``. Statistics:
  see :mod:`jaxsparse.analysis`; the claims computed from them:
  :func:`jaxsparse.claims.claims`.
  """
  original_ok = ~_diverged(original)
  entries = []
  for run, result, per_epoch in twins:
    for index, level in enumerate(run.levels):
      members = run.level_members(len(table), index)
      entries.append(_entry(table, original, original_ok, run, level,
                            _level_record(result, members),
                            None if per_epoch is None else np.asarray(per_epoch)[:, members]))
  summary = {"original": {"members": int(len(table)),
                          "test_accuracy": original["accuracy"].tolist(),
                          "diverged_members": np.flatnonzero(~original_ok).tolist(),
                          "distribution": analysis.distribution(
                              original["accuracy"][original_ok]),
                          "hyperparameters": table.to_dict(orient="records")},
             "twins": entries}
  summary["claims"] = claims.claims(summary)
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


def claims_table(summary: dict) -> str:
  """Markdown: one row per claim (see :func:`jaxsparse.claims.claims`)."""
  number = lambda value: "n/a" if value is None else f"{value:.3f}"
  p_value = lambda row: "" if row.get("p_holm") is None else f"{row['p_holm']:.3g}"
  lines = ["| claim | statistic | value | 95 % interval | unit (n) | interval | threshold | "
           "family | p (Holm) | members | verdict |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for row in summary["claims"]:
    lines.append(f"| {row['claim']} | {row['statistic']} | {number(row['value'])} | "
                 f"[{number(row['ci_low'])}, {number(row['ci_high'])}] | {row['unit']} "
                 f"({row['units']}) | {row['interval_method']} | {row['threshold']:g} | "
                 f"{row['family']} | {p_value(row)} | {row['members']} | "
                 f"**{row['verdict']}** |")
  return "\n".join(lines)


def verdicts_table(summary: dict) -> str:
  """Markdown: the claims' verdicts at a glance, one column per series (method and scope), and
  the paired comparisons (the primary family) one row each; no values, which is what a
  reader comparing runs on two machines should compare (values agree to about 3 decimals)."""
  rows = [row for row in summary["claims"] if "kind" in row]
  series = list(dict.fromkeys(row["series"] for row in rows if row["kind"] != "paired"))
  cell = lambda kind, name, **match: ", ".join(
      row["verdict"] for row in rows if row["kind"] == kind and row["series"] == name and
      all(row.get(key) == value for key, value in match.items())) or ""
  bands = list(dict.fromkeys(row["band"] for row in rows if row["kind"] == "agreement"))
  lines = ["| claim | " + " | ".join(series) + " |", "| --- |" + " --- |" * len(series),
           f"| robust (drop <= {ROBUST_DROP:g} at {claims.ROBUST_BAND[0]:.0%} to "
           f"{claims.ROBUST_BAND[1]:.0%}) | " + " | ".join(cell("robust", name) for name in series)
           + " |"]
  lines += [f"| twins agree highly (kappa > {HIGH_KAPPA:g}), {band} | " +
            " | ".join(cell("agreement", name, band=band) for name in series) + " |"
            for band in bands]
  lines.append(f"| accuracies correlated (r > {HIGH_CORRELATION:g}), per level | " +
               " | ".join(cell("correlation", name) for name in series) + " |")
  paired = [row for row in rows if row["kind"] == "paired"]
  if paired:
    lines += ["", "| paired comparison (primary family, Holm) | verdict |", "| --- | --- |"]
    lines += [f"| {row['claim'].replace(' (paired per member)', '')} | {row['verdict']} |"
              for row in paired]
  return "\n".join(lines)


def sensitivity_lines(summary: dict) -> list[str]:
  """The robustness verdicts at the other thresholds, one line per method."""
  return [f"- {row['claim'].split(' is robust')[0]}: " + "; ".join(
      f"{threshold}: {verdict}" for threshold, verdict in row["sensitivity"].items())
      for row in summary["claims"] if row.get("sensitivity")]


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
  for series, entries in claims.series_entries(summary).items():
    entries = [entry for entry in entries if entry["members"]]
    if not entries:
      lines.append(f"- **{series}**: no twin left to summarise (every one diverged).")
      continue
    mean = lambda key: [float(np.nanmean(e[key])) for e in entries]
    correlations = [np.nan if e["pearson"] is None else e["pearson"] for e in entries]
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
  from jaxsparse import figures  # matplotlib is imported only when figures are drawn
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
    run_rows = rows[rows.run == name]
    if not isinstance(per_epoch, pd.DataFrame):  # epochs 1, 2, ...
      per_epoch = pd.DataFrame(per_epoch, index=np.arange(1, len(per_epoch) + 1))
    levels = {}
    for index, level in enumerate(run.levels):
      members = np.arange(per_epoch.shape[1])[run.level_members(num_originals, index)]
      members = members[np.isin(members, healthy[healthy.run == name]["member"])]
      if len(members):
        label = figures.level_label(run_rows["level_field"].iloc[0], level)
        levels[label] = per_epoch.iloc[:, members]
    if levels:  # (a series' levels may sit in several populations)
      curves.setdefault(figures.series_label(run_rows), {}).update(levels)
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
           headline_table(summary), "", "## Claims", "", _claims_preamble(summary), "",
           verdicts_table(summary), "", "In numbers:", "", claims_table(summary), "", "Robustness at other thresholds (the verdict at each; "
           "this project's choice of 0.02 is not the paper's):", "",
           *sensitivity_lines(summary), "", "## Findings", "", *findings(summary), "",
           "## Figures", "", *[f"![{name}]({FIGURES_DIR}/{name})" for name in figure_files], ""]
  _write_atomically(os.path.join(workdir, REPORT_FILE), "\n".join(lines))
  _write_atomically(os.path.join(workdir, SUMMARY_FILE), json.dumps(summary, indent=1))
  print("\n".join(lines[:lines.index("## Figures")]), flush=True)
  print(f"Written to {workdir}: {REPORT_FILE}, {SUMMARY_FILE}, {FIGURES_DIR}/.", flush=True)
  return summary


def _claims_preamble(summary: dict) -> str:
  units = {row["unit"] for row in summary["claims"] if row["interval_method"] != "fisher_z"}
  if "grid cell" in units:
    estimand = ("This zoo is a grid of configurations with several seeds each, so a claim's "
                "value is the mean over configurations of their seeds' mean, and its 95 % "
                "interval is a t interval over the configurations' means: it estimates "
                "configurations like these (unit: grid cell). The narrower interval for these "
                "very configurations (a bootstrap of seeds within configurations) is "
                "summary.json's corner_ci.")
  else:
    estimand = ("Members differ by their seed, so a claim's value is the mean over members, "
                "with a 95 % Student's t interval over members (unit: member).")
  return (f"Each claim of the paper, tested here, as this project operationalises it (the "
          f"paper gives no thresholds). {estimand} A member's twins in a sparsity band are "
          f"averaged first; correlations have Fisher-z intervals. Paired comparisons "
          f"interpolate each member's own curve of the target-sparsity method (its twins' "
          f"accuracy over their sparsities, anchored at its dense accuracy at 0 %) at its "
          f"other twin's achieved sparsity; they are the primary family, judged by "
          f"Holm-adjusted two-sided t-test p-values at 0.05 (the other claims are "
          f"descriptive, judged by their unadjusted intervals). This project's thresholds: "
          f"robust = a mean drop of at most {ROBUST_DROP:g} at "
          f"{claims.ROBUST_BAND[0]:.0%} to {claims.ROBUST_BAND[1]:.0%} sparsity (the same band "
          f"for every method; verdicts at {', '.join(f'{t:g}' for t in ROBUST_DROP_SENSITIVITY)} "
          f"and a relative {ROBUST_RELATIVE_DROP:.0%} below); agreeing highly = Cohen's kappa "
          f"above {HIGH_KAPPA:g}; highly correlated = Pearson r above {HIGH_CORRELATION:g}; the "
          f"crossover at {CROSSOVER_SPARSITY:.0%} sparsity. Verdict: holds (on the claim's side "
          "of the threshold), fails (on the other side), inconclusive (the interval straddles "
          "it, or the Holm-adjusted p is 0.05 or more), not tested (no twins there, or every "
          "twin at the same accuracy, so that no correlation is defined).")


def _write_atomically(path: str, text: str) -> None:
  with open(path + ".tmp", "w") as file:
    file.write(text)
  os.replace(path + ".tmp", path)
