"""Structured (channel) pruning: which channels feed which layer, and shrinking.

A *channel group* is a producer kernel whose output channels (conv filters,
or hidden units of a dense layer) feed exactly one consumer kernel. Removing
channel c means deleting the producer's filter c, its bias / BatchNorm entry,
and the consumer's input slice for c. Filter pruning in the training loop
(:mod:`jaxsparse.sparsify.filter_pruning`) masks the producer's filter *and*
the consumer's input slice, so the pruned channel's output is never used
whatever the activation or normalisation; :func:`shrink` then physically
removes it and gives exactly the same outputs from a smaller model.

Groups per architecture: in the plain CNNs (:class:`ConvThenDense`) every
convolution feeds the next one (the last feeds the first dense layer through
the flatten) and every hidden dense layer feeds the next; in ResNets, as in
Li et al. (2017), the first convolution of each residual block feeds the
second, while block outputs, tied together by the residual additions, stay.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse import masks as masks_lib
from jaxsparse.models import Model
from jaxsparse.models.resnet import ResNet
from jaxsparse.models.zoo import ConvThenDense

PyTree = Any


class ChannelGroup(NamedTuple):
  """A producer layer whose output channels feed one consumer layer.

  Attributes:
    producer: path of the producing module (its ``kernel``'s last axis holds
      the channels).
    consumer: path of the consuming module.
    producer_norm: path of the BatchNorm after the producer, or ``None``.
  """
  producer: tuple[str, ...]
  consumer: tuple[str, ...]
  producer_norm: tuple[str, ...] | None = None


def channel_groups(params: PyTree) -> list[ChannelGroup]:
  """The prunable channel groups of a ConvThenDense or ResNet parameter tree."""
  names = list(params)
  if any(name.startswith("BasicBlock_") for name in names):
    blocks = sorted((name for name in names if name.startswith("BasicBlock_")),
                    key=lambda name: int(name.split("_")[1]))
    return [ChannelGroup((block, "Conv_0"), (block, "Conv_1"), (block, "BatchNorm_0"))
            for block in blocks]
  convs = sorted((n for n in names if n.startswith("Conv_")), key=lambda n: int(n.split("_")[1]))
  denses = sorted((n for n in names if n.startswith("Dense_")), key=lambda n: int(n.split("_")[1]))
  chain = convs + denses
  # Every layer but the classifier (the last dense) produces prunable channels.
  return [ChannelGroup((producer,), (consumer,)) for producer, consumer in zip(chain, chain[1:])]


def _get(tree: PyTree, path: tuple[str, ...]) -> Any:
  for name in path:
    tree = tree[name]
  return tree


def _by_channel(consumer_kernel: jax.Array, num_channels: int) -> jax.Array:
  """The consumer kernel as [..., channel, outputs], one slot per producer channel.

  A conv consumer (HWIO) has the channels on axis 2 already; a dense consumer
  reads either the producer's units directly or a flatten of H x W x C
  features, whose rows are ordered (position, channel): [positions, C, outputs].
  """
  if consumer_kernel.ndim == 4:
    return consumer_kernel
  return consumer_kernel.reshape(-1, num_channels, consumer_kernel.shape[-1])


def filter_l1_norms(kernel: jax.Array) -> jax.Array:
  """L1 norm of each output channel (filter or unit) of a Conv or Dense kernel."""
  return jnp.sum(jnp.abs(kernel.reshape(-1, kernel.shape[-1])), axis=0)


def channel_masks(params: PyTree, masks: PyTree, channel_sparsity: jax.Array | float) -> PyTree:
  """``masks`` with the channels of smallest filter L1 norm removed in every group.

  Each group keeps :func:`jaxsparse.masks.num_to_keep` of its channels
  (ties broken by position; ``channel_sparsity`` may be traced); the
  producer's filters and the consumer's input slices of the others are masked.
  """
  new_masks = jax.tree.map(lambda mask: mask, masks, is_leaf=lambda x: x is None)
  for group in channel_groups(params):
    norms = filter_l1_norms(_get(params, group.producer)["kernel"])
    channels = norms.shape[0]
    kept = masks_lib.keep_top_k(norms, masks_lib.num_to_keep(channels, channel_sparsity))
    producer = _get(new_masks, group.producer)
    producer["kernel"] = producer["kernel"] * kept
    consumer = _get(new_masks, group.consumer)
    consumer["kernel"] = (_by_channel(consumer["kernel"], channels) * kept[:, None]
                          ).reshape(consumer["kernel"].shape)
  return new_masks


def shrink(model: Model, params: PyTree, batch_stats: PyTree, masks: PyTree
           ) -> tuple[Model, PyTree, PyTree]:
  """Physically removes the channels whose filters ``masks`` zeroes (one member).

  Returns the smaller model, its parameters (the masked weights with the
  removed channels' filters, biases, BatchNorm entries and consumer input
  slices deleted) and BatchNorm statistics. Its outputs equal those of the
  masked full-width model (see the module doc). Runs on concrete arrays.
  """
  params = jax.tree.map(np.asarray, masks_lib.apply_masks(params, masks))
  params = jax.tree.map(np.array, params)  # writable copies, edited in place below
  batch_stats = jax.tree.map(np.array, batch_stats)
  widths = {}
  for group in channel_groups(params):
    producer = _get(params, group.producer)
    producer_mask = np.asarray(_get(masks, group.producer)["kernel"])
    channels = producer_mask.shape[-1]
    kept = np.flatnonzero(producer_mask.reshape(-1, channels).any(axis=0))
    producer["kernel"] = producer["kernel"][..., kept]
    if "bias" in producer:
      producer["bias"] = producer["bias"][kept]
    if group.producer_norm is not None:
      for tree in (params, batch_stats):
        norm = _get(tree, group.producer_norm)
        for name in norm:
          norm[name] = norm[name][kept]
    consumer = _get(params, group.consumer)
    by_channel = _by_channel(consumer["kernel"], channels)
    selected = by_channel[..., kept, :]
    consumer["kernel"] = selected if consumer["kernel"].ndim == 4 else selected.reshape(
        -1, consumer["kernel"].shape[-1])
    widths[group.producer] = len(kept)
  return _narrowed(model, widths), params, batch_stats


def _narrowed(model: Model, widths: dict[tuple[str, ...], int]) -> Model:
  """The model with the channel counts of its producer layers set to ``widths``."""
  module = model.module
  if isinstance(module, ResNet):
    inner = tuple(width for _, width in sorted(
        widths.items(), key=lambda item: int(item[0][0].split("_")[1])))
    return model._replace(module=module.clone(block_inner_features=inner))
  if isinstance(module, ConvThenDense):
    convs = len(module.conv_features)
    ordered = [widths[(f"Conv_{i}",)] for i in range(convs)] + [
        widths[(f"Dense_{j}",)] for j in range(len(module.dense_features))]
    return model._replace(module=module.clone(conv_features=tuple(ordered[:convs]),
                                              dense_features=tuple(ordered[convs:])))
  raise TypeError(f"structured pruning does not know the module {type(module).__name__}")


def count_nonzero(params: PyTree) -> int:
  """Number of non-zero entries over all parameters (weights, biases, norms)."""
  return int(sum(np.count_nonzero(np.asarray(leaf)) for leaf in jax.tree.leaves(params)))


def count_multiply_adds(model: Model, variables: dict[str, PyTree]) -> int:
  """Multiply-adds of one forward pass of one image through Conv and Dense layers.

  Each layer costs (output positions) x (non-zero kernel entries), so masked
  weights count as removed, as they would in a sparse kernel. BatchNorm,
  activations and pooling are left out (they are a few percent at most).
  """
  images = jnp.zeros((1, *model.input_shape), jnp.float32)
  _, state = jax.eval_shape(lambda v: model.module.apply(
      v, images, activation=0, dropout_rate=0.0, capture_intermediates=True,
      mutable=["intermediates"]), variables)
  outputs = state["intermediates"]
  total = 0
  for path, kernel in jax.tree_util.tree_leaves_with_path(variables["params"]):
    names = tuple(getattr(key, "key", key) for key in path)
    if names[-1] != "kernel":
      continue
    output_shape = _get(outputs, names[:-1])["__call__"][0].shape
    positions = math.prod(output_shape[1:-1])
    total += positions * int(np.count_nonzero(np.asarray(kernel)))
  return total
