"""Cyclic GaP: one dense partition at a time, the target after every prune."""

import jax
import numpy as np
import pytest

from jaxsparse import masks, models, population, sparsify
from jaxsparse.errors import UserError
from jaxsparse.sparsify import gap

from conftest import SINGLE, method_settings, random_dataset, train_population


def cnn_s_params(seed=0):
  model = models.get_model("cnn_s", (28, 28, 1))
  return models.init_variables(model, jax.random.PRNGKey(seed))["params"]


def test_partitions_are_contiguous_and_balanced():
  params = cnn_s_params()
  parts = gap.partition_of_leaves(masks.dense_masks(params), 3)
  order = [part for part in jax.tree.leaves(parts)]
  assert order == [0, 0, 1, 1, 2]  # Conv_0, Conv_1 | Conv_2, Dense_0 | Dense_1
  with pytest.raises(UserError, match="num_partitions=6"):
    gap.partition_of_leaves(masks.dense_masks(params), 6)


@pytest.mark.parametrize("scope", ["layerwise", "erk"])
def test_one_dense_partition_at_every_step_and_target_after_each_prune(scope):
  params = cnn_s_params()
  method = gap.cyclic_gap(num_partitions=3, start_step=2, end_step=14, round_length=3,
                          scope=scope)
  target = 0.8
  state = method.init(params, jax.random.PRNGKey(0), target)
  update = jax.jit(method.update)
  target_sparsities = {}
  for step in range(20):
    # Stand-in for training: weights move, pruned ones stay zero.
    params = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(step),
                                                                 p.shape), params)
    params = masks.apply_masks(params, state.masks)
    state = update(state, params, None, step, target)
    per_layer = masks.layer_sparsity(state.masks)
    if step == 0:
      target_sparsities = per_layer  # the random initial mask is at the target
    dense_layers = {name for name, value in per_layer.items() if value == 0}
    if 2 <= step < 14:
      growing = ((step - 2) // 3) % 3
      expected = {name for name, part in zip(per_layer, jax.tree.leaves(
          gap.partition_of_leaves(state.masks, 3))) if part == growing}
      assert dense_layers == expected, (step, dense_layers)
    else:
      assert not dense_layers, step
    for name, value in per_layer.items():
      if name not in dense_layers:
        np.testing.assert_allclose(value, target_sparsities[name], atol=1e-6)
  assert abs(float(masks.sparsity(state.masks)) - target) < 0.01


def test_sparse_tensors_keep_their_masks_through_a_prune():
  params = cnn_s_params()
  method = gap.cyclic_gap(num_partitions=5, start_step=0, end_step=10, round_length=2)
  state = method.init(params, jax.random.PRNGKey(1), 0.9)
  grown = method.update(state, params, None, 0, 0.9)  # Conv_0 grows
  params = masks.apply_masks(params, grown.masks)
  moved = method.update(grown, params, None, 2, 0.9)  # Conv_0 pruned, Conv_1 grows
  np.testing.assert_array_equal(moved.masks["Dense_0"]["kernel"], state.masks["Dense_0"]["kernel"])
  kept = np.asarray(moved.masks["Conv_0"]["kernel"]) == 1
  magnitudes = np.abs(np.asarray(params["Conv_0"]["kernel"]))
  assert magnitudes[kept].min() >= magnitudes[~kept].max()


def test_gap_population_trains_to_exact_targets():
  data = random_dataset(num_train=64)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table({**SINGLE, "sparsity": (0.5, 0.9)}, num_seeds=1)
  method = sparsify.get_method(
      method_settings("gap", start_epoch=0, end_epoch=2, num_rounds=4, num_partitions=2),
      sparsify.TrainingSchedule(4))
  state, _ = train_population(model, method, table, data, epochs=3, batch_size=16)
  for member, target in enumerate((0.5, 0.9)):
    for mask in jax.tree.leaves(state.masks):
      size = mask[member].size
      assert int(np.sum(mask[member] == 0)) == round(target * size), (member, mask.shape)
