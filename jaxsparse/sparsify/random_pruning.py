"""Random pruning baselines.

A random mask at the member's target sparsity (exact count per tensor, or
overall with ``scope='global'``), drawn once at ``start_epoch`` from the key in
the method's state and then kept fixed:

- ``start_epoch = 0``: static sparse training (a random sparse network
  trained from initialisation);
- ``start_epoch > 0``: random pruning of a network trained densely until
  then, followed by fine-tuning.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxsparse import masks as masks_lib
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import register


class RandomState(NamedTuple):
  """State of random pruning: the masks and the key they are drawn from."""
  masks: Any
  key: jax.Array


def random_masks(key: jax.Array, params, masks, sparsity, scope: str = "layerwise"):
  """Masks keeping a uniformly random set of exactly (1 - s) of the prunable weights."""
  keys = masks_lib.key_per_leaf(key, params)
  scores = jax.tree.map(lambda k, p: jax.random.uniform(k, p.shape), keys, params)
  return masks_lib.top_k_masks(scores, masks, sparsity, scope)


@register("random", title="random pruning",
          summary="random masks at the target: static sparse training or random pruning",
          configs=("configs/random.py",),
          fields={"start_epoch": fields.START_EPOCH, "scope": fields.SCOPE})
def random_pruning(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Random masks at the target sparsity, drawn at ``settings.start_epoch``."""
  prune_step = settings.start_epoch * training.steps_per_epoch
  scope = settings.scope

  def init(params, key, target):
    dense = masks_lib.dense_masks(params)
    if prune_step == 0:
      return RandomState(random_masks(key, params, dense, target.sparsity, scope), key)
    return RandomState(dense, key)

  def update(state, params, grads, step, target):
    del grads
    return jax.lax.cond(
        step == prune_step,
        lambda: RandomState(random_masks(state.key, params, state.masks, target.sparsity, scope),
                             state.key),
        lambda: state)

  return SparsifyMethod(init, update)
