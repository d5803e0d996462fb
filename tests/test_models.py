"""Models: documented parameter counts, and layer implementations that agree."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import layers, models

# (model, input shape, documented parameter count)
DOCUMENTED_COUNTS = [
    ("cnn_s", (28, 28, 1), 2_464),
    ("cnn_l", (32, 32, 3), 10_853),
    ("lenet_300_100", (28, 28, 1), 266_610),
    ("lenet_5", (28, 28, 1), 431_080),
    ("conv2", (32, 32, 3), 4_300_992),
    ("conv4", (32, 32, 3), 2_425_024),
    ("conv6", (32, 32, 3), 2_261_184),
    ("resnet20", (32, 32, 3), 269_722),
    ("resnet56", (32, 32, 3), 853_018),
    ("resnet18", (32, 32, 3), 11_173_962),
]


@pytest.mark.parametrize("name,input_shape,expected", DOCUMENTED_COUNTS)
def test_parameter_count_is_documented(name, input_shape, expected):
  model = models.get_model(name, input_shape)
  variables = jax.eval_shape(functools.partial(models.init_variables, model), jax.random.PRNGKey(0))
  assert models.count_parameters(variables["params"]) == expected
  factory_doc = models._FACTORIES[name].__doc__
  assert f"{expected:,}" in factory_doc, f"docstring of {name} must state {expected:,}"


def test_cnn_s_weights_without_biases():
  model = models.get_model("cnn_s", (28, 28, 1))
  params = jax.eval_shape(functools.partial(models.init_variables, model),
                          jax.random.PRNGKey(0))["params"]
  kernels = [leaf.size for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if path[-1].key == "kernel"]
  assert sum(kernels) == 2_416


def test_resnet_width_multiplier_scales_channels():
  full = models.get_model("resnet20", (32, 32, 3))
  thin = models.get_model("resnet20", (32, 32, 3), width=0.5)
  count = lambda m: models.count_parameters(
      jax.eval_shape(functools.partial(models.init_variables, m), jax.random.PRNGKey(0))["params"])
  # Convolutions scale with width squared; the parameter count falls close to 4x.
  assert 3.5 < count(full) / count(thin) < 4.1


@pytest.mark.parametrize("implementation", ["im2col", "banded", "banded, runs of 1",
                                            "banded, runs of 2", "banded, runs of 3",
                                            "banded, transposed patches, runs of 3"])
@pytest.mark.parametrize("kernel_size,strides,padding,shape", [
    ((5, 5), (1, 1), "VALID", (2, 12, 12, 3)),
    ((3, 3), (1, 1), "SAME", (2, 9, 9, 4)),
    ((3, 3), (2, 2), "SAME", (2, 8, 8, 4)),
    ((3, 3), (2, 2), "SAME", (2, 9, 7, 2)),
    ((1, 1), (2, 2), "SAME", (2, 8, 8, 4)),
    ((2, 2), (1, 1), "VALID", (2, 3, 3, 6)),
    ((5, 3), (1, 2), "VALID", (2, 11, 10, 2)),
])
def test_conv_implementations_match_flax_conv(kernel_size, strides, padding, shape,
                                              implementation):
  """Each of jaxsparse's convolutions (im2col patches; banded matrices over all output
  columns or runs of a few, the last run cut short where they do not divide the width,
  with the kernel gradient from transposed patches or not) plus a bias, and its gradients
  with respect to kernel, bias and input, equal flax's nn.Conv (XLA's convolution)."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  kernel = jax.random.normal(jax.random.PRNGKey(1), (*kernel_size, shape[-1], 5))
  bias = jax.random.normal(jax.random.PRNGKey(2), (5,))
  reference = nn.Conv(5, kernel_size, strides, padding)

  def flax_conv(k, b, v):
    return reference.apply({"params": {"kernel": k, "bias": b}}, v)

  def ours(k, b, v):
    if implementation.startswith("banded, "):
      return layers.banded_conv(v, k, strides, padding, block=int(implementation[-1]),
                                transposed_patches="transposed" in implementation, bias=b)
    return layers.conv2d(v, k, strides, padding, implementation, bias=b)

  # Jitted: op by op, im2col's 25 slices and their gradients take seconds per case.
  np.testing.assert_allclose(jax.jit(ours)(kernel, bias, x), flax_conv(kernel, bias, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda k, b, v: jnp.sum(jnp.sin(f(k, b, v)))
  grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1, 2)))(kernel, bias, x)
  reference_grads = jax.jit(jax.grad(loss(flax_conv), argnums=(0, 1, 2)))(kernel, bias, x)
  for grad, reference_grad in zip(grads, reference_grads):
    np.testing.assert_allclose(grad, reference_grad, rtol=1e-4, atol=1e-4)


def test_only_cnn_s_first_layer_takes_its_kernel_gradient_from_transposed_patches(monkeypatch):
  """The rule of TRANSPOSED_PATCHES_MAX_WIDTH_RATIO: patch rows at most twice as wide as the
  output rows (CNN-s: 40 and 32 in its first layer; 480 and 48, 48 and 12 in the others)."""
  built = []
  original = layers.band_patches_transposed
  monkeypatch.setattr(layers, "band_patches_transposed",
                      lambda x, *args: built.append(x.shape) or original(x, *args))
  model = models.get_model("cnn_s", (28, 28, 1), conv_implementation="banded")
  variables = jax.eval_shape(lambda key: models.init_variables(model, key),
                             jax.random.PRNGKey(0))
  built.clear()  # (initialising ran the model too)
  jax.eval_shape(lambda v, x: models.apply_model(model, v, x, 0), variables,
                 jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
  assert built == [(2, 28, 28, 1)]


@pytest.mark.parametrize("out_width,out_channels,block", [
    (24, 8, 4),    # CNN-s's first layer: runs of 4 columns, 32 outputs wide
    (8, 6, 8),     # its second: 6 columns would be 36 wide but do not divide 8
    (3, 4, 3),     # its third: all columns
    (13, 2, 13),   # a prime width: all columns
    (32, 32, 1),   # enough channels alone: one column per run (im2col's shape)
])
def test_band_block_is_the_fewest_dividing_columns_32_outputs_wide(out_width, out_channels,
                                                                  block):
  assert layers.band_block(out_width, out_channels) == block


@pytest.mark.parametrize("form", layers.MAX_POOL_FORMS)
@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (2, 13, 13, 2)])
def test_max_pool_matches_flax_max_pool(shape, form):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  reference = lambda v: nn.max_pool(v, (2, 2), (2, 2), "VALID")
  loss = lambda f: lambda v: jnp.sum(jnp.cos(f(v)))
  with layers.max_pool_form(form):
    np.testing.assert_allclose(layers.max_pool_2x2(x), reference(x))
    np.testing.assert_allclose(jax.grad(loss(layers.max_pool_2x2))(x),
                               jax.grad(loss(reference))(x))


def _tied_pool_input(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """An NHWC input whose 2x2 windows have many tied maxima, and an upstream gradient for
  its max-pool."""
  x = rng.integers(0, 3, (2, 6, 7, 3)).astype(np.float32)
  upstream = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
  return x, upstream


def _equal_shares(values: np.ndarray) -> np.ndarray:
  """1 / (how many elements tie for the maximum of ``values``) at each of them, else 0."""
  tied = values == values.max()
  return tied / tied.sum()


def _expected_pool_gradient(x: np.ndarray, upstream: np.ndarray, share) -> np.ndarray:
  """The input gradient of a 2x2 max-pool by numpy loops: each window passes its upstream
  gradient on to its elements in the fractions ``share(window)``."""
  expected = np.zeros_like(x)
  for n, i, j, c in np.ndindex(upstream.shape):
    rows, columns = slice(2 * i, 2 * i + 2), slice(2 * j, 2 * j + 2)
    expected[n, rows, columns, c] = upstream[n, i, j, c] * share(x[n, rows, columns, c])
  return expected


def test_max_pool_splits_the_gradient_between_tied_maxima():
  """Where several elements of a window share its maximum (zero inputs, ReLU), they share
  its gradient equally, as JAX's derivative of a maximum does (numpy loops here), in a
  jitted and vmapped gradient as in the engine; forward-mode agrees."""
  rng = np.random.default_rng(0)
  x, upstream = _tied_pool_input(rng)
  expected = _expected_pool_gradient(x, upstream, _equal_shares)
  grad = jax.jit(jax.vmap(jax.grad(lambda v, u: jnp.sum(layers.max_pool_2x2(v[None]) * u))))(
      jnp.asarray(x), jnp.asarray(upstream))
  np.testing.assert_allclose(grad, expected, rtol=1e-6)
  direction = rng.normal(size=x.shape).astype(np.float32)
  _, tangent = jax.jvp(layers.max_pool_2x2, (jnp.asarray(x),), (jnp.asarray(direction),))
  np.testing.assert_allclose(jnp.sum(tangent * upstream), np.sum(expected * direction),
                             rtol=1e-5)


def test_max_pool_rows_then_columns_halves_a_tied_gradient_at_each_step():
  """In the "rows_then_columns" form a window's gradient goes to the larger of each column's
  two rows (half to each where they tie), then to the larger of the two columns (half to
  each where they tie): numpy loops here. It reaches only maxima and sums to the upstream
  gradient, as the "joint" form's does; the form outside the context is "joint"."""
  def rows_then_columns(window):
    column_max = window.max(axis=0)
    to_rows = (window == column_max) / np.sum(window == column_max, axis=0)
    return to_rows * _equal_shares(column_max)

  x, upstream = _tied_pool_input(np.random.default_rng(1))
  expected = _expected_pool_gradient(x, upstream, rows_then_columns)
  pooled_gradient = jax.grad(lambda v: jnp.sum(layers.max_pool_2x2(v) * upstream))
  with layers.max_pool_form("rows_then_columns"):
    gradient = jax.jit(pooled_gradient)(jnp.asarray(x))
  np.testing.assert_allclose(gradient, expected, rtol=1e-6)
  assert not np.allclose(pooled_gradient(jnp.asarray(x)), expected)  # "joint"
  with pytest.raises(ValueError, match="unknown; use one of"):
    with layers.max_pool_form("columns_then_rows"):
      pass


#: The activations written out independently of layers.activate, by name.
REFERENCE_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
                         "gelu": lambda v: jax.nn.gelu(v, approximate=False)}


@pytest.mark.parametrize("name,function", REFERENCE_ACTIVATIONS.items())
def test_activation_selected_by_traced_index(name, function):
  index = layers.ACTIVATIONS.index(name)
  x = jnp.linspace(-3, 3, 11)
  selected = jax.jit(layers.activate)(x, jnp.asarray(index))
  np.testing.assert_allclose(selected, function(x), rtol=1e-6)


@pytest.mark.parametrize("indices", [(1, 1, 1), (3, 0, 2)], ids=["shared", "mixed"])
def test_group_activation_gives_each_members_function_and_gradient(indices):
  """A vmapped group: each member gets its own activation's values and gradients whether
  the group shares one (one branch runs) or mixes them (every branch, then a select)."""
  x = jnp.linspace(-3, 3, 33).reshape(3, 11) * jnp.asarray([[1.0], [0.5], [2.0]])
  index = jnp.asarray(indices)
  shared = jnp.where(jnp.all(index == index[0]), index[0], -1)

  def loss(v, member_index):
    return jnp.sum(jnp.sin(layers.activate(v, layers.GroupActivation(member_index, shared))))

  values = jax.vmap(lambda v, i: layers.activate(v, layers.GroupActivation(i, shared)))(x, index)
  grads = jax.vmap(jax.grad(loss))(x, index)
  for row, i in enumerate(indices):
    function = REFERENCE_ACTIVATIONS[layers.ACTIVATIONS[i]]
    np.testing.assert_allclose(values[row], function(x[row]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grads[row], jax.grad(lambda v: jnp.sum(jnp.sin(function(v))))(
        x[row]), rtol=1e-5, atol=1e-7)


def test_group_activation_stays_a_conditional_under_vmap():
  """The group's shared index is not batched, so the outer switch stays a ``cond`` (one
  branch runs); a per-member index under vmap becomes a select of every branch."""
  x, index = jnp.ones((4, 5)), jnp.zeros(4, jnp.int32)
  grouped = jax.make_jaxpr(lambda x, i, shared: jax.vmap(
      lambda v, j: layers.activate(v, layers.GroupActivation(j, shared)))(x, i))(
          x, index, jnp.asarray(0))
  per_member = jax.make_jaxpr(jax.vmap(layers.activate))(x, index)
  assert [eqn.primitive.name for eqn in grouped.jaxpr.eqns][-1] == "cond"
  assert "cond" not in [eqn.primitive.name for eqn in per_member.jaxpr.eqns]


def test_dropout_rate_zero_is_identity_and_rate_half_keeps_half():
  x = jnp.ones((10_000,))
  key = jax.random.PRNGKey(0)
  np.testing.assert_array_equal(layers.dropout(x, jnp.asarray(0.0), key), x)
  dropped = layers.dropout(x, jnp.asarray(0.5), key)
  assert set(np.unique(np.asarray(dropped))) == {0.0, 2.0}
  assert abs(float((dropped == 0).mean()) - 0.5) < 0.02
  np.testing.assert_array_equal(layers.dropout(x, 0.5, None), x)


def test_initializer_families_match_torch_nn_init():
  """The zoo's names mean what torch.nn.init means with its defaults (the public zoo code
  calls uniform_, normal_, kaiming_*_ and xavier_*_ without arguments); the
  fan-in-scaled families keep their own names. Compared by the first two moments and
  the support, against scipy's distributions of those parameters."""
  from scipy import stats
  model = models.get_model("lenet_300_100", (28, 28, 1))
  fan_in = 784
  bound = np.sqrt(6 / fan_in)
  glorot_bound = np.sqrt(6 / (fan_in + 300))  # Dense_0 is 784 -> 300
  expected = {"uniform": stats.uniform(0, 1), "normal": stats.norm(0, 1),
              "kaiming_uniform": stats.uniform(-bound, 2 * bound),
              "kaiming_normal": stats.norm(0, np.sqrt(2 / fan_in)),
              "fan_in_uniform": stats.uniform(-1 / np.sqrt(fan_in), 2 / np.sqrt(fan_in)),
              "fan_in_normal": stats.norm(0, 1 / np.sqrt(fan_in)),
              "xavier_uniform": stats.uniform(-glorot_bound, 2 * glorot_bound),
              "xavier_normal": stats.norm(0, np.sqrt(2 / (fan_in + 300)))}
  assert set(expected) == set(models.INITIALIZERS)
  init = jax.jit(functools.partial(models.init_variables, model))
  for name, distribution in expected.items():
    kernel = np.asarray(init(jax.random.PRNGKey(0), jnp.asarray(
        models.INITIALIZERS.index(name)))["params"]["Dense_0"]["kernel"])
    np.testing.assert_allclose(kernel.mean(), distribution.mean(), atol=0.01 * distribution.std(),
                               err_msg=name)
    np.testing.assert_allclose(kernel.std(), distribution.std(), rtol=0.01, err_msg=name)
    low, high = distribution.support()
    assert low <= kernel.min() and kernel.max() <= high, name


def test_zoo_biases_start_at_0_01():
  model = models.get_model("cnn_s", (28, 28, 1))
  params = jax.jit(functools.partial(models.init_variables, model))(jax.random.PRNGKey(0))["params"]
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if path[-1].key == "bias":
      np.testing.assert_allclose(leaf, 0.01, rtol=1e-7)


def test_unknown_model_is_rejected():
  with pytest.raises(ValueError, match="cnn_s"):
    models.get_model("vgg", (28, 28, 1))


def test_cnn_s_drops_out_where_the_zoo_class_does():
  """The zoo's CNN has dropout after its two pooled convolution blocks and its hidden dense
  layer, not after the third convolution (ModelZoos/ModelZooDataset, def_net.py)."""
  model = models.get_model("cnn_s", (28, 28, 1))
  variables = models.init_variables(model, jax.random.PRNGKey(0))
  sites = []
  original = layers.dropout
  try:
    layers.dropout = lambda x, rate, key: sites.append(x.shape[1:]) or original(x, rate, key)
    models.apply_model(model, variables, jnp.zeros((2, 28, 28, 1)), 0, 0.5,
                       jax.random.PRNGKey(1), train=True)
  finally:
    layers.dropout = original
  assert sites == [(12, 12, 8), (4, 4, 6), (20,)]


@pytest.mark.parametrize("kernel_shape,block,stride", [((5, 5, 1, 8), 4, 1),
                                                       ((5, 5, 8, 6), 8, 1),
                                                       ((3, 2, 2, 3), 3, 2)])
def test_band_matrix_places_each_kernel_column_at_its_window_column(kernel_shape, block,
                                                                    stride):
  """Row (kernel row r, window column j, input channel i), column (output column w,
  output channel o) of the band holds kernel[r, j - stride*w, i, o], or 0 outside the
  kernel (built here with numpy loops)."""
  kernel = np.asarray(jax.random.normal(jax.random.PRNGKey(0), kernel_shape))
  rows, width, inputs, outputs = kernel_shape
  window = (block - 1) * stride + width
  expected = np.zeros((rows, window, inputs, block, outputs), np.float32)
  for w in range(block):
    for c in range(width):
      expected[:, stride * w + c, :, w, :] = kernel[:, c]
  np.testing.assert_array_equal(layers.band_matrix(jnp.asarray(kernel), block, stride),
                                expected.reshape(rows * window * inputs, block * outputs))
