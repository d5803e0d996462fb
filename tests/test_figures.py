"""The study's figures, drawn from a hand-made tidy table: dispersion, the dense point, chance
lines, legends outside the data, shared facet axes, PNG and PDF, diverged members left out."""

import matplotlib

matplotlib.use("Agg")

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
  assert "dense originals" in labels and "magnitude (layerwise)" in labels
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


def test_convergence_shows_each_curve_with_its_band_and_the_originals():
  rng = np.random.default_rng(1)
  curves = {"magnitude 0.5": rng.uniform(0.5, 0.8, (3, 8)),
            "magnitude 0.9": rng.uniform(0.2, 0.5, (3, 8))}
  figure = figures.convergence(curves, rng.uniform(0.7, 0.9, 8))
  [axis] = figure.axes
  medians = [line.get_ydata() for line in axis.get_lines() if line.get_label() in curves]
  np.testing.assert_allclose(medians[0], np.median(curves["magnitude 0.5"], axis=1))
  assert len(axis.collections) >= 2  # one interquartile band per curve
  _legend_outside_every_axis(figure, axis.get_legend())
