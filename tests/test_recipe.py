"""The training recipe (jaxsparse.optim.Recipe): schedules, label smoothing, weight decay
styles and Nesterov momentum, against optax, numpy and members trained alone."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse import config as config_lib
from jaxsparse import engine, models, optim, population, sparsify

from conftest import assert_trees_close, random_dataset, train_population

DENSE = sparsify.dense.dense()
PEAKS = (3e-3, 1e-3, 3e-4)


def test_warmup_cosine_schedule_equals_optax_for_every_members_peak():
  config = config_lib.default_config()
  config.training.num_epochs = 5
  config.training.lr_schedule = "warmup_cosine"
  config.training.warmup_epochs = 1.5
  config.training.final_lr_fraction = 0.1
  config_lib.validate_config(config)
  recipe = config_lib.recipe(config, steps_per_epoch=20)
  assert (recipe.total_steps, recipe.warmup_steps) == (100, 30)
  shape = optim.schedule_shape(recipe)
  for peak in PEAKS:
    reference = optax.warmup_cosine_decay_schedule(0.0, peak, 30, 100, end_value=0.1 * peak)
    for step in (0, 1, 15, 29, 30, 31, 64, 99, 100, 140):
      np.testing.assert_allclose(peak * shape(step), reference(step), rtol=1e-6, atol=1e-12)
  # The cosine's formula, by hand: half-way through the decay the rate is (1 + 0.1) / 2.
  np.testing.assert_allclose(shape(65), 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5)), rtol=1e-6)


def test_step_schedule_equals_optax_and_counts_epochs_in_steps():
  config = config_lib.default_config()
  config.training.num_epochs = 6
  config.training.lr_schedule = "step"
  config.training.lr_decay_epochs = (2, 4.5)
  config.training.lr_decay_factor = 0.2
  config_lib.validate_config(config)
  recipe = config_lib.recipe(config, steps_per_epoch=10)
  assert recipe.decay_steps == (20, 45)
  shape = optim.schedule_shape(recipe)
  for peak in PEAKS:
    reference = optax.piecewise_constant_schedule(peak, {20: 0.2, 45: 0.2})
    for step in (0, 19, 20, 44, 45, 59):
      np.testing.assert_allclose(peak * shape(step), reference(step), rtol=1e-6)
  assert float(optim.schedule_shape(optim.Recipe())(12345)) == 1.0


def test_label_smoothing_loss_equals_numpy():
  logits = jax.random.normal(jax.random.PRNGKey(0), (8, 10)) * 3
  labels = jnp.arange(8) % 10
  alpha = 0.1
  z = np.asarray(logits, np.float64)
  log_p = z - z.max(1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
  targets = np.full((8, 10), alpha / 10) + (1 - alpha) * np.eye(10)[np.asarray(labels)]
  expected = -(targets * log_p).sum(1).mean()
  np.testing.assert_allclose(engine.cross_entropy(logits, labels, alpha), expected, rtol=1e-5)
  np.testing.assert_allclose(engine.cross_entropy(logits, labels, 0.0),
                             -log_p[np.arange(8), np.asarray(labels)].mean(), rtol=1e-5)


def _run(ours, theirs, params, steps=5):
  our_state, their_state = ours.init(params), theirs.init(params)
  our_params = their_params = params
  for step in range(steps):
    grads = jax.tree.map(lambda w: jnp.sin(w * (step + 1)) + 0.1, our_params)
    updates, our_state = ours(step).update(grads, our_state, our_params)
    our_params = optax.apply_updates(our_params, updates)
    updates, their_state = theirs.update(grads, their_state, their_params)
    their_params = optax.apply_updates(their_params, updates)
  return our_params, their_params


PARAMS = {"kernel": jnp.linspace(-1, 1, 6).reshape(2, 3), "bias": jnp.linspace(0.5, 1, 3)}
COSINE = optim.Recipe(schedule="warmup_cosine", total_steps=5, warmup_steps=2,
                      final_fraction=0.1)


@pytest.mark.parametrize("biases", [True, False])
def test_decoupled_weight_decay_with_a_schedule_equals_optax_adamw(biases):
  """AdamW: decay added after Adam's scaling and multiplied by the scheduled rate; with
  ``decay_biases_and_norms=False`` only the kernel (rank > 1) decays."""
  recipe = COSINE._replace(weight_decay_style="decoupled", decay_biases_and_norms=biases)
  mask = lambda tree: optim.decayed((tree, ()), recipe, False)[0]
  ours = lambda step: optim.population_optimizer(
      jnp.asarray(0), 1e-2 * optim.schedule_shape(recipe)(step), 0.05, 0.9,
      decay_mask=mask, recipe=recipe)
  schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 5, end_value=1e-3)
  theirs = optax.adamw(schedule, weight_decay=0.05,
                       mask=None if biases else {"kernel": True, "bias": False})
  our_params, their_params = _run(_Stateful(ours), theirs, PARAMS)
  for name in PARAMS:
    np.testing.assert_allclose(our_params[name], their_params[name], rtol=1e-6, atol=1e-8)


def test_nesterov_sgd_with_coupled_decay_equals_optax():
  recipe = optim.Recipe(nesterov=True, decay_biases_and_norms=False)
  mask = lambda tree: optim.decayed((tree, ()), recipe, False)[0]
  ours = lambda step: optim.population_optimizer(jnp.asarray(1), 1e-2, 1e-3, 0.9,
                                                 decay_mask=mask, recipe=recipe)
  theirs = optax.chain(optax.masked(optax.add_decayed_weights(1e-3),
                                    {"kernel": True, "bias": False}),
                       optax.sgd(1e-2, momentum=0.9, nesterov=True))
  our_params, their_params = _run(_Stateful(ours), theirs, PARAMS)
  for name in PARAMS:
    np.testing.assert_allclose(our_params[name], their_params[name], rtol=1e-6, atol=1e-8)


class _Stateful:
  """The population optimizer rebuilt at every step (as the engine does, with the step's
  scheduled rate); its state's structure does not depend on the step."""

  def __init__(self, make):
    self.make = make
    self.init = make(0).init

  def __call__(self, step):
    return self.make(step)


def _table(**grid):
  grid = dict(dict(activation=("relu",), dropout_rate=(0.0,), initializer=("kaiming_normal",),
                   optimizer=("adam", "sgd"), learning_rate=(3e-3, 1e-3), weight_decay=(1e-3,),
                   momentum=(0.9,)), **grid)
  return population.member_table(grid, num_seeds=1)


def test_step_schedule_in_the_engine_counts_global_steps_across_epochs():
  """Two epochs with the rate halved at the epoch boundary equal one epoch at the peak
  rate and one at half of it (the learning rate enters Adam and SGD after their
  statistics, so the halved epoch can be given as another member table)."""
  data = random_dataset(num_train=96, shape=(10, 10, 1))
  model = models.get_model("lenet_300_100", data.input_shape)
  table = _table()
  halved = table.assign(learning_rate=table["learning_rate"] / 2)
  recipe = optim.Recipe(schedule="step", decay_steps=(3,), decay_factor=0.5)
  scheduled, _ = train_population(model, DENSE, table, data, epochs=2, recipe=recipe)
  by_hand, _ = train_population(model, DENSE, table, data, epochs=1)
  by_hand, _ = train_population(model, DENSE, halved, data, epochs=1, state=by_hand)
  assert_trees_close(scheduled.params, by_hand.params, rtol=1e-6, atol=1e-7)
  constant, _ = train_population(model, DENSE, table, data, epochs=2)
  assert not np.allclose(constant.params["Dense_0"]["kernel"],
                         scheduled.params["Dense_0"]["kernel"])


@pytest.mark.slow
def test_member_with_the_full_recipe_in_a_population_equals_the_member_alone():
  data = random_dataset(num_train=128, shape=(10, 10, 1))
  model = models.get_model("lenet_300_100", data.input_shape)
  table = _table()
  recipe = optim.Recipe(schedule="warmup_cosine", total_steps=8, warmup_steps=2,
                        final_fraction=0.0, label_smoothing=0.1,
                        weight_decay_style="decoupled", decay_biases_and_norms=False,
                        nesterov=True)
  together, _ = train_population(model, DENSE, table, data, epochs=2, recipe=recipe)
  for index in range(len(table)):
    alone, _ = train_population(model, DENSE, table.iloc[[index]], data, epochs=2,
                                recipe=recipe)
    assert_trees_close(engine.member(together.params, index), engine.member(alone.params, 0),
                       rtol=1e-5, atol=1e-6)
