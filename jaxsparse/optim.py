"""One optimizer for a whole population, with the family chosen per member.

The model zoos mix Adam and SGD with momentum inside one population, and the
learning rate, weight decay and momentum differ per member. All of them arrive
here as (traced) arrays, so a single compiled program trains every member.
Weight decay is coupled L2 (added to the gradient), as in PyTorch's ``Adam``
and ``SGD`` ``weight_decay`` argument that the zoos were trained with, and
reaches only what ``decay_mask`` selects: the engine passes the model's
weights, never a sparsification method's own variables (log sigma^2, mask
logits, scores), which a decay towards 0 would push towards pruning or
keeping whatever the method's own objective says.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

#: Optimizer families selectable per member, in the order of their index.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


def population_optimizer(family: jax.Array | int, learning_rate: jax.Array | float,
                         weight_decay: jax.Array | float = 0.0,
                         momentum: jax.Array | float = 0.9,
                         decay_mask: Any = True) -> optax.GradientTransformation:
  """Adam or SGD-with-momentum, chosen by ``family`` (index into :data:`OPTIMIZERS`).

  The state holds both families' statistics so that its structure is the
  same for every member (a requirement of ``vmap``); the unused one costs one
  parameter-sized buffer per member, negligible next to the activations.

  Args:
    family: 0 for Adam (beta 0.9, 0.999, eps 1e-8), 1 for SGD with momentum.
    learning_rate: step size.
    weight_decay: coefficient of the L2 term added to the gradient.
    momentum: SGD momentum (PyTorch convention: no dampening).
    decay_mask: which variables weight decay reaches: a pytree of bools with
      the structure of the params or a prefix of it (``optax.masked``); True:
      all of them.
  """
  adam = optax.scale_by_adam()
  sgd = optax.trace(decay=momentum)
  decay = optax.masked(optax.add_decayed_weights(weight_decay), decay_mask)

  def init_fn(params):
    return adam.init(params), sgd.init(params)

  def update_fn(grads, state, params):
    # add_decayed_weights is stateless: its (empty) state need not be kept.
    grads, _ = decay.update(grads, decay.init(params), params)
    adam_updates, adam_state = adam.update(grads, state[0])
    sgd_updates, sgd_state = sgd.update(grads, state[1])
    updates = jax.tree.map(
        lambda a, s: -learning_rate * jnp.where(family == 0, a, s), adam_updates, sgd_updates)
    return updates, (adam_state, sgd_state)

  return optax.GradientTransformation(init_fn, update_fn)
