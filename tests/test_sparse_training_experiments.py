"""experiments/gap_claim.py and experiments/supermasks.py: every arm's schedule fits the same
budget, and the comparisons pair and judge what they should (no training here)."""

import os
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from jaxsparse.config import validate_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import gap_claim  # noqa: E402
import supermasks  # noqa: E402


@pytest.mark.parametrize("model", list(gap_claim.MODELS))
def test_every_gap_arm_has_the_same_epochs_and_recipe_and_ends_sparse_at_three_quarters(model):
  base = gap_claim.base_config(model, 8, 4_000, gap_claim.LEVELS, 3)
  configs = {arm: gap_claim.arm_config(base, arm) for arm in gap_claim.ARMS}
  for arm, config in configs.items():
    validate_config(config)
    assert config.training.num_epochs == 8, arm
    assert config.population.grid.to_dict() == {
        **base.population.grid.to_dict(),
        "sparsity": (0.0,) if arm == "dense" else gap_claim.LEVELS}, arm
  assert configs["one_shot_mp"].sparsify.start_epoch == 4
  gradual = configs["gradual_mp"].sparsify
  assert (gradual.start_epoch, gradual.end_epoch, gradual.schedule) == (2, 6, "gradual")
  for arm in gap_claim.GAP_ARMS:
    settings = configs[arm].sparsify
    assert (settings.start_epoch, settings.end_epoch, settings.num_partitions) == (0, 6, 3)
  assert configs["cyclic_gap"].sparsify.num_rounds == 6  # each partition dense twice
  assert configs["parallel_gap"].sparsify.num_rounds == 6  # rounds of one epoch


def test_gap_comparisons_take_welchs_interval_and_say_what_it_resolves():
  rows = []
  for arm, accuracy in (("cyclic_gap", (0.80, 0.81, 0.82)), ("parallel_gap", (0.70, 0.75, 0.80)),
                        ("random", (0.70, 0.71, 0.72)), ("one_shot_mp", (0.84, 0.85, 0.86)),
                        ("gradual_mp", (0.74, 0.76, 0.78))):
    rows += [{"model": "cnn_s", "arm": arm, "target": 0.9, "seed": seed, "test_accuracy": value}
             for seed, value in enumerate(accuracy)]
  table = gap_claim.comparisons(pd.DataFrame(rows)).set_index(["gap", "baseline"])
  verdicts = table["verdict"].to_dict()
  assert verdicts[("cyclic_gap", "random")] == "GaP ahead"
  assert verdicts[("cyclic_gap", "one_shot_mp")] == "GaP behind"
  assert verdicts[("parallel_gap", "gradual_mp")] == "not resolved"
  welch = scipy.stats.ttest_ind([0.80, 0.81, 0.82], [0.74, 0.76, 0.78], equal_var=False)
  low, high = welch.confidence_interval(0.95)
  np.testing.assert_allclose(table.loc[("cyclic_gap", "gradual_mp"), ["difference", "low", "high"]]
                             .to_numpy(float), [0.05, low, high])


def test_edge_popup_pairs_with_each_gumbel_variant_of_its_seed_at_that_variants_sparsity():
  gumbel = [("gumbel_softmax", 0, 0.61234, 0.70), ("gumbel_softmax", 1, 0.65, 0.72),
            ("gumbel_softmax_no_rescale", 0, 0.5, 0.60), ("gumbel_softmax_no_rescale", 1, 0.65, 0.62)]
  # Seed 1's variants reached the same sparsity: one edge-popup member serves both.
  popup = [(0, 0.6123, 0.74), (0, 0.5, 0.50), (1, 0.65, 0.80)]
  results = pd.DataFrame(
      [{"model": "conv2", "method": method, "seed": seed, "target": 0.0,
        "achieved_sparsity": sparsity, "test_accuracy": accuracy}
       for method, seed, sparsity, accuracy in gumbel]
      + [{"model": "conv2", "method": "edge_popup", "seed": seed, "target": target,
          "achieved_sparsity": target, "test_accuracy": accuracy}
         for seed, target, accuracy in popup])
  table = supermasks.comparisons(results).set_index("gumbel_variant")
  assert table["pairs"].to_dict() == {"gumbel_softmax": 2, "gumbel_softmax_no_rescale": 2}
  np.testing.assert_allclose(table.loc["gumbel_softmax", "difference"],
                             np.mean([0.74 - 0.70, 0.80 - 0.72]))
  np.testing.assert_allclose(table.loc["gumbel_softmax_no_rescale", "difference"],
                             np.mean([0.50 - 0.60, 0.80 - 0.62]))
  paired = scipy.stats.ttest_rel([0.74, 0.80], [0.70, 0.72]).confidence_interval(0.95)
  np.testing.assert_allclose(table.loc["gumbel_softmax", ["low", "high"]].to_numpy(float),
                             [paired.low, paired.high])


def test_supermask_layer_table_averages_each_layer_per_method_and_the_curves_plot(tmp_path):
  rows = pd.DataFrame({"model": "lenet_300_100",
                       "method": ["gumbel_softmax", "gumbel_softmax", "edge_popup"],
                       "layer/Dense_0": [0.4, 0.6, 0.5], "layer/Dense_1": [0.1, 0.2, 0.5],
                       "curve": [[0.5, 0.6], [0.55, 0.7], [0.8, 0.85]]})
  table = supermasks.layer_table(rows).set_index("method")
  np.testing.assert_allclose(table.loc["gumbel_softmax", ["layer/Dense_0", "layer/Dense_1"]]
                             .to_numpy(float), [0.5, 0.15])
  text = supermasks.markdown(
      pd.DataFrame(columns=["model", "method", "test_accuracy", "low", "high",
                            "achieved_sparsity", "seeds"]),
      pd.DataFrame({"model": ["lenet_300_100"], "gumbel_variant": ["gumbel_softmax"],
                    "sparsity": [0.5], "difference": [-0.03121], "low": [-0.05],
                    "high": [0.001], "pairs": [3]}), supermasks.layer_table(rows))
  assert "| lenet_300_100 | edge_popup | 0.5000 | 0.5000 |" in text
  assert ("| lenet_300_100 | gumbel_softmax | 0.5000 | -0.0312 (-0.0500 to +0.0010) | 3 |"
          in text)
  supermasks.plot_curves(rows, str(tmp_path))
  assert (tmp_path / "supermasks_curves.png").stat().st_size > 0


def test_supermask_configs_follow_the_public_protocol():
  config = supermasks.gumbel_config("conv4", True, supermasks.QUICK)
  validate_config(config)
  settings = config.sparsify
  assert (settings.initial_logit, settings.temperature_start, settings.temperature_end,
          settings.sparsity_penalty) == (0.0, 1.0, 1.0, 0.0)
  grid = config.population.grid
  assert (grid.initializer, grid.activation, grid.optimizer, grid.momentum, grid.weight_decay,
          config.training.batch_size) == (("kaiming_normal",), ("relu",), ("sgd",), (0.9,),
                                          (0.0,), 256)
  learning_rate = config.population.grid.learning_rate[0]
  assert learning_rate * settings.trainable_learning_rate_scale == pytest.approx(50.0)
  assert learning_rate * settings.scales_learning_rate_scale == pytest.approx(1e-3)
  for model, sizes in supermasks.SIZES.items():  # every model's full size is a valid run
    validate_config(supermasks.gumbel_config(model, True, sizes))
  assert set(supermasks.CPU_MODELS) <= set(supermasks.MODELS)
  popup = supermasks.edge_popup_config(config, 2, (0.6, 0.6, 0.5))
  validate_config(popup)
  assert popup.population.grid.sparsity == (0.5, 0.6)
  assert (popup.population.first_seed, popup.population.num_seeds) == (2, 1)
  assert popup.population.grid.initializer == config.population.grid.initializer
