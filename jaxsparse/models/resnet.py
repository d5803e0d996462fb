"""CIFAR-style residual networks: ResNet-20/56 (with a width multiplier, the
ThinResNet baseline of Tessier et al. 2023) and ResNet-18 with the CIFAR stem.

BatchNorm running statistics live in the ``batch_stats`` collection, which the
population engine carries per member next to the parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsparse import layers


def _batch_norm(train: bool) -> nn.BatchNorm:
  # momentum 0.9 here is PyTorch's BatchNorm momentum 0.1.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with BatchNorm and a residual connection.

  Attributes:
    features: output channels.
    stride: stride of the first convolution.
    projection_shortcut: when the shape changes, a 1x1 conv + BatchNorm
      shortcut (ResNet-18) instead of the parameter-free subsample-and-zero-pad
      shortcut ("option A", CIFAR ResNet-20/56).
    conv_implementation: see :func:`jaxsparse.layers.resolve_conv_implementation`.
    inner_features: channels between the two convolutions (``features`` if
      0); fewer after structured filter pruning.
    padding: 'SAME' (XLA's) or 'SYMMETRIC' (PyTorch's; see :data:`jaxsparse.layers.PADDINGS`).
  """
  features: int
  stride: int = 1
  projection_shortcut: bool = False
  conv_implementation: str = "im2col"
  inner_features: int = 0
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x, activation, train: bool):
    conv = lambda f, k, s: layers.Conv(f, (k, k), (s, s), padding=self.padding, use_bias=False,
                                       implementation=self.conv_implementation)
    y = conv(self.inner_features or self.features, 3, self.stride)(x)
    y = layers.activate(_batch_norm(train)(y), activation)
    y = conv(self.features, 3, 1)(y)
    y = _batch_norm(train)(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.features:
      if self.projection_shortcut:
        shortcut = _batch_norm(train)(conv(self.features, 1, self.stride)(x))
      else:
        shortcut = x[:, ::self.stride, ::self.stride, :]
        missing = self.features - x.shape[-1]
        shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0),
                                      (missing // 2, missing - missing // 2)))
    return layers.activate(y + shortcut, activation)


class ResNet(nn.Module):
  """A 3x3-stem residual network for small images.

  Attributes:
    stage_sizes: number of blocks per stage.
    stage_features: channels per stage (already width-scaled).
    projection_shortcut: see :class:`BasicBlock`.
    num_classes: number of logits.
    conv_implementation: see :func:`jaxsparse.layers.resolve_conv_implementation`.
    block_inner_features: inner channels of every block in order (empty: the
      block's own width); set by structured filter pruning.
    padding: of every convolution, see :class:`BasicBlock`.
  """
  stage_sizes: tuple[int, ...]
  stage_features: tuple[int, ...]
  projection_shortcut: bool = False
  num_classes: int = 10
  conv_implementation: str = "im2col"
  block_inner_features: tuple[int, ...] = ()
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x: jax.Array, activation: jax.Array | int,
               dropout_rate: jax.Array | float, dropout_key: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """Returns logits; dropout (if any) is applied before the classifier."""
    x = layers.Conv(self.stage_features[0], (3, 3), padding=self.padding, use_bias=False,
                    implementation=self.conv_implementation)(x)
    x = layers.activate(_batch_norm(train)(x), activation)
    inner = iter(self.block_inner_features)
    for stage, (num_blocks, features) in enumerate(zip(self.stage_sizes, self.stage_features)):
      for block in range(num_blocks):
        stride = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(features, stride, self.projection_shortcut, self.conv_implementation,
                       next(inner, 0), self.padding)(x, activation, train)
    x = x.mean(axis=(1, 2))
    x = layers.dropout(x, dropout_rate, dropout_key)
    return layers.Dense(self.num_classes)(x)


def _scaled(channels: tuple[int, ...], width: float) -> tuple[int, ...]:
  return tuple(max(1, round(c * width)) for c in channels)


def resnet20(num_classes: int = 10, conv_implementation: str = "im2col",
             width: float = 1.0) -> ResNet:
  """CIFAR ResNet-20 (option-A shortcuts): 269,722 parameters at width 1."""
  return ResNet((3, 3, 3), _scaled((16, 32, 64), width), False, num_classes,
                conv_implementation)


def resnet56(num_classes: int = 10, conv_implementation: str = "im2col",
             width: float = 1.0) -> ResNet:
  """CIFAR ResNet-56 (option-A shortcuts): 853,018 parameters at width 1."""
  return ResNet((9, 9, 9), _scaled((16, 32, 64), width), False, num_classes,
                conv_implementation)


def resnet18(num_classes: int = 10, conv_implementation: str = "im2col",
             width: float = 1.0) -> ResNet:
  """ResNet-18 with the CIFAR stem (3x3 conv, no max-pool): 11,173,962 parameters."""
  return ResNet((2, 2, 2, 2), _scaled((64, 128, 256, 512), width), True, num_classes,
                conv_implementation)
