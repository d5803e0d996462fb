"""The population engine: members trained together equal members trained alone."""

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import optax
import pandas as pd
import pytest

from jaxsparse import engine, layers, models, population, sparsify
from jaxsparse.optim import population_optimizer

from conftest import assert_trees_close, method_settings, random_dataset, train_population

DENSE = sparsify.dense.dense()
GRID = dict(activation=("tanh", "relu", "sigmoid", "gelu"), dropout_rate=(0.0, 0.5),
            initializer=("fan_in_uniform", "kaiming_normal"), optimizer=("adam", "sgd"),
            learning_rate=(3e-3,), weight_decay=(1e-4,), momentum=(0.9,))


def train(model, table, data, epochs=1, batch_size=32, chunk_size=0):
  return train_population(model, DENSE, table, data, epochs, batch_size, chunk_size)


@pytest.fixture(scope="module")
def cnn_population():
  """16 CNN-s members mixing every per-member choice, trained 1 epoch together."""
  data = random_dataset(num_train=320)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table(GRID, num_seeds=1)
  assert len(table) == 32
  table = table.iloc[::2].reset_index(drop=True)  # 16 members, still mixing everything
  table["member"] = range(len(table))
  state, metrics = train(model, table, data)
  return data, model, table, state, metrics


@pytest.fixture(scope="module")
def trained_alone(cnn_population):
  """``index -> (state, noise)``: member ``index`` of ``cnn_population`` trained alone and
  its :func:`rounding_sensitivity`, each computed once per module (two tests read member 5)."""
  data, model, table, _, _ = cnn_population
  cache = {}

  def alone(index):
    if index not in cache:
      row = table.iloc[[index]].reset_index(drop=True)
      state, _ = train(model, row, data)
      cache[index] = state, rounding_sensitivity(model, row, data, state.params)
    return cache[index]
  return alone


def one_ulp_off(function):
  """``function`` with each output moved 1 ulp up or down (as a hash of its input's bits
  says), its derivative unchanged."""
  def nudged(x):
    fixed = lax.stop_gradient(x)
    exact = function(fixed)
    up = (lax.bitcast_convert_type(fixed, jnp.uint32) * np.uint32(2654435761)) >> 31 == 1
    off = jnp.where(up, jnp.nextafter(exact, np.float32(2)), jnp.nextafter(exact, np.float32(-2)))
    return function(x) + (off - exact)
  return nudged


def rounding_sensitivity(model, table, data, trained):
  """Per leaf and member of ``table``, how far its trained weights (``trained``) move under
  float32 rounding alone over these steps: the larger of two perturbations, its convolutions
  run with the other implementation (im2col matmuls or XLA's convolution: another order of
  sums) and its activation computed 1 ulp off. XLA:CPU computes tanh by other code paths in
  other fusions, a few ulp apart (the note below): a change to the banded convolution once
  moved a tanh member trained alone from itself in a population by 8.5e-5 in its first
  kernel, exactly what 1 ulp off does, while another order of sums moved it by 3e-8.

  Adam divides by the root of the squared-gradient average, so a gradient near zero whose
  rounding changes moves its weight by up to the learning rate per step: an exact claim
  cannot be tested bit for bit in float32, nor at one fixed tolerance for every member.
  """
  other = "xla" if layers.resolve_conv_implementation("auto") == "im2col" else "im2col"
  other_model = models.get_model(model.name, model.input_shape, 10, other)
  reordered = train_population(other_model, DENSE, table, data)[0].params
  original = layers.ACTIVATION_FUNCTIONS
  try:
    layers.ACTIVATION_FUNCTIONS = tuple(map(one_ulp_off, original))
    # A method of its own, so that the program is traced anew and cached apart.
    nudged = train_population(model, sparsify.dense.dense(), table, data)[0].params
  finally:
    layers.ACTIVATION_FUNCTIONS = original
  distance = lambda a, b: np.max(np.abs(np.asarray(a - b)).reshape(len(a), -1), axis=1)
  return jax.tree.map(lambda a, b, c: np.maximum(distance(a, b), distance(a, c)), trained,
                      reordered, nudged)


# The fast tier compares the ReLU member: it compiles at XLA's -O0, where XLA:CPU's tanh
# inside a vmapped switch lands 2-3 ulp from tanh alone on some CPUs (3e-7, identical at
# the default level; measured 2026-11-24), and Adam makes that 2.5e-4 in 10 steps. The
# slow tier compiles at the default level and compares the tanh member too.
@pytest.mark.parametrize("index", [5, *(pytest.param(i, marks=pytest.mark.slow)
                                        for i in (0, 11, 15))])
def test_member_in_population_equals_member_alone(cnn_population, trained_alone, index):
  """A member trained inside a population is the member trained alone: the same data order
  (its key, compared exactly) and the same weights up to float32 rounding. vmap changes
  the order of the sums in convolutions and matmuls, so the weights are compared at 10x
  the distance another order of the same sums makes over the same steps
  (:func:`rounding_sensitivity`), plus 2e-6. A wrong hyperparameter, initialisation,
  activation or data order moves them by orders of magnitude more."""
  _, _, _, state, _ = cnn_population
  alone, noise = trained_alone(index)
  np.testing.assert_array_equal(engine.member(state.key, index), engine.member(alone.key, 0))
  for path, leaf in jax.tree_util.tree_leaves_with_path(engine.member(state.params, index)):
    difference = float(jnp.max(jnp.abs(leaf - _leaf(alone.params, path, member=0))))
    tolerance = 10 * _leaf(noise, path, member=0) + 2e-6
    assert difference <= tolerance, (jax.tree_util.keystr(path), difference, tolerance)


@pytest.mark.slow
def test_alone_comparison_detects_another_learning_rate(cnn_population, trained_alone):
  """The tolerance of the test above is tight enough to see a 10 % change of one
  hyperparameter over one epoch."""
  data, model, table, state, _ = cnn_population
  row = table.iloc[[5]].reset_index(drop=True)
  changed = row.assign(learning_rate=row["learning_rate"] * 1.1)
  other, _ = train(model, changed, data)
  noise = trained_alone(5)[1]
  differences = [float(jnp.max(jnp.abs(leaf - _leaf(other.params, path, member=0))))
                 > 10 * _leaf(noise, path, member=0) + 2e-6
                 for path, leaf in jax.tree_util.tree_leaves_with_path(
                     engine.member(state.params, 5))]
  assert all(differences)


def _leaf(tree, path, member=None):
  for key in path:
    tree = tree[key.key]
  return tree if member is None else tree[member]


def test_members_differ(cnn_population):
  data, model, table, state, metrics = cnn_population
  kernels = state.params["Conv_0"]["kernel"]
  assert not np.allclose(kernels[0], kernels[1])
  hyper = population.member_hyperparameters(table)
  accuracy = engine.evaluate(engine.Program(model, DENSE, eval_batch_size=24), state, hyper,
                             jnp.asarray(data.test_images), jnp.asarray(data.test_labels))[
                                 "accuracy"]
  assert accuracy.shape == (16,)
  assert np.all((0 <= accuracy) & (accuracy <= 1))
  assert len(np.unique(np.asarray(accuracy))) > 1, "members with other hyperparameters differ"


def test_members_learn():
  """A population trained together learns the synthetic task (the label is the brightest
  of 10 bands): every member leaves chance behind and its training loss falls."""
  data = random_dataset(num_train=320)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table(dict(GRID, activation=("tanh",), dropout_rate=(0.0,),
                                       initializer=("kaiming_normal",), optimizer=("adam",)),
                                  num_seeds=4)
  hyper = population.member_hyperparameters(table)
  program = engine.Program(model, DENSE, eval_batch_size=64)
  evaluate = lambda members: np.asarray(engine.evaluate(
      program, members, hyper, jnp.asarray(data.test_images),
      jnp.asarray(data.test_labels))["accuracy"])
  initial = evaluate(engine.init_population(program, hyper))
  state, first = train_population(model, DENSE, table, data, epochs=1, batch_size=16)
  state, last = train_population(model, DENSE, table, data, epochs=5, batch_size=16,
                                 state=state)
  accuracy = evaluate(state)
  assert np.all(accuracy > 0.5) and np.all(initial < 0.25), (initial, accuracy)
  assert np.all(np.asarray(last["train_loss"]) < 0.5 * np.asarray(first["train_loss"]))


@pytest.mark.slow  # 19 s: three training programs
def test_shared_data_order_gives_every_member_the_same_batches(cnn_population):
  """With ``shared_order_seed`` the data order no longer depends on the member's seed:
  members that differ only in their seed and start from the same weights stay identical,
  while with their own orders (the default) they part. And a member trains as it would
  alone with the same shared seed."""
  data, model, table, _, _ = cnn_population
  row = table.iloc[[0]].reset_index(drop=True)
  pair = pd.concat([row, row.assign(seed=row["seed"] + 1)], ignore_index=True)
  start = engine.init_population(engine.Program(model, DENSE),
                                 population.member_hyperparameters(pair))
  same_weights = jax.tree.map(lambda leaf: jnp.stack([leaf[0], leaf[0]]), start.params)
  trained = {}
  for seed in (-1, 3):
    state = engine.init_population(engine.Program(model, DENSE),
                                   population.member_hyperparameters(pair), same_weights,
                                   start.batch_stats)
    trained[seed], _ = train_population(model, DENSE, pair, data, state=state,
                                        shared_order_seed=seed)
  first, second = (engine.member(trained[3].params, i) for i in (0, 1))
  assert_trees_close(first, second, rtol=1e-6, atol=1e-7)
  own_first, own_second = (engine.member(trained[-1].params, i) for i in (0, 1))
  kernel = lambda params: np.asarray(params["Conv_0"]["kernel"])
  assert np.abs(kernel(own_first) - kernel(own_second)).max() > 1e-3
  alone_state = engine.init_population(engine.Program(model, DENSE),
                                       population.member_hyperparameters(row),
                                       jax.tree.map(lambda leaf: leaf[:1], same_weights),
                                       start.batch_stats)
  alone, _ = train_population(model, DENSE, row, data, state=alone_state, shared_order_seed=3)
  assert_trees_close(engine.member(alone.params, 0), first, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("chunk_size, shares", [(3, [True] * 6), (4, [False] * 4 + [True] * 2)])
def test_members_are_chunked_by_activation_and_returned_in_their_order(chunk_size, shares):
  """An interleaved grid (tanh, relu, tanh, relu, ...) is chunked in the order of its
  activations: chunks of 3 are (t, t, t), (r, r, r) and each computes its one activation;
  chunks of 4 are (t, t, t, r) + the rest (r, r). Each member's output comes back at its
  own position."""
  grid = {**GRID, "activation": ("relu", "tanh"), "dropout_rate": (0.0,),
          "initializer": ("kaiming_normal",), "optimizer": ("adam",)}
  table = population.member_table(grid, num_seeds=3)
  table = table.sort_values(["seed", "configuration"]).reset_index(drop=True)
  assert list(table["activation"]) == ["relu", "tanh"] * 3
  hyper = population.member_hyperparameters(table)

  def member_fn(state, member_hyper):
    return state * 10, member_hyper.group_activation

  outputs, shared = jax.jit(
      lambda states: engine._map_members(member_fn, states, hyper, chunk_size))(jnp.arange(6.0))
  np.testing.assert_array_equal(outputs, np.arange(6.0) * 10)
  np.testing.assert_array_equal(shared, np.where(shares_by_member(table, shares),
                                                 np.asarray(hyper.activation), -1))


def shares_by_member(table, shares_in_sorted_order):
  """Whether each member's chunk shares an activation, given per position of the members
  sorted (stably) by activation index."""
  order = np.argsort([layers.ACTIVATIONS.index(a) for a in table["activation"]], kind="stable")
  shares = np.empty(len(table), bool)
  shares[order] = shares_in_sorted_order
  return shares


@pytest.mark.slow
def test_chunked_population_equals_vmapped_population(cnn_population):
  """Chunks of 4 share their activation (each computes only it), chunks of 3 include one
  that mixes two, the whole population mixes them: the same members every way."""
  data, model, table, state, _ = cnn_population
  subset = table.iloc[:6].reset_index(drop=True)
  assert list(subset["activation"]) == ["tanh"] * 4 + ["relu"] * 2
  whole, _ = train(model, subset, data)
  noise = rounding_sensitivity(model, subset, data, whole.params)
  for chunk_size in (4, 3):
    chunked, _ = train(model, subset, data, chunk_size=chunk_size)
    for path, leaf in jax.tree_util.tree_leaves_with_path(whole.params):
      difference = np.abs(np.asarray(leaf - _leaf(chunked.params, path))).reshape(len(leaf), -1)
      tolerance = 10 * _leaf(noise, path) + 2e-6  # per member, as in the test above
      assert np.all(difference.max(axis=1) <= tolerance), (
          chunk_size, jax.tree_util.keystr(path), difference.max(axis=1), tolerance)


@pytest.mark.slow
def test_batchnorm_member_equals_member_alone():
  data = random_dataset(num_train=96, shape=(8, 8, 3))
  model = models.get_model("resnet20", data.input_shape, width=0.25)
  grid = dict(GRID, activation=("relu", "tanh"), dropout_rate=(0.0,), initializer=("kaiming_normal",))
  table = population.member_table(grid, num_seeds=1)
  state, _ = train(model, table, data, batch_size=16)
  assert state.batch_stats, "ResNet members must carry BatchNorm statistics"
  index = 2  # tanh, Adam
  alone, _ = train(model, table.iloc[[index]].reset_index(drop=True), data, batch_size=16)
  # Adam divides by sqrt(v): float rounding of near-zero gradients moves a
  # few weights by ~1e-5 after 6 steps, hence a looser tolerance than for CNN-s.
  assert_trees_close(engine.member(state.params, index), engine.member(alone.params, 0),
                     rtol=1e-4, atol=1e-4)
  assert_trees_close(engine.member(state.batch_stats, index),
                     engine.member(alone.batch_stats, 0), rtol=1e-4, atol=1e-4)


def test_masked_weights_stay_zero():
  data = random_dataset(num_train=64)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table(dict(GRID, activation=("tanh",), dropout_rate=(0.0,),
                                       initializer=("fan_in_uniform",)), num_seeds=1)
  hyper = population.member_hyperparameters(table)
  program = engine.Program(model, DENSE, 16)
  state = engine.init_population(program, hyper)
  mask = (jax.random.uniform(jax.random.PRNGKey(0), state.masks["Dense_0"]["kernel"].shape) > 0.7)
  masks = dict(state.masks, Dense_0=dict(state.masks["Dense_0"], kernel=mask.astype(jnp.float32)))
  state = state._replace(sparsity_state=state.sparsity_state._replace(masks=masks))
  state, _ = engine.train_epoch(program, state, hyper, jnp.asarray(data.train_images),
                                jnp.asarray(data.train_labels))
  kernel = state.params["Dense_0"]["kernel"]
  assert np.all(np.asarray(kernel)[~np.asarray(mask)] == 0)
  assert np.all(np.asarray(kernel)[np.asarray(mask)] != 0)


@pytest.mark.parametrize("family,reference", [
    (0, lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))),
    (1, lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=0.9))),
])
def test_population_optimizer_matches_optax(family, reference):
  params = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3)}
  ours = population_optimizer(jnp.asarray(family), 1e-2, 1e-3, 0.9)
  theirs = reference(1e-2, 1e-3)
  our_state, their_state = ours.init(params), theirs.init(params)
  our_params = their_params = params
  for step in range(4):
    grads = {"w": jnp.sin(our_params["w"] * (step + 1))}
    updates, our_state = ours.update(grads, our_state, our_params)
    our_params = optax.apply_updates(our_params, updates)
    updates, their_state = theirs.update(grads, their_state, their_params)
    their_params = optax.apply_updates(their_params, updates)
  np.testing.assert_allclose(our_params["w"], their_params["w"], rtol=1e-6)


@pytest.mark.slow
def test_population_with_one_activation_and_no_dropout_compiles_the_shortcut_with_same_result():
  data = random_dataset(num_train=128)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table(dict(GRID, activation=("relu",), dropout_rate=(0.0,)),
                                  num_seeds=1)
  hyper = population.member_hyperparameters(table)
  assert hyper.activations_used == (population.CATEGORICAL_FIELDS["activation"].index("relu"),)
  assert not hyper.uses_dropout and hyper.compiled_activation == hyper.activations_used[0]
  general = hyper.replace(activations_used=tuple(range(4)), uses_dropout=True)
  images, labels = jnp.asarray(data.train_images), jnp.asarray(data.train_labels)
  results = []
  for member_hyper in (hyper, general):
    program = engine.Program(model, DENSE, 32)
    state = engine.init_population(program, member_hyper)
    state, _ = engine.train_epoch(program, state, member_hyper, images, labels)
    results.append(state.params)
  assert_trees_close(results[0], results[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method_name", ["gumbel_softmax",
                                         pytest.param("edge_popup", marks=pytest.mark.slow)])
def test_weight_decay_does_not_reach_a_frozen_weight_methods_variables(method_name):
  """Weight decay regularises the model's weights; a method that trains only its own
  variables over frozen weights must not feel it: members that differ only in weight decay
  end up identical (with decay on the method's variables they would not)."""
  data = random_dataset(num_train=128)
  model = models.get_model("lenet_300_100", data.input_shape)
  grid = dict(GRID, activation=("relu",), dropout_rate=(0.0,), initializer=("kaiming_normal",),
              optimizer=("adam", "sgd"), weight_decay=(0.0, 1e-2), sparsity=(0.5,))
  table = population.member_table(grid, num_seeds=1)
  assert list(table["weight_decay"]) == [0.0, 1e-2, 0.0, 1e-2]
  schedule = sparsify.TrainingSchedule(steps_per_epoch=4, num_examples=128, num_steps=8)
  method = sparsify.get_method(method_settings(method_name), schedule)
  state, _ = train_population(model, method, table, data, epochs=2)
  for no_decay, decay in ((0, 1), (2, 3)):
    assert_trees_close(engine.member(state, no_decay), engine.member(state, decay))
  opted_in = method._replace(weight_decay_on_method_variables=True)
  state, _ = train_population(model, opted_in, table, data, epochs=2)
  trainable = sparsify.trainable(state.sparsity_state)
  assert not np.allclose(jax.tree.leaves(engine.member(trainable, 0))[0],
                         jax.tree.leaves(engine.member(trainable, 1))[0])


@pytest.mark.parametrize("method_name,settings,options", [
    ("magnitude", {}, engine.CPU_TRAINING_OPTIONS),
    ("gumbel_softmax", {}, engine.CPU_TRAINING_OPTIONS),
    ("variational_dropout", {}, {}), ("variational_dropout_straight_through", {}, {}),
    # One weight sample per step: noisy weights, no 'log_alpha' for the layers.
    ("variational_dropout", {"weight_noise_sampling": "per_batch"},
     engine.CPU_TRAINING_OPTIONS)])
def test_training_compiles_without_reduction_fusions_unless_the_method_has_weight_noise(
    method_name, settings, options):
  """On the CPU a method's training compiles with XLA's reduction fusions off, unless its
  forward pass gives the layers weight noise (which the method declares, and which its
  forward pass shows as a 'log_alpha' collection)."""
  schedule = sparsify.TrainingSchedule(steps_per_epoch=4, num_examples=128, num_steps=8)
  method = sparsify.get_method(method_settings(method_name, **settings), schedule)
  assert engine.training_options(method) == options
  params = {"Dense_0": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
  target = sparsify.Target(jnp.asarray(0.5), {})
  state = method.init(params, jax.random.key(0), target)
  _, extra, _ = method.forward(state, params, jax.random.key(1), jnp.asarray(0), target)
  assert method.weight_noise == ("log_alpha" in extra)


def test_the_program_with_cpu_training_options_is_traced_in_its_max_pool_form():
  """train_epoch's program with XLA's default options traces max-pools jointly, the one with
  CPU_TRAINING_OPTIONS rows then columns: here a stand-in epoch function with the engine's
  signature returns the gradient of a max-pool over a window of three tied maxima."""
  def epoch_function(program, population, hyper, images, labels, first_step=0):
    return jax.grad(lambda x: layers.max_pool_2x2(x).sum())(population)

  default, with_options = engine.train_epoch_programs(epoch_function)
  window = lambda: jnp.asarray([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 2, 2, 1)
  np.testing.assert_allclose(default(None, window(), None, None, None)[0, ..., 0],
                             [[1 / 3, 1 / 3], [1 / 3, 0]], rtol=1e-6)
  np.testing.assert_allclose(with_options(None, window(), None, None, None)[0, ..., 0],
                             [[1 / 4, 1 / 2], [1 / 4, 0]], rtol=1e-6)


def test_training_keeps_xla_defaults_where_xla_does_not_know_the_options(monkeypatch):
  """An XLA without the experimental flag (another jaxlib) trains with its defaults rather
  than failing to compile."""
  schedule = sparsify.TrainingSchedule(steps_per_epoch=4, num_examples=128, num_steps=8)
  method = sparsify.get_method(method_settings("magnitude"), schedule)
  monkeypatch.setattr(engine, "CPU_TRAINING_OPTIONS", {"xla_cpu_no_such_flag": "x"})
  engine._knows_cpu_training_options.cache_clear()
  try:
    assert engine.training_options(method) == {}
  finally:
    engine._knows_cpu_training_options.cache_clear()
