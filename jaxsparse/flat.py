"""A population's weights as one flat vector per member, with masks that line up.

Weight-space research (hyper-representations, population statistics) works
on ``[members, parameters]`` matrices. :func:`flat_weights` makes one from a
population's parameters and masks (:func:`jaxsparse.checkpoints.load_population`),
in one of two orders:

- ``'flax'``: the leaves in Flax's order (``jax.tree`` order of the parameter
  dict: modules by name, then ``bias`` before ``kernel``), as stored;
- ``'pytorch'``: the order and layout of the model zoos' PyTorch state dicts
  (Schürholt et al. 2022; ModelZoos/ModelZooDataset): layers in network order,
  each layer's weight then bias, convolution kernels OIHW, dense weights
  ``(out, in)``, and the first dense layer's inputs in PyTorch's NCHW flatten
  order. It is defined for the model zoos' convolution-then-dense models
  (CNN-s, CNN-l, LeNets, Conv-N), not for ResNets.

Masks hold ``None`` for leaves that are never pruned (biases, normalisation);
their flat mask is 1, so ``weights * masks`` is the effective network.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxsparse.errors import UserError

ORDERS = ("flax", "pytorch")


class FlatWeights(NamedTuple):
  """``weights`` and ``masks`` [members, parameters]; ``segments`` names each leaf's slice
  ``(name, start, shape)`` in the chosen order and layout (e.g. ``('Conv_0.weight', 0,
  (8, 1, 5, 5))``)."""
  weights: np.ndarray
  masks: np.ndarray
  segments: list[tuple[str, int, tuple[int, ...]]]


def flat_weights(params: Any, masks: Any = None, order: str = "flax") -> FlatWeights:
  """The parameters of every member (leaves with a leading member axis) as flat vectors.

  Args:
    params: a population's ``params`` (e.g. ``state.params``).
    masks: its masks (e.g. ``state.masks``; None: every weight is kept).
    order: ``'flax'`` or ``'pytorch'`` (see the module's docstring).

  Raises:
    UserError: an unknown order, or ``'pytorch'`` for a model outside the zoos' family.
  """
  if order not in ORDERS:
    raise UserError(f"order={order!r} is unknown; use one of {ORDERS}")
  leaves = _leaves(params)
  mask_leaves = {} if masks is None else {
      name: leaf for name, leaf in _leaves(masks, keep_none=True) if leaf is not None}
  layout = (_flax_layout(leaves) if order == "flax" else
            pytorch_layout({name: np.shape(leaf) for name, leaf in leaves}))
  weights, flat_masks, segments, start = [], [], [], 0
  for name, source, transform, _ in layout:
    weight = transform(np.asarray(dict(leaves)[source]))
    mask = mask_leaves.get(source)
    mask = np.ones_like(weight) if mask is None else transform(np.asarray(mask, weight.dtype))
    segments.append((name, start, weight.shape[1:]))
    start += math.prod(weight.shape[1:])
    weights.append(weight.reshape(len(weight), -1))
    flat_masks.append(mask.reshape(len(mask), -1))
  return FlatWeights(np.concatenate(weights, axis=1), np.concatenate(flat_masks, axis=1),
                     segments)


def _leaves(tree: Any, keep_none: bool = False) -> list[tuple[str, Any]]:
  """``(dotted path, leaf)`` in jax.tree order."""
  flat, _ = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=(lambda leaf: leaf is None) if keep_none else None)
  return [(".".join(str(getattr(key, "key", key)) for key in path), leaf) for path, leaf in flat]


class Segment(NamedTuple):
  """One parameter of the PyTorch layout: its state-dict name (``Conv_0.weight``), the Flax
  leaf it comes from (``Conv_0.kernel``), and the layout changes both ways on arrays with a
  leading member axis."""
  name: str
  source: str
  to_pytorch: Any
  from_pytorch: Any


def _flax_layout(leaves):
  return [Segment(name, name, identity, identity) for name, _ in leaves]


def pytorch_layout(shapes: dict[str, tuple[int, ...]]) -> list[Segment]:
  """The model zoos' state-dict order of a convolution-then-dense model, from the shapes of
  its Flax leaves by dotted name (``{'Conv_0.kernel': (P, 5, 5, 1, 8), ...}``).

  Raises:
    UserError: a model outside the zoos' family (e.g. a ResNet).
  """
  layers = {name.rsplit(".", 1)[0] for name in shapes}
  if any(_network_position(layer) is None for layer in layers):
    raise UserError("order='pytorch' is defined for the model zoos' convolution-then-dense "
                    f"models (layers Conv_i then Dense_j), not for layers such as {sorted(layers)[:3]}; use "
                    "order='flax'")
  layers = sorted(layers, key=_network_position)
  convs = [layer for layer in layers if layer.startswith("Conv_")]
  layout = []
  for layer in layers:
    kernel = shapes[f"{layer}.kernel"]
    if layer.startswith("Conv_"):
      to_pytorch, from_pytorch = conv_to_pytorch, conv_from_pytorch
    elif layer == "Dense_0" and convs:
      to_pytorch, from_pytorch = _nchw_dense(kernel, shapes[f"{convs[-1]}.kernel"][-1])
    else:
      to_pytorch = from_pytorch = dense_transpose
    layout.append(Segment(f"{layer}.weight", f"{layer}.kernel", to_pytorch, from_pytorch))
    if f"{layer}.bias" in shapes:
      layout.append(Segment(f"{layer}.bias", f"{layer}.bias", identity, identity))
  return layout


def conv_to_pytorch(leaf: np.ndarray) -> np.ndarray:
  """Convolution kernels with a member axis: Flax's [P, H, W, I, O] -> PyTorch's [P, O, I, H, W]."""
  return leaf.transpose(0, 4, 3, 1, 2)


def conv_from_pytorch(leaf: np.ndarray) -> np.ndarray:
  """The inverse of :func:`conv_to_pytorch`."""
  return leaf.transpose(0, 3, 4, 2, 1)


def dense_transpose(leaf: np.ndarray) -> np.ndarray:
  """Dense kernels with a member axis: Flax's [P, in, out] <-> PyTorch's [P, out, in]."""
  return leaf.transpose(0, 2, 1)


def identity(leaf: np.ndarray) -> np.ndarray:
  """A leaf whose layout is the same in Flax and PyTorch (biases, BatchNorm)."""
  return leaf


def _network_position(layer: str):
  match = re.fullmatch(r"(Conv|Dense)_(\d+)", layer)
  return None if match is None else (match[1] == "Dense", int(match[2]))


def _nchw_dense(kernel_shape, channels: int):
  """The first dense layer after convolutions: Flax flattens its input as (h, w, c),
  PyTorch as (c, h, w); a square feature map is assumed, as in the zoos. Returns the
  layout change to PyTorch's and back."""
  side = math.isqrt(kernel_shape[1] // channels)
  if side * side * channels != kernel_shape[1]:
    raise UserError(f"Dense_0 takes {kernel_shape[1]} inputs from {channels} channels: not a "
                    "square feature map, so its PyTorch order is unknown; use order='flax'")

  def to_pytorch(leaf):
    members, _, outputs = leaf.shape
    leaf = leaf.reshape(members, side, side, channels, outputs).transpose(0, 4, 3, 1, 2)
    return leaf.reshape(members, outputs, channels * side * side)

  def from_pytorch(leaf):
    members, outputs, _ = leaf.shape
    leaf = leaf.reshape(members, outputs, channels, side, side).transpose(0, 3, 4, 2, 1)
    return leaf.reshape(members, side * side * channels, outputs)
  return to_pytorch, from_pytorch
