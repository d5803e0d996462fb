"""The shape of a sparsification method, and its registry.

A method is a small set of pure functions, in the spirit of optax:

- ``init(params, key, target) -> state``
- ``update(state, params, grads, step, target) -> state``, called after every
  optimizer step;
- ``forward(state, params, key, step, target) -> (model_params, extra_variables,
  penalty)``: the weights the model runs with. ``key`` is a PRNG key during
  training and ``None`` at evaluation; ``extra_variables`` are extra Flax
  variable collections (variational dropout's ``log_alpha``), ``penalty`` a
  scalar added to the loss. The default, :func:`masked_forward`, multiplies
  the weights by the masks.

``state`` is a NamedTuple whose ``masks`` field is the mask pytree (see
:mod:`jaxsparse.masks`) that evaluation and metrics use, next to whatever
else the method tracks. A method that learns variables of its own
(log sigma^2, mask logits, scores) keeps them in a field named
``trainable``: the engine differentiates the loss with respect to it through
``forward`` and updates it with the member's optimizer. ``target`` is the
member's :class:`Target` (its sparsity and any method settings that differ
between members) and ``step`` the global training step; both may be traced,
and ``step`` is the same for all members, so a method may branch on it with
``lax.cond`` at no cost under ``vmap`` (a branch on a per-member setting
becomes a select that computes both sides). Methods keep no hidden state and
draw randomness only from keys they are given or hold in their state.

Each method declares itself in its own file with
:func:`jaxsparse.sparsify.register` (builder, config fields, validation,
per-member settings, twin levels; see :mod:`jaxsparse.sparsify.registry`); a
config selects one with ``config.sparsify.method`` and
:func:`jaxsparse.sparsify.get_method` builds it from ``config.sparsify``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxsparse import masks as masks_lib

PyTree = Any


class Target(NamedTuple):
  """What a method aims for in one member.

  Attributes:
    sparsity: the member's target sparsity (a float, or a traced scalar).
    settings: per-member values of ``config.sparsify`` settings that the
      population sweeps (``config.population.method_grid``), by name; a
      setting not in it has the one value of ``config.sparsify``.
  """
  sparsity: jax.Array | float
  settings: dict[str, jax.Array] = {}

  def setting(self, name: str, default: Any) -> Any:
    """This member's value of setting ``name``, or ``default`` (the config's) if not swept."""
    return self.settings.get(name, default)


def masked_forward(state, params, key, step, target):
  """Default ``forward``: the masked weights, no extra variables, no penalty."""
  del key, step, target
  return masks_lib.apply_masks(params, state.masks), {}, 0.0


class SparsifyMethod(NamedTuple):
  """A sparsification method (see the module doc).

  Attributes:
    init: ``(params, key, target) -> state``; ``target`` is a :class:`Target`.
    update: ``(state, params, grads, step, target) -> state``.
    forward: ``(state, params, key, step, target) -> (model_params,
      extra_variables, penalty)``.
    trains_weights: False for methods that learn only a mask over frozen
      weights (Gumbel-softmax, edge-popup): the optimizer then leaves the
      weights untouched.
    zeroes_pruned_weights: whether the engine sets pruned weights to zero
      after every step (so that weight decay or momentum cannot move them and
      regrown weights start from zero). Off for methods whose mask is a
      reading of learned variables rather than a decision (variational
      dropout, Gumbel-softmax), whose weights must survive a dropped mask.
    trainable_learning_rate_scale: the learning rate of the method's own
      variables as a multiple of the member's (Adam moves each variable by
      about one learning rate per step, so log sigma^2 = -10 needs many steps
      to reach log alpha = 3 at a weight's learning rate): one float for all
      of them, or ``(name, float)`` pairs, one per entry of a ``trainable``
      dict (hashable, as the method is a compile-time constant; Dupont et
      al.'s code trains Gumbel-softmax logits at 50 and the per-layer scales
      at 1e-3).
    weight_decay_on_method_variables: whether the member's weight decay also
      reaches the method's own variables (``trainable``). Off by default:
      weight decay is a regulariser of the model's weights, and decaying
      log sigma^2, mask logits or scores towards 0 would change what the
      method prunes.
    copy_rounds: for a method whose members train as several copies that meet
      between epochs (parallel GaP), what the engine needs to combine them
      (:class:`CopyRounds`); ``None`` for every other method.
    weight_noise: whether ``forward`` gives the layers weight noise (a
      ``'log_alpha'`` collection, sampled by local reparameterisation; variational
      dropout's per-batch sampling hands them noisy weights instead, and is not). The
      engine compiles the training of such methods with XLA:CPU's default
      fusions and that of the others without its reduction fusions
      (:data:`jaxsparse.engine.CPU_TRAINING_OPTIONS`), the faster choice for each.
  """
  init: Callable[[PyTree, jax.Array, jax.Array], NamedTuple]
  update: Callable[[NamedTuple, PyTree, PyTree, jax.Array, jax.Array], NamedTuple]
  forward: Callable[..., tuple[PyTree, dict, jax.Array]] = masked_forward
  trains_weights: bool = True
  zeroes_pruned_weights: bool = True
  trainable_learning_rate_scale: float | tuple[tuple[str, float], ...] = 1.0
  weight_decay_on_method_variables: bool = False
  copy_rounds: "CopyRounds | None" = None
  weight_noise: bool = False

  @property
  def copies(self) -> int:
    """Population members per member of the table (1 but for copy rounds)."""
    return 1 if self.copy_rounds is None else self.copy_rounds.copies


class CopyRounds(NamedTuple):
  """How the copies of a member meet between epochs (parallel GaP's rounds).

  A member's ``copies`` copies are consecutive members of the population (the
  training loop repeats every row of the member table). After the epochs
  ``meets`` names, the engine (:func:`jaxsparse.engine.between_epochs`)
  combines them: it applies ``prune`` to every copy's masks, rebuilds each
  member from its copies, every layer's variables (weights, masks, biases,
  normalisation parameters and statistics, optimizer state) from the copy
  ``layer_copy`` names (the rest from copy 0), zeroes the pruned weights,
  re-estimates BatchNorm statistics (they came from other copies), and then
  applies ``grow``. The method only says what happens to masks; the engine
  edits the population.

  Attributes:
    copies: copies per member.
    meets: ``completed_epochs -> (prune, grow)``: whether the copies prune and are
      reassembled, and whether they grow, after that many epochs (0: at the start).
    prune: ``(params, masks, target_sparsity, copy) -> masks``, one copy's masks
      before its member is reassembled.
    layer_copy: ``masks -> {layer path: copy}`` (one member's masks), the copy each
      layer is taken from.
    grow: ``(masks, copy) -> masks``, one copy's masks after the meeting.
  """
  copies: int
  meets: Callable[[int], tuple[bool, bool]]
  prune: Callable[..., PyTree]
  layer_copy: Callable[[PyTree], dict]
  grow: Callable[[PyTree, jax.Array], PyTree]


def trainable(state: NamedTuple) -> PyTree:
  """The variables a method learns by gradient descent (``()`` if none)."""
  return getattr(state, "trainable", ())


def with_trainable(state: NamedTuple, variables: PyTree) -> NamedTuple:
  """``state`` with its trainable variables replaced (unchanged if it has none)."""
  return state._replace(trainable=variables) if hasattr(state, "trainable") else state


def epochs_to_steps(epochs: jax.Array | int, steps_per_epoch: int) -> jax.Array | int:
  """A number of epochs (a config int, or a per-member traced setting) as whole steps."""
  if isinstance(epochs, int):
    return epochs * steps_per_epoch
  return jnp.round(jnp.asarray(epochs) * steps_per_epoch).astype(jnp.int32)


class TrainingSchedule(NamedTuple):
  """What a method needs to know about the run it is part of.

  Attributes:
    steps_per_epoch: optimizer steps per epoch (epochs in the config become
      steps with it).
    num_examples: training examples per epoch (scales variational dropout's
      KL term to the data set).
    num_steps: total optimizer steps of the run.
    layer_order: the model's layers (module paths) in network depth, from
      :func:`jaxsparse.models.layer_order`, for methods that declare
      ``uses_layer_order``; empty otherwise (methods that group layers by
      depth, such as GaP, then use the parameter tree's order).
  """
  steps_per_epoch: int
  num_examples: int = 1
  num_steps: int = 1
  layer_order: tuple[tuple[str, ...], ...] = ()


