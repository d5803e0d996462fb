"""Edge-popup: exact top-k supermasks of frozen weights, learned through the scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import engine, masks, models, population, sparsify

from conftest import SINGLE, assert_trees_close, method_settings, random_dataset, train_population



@pytest.mark.slow
def test_scores_learn_exact_per_member_sparsity_over_frozen_weights():
  data = random_dataset(num_train=128)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table({**SINGLE, "sparsity": (0.5, 0.9), "learning_rate": (0.05,)},
                                  num_seeds=1)
  method = sparsify.get_method(method_settings("edge_popup"), sparsify.TrainingSchedule(8))
  initial = engine.init_population(engine.Program(model, method),
                                   population.member_hyperparameters(table))
  state, _ = train_population(model, method, table, data, epochs=2, batch_size=16)
  assert_trees_close(initial.params, state.params)
  scores = state.sparsity_state.trainable
  assert not np.allclose(scores["Dense_0"]["kernel"], initial.sparsity_state.trainable[
      "Dense_0"]["kernel"]), "the straight-through gradient reaches the scores"
  for member, target in enumerate((0.5, 0.9)):
    for name, value in masks.layer_sparsity(engine.member(state.masks, member)).items():
      size = engine.member(state.masks, member)[name.split("/")[0]]["kernel"].size
      assert value == (round(target * size)) / size, (name, value)
    # The mask keeps the largest |score| of each tensor.
    kernel_scores = np.abs(np.asarray(scores["Conv_1"]["kernel"][member])).ravel()
    kept = np.asarray(state.masks["Conv_1"]["kernel"][member]).ravel() == 1
    assert kernel_scores[kept].min() >= kernel_scores[~kept].max()


def test_straight_through_gradient_equals_the_masked_weight_gradient():
  params = {"Dense_0": {"kernel": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "bias": jnp.zeros(2)}}
  method = sparsify.get_method(method_settings("edge_popup"), sparsify.TrainingSchedule(1))
  state = method.init(params, jax.random.PRNGKey(0), sparsify.Target(0.5))

  def loss(scores):
    weights, _, _ = method.forward(state._replace(trainable=scores), params,
                                   jax.random.PRNGKey(1), 0, sparsify.Target(0.5))
    return jnp.sum(weights["Dense_0"]["kernel"] * jnp.array([[1.0, 2.0], [3.0, 4.0]]))

  gradient = jax.grad(loss)(state.trainable)["Dense_0"]["kernel"]
  sign = np.sign(state.trainable["Dense_0"]["kernel"])
  np.testing.assert_allclose(gradient, params["Dense_0"]["kernel"] * np.array(
      [[1.0, 2.0], [3.0, 4.0]]) * sign, rtol=1e-6)
