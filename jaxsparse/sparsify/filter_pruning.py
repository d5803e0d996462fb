"""L1-norm filter pruning (Li et al., ICLR 2017): structured, one-shot, then fine-tuning.

At ``start_epoch`` every channel group (see :mod:`jaxsparse.structured`)
loses the fraction ``target`` of its channels with the smallest filter L1
norms, and the network fine-tunes with those channels masked for the rest of
the run (``start_epoch = 0`` trains the pruned architecture from scratch).
``target`` is the member's *channel* sparsity. The masked network computes
exactly what the physically smaller one does; :func:`jaxsparse.structured.shrink`
builds that smaller model for deployment and FLOP counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxsparse import masks as masks_lib
from jaxsparse import structured
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import register


class FilterPruningState(NamedTuple):
  """State of filter pruning: the masks."""
  masks: Any


def filter_pruning(prune_step: int) -> SparsifyMethod:
  """L1 filter pruning of every channel group at ``prune_step``."""

  def prune(params, masks, target):
    return FilterPruningState(structured.channel_masks(params, masks, target.sparsity))

  def init(params, key, target):
    del key
    dense = masks_lib.dense_masks(params)
    return prune(params, dense, target) if prune_step == 0 else FilterPruningState(dense)

  def update(state, params, grads, step, target):
    del grads
    return jax.lax.cond(step == prune_step, lambda: prune(params, state.masks, target),
                        lambda: state)

  return SparsifyMethod(init, update)


@register("filter", title="L1 filter pruning", fields={"start_epoch": fields.START_EPOCH},
          summary="structured L1 filter pruning (Li et al. 2017), physically shrinkable; "
          "against width-scaled ThinResNets (Tessier et al. 2023) in "
          "docs/structured_vs_thin.md", configs=("configs/filter.py",),
          example=dict(start_epoch=1))
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds L1 filter pruning at ``settings.start_epoch``."""
  return filter_pruning(settings.start_epoch * training.steps_per_epoch)
