"""Random pruning and static sparse training: exact counts, key-driven, fixed masks."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse import masks, sparsify
from jaxsparse.config import default_config


def params_tree():
  return {"Dense_0": {"kernel": jnp.ones((40, 30)), "bias": jnp.zeros(30)},
          "Dense_1": {"kernel": jnp.ones((30, 10)), "bias": jnp.zeros(10)}}


def method(start_epoch=0, scope="layerwise"):
  settings = default_config().sparsify
  settings.update(dict(method="random", start_epoch=start_epoch, scope=scope))
  return sparsify.get_method(settings, sparsify.TrainingSchedule(steps_per_epoch=10))


def test_static_sparse_masks_have_exact_counts_and_depend_on_the_key():
  params = params_tree()
  first = method().init(params, jax.random.PRNGKey(0), sparsify.Target(0.9))
  second = method().init(params, jax.random.PRNGKey(1), sparsify.Target(0.9))
  for layer, size in (("Dense_0", 1200), ("Dense_1", 300)):
    assert int(first.masks[layer]["kernel"].sum()) == size - round(0.9 * size)
  assert not np.array_equal(first.masks["Dense_0"]["kernel"], second.masks["Dense_0"]["kernel"])
  # Fixed during training: updates leave the masks alone.
  updated = method().update(first, params, params, jnp.asarray(5), sparsify.Target(0.9))
  np.testing.assert_array_equal(updated.masks["Dense_0"]["kernel"], first.masks["Dense_0"]["kernel"])


def test_random_pruning_happens_at_its_start_step():
  params = params_tree()
  pruning = method(start_epoch=2)
  state = pruning.init(params, jax.random.PRNGKey(0), sparsify.Target(0.5))
  assert float(masks.sparsity(state.masks)) == 0.0
  state = pruning.update(state, params, params, jnp.asarray(19), sparsify.Target(0.5))
  assert float(masks.sparsity(state.masks)) == 0.0
  state = jax.jit(pruning.update)(state, params, params, jnp.asarray(20), sparsify.Target(0.5))
  assert float(masks.sparsity(state.masks)) == 0.5


def test_global_random_masks_count_over_all_layers():
  state = method(scope="global").init(params_tree(), jax.random.PRNGKey(3), sparsify.Target(0.8))
  kept = sum(int(state.masks[layer]["kernel"].sum()) for layer in ("Dense_0", "Dense_1"))
  assert kept == 1500 - 1200
