"""Flat weights: masks line up with weights; the PyTorch order is the zoos' state dict, checked
by running the flat vector through an independent NCHW forward pass in numpy."""

import functools

import jax
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from jaxsparse import flat, masks, models
from jaxsparse.errors import UserError


@functools.lru_cache(maxsize=None)  # one compiled initialisation for the module's tests
def _population(name, shape=(28, 28, 1), members=2):
  model = models.get_model(name, shape)
  # One compiled initialisation (op by op, outside jit, costs tens of seconds on the CPU).
  stacked = jax.jit(jax.vmap(lambda key: models.init_variables(model, key)))(
      jax.random.split(jax.random.PRNGKey(0), members))
  params = jax.tree.map(np.asarray, stacked["params"])
  variables = [jax.tree.map(lambda leaf: leaf[member], stacked) for member in range(members)]
  member_masks = jax.tree.map(
      lambda leaf: None if leaf is None else
      (np.random.default_rng(leaf.size).random(leaf.shape) > 0.5).astype(np.float32),
      masks.dense_masks(params), is_leaf=lambda leaf: leaf is None)
  return model, variables, params, member_masks


def test_flax_order_is_the_stored_leaves_and_masks_line_up():
  _, _, params, member_masks = _population("cnn_s")
  result = flat.flat_weights(params, member_masks)
  expected = np.concatenate([np.reshape(leaf, (2, -1)) for leaf in jax.tree.leaves(params)], 1)
  np.testing.assert_array_equal(result.weights, expected)
  assert result.masks.shape == result.weights.shape
  for name, start, shape in result.segments:
    size = int(np.prod(shape))
    segment = result.masks[:, start:start + size]
    if name.endswith("bias"):  # never pruned: no mask, kept
      assert (segment == 1).all()
    else:
      layer = name.rsplit(".", 1)[0]
      np.testing.assert_array_equal(segment, member_masks[layer]["kernel"].reshape(2, -1))
  assert result.weights.shape[1] == sum(np.size(leaf[0]) for leaf in jax.tree.leaves(params))


def _numpy_forward_nchw(vector, segments, images_nchw):
  """CNN-s as the model zoos' PyTorch module runs it (conv -> 2x2 max-pool -> tanh; NCHW
  flatten; dense -> tanh; dense), with parameters read off the flat vector in order."""
  tensors = {name: vector[start:start + int(np.prod(shape))].reshape(shape)
             for name, start, shape in segments}
  x = images_nchw
  for layer, pool in (("Conv_0", True), ("Conv_1", True), ("Conv_2", False)):
    weight, bias = tensors[f"{layer}.weight"], tensors[f"{layer}.bias"]
    windows = sliding_window_view(x, weight.shape[2:], axis=(2, 3))  # [N, C, H', W', kh, kw]
    x = np.einsum("nchwij,ocij->nohw", windows, weight) + bias[None, :, None, None]
    if pool:
      n, c, h, w = x.shape
      x = x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    x = np.tanh(x)
  x = x.reshape(len(x), -1)  # PyTorch's flatten: (c, h, w)
  x = np.tanh(x @ tensors["Dense_0.weight"].T + tensors["Dense_0.bias"])
  return x @ tensors["Dense_1.weight"].T + tensors["Dense_1.bias"]


def test_pytorch_order_is_the_zoo_state_dict_and_runs_the_same_network():
  model, variables, params, _ = _population("cnn_s")
  result = flat.flat_weights(params, order="pytorch")
  assert [(name, shape) for name, _, shape in result.segments] == [
      ("Conv_0.weight", (8, 1, 5, 5)), ("Conv_0.bias", (8,)),
      ("Conv_1.weight", (6, 8, 5, 5)), ("Conv_1.bias", (6,)),
      ("Conv_2.weight", (4, 6, 2, 2)), ("Conv_2.bias", (4,)),
      ("Dense_0.weight", (20, 36)), ("Dense_0.bias", (20,)),
      ("Dense_1.weight", (10, 20)), ("Dense_1.bias", (10,))]
  images = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
  for member in (0, 1):
    logits, _ = models.apply_model(model, variables[member], images, activation=0)  # tanh
    ours = _numpy_forward_nchw(result.weights[member].astype(np.float64), result.segments,
                               images.transpose(0, 3, 1, 2).astype(np.float64))
    np.testing.assert_allclose(ours, np.asarray(logits), rtol=1e-4, atol=1e-4)


def test_pytorch_order_refuses_models_outside_the_zoos_family():
  model = models.get_model("resnet20", (28, 28, 1))
  shapes = jax.eval_shape(lambda key: models.init_variables(model, key), jax.random.PRNGKey(0))
  params = jax.tree.map(lambda leaf: np.ones((1, *leaf.shape), leaf.dtype), shapes["params"])
  with pytest.raises(UserError, match="order='flax'"):
    flat.flat_weights(params, order="pytorch")
  with pytest.raises(UserError, match="unknown"):
    flat.flat_weights(params, order="torch")
