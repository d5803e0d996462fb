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
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule, epochs_to_steps
from jaxsparse.sparsify.registry import Field, register

SCHEDULES = ("one_shot", "gradual", "iterative")


class MagnitudeState(NamedTuple):
  """State of magnitude pruning: the masks."""
  masks: Any


def magnitude_masks(params, masks, sparsity, scope: str = "layerwise"):
  """Masks keeping the largest |w * mask| at ``sparsity`` per tensor or overall."""
  scores = jax.tree.map(jnp.abs, masks_lib.apply_masks(params, masks))
  return masks_lib.top_k_masks(scores, masks, sparsity, scope)


def magnitude_pruning(schedule, scope: str = "layerwise",
                      is_update_step=lambda step, target: True) -> SparsifyMethod:
  """Magnitude pruning with ``schedule(step, target) -> sparsity``.

  Args:
    schedule: sparsity at a step, given the member's :class:`Target`.
    scope: 'layerwise' (each tensor at the sparsity) or 'global' (one
      threshold over all prunable tensors).
    is_update_step: ``(step, target) -> bool``, the steps at which masks are
      recomputed (ranking all weights costs a sort, so not every step; when
      it depends on a per-member setting, every member ranks at every step).
  """
  def init(params, key, target):
    del key
    masks = masks_lib.dense_masks(params)
    return MagnitudeState(magnitude_masks(params, masks, schedule(0, target), scope))

  def update(state, params, grads, step, target):
    del grads
    return jax.lax.cond(
        is_update_step(step, target),
        lambda: MagnitudeState(magnitude_masks(params, state.masks, schedule(step, target), scope)),
        lambda: state)

  return SparsifyMethod(init, update)


def _validate(config) -> None:
  if config.sparsify.schedule != "one_shot":
    fields.check_epoch_window(config)


@register("magnitude", title="magnitude pruning", abbreviation="magnitude",
          summary="largest |w| per tensor, overall or by ERK budgets; one-shot, gradual (Zhu & "
          "Gupta 2017) or iterative", configs=("configs/magnitude.py",),
          fields={"schedule": Field("one_shot", "'one_shot' | 'gradual' | 'iterative'",
                                    fields.one_of(SCHEDULES)),
                  "scope": fields.SCOPE, "start_epoch": fields.START_EPOCH,
                  "end_epoch": fields.END_EPOCH, "num_rounds": fields.NUM_ROUNDS,
                  "update_every": Field(100, "steps between mask recomputations",
                                        fields.at_least(1, "use 1 or more"))},
          member_settings=("start_epoch", "end_epoch"), validate=_validate,
          example=dict(schedule="gradual", start_epoch=0, end_epoch=1, update_every=2))
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds magnitude pruning from ``config.sparsify`` (epochs become steps).

  ``start_epoch`` and ``end_epoch`` may differ between members (see
  :class:`jaxsparse.sparsify.Target`).
  """
  kind, num_rounds, update_every = settings.schedule, settings.num_rounds, settings.update_every
  epochs = {name: settings[name] for name in ("start_epoch", "end_epoch")}
  if kind not in SCHEDULES:
    raise ValueError(f"schedule {kind!r} is unknown; use one of {SCHEDULES}")

  def start_and_end(target):
    return tuple(epochs_to_steps(target.setting(name, default), training.steps_per_epoch)
                 for name, default in epochs.items())

  def schedule(step, target):
    start, end = start_and_end(target)
    if kind == "one_shot":
      return schedules.one_shot(step, target.sparsity, start)
    if kind == "gradual":
      return schedules.polynomial(step, target.sparsity, start, end)
    round_length = jnp.maximum((end - start) // num_rounds, 1)
    return schedules.iterative(jnp.maximum(step - start + round_length, 0), target.sparsity,
                               num_rounds, round_length)

  def is_update_step(step, target):
    # Recompute every `update_every` steps from the start, and at the end
    # step so that gradual pruning lands exactly on its target.
    start, end = start_and_end(target)
    return (step >= start) & (((step - start) % update_every == 0) | (step == end))

  return magnitude_pruning(schedule, settings.scope, is_update_step)
