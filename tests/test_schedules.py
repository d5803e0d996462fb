"""Sparsity schedules: monotone, hit their target at the end step, vmappable."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.sparsify import schedules


def test_polynomial_is_monotone_and_hits_target_at_end_step():
  steps = jnp.arange(0, 120)
  values = schedules.polynomial(steps, 0.9, 10, 100)
  assert float(values[10]) == 0.0 and float(values[0]) == 0.0
  assert np.all(np.diff(np.asarray(values)) >= -1e-7)
  np.testing.assert_allclose(values[100:], 0.9, rtol=1e-6)
  # Zhu & Gupta: s_f * (1 - (1 - progress)^3) at progress 0.5.
  np.testing.assert_allclose(values[55], 0.9 * (1 - 0.5**3), rtol=1e-6)


def test_one_shot_and_iterative():
  assert float(schedules.one_shot(4, 0.8, 5)) == 0.0
  assert float(schedules.one_shot(5, 0.8, 5)) == np.float32(0.8)
  rounds = [float(schedules.iterative(step, 0.875, 3, 10)) for step in (0, 10, 20, 30, 99)]
  np.testing.assert_allclose(rounds, [0.0, 0.5, 0.75, 0.875, 0.875], rtol=1e-6)


def test_per_member_schedules_under_vmap():
  targets = jnp.asarray([0.5, 0.9])
  ends = jnp.asarray([50, 100])
  values = jax.vmap(lambda s, e: schedules.polynomial(100, s, 0, e))(targets, ends)
  np.testing.assert_allclose(values, targets, rtol=1e-6)
