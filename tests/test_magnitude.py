"""Magnitude pruning: exact sparsity through training, per-member targets, schedules."""

import jax
import numpy as np
import pytest

from jaxsparse import engine, masks, models, population, sparsify
from jaxsparse.sparsify.magnitude import magnitude_masks

from conftest import (assert_same_structure, assert_trees_close, method_settings, random_dataset,
                     train_population)

GRID = dict(sparsity=(0.5, 0.8, 0.9, 0.95), activation=("tanh",), dropout_rate=(0.0,),
            initializer=("kaiming_uniform",), optimizer=("adam",), learning_rate=(3e-3,),
            weight_decay=(0.0,), momentum=(0.9,))


def settings(**changes):
  return method_settings("magnitude", **changes)


def train(model, method, table, data, epochs, batch_size=32):
  return train_population(model, method, table, data, epochs, batch_size)[0]


@pytest.fixture(scope="module")
def data():
  return random_dataset(num_train=128)


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_gradual_pruning_reaches_each_members_target_exactly(data, scope):
  model = models.get_model("cnn_s", data.input_shape)
  # 4 steps per epoch; prune from epoch 1 to epoch 3, recompute every 2 steps.
  method = sparsify.get_method(settings(schedule="gradual", scope=scope, start_epoch=1,
                                        end_epoch=3, update_every=2), sparsify.TrainingSchedule(4))
  table = population.member_table(GRID, num_seeds=1)
  state = train(model, method, table, data, epochs=4)
  for index, target in enumerate(table["sparsity"]):
    member_masks = engine.member(state.masks, index)
    kernels = [leaf for leaf in jax.tree.leaves(member_masks)]
    total = sum(k.size for k in kernels)
    pruned = sum(int((k == 0).sum()) for k in kernels)
    if scope == "layerwise":
      for kernel in kernels:
        assert int((kernel == 0).sum()) == int(np.round(target * kernel.size))
    else:
      assert pruned == int(np.round(target * total))
    # Pruned weights are exactly zero in the parameters too.
    member_params = engine.member(state.params, index)
    assert_same_structure(member_params, jax.tree.map(lambda leaf: 0, member_params))
    for weight, mask in zip(jax.tree.leaves(member_params), jax.tree.leaves(
        member_masks, is_leaf=lambda x: x is None)):
      if mask is not None:
        assert np.all(np.asarray(weight)[np.asarray(mask) == 0] == 0)


@pytest.mark.slow
def test_member_with_its_own_target_equals_member_alone(data):
  model = models.get_model("cnn_s", data.input_shape)
  method = sparsify.get_method(settings(schedule="gradual", start_epoch=0, end_epoch=2,
                                        update_every=1), sparsify.TrainingSchedule(4))
  table = population.member_table(GRID, num_seeds=1)
  together = train(model, method, table, data, epochs=2)
  alone = train(model, method, table.iloc[[2]].reset_index(drop=True), data, epochs=2)
  np.testing.assert_array_equal(engine.member(together.masks, 2)["Dense_0"]["kernel"],
                                engine.member(alone.masks, 0)["Dense_0"]["kernel"])
  assert_trees_close(engine.member(together.params, 2), engine.member(alone.params, 0),
                     rtol=2e-5, atol=2e-6)


def test_one_shot_at_start_prunes_at_init_and_jit_agrees(data):
  model = models.get_model("cnn_s", data.input_shape)
  params = jax.jit(lambda k: models.init_variables(model, k))(jax.random.PRNGKey(0))["params"]
  dense = masks.dense_masks(params)
  eager = magnitude_masks(params, dense, 0.8, "global")
  compiled = jax.jit(magnitude_masks, static_argnums=3)(params, dense, 0.8, "global")
  assert_trees_close(eager, compiled)
  method = sparsify.get_method(settings(schedule="one_shot"), sparsify.TrainingSchedule(4))
  state = method.init(params, jax.random.PRNGKey(0), sparsify.Target(0.8))
  assert abs(float(masks.sparsity(state.masks)) - 0.8) < 1e-3
