"""One optimizer for a whole population, with the family chosen per member.

The model zoos mix Adam and SGD with momentum inside one population, and the
learning rate, weight decay and momentum differ per member. All of them arrive
here as (traced) arrays, so a single compiled program trains every member.

What the members share is the :class:`Recipe` (static: part of the compiled
program): the learning-rate schedule's shape, whose peak is each member's own
learning rate; label smoothing; how weight decay is applied; Nesterov
momentum. Its defaults are the zoos' recipe: a constant rate and coupled L2
weight decay (added to the gradient), as in PyTorch's ``Adam`` and ``SGD``
``weight_decay`` argument. Weight decay reaches only what ``decay_mask``
selects: the engine passes the model's weights, never a sparsification
method's own variables (log sigma^2, mask logits, scores), which a decay
towards 0 would push towards pruning or keeping whatever the method's own
objective says.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

#: Optimizer families selectable per member, in the order of their index.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
#: Shapes of the learning-rate schedule (``config.training.lr_schedule``).
SCHEDULES: tuple[str, ...] = ("constant", "warmup_cosine", "step")
#: How weight decay is applied (``config.training.weight_decay_style``).
WEIGHT_DECAY_STYLES: tuple[str, ...] = ("coupled", "decoupled")


class Recipe(NamedTuple):
  """The training recipe every member of a population follows (hashable: static).

  Attributes:
    schedule: one of :data:`SCHEDULES`. 'constant': the member's learning
      rate throughout; 'warmup_cosine': linear warm-up from 0 to it over
      ``warmup_steps``, then cosine decay to ``final_fraction`` of it at
      ``total_steps`` (``optax.warmup_cosine_decay_schedule``); 'step': it,
      multiplied by ``decay_factor`` at each of ``decay_steps``
      (``optax.piecewise_constant_schedule``).
    total_steps: the run's optimizer steps (the cosine's length).
    warmup_steps: steps of linear warm-up ('warmup_cosine').
    final_fraction: the cosine's final rate, as a fraction of the peak.
    decay_steps: the steps at which 'step' multiplies the rate.
    decay_factor: that multiplier.
    label_smoothing: weight of the uniform distribution mixed into the
      one-hot targets (0: plain cross-entropy).
    weight_decay_style: 'coupled': L2, ``weight_decay * w`` added to the
      gradient before Adam's or momentum's statistics (the zoos, PyTorch's
      ``weight_decay``); 'decoupled': added to the update after them and
      scaled by the scheduled rate (AdamW, SGDW; Loshchilov & Hutter 2019).
    decay_biases_and_norms: whether weight decay also reaches biases and
      normalisation parameters (every weight of rank 1); modern recipes
      decay only kernels.
    nesterov: Nesterov momentum for the SGD members (PyTorch's convention).
  """
  schedule: str = "constant"
  total_steps: int = 0
  warmup_steps: int = 0
  final_fraction: float = 0.0
  decay_steps: tuple[int, ...] = ()
  decay_factor: float = 0.1
  label_smoothing: float = 0.0
  weight_decay_style: str = "coupled"
  decay_biases_and_norms: bool = True
  nesterov: bool = False


def schedule_shape(recipe: Recipe) -> optax.Schedule:
  """The recipe's learning rate at a step as a fraction of the member's peak rate."""
  if recipe.schedule == "warmup_cosine":
    total = max(recipe.total_steps, recipe.warmup_steps + 1)
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, recipe.warmup_steps, total,
                                              end_value=recipe.final_fraction)
  if recipe.schedule == "step":
    return optax.piecewise_constant_schedule(
        1.0, {step: recipe.decay_factor for step in recipe.decay_steps})
  return optax.constant_schedule(1.0)


def decayed(trained: Any, recipe: Recipe, method_variables: bool) -> Any:
  """Which leaves of ``trained = (weights, method variables)`` weight decay reaches."""
  weights, variables = trained
  weight_mask = jax.tree.map(lambda w: recipe.decay_biases_and_norms or jnp.ndim(w) > 1, weights)
  return weight_mask, jax.tree.map(lambda _: method_variables, variables)


def population_optimizer(family: jax.Array | int, learning_rate: jax.Array | float,
                         weight_decay: jax.Array | float = 0.0,
                         momentum: jax.Array | float = 0.9,
                         decay_mask: Any = True,
                         recipe: Recipe = Recipe()) -> optax.GradientTransformation:
  """Adam or SGD-with-momentum, chosen by ``family`` (index into :data:`OPTIMIZERS`).

  The state holds both families' statistics so that its structure is the
  same for every member (a requirement of ``vmap``); the unused one costs one
  parameter-sized buffer per member, negligible next to the activations.

  Args:
    family: 0 for Adam (beta 0.9, 0.999, eps 1e-8), 1 for SGD with momentum.
    learning_rate: step size at this step (the schedule already applied).
    weight_decay: coefficient of the decay (see ``recipe.weight_decay_style``).
    momentum: SGD momentum (PyTorch convention: no dampening).
    decay_mask: which variables weight decay reaches: a pytree of bools with
      the structure of the params or a prefix of it, or a function of the
      params that returns one (``optax.masked``); True: all of them.
    recipe: the population's :class:`Recipe` (decay style, Nesterov).
  """
  adam = optax.scale_by_adam()
  sgd = optax.trace(decay=momentum, nesterov=recipe.nesterov)
  decay = optax.masked(optax.add_decayed_weights(weight_decay), decay_mask)
  decoupled = recipe.weight_decay_style == "decoupled"

  def init_fn(params):
    return adam.init(params), sgd.init(params)

  def update_fn(grads, state, params):
    # add_decayed_weights is stateless: its (empty) state need not be kept.
    if not decoupled:
      grads, _ = decay.update(grads, decay.init(params), params)
    adam_updates, adam_state = adam.update(grads, state[0])
    sgd_updates, sgd_state = sgd.update(grads, state[1])
    updates = jax.tree.map(lambda a, s: jnp.where(family == 0, a, s), adam_updates, sgd_updates)
    if decoupled:
      updates, _ = decay.update(updates, decay.init(params), params)
    return jax.tree.map(lambda u: -learning_rate * u, updates), (adam_state, sgd_state)

  return optax.GradientTransformation(init_fn, update_fn)
