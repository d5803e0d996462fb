"""experiments/bench_population.py --scaling: every size measured in every round, in a
rotating order, and the table's medians and ratios (no training here)."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import bench_population  # noqa: E402


def test_scaling_measures_every_size_each_round_starting_at_another_size(monkeypatch):
  calls = []

  def fake_measurement(impl, model, population, batch, steps, chunk, conv):
    calls.append(population)
    return {"impl": impl, "population": population, "member_steps_per_second": 100.0}

  monkeypatch.setattr(bench_population, "_in_subprocess", fake_measurement)
  results = bench_population.scaling([8, 64, 256], 4, "cnn_s", 32, 10, 4, "auto")
  assert calls == [8, 64, 256, 64, 256, 8, 256, 8, 64, 8, 64, 256]
  assert [r["round"] for r in results] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_scaling_table_gives_each_sizes_median_range_and_ratio_to_the_smallest():
  rates = {8: [300.0, 350.0, 320.0], 64: [330.0, 280.0, 310.0, 290.0]}
  results = [{"population": size, "member_steps_per_second": rate}
             for size, values in rates.items() for rate in values]
  lines = bench_population.scaling_table(results).splitlines()
  assert lines[2] == "| 8 | 300.0 / 350.0 / 320.0 | 320.0 | 300.0 to 350.0 | 1.00 |"
  ratio = np.median(rates[64]) / np.median(rates[8])
  assert lines[3] == (f"| 64 | 330.0 / 280.0 / 310.0 / 290.0 | {np.median(rates[64]):.1f} | "
                      f"280.0 to 330.0 | {ratio:.2f} |")
