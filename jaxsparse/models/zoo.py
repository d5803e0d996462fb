"""Plain feed-forward image classifiers: the model-zoo CNNs, LeNets and Conv-N.

All share one shape, a stack of convolution blocks followed by a stack of
dense layers, so one module describes them all. A convolution block is
conv -> (2x2 max-pool) -> activation -> dropout, the order of the model-zoo
networks (Schürholt et al. 2022; CNN-s has no dropout after its last, unpooled
convolution, as in the zoo's code); a dense block is dense -> activation ->
dropout; the last dense layer gives the logits.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxsparse import layers


class ConvThenDense(nn.Module):
  """Convolution blocks, a flatten, dense blocks and a linear classifier.

  Attributes:
    conv_features: output channels of each convolution.
    conv_kernel_sizes: square kernel size of each convolution.
    conv_pools: whether each convolution is followed by a 2x2 max-pool.
    dense_features: width of each hidden dense layer.
    num_classes: number of logits.
    padding: convolution padding, 'VALID' or 'SAME'.
    use_bias: whether convolutions and dense layers have biases.
    conv_implementation: see :func:`jaxsparse.layers.resolve_conv_implementation`.
    conv_dropout: whether each convolution block ends with dropout (empty: every one).
  """
  conv_features: tuple[int, ...]
  conv_kernel_sizes: tuple[int, ...]
  conv_pools: tuple[bool, ...]
  dense_features: tuple[int, ...]
  num_classes: int = 10
  padding: str = "VALID"
  use_bias: bool = True
  conv_implementation: str = "im2col"
  conv_dropout: tuple[bool, ...] = ()

  @nn.compact
  def __call__(self, x: jax.Array, activation: jax.Array | int,
               dropout_rate: jax.Array | float, dropout_key: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """Returns the logits of NHWC images ``x``.

    ``activation`` indexes :data:`jaxsparse.layers.ACTIVATIONS`; dropout runs
    only when ``dropout_key`` is given. ``train`` is accepted for a uniform
    model signature (these models have no BatchNorm).
    """
    del train
    site = 0

    def block_dropout(h):
      nonlocal site
      key = None if dropout_key is None else jax.random.fold_in(dropout_key, site)
      site += 1
      return layers.dropout(h, dropout_rate, key)

    drops = self.conv_dropout or (True,) * len(self.conv_features)
    for features, kernel_size, pool, drop in zip(
        self.conv_features, self.conv_kernel_sizes, self.conv_pools, drops):
      x = layers.Conv(features, (kernel_size, kernel_size), padding=self.padding,
                      use_bias=self.use_bias,
                      implementation=self.conv_implementation)(x)
      if pool:
        x = layers.max_pool_2x2(x)
      x = layers.activate(x, activation)
      x = block_dropout(x) if drop else x
    x = x.reshape(x.shape[0], -1)
    for features in self.dense_features:
      x = layers.Dense(features, use_bias=self.use_bias)(x)
      x = block_dropout(layers.activate(x, activation))
    return layers.Dense(self.num_classes, use_bias=self.use_bias)(x)


def cnn_s(num_classes: int = 10, conv_implementation: str = "im2col",
          width: float = 1.0) -> ConvThenDense:
  """The model-zoo CNN-s for 28x28 inputs: 2,464 parameters with 1 input channel. As in the
  zoo's PyTorch class, its third (unpooled) convolution has no dropout after it."""
  del width
  return ConvThenDense((8, 6, 4), (5, 5, 2), (True, True, False), (20,), num_classes,
                       conv_implementation=conv_implementation,
                       conv_dropout=(True, True, False))


def cnn_l(num_classes: int = 10, conv_implementation: str = "im2col",
          width: float = 1.0) -> ConvThenDense:
  """The model-zoo CNN-l for 32x32 inputs: 10,853 parameters with 3 input channels."""
  del width
  return ConvThenDense((16, 32, 15), (3, 3, 3), (True, True, True), (20,), num_classes,
                       conv_implementation=conv_implementation)


def lenet_300_100(num_classes: int = 10, conv_implementation: str = "im2col",
                  width: float = 1.0) -> ConvThenDense:
  """LeNet-300-100: 266,610 parameters on 28x28x1 inputs."""
  del width
  return ConvThenDense((), (), (), (300, 100), num_classes,
                       conv_implementation=conv_implementation)


def lenet_5(num_classes: int = 10, conv_implementation: str = "im2col",
            width: float = 1.0) -> ConvThenDense:
  """LeNet-5 as in Caffe and Molchanov et al. (20-50-500): 431,080 parameters on 28x28x1."""
  del width
  return ConvThenDense((20, 50), (5, 5), (True, True), (500,), num_classes,
                       conv_implementation=conv_implementation)


def _conv_n(num_pairs: int, num_classes: int, conv_implementation: str,
            width: float) -> ConvThenDense:
  # Conv-2/4/6 of the supermask / edge-popup literature: pairs of 3x3 'SAME'
  # convolutions (64, 128, 256 channels) each pair followed by a max-pool, then
  # dense 256-256-classes, all without biases as in edge-popup.
  features, pools = [], []
  for pair in range(num_pairs):
    channels = max(1, round(64 * 2**pair * width))
    features += [channels, channels]
    pools += [False, True]
  dense = tuple(max(1, round(256 * width)) for _ in range(2))
  return ConvThenDense(tuple(features), (3,) * len(features), tuple(pools), dense,
                       num_classes, padding="SAME", use_bias=False,
                       conv_implementation=conv_implementation)


def conv2(num_classes: int = 10, conv_implementation: str = "im2col",
          width: float = 1.0) -> ConvThenDense:
  """Conv-2 (64, 64, pool, dense 256, 256): 4,300,992 weights on 32x32x3 at width 1."""
  return _conv_n(1, num_classes, conv_implementation, width)


def conv4(num_classes: int = 10, conv_implementation: str = "im2col",
          width: float = 1.0) -> ConvThenDense:
  """Conv-4 (64, 64, pool, 128, 128, pool, dense 256, 256): 2,425,024 weights on 32x32x3."""
  return _conv_n(2, num_classes, conv_implementation, width)


def conv6(num_classes: int = 10, conv_implementation: str = "im2col",
          width: float = 1.0) -> ConvThenDense:
  """Conv-6 (three conv pairs up to 256 channels, dense 256, 256): 2,261,184 weights on 32x32x3."""
  return _conv_n(3, num_classes, conv_implementation, width)
