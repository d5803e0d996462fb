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
