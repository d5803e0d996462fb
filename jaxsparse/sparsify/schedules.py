"""Sparsity schedules: pure functions from a step to the target sparsity.

Every argument may be a traced array, so a population carries one schedule
per member (its own final sparsity, start and end step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def one_shot(step: jax.Array, final_sparsity: jax.Array | float,
             prune_step: jax.Array | int) -> jax.Array:
  """0 before ``prune_step``, ``final_sparsity`` from it on."""
  return jnp.where(step >= prune_step, final_sparsity, 0.0)


def polynomial(step: jax.Array, final_sparsity: jax.Array | float,
               start_step: jax.Array | int, end_step: jax.Array | int,
               initial_sparsity: jax.Array | float = 0.0, power: float = 3.0) -> jax.Array:
  """Gradual pruning of Zhu & Gupta (2017).

  s_t = s_f + (s_i - s_f) * (1 - progress)^power, with progress going from 0
  at ``start_step`` to 1 at ``end_step`` (clipped outside); with s_i = 0 and
  power 3 this is s_f * (1 - (1 - progress)^3). Monotone non-decreasing and
  equal to ``final_sparsity`` from ``end_step`` on.
  """
  duration = jnp.maximum(end_step - start_step, 1)
  progress = jnp.clip((step - start_step) / duration, 0.0, 1.0)
  return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** power


def iterative(step: jax.Array, final_sparsity: jax.Array | float, num_rounds: int,
              round_length: jax.Array | int) -> jax.Array:
  """Prune -> fine-tune rounds: after round r (of ``num_rounds``) the sparsity is
  1 - (1 - s_f)^(r / num_rounds), the same fraction of survivors removed each
  round; round r's prune happens at step r * round_length (r = 1..num_rounds)."""
  completed = jnp.clip(step // round_length, 0, num_rounds)
  return 1.0 - (1.0 - final_sparsity) ** (completed / num_rounds)
