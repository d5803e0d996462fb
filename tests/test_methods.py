"""Properties every registered method has: a member of a population trains as it would alone."""

import jax
import pytest

from jaxsparse import engine, models, population, sparsify

from conftest import SINGLE, assert_trees_close, method_settings, random_dataset, train_population

#: Every registered method with the settings its declaration gives for a short run.
SETTINGS = {spec.name: dict(spec.example) for spec in sparsify.declarations()}


#: Settings that change how a method trains, checked like a method of their own.
VARIANTS = {"variational_dropout, per-batch noise": ("variational_dropout",
                                                     {"weight_noise_sampling": "per_batch"})}


@pytest.mark.parametrize("name,variant", [
    pytest.param(name, {}, id=name, marks=() if name == "magnitude" else pytest.mark.slow)
    for name in sorted(SETTINGS)] + [pytest.param(*case, id=label, marks=pytest.mark.slow)
                                     for label, case in VARIANTS.items()])
def test_members_do_not_depend_on_the_rest_of_the_population(name, variant):
  # Member i must train exactly as it would beside any other members: the
  # same three members in two orders give each the same result (one compile;
  # the engine tests also compare against a population of one).
  data = random_dataset(num_train=64)
  model = models.get_model("cnn_s", data.input_shape)
  uses_target = sparsify.declaration(name).uses_target_sparsity
  sparsities = (0.5, 0.7, 0.9) if uses_target else (0.0,)
  table = population.member_table(
      {**SINGLE, "sparsity": sparsities, "activation": ("relu", "tanh"),
       "learning_rate": (0.01,)}, num_seeds=2).iloc[:3].reset_index(drop=True)
  method = sparsify.get_method(method_settings(name, **SETTINGS[name], **variant),
                               sparsify.TrainingSchedule(4, 64, 8))
  order = [2, 0, 1]
  together, _ = train_population(model, method, table, data, epochs=2, batch_size=16)
  permuted, _ = train_population(model, method, table.iloc[order].reset_index(drop=True), data,
                                 epochs=2, batch_size=16)
  for position, member in enumerate(order):
    assert_trees_close(engine.member(together, member), engine.member(permuted, position),
                       rtol=1e-5, atol=1e-6)


#: Methods whose eager (op-by-op) run takes 15-30 s; their case runs in the slow tier.
SLOW_EAGER = ("edge_popup", "random")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow)
                                  if name in SLOW_EAGER else name for name in sorted(SETTINGS)])
def test_init_and_update_are_pure_and_jit_agrees_with_eager(name):
  model = models.get_model("cnn_s", (28, 28, 1))
  params = models.init_variables(model, jax.random.PRNGKey(0))["params"]
  grads = jax.tree.map(lambda p: 0.1 * p, params)
  method = sparsify.get_method(method_settings(name, **SETTINGS[name]),
                               sparsify.TrainingSchedule(4, 64, 8))
  init, update = jax.jit(method.init), jax.jit(method.update)
  target = sparsify.Target(0.8)
  eager = method.update(method.init(params, jax.random.PRNGKey(1), target), params, grads, 4,
                        target)
  compiled = update(init(params, jax.random.PRNGKey(1), target), params, grads, 4, target)
  again = update(init(params, jax.random.PRNGKey(1), target), params, grads, 4, target)
  assert_trees_close(compiled, again)
  assert_trees_close(eager, compiled, rtol=1e-6)
