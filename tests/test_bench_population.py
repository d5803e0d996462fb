"""experiments/bench_population.py --repeats: every setting measured in every round, in a
rotating order, and the table's medians and ratios (no training here)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import bench_population  # noqa: E402


def test_rounds_measure_every_setting_each_round_starting_at_another_one(monkeypatch):
  calls = []

  def fake_measurement(impl, model, population, batch, steps, chunk, conv, devices):
    calls.append((impl, population))
    assert devices == 2
    return {"impl": impl, "population": population, "member_steps_per_second": 100.0}

  monkeypatch.setattr(bench_population, "_in_subprocess", fake_measurement)
  a, b, c = ("jaxsparse", 8), ("jaxsparse", 64), ("torch_func", 64)
  results = bench_population.rounds([a, b, c], 4, "cnn_s", 32, 10, 4, "auto", devices=2)
  assert calls == [a, b, c, b, c, a, c, a, b, a, b, c]
  assert [r["round"] for r in results] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_rounds_table_gives_each_settings_median_range_and_ratio_to_the_first():
  rates = {("jaxsparse", 64): [300.0, 350.0, 320.0],
           ("torch_func", 64): [130.0, 180.0, 110.0, 150.0]}
  results = [{"impl": impl, "population": size, "member_steps_per_second": rate}
             for (impl, size), values in rates.items() for rate in values]
  lines = bench_population.rounds_table(results).splitlines()
  assert lines[0].endswith("| jaxsparse P=64 / this |")
  assert lines[2] == "| jaxsparse | 64 | 300.0 / 350.0 / 320.0 | 320.0 | 300.0 to 350.0 | 1.00 |"
  median = np.median(rates["torch_func", 64])
  assert lines[3] == (f"| torch_func | 64 | 130.0 / 180.0 / 110.0 / 150.0 | {median:.1f} | "
                      f"110.0 to 180.0 | {320.0 / median:.2f} |")


def test_mixed_activation_rows_list_the_four_activations_in_blocks_or_interleaved():
  from jaxsparse import build, layers
  from jaxsparse.config import default_config
  for interleaved, expected in ((False, [0, 0, 1, 1, 2, 2, 3, 3]), (True, [0, 1, 2, 3] * 2)):
    config = default_config()
    bench_population._mix_activations(config, 8, interleaved)
    run = build.setup(config, build.DataShape((28, 28, 1), 10, 100))
    assert list(run.table["seed"]) == list(range(8))
    assert list(run.table["activation"]) == [layers.ACTIVATIONS[i] for i in expected]
  with pytest.raises(ValueError, match="multiple of 4"):
    bench_population._mix_activations(default_config(), 6, False)


def test_gpu_plan_measures_resnet20_with_the_engine_alone():
  plan = bench_population._plan(False, ["jaxsparse", "torch_func"], gpu=True)
  models = {(impl, model) for impl, model, _, _ in plan}
  assert ("jaxsparse", "resnet20") in models and ("torch_func", "resnet20") not in models
  assert {population for _, _, population, _ in plan} == {64, 256, 1024}
  assert len(plan) == 3 * 2 * 3 * 2 - 3 * 2  # 3 models x 2 batches x 3 P x 2 impls, no torch ResNet
  with pytest.raises(ValueError, match="--model=resnet20"):
    bench_population._baseline_architecture("resnet20")


def test_a_measurement_past_the_timeout_is_reported_and_skipped(capsys):
  assert bench_population._in_subprocess("jaxsparse", "cnn_s", 8, 32, 2, 4, "auto",
                                         timeout=0.01) is None
  assert "took over" in capsys.readouterr().out


def test_targets_compare_with_the_fastest_pytorch_ensemble_and_price_vd(monkeypatch):
  rates = {"jaxsparse": 900.0, "jaxsparse_vd": 450.0, "jaxsparse_vd_per_batch": 750.0,
           "torch_func": 200.0,
           "torch_grouped": 250.0, "torch_grouped_compiled": 300.0}

  def fake_measurement(impl, model, population, batch, steps, chunk, conv, devices):
    assert (model, population) == ("cnn_s", 64)
    return {"impl": impl, "population": population,
            "member_steps_per_second": rates[impl] * (1 + batch / 100)}

  monkeypatch.setattr(bench_population, "_in_subprocess", fake_measurement)
  measured, ratios = bench_population.targets((10, 32), 3, 10, 4, "auto", 0)
  assert len(measured) == 2 * 3 * len(rates)
  assert list(ratios["best PyTorch"]) == ["torch_grouped_compiled"] * 2
  np.testing.assert_allclose(ratios["jaxsparse / best PyTorch"], [3.0, 3.0])
  np.testing.assert_allclose(ratios["VD step / dense step"], [2.0, 2.0])
  np.testing.assert_allclose(ratios["VD per-batch step / dense step"], [1.2, 1.2])
