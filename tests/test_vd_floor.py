"""experiments/vd_floor.py: the draws of VD's step, the draw alone, and the floor's arithmetic."""

import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import vd_floor  # noqa: E402


@pytest.mark.slow
def test_vd_draws_one_normal_per_example_and_output_of_every_layer():
  # CNN-s (Schürholt et al. 2022): 28x28 -> conv 5x5, 8 -> pool -> conv 5x5, 6 -> pool
  # -> conv 2x2, 4 -> 36 -> dense 20 -> dense 10.
  assert vd_floor.noise_shapes(3) == [(3, 24, 24, 8), (3, 8, 8, 6), (3, 3, 3, 4), (3, 20),
                                      (3, 10)]


def test_the_draw_alone_is_jax_randoms_normals_of_each_members_keys():
  shapes, population, steps = [(2, 3), (4,)], 2, 3
  got = np.asarray(vd_floor.draw_steps(shapes, population, steps)())
  expected = []
  for key in jax.random.split(jax.random.key(0), population):
    total = 0.0
    for step in range(steps):
      keys = jax.random.split(jax.random.fold_in(key, step), len(shapes))
      total += sum(float(jax.random.normal(k, shape).sum()) for k, shape in zip(keys, shapes))
    expected.append(total)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_floor_is_one_plus_the_matmul_share_plus_the_draw_in_each_round():
  seconds = {"dense": [0.010, 0.020, 0.010], "draw": [0.005, 0.012, 0.004],
             "variational dropout": [0.030, 0.050, 0.040]}
  table = vd_floor.floor_table({"matmul_share": 0.5, "seconds": seconds}, population=64)
  row = table.set_index("quantity")
  floor = row.loc["floor: 1 + matrix products + draw"]
  assert (floor["value"], floor["low"], floor["high"]) == pytest.approx((2.0, 1.9, 2.1))
  vd = row.loc["VD's step / the dense step, measured"]
  assert (vd["value"], vd["low"], vd["high"]) == pytest.approx((3.0, 2.5, 4.0))
  assert row.loc["dense step, member-steps/s", "value"] == pytest.approx(6400)
