"""Mask pytrees: which weights are kept.

A mask pytree has the structure of the parameters. Prunable leaves hold a
float array of 0s and 1s of the parameter's shape; leaves that are never
pruned (biases, normalisation scales) hold ``None``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

PyTree = Any


def is_prunable(path: tuple, leaf: jax.Array) -> bool:
  """Default prunable filter: Conv and Dense kernels; biases and norms are kept dense."""
  del leaf
  last = path[-1]
  return getattr(last, "key", last) == "kernel"


def dense_masks(params: PyTree,
                prunable: Callable[[tuple, jax.Array], bool] = is_prunable) -> PyTree:
  """All-ones masks for the prunable leaves of ``params``, ``None`` elsewhere."""
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: jnp.ones_like(leaf) if prunable(path, leaf) else None, params)


def apply_masks(params: PyTree, masks: PyTree) -> PyTree:
  """``params * masks`` leaf by leaf; leaves whose mask is ``None`` pass unchanged."""
  return jax.tree.map(lambda p, m: p if m is None else p * m, params, masks)


def _prunable_leaves(masks: PyTree) -> list[jax.Array]:
  return [leaf for leaf in jax.tree.leaves(masks) if leaf is not None]


def sparsity(masks: PyTree) -> jax.Array:
  """Fraction of pruned (zero) entries over all prunable leaves."""
  leaves = _prunable_leaves(masks)
  total = sum(leaf.size for leaf in leaves)
  kept = sum(jnp.sum(leaf != 0) for leaf in leaves)
  return 1.0 - kept / total


def layer_sparsity(masks: PyTree) -> dict[str, jax.Array]:
  """Fraction of pruned entries per prunable leaf, keyed by its '/'-joined path."""
  flat = jax.tree_util.tree_leaves_with_path(masks)
  return {"/".join(str(getattr(k, "key", k)) for k in path): 1.0 - jnp.mean(leaf != 0)
          for path, leaf in flat if leaf is not None}


def keep_top_k(scores: jax.Array, num_keep: jax.Array | int) -> jax.Array:
  """A 0/1 mask of ``scores``' shape keeping exactly the ``num_keep`` largest.

  Ties are broken deterministically by position: of equal scores, the one
  with the smaller flat index is kept (-0.0 equals 0.0; NaN ranks last).
  ``num_keep`` may be traced (one value per member under ``vmap``), which is
  why this does not call ``lax.top_k`` (whose k must be static). Nor does it
  sort: the k-th largest score is found bit by bit from counts (32 passes
  over the scores), the ties at it by a search over positions. On the CPU
  that is about 35x faster than a stable argsort for a 784 x 300 layer.
  """
  flat = sortable_key(scores.reshape(-1))
  # The num_keep-th largest key: the largest t with at least num_keep keys >= t.
  threshold = _largest_satisfying(lambda t: jnp.sum(flat >= t) >= num_keep, 32)
  above, tied = flat > threshold, flat == threshold
  ties_kept = num_keep - jnp.sum(above)
  position = jnp.arange(flat.size, dtype=jnp.uint32)
  # Keep the tied entries before the largest bound that holds at most ties_kept of them.
  bound = _largest_satisfying(lambda b: jnp.sum(tied & (position < b)) <= ties_kept,
                              int(flat.size).bit_length())
  return (above | (tied & (position < bound))).astype(jnp.float32).reshape(scores.shape)


def sortable_key(x: jax.Array) -> jax.Array:
  """uint32 keys whose unsigned order is the numeric order of float32 ``x`` (-0.0 and 0.0
  get the same key; NaN the smallest)."""
  x = jnp.where(x == 0, 0.0, x).astype(jnp.float32)
  bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  # Negative floats: all bits flipped (more negative -> smaller); others: the sign bit set.
  key = jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(1 << 31))
  return jnp.where(jnp.isnan(x), jnp.uint32(0), key)


def _largest_satisfying(predicate: Callable[[jax.Array], jax.Array], bits: int) -> jax.Array:
  """The largest uint32 v < 2**bits with ``predicate(v)``, for a predicate that holds up to
  some value and not above it (and holds at 0), built from the top bit down."""
  def set_bit_if_it_holds(i, value):
    candidate = value | (jnp.uint32(1) << (bits - 1 - i).astype(jnp.uint32))
    return jnp.where(predicate(candidate), candidate, value)
  return jax.lax.fori_loop(0, bits, set_bit_if_it_holds, jnp.uint32(0))


def num_to_keep(size: int, target_sparsity: jax.Array | float) -> jax.Array:
  """How many of ``size`` entries survive at ``target_sparsity``.

  As ``torch.nn.utils.prune``: round(s * size) entries are pruned (to nearest;
  exact halves, rare in float32, may go either way), the rest are kept.
  """
  return size - jnp.round(target_sparsity * size).astype(jnp.int32)


def layerwise_top_k_masks(scores: PyTree, masks: PyTree,
                          target_sparsity: jax.Array | float) -> PyTree:
  """Per prunable leaf, keep the top (1 - s) fraction of ``scores`` (exact count)."""
  return jax.tree.map(
      lambda mask, score: None if mask is None else keep_top_k(
          score, num_to_keep(score.size, target_sparsity)), masks, scores,
      is_leaf=lambda x: x is None)


def _prunable_scores(scores: PyTree, masks: PyTree) -> list[jax.Array]:
  """The leaves of ``scores`` where ``masks`` is not ``None``, in tree order."""
  treedef = jax.tree.structure(masks, is_leaf=lambda x: x is None)
  return [score for mask, score in zip(treedef.flatten_up_to(masks),
                                       treedef.flatten_up_to(scores)) if mask is not None]


def global_top_k_masks(scores: PyTree, masks: PyTree,
                       target_sparsity: jax.Array | float) -> PyTree:
  """Keep the top (1 - s) fraction of ``scores`` over all prunable leaves together."""
  prunable = _prunable_scores(scores, masks)
  sizes = [score.size for score in prunable]
  flat = jnp.concatenate([score.reshape(-1) for score in prunable])
  kept = keep_top_k(flat, num_to_keep(flat.size, target_sparsity))
  boundaries = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
  pieces = iter(jnp.split(kept, boundaries))
  return jax.tree.map(
      lambda mask, score: None if mask is None else next(pieces).reshape(score.shape),
      masks, scores, is_leaf=lambda x: x is None)


def erk_sparsities(shapes: list[tuple[int, ...]], target_sparsity: jax.Array | float
                   ) -> list[jax.Array]:
  """Per-tensor sparsities of the Erdos-Renyi-Kernel budget (Evci et al., RigL 2020).

  A tensor of shape (d_1, ..., d_n) gets density eps * (d_1 + ... + d_n) /
  (d_1 * ... * d_n), so small layers stay denser; eps is chosen so that the
  kept weights add up to (1 - target) of all, and a tensor whose density
  would exceed 1 is kept dense and the budget re-spread over the others (at
  most one pass per tensor). ``target_sparsity`` may be traced.
  """
  sizes = jnp.array([math.prod(shape) for shape in shapes], jnp.float32)
  raw = jnp.array([sum(shape) / math.prod(shape) for shape in shapes], jnp.float32)
  is_dense = jnp.zeros(len(shapes), bool)
  for _ in range(len(shapes)):
    budget = (1.0 - target_sparsity) * sizes.sum() - jnp.sum(jnp.where(is_dense, sizes, 0.0))
    epsilon = budget / jnp.sum(jnp.where(is_dense, 0.0, raw * sizes))
    is_dense = is_dense | (epsilon * raw > 1.0)
  density = jnp.where(is_dense, 1.0, jnp.minimum(epsilon * raw, 1.0))
  return list(1.0 - density)


def erk_top_k_masks(scores: PyTree, masks: PyTree, target_sparsity: jax.Array | float) -> PyTree:
  """Per prunable leaf, keep the top scores at that leaf's ERK sparsity (see :func:`erk_sparsities`)."""
  prunable = _prunable_scores(scores, masks)
  per_leaf = iter(erk_sparsities([score.shape for score in prunable], target_sparsity))
  return jax.tree.map(
      lambda mask, score: None if mask is None else keep_top_k(
          score, num_to_keep(score.size, next(per_leaf))), masks, scores,
      is_leaf=lambda x: x is None)


#: How a target sparsity is spread: the same for each prunable tensor, one
#: threshold over all of them, or Erdos-Renyi-Kernel per-tensor budgets.
SCOPES: tuple[str, ...] = ("layerwise", "global", "erk")


def top_k_masks(scores: PyTree, masks: PyTree, target_sparsity: jax.Array | float,
                scope: str = "layerwise") -> PyTree:
  """Keeps the highest ``scores`` at ``target_sparsity``, spread as ``scope`` says (see SCOPES)."""
  if scope == "layerwise":
    return layerwise_top_k_masks(scores, masks, target_sparsity)
  if scope == "global":
    return global_top_k_masks(scores, masks, target_sparsity)
  if scope == "erk":
    return erk_top_k_masks(scores, masks, target_sparsity)
  raise ValueError(f"scope {scope!r} is unknown; use one of {SCOPES}")


def key_per_leaf(key: jax.Array, tree: PyTree) -> PyTree:
  """A pytree like ``tree`` holding an independent PRNG key per leaf (split from ``key``)."""
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(treedef, list(jax.random.split(key, len(leaves))))


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
  """``hard`` in the forward pass, with the gradient of ``soft`` in the backward pass.

  ``soft - stop_gradient(soft)`` is exactly 0 in the forward pass, so the
  result is exactly ``hard`` (``hard + soft - stop_gradient(soft)`` can round).
  """
  return hard + (soft - jax.lax.stop_gradient(soft))


def map_prunable(function: Callable[..., Any], masks: PyTree, *trees: PyTree) -> PyTree:
  """``function(*leaves)`` on the prunable leaves (those of ``masks`` not ``None``).

  The result has ``None`` where ``masks`` does; ``trees`` must have the
  structure of the parameters.
  """
  return jax.tree.map(lambda mask, *leaves: None if mask is None else function(*leaves),
                      masks, *trees, is_leaf=lambda x: x is None)


def _dict_names(path) -> list[str] | None:
  """The dict keys along a pytree path, or None if its last step is not a dict key."""
  if not path or not isinstance(path[-1], jax.tree_util.DictKey):
    return None
  return [str(entry.key) for entry in path if isinstance(entry, jax.tree_util.DictKey)]


def layer_of_leaf(path) -> tuple[str, ...]:
  """The module path of the layer a parameter-tree leaf belongs to (its dict keys but its
  own name: ``('BasicBlock_2', 'Conv_1')`` for ``...['BasicBlock_2']['Conv_1']['kernel']``)."""
  return tuple(_dict_names(path) or ())[:-1]


def layer_value(values: dict[tuple[str, ...], Any], path) -> Any:
  """``values``' entry for the layer a pytree leaf belongs to, found by the leaf's path, or
  None.

  A leaf belongs to a layer when the dict keys just before its own name are
  the layer's module path (the longest such path wins), wherever the layer's
  variables sit: parameters, masks, BatchNorm statistics, optimizer moments.
  """
  names = _dict_names(path)
  for start in range(len(names or ())):
    layer = tuple(names[start:-1])
    if layer in values:
      return values[layer]
  return None
