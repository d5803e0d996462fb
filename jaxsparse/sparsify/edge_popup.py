"""Edge-popup (Ramanujan et al., CVPR 2020): a supermask of frozen random weights.

The weights stay at their random initialisation; every prunable weight has a
learned score, and the forward pass keeps the weights of the top (1 - s)
fraction of |score| in each tensor (s the member's target sparsity). The
ranking has no gradient, so the gradient with respect to the mask passes
straight through to the scores. Scores start uniform in +-1/sqrt(fan_in), as
in the paper's code. The Gumbel-softmax paper's reference baseline.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsparse import layers
from jaxsparse import masks as masks_lib
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import register


class EdgePopupState(NamedTuple):
  """State of edge-popup: the top-k masks and the scores (``trainable``)."""
  masks: Any
  trainable: Any


def edge_popup() -> SparsifyMethod:
  """Edge-popup with layer-wise top-k of |score| at each member's target sparsity."""

  def top_k(scores, target):
    absolute = jax.tree.map(jnp.abs, scores)
    return masks_lib.top_k_masks(absolute, scores, target, "layerwise")

  def init(params, key, target):
    prunable = masks_lib.dense_masks(params)
    keys = masks_lib.key_per_leaf(key, params)
    scores = masks_lib.map_prunable(
        lambda k, p: jax.random.uniform(k, p.shape, p.dtype, -1.0, 1.0) / jnp.sqrt(
            layers.fan_in(p.shape)), prunable, keys, params)
    return EdgePopupState(top_k(scores, target.sparsity), scores)

  def update(state, params, grads, step, target):
    del params, grads, step
    return state._replace(masks=top_k(state.trainable, target.sparsity))

  def forward(state, params, key, step, target):
    del step
    scores = state.trainable
    kept = top_k(scores, target.sparsity)
    if key is not None:
      kept = masks_lib.map_prunable(
          lambda hard, score: masks_lib.straight_through(hard, jnp.abs(score)),
          kept, kept, scores)
    return masks_lib.apply_masks(params, kept), {}, 0.0

  return SparsifyMethod(init, update, forward, trains_weights=False,
                        zeroes_pruned_weights=False)


@register("edge_popup", title="edge-popup",
          summary="top-k of learned scores over frozen weights (Ramanujan et al. 2020)",
          configs=("configs/edge_popup.py",),
          fields={"trainable_learning_rate_scale": fields.TRAINABLE_LEARNING_RATE_SCALE})
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds edge-popup (its only setting: the scores' learning rate scale)."""
  del training
  return edge_popup()._replace(
      trainable_learning_rate_scale=settings.trainable_learning_rate_scale)
