"""Cyclic GaP: one dense partition at a time, the target after every prune."""

import jax
import numpy as np
import pytest

from jaxsparse import engine, masks, models, population, sparsify
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
  target = sparsify.Target(0.8)
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
  assert abs(float(masks.sparsity(state.masks)) - target.sparsity) < 0.01


def test_sparse_tensors_keep_their_masks_through_a_prune():
  params = cnn_s_params()
  method = gap.cyclic_gap(num_partitions=5, start_step=0, end_step=10, round_length=2)
  state = method.init(params, jax.random.PRNGKey(1), sparsify.Target(0.9))
  grown = method.update(state, params, None, 0, sparsify.Target(0.9))  # Conv_0 grows
  params = masks.apply_masks(params, grown.masks)
  moved = method.update(grown, params, None, 2, sparsify.Target(0.9))  # Conv_0 pruned, Conv_1 grows
  np.testing.assert_array_equal(moved.masks["Dense_0"]["kernel"], state.masks["Dense_0"]["kernel"])
  kept = np.asarray(moved.masks["Conv_0"]["kernel"]) == 1
  magnitudes = np.abs(np.asarray(params["Conv_0"]["kernel"]))
  assert magnitudes[kept].min() >= magnitudes[~kept].max()


@pytest.mark.slow
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


@pytest.mark.slow
def test_parallel_gap_grows_one_partition_per_copy_and_reassembles():
  model = models.get_model("cnn_s", (28, 28, 1))
  table = population.with_copies(
      population.member_table({**SINGLE, "sparsity": (0.5, 0.8)}, num_seeds=1), 3)
  assert list(table["copy"]) == [0, 1, 2, 0, 1, 2] and list(table["member"]) == list(range(6))
  hyper = population.member_hyperparameters(table)
  method = sparsify.get_method(
      method_settings("parallel_gap", start_epoch=0, end_epoch=2, num_rounds=2,
                      num_partitions=3), sparsify.TrainingSchedule(4))
  state = method.between_epochs(engine.init_population(model, method, hyper), hyper, 0)
  parts = jax.tree.leaves(gap.partition_of_leaves(jax.tree.map(lambda m: m[0], state.masks), 3))
  for index in range(6):
    per_layer = list(masks.layer_sparsity(engine.member(state.masks, index)).values())
    assert [value == 0 for value in per_layer] == [part == index % 3 for part in parts]
  # Stand-in for a round of training: every copy's weights move differently.
  moved = jax.tree.map(lambda p: p + jax.random.normal(jax.random.PRNGKey(p.size), p.shape),
                       state.params)
  state = state._replace(params=jax.vmap(masks.apply_masks)(moved, state.masks))
  after = method.between_epochs(state, hyper, 1)  # prune, reassemble, grow again
  final = method.between_epochs(after, hyper, 2)  # prune and reassemble only
  for member, target in enumerate((0.5, 0.8)):
    rows = slice(3 * member, 3 * member + 3)
    for name, part in zip(("Conv_0", "Conv_1", "Conv_2", "Dense_0", "Dense_1"), parts):
      source = state.params[name]["kernel"][3 * member + part]
      kept = gap.prune_kept({"k": source}, {"k": state.masks[name]["kernel"][3 * member + part]},
                            target, "layerwise")["k"]
      for copy in range(3):
        np.testing.assert_array_equal(after.params[name]["kernel"][3 * member + copy],
                                      source * kept)
        np.testing.assert_array_equal(final.masks[name]["kernel"][3 * member + copy], kept)
      # Biases come from copy 0.
      np.testing.assert_array_equal(final.params[name]["bias"][rows],
                                    np.repeat(state.params[name]["bias"][3 * member][None], 3, 0))
    final_layers = masks.layer_sparsity(engine.member(final.masks, 3 * member))
    for mask in jax.tree.leaves(engine.member(final.masks, 3 * member)):
      assert int(np.sum(mask == 0)) == round(target * mask.size)
    assert len(final_layers) == 5


@pytest.mark.slow
def test_parallel_gap_runs_from_the_training_loop(tmp_path, tiny_config):
  from jaxsparse.train import train_and_evaluate
  config = tiny_config
  config.population.grid.sparsity = (0.8,)
  config.population.grid.activation = ("relu",)
  config.population.grid.optimizer = ("adam",)
  config.sparsify.method = "parallel_gap"
  config.sparsify.start_epoch, config.sparsify.end_epoch = 0, 2
  config.sparsify.num_rounds, config.sparsify.num_partitions = 2, 2
  members = train_and_evaluate(config, str(tmp_path), dataset=random_dataset(num_train=64))
  assert list(members["copy"]) == [0, 1]
  np.testing.assert_allclose(members["achieved_sparsity"], 0.8, atol=0.002)
  # After the last reassembly both copies are the same network.
  assert members["test_accuracy"][0] == members["test_accuracy"][1]
