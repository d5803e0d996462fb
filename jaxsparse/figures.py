"""Paper-ready figures of a twins study, from its tidy table (:func:`jaxsparse.tables.load_study`).

Every plot shows dispersion across members (medians with interquartile
ranges), the dense originals as their own point, legends outside the data,
shared axes across facets, and is saved as PNG (200 dpi) and PDF. Diverged
members (and twins of diverged originals) are left out. The study's report
uses :func:`study_figures`; each figure is also a public function that draws
on a table a user filtered::

  from jaxsparse import figures, tables
  rows = tables.load_study("runs/default")
  figure = figures.original_vs_twin(rows[rows.run == "magnitude_global"], color_by="initializer")
  figures.save(figure, "plots", "global_by_initializer")
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jaxsparse import analysis  # noqa: E402
from jaxsparse.analysis import CROSSOVER_SPARSITY  # noqa: E402
#: Hyperparameters tried, in order, when no ``color_by`` is given.
COLOR_FIELDS = ("activation", "initializer", "optimizer", "learning_rate", "dropout_rate", "seed")
_DENSE_STYLE = dict(color="black", marker="D", linestyle="none", markersize=6)
#: Okabe & Ito's colour-blind-safe palette (black left for the dense originals): one hue per
#: method (and scope).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
#: One marker per method, so that series differ in shape as well as hue.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def series_style(index: int) -> dict:
  """The colour and marker of the ``index``-th series (a method at one scope)."""
  return dict(color=PALETTE[index % len(PALETTE)], marker=MARKERS[index % len(MARKERS)])


def level_color(color: str, level_index: int, num_levels: int) -> tuple:
  """``color`` lightened for the lower levels of a series (its top level at full strength):
  one hue per method, one lightness per level."""
  rgb = np.asarray(matplotlib.colors.to_rgb(color))
  share = 0.55 * (num_levels - 1 - level_index) / max(num_levels - 1, 1)
  return tuple(rgb + (1 - rgb) * share)


def healthy(rows: pd.DataFrame) -> pd.DataFrame:
  """The rows whose member (and, for a twin, its original) did not diverge."""
  keep = ~rows.get("diverged", pd.Series(False, index=rows.index)).fillna(False).astype(bool)
  if "original_diverged" in rows:
    keep &= ~rows["original_diverged"].fillna(False).astype(bool)
  return rows[keep]


def _title(method: str) -> str:
  """The method's name in prose (its declaration's title), or the name a user gave it."""
  from jaxsparse import sparsify
  try:
    return sparsify.declaration(method).title
  except Exception:  # a method whose module is not imported: its name, readable
    return method.split(":")[-1].replace("_", " ")


def series_label(rows: pd.DataFrame) -> str:
  """'magnitude pruning (global)' for a run's rows: its method's title, with its scope if it
  has one."""
  method, scope = rows["method"].iloc[0], rows["scope"].iloc[0]
  title = _title(method)
  return title if scope is None or pd.isna(scope) else f"{title} ({scope.replace('_', '-')})"


def level_label(level_field: str, level: float) -> str:
  """'target 90 %' or 'KL weight 30': a level as the method's declaration names it."""
  if level_field in ("target_sparsity", "sparsity"):
    return f"target {level:.0%}".replace("%", " %")
  return f"{level_field.replace('_', ' ').replace('kl ', 'KL ')} {level:g}"


def _twins(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
  """The healthy twin rows by series (method and scope: the populations of a series'
  levels together), in the table's order."""
  twins = healthy(rows[rows["run"] != "original"])
  series = twins["method"] + twins["scope"].fillna("").map(lambda scope: f"/{scope}")
  return {label: group for label, group in twins.groupby(series, sort=False)}


def _quartiles(values) -> tuple[float, float, float]:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  if not len(values):
    return np.nan, np.nan, np.nan
  low, median, high = np.quantile(values, (0.25, 0.5, 0.75))
  return median, median - low, high - median


def _level_points(group: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
  """Per level: medians of ``x`` and ``y`` and their interquartile distances."""
  points = []
  for level, members in group.groupby("level", sort=True):
    x_median, x_low, x_high = _quartiles(members[x])
    y_median, y_low, y_high = _quartiles(members[y])
    points.append(dict(level=level, x=x_median, x_low=x_low, x_high=x_high, y=y_median,
                       y_low=y_low, y_high=y_high))
  return pd.DataFrame(points).sort_values("x")


def _errorbar(axis, points: pd.DataFrame, **style):
  return axis.errorbar(points.x, points.y, yerr=[points.y_low, points.y_high],
                       xerr=[points.x_low, points.x_high], capsize=2, **style)


def _legend_outside(axis):
  """The axis's legend, to the right of the plot."""
  return axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)


def accuracy_vs_sparsity(rows: pd.DataFrame) -> plt.Figure:
  """Twin test accuracy against achieved sparsity per method, per level the median and
  interquartile range over members (both axes), with the dense originals' point."""
  figure, axis = plt.subplots(figsize=(6.5, 4), layout="constrained")
  originals = healthy(rows[rows["run"] == "original"])
  if len(originals):
    median, low, high = _quartiles(originals["test_accuracy"])
    axis.errorbar([0.0], [median], yerr=[[low], [high]], capsize=3, label="dense originals",
                  **_DENSE_STYLE)
  for index, (run, group) in enumerate(_twins(rows).items()):
    _errorbar(axis, _level_points(group, "achieved_sparsity", "test_accuracy"),
              label=series_label(group), **series_style(index))
  axis.axvline(CROSSOVER_SPARSITY, color="gray", linestyle=":", linewidth=0.8,
               label="paper's crossover (80 %)")
  axis.set(xlabel="achieved sparsity", ylabel="test accuracy", xlim=(-0.03, 1.0),
           title="Twin accuracy vs sparsity (median, interquartile range)")
  _legend_outside(axis)
  return figure


def agreement_vs_sparsity(rows: pd.DataFrame, num_classes: int = 10) -> plt.Figure:
  """Agreement and Cohen's kappa of twins with their originals against achieved sparsity
  (two panels sharing the x axis), with the chance levels."""
  figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, layout="constrained")
  for index, (run, group) in enumerate(_twins(rows).items()):
    for axis, column in zip(axes, ("agreement", "cohen_kappa")):
      if column in group:
        _errorbar(axis, _level_points(group, "achieved_sparsity", column),
                  label=series_label(group), **series_style(index))
  axes[0].axhline(1 / num_classes, color="gray", linestyle="--", linewidth=0.8,
                  label=f"chance (1/{num_classes}, uniform guesses)")
  axes[1].axhline(0.0, color="gray", linestyle="--", linewidth=0.8, label="chance (κ = 0)")
  axes[0].set(xlabel="achieved sparsity", ylabel="agreement with the original",
              title="Agreement (fraction of test inputs)")
  axes[1].set(xlabel="achieved sparsity", ylabel="Cohen's κ", title="Cohen's κ")
  handles, labels = [], []
  for axis in axes:
    for handle, label in zip(*axis.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9,
                frameon=False)
  return figure


def default_color_field(rows: pd.DataFrame) -> str:
  """The first of :data:`COLOR_FIELDS` that varies across the rows."""
  for field in COLOR_FIELDS:
    if field in rows and rows[field].nunique() > 1:
      return field
  return "seed"


def original_vs_twin(rows: pd.DataFrame, color_by: str | None = None) -> plt.Figure:
  """Per member, twin against original test accuracy, one facet per (method, level) with
  shared axes, coloured by the hyperparameter ``color_by``; Pearson's r in each title."""
  twins = _twins(rows)
  color_by = color_by or default_color_field(rows)
  categories = sorted(rows[color_by].dropna().unique().tolist()) if color_by in rows else []
  colors = dict(zip(categories, PALETTE * (len(categories) // len(PALETTE) + 1)))
  field_name = color_by.replace("_", " ")
  columns = max((group["level"].nunique() for group in twins.values()), default=1)
  num_rows = max(len(twins), 1)
  figure, axes = plt.subplots(num_rows, columns, figsize=(2.6 * columns + 1.5, 2.6 * num_rows),
                              sharex=True, sharey=True, squeeze=False, layout="constrained")
  for axis in axes.flat:
    axis.set_visible(False)
  for row_axes, (run, group) in zip(axes, twins.items()):
    for axis, (level, members) in zip(row_axes, group.groupby("level", sort=True)):
      axis.set_visible(True)
      for category in categories:
        chosen = members[members[color_by] == category]
        axis.scatter(chosen["original_test_accuracy"], chosen["test_accuracy"], s=14,
                     color=colors[category], label=f"{field_name} = {category}")
      axis.axline((0, 0), slope=1, color="gray", linewidth=0.6)
      r = analysis.pearson(members["original_test_accuracy"].to_numpy(),
                           members["test_accuracy"].to_numpy())
      correlation = f"r = {r:.2f}" if np.isfinite(r) else "r undefined"
      axis.set_title(f"{series_label(group)}\n{level_label(members['level_field'].iloc[0], level)}"
                     f", {correlation}", fontsize=9)
  for axis in axes[-1]:
    axis.set_xlabel("original accuracy")
  for axis in axes[:, 0]:
    axis.set_ylabel("twin accuracy")
  visible = [axis for axis in axes.flat if axis.get_visible()]
  if visible:
    handles, labels = visible[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9,
                  frameon=False)
  return figure


def _legend_below(axis, offset: float = 0.42):
  """A facet's legend under its axes, below its tick labels and x label (``offset``, in
  axes heights): small multiples, so no legend over the data."""
  return axis.legend(fontsize=7, frameon=False, loc="upper center", ncol=2,
                     bbox_to_anchor=(0.5, -offset))


def _facets(count: int, width: float = 3.2, height: float = 2.8, sharey: bool = True):
  """A row of ``count`` small multiples (at most 4 per row) sharing their y axis."""
  columns = min(count, 4)
  num_rows = -(-count // columns)
  figure, axes = plt.subplots(num_rows, columns, figsize=(width * columns + 1.6,
                                                          height * num_rows),
                              sharey=sharey, squeeze=False, layout="constrained")
  figure.get_layout_engine().set(h_pad=0.15)
  for axis in axes.flat[count:]:
    axis.set_visible(False)
  return figure, axes.flat[:count]


def layer_sparsity(rows: pd.DataFrame) -> plt.Figure:
  """Sparsity of each layer per (method, level): one facet per method, median bars with
  interquartile ranges, one lightness of the method's hue per level."""
  columns = [column for column in rows if column.startswith("layer_sparsity/")]
  layers = [column.split("/", 1)[1] for column in columns]
  twins = _twins(rows)
  figure, axes = _facets(max(len(twins), 1), width=max(3.2, 0.55 * len(layers) + 1.2))
  for index, (axis, (run, group)) in enumerate(zip(axes, twins.items())):
    levels = list(group.groupby("level", sort=True))
    width = 0.8 / max(len(levels), 1)
    style = series_style(index)
    for level_index, (level, members) in enumerate(levels):
      quartiles = np.array([_quartiles(members[column]) for column in columns]).reshape(-1, 3)
      axis.bar(np.arange(len(layers)) + level_index * width, quartiles[:, 0], width,
               yerr=quartiles[:, 1:].T, capsize=1.5,
               color=level_color(style["color"], level_index, len(levels)),
               label=level_label(members["level_field"].iloc[0], level))
    axis.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, rotation=45, ha="right",
                    fontsize=8)
    axis.set(ylim=(0, 1.02), title=series_label(group))
    axis.title.set_fontsize(9)
    _legend_below(axis)
  axes[0].set_ylabel("sparsity")
  figure.suptitle("Layer-wise sparsity (median, interquartile range)")
  return figure


def convergence(curves: dict[str, dict[str, pd.DataFrame]], originals: np.ndarray) -> plt.Figure:
  """Twin test accuracy per fine-tuning epoch, one facet per method: per level (series
  label -> level label -> [epochs, members] with the epochs as index, 0 the twins before
  fine-tuning) the median with its interquartile band, one lightness of the method's hue
  per level, and the dense originals' median and band."""
  figure, axes = _facets(max(len(curves), 1))
  median, low, high = _quartiles(originals)
  for index, (axis, (series, levels)) in enumerate(zip(axes, curves.items())):
    style = series_style(index)
    for level_index, (label, accuracy) in enumerate(levels.items()):
      epochs = np.asarray(accuracy.index)
      quartiles = np.nanquantile(accuracy.to_numpy(np.float64), (0.25, 0.5, 0.75), axis=1)
      color = level_color(style["color"], level_index, len(levels))
      axis.plot(epochs, quartiles[1], marker=style["marker"], markersize=3, color=color,
                label=label)
      axis.fill_between(epochs, quartiles[0], quartiles[2], color=color, alpha=0.15)
    axis.axhline(median, color="black", linestyle="--", linewidth=0.9,
                 label="dense originals (median)")
    axis.axhspan(median - low, median + high, color="gray", alpha=0.12)
    axis.set(xlabel="fine-tuning epoch", title=series)
    axis.title.set_fontsize(9)
    axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    _legend_below(axis)
  axes[0].set_ylabel("twin test accuracy")
  figure.suptitle("Convergence of the twins' fine-tuning (median, interquartile band)")
  return figure


def save(figure: plt.Figure, directory: str, name: str) -> str:
  """Writes ``name.png`` (200 dpi) and ``name.pdf`` under ``directory`` (atomically, with
  legends outside the axes kept in) and closes the figure; returns the PNG's file name."""
  os.makedirs(directory, exist_ok=True)
  for extension, options in (("png", dict(dpi=200)), ("pdf", {})):
    path = os.path.join(directory, f"{name}.{extension}")
    figure.savefig(path + ".tmp", format=extension, bbox_inches="tight", **options)
    os.replace(path + ".tmp", path)
  plt.close(figure)
  return f"{name}.png"


def study_figures(rows: pd.DataFrame, directory: str, color_by: str | None = None,
                  num_classes: int = 10) -> list[str]:
  """The report's figures of a study's table (see :func:`jaxsparse.tables.load_study`);
  returns the PNG file names written under ``directory`` (none if no twin is healthy)."""
  if not _twins(rows):
    return []
  return [save(accuracy_vs_sparsity(rows), directory, "accuracy_vs_sparsity"),
          save(agreement_vs_sparsity(rows, num_classes), directory, "agreement_vs_sparsity"),
          save(original_vs_twin(rows, color_by), directory, "original_vs_twin"),
          save(layer_sparsity(rows), directory, "layer_sparsity")]
