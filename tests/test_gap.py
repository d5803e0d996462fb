"""Cyclic GaP: one dense partition at a time, the target after every prune."""

import jax
import numpy as np
import pytest

from jaxsparse import engine, masks, models, population, sparsify
from jaxsparse.errors import UserError
from jaxsparse.sparsify import gap

from conftest import (SINGLE, assert_same_structure, assert_trees_close, method_settings,
                     random_dataset, train_population)


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


def resnet_partition(layer):
  """Partitions of ResNet-20's layers in 3 groups, written out by hand: 20 prunable layers in
  depth order (stem conv, 9 blocks x 2 convs, dense) split 7 / 7 / 6; a BatchNorm joins the
  conv before it."""
  if layer[0] == "Dense_0":
    return 2
  if layer[0].startswith("BasicBlock_"):
    conv = 1 + 2 * int(layer[0].split("_")[1]) + int(layer[1].split("_")[1])
  else:
    conv = 0  # the stem's Conv_0 and BatchNorm_0
  return 0 if conv < 7 else 1 if conv < 14 else 2


def test_partitions_follow_network_depth_not_the_alphabet():
  model = models.get_model("resnet56", (28, 28, 1))
  params = jax.eval_shape(lambda key: models.init_variables(model, key),
                          jax.random.PRNGKey(0))["params"]
  layers = gap.layer_partitions(masks.dense_masks(params), 4, models.layer_order(model))
  # 56 prunable layers (stem, 27 blocks x 2 convs, dense) in 4 groups of 14.
  assert layers[("Conv_0",)] == 0 and layers[("Dense_0",)] == 3
  assert layers[("BasicBlock_2", "Conv_0")] == 0 and layers[("BasicBlock_10", "Conv_0")] == 1
  assert layers[("BasicBlock_6", "Conv_1")] == 1 and layers[("BasicBlock_6", "BatchNorm_1")] == 1
  in_depth = [layers[layer] for layer in models.layer_order(model) if layer in layers]
  assert in_depth == sorted(in_depth)
  prunable = [layers[layer] for layer in models.layer_order(model)
              if layer[-1].startswith(("Conv", "Dense"))]
  assert [prunable.count(group) for group in range(4)] == [14, 14, 14, 14]


def test_setup_traces_the_layer_order_only_for_methods_that_declare_it(monkeypatch):
  from jaxsparse import build
  from conftest import make_tiny_config
  traced = []
  real = models.layer_order
  monkeypatch.setattr(models, "layer_order", lambda model: traced.append(model.name) or
                      real(model))
  for method, expected in (("magnitude", []), ("gap", ["cnn_s"])):
    traced.clear()
    config = make_tiny_config()
    config.sparsify.method = method
    run = build.setup(config, build.DataShape((28, 28, 1), 10, 64))
    assert traced == expected, method
    assert run.declaration.uses_layer_order == bool(expected)


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


def test_global_scope_prunes_only_the_grown_partition():
  params = cnn_s_params()
  method = gap.cyclic_gap(num_partitions=3, start_step=0, end_step=6, round_length=2,
                          scope="global")
  target = sparsify.Target(0.8)
  state = method.init(params, jax.random.PRNGKey(2), target)
  parts = jax.tree.leaves(gap.partition_of_leaves(state.masks, 3))  # [0, 0, 1, 1, 2]
  for step in range(7):
    # Stand-in for training in which the dense partition's weights outgrow the others': a
    # global prune of every tensor would hand it the sparse partitions' weights.
    params = jax.tree.map(
        lambda p, m: jax.random.normal(jax.random.PRNGKey(step), p.shape) * (
            100.0 if m is not None and bool(np.all(m == 1)) else 1.0),
        params, state.masks, is_leaf=lambda x: x is None)
    params = masks.apply_masks(params, state.masks)
    new = method.update(state, params, None, step, target)
    if step in (2, 4, 6):
      grown, growing = (step - 1) // 2 % 3, step // 2 % 3 if step < 6 else None
      assert_same_structure(state.masks, new.masks)
      for old_mask, new_mask, part in zip(jax.tree.leaves(state.masks),
                                          jax.tree.leaves(new.masks), parts):
        if part not in (grown, growing):
          np.testing.assert_array_equal(new_mask, old_mask, err_msg=f"step {step}")
    state = new
  size = sum(mask.size for mask in jax.tree.leaves(state.masks))
  assert int(sum(np.sum(mask == 0) for mask in jax.tree.leaves(state.masks))) == round(0.8 * size)


@pytest.mark.slow  # a ResNet-20 population of 3 copies and its boundary program
def test_parallel_reassembly_takes_every_layer_variable_from_its_partitions_copy():
  model = models.get_model("resnet20", (28, 28, 1))
  table = population.with_copies(population.member_table(SINGLE, num_seeds=1), 3)
  hyper = population.member_hyperparameters(table)
  program = engine.Program(model, sparsify.get_method(
      method_settings("parallel_gap", start_epoch=0, end_epoch=2, num_rounds=2,
                      num_partitions=3),
      sparsify.TrainingSchedule(4, layer_order=models.layer_order(model))))
  state = engine.init_population(program, hyper)
  # Every copy's variables differ (biases, BatchNorm parameters and statistics, Adam's
  # moments, SGD's trace); the masks stay those of the shared member.
  offsets = np.array([0.0, 1.0, 2.0], np.float32)
  moved = jax.tree.map(lambda leaf: leaf + offsets.reshape(-1, *[1] * (leaf.ndim - 1))
                       if leaf.dtype == np.float32 else leaf, state)
  moved = moved._replace(sparsity_state=state.sparsity_state)
  after = engine.meet_copies(program, moved, hyper.sparsity, prune=True, grow=False)
  before = dict(jax.tree_util.tree_leaves_with_path(moved))
  sources = set()
  for path, leaf in jax.tree_util.tree_leaves_with_path(after):
    names = [str(entry.key) for entry in path if isinstance(entry, jax.tree_util.DictKey)]
    if names and names[-1] != "kernel":  # every variable of a layer but its masked weights
      source = resnet_partition(tuple(names[:-1]))
      np.testing.assert_array_equal(leaf, np.repeat(np.asarray(before[path])[source][None], 3, 0),
                                    err_msg=jax.tree_util.keystr(path))
      sources.add(source)
  assert sources == {0, 1, 2}


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
  program = engine.Program(model, method)
  state = engine.between_epochs(program, engine.init_population(program, hyper), hyper, 0, 6)
  parts = jax.tree.leaves(gap.partition_of_leaves(jax.tree.map(lambda m: m[0], state.masks), 3))
  for index in range(6):
    per_layer = list(masks.layer_sparsity(engine.member(state.masks, index)).values())
    assert [value == 0 for value in per_layer] == [part == index % 3 for part in parts]
  # Stand-in for a round of training: every copy's weights move differently.
  moved = jax.tree.map(lambda p: p + jax.random.normal(jax.random.PRNGKey(p.size), p.shape),
                       state.params)
  state = state._replace(params=jax.vmap(masks.apply_masks)(moved, state.masks))
  after = engine.between_epochs(program, state, hyper, 1, 6)  # prune, reassemble, grow again
  final = engine.between_epochs(program, after, hyper, 2, 6)  # prune and reassemble only
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
      # A layer's bias comes from the copy that grew its partition.
      np.testing.assert_array_equal(
          final.params[name]["bias"][rows],
          np.repeat(state.params[name]["bias"][3 * member + part][None], 3, 0))
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


def test_parallel_gap_copies_meet_at_round_boundaries():
  """Parallel GaP's copies meet at the boundaries of its rounds: the first only grows, the
  last only prunes and reassembles (which leaves BatchNorm statistics from other copies), and
  epochs between boundaries change nothing; cyclic GaP has no copies."""
  method = sparsify.get_method(
      method_settings("parallel_gap", start_epoch=1, end_epoch=5, num_rounds=2,
                      num_partitions=2), sparsify.TrainingSchedule(4))
  assert method.copies == 2
  assert [method.copy_rounds.meets(epoch) for epoch in range(7)] == [
      (False, False), (False, True), (False, False), (True, True), (False, False),
      (True, False), (False, False)]
  cyclic = sparsify.get_method(method_settings("gap"), sparsify.TrainingSchedule(4))
  assert cyclic.copy_rounds is None and cyclic.copies == 1


@pytest.mark.slow  # 18 s: a ResNet population and its recalibration program
def test_recalibrated_batch_norm_statistics_are_those_of_the_current_weights():
  """Re-estimated running statistics of the stem's BatchNorm equal the mean and (biased)
  variance, over the calibration images and positions, of the stem convolution's outputs
  computed here with lax.conv; the stale values are gone and the weights are unchanged."""
  data = random_dataset(num_train=48, shape=(8, 8, 3))
  model = models.get_model("resnet20", data.input_shape, width=0.25)
  table = population.member_table({**SINGLE, "initializer": ("kaiming_normal",)}, num_seeds=2)
  hyper = population.member_hyperparameters(table)
  method = sparsify.get_method(method_settings("none"), sparsify.TrainingSchedule(4))
  program = engine.Program(model, method, batch_size=48)
  state = engine.init_population(program, hyper)
  stale = state._replace(batch_stats=jax.tree.map(lambda leaf: leaf + 7.0, state.batch_stats))
  params = jax.tree.map(np.array, state.params)  # the call donates the population
  # One batch of the whole set, repeated: the running averages converge to its statistics.
  fresh = engine.recalibrate_batch_stats(program, stale, hyper,
                                         jax.numpy.asarray(data.train_images))
  for member in range(2):
    outputs = jax.lax.conv_general_dilated(
        data.train_images, params["Conv_0"]["kernel"][member], (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    statistics = fresh.batch_stats["BatchNorm_0"]
    # The stale offset keeps a weight of momentum ** batches (0.9 here).
    residual = 7.0 * 0.9 ** engine.RECALIBRATION_BATCHES
    np.testing.assert_allclose(statistics["mean"][member], outputs.mean((0, 1, 2)),
                               rtol=1e-4, atol=residual + 1e-5)
    np.testing.assert_allclose(statistics["var"][member], np.var(outputs, (0, 1, 2)),
                               rtol=1e-4, atol=residual + 1e-5)
    assert np.abs(statistics["mean"][member] - outputs.mean((0, 1, 2))).max() < 1e-3
  assert_trees_close(params, fresh.params)


@pytest.mark.slow
def test_training_loop_recalibrates_batch_norm_after_parallel_gap_reassembles(
    tmp_path, tiny_config, monkeypatch):
  from jaxsparse import train
  calls = []
  recalibrate = engine.recalibrate_batch_stats
  monkeypatch.setattr(engine, "recalibrate_batch_stats",
                      lambda *args, **kwargs: calls.append(args[1].epoch[0]) or
                      recalibrate(*args, **kwargs))
  config = tiny_config
  config.model.name, config.model.width = "resnet20", 0.25
  config.population.grid.sparsity = (0.8,)
  config.population.grid.activation, config.population.grid.optimizer = ("relu",), ("adam",)
  config.sparsify.method = "parallel_gap"
  config.sparsify.start_epoch, config.sparsify.end_epoch = 0, 2
  config.sparsify.num_rounds, config.sparsify.num_partitions = 2, 2
  train.train_and_evaluate(config, str(tmp_path),
                           dataset=random_dataset(num_train=64, shape=(8, 8, 3)))
  assert [int(epoch) for epoch in calls] == [1, 2]  # after each reassembly, not at the start
