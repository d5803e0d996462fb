"""Agreement, correlation and hyperparameter effects against hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from jaxsparse import analysis


def test_agreement_by_hand():
  original = np.array([[0, 1, 2, 3], [1, 1, 1, 1]])
  twin = np.array([[0, 1, 0, 0], [1, 1, 1, 1]])
  np.testing.assert_allclose(analysis.agreement(original, twin), [0.5, 1.0])
  labels = np.array([0, 1, 2, 2])
  # Member 0 is right on inputs 0, 1, 2 and the twin agrees on 0 and 1: 2/3.
  # Member 1 is right on input 1 only, where the twin agrees: 1.
  np.testing.assert_allclose(analysis.agreement_where_correct(original, twin, labels),
                             [2 / 3, 1.0])


def test_agreement_where_correct_is_nan_without_correct_inputs():
  result = analysis.agreement_where_correct(np.array([[1, 1]]), np.array([[1, 0]]),
                                            np.array([0, 0]))
  assert np.isnan(result[0])


def test_pearson_and_spearman_by_hand():
  x = np.array([1.0, 2.0, 3.0, 4.0])
  y = np.array([2.0, 4.0, 5.0, 4.0])
  # Deviations (-1.5, -.5, .5, 1.5) and (-1.75, .25, 1.25, .25): products sum to 3.5,
  # squares to 5 and 4.75.
  assert analysis.pearson(x, y) == pytest.approx(3.5 / np.sqrt(5 * 4.75))
  # Ranks of y with the tie shared: (1, 2.5, 4, 2.5).
  np.testing.assert_allclose(analysis.ranks(y), [1, 2.5, 4, 2.5])
  assert analysis.spearman(x, y) == pytest.approx(
      analysis.pearson([1, 2, 3, 4], [1, 2.5, 4, 2.5]))
  assert analysis.spearman(x, x ** 3) == pytest.approx(1.0)
  assert analysis.pearson(x, -2 * x) == pytest.approx(-1.0)
  assert np.isnan(analysis.pearson(x, np.ones(4)))


def test_hyperparameter_effects_rank_the_field_that_matters_first():
  table = pd.DataFrame({"optimizer": ["adam", "sgd"] * 4,
                        "activation": ["tanh"] * 4 + ["relu"] * 4,
                        "seed": range(8)})
  drop = np.array([0.01, 0.20, 0.03, 0.22, 0.02, 0.21, 0.02, 0.19])
  effects = analysis.hyperparameter_effects(table, drop, ["optimizer", "activation", "momentum"])
  assert list(effects["field"]) == ["optimizer", "activation"]
  assert effects["largest_drop_at"][0] == "sgd"
  assert effects["spread"][0] == pytest.approx(0.205 - 0.02)


def test_distribution_quantiles():
  summary = analysis.distribution(np.arange(11.0))
  assert summary["mean"] == 5 and summary["q50"] == 5 and summary["q10"] == 1
  assert summary["min"] == 0 and summary["max"] == 10


def test_cohen_kappa_equals_sklearn():
  from sklearn.metrics import cohen_kappa_score
  rng = np.random.default_rng(0)
  original = rng.integers(0, 10, (5, 300))
  # Twins that copy the original on a member-specific fraction of inputs.
  copy = rng.random((5, 300)) < np.linspace(0.1, 0.95, 5)[:, None]
  twin = np.where(copy, original, rng.integers(0, 10, (5, 300)))
  expected = [cohen_kappa_score(o, t) for o, t in zip(original, twin)]
  np.testing.assert_allclose(analysis.cohen_kappa(original, twin), expected, rtol=1e-12)


def test_cohen_kappa_separates_chance_from_agreement():
  # Two predictors that each always say "class 0" agree everywhere, but a twin that
  # predicts at random agrees about 10 % of the time at 10 classes: kappa near 0.
  rng = np.random.default_rng(1)
  original = rng.integers(0, 10, (1, 20_000))
  twin = rng.integers(0, 10, (1, 20_000))
  assert abs(analysis.cohen_kappa(original, twin)[0]) < 0.02
  assert np.isnan(analysis.cohen_kappa(np.zeros((1, 5), int), np.zeros((1, 5), int))[0])


def test_mean_interval_matches_an_independent_bootstrap_and_the_t_interval():
  from scipy import stats
  values = np.random.default_rng(2).normal(0.3, 0.1, 60)
  low, high = analysis.mean_interval(values)
  rng = np.random.default_rng(99)
  means = values[rng.integers(0, len(values), (20_000, len(values)))].mean(axis=1)
  np.testing.assert_allclose([low, high], np.quantile(means, [0.025, 0.975]), atol=2e-3)
  t_low, t_high = stats.t.interval(0.95, len(values) - 1, values.mean(), stats.sem(values))
  np.testing.assert_allclose([low, high], [t_low, t_high], atol=4e-3)
  assert analysis.mean_interval(np.array([0.5, 0.5, 0.5])) == (0.5, 0.5)
  assert all(np.isnan(analysis.mean_interval(np.array([0.5, np.nan]))))


def test_pearson_interval_is_fishers():
  x = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.9, 0.2, 0.55])
  y = np.array([0.2, 0.3, 0.4, 0.7, 0.65, 0.8, 0.1, 0.5])
  r, n = analysis.pearson(x, y), len(x)
  z, half = np.arctanh(r), 1.959964 / np.sqrt(n - 3)
  np.testing.assert_allclose(analysis.pearson_interval(x, y), np.tanh([z - half, z + half]),
                             rtol=1e-5)


def test_paired_differences_interpolate_each_members_own_curve():
  # Two members, three levels of the first method: sparsity [levels, members].
  curve_sparsity = np.array([[0.5, 0.5], [0.8, 0.8], [0.9, 0.9]])
  curve_accuracy = np.array([[0.90, 0.70], [0.80, 0.60], [0.60, 0.50]])
  # Member 0's other twin: 0.85 sparse, 0.75 accurate; its curve there: 0.7 -> -0.05.
  # Member 1's: 0.95 sparse, beyond its curve: no pair.
  differences = analysis.paired_differences(curve_sparsity, curve_accuracy,
                                            np.array([0.85, 0.95]), np.array([0.75, 0.4]))
  np.testing.assert_allclose(differences[0], -0.05)
  assert np.isnan(differences[1])
  # Levels in any order give the same pairs.
  np.testing.assert_allclose(
      analysis.paired_differences(curve_sparsity[::-1], curve_accuracy[::-1],
                                  np.array([0.6, 0.5]), np.array([0.8, 0.7])),
      [0.9 - (0.1 / 0.3) * 0.1 - 0.8, 0.0])


def test_group_means_by_hand():
  frame = pd.DataFrame({"arm": ["b", "a", "b", "a", "b"], "level": [1, 1, 1, 1, 1],
                        "test_accuracy": [0.80, 0.5, 0.82, 0.7, 0.87],
                        "sparsity": [0.1, 0.2, 0.3, 0.4, 0.5]})
  table = analysis.group_means(frame, ["arm", "level"], also=("sparsity",))
  assert list(table["arm"]) == ["b", "a"] and list(table["seeds"]) == [3, 2]
  np.testing.assert_allclose(table["sparsity"], [0.3, 0.3])
  values = np.array([0.80, 0.82, 0.87])
  half = 4.302652729911275 * values.std(ddof=1) / np.sqrt(3)
  np.testing.assert_allclose(table.loc[0, ["test_accuracy", "low", "high"]].to_numpy(float),
                             [values.mean(), values.mean() - half, values.mean() + half])
  half = 12.706204736174698 * np.std([0.5, 0.7], ddof=1) / np.sqrt(2)
  np.testing.assert_allclose(table.loc[1, ["low", "high"]].to_numpy(float),
                             [0.6 - half, 0.6 + half])


def test_t_interval_by_hand():
  values = np.array([0.80, 0.82, 0.87])
  mean, sd = values.mean(), values.std(ddof=1)
  half = 4.302652729911275 * sd / np.sqrt(3)  # t quantile 0.975 with 2 degrees of freedom
  np.testing.assert_allclose(analysis.t_interval(values), (mean - half, mean + half), rtol=1e-9)
  assert analysis.t_interval(np.array([0.5, 0.5])) == (0.5, 0.5)
  assert all(np.isnan(analysis.t_interval(np.array([0.5, np.nan]))))


def _coverage(draw, estimate, truth, simulations=400):
  """The fraction of simulated studies whose interval holds ``truth``."""
  rng = np.random.default_rng(5)
  hits = [(lambda e: e.low <= truth <= e.high)(estimate(*draw(rng))) for _ in range(simulations)]
  return float(np.mean(hits))


def _grid(rng, cells=8, seeds=2, cell_sd=0.05, seed_sd=0.02, cell_effects=None):
  """A grid zoo: members = cells x seeds; a member's value = its cell's effect + seed noise."""
  effects = rng.normal(0, cell_sd, cells) if cell_effects is None else cell_effects
  cell = np.repeat(np.arange(cells), seeds)
  return effects[cell] + rng.normal(0, seed_sd, cells * seeds), cell


def test_member_intervals_cover_the_mean_of_independent_members():
  draw = lambda rng: (rng.normal(0.3, 0.1, 12),)
  assert 0.92 <= _coverage(draw, analysis.t_estimate, 0.3) <= 0.98
  bca = lambda values: analysis.bca_estimate(values, num_resamples=999)
  assert 0.88 <= _coverage(draw, bca, 0.3, simulations=200) <= 0.98


def test_median_intervals_cover_the_median_of_a_skewed_population():
  # Exponential(1): median log 2 = 0.693, mean 1; the interval is of the median, not the mean.
  draw = lambda rng: (rng.exponential(1.0, 12),)
  median = lambda values: analysis.bca_estimate(values, num_resamples=999, statistic="median")
  assert 0.85 <= _coverage(draw, median, np.log(2), simulations=200) <= 0.99
  values = np.random.default_rng(1).exponential(1.0, 12)
  estimate = median(values)
  assert estimate.value == np.median(values) and np.isnan(estimate.p_value)
  with pytest.raises(ValueError, match="statistic"):
    analysis.bca_estimate(values, statistic="mode")


def test_cell_intervals_cover_configurations_like_these_and_member_intervals_do_not():
  # Cells drawn afresh each study: the estimand is the mean over configurations (0).
  draw = lambda rng: _grid(rng)
  cells = _coverage(draw, lambda values, cell: analysis.cell_mean_estimate(values, cell), 0.0)
  naive = _coverage(draw, lambda values, cell: analysis.t_estimate(values), 0.0)
  assert 0.92 <= cells <= 0.98
  assert naive < 0.88  # members resampled as if independent: the 78 %


def test_stratified_bootstrap_covers_these_cells_with_a_narrower_interval():
  # These very cells (fixed effects): the estimand is their mean.
  effects = np.random.default_rng(11).normal(0, 0.05, 8)
  draw = lambda rng: _grid(rng, cell_effects=effects)
  stratified = lambda values, cell: analysis.stratified_bootstrap_estimate(
      values, cell, num_resamples=999)
  assert 0.88 <= _coverage(draw, stratified, effects.mean(), simulations=300) <= 0.99
  values, cell = draw(np.random.default_rng(0))
  width = lambda e: e.high - e.low
  assert width(stratified(values, cell)) < 0.6 * width(analysis.cell_mean_estimate(values, cell))


def test_estimates_state_their_unit_and_method_and_t_matches_scipy():
  from scipy import stats
  values = np.array([0.1, 0.3, -0.05, 0.2, 0.15])
  estimate = analysis.t_estimate(values)
  assert (estimate.unit, estimate.method, estimate.n) == ("member", "t", 5)
  assert estimate.p_value == pytest.approx(stats.ttest_1samp(values, 0).pvalue)
  cells = analysis.cell_mean_estimate([0.1, 0.3, 0.5, 0.7], [0, 0, 1, 1])
  assert (cells.unit, cells.n, cells.value) == ("grid cell", 2, pytest.approx(0.4))
  assert analysis.is_grid([0, 0, 1, 1]) and not analysis.is_grid([0, 1, 2])
  assert not analysis.is_grid([0, 0, 0])


def test_holm_by_hand():
  # Sorted 0.01, 0.02, 0.04 of four (one NaN, not counted): x3, x2, x1, kept monotone.
  np.testing.assert_allclose(analysis.holm([0.04, 0.01, np.nan, 0.02]),
                             [0.04, 0.03, np.nan, 0.04])
  np.testing.assert_allclose(analysis.holm([0.5, 0.6]), [1.0, 1.0])


def test_paired_twins_anchor_each_curve_at_its_dense_accuracy():
  target = pd.DataFrame({"original_member": [0, 0], "achieved_sparsity": [0.5, 0.9],
                         "test_accuracy": [0.8, 0.4]})
  outcome = pd.DataFrame({"original_member": [0, 0], "achieved_sparsity": [0.25, 0.95],
                          "test_accuracy": [0.88, 0.5], "original_test_accuracy": [0.9, 0.9],
                          "level": [1.0, 2.0]})
  pairs = analysis.paired_twins(target, outcome)
  # 0.25 lies between the anchor (0, 0.9) and (0.5, 0.8): 0.85; 0.95 is beyond the curve.
  np.testing.assert_allclose(pairs["paired_accuracy"][0], 0.85)
  np.testing.assert_allclose(pairs["difference"][0], 0.03)
  assert np.isnan(pairs["difference"][1])
  assert np.isnan(analysis.paired_twins(target, outcome, anchor=False)["difference"][0])
  np.testing.assert_allclose(analysis.member_means(pairs, 0.0, 0.8), [0.03])
