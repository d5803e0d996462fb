"""The sparsified-twins report: ``summary.json``, ``report.md`` and ``figures/*.png``.

Built from each run's cached test-set predictions (see
:func:`jaxsparse.twins.cache_predictions`), so it is cheap to rebuild.
"""

from __future__ import annotations

import json
import os

import matplotlib
matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jaxsparse import analysis, sparsify  # noqa: E402
from jaxsparse.population import GRID_FIELDS  # noqa: E402
from jaxsparse.workdir import FIGURES_DIR, REPORT_FILE, SUMMARY_FILE  # noqa: E402


def _layers(result: dict) -> dict[str, np.ndarray]:
  return {name[len("layer/"):].replace("/kernel", ""): value
          for name, value in result.items() if name.startswith("layer/")}


def _diverged(result: dict) -> np.ndarray:
  """Which members of a run diverged (all False for caches written before the flag)."""
  return np.asarray(result.get("diverged", np.zeros(len(result["accuracy"]), bool)), bool)


def summarise(table: pd.DataFrame, original: dict, twins: list) -> dict:
  """The study's numbers: one entry per (method, level) with per-member arrays.

  Members whose original or twin training diverged (non-finite loss or
  weights; see :func:`jaxsparse.engine.train_member_epoch`) are left out of
  an entry's arrays and statistics and listed in its ``diverged_members``.
  """
  fields = [field for field in GRID_FIELDS if field != "sparsity"]
  original_ok = ~_diverged(original)
  entries = []
  for run, result in twins:
    keep = original_ok & ~_diverged(result)
    original_accuracy, twin_accuracy = original["accuracy"][keep], result["accuracy"][keep]
    original_predictions, twin_predictions = original["predictions"][keep], \
        result["predictions"][keep]
    drop = original_accuracy - twin_accuracy
    effects = analysis.hyperparameter_effects(table[keep].reset_index(drop=True), drop, fields)
    entries.append({
        "method": run.method, "level": run.level, "level_field": run.level_field,
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
        "agreement_where_original_correct": analysis.agreement_where_correct(
            original_predictions, twin_predictions, original["labels"]).tolist(),
        "pearson": analysis.pearson(original_accuracy, twin_accuracy),
        "spearman": analysis.spearman(original_accuracy, twin_accuracy),
        "twin_accuracy_distribution": analysis.distribution(twin_accuracy),
        "hyperparameter_effects": effects.to_dict(orient="records"),
    })
  return {"original": {"members": int(len(table)),
                       "test_accuracy": original["accuracy"].tolist(),
                       "diverged_members": np.flatnonzero(~original_ok).tolist(),
                       "distribution": analysis.distribution(original["accuracy"][original_ok]),
                       "hyperparameters": table.to_dict(orient="records")},
          "twins": entries}


def headline_table(summary: dict) -> str:
  """Markdown: one line per (method, level) with the population's means."""
  lines = ["| method | level | sparsity | twin accuracy (mean ± std) | drop | agreement | "
           "agreement where original right | Pearson r | Spearman ρ |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  original = summary["original"]["distribution"]
  lines.append(f"| original (dense) | | 0 | {original['mean']:.4f} ± {original['std']:.4f} | | "
               "| | | |")
  for entry in summary["twins"]:
    level = f"{sparsify.declaration(entry['method']).twin_level.label} {entry['level']:g}"
    accuracy = entry["twin_accuracy_distribution"]
    lines.append(
        f"| {entry['method']} | {level} | {np.mean(entry['sparsity']):.3f} | "
        f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f} | {np.mean(entry['accuracy_drop']):.4f} | "
        f"{np.mean(entry['agreement']):.3f} | "
        f"{np.nanmean(entry['agreement_where_original_correct']):.3f} | "
        f"{entry['pearson']:.3f} | {entry['spearman']:.3f} |")
  return "\n".join(lines)


def _interpolated_accuracy(entries: list[dict], sparsity: float) -> float | None:
  """Mean accuracy of a target-sparsity method at ``sparsity``, linearly interpolated."""
  points = sorted((np.mean(e["sparsity"]), np.mean(e["twin_accuracy"])) for e in entries)
  if not points or not points[0][0] <= sparsity <= points[-1][0]:
    return None
  return float(np.interp(sparsity, [p[0] for p in points], [p[1] for p in points]))


def findings(summary: dict) -> list[str]:
  """Findings in words, computed from the summary (no hand-written claims)."""
  by_method: dict[str, list[dict]] = {}
  for entry in summary["twins"]:
    by_method.setdefault(entry["method"], []).append(entry)
  lines = []
  if summary["original"].get("diverged_members"):
    lines.append(f"- Original members {summary['original']['diverged_members']} diverged "
                 "(non-finite loss or weights) and are left out of every statistic.")
  for entry in summary["twins"]:
    twin_only = sorted(set(entry["diverged_members"]) -
                       set(summary["original"].get("diverged_members", [])))
    if twin_only:
      lines.append(f"- The {entry['method']} {entry['level']:g} twins of members {twin_only} "
                   "diverged and are left out of that entry.")
  for method, entries in by_method.items():
    agreements = [np.mean(e["agreement"]) for e in entries]
    correlations = [e["pearson"] for e in entries]
    lines.append(
        f"- **{method}**: mean sparsity {min(np.mean(e['sparsity']) for e in entries):.1%} to "
        f"{max(np.mean(e['sparsity']) for e in entries):.1%}; mean accuracy drop "
        f"{min(np.mean(e['accuracy_drop']) for e in entries):+.4f} to "
        f"{max(np.mean(e['accuracy_drop']) for e in entries):+.4f}; agreement with the "
        f"originals {min(agreements):.3f} to {max(agreements):.3f}; Pearson r of original vs "
        f"twin accuracy {np.nanmin(correlations):.3f} to {np.nanmax(correlations):.3f}.")
    strongest = max(entries, key=lambda e: np.mean(e["sparsity"]))
    if strongest["hyperparameter_effects"]:
      effect = strongest["hyperparameter_effects"][0]
      lines.append(
          f"  At its sparsest level ({np.mean(strongest['sparsity']):.1%}), the grid field that "
          f"separates the accuracy drop most is `{effect['field']}`: mean drop "
          f"{effect['mean_drop_there']:.4f} at {effect['largest_drop_at']} against "
          f"{effect['mean_drop_there_min']:.4f} at {effect['smallest_drop_at']}.")
  lines += _target_versus_outcome(by_method)
  return lines


def _target_versus_outcome(by_method: dict[str, list[dict]]) -> list[str]:
  """Each level of a method whose sparsity is an outcome, against every method pruning to a
  target, interpolated at the outcome's mean sparsity."""
  specs = {method: sparsify.declaration(method) for method in by_method}
  targets = [method for method, spec in specs.items() if spec.twin_level.setting == "sparsity"]
  lines = []
  for method, spec in specs.items():
    if method in targets:
      continue
    for entry in by_method[method]:
      sparsity = float(np.mean(entry["sparsity"]))
      level = f"{spec.twin_level.label} {entry['level']:g}"
      for target in targets:
        other = specs[target]
        accuracy = _interpolated_accuracy(by_method[target], sparsity)
        if accuracy is None:
          lines.append(f"- {spec.title[0].upper() + spec.title[1:]} at {level} reaches "
                       f"{sparsity:.1%} sparsity, outside the range of the {other.abbreviation} "
                       "twins, so the two are not compared there.")
          continue
        own = float(np.mean(entry["twin_accuracy"]))
        ahead = other.title if accuracy > own else spec.title
        lines.append(f"- At {sparsity:.1%} sparsity ({spec.abbreviation}, {level}) {ahead} is "
                     f"ahead: {other.abbreviation} {accuracy:.4f} (interpolated) vs "
                     f"{spec.abbreviation} {own:.4f} mean accuracy.")
  return lines


def _figures(summary: dict, directory: str) -> list[str]:
  os.makedirs(directory, exist_ok=True)
  by_method: dict[str, list[dict]] = {}
  for entry in summary["twins"]:
    by_method.setdefault(entry["method"], []).append(entry)
  original = summary["original"]["distribution"]
  written = []

  figure, axis = plt.subplots(figsize=(6, 4))
  for method, entries in by_method.items():
    entries = sorted(entries, key=lambda e: np.mean(e["sparsity"]))
    x = [np.mean(e["sparsity"]) for e in entries]
    axis.plot(x, [np.mean(e["twin_accuracy"]) for e in entries], "o-", label=method)
    axis.fill_between(x, [np.quantile(e["twin_accuracy"], 0.25) for e in entries],
                      [np.quantile(e["twin_accuracy"], 0.75) for e in entries], alpha=0.2)
  axis.axhline(original["mean"], color="gray", linestyle="--", label="original (mean)")
  axis.set(xlabel="achieved sparsity (population mean)", ylabel="test accuracy",
           title="Twin accuracy vs sparsity (mean, 25-75 % band)")
  axis.legend()
  written.append(_save(figure, directory, "accuracy_vs_sparsity.png"))

  figure, axis = plt.subplots(figsize=(6, 4))
  for method, entries in by_method.items():
    entries = sorted(entries, key=lambda e: np.mean(e["sparsity"]))
    axis.plot([np.mean(e["sparsity"]) for e in entries],
              [np.mean(e["agreement"]) for e in entries], "o-", label=method)
  axis.set(xlabel="achieved sparsity (population mean)", ylabel="agreement with original",
           title="Twin / original agreement vs sparsity")
  axis.legend()
  written.append(_save(figure, directory, "agreement_vs_sparsity.png"))

  entries = summary["twins"]
  figure, axes = plt.subplots(1, len(entries), figsize=(3 * len(entries), 3), squeeze=False)
  for axis, entry in zip(axes[0], entries):
    axis.scatter(entry["original_accuracy"], entry["twin_accuracy"], s=10)
    low = min(min(entry["original_accuracy"]), min(entry["twin_accuracy"]))
    axis.plot([low, 1], [low, 1], color="gray", linewidth=0.5)
    axis.set_title(f"{entry['method']} {entry['level']:g}\nr = {entry['pearson']:.2f}",
                   fontsize=8)
    axis.set_xlabel("original accuracy", fontsize=8)
  axes[0][0].set_ylabel("twin accuracy")
  written.append(_save(figure, directory, "original_vs_twin.png"))

  layers = list(entries[0]["layer_sparsity"]) if entries else []
  figure, axis = plt.subplots(figsize=(7, 4))
  width = 0.8 / max(len(entries), 1)
  for index, entry in enumerate(entries):
    axis.bar(np.arange(len(layers)) + index * width,
             [np.mean(entry["layer_sparsity"][layer]) for layer in layers], width,
             label=f"{entry['method']} {entry['level']:g}")
  axis.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, fontsize=8)
  axis.set(ylabel="sparsity (population mean)", title="Layer-wise sparsity per method and level")
  axis.legend(fontsize=6)
  written.append(_save(figure, directory, "layer_sparsity.png"))
  return written


def _save(figure, directory: str, name: str) -> str:
  path = os.path.join(directory, name)
  figure.tight_layout()
  figure.savefig(path + ".tmp.png", dpi=120)
  plt.close(figure)
  os.replace(path + ".tmp.png", path)
  return name


def write_report(workdir: str, config, table: pd.DataFrame, original: dict,
                 twins: list) -> dict:
  """Writes summary.json, report.md and figures/ under ``workdir``; returns the summary."""
  summary = summarise(table, original, twins)
  figures = _figures(summary, os.path.join(workdir, FIGURES_DIR))
  lines = [f"# Sparsified twins of a {config.model.name} zoo on {config.data.name}", "",
           f"{summary['original']['members']} members, trained densely for "
           f"{config.training.num_epochs} epochs; twins derived from their final checkpoints "
           f"and fine-tuned for {config.twins.num_epochs} epoch(s). Agreement: fraction of test "
           "inputs where twin and original predict the same class; Pearson / Spearman: "
           "correlation of original and twin test accuracy across members.", "",
           headline_table(summary), "", "## Findings", "", *findings(summary), "",
           "## Figures", "", *[f"![{name}]({FIGURES_DIR}/{name})" for name in figures], ""]
  _write_atomically(os.path.join(workdir, REPORT_FILE), "\n".join(lines))
  _write_atomically(os.path.join(workdir, SUMMARY_FILE), json.dumps(summary, indent=1))
  print("\n".join(lines[:lines.index("## Figures")]), flush=True)
  print(f"Written to {workdir}: {REPORT_FILE}, {SUMMARY_FILE}, {FIGURES_DIR}/.", flush=True)
  return summary


def _write_atomically(path: str, text: str) -> None:
  with open(path + ".tmp", "w") as file:
    file.write(text)
  os.replace(path + ".tmp", path)
