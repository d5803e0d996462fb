"""The study's figures, drawn from a hand-made tidy table: dispersion, the dense point, chance
lines, legends outside the data, shared facet axes, PNG and PDF, diverged members left out."""

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from jaxsparse import figures  # noqa: E402


def _rows():
  rng = np.random.default_rng(0)
  activations = np.array(["tanh", "relu"] * 4)
  original = pd.DataFrame(dict(
      run="original", method="none", scope=None, member=range(8), original_member=range(8),
      activation=activations, seed=np.repeat([0, 1], 4), achieved_sparsity=0.0,
      test_accuracy=rng.uniform(0.7, 0.9, 8), diverged=[False] * 7 + [True],
      level_field=None, level=np.nan))
  frames = [original]
  for run, method, scope, field, levels, sparsity in (
      ("magnitude_layerwise", "magnitude", "layerwise", "target_sparsity", (0.5, 0.9), None),
      ("variational_dropout", "variational_dropout", None, "kl_weight", (100.0,), 0.7)):
    for index, level in enumerate(levels):
      twin = original.copy()
      twin["run"], twin["method"], twin["scope"] = run, method, scope
      twin["member"] = index * 8 + np.arange(8)
      twin["level_field"], twin["level"] = field, level
      twin["achieved_sparsity"] = sparsity or level
      twin["original_test_accuracy"] = original["test_accuracy"]
      twin["original_diverged"] = original["diverged"]
      twin["diverged"] = False
      twin["test_accuracy"] = original["test_accuracy"] - rng.uniform(0, 0.1, 8)
      twin["agreement"] = rng.uniform(0.5, 0.9, 8)
      twin["cohen_kappa"] = twin["agreement"] - 0.1
      twin["layer_sparsity/Conv_0"] = twin["achieved_sparsity"] * 0.5
      twin["layer_sparsity/Dense_0"] = twin["achieved_sparsity"]
      frames.append(twin)
  return pd.concat(frames, ignore_index=True)


def _legend_outside_every_axis(figure, legend):
  figure.canvas.draw()
  box = legend.get_window_extent()
  for axis in figure.axes:
    if axis.get_visible():
      assert box.x0 >= axis.get_window_extent().x1 - 1, "the legend overlaps the data"


def test_accuracy_vs_sparsity_has_the_dense_point_dispersion_and_an_outside_legend():
  figure = figures.accuracy_vs_sparsity(_rows())
  [axis] = figure.axes
  labels = axis.get_legend_handles_labels()[1]
  assert "dense originals" in labels and "magnitude pruning (layerwise)" in labels
  # Every series is an errorbar container with bars in x and y (interquartile ranges).
  containers = [c for c in axis.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
  assert len(containers) == 3 and all(c.has_yerr for c in containers)
  _legend_outside_every_axis(figure, axis.get_legend())


def test_agreement_panels_share_x_and_show_chance():
  figure = figures.agreement_vs_sparsity(_rows(), num_classes=10)
  agreement, kappa = figure.axes
  assert agreement.get_shared_x_axes().joined(agreement, kappa)
  chance = [line for line in agreement.get_lines() if line.get_label().startswith("chance")]
  assert chance and chance[0].get_ydata()[0] == pytest.approx(0.1)
  _legend_outside_every_axis(figure, figure.legends[0])


def test_original_vs_twin_facets_share_axes_colour_by_field_and_drop_diverged():
  figure = figures.original_vs_twin(_rows(), color_by="activation")
  visible = [axis for axis in figure.axes if axis.get_visible()]
  assert len(visible) == 3  # magnitude at 2 levels, VD at 1 (the 4th facet is empty)
  assert all(visible[0].get_shared_y_axes().joined(visible[0], axis) for axis in visible)
  points = sum(len(collection.get_offsets()) for collection in visible[0].collections)
  assert points == 7  # member 7's original diverged
  labels = figure.legends[0].get_texts()
  assert sorted(text.get_text() for text in labels) == ["activation = relu",
                                                        "activation = tanh"]
  _legend_outside_every_axis(figure, figure.legends[0])


def test_study_figures_writes_png_and_pdf(tmp_path):
  written = figures.study_figures(_rows(), str(tmp_path))
  assert written == ["accuracy_vs_sparsity.png", "agreement_vs_sparsity.png",
                     "original_vs_twin.png", "layer_sparsity.png"]
  for name in written:
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / name.replace(".png", ".pdf")).read_bytes()[:4] == b"%PDF"
  assert figures.study_figures(_rows()[lambda rows: rows.run == "original"], str(tmp_path)) == []


def test_convergence_facets_each_method_with_a_band_per_level_and_the_originals():
  rng = np.random.default_rng(1)
  epochs = pd.Index([0, 1, 2], name="epoch")
  curves = {"magnitude pruning (layerwise)": {
      "target 50 %": pd.DataFrame(rng.uniform(0.5, 0.8, (3, 8)), index=epochs),
      "target 90 %": pd.DataFrame(rng.uniform(0.2, 0.5, (3, 8)), index=epochs)},
      "variational dropout": {"KL weight 10": pd.DataFrame(rng.uniform(0.4, 0.6, (3, 8)),
                                                           index=epochs)}}
  figure = figures.convergence(curves, rng.uniform(0.7, 0.9, 8))
  magnitude, vd = [axis for axis in figure.axes if axis.get_visible()]
  assert magnitude.get_title() == "magnitude pruning (layerwise)"
  lines = {line.get_label(): line for line in magnitude.get_lines()}
  np.testing.assert_array_equal(lines["target 50 %"].get_xdata(), [0, 1, 2])
  np.testing.assert_allclose(lines["target 50 %"].get_ydata(),
                             np.median(curves["magnitude pruning (layerwise)"]["target 50 %"],
                                       axis=1))
  assert len(magnitude.collections) >= 2  # one interquartile band per level
  assert "dense originals (median)" in lines


def _study_rows(methods=4, levels=4, members=6):
  """A study of ``methods`` series at ``levels`` levels each, with made-up twins."""
  rng = np.random.default_rng(2)
  original = pd.DataFrame(dict(
      run="original", method="none", scope=None, member=range(members),
      original_member=range(members), activation=["tanh", "relu"] * (members // 2),
      learning_rate=[1e-3, 1e-4] * (members // 2), achieved_sparsity=0.0,
      test_accuracy=rng.uniform(0.7, 0.9, members), diverged=False, level_field=None,
      level=np.nan))
  series = [("magnitude_layerwise", "magnitude", "layerwise", "target_sparsity"),
            ("magnitude_global", "magnitude", "global", "target_sparsity"),
            ("variational_dropout", "variational_dropout", None, "kl_weight"),
            ("variational_dropout_straight_through", "variational_dropout_straight_through",
             None, "kl_weight")][:methods]
  frames = [original]
  for run, method, scope, field in series:
    for index in range(levels):
      level = (0.5, 0.8, 0.9, 0.95)[index] if field == "target_sparsity" else 10.0 ** index
      twin = original.copy()
      twin["run"], twin["method"], twin["scope"] = run, method, scope
      twin["member"] = index * members + np.arange(members)
      twin["level_field"], twin["level"] = field, level
      twin["achieved_sparsity"] = level if field == "target_sparsity" else 0.5 + 0.1 * index
      twin["original_test_accuracy"] = original["test_accuracy"]
      twin["original_diverged"] = False
      # One level whose twins all sit at chance: its correlation is undefined.
      twin["test_accuracy"] = 0.1 if index == 3 else original["test_accuracy"] - 0.05 * index
      twin["agreement"] = rng.uniform(0.5, 0.9, members)
      twin["cohen_kappa"] = twin["agreement"] - 0.1
      for layer in ("Conv_0", "Conv_1", "Dense_0"):
        twin[f"layer_sparsity/{layer}"] = twin["achieved_sparsity"]
      frames.append(twin)
  return pd.concat(frames, ignore_index=True)


def _texts(figure):
  figure.canvas.draw()
  return [text.get_text() for text in figure.findobj(matplotlib.text.Text) if text.get_text()]


def _styles(axis):
  """The (colour, marker) of every series drawn on ``axis`` (lines, error bars, bars)."""
  styles = []
  for line in axis.get_lines():
    if line.get_label().startswith(("_", "dense", "paper", "chance")):
      continue
    styles.append((matplotlib.colors.to_hex(line.get_color()), line.get_marker()))
  for container in axis.containers:
    if isinstance(container, matplotlib.container.BarContainer):
      styles.append((matplotlib.colors.to_hex(container.patches[0].get_facecolor()), "bar"))
    elif isinstance(container, matplotlib.container.ErrorbarContainer) and \
        container.lines[0] is not None and not container.get_label().startswith("dense"):
      line = container.lines[0]
      styles.append((matplotlib.colors.to_hex(line.get_color()), line.get_marker()))
  return styles


def test_figures_of_four_methods_at_four_levels_are_readable(tmp_path):
  """No two series share a style (one hue per method, one lightness per level; a marker
  per method), labels are the methods' titles, and no text reads 'nan' or an identifier."""
  rows = _study_rows()
  num_levels = 4
  accuracy = figures.accuracy_vs_sparsity(rows)
  styles = _styles(accuracy.axes[0])
  assert len(styles) == 4 and len(set(styles)) == 4
  assert len({color for color, _ in styles}) == 4 and len({marker for _, marker in styles}) == 4
  layers = figures.layer_sparsity(rows)
  facets = [axis for axis in layers.axes if axis.get_visible()]
  assert len(facets) == 4
  for axis in facets:
    assert len(set(_styles(axis))) == num_levels  # a lightness per level, within the hue
  per_epoch = pd.DataFrame(np.random.default_rng(3).uniform(0.3, 0.8, (3, 6)),
                           index=pd.Index([0, 1, 2]))
  curves = {figures.series_label(group): {
      figures.level_label(field, level): per_epoch for level in group.level.unique()}
      for (run, field), group in rows[rows.run != "original"].groupby(
          ["run", "level_field"], sort=False)}
  convergence = figures.convergence(curves, rows[rows.run == "original"].test_accuracy)
  all_styles = [style for axis in convergence.axes if axis.get_visible()
                for style in _styles(axis)]
  assert len(all_styles) == 16 and len(set(all_styles)) == 16
  drawn = [accuracy, layers, convergence, figures.agreement_vs_sparsity(rows),
           figures.original_vs_twin(rows, color_by="learning_rate")]
  for figure in drawn:
    for text in _texts(figure):
      assert "nan" not in text.lower(), text
      assert not re.search(r"[a-z]_[a-z]", text), text
  assert any("r undefined" in text for text in _texts(drawn[-1]))
  assert any(text == "variational dropout (straight-through clip)" for text in _texts(layers))
  written = figures.study_figures(rows, str(tmp_path))
  for name in written:
    assert (tmp_path / name.replace(".png", ".pdf")).exists()
