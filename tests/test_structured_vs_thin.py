"""experiments/structured_vs_thin.py: budgets counted from shapes, widths paired by
parameters, and (slow) both arms end to end on a tiny population."""

import os
import sys

import jax
import pytest

from jaxsparse import masks, models, structured

from conftest import make_tiny_config, random_dataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import structured_vs_thin  # noqa: E402


def _resnet_config():
  config = make_tiny_config()
  config.model.name = "resnet20"
  return config


@pytest.mark.slow  # ResNet-20 initialisations and eager counting: about a minute
@pytest.mark.parametrize("width,rate", [(1.0, 0.0), (1.0, 0.5), (0.5, 0.0)])
def test_budget_from_shapes_equals_the_budget_of_trained_looking_weights(width, rate):
  """Counting with weights of ones gives the counts of random weights (whose L1 norms do
  not tie), shrunk the same way."""
  config = _resnet_config()
  model = models.get_model("resnet20", (28, 28, 1), 10, width=width)
  variables = models.init_variables(model, jax.random.PRNGKey(3))
  params = variables["params"]
  pruned = structured.channel_masks(params, masks.dense_masks(params), rate)
  small, params, stats = structured.shrink(model, params, variables["batch_stats"], pruned)
  expected = (models.count_parameters(params),
              structured.count_multiply_adds(small, {"params": params, "batch_stats": stats}))
  assert structured_vs_thin.budget(config, (28, 28, 1), width, rate) == expected
  if (width, rate) == (1.0, 0.0):
    assert expected[0] == 269_722 - 2 * 9 * 16  # the CIFAR count, with 1 input channel, not 3


@pytest.mark.slow
def test_widths_are_paired_by_parameters():
  config = _resnet_config()
  widths = structured_vs_thin.matched_widths(config, (28, 28, 1), [0.25, 0.5, 0.75])
  assert widths == {0.25: 0.875, 0.5: 0.6875, 0.75: 0.5}
  for rate, width in widths.items():
    pruned = structured_vs_thin.budget(config, (28, 28, 1), 1.0, rate)
    thin = structured_vs_thin.budget(config, (28, 28, 1), width, 0.0)
    assert abs(thin[0] / pruned[0] - 1) < 0.06 and abs(thin[1] / pruned[1] - 1) < 0.06


@pytest.mark.slow
def test_both_arms_end_to_end_on_a_tiny_population(tmp_path):
  config = make_tiny_config()
  config.model.name = "conv2"
  config.population.grid.activation = ("relu",)
  config.population.grid.optimizer = ("adam",)
  config.population.grid.sparsity = (0.0, 0.5)
  config.population.num_seeds = 2
  config.training.lr_schedule = "warmup_cosine"
  config.training.warmup_epochs = 0.5
  config.sparsify.method = "filter"
  config.sparsify.start_epoch = 1
  results = structured_vs_thin.run_arms(config, str(tmp_path), random_dataset(num_train=96, shape=(8, 8, 1)))
  assert list(results["arm"]) == ["L1 filter pruning"] * 4 + ["ThinResNet"] * 2
  summary = structured_vs_thin.summarise(results)
  assert list(summary["seeds"]) == [2, 2, 2]
  pruned = summary[summary["channel_sparsity"] == 0.5].iloc[0]
  thin = summary[summary["arm"] == "ThinResNet"].iloc[0]
  assert pruned["parameters"] < summary.iloc[0]["parameters"]
  assert abs(thin["parameters"] / pruned["parameters"] - 1) < 0.25
  assert pruned["low"] <= pruned["test_accuracy"] <= pruned["high"]
  structured_vs_thin.plot(summary, results, str(tmp_path / "figures"))
  assert {"accuracy_vs_parameters.png", "accuracy_vs_multiply_adds.pdf"} <= set(
      os.listdir(tmp_path / "figures"))
  assert "| L1 filter pruning | 1 | 0.5 |" in structured_vs_thin.markdown(summary)
