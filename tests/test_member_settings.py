"""Method settings swept per member (config.population.method_grid).

A population whose members differ in a method setting (Gumbel-softmax's
temperature, variational dropout's KL weight, magnitude pruning's schedule)
trains in one program, and each member equals the same member trained alone
with that value as the config's setting.
"""

import jax
import numpy as np
import pytest

from jaxsparse import masks, models, population, sparsify

from conftest import (SINGLE, assert_same_structure, assert_trees_close, method_settings,
                     random_dataset, train_population)

EPOCHS, BATCH_SIZE, NUM_TRAIN = 2, 16, 64
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE

# (method, settings shared by all members, the swept setting, its values, the grid's sparsity)
SWEEPS = [
    ("gumbel_softmax", dict(sparsity_penalty=20.0), "temperature_end", (1.0, 0.05), 0.5),
    ("variational_dropout", dict(end_epoch=1), "kl_weight", (1.0, 1000.0), 0.0),
    ("magnitude", dict(schedule="gradual", update_every=1), "end_epoch", (1, 2), 0.8),
]


def schedule():
  return sparsify.TrainingSchedule(STEPS_PER_EPOCH, NUM_TRAIN, EPOCHS * STEPS_PER_EPOCH)


def train(method, table, data, model):
  state, _ = train_population(model, method, table, data, epochs=EPOCHS, batch_size=BATCH_SIZE)
  return state


@pytest.mark.slow
@pytest.mark.parametrize("name, shared, field, values, sparsity", SWEEPS,
                         ids=[sweep[0] for sweep in SWEEPS])
def test_swept_member_equals_the_member_trained_alone(name, shared, field, values, sparsity):
  data = random_dataset(num_train=NUM_TRAIN)
  model = models.get_model("cnn_s", data.input_shape)
  grid = {**SINGLE, "sparsity": (sparsity,), "learning_rate": (0.01,)}
  table = population.member_table(grid, num_seeds=1, method_grid={field: values})
  assert list(table[field]) == list(values)
  together = train(sparsify.get_method(method_settings(name, **shared), schedule()), table, data,
                   model)

  alone_table = population.member_table(grid, num_seeds=1)
  for index, value in enumerate(values):
    method = sparsify.get_method(method_settings(name, **shared, **{field: value}), schedule())
    alone = train(method, alone_table, data, model)
    member = jax.tree.map(lambda leaf: leaf[index:index + 1], together)
    assert_trees_close(member.sparsity_state, alone.sparsity_state, rtol=2e-4, atol=2e-5)
    assert_trees_close(member.params, alone.params, rtol=2e-4, atol=2e-5)

  # The setting matters: the members differ.
  first, second = (jax.tree.map(lambda leaf, i=i: leaf[i], together.sparsity_state)
                   for i in (0, 1))
  assert_same_structure(first, second)
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(first),
                                                    jax.tree.leaves(second)))


@pytest.mark.slow
def test_gradual_schedule_per_member_reaches_the_target_at_each_members_end():
  data = random_dataset(num_train=NUM_TRAIN)
  model = models.get_model("cnn_s", data.input_shape)
  method = sparsify.get_method(method_settings("magnitude", schedule="gradual", update_every=1),
                               schedule())
  table = population.member_table({**SINGLE, "sparsity": (0.8,)}, num_seeds=1,
                                  method_grid={"end_epoch": (1, 2)})
  after_one_epoch, _ = train_population(model, method, table, data, epochs=1,
                                        batch_size=BATCH_SIZE)
  achieved = np.asarray(jax.vmap(masks.sparsity)(after_one_epoch.masks))
  # Step 3 (the last of epoch 1) is 3/4 of member 0's schedule (0.8 * (1 - 1/4^3) = 0.79)
  # and 3/8 of member 1's (0.8 * (1 - (5/8)^3) = 0.60).
  assert 0.78 < achieved[0] <= 0.8 and 0.55 < achieved[1] < 0.65, achieved
  finished, _ = train_population(model, method, table, data, epochs=1, batch_size=BATCH_SIZE,
                                 state=after_one_epoch)
  np.testing.assert_allclose(np.asarray(jax.vmap(masks.sparsity)(finished.masks)), 0.8,
                             atol=0.01)


def test_member_table_puts_method_axes_after_sparsity_and_skips_empty_ones():
  table = population.member_table({**SINGLE, "sparsity": (0.5, 0.9)}, num_seeds=2,
                                  method_grid={"temperature_end": (1.0, 0.1), "kl_weight": ()})
  assert "kl_weight" not in table
  assert list(zip(table.sparsity, table.temperature_end, table.seed)) == [
      (0.5, 1.0, 0), (0.5, 1.0, 1), (0.5, 0.1, 0), (0.5, 0.1, 1),
      (0.9, 1.0, 0), (0.9, 1.0, 1), (0.9, 0.1, 0), (0.9, 0.1, 1)]
  hyper = population.member_hyperparameters(table)
  np.testing.assert_array_equal(hyper.target.settings["temperature_end"],
                                np.float32([1.0, 1.0, 0.1, 0.1] * 2))
