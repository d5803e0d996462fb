"""Magnitude pruning: keep the weights of largest |w|, layer-wise or globally.

One-shot, gradual (Zhu & Gupta's polynomial) and iterative schedules set the
target sparsity per step (see :mod:`jaxsparse.sparsify.schedules`); masks are
recomputed every ``update_every`` steps from |w * mask|, so a pruned weight
(zero) never outranks a surviving one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsparse import masks as masks_lib
from jaxsparse.sparsify import schedules
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule, register

SCHEDULES = ("one_shot", "gradual", "iterative")


class MagnitudeState(NamedTuple):
  """State of magnitude pruning: the masks."""
  masks: Any


def magnitude_masks(params, masks, sparsity, scope: str = "layerwise"):
  """Masks keeping the largest |w * mask| at ``sparsity`` per tensor or overall."""
  scores = jax.tree.map(jnp.abs, masks_lib.apply_masks(params, masks))
  return masks_lib.top_k_masks(scores, masks, sparsity, scope)


def magnitude_pruning(schedule, scope: str = "layerwise",
                      is_update_step=lambda step: True) -> SparsifyMethod:
  """Magnitude pruning with ``schedule(step, target) -> sparsity``.

  Args:
    schedule: target sparsity at a step, given the member's final target.
    scope: 'layerwise' (each tensor at the sparsity) or 'global' (one
      threshold over all prunable tensors).
    is_update_step: ``step -> bool``, the steps at which masks are recomputed
      (ranking all weights costs a sort, so not every step).
  """
  def init(params, key, target):
    del key
    masks = masks_lib.dense_masks(params)
    return MagnitudeState(magnitude_masks(params, masks, schedule(0, target), scope))

  def update(state, params, grads, step, target):
    del grads
    return jax.lax.cond(
        is_update_step(step),
        lambda: MagnitudeState(magnitude_masks(params, state.masks, schedule(step, target), scope)),
        lambda: state)

  return SparsifyMethod(init, update)


@register("magnitude")
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds magnitude pruning from ``config.sparsify`` (epochs become steps)."""
  start = settings.start_epoch * training.steps_per_epoch
  end = settings.end_epoch * training.steps_per_epoch
  if settings.schedule == "one_shot":
    schedule = lambda step, target: schedules.one_shot(step, target, start)
  elif settings.schedule == "gradual":
    schedule = lambda step, target: schedules.polynomial(step, target, start, end)
  elif settings.schedule == "iterative":
    round_length = max((end - start) // settings.num_rounds, 1)
    schedule = lambda step, target: schedules.iterative(
        jnp.maximum(step - start + round_length, 0), target, settings.num_rounds, round_length)
  else:
    raise ValueError(f"schedule {settings.schedule!r} is unknown; use one of {SCHEDULES}")
  # Recompute every `update_every` steps from the start, and at the end step
  # so that gradual pruning lands exactly on its target.
  is_update_step = lambda step: (step >= start) & (
      ((step - start) % settings.update_every == 0) | (step == end))
  return magnitude_pruning(schedule, settings.scope, is_update_step)
