"""Cyclic scheduled grow-and-prune, GaP (Ma et al., ICLR 2022).

Training starts from the random initialisation with a random mask at the
target sparsity (no dense pre-training). The prunable tensors are split into
``num_partitions`` contiguous groups, in the order of the parameter tree.
Between ``start_epoch`` and ``end_epoch`` there are ``num_rounds`` rounds;
round r makes partition (r mod num_partitions) dense while every other
tensor keeps its mask, and at the end of the round that partition is pruned
back to the target by magnitude as the next one grows. At ``end_epoch`` the
dense partition is pruned for good and the remaining epochs fine-tune the
fixed sparse network. So at every step of the grow-and-prune phase exactly one
partition is dense, and right after each prune every tensor is at its target.

Grown weights start from zero (the engine zeroes pruned weights), and a prune
ranks only the weights that are currently kept, so tensors that stay sparse
keep their masks exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse import masks as masks_lib
from jaxsparse.errors import UserError
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule, register
from jaxsparse.sparsify.random_pruning import random_masks


class GapState(NamedTuple):
  """State of GaP: the masks."""
  masks: Any


def partition_of_leaves(masks, num_partitions: int):
  """A pytree like ``masks`` holding each prunable tensor's partition index (None elsewhere).

  The prunable tensors, in tree order, are split into ``num_partitions``
  contiguous groups of sizes as equal as possible.
  """
  prunable = [mask for mask in jax.tree.leaves(masks) if mask is not None]
  if not 1 <= num_partitions <= len(prunable):
    raise UserError(f"config.sparsify.num_partitions={num_partitions} is invalid: use 1 to "
                    f"{len(prunable)}, the number of prunable tensors of this model")
  groups = iter(np.concatenate([np.full(len(part), index) for index, part in enumerate(
      np.array_split(np.arange(len(prunable)), num_partitions))]))
  return jax.tree.map(lambda mask: None if mask is None else int(next(groups)), masks,
                      is_leaf=lambda x: x is None)


def prune_kept(params, masks, target, scope: str):
  """Magnitude pruning to ``target`` that ranks only currently kept weights."""
  scores = jax.tree.map(lambda p, m: None if m is None else jnp.where(m > 0, jnp.abs(p), -1.0),
                        params, masks, is_leaf=lambda x: x is None)
  return masks_lib.top_k_masks(scores, masks, target, scope)


def cyclic_gap(num_partitions: int, start_step: int, end_step: int, round_length: int,
               scope: str = "layerwise") -> SparsifyMethod:
  """Cyclic GaP with rounds of ``round_length`` steps from ``start_step`` to ``end_step``."""

  def init(params, key, target):
    return GapState(random_masks(key, params, masks_lib.dense_masks(params), target, scope))

  def grow_and_prune(state, params, step, target):
    pruned = prune_kept(params, state.masks, target, scope)
    growing = ((step - start_step) // round_length) % num_partitions
    partitions = partition_of_leaves(state.masks, num_partitions)
    grow = (step < end_step)
    return GapState(jax.tree.map(
        lambda mask, part: None if mask is None else jnp.where(grow & (part == growing),
                                                               jnp.ones_like(mask), mask),
        pruned, partitions, is_leaf=lambda x: x is None))

  def update(state, params, grads, step, target):
    del grads
    is_boundary = (step >= start_step) & (step <= end_step) & (
        ((step - start_step) % round_length == 0) | (step == end_step))
    return jax.lax.cond(is_boundary, lambda: grow_and_prune(state, params, step, target),
                        lambda: state)

  return SparsifyMethod(init, update)


@register("gap")
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds cyclic GaP from ``config.sparsify`` (epochs become steps)."""
  start = settings.start_epoch * training.steps_per_epoch
  end = settings.end_epoch * training.steps_per_epoch
  round_length = max((end - start) // settings.num_rounds, 1)
  return cyclic_gap(settings.num_partitions, start, end, round_length, settings.scope)
