"""A diverging member is detected inside the compiled program, frozen and flagged,
and changes nothing in the other members."""

import jax
import numpy as np
import pandas as pd
import pytest

from jaxsparse import models, population, report, sparsify, train, twins

from conftest import (SINGLE, assert_trees_close, make_tiny_config, method_settings, random_dataset,
                     train_population)

pytestmark = pytest.mark.slow  # end-to-end: make test-all runs it

DIVERGING = 3


def _table(diverging_learning_rate):
  """8 members that differ by seed; member 3 uses SGD at ``diverging_learning_rate``
  (1e10 overflows to non-finite weights within two epochs; 10 or 1e4 only
  kill the ReLUs)."""
  table = population.member_table(dict(SINGLE, activation=("relu",)), num_seeds=8)
  table.loc[DIVERGING, "optimizer"] = "sgd"
  table.loc[DIVERGING, "learning_rate"] = diverging_learning_rate
  return table


@pytest.fixture(scope="module")
def with_and_without():
  data = random_dataset(num_train=192)
  model = models.get_model("cnn_s", data.input_shape)
  method = sparsify.get_method(method_settings("magnitude"),
                               sparsify.TrainingSchedule(steps_per_epoch=6))
  runs = {}
  for name, learning_rate in (("diverging", 1e10), ("sane", 3e-3)):
    runs[name] = train_population(model, method, _table(learning_rate), data, epochs=2)
  return runs


def test_diverging_member_is_flagged_and_frozen_finite(with_and_without):
  state, metrics = with_and_without["diverging"]
  expected = np.zeros(8, bool)
  expected[DIVERGING] = True
  np.testing.assert_array_equal(state.diverged, expected)
  assert not np.isfinite(metrics["train_loss"][DIVERGING])
  for leaf in jax.tree.leaves(state.params):
    assert np.all(np.isfinite(leaf[DIVERGING])), "frozen at its last finite state"


def test_other_members_are_bit_identical(with_and_without):
  diverging, _ = with_and_without["diverging"]
  sane, _ = with_and_without["sane"]
  assert not np.any(sane.diverged)
  others = np.arange(8) != DIVERGING
  assert_trees_close(diverging, sane, where=others)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_member_table_and_report_mark_diverged(tmp_path, capsys, activation):
  """SGD at 1e10: ReLU overflows to non-finite numbers; tanh stays finite (bounded
  activations) while its loss explodes, a blow-up by engine.blew_up."""
  config = make_tiny_config()
  config.population.grid.activation = (activation,)
  config.population.grid.optimizer = ("sgd",)
  config.population.grid.learning_rate = (3e-3, 1e10)
  config.training.num_epochs = 1
  members = train.train_and_evaluate(config, str(tmp_path), random_dataset(num_train=128))
  np.testing.assert_array_equal(members["diverged"], members["learning_rate"] == 1e10)
  if activation == "tanh":
    blown = members.loc[members["learning_rate"] == 1e10, "train_loss"]
    assert np.isfinite(blown).all() and (blown > 100).all()
  assert "diverged" in capsys.readouterr().out
  assert pd.read_csv(tmp_path / "members.csv")["diverged"].dtype == bool


def test_report_leaves_diverged_members_out():
  table = population.member_table(SINGLE, num_seeds=4)
  labels = np.array([0, 1, 2, 3])
  original = {"accuracy": np.array([1.0, 0.5, 0.75, 0.25]),
              "predictions": np.array([[0, 1, 2, 3], [0, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]]),
              "labels": labels, "sparsity": np.zeros(4),
              "diverged": np.array([False, False, False, True])}
  twin = dict(original, diverged=np.array([False, True, False, False]))
  run = twins.TwinRun("magnitude", "layerwise", (0.5,), "/study/twins/magnitude_layerwise")
  summary = report.summarise(table, original, [(run, twin, None)])
  entry = summary["twins"][0]
  assert entry["member_indices"] == [0, 2]
  assert entry["diverged_members"] == [1, 3]
  assert entry["twin_accuracy"] == [1.0, 0.75]
  assert summary["original"]["distribution"]["mean"] == pytest.approx(0.75)
  assert any("[3]" in line for line in report.findings(summary))
