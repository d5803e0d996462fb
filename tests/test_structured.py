"""Structured filter pruning: exact channel counts, shrinking preserves outputs, FLOP counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import masks, models, population, sparsify, structured

from conftest import SINGLE, method_settings, random_dataset, train_population


def random_member(name, seed=0):
  model = models.get_model(name, (28, 28, 1))
  variables = models.init_variables(model, jax.random.PRNGKey(seed))
  # Non-trivial BatchNorm state, so that a wrongly kept statistic would show.
  variables["batch_stats"] = jax.tree.map(
      lambda s: s + jax.random.uniform(jax.random.PRNGKey(seed + 1), s.shape),
      variables["batch_stats"])
  variables["params"] = jax.tree.map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(seed + 2), p.shape),
      variables["params"])
  return model, variables


def test_channel_masks_remove_the_smallest_filters_exactly():
  model, variables = random_member("cnn_s")
  params = variables["params"]
  pruned = structured.channel_masks(params, masks.dense_masks(params), 0.5)
  for group in structured.channel_groups(params):
    producer_mask = structured._get(pruned, group.producer)["kernel"]
    channels = producer_mask.shape[-1]
    kept = np.asarray(producer_mask.reshape(-1, channels).any(axis=0))
    assert kept.sum() == channels - round(0.5 * channels)
    norms = np.asarray(structured.filter_l1_norms(structured._get(params, group.producer)["kernel"]))
    assert norms[kept].min() >= norms[~kept].max()
  assert [g.producer for g in structured.channel_groups(params)] == [
      ("Conv_0",), ("Conv_1",), ("Conv_2",), ("Dense_0",)]


@pytest.mark.parametrize("name,activation", [("cnn_s", 2), ("cnn_s", 0),
                                             pytest.param("resnet20", 1, marks=pytest.mark.slow)])
def test_shrunk_model_gives_the_outputs_of_the_masked_model(name, activation):
  model, variables = random_member(name)
  params = variables["params"]
  pruned = structured.channel_masks(params, masks.dense_masks(params), 0.6)
  images = jax.random.normal(jax.random.PRNGKey(5), (4, 28, 28, 1))
  masked_logits, _ = models.apply_model(
      model, {"params": masks.apply_masks(params, pruned),
              "batch_stats": variables["batch_stats"]}, images, activation)
  small_model, small_params, small_stats = structured.shrink(
      model, params, variables["batch_stats"], pruned)
  small_logits, _ = models.apply_model(
      small_model, {"params": small_params, "batch_stats": small_stats}, images, activation)
  np.testing.assert_allclose(small_logits, masked_logits, rtol=1e-4, atol=1e-5)
  assert models.count_parameters(small_params) < models.count_parameters(params)
  # The shrunk model is a normal model: it initialises to the same shapes.
  fresh = models.init_variables(small_model, jax.random.PRNGKey(0))["params"]
  assert jax.tree.map(jnp.shape, fresh) == jax.tree.map(jnp.shape, small_params)


def test_multiply_adds_of_cnn_s_by_hand():
  model, variables = random_member("cnn_s")
  # conv 24x24 x 200, conv 8x8 x 1200, conv 3x3 x 96, dense 720, dense 200.
  expected = 576 * 200 + 64 * 1200 + 9 * 96 + 720 + 200
  assert structured.count_multiply_adds(model, variables) == expected
  pruned = structured.channel_masks(variables["params"], masks.dense_masks(variables["params"]),
                                    0.5)
  small = structured.shrink(model, variables["params"], variables["batch_stats"], pruned)
  masked = {**variables, "params": masks.apply_masks(variables["params"], pruned)}
  # Masked weights count as removed, so the masked and the shrunk model cost the same.
  assert structured.count_multiply_adds(model, masked) == structured.count_multiply_adds(
      small[0], {"params": small[1], "batch_stats": small[2]}) < expected


@pytest.mark.slow
def test_filter_pruning_population_has_each_members_channel_sparsity():
  data = random_dataset(num_train=64)
  model = models.get_model("cnn_s", data.input_shape)
  table = population.member_table({**SINGLE, "sparsity": (0.25, 0.5)}, num_seeds=1)
  method = sparsify.get_method(method_settings("filter", start_epoch=1),
                               sparsify.TrainingSchedule(4))
  state, _ = train_population(model, method, table, data, epochs=2, batch_size=16)
  for member, target in enumerate((0.25, 0.5)):
    kernel_mask = np.asarray(state.masks["Conv_1"]["kernel"][member])
    assert kernel_mask.any(axis=(0, 1, 2)).sum() == 6 - round(target * 6)
    params = jax.tree.map(lambda leaf: leaf[member], state.params)
    assert np.all(np.asarray(params["Conv_1"]["kernel"])[..., ~kernel_mask.any(axis=(0, 1, 2))] == 0)
