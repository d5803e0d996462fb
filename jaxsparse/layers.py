"""Population-friendly Flax layers.

Every model in jaxsparse is built from these few layers so that the way a
convolution or a pooling is computed can be swapped in one place. The reason is
speed under ``vmap`` over population members (see
``shared/reference/performance.md``): on XLA:CPU a vmapped ``lax.conv`` becomes a
grouped convolution and the ``reduce_window`` max-pool backward pass is slow,
while an im2col convolution (shifted slices + one matmul) and a reshape-based
max-pool vectorise into plain batched matmuls and reductions.

Per-member hyperparameters that change the forward pass (the activation
function and the dropout rate) arrive as traced arrays, so one compiled program
serves a population that mixes them.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsparse import prng

#: Activation functions selectable per member, in the order of their index.
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "gelu")

#: Convolution implementations. ``auto`` picks the fastest measured one for the backend.
CONV_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "im2col", "banded", "xla")
#: What ``auto`` resolves to on the CPU: each layer picks im2col or banded
#: (:func:`cpu_conv_implementation`).
PER_LAYER = "per_layer"
#: On the CPU, a convolution with fewer output channels than this (im2col's matmul is then
#: narrower than a vector register's 16 floats) whose input is at most
#: BANDED_MAX_WIDTH_RATIO kernel widths wide runs as a banded matmul, any other as im2col
#: patches (a band over a whole output row does input width / kernel width times the
#: multiply-adds, measured in docs/history/benchmarks-2026-11.md: CNN-s gains, CNN-l and
#: ResNet-20 lose with it; runs of columns, :func:`band_block`, do fewer, but the width
#: bound was measured before them and is kept).
BANDED_MAX_CHANNELS = 16
BANDED_MAX_WIDTH_RATIO = 6
#: A banded matmul's fewest output columns (:func:`band_block`): two vector registers of
#: 16 floats.
BAND_MIN_COLUMNS = 32
#: A banded layer computes its kernel gradient from a transposed copy of its patches, built
#: from the input beside the forward pass's (:func:`band_patches_transposed`), when its
#: patch rows are at most this many times as wide as its output rows. XLA:CPU's matrix
#: product wants the gradient's rows contiguous, so otherwise it transposes the output
#: gradient, a copy as large as the layer's output; the transposed patches cost about as
#: much to build as the patches and save that copy. CNN-s's dense step (its first layer:
#: 40 patch columns, 32 output columns) ran 1.14x as fast at batch 10 and 1.20x at batch 32
#: with them; given to its second layer too (480 and 48), it lost 6 % and 11 %
#: (docs/benchmarks.md, 2026-12-06).
TRANSPOSED_PATCHES_MAX_WIDTH_RATIO = 2


def resolve_conv_implementation(name: str) -> str:
  """Returns the convolution implementation for ``name``.

  ``auto`` means :data:`PER_LAYER` on the CPU (vmap of ``lax.conv`` falls into a
  slow grouped convolution there; each layer then runs as im2col patches or a
  banded matmul, whichever its shape favours) and ``xla`` elsewhere (cuDNN and
  the TPU compiler handle batched convolutions well).
  """
  if name not in CONV_IMPLEMENTATIONS:
    raise ValueError(
        f"conv implementation {name!r} is unknown; use one of {CONV_IMPLEMENTATIONS}")
  if name != "auto":
    return name
  return PER_LAYER if jax.default_backend() == "cpu" else "xla"


def cpu_conv_implementation(input_width: int, kernel_width: int, out_channels: int) -> str:
  """'banded' for few output channels on a narrow input (CNN-s's layers), 'im2col' for the
  rest (see :data:`BANDED_MAX_CHANNELS`)."""
  narrow = input_width <= BANDED_MAX_WIDTH_RATIO * kernel_width
  return "banded" if narrow and out_channels < BANDED_MAX_CHANNELS else "im2col"


class GroupActivation(NamedTuple):
  """A member's activation inside a group of members vmapped together: ``index`` is the
  member's own (traced, per member), ``shared`` the one every member of the group uses,
  or -1 when they differ (a traced scalar that is the same for the whole group)."""
  index: jax.Array
  shared: jax.Array


def _exact_gelu(x: jax.Array) -> jax.Array:
  """GELU's exact (erf) form, PyTorch's default, which the zoos were made with."""
  return jax.nn.gelu(x, approximate=False)


#: The functions of :data:`ACTIVATIONS`, in its order (:func:`activate` looks them up here
#: at every trace, so a test may substitute them).
ACTIVATION_FUNCTIONS = (jnp.tanh, jax.nn.relu, jax.nn.sigmoid, _exact_gelu)


def activate(x: jax.Array, activation: jax.Array | int | GroupActivation) -> jax.Array:
  """Applies the activation with index ``activation`` into :data:`ACTIVATIONS`.

  ``activation`` may be a traced integer; under ``vmap`` with a per-member
  index the branches are all computed and selected elementwise. A
  :class:`GroupActivation` whose group shares one activation runs only that
  branch (its ``shared`` index is not batched, so the switch stays a
  conditional), and falls back to computing all branches when the group mixes
  them: the same numbers either way.
  """
  branches = ACTIVATION_FUNCTIONS
  if isinstance(activation, int):
    return branches[activation](x)
  if isinstance(activation, GroupActivation):
    return jax.lax.cond(activation.shared >= 0,
                        lambda v: jax.lax.switch(activation.shared, branches, v),
                        lambda v: jax.lax.switch(activation.index, branches, v), x)
  return jax.lax.switch(activation, branches, x)


def dropout(x: jax.Array, rate: jax.Array | float, key: jax.Array | None) -> jax.Array:
  """Inverted dropout with a rate that may be a traced per-member array.

  ``key=None`` means evaluation: the input is returned unchanged. With
  ``rate == 0`` the output equals the input exactly, so a population can mix
  members with and without dropout.
  """
  if key is None:
    return x
  keep_probability = 1.0 - rate
  keep = prng.bernoulli(key, keep_probability, x.shape)
  return jnp.where(keep, x / keep_probability, 0.0)


#: How :func:`max_pool_2x2` reduces its windows: "joint", one reduction over both window
#: axes, or "rows_then_columns", the pair of rows and then the pair of columns. The maxima
#: are the same; where a window's maximum is tied, "joint" shares its gradient equally among
#: the tied elements (JAX's derivative of a maximum), "rows_then_columns" halves it at each
#: tied step. Which is faster depends on XLA:CPU's options: with YNNPACK's reduction fusions
#: (the default) "joint"; with XLA's own reduction loops (the engine's
#: ``CPU_TRAINING_OPTIONS``), whose two-axis reduction is slow, "rows_then_columns" (the
#: dense step of CNN-s 1.04x as fast at batch 10 and at 32, docs/benchmarks.md).
MAX_POOL_FORMS = ("joint", "rows_then_columns")
_max_pool_form = contextvars.ContextVar("max_pool_form", default="joint")


@contextlib.contextmanager
def max_pool_form(form: str):
  """Within it, :func:`max_pool_2x2` is traced in ``form`` (:data:`MAX_POOL_FORMS`)."""
  if form not in MAX_POOL_FORMS:
    raise ValueError(f"max-pool form {form!r} is unknown; use one of {MAX_POOL_FORMS}")
  token = _max_pool_form.set(form)
  try:
    yield
  finally:
    _max_pool_form.reset(token)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 over NHWC input, floor mode like PyTorch.

  Written as a reshape and a max, whose backward pass is a cheap comparison,
  rather than ``reduce_window`` whose ``select_and_scatter`` gradient is slow
  on XLA:CPU; in the form :func:`max_pool_form` sets ("joint" outside it).
  """
  batch, height, width, channels = x.shape
  height, width = height // 2 * 2, width // 2 * 2
  x = x[:, :height, :width, :]
  x = x.reshape(batch, height // 2, 2, width // 2, 2, channels)
  if _max_pool_form.get() == "rows_then_columns":
    return x.max(axis=2).max(axis=3)
  return x.max(axis=(2, 4))


#: Convolution paddings. 'SAME' is XLA's: a stride-2 convolution of an even input pads
#: only the bottom and right. 'SYMMETRIC' pads (k - 1) // 2 on every side, as PyTorch's
#: ``padding=k // 2`` does for odd kernels (ResNets imported from PyTorch weights need it).
PADDINGS = ("VALID", "SAME", "SYMMETRIC")


def symmetric_padding(kernel_size: Sequence[int]) -> tuple[tuple[int, int], ...]:
  """``(low, high)`` padding per spatial axis of 'SYMMETRIC' for a kernel size."""
  return tuple(((size - 1) // 2, (size - 1) // 2) for size in kernel_size)


def pad_for_conv(x: jax.Array, kernel_size: Sequence[int], strides: Sequence[int],
                 padding: str) -> jax.Array:
  """NHWC ``x`` padded as the convolution's ``padding`` says (see :data:`PADDINGS`), so
  that a 'VALID' convolution of the result is the convolution asked for."""
  kernel_height, kernel_width = kernel_size
  stride_height, stride_width = strides
  if padding == "SAME":
    height, width = x.shape[1:3]
    out_height, out_width = -(-height // stride_height), -(-width // stride_width)
    pad_height = max((out_height - 1) * stride_height + kernel_height - height, 0)
    pad_width = max((out_width - 1) * stride_width + kernel_width - width, 0)
    x = jnp.pad(x, ((0, 0), (pad_height // 2, pad_height - pad_height // 2),
                    (pad_width // 2, pad_width - pad_width // 2), (0, 0)))
  elif padding == "SYMMETRIC":
    x = jnp.pad(x, ((0, 0), *symmetric_padding(kernel_size), (0, 0)))
  elif padding != "VALID":
    raise ValueError(f"padding {padding!r} is not supported; use one of {PADDINGS}")
  return x


def extract_patches(x: jax.Array, kernel_size: Sequence[int], strides: Sequence[int],
                    padding: str) -> jax.Array:
  """Returns the im2col patches of NHWC ``x``: shape (N, H_out, W_out, kh*kw*C).

  The patch features are ordered (kernel row, kernel column, input channel),
  the order of a flattened HWIO kernel, so ``patches @ kernel.reshape(-1, O)``
  is the convolution.
  """
  kernel_height, kernel_width = kernel_size
  stride_height, stride_width = strides
  x = pad_for_conv(x, kernel_size, strides, padding)
  height, width = x.shape[1:3]
  out_height = (height - kernel_height) // stride_height + 1
  out_width = (width - kernel_width) // stride_width + 1
  slices = [
      x[:, row:row + (out_height - 1) * stride_height + 1:stride_height,
        column:column + (out_width - 1) * stride_width + 1:stride_width, :]
      for row in range(kernel_height) for column in range(kernel_width)
  ]
  return jnp.concatenate(slices, axis=-1) if len(slices) > 1 else slices[0]


def band_block(out_width: int, out_channels: int) -> int:
  """Output columns per band of :func:`banded_conv` on the CPU: the fewest that divide
  ``out_width`` and give the matmul at least :data:`BAND_MIN_COLUMNS` output columns (all
  of them if none does).

  A band of every output column (CNN-s's first layer: [5*28, 24*8]) multiplies
  input width / kernel width times the convolution's multiply-adds; runs of 4
  columns ([5*8, 4*8]) do (4 + 5 - 1) / 5 times them in a product still 32
  floats wide, two vector registers. CNN-s's dense training step ran 1.41x as
  fast with them at batch 10 and 1.27x at batch 32, variational dropout's 1.22x
  (docs/benchmarks.md, 2026-12-06).
  """
  for block in range(1, out_width + 1):
    if out_width % block == 0 and block * out_channels >= BAND_MIN_COLUMNS:
      return block
  return out_width


def band_matrix(kernel: jax.Array, block: int, stride: int) -> jax.Array:
  """The banded matrix of :func:`banded_conv`, [kh*window*C_in, block*C_out]: for output
  column w, the HWIO ``kernel`` shifted ``stride * w`` columns into a window of
  ``(block - 1) * stride + kw`` zeros.

  Built from padded copies of the kernel, whose gradient is a sum of slices that fuses
  into one pass (an einsum with a 0/1 band tensor made XLA:CPU transpose its operands,
  some 7 % of CNN-s's step at batch 10, as the band is rebuilt at every step).
  """
  kernel_height, kernel_width, in_channels, out_channels = kernel.shape
  window = (block - 1) * stride + kernel_width
  shifted = [jnp.pad(kernel, ((0, 0), (stride * column, window - kernel_width - stride * column),
                              (0, 0), (0, 0)))
             for column in range(block)]
  return jnp.stack(shifted, axis=3).reshape(kernel_height * window * in_channels,
                                            block * out_channels)


def band_patches_transposed(x: jax.Array, kernel_height: int, stride_height: int,
                            out_height: int, window: int, step: int,
                            num_blocks: int) -> jax.Array:
  """The patches of :func:`banded_conv` transposed, [kh*window*C_in, N*out_height*num_blocks]:
  column (n, row, run) holds the input rows ``stride_height * row`` to ``+ kh`` over the
  ``window`` columns from ``step * run``, flattened as (kernel row, window column, channel).

  Built in one pass from the padded NHWC input ``x`` (width at least
  ``step * (num_blocks - 1) + window``): split its columns into ``step``-wide runs and
  move each run's column and channel axes in front, so that every (kernel row, run offset)
  is one slice of ``num_blocks`` runs, and the slices concatenate along an axis that
  exists (a new leading axis made XLA:CPU copy the result once more to put the members
  of a population first).
  """
  batch, height, _, in_channels = x.shape
  runs_per_window = -(-window // step)
  width = step * (num_blocks + runs_per_window - 1)
  x = jnp.pad(x[:, :, :width], ((0, 0), (0, 0), (0, max(width - x.shape[2], 0)), (0, 0)))
  by_run = jnp.moveaxis(x.reshape(batch, height, width // step, step, in_channels),
                        (3, 4), (0, 1))  # [step, C_in, N, H, runs]
  pieces = jnp.concatenate(
      [by_run[:, :, :, row:row + (out_height - 1) * stride_height + 1:stride_height,
              offset:offset + num_blocks]
       for row in range(kernel_height) for offset in range(runs_per_window)], axis=0)
  columns = pieces.reshape(kernel_height, runs_per_window * step, -1)[:, :window]
  return columns.reshape(kernel_height * window * in_channels, -1)


@jax.custom_vjp
def _product_with_transposed(patches: jax.Array, patches_transposed: jax.Array,
                             matrix: jax.Array, bias: jax.Array) -> jax.Array:
  """``patches @ matrix + bias``, whose gradients with respect to ``matrix`` and ``bias``
  are one product, ``patches_transposed`` with a row of ones under it times the output
  gradient (autodiff's numbers, up to the order of their sums, in the layout that XLA:CPU's
  product reads without copying the gradient, and without a reduction for the bias)."""
  del patches_transposed
  return patches @ matrix + bias


def _product_with_transposed_forward(patches, patches_transposed, matrix, bias):
  return patches @ matrix + bias, (patches_transposed, matrix)


def _product_with_transposed_backward(residuals, gradient):
  patches_transposed, matrix = residuals
  rows = jnp.concatenate([patches_transposed, jnp.ones_like(patches_transposed[:1])])
  matrix_and_bias = rows @ gradient.reshape(-1, gradient.shape[-1])
  # The patches' own gradient carries the input's; the transposed copy's is zero, as the
  # product does not read it.
  return (gradient @ matrix.T, jnp.zeros_like(patches_transposed), matrix_and_bias[:-1],
          matrix_and_bias[-1])


_product_with_transposed.defvjp(_product_with_transposed_forward,
                                _product_with_transposed_backward)


def banded_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                padding: str, block: int | None = None,
                transposed_patches: bool | None = None,
                bias: jax.Array | None = None) -> jax.Array:
  """NHWC x HWIO convolution as one matmul: each run of ``block`` output columns of an
  output row (:func:`band_block`'s choice if None) is the kh input rows it sees, over the
  input columns it sees, flattened, times a banded matrix built from the kernel,
  [kh*window*C_in, block*C_out], the same matrix for every run.

  The band holds kernel column c of output column w at window column
  ``stride * w + c``; the rest is zeros, so the matmul does window / kw times
  the convolution's multiply-adds (window = (block - 1) * stride + kw), in a
  product with block*C_out columns instead of C_out. On the CPU that wins for
  few output channels (CNN-s: :func:`band_block`,
  docs/history/benchmarks-2026-11.md).

  ``transposed_patches``: whether the kernel gradient reads
  :func:`band_patches_transposed` (None: when
  :data:`TRANSPOSED_PATCHES_MAX_WIDTH_RATIO` says so); the numbers are the same. A
  ``bias`` [C_out] is added to every output (inside the product's gradient with transposed
  patches, so that its gradient is the product's row of ones, not a reduction).
  """
  kernel_height, kernel_width, in_channels, out_channels = kernel.shape
  stride_height, stride_width = strides
  x = pad_for_conv(x, kernel.shape[:2], strides, padding)
  batch, height, width, _ = x.shape
  out_height = (height - kernel_height) // stride_height + 1
  out_width = (width - kernel_width) // stride_width + 1
  block = band_block(out_width, out_channels) if block is None else min(block, out_width)
  num_blocks = -(-out_width // block)
  window = (block - 1) * stride_width + kernel_width
  padded_width = (num_blocks * block - 1) * stride_width + kernel_width
  if padded_width > width:  # the last run's columns past the output are cut off below
    x = jnp.pad(x, ((0, 0), (0, 0), (0, padded_width - width), (0, 0)))
  matrix = band_matrix(kernel, block, stride_width)
  rows = [x[:, row:row + (out_height - 1) * stride_height + 1:stride_height]
          for row in range(kernel_height)]
  runs = [jnp.stack([rows_of_kernel[:, :, start:start + window] for rows_of_kernel in rows],
                    axis=2)
          for start in range(0, num_blocks * block * stride_width, block * stride_width)]
  patches = jnp.stack(runs, axis=2).reshape(
      batch, out_height, num_blocks, kernel_height * window * in_channels)
  if transposed_patches is None:
    transposed_patches = (kernel_height * window * in_channels
                          <= TRANSPOSED_PATCHES_MAX_WIDTH_RATIO * block * out_channels)
  tiled_bias = None if bias is None else jnp.tile(bias, block)  # one per output column
  if transposed_patches:
    outputs = _product_with_transposed(
        patches, band_patches_transposed(x, kernel_height, stride_height, out_height, window,
                                         block * stride_width, num_blocks), matrix,
        jnp.zeros((block * out_channels,), x.dtype) if tiled_bias is None else tiled_bias)
  else:
    outputs = _plus(patches @ matrix, tiled_bias)
  outputs = outputs.reshape(batch, out_height, num_blocks * block, out_channels)
  return outputs[:, :, :out_width]


def _plus(x: jax.Array, bias: jax.Array | None) -> jax.Array:
  """``x + bias``, or ``x`` when there is no bias."""
  return x if bias is None else x + bias


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: str,
           implementation: str, bias: jax.Array | None = None) -> jax.Array:
  """NHWC x HWIO convolution computed by the chosen implementation, plus ``bias``."""
  if implementation == "banded":
    return banded_conv(x, kernel, strides, padding, bias=bias)
  if implementation == "xla":
    explicit = symmetric_padding(kernel.shape[:2]) if padding == "SYMMETRIC" else padding
    return _plus(jax.lax.conv_general_dilated(
        x, kernel, window_strides=tuple(strides), padding=explicit,
        dimension_numbers=("NHWC", "HWIO", "NHWC")), bias)
  if implementation != "im2col":
    raise ValueError(f"conv implementation {implementation!r} is unknown")
  patches = extract_patches(x, kernel.shape[:2], strides, padding)
  return _plus(patches @ kernel.reshape(-1, kernel.shape[-1]), bias)


def _noise_variance(module: nn.Module, name: str, theta: jax.Array) -> jax.Array | None:
  """sigma^2 = alpha theta^2 of the variable ``name`` if it has a ``log_alpha``, else None."""
  if not module.has_variable("log_alpha", name):
    return None
  return jnp.exp(module.get_variable("log_alpha", name)) * theta * theta


def _linear_output(module: nn.Module, x: jax.Array, kernel: jax.Array, linear,
                   bias: jax.Array | None) -> jax.Array:
  """``linear(x, kernel, bias)``, or its local-reparameterisation sample under weight noise.

  ``linear`` is linear in ``x`` elementwise (a matmul, a convolution, or a
  matmul of im2col patches given as ``x``), so that ``linear(x * x, ., None)``
  is the variance path; it adds its third argument, the bias, unless that is
  None (inside the product, where a layer computes the bias's gradient there).

  Given a ``log_alpha`` variable for the kernel (sparse variational dropout,
  passed in as the ``'log_alpha'`` collection: the method computes it from
  its own variables, and clips it, with gradients to them) and a ``'noise'``
  PRNG stream, the weights are w = theta + sigma * eps with
  sigma^2 = alpha * theta^2.
  Rather than sampling w, the layer samples its Gaussian output directly (the
  local reparameterisation trick): mean ``linear(x, theta) + bias``, variance
  ``linear(x^2, sigma^2)``, one draw per example and unit, which gives
  gradients of much lower variance than one weight draw per batch. A bias
  with a ``log_alpha`` of its own adds its sigma^2 to the variance (the
  public model-zoo code's ``Conv2dARD``).
  """
  mean = linear(x, kernel, bias)
  variance_kernel = _noise_variance(module, "kernel", kernel)
  if variance_kernel is None:
    return mean
  variance = linear(x * x, variance_kernel, None)
  if bias is not None and (variance_bias := _noise_variance(module, "bias", bias)) is not None:
    variance = variance + variance_bias
  noise = prng.normal(module.make_rng("noise"), mean.shape, mean.dtype)
  return mean + jnp.sqrt(variance + 1e-8) * noise


class Conv(nn.Module):
  """2-D convolution (NHWC input, HWIO kernel) with a swappable implementation.

  Supports sparse variational dropout's weight noise (see
  :func:`_linear_output`).

  Attributes:
    features: number of output channels.
    kernel_size: (height, width) of the kernel.
    strides: (height, width) strides.
    padding: 'VALID', 'SAME' or 'SYMMETRIC' (see :data:`PADDINGS`).
    use_bias: whether to add a bias.
    implementation: 'im2col', 'banded', 'xla' or :data:`PER_LAYER` (see
      :func:`resolve_conv_implementation`).
  """
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str = "VALID"
  use_bias: bool = True
  implementation: str = "im2col"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel_shape = (*self.kernel_size, x.shape[-1], self.features)
    kernel = self.param("kernel", nn.initializers.lecun_normal(), kernel_shape)
    implementation = self.implementation
    if implementation == PER_LAYER:
      implementation = cpu_conv_implementation(x.shape[2], self.kernel_size[1], self.features)
    if implementation == "im2col":
      # The patches are extracted once: weight noise's variance path reuses
      # them squared (squaring commutes with extraction), which saves an
      # im2col and its gradient per layer.
      inputs = extract_patches(x, self.kernel_size, self.strides, self.padding)
      convolve = lambda patches, weights, bias: _plus(
          patches @ weights.reshape(-1, self.features), bias)
    else:
      inputs = x
      convolve = lambda images, weights, bias: conv2d(images, weights, self.strides,
                                                      self.padding, implementation, bias)
    bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return _linear_output(self, inputs, kernel, convolve, bias)


class Dense(nn.Module):
  """Fully connected layer (as ``flax.linen.Dense``) that supports weight noise.

  Attributes:
    features: number of outputs.
    use_bias: whether to add a bias.
  """
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return _linear_output(self, x, kernel, lambda inputs, weights, bias: _plus(
        inputs @ weights, bias), bias)


def fan_in(kernel_shape: Sequence[int]) -> int:
  """Number of inputs feeding one output unit of a Dense or HWIO Conv kernel."""
  return math.prod(kernel_shape[:-1])


def fan_out(kernel_shape: Sequence[int]) -> int:
  """Number of outputs one input unit of a Dense or HWIO Conv kernel feeds (PyTorch's
  ``fan_out``: output channels times the receptive field)."""
  return math.prod(kernel_shape[:-2]) * kernel_shape[-1]
