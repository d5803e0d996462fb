"""Gumbel-softmax mask learning: samples, straight-through gradients, frozen weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import engine, masks, models, population, sparsify
from jaxsparse.sparsify import gumbel_softmax as gs

from conftest import (SINGLE, assert_same_structure, assert_trees_close, method_settings,
                     random_dataset, train_population)



def test_keep_rate_of_samples_matches_sigmoid_of_logit():
  logits = jnp.array([-3.0, -1.0, 0.0, 0.5, 2.0])
  samples = jax.vmap(lambda k: gs.sample_mask(k, logits, 0.5))(
      jax.random.split(jax.random.PRNGKey(0), 40_000))
  assert set(np.unique(np.asarray(samples))) <= {0.0, 1.0}
  np.testing.assert_allclose(samples.mean(0), jax.nn.sigmoid(logits), atol=0.01)


def test_straight_through_gradient_reaches_the_logits():
  logits = jnp.array([-1.0, 0.0, 1.0])
  key = jax.random.PRNGKey(3)
  weights = jnp.array([1.0, 2.0, 3.0])
  gradient = jax.grad(lambda l: jnp.sum(gs.sample_mask(key, l, 0.5) * weights))(logits)
  # The gradient is that of the soft sample sigmoid((logit + noise) / tau).
  uniform = jax.random.uniform(key, (3,), minval=1e-6, maxval=1 - 1e-6)
  soft = jax.nn.sigmoid((logits + jnp.log(uniform) - jnp.log1p(-uniform)) / 0.5)
  np.testing.assert_allclose(gradient, weights * soft * (1 - soft) / 0.5, rtol=1e-5)
  assert np.all(np.asarray(gradient) > 0)


@pytest.fixture(scope="module")
def trained():
  data = random_dataset(num_train=128)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table({**SINGLE, "sparsity": (0.5, 0.8), "learning_rate": (0.5,)},
                                  num_seeds=1)
  results = {}
  for rescale in (True, False):
    method = sparsify.get_method(
        method_settings("gumbel_softmax", rescale=rescale, sparsity_penalty=50.0),
        sparsify.TrainingSchedule(8, 128, 24))
    state, _ = train_population(model, method, table, data, epochs=3, batch_size=16)
    results[rescale] = method, state
  initial = engine.init_population(engine.Program(model, results[True][0]),
                                   population.member_hyperparameters(table))
  return data, model, table, initial, results


@pytest.mark.slow
def test_weights_stay_frozen_and_masks_are_the_most_probable(trained):
  _, _, _, initial, results = trained
  method, state = results[True]
  assert_trees_close(initial.params, state.params)
  logits = state.sparsity_state.trainable["logits"]
  assert_same_structure(state.masks, logits)
  for mask, logit in zip(jax.tree.leaves(state.masks), jax.tree.leaves(logits)):
    np.testing.assert_array_equal(mask, np.asarray(logit) > 0)
  assert not np.allclose(jax.tree.leaves(logits)[0], gs.INITIAL_LOGIT), "logits learn"


@pytest.mark.slow
def test_penalty_pulls_sparsity_towards_each_target(trained):
  _, _, _, _, results = trained
  _, state = results[True]
  achieved = np.asarray(jax.vmap(masks.sparsity)(state.masks))
  assert achieved[1] > achieved[0] > 0.1, achieved


@pytest.mark.slow
def test_rescaling_is_switchable_and_learned(trained):
  _, _, _, _, results = trained
  scales = results[True][1].sparsity_state.trainable["scales"]
  assert scales["Conv_0"]["bias"] is None and scales["Conv_0"]["kernel"].shape == (2,)
  assert not np.allclose(scales["Dense_0"]["kernel"], 1.0)
  assert "scales" not in results[False][1].sparsity_state.trainable


@pytest.mark.slow
def test_evaluation_uses_mask_and_scale(trained):
  data, model, table, _, results = trained
  method, state = results[True]
  hyper = population.member_hyperparameters(table)
  images, labels = jnp.asarray(data.test_images), jnp.asarray(data.test_labels)
  scales = state.sparsity_state.trainable["scales"]
  def rescaled(params, kept, scale):
    return jax.tree.map(lambda m, w, s: w if m is None else w * m * s, kept, params, scale,
                        is_leaf=lambda x: x is None)

  weights = jax.vmap(rescaled)(state.params, state.masks, scales)
  dense = sparsify.dense.dense()
  plain = state._replace(params=weights,
                         sparsity_state=sparsify.dense.DenseState(state.masks))
  np.testing.assert_allclose(
      engine.evaluate(engine.Program(model, method), state, hyper, images, labels)["loss"],
      engine.evaluate(engine.Program(model, dense), plain, hyper, images, labels)["loss"],
      rtol=1e-5)


@pytest.mark.slow  # two population trainings; the fast tier checks scale_method_updates
def test_logits_and_scales_learn_at_their_own_rates_from_their_initial_logit():
  """Dupont et al.'s code: SGD with the logits at 50 and the scales at 1e-3, logits from 0.
  One SGD step moves a variable by -rate * gradient, so between two runs that differ only in
  the logits' rate, the logits' moves scale with it and the scales' moves are identical."""
  data = random_dataset(num_train=16)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table({**SINGLE, "optimizer": ("sgd",), "learning_rate": (1e-3,)},
                                  num_seeds=1)
  moves = {}
  for logit_scale in (5e4, 1e4):
    method = sparsify.get_method(
        method_settings("gumbel_softmax", initial_logit=0.0, temperature_start=1.0,
                        temperature_end=1.0, trainable_learning_rate_scale=logit_scale,
                        scales_learning_rate_scale=1.0),
        sparsify.TrainingSchedule(1, 16, 1))
    state, _ = train_population(model, method, table, data, epochs=1, batch_size=16)
    trainable = state.sparsity_state.trainable
    moves[logit_scale] = (np.asarray(trainable["logits"]["Dense_0"]["kernel"]),
                          np.asarray(trainable["scales"]["Dense_0"]["kernel"]) - 1.0)
  (logits_fast, scale_fast), (logits_slow, scale_slow) = moves[5e4], moves[1e4]
  assert np.abs(logits_slow).max() > 0
  np.testing.assert_allclose(logits_fast, 5.0 * logits_slow, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(scale_fast, scale_slow, rtol=1e-5)
  assert 0 < np.abs(scale_fast).max() < 1e-2


def test_scale_method_updates_per_entry_or_for_all():
  updates = {"logits": {"a": jnp.ones(3), "b": None}, "scales": {"a": jnp.ones(())}}
  per_entry = engine.scale_method_updates(updates, (("logits", 50.0), ("scales", 1e-3)))
  np.testing.assert_array_equal(per_entry["logits"]["a"], np.full(3, 50.0))
  assert per_entry["logits"]["b"] is None
  np.testing.assert_allclose(per_entry["scales"]["a"], 1e-3)
  everything = engine.scale_method_updates(updates, 2.0)
  np.testing.assert_array_equal(everything["logits"]["a"], np.full(3, 2.0))
  assert engine.scale_method_updates(updates, 1.0) is updates
