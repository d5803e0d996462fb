"""The 'none' method: a dense zoo. Its masks stay all ones."""

from __future__ import annotations

from typing import Any, NamedTuple

from jaxsparse import masks as masks_lib
from jaxsparse.sparsify.base import SparsifyMethod
from jaxsparse.sparsify.registry import DENSE, register


class DenseState(NamedTuple):
  """State of the dense method: all-ones masks."""
  masks: Any


@register(DENSE, twin_level=None, title="dense", summary="dense training (the zoo itself)",
          configs=("configs/zoo.py",), target_sparsity=(
    "method 'none' trains dense members; set config.sparsify.method or use 0"))
def dense(settings=None, training=None) -> SparsifyMethod:
  """No sparsification: all-ones masks that never change."""
  del settings, training
  return SparsifyMethod(
      init=lambda params, key, target: DenseState(masks_lib.dense_masks(params)),
      update=lambda state, params, grads, step, target: state)
