"""Mask pytrees: which weights are kept.

A mask pytree has the structure of the parameters. Prunable leaves hold a
float array of 0s and 1s of the parameter's shape; leaves that are never
pruned (biases, normalisation scales) hold ``None``.
"""

from __future__ import annotations

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
