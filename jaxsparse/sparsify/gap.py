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
last whole epochs.

Grown weights start from zero (the engine zeroes pruned weights).
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

Layer = tuple[str, ...]


class GapState(NamedTuple):
  """State of GaP: the masks."""
  masks: Any


def _dict_names(path) -> list[str] | None:
  """The dict keys along a pytree path, or None if its last step is not a dict key."""
  if not path or not isinstance(path[-1], jax.tree_util.DictKey):
    return None
  return [str(entry.key) for entry in path if isinstance(entry, jax.tree_util.DictKey)]


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
    layer = tuple(_dict_names(path) or ())[:-1]
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


def partition_of_path(partitions: dict[Layer, int], path) -> int | None:
  """The partition of the layer a pytree leaf belongs to, found by its path, or None.

  A leaf belongs to a layer when the dict keys just before its own name are
  the layer's module path (the longest such path wins), wherever the layer's
  variables sit: parameters, masks, BatchNorm statistics, optimizer moments.
  """
  names = _dict_names(path)
  for start in range(len(names or ())):
    layer = tuple(names[start:-1])
    if layer in partitions:
      return partitions[layer]
  return None


def partition_of_leaves(masks, num_partitions: int, layer_order: tuple[Layer, ...] = ()):
  """A pytree like ``masks`` holding each prunable tensor's partition (None elsewhere)."""
  return _partition_tree(masks, layer_partitions(masks, num_partitions, layer_order))


def _partition_tree(masks, partitions: dict[Layer, int]):
  return jax.tree_util.tree_map_with_path(
      lambda path, mask: None if mask is None else partition_of_path(partitions, path), masks,
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


def _grow_own_partition(masks, partitions, num_copies: int):
  """Copy i of each member (masks with leading axis [members * copies]) makes partition i dense."""
  copy = jnp.arange(jax.tree.leaves(masks)[0].shape[0]) % num_copies
  return jax.tree.map(
      lambda mask, part: None if mask is None else jnp.where(
          (copy == part).reshape(-1, *([1] * (mask.ndim - 1))), jnp.ones_like(mask), mask),
      masks, partitions, is_leaf=lambda x: x is None)


def _with_masks(population, masks):
  return population._replace(sparsity_state=population.sparsity_state._replace(masks=masks))


def reassemble(population, partitions: dict[Layer, int], num_copies: int):
  """Every member rebuilt from its copies: each layer's variables (wherever they sit in the
  state) from the copy that grew its partition, the rest from copy 0, given to all copies."""
  def from_copy(path, leaf):
    copy = partition_of_path(partitions, path)
    grouped = leaf.reshape(-1, num_copies, *leaf.shape[1:])
    return jnp.repeat(grouped[:, 0 if copy is None else copy], num_copies, axis=0)
  return jax.tree_util.tree_map_with_path(from_copy, population)


@functools.partial(jax.jit, static_argnames=("num_copies", "scope", "prune", "grow",
                                             "layer_order"))
def parallel_gap_boundary(population, target, *, num_copies: int, scope: str, prune: bool,
                          grow: bool, layer_order: tuple[Layer, ...] = ()):
  """A round boundary of parallel GaP on a population of members x ``num_copies`` copies.

  ``population`` is a :class:`jaxsparse.engine.TrainState` whose members are
  laid out member-major (copies of one member consecutive) and ``target`` its
  per-member target sparsity. ``prune``: copy i prunes its partition i back
  to the target (ranking only kept weights) and each member is reassembled
  (:func:`reassemble`). ``grow``: copy i then makes partition i dense.
  """
  masks = population.sparsity_state.masks
  member_masks = jax.tree.map(lambda mask: mask[0], masks)
  layers = layer_partitions(member_masks, num_copies, layer_order)
  partitions = _partition_tree(member_masks, layers)
  if prune:
    copy = jnp.arange(target.shape[0]) % num_copies
    masks = jax.vmap(lambda p, m, t, c: prune_kept(p, m, t, scope, _outside(partitions, c)))(
        population.params, masks, target, copy)
    population = reassemble(_with_masks(population, masks), layers, num_copies)
    masks = population.sparsity_state.masks
    # Pruned weights become zero, so that a partition grows again from zero.
    population = population._replace(
        params=jax.vmap(masks_lib.apply_masks)(population.params, masks))
  if grow:
    population = _with_masks(population, _grow_own_partition(masks, partitions, num_copies))
  return population


def parallel_gap(num_partitions: int, start_epoch: int, end_epoch: int, round_epochs: int,
                 scope: str = "layerwise", layer_order: tuple[Layer, ...] = ()) -> SparsifyMethod:
  """Parallel GaP: ``num_partitions`` copies per member, rounds of ``round_epochs`` epochs."""

  init = _random_start(scope)

  def update(state, params, grads, step, target):
    del params, grads, step, target
    return state  # masks change only at round boundaries, between epochs

  def at_boundary(completed_epochs: int) -> bool:
    return (start_epoch <= completed_epochs <= end_epoch
            and not (completed_epochs - start_epoch) % round_epochs)

  def between_epochs(population, hyper, completed_epochs: int):
    if not at_boundary(completed_epochs):
      return population
    return parallel_gap_boundary(population, hyper.sparsity, num_copies=num_partitions,
                                 scope=scope, prune=completed_epochs > start_epoch,
                                 grow=completed_epochs < end_epoch, layer_order=layer_order)

  def reassembled(completed_epochs: int) -> bool:
    return at_boundary(completed_epochs) and completed_epochs > start_epoch

  return SparsifyMethod(init, update, copies=num_partitions, between_epochs=between_epochs,
                        stale_batch_stats_after=reassembled)


#: The fields both GaP variants read.
GAP_FIELDS = {"start_epoch": fields.START_EPOCH, "end_epoch": fields.END_EPOCH,
              "num_rounds": fields.NUM_ROUNDS, "scope": fields.SCOPE,
              "num_partitions": Field(4, "groups of layers, contiguous in network depth",
                                      fields.at_least(1, "use 1 or more"))}


@register("gap", title="cyclic GaP", fields=GAP_FIELDS, validate=fields.check_epoch_window,
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
          twin_level=None, uses_layer_order=True,
          example=dict(start_epoch=0, end_epoch=1, num_rounds=1, num_partitions=2))
def parallel_from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds parallel GaP from ``config.sparsify`` (rounds of whole epochs)."""
  round_epochs = max((settings.end_epoch - settings.start_epoch) // settings.num_rounds, 1)
  return parallel_gap(settings.num_partitions, settings.start_epoch, settings.end_epoch,
                      round_epochs, settings.scope, training.layer_order)
