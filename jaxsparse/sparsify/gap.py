"""Scheduled grow-and-prune, GaP (Ma et al., ICLR 2022): cyclic and parallel.

Training starts from the random initialisation with a random mask at the
target sparsity (no dense pre-training). The model's layers are split into
``num_partitions`` groups that are contiguous in network depth (the order in
which the forward pass calls them, :func:`jaxsparse.models.layer_order`):
the prunable tensors are split into groups of sizes as equal as possible, and
a layer without one (BatchNorm) joins the partition of the prunable layer
before it. Between ``start_epoch`` and ``end_epoch`` there are
``num_rounds`` rounds; round r makes partition (r mod num_partitions) dense
while every other tensor keeps its mask, and at the end of the round that
partition is pruned back to the target by magnitude as the next one grows.
At ``end_epoch`` the dense partition is pruned for good and the remaining
epochs fine-tune the fixed sparse network. So at every step of the
grow-and-prune phase exactly one partition is dense, and right after each
prune every tensor is at its target.

A prune ranks only the grown partition's weights that are currently kept;
every other partition keeps its mask exactly. With ``scope='global'`` the
grown partition therefore receives the whole budget the sparse partitions
leave (its own share, as Ma et al. prune only the dense part).

Parallel GaP ('parallel_gap') trains ``num_partitions`` copies of every
member side by side as members of the population: in each round, copy i
grows partition i; at the round's end each copy prunes its dense partition
by magnitude and the member is reassembled, every layer taken from the copy
that grew its partition (weights, masks, biases, normalisation parameters
and statistics, and optimizer state alike; what belongs to no layer, such as
keys and step counts, from copy 0), and all copies continue from it. Rounds
last whole epochs. The method says what happens to the masks
(:class:`jaxsparse.sparsify.CopyRounds`); the engine reassembles the
population (:func:`jaxsparse.engine.between_epochs`).

Grown weights start from zero (the engine zeroes pruned weights).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse import masks as masks_lib
from jaxsparse.errors import UserError
from jaxsparse.errors import invalid_field
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import CopyRounds, SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import Field, register
from jaxsparse.sparsify.random_pruning import random_masks

Layer = tuple[str, ...]


class GapState(NamedTuple):
  """State of GaP: the masks."""
  masks: Any


def layer_partitions(masks, num_partitions: int,
                     layer_order: tuple[Layer, ...] = ()) -> dict[Layer, int]:
  """Each layer's partition, by module path (e.g. ``('BasicBlock_2', 'Conv_1')``).

  The layers holding prunable tensors, in ``layer_order`` (network depth; the
  tree order of ``masks`` when empty), are split into ``num_partitions``
  contiguous groups of sizes as equal as possible; every other layer of
  ``layer_order`` joins the partition of the last prunable layer before it.
  """
  prunable: list[Layer] = []
  for path, mask in jax.tree_util.tree_leaves_with_path(masks):
    layer = masks_lib.layer_of_leaf(path)
    if mask is not None and layer not in prunable:
      prunable.append(layer)
  if not 1 <= num_partitions <= len(prunable):
    raise UserError(f"config.sparsify.num_partitions={num_partitions} is invalid: use 1 to "
                    f"{len(prunable)}, the number of prunable tensors of this model")
  depth = {layer: index for index, layer in enumerate(layer_order)}
  prunable.sort(key=lambda layer: depth.get(layer, len(depth)))  # stable: tree order else
  partitions = {prunable[index]: group for group, indices in enumerate(
      np.array_split(np.arange(len(prunable)), num_partitions)) for index in indices}
  current = 0
  for layer in layer_order:
    current = partitions.setdefault(layer, current)
  return partitions


def partition_of_leaves(masks, num_partitions: int, layer_order: tuple[Layer, ...] = ()):
  """A pytree like ``masks`` holding each prunable tensor's partition (None elsewhere)."""
  return _partition_tree(masks, layer_partitions(masks, num_partitions, layer_order))


def _partition_tree(masks, partitions: dict[Layer, int]):
  return jax.tree_util.tree_map_with_path(
      lambda path, mask: None if mask is None else masks_lib.layer_value(partitions, path), masks,
      is_leaf=lambda x: x is None)


def _random_start(scope: str):
  """GaP's ``init``: a random mask at the member's target (no dense pre-training)."""
  def init(params, key, target):
    return GapState(random_masks(key, params, masks_lib.dense_masks(params), target.sparsity,
                                 scope))
  return init


def prune_kept(params, masks, target, scope: str, fixed=None):
  """Magnitude pruning to ``target`` that ranks only currently kept weights.

  ``fixed``: a pytree of booleans like ``masks`` (may be traced); the tensors
  it marks keep their masks exactly, so the others absorb the whole budget
  (under a global scope) or are pruned to their own target (layerwise).
  """
  if fixed is None:
    fixed = jax.tree.map(lambda mask: None if mask is None else False, masks,
                         is_leaf=lambda x: x is None)
  scores = jax.tree.map(
      lambda p, m, keep: None if m is None else jnp.where(
          m > 0, jnp.where(keep, jnp.inf, jnp.abs(p)), -1.0),
      params, masks, fixed, is_leaf=lambda x: x is None)
  return masks_lib.top_k_masks(scores, masks, target, scope)


def _outside(partitions, grown):
  """Booleans like ``partitions``: True for the tensors not in partition ``grown``."""
  return jax.tree.map(lambda part: None if part is None else part != grown, partitions,
                      is_leaf=lambda x: x is None)


def cyclic_gap(num_partitions: int, start_step: int, end_step: int, round_length: int,
               scope: str = "layerwise", layer_order: tuple[Layer, ...] = ()) -> SparsifyMethod:
  """Cyclic GaP with rounds of ``round_length`` steps from ``start_step`` to ``end_step``."""

  init = _random_start(scope)

  def grow_and_prune(state, params, step, target):
    partitions = partition_of_leaves(state.masks, num_partitions, layer_order)
    # The partition that grew in the round ending now (none at the first boundary).
    grown = jnp.where(step > start_step,
                      ((step - 1 - start_step) // round_length) % num_partitions, -1)
    pruned = prune_kept(params, state.masks, target.sparsity, scope,
                        _outside(partitions, grown))
    growing = ((step - start_step) // round_length) % num_partitions
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


def parallel_gap(num_partitions: int, start_epoch: int, end_epoch: int, round_epochs: int,
                 scope: str = "layerwise", layer_order: tuple[Layer, ...] = ()) -> SparsifyMethod:
  """Parallel GaP: ``num_partitions`` copies per member, rounds of ``round_epochs`` epochs.

  Its copies meet at round boundaries (:class:`jaxsparse.sparsify.CopyRounds`): copy i
  prunes its partition i back to the target (ranking only kept weights), the member is
  reassembled layer by layer from the copies that grew each partition, and copy i then
  grows partition i of the next round. Masks do not change inside a round.
  """
  init = _random_start(scope)

  def update(state, params, grads, step, target):
    del params, grads, step, target
    return state  # masks change only at round boundaries, between epochs

  def meets(completed_epochs: int) -> tuple[bool, bool]:
    boundary = (start_epoch <= completed_epochs <= end_epoch
                and not (completed_epochs - start_epoch) % round_epochs)
    return boundary and completed_epochs > start_epoch, boundary and completed_epochs < end_epoch

  def prune(params, masks, target, copy):
    partitions = partition_of_leaves(masks, num_partitions, layer_order)
    return prune_kept(params, masks, target, scope, _outside(partitions, copy))

  def grow(masks, copy):
    partitions = partition_of_leaves(masks, num_partitions, layer_order)
    return jax.tree.map(
        lambda mask, part: None if mask is None else jnp.where(part == copy,
                                                               jnp.ones_like(mask), mask),
        masks, partitions, is_leaf=lambda x: x is None)

  rounds = CopyRounds(num_partitions, meets, prune,
                      lambda masks: layer_partitions(masks, num_partitions, layer_order), grow)
  return SparsifyMethod(init, update, copy_rounds=rounds)


#: The fields both GaP variants read.
GAP_FIELDS = {"start_epoch": fields.START_EPOCH, "end_epoch": fields.END_EPOCH,
              "num_rounds": fields.NUM_ROUNDS, "scope": fields.SCOPE,
              "num_partitions": Field(4, "groups of layers, contiguous in network depth",
                                      fields.at_least(1, "use 1 or more"))}


@register("gap", title="cyclic GaP", fields=GAP_FIELDS, validate=fields.check_epoch_window,
          summary="scheduled grow-and-prune, cyclic (Ma et al., ICLR 2022)",
          configs=("configs/gap.py",),
          uses_layer_order=True,
          example=dict(start_epoch=0, end_epoch=1, num_rounds=2, num_partitions=2))
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds cyclic GaP from ``config.sparsify`` (epochs become steps)."""
  start = settings.start_epoch * training.steps_per_epoch
  end = settings.end_epoch * training.steps_per_epoch
  round_length = max((end - start) // settings.num_rounds, 1)
  return cyclic_gap(settings.num_partitions, start, end, round_length, settings.scope,
                    training.layer_order)


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
          summary="scheduled grow-and-prune, parallel: a member's copies each grow one "
          "partition (Ma et al., ICLR 2022)", configs=("configs/parallel_gap.py",),
          twin_level=None, uses_layer_order=True,
          example=dict(start_epoch=0, end_epoch=1, num_rounds=1, num_partitions=2))
def parallel_from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds parallel GaP from ``config.sparsify`` (rounds of whole epochs)."""
  round_epochs = max((settings.end_epoch - settings.start_epoch) // settings.num_rounds, 1)
  return parallel_gap(settings.num_partitions, settings.start_epoch, settings.end_epoch,
                      round_epochs, settings.scope, training.layer_order)
