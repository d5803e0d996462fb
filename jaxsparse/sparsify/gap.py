"""Scheduled grow-and-prune, GaP (Ma et al., ICLR 2022): cyclic and parallel.

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

Parallel GaP ('parallel_gap') trains ``num_partitions`` copies of every
member side by side as members of the population: in each round, copy i
grows partition i; at the round's end each copy prunes its dense partition
by magnitude and the member is reassembled, partition i taken from copy i
(everything else, biases and optimizer state included, from copy 0), and
all copies continue from it. Rounds last whole epochs.

Grown weights start from zero (the engine zeroes pruned weights), and a prune
ranks only the weights that are currently kept, so tensors that stay sparse
keep their masks exactly.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse import masks as masks_lib
from jaxsparse.errors import UserError
from jaxsparse.errors import invalid_field
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import Field, register
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


def _random_start(scope: str):
  """GaP's ``init``: a random mask at the member's target (no dense pre-training)."""
  def init(params, key, target):
    return GapState(random_masks(key, params, masks_lib.dense_masks(params), target.sparsity,
                                 scope))
  return init


def prune_kept(params, masks, target, scope: str):
  """Magnitude pruning to ``target`` that ranks only currently kept weights."""
  scores = jax.tree.map(lambda p, m: None if m is None else jnp.where(m > 0, jnp.abs(p), -1.0),
                        params, masks, is_leaf=lambda x: x is None)
  return masks_lib.top_k_masks(scores, masks, target, scope)


def cyclic_gap(num_partitions: int, start_step: int, end_step: int, round_length: int,
               scope: str = "layerwise") -> SparsifyMethod:
  """Cyclic GaP with rounds of ``round_length`` steps from ``start_step`` to ``end_step``."""

  init = _random_start(scope)

  def grow_and_prune(state, params, step, target):
    pruned = prune_kept(params, state.masks, target.sparsity, scope)
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


def _grow_own_partition(masks, partitions, num_copies: int):
  """Copy i of each member (masks with leading axis [members * copies]) makes partition i dense."""
  copy = jnp.arange(jax.tree.leaves(masks)[0].shape[0]) % num_copies
  return jax.tree.map(
      lambda mask, part: None if mask is None else jnp.where(
          (copy == part).reshape(-1, *([1] * (mask.ndim - 1))), jnp.ones_like(mask), mask),
      masks, partitions, is_leaf=lambda x: x is None)


@functools.partial(jax.jit, static_argnames=("num_copies", "scope", "prune", "grow"))
def parallel_gap_boundary(population, target, *, num_copies: int, scope: str, prune: bool,
                          grow: bool):
  """A round boundary of parallel GaP on a population of members x ``num_copies`` copies.

  ``population`` is a :class:`jaxsparse.engine.TrainState` whose members are
  laid out member-major (copies of one member consecutive) and ``target`` its
  per-member target sparsity. ``prune``: every copy prunes back to the target
  (ranking only kept weights, so only its dense partition changes) and each
  member is reassembled: partition i's weights and masks from copy i,
  everything else from copy 0, given to all copies. ``grow``: copy i then
  makes partition i dense.
  """
  masks = population.sparsity_state.masks
  partitions = partition_of_leaves(jax.tree.map(lambda mask: mask[0], masks), num_copies)

  def from_copy(leaf, copy):
    grouped = leaf.reshape(-1, num_copies, *leaf.shape[1:])
    return jnp.repeat(grouped[:, copy], num_copies, axis=0)

  def with_masks(state, new_masks):
    return state._replace(sparsity_state=state.sparsity_state._replace(masks=new_masks))

  if prune:
    pruned = jax.vmap(lambda p, m, t: prune_kept(p, m, t, scope))(population.params, masks,
                                                                   target)
    params = jax.tree.map(lambda part, leaf: from_copy(leaf, 0 if part is None else part),
                          partitions, population.params, is_leaf=lambda x: x is None)
    masks = jax.tree.map(lambda part, mask: None if part is None else from_copy(mask, part),
                         partitions, pruned, is_leaf=lambda x: x is None)
    population = jax.tree.map(lambda leaf: from_copy(leaf, 0), population)
    # Pruned weights become zero, so that a partition grows again from zero.
    params = jax.vmap(masks_lib.apply_masks)(params, masks)
    population = with_masks(population._replace(params=params), masks)
  if grow:
    population = with_masks(population, _grow_own_partition(masks, partitions, num_copies))
  return population


def parallel_gap(num_partitions: int, start_epoch: int, end_epoch: int, round_epochs: int,
                 scope: str = "layerwise") -> SparsifyMethod:
  """Parallel GaP: ``num_partitions`` copies per member, rounds of ``round_epochs`` epochs."""

  init = _random_start(scope)

  def update(state, params, grads, step, target):
    del params, grads, step, target
    return state  # masks change only at round boundaries, between epochs

  def between_epochs(population, hyper, completed_epochs: int):
    if not start_epoch <= completed_epochs <= end_epoch or (
        completed_epochs - start_epoch) % round_epochs:
      return population
    return parallel_gap_boundary(population, hyper.sparsity, num_copies=num_partitions,
                                 scope=scope, prune=completed_epochs > start_epoch,
                                 grow=completed_epochs < end_epoch)

  return SparsifyMethod(init, update, copies=num_partitions, between_epochs=between_epochs)


#: The fields both GaP variants read.
GAP_FIELDS = {"start_epoch": fields.START_EPOCH, "end_epoch": fields.END_EPOCH,
              "num_rounds": fields.NUM_ROUNDS, "scope": fields.SCOPE,
              "num_partitions": Field(4, "contiguous groups of prunable tensors",
                                      fields.at_least(1, "use 1 or more"))}


@register("gap", title="cyclic GaP", fields=GAP_FIELDS, validate=fields.check_epoch_window,
          example=dict(start_epoch=0, end_epoch=1, num_rounds=2, num_partitions=2))
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds cyclic GaP from ``config.sparsify`` (epochs become steps)."""
  start = settings.start_epoch * training.steps_per_epoch
  end = settings.end_epoch * training.steps_per_epoch
  round_length = max((end - start) // settings.num_rounds, 1)
  return cyclic_gap(settings.num_partitions, start, end, round_length, settings.scope)


def _validate_parallel(config) -> None:
  fields.check_epoch_window(config)
  settings = config.sparsify
  if (settings.end_epoch - settings.start_epoch) % settings.num_rounds:
    raise invalid_field(
        "sparsify.num_rounds", settings.num_rounds,
        f"parallel GaP's rounds last whole epochs; use a divisor of end_epoch - start_epoch "
        f"({settings.end_epoch - settings.start_epoch})")


# Its copies meet only between epochs (tested in test_gap.py); the example
# exercises its engine part.
@register("parallel_gap", title="parallel GaP", fields=GAP_FIELDS, validate=_validate_parallel,
          twin_level=None,
          example=dict(start_epoch=0, end_epoch=1, num_rounds=1, num_partitions=2))
def parallel_from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds parallel GaP from ``config.sparsify`` (rounds of whole epochs)."""
  del training
  round_epochs = max((settings.end_epoch - settings.start_epoch) // settings.num_rounds, 1)
  return parallel_gap(settings.num_partitions, settings.start_epoch, settings.end_epoch,
                      round_epochs, settings.scope)
