"""The population engine: a whole zoo trained in one compiled program.

A population is a :class:`TrainState` whose every leaf has a leading member
axis P. One epoch of all members is a single jitted call: ``vmap`` over
members (optionally in chunks, via ``lax.map``) of a ``lax.scan`` over steps.
Everything a member needs (its PRNG key, hyperparameters, mask) travels as
arrays, and each member draws its own data order from its own key, so member
i of a population trains exactly as it would alone.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax.sharding import Mesh

from jaxsparse import layers
from jaxsparse import masks as masks_lib
from jaxsparse import sharding
from jaxsparse.models import Model, apply_model, init_variables
from jaxsparse import optim
from jaxsparse.population import MemberHyperparameters
from jaxsparse import sparsify
from jaxsparse.sparsify import SparsifyMethod

PyTree = Any


class TrainState(NamedTuple):
  """Everything that defines a member's training, as a pytree.

  Attributes:
    params: model parameters.
    batch_stats: BatchNorm running statistics (empty dict without BatchNorm).
    opt_state: optimizer state of :func:`jaxsparse.optim.population_optimizer`.
    sparsity_state: the sparsification method's state; its ``masks`` field is
      the mask pytree (see :mod:`jaxsparse.masks`), all ones for a dense zoo.
    key: raw PRNG key (uint32[2]) for data order and dropout of future epochs.
    epoch: number of completed epochs.
    diverged: True once a step produced a non-finite loss, gradient or
      weight, or an epoch's mean training loss blew up (see
      :func:`blew_up`); the member is then frozen (at its last finite state,
      or at the end of the epoch that blew up).
    reference_loss: the training loss of the member's first step (NaN
      before it), the scale a blow-up is measured against.
  """
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  sparsity_state: PyTree
  key: jax.Array
  epoch: jax.Array
  diverged: jax.Array
  reference_loss: jax.Array

  @property
  def masks(self) -> PyTree:
    """The current mask pytree."""
    return self.sparsity_state.masks


class Program(NamedTuple):
  """What a population's compiled programs are made of besides their arrays: the static
  part of every engine call (hashable; jit compiles one program per distinct record).

  Attributes:
    model: the architecture.
    method: the sparsification method (e.g. ``sparsify.get_method(...)``).
    batch_size: training examples per step per member.
    eval_batch_size: examples per evaluation batch (at most a split's size).
    chunk_size: members vmapped at once (0: all), per device with a mesh.
    mesh: devices the members are split over (see :mod:`jaxsparse.sharding`; the
      population a multiple of its size); None runs on one device.
    shared_order_seed: if >= 0, every member trains on the same batches in the same
      order (:func:`shared_batches` of this seed), so the batch is not a per-member
      array and the first layer's work on it (im2col patches, the matmuls of all
      members) is done once for the population: faster, and member i still trains
      exactly as it would alone with the same seed here. -1: each member draws its
      own order from its key (the model zoos).
    progress_every: if > 0, training reports every that many steps (see
      :func:`listening_to_progress`).
  """
  model: Model
  method: SparsifyMethod
  batch_size: int = 32
  eval_batch_size: int = 1000
  chunk_size: int = 0
  mesh: Mesh | None = None
  shared_order_seed: int = -1
  progress_every: int = 0


def over_population(program: Program, member_fn: Callable, num_member_args: int = 2):
  """``member_fn(state, member_hyper, *shared)`` lifted to the population: ``(population,
  hyper, *shared)`` -> the members' results with a leading member axis, vmapped in chunks
  of ``program.chunk_size`` and split over ``program.mesh`` (the first
  ``num_member_args`` arguments have a member axis; the rest are shared by all)."""
  def local(population, hyper, *shared):
    return _map_members(lambda state, member_hyper: member_fn(state, member_hyper, *shared),
                        population, hyper, program.chunk_size)
  return sharding.over_members(local, program.mesh, num_member_args)


def _optimizer(method: SparsifyMethod, hyper: MemberHyperparameters,
               global_step: jax.Array | int = 0) -> optax.GradientTransformation:
  """The member's optimizer over :func:`_trained_variables` at ``global_step``: the
  recipe's schedule scales the member's learning rate; weight decay reaches the model's
  weights (the recipe says whether biases and normalisation parameters too) and, only if
  the method opts in, its own variables."""
  recipe = hyper.recipe
  rate = hyper.learning_rate * optim.schedule_shape(recipe)(global_step)
  decay_mask = functools.partial(optim.decayed, recipe=recipe,
                                 method_variables=method.weight_decay_on_method_variables)
  return optim.population_optimizer(hyper.optimizer, rate, hyper.weight_decay, hyper.momentum,
                                    decay_mask=decay_mask, recipe=recipe)


def _trained_variables(method: SparsifyMethod, params: PyTree, sparsity_state) -> PyTree:
  """What the optimizer updates: the weights (unless frozen) and the method's variables."""
  weights = params if method.trains_weights else ()
  return weights, sparsify.trainable(sparsity_state)


def init_member(model: Model, method: SparsifyMethod, hyper: MemberHyperparameters,
                params: PyTree | None = None, batch_stats: PyTree | None = None) -> TrainState:
  """Initial state of one member (pure, vmappable).

  The weights come from the member's seed and initializer, or are ``params``
  (and ``batch_stats``) when given: a sparsified twin starts from its
  original's trained weights. The optimizer starts fresh either way.
  """
  key = jax.random.PRNGKey(hyper.seed)
  init_key, training_key = jax.random.split(key)
  # fold_in rather than a 3-way split keeps a seed's initialisation and data
  # order the same as for a dense zoo, whatever the method.
  method_key = jax.random.fold_in(key, 1)
  if params is None:
    variables = init_variables(model, init_key, hyper.initializer)
    params, batch_stats = variables["params"], variables["batch_stats"]
  sparsity_state = method.init(params, method_key, hyper.target)
  if method.zeroes_pruned_weights:
    params = masks_lib.apply_masks(params, sparsity_state.masks)
  opt_state = _optimizer(method, hyper).init(_trained_variables(method, params, sparsity_state))
  return TrainState(params=params, batch_stats=batch_stats, opt_state=opt_state,
                    sparsity_state=sparsity_state, key=training_key,
                    epoch=jnp.zeros((), jnp.int32), diverged=jnp.zeros((), bool),
                    reference_loss=jnp.full((), jnp.nan, jnp.float32))


@functools.partial(jax.jit, static_argnames=("program",))
def init_population(program: Program, hyper: MemberHyperparameters,
                    params: PyTree | None = None, batch_stats: PyTree | None = None
                    ) -> TrainState:
  """Initial states of all members (leading axis P), in one compiled call.

  With ``params`` (and ``batch_stats``), leading axis P, the members start
  from those weights (twins of a trained population) instead of their seeds'.
  With ``program.mesh``, each device initialises its own members.
  """
  init = lambda *args: jax.vmap(functools.partial(init_member, program.model,
                                                  program.method))(*args)
  return sharding.over_members(init, program.mesh, 3)(hyper, params, batch_stats)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0
                  ) -> jax.Array:
  """Mean softmax cross-entropy of integer labels, against targets that mix the one-hot
  label with the uniform distribution by ``label_smoothing`` (Szegedy et al. 2016)."""
  if not label_smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


def _all_finite(tree: PyTree) -> jax.Array:
  """Whether every floating-point entry of ``tree`` is finite (a scalar bool)."""
  leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _map_members(member_fn, population: PyTree, hyper: MemberHyperparameters,
                 chunk_size: int):
  """``vmap`` of ``member_fn(state, hyper)`` over members, in chunks of ``chunk_size`` if > 0.

  Chunking bounds the working set (activations of chunk_size members at a
  time), which keeps it in cache on the CPU and in memory on an accelerator.
  A chunk whose members share an activation computes only that one (see
  :meth:`MemberHyperparameters.in_group`). A population that mixes activations
  is chunked in the order of its members' activations (stable, then put back
  in the members' order), so every chunk shares one wherever the number of
  members per activation is a multiple of the chunk size, whatever the grid's
  order.
  """
  def vmap_chunk(chunk):
    chunk_population, chunk_hyper = chunk
    activations = chunk_hyper.activation
    return jax.vmap(lambda state, member_hyper: member_fn(
        state, member_hyper.in_group(activations)))(chunk_population, chunk_hyper)

  num_members = hyper.seed.shape[0]
  if chunk_size <= 0 or chunk_size >= num_members:
    return vmap_chunk((population, hyper))
  if len(hyper.activations_used) == 1:
    return _map_chunks(vmap_chunk, (population, hyper), chunk_size)
  order = jnp.argsort(hyper.activation, stable=True)
  take = lambda tree, index: jax.tree.map(lambda leaf: leaf[index], tree)
  outputs = _map_chunks(vmap_chunk, take((population, hyper), order), chunk_size)
  return take(outputs, jnp.argsort(order))


def _map_chunks(vmap_chunk, members: PyTree, chunk_size: int):
  """``vmap_chunk`` over consecutive chunks of ``chunk_size`` members (``lax.map``), the
  remainder as one last smaller chunk; outputs concatenated in the members' order."""
  num_members = jax.tree.leaves(members)[0].shape[0]
  whole = num_members // chunk_size * chunk_size
  chunks = jax.tree.map(lambda leaf: leaf[:whole].reshape(-1, chunk_size, *leaf.shape[1:]),
                        members)
  outputs = jax.tree.map(lambda leaf: leaf.reshape(whole, *leaf.shape[2:]),
                         jax.lax.map(vmap_chunk, chunks))
  if whole == num_members:
    return outputs
  rest = vmap_chunk(jax.tree.map(lambda leaf: leaf[whole:], members))
  return jax.tree.map(lambda *parts: jnp.concatenate(parts), outputs, rest)


class StepKeys(NamedTuple):
  """One step's PRNG keys of one member: separate streams for the model's dropout, the
  method's sampling and the layers' weight noise."""
  dropout: jax.Array
  method: jax.Array
  noise: jax.Array


def _loss_fn(model: Model, method: SparsifyMethod, hyper: MemberHyperparameters,
             params: PyTree, batch_stats: PyTree, sparsity_state, batch, global_step,
             keys: StepKeys):
  """The member's training loss as a function of what the optimizer trains."""
  batch_images, batch_labels = batch

  def loss_fn(trained):
    weights, method_variables = trained
    weights = weights if method.trains_weights else params
    method_state = sparsify.with_trainable(sparsity_state, method_variables)
    model_params, extra_variables, penalty = method.forward(
        method_state, weights, keys.method, global_step, hyper.target)
    variables = {"params": model_params, "batch_stats": batch_stats, **extra_variables}
    logits, new_batch_stats = apply_model(
        model, variables, batch_images, hyper.compiled_activation, hyper.dropout_rate,
        hyper.dropout_key(keys.dropout), train=True, noise_key=keys.noise)
    loss = cross_entropy(logits, batch_labels, hyper.recipe.label_smoothing)
    return loss + penalty, (new_batch_stats, loss, jnp.mean(logits.argmax(-1) == batch_labels))
  return loss_fn


def scale_method_updates(updates: PyTree, scale: float | tuple[tuple[str, float], ...]) -> PyTree:
  """The updates of a method's own variables times their learning-rate scale: one float for
  all, or ``(name, float)`` pairs for the entries of the method's ``trainable`` dict (entries
  it omits keep 1)."""
  if isinstance(scale, tuple):
    per_entry = dict(scale)
    return {name: jax.tree.map(lambda u, s=per_entry.get(name, 1.0): u * s, entry)
            for name, entry in updates.items()}
  return updates if scale == 1.0 else jax.tree.map(lambda u: u * scale, updates)


def train_step(model: Model, method: SparsifyMethod, hyper: MemberHyperparameters, carry,
               batch: tuple[jax.Array, jax.Array], global_step: jax.Array, keys: StepKeys):
  """One optimizer step of one member: forward, gradients, update, masks.

  ``carry`` is ``((params, batch_stats, opt_state, sparsity_state), diverged)``.
  The model runs with the weights the method's ``forward`` gives (the masked
  weights for most methods); the optimizer updates the weights and the
  method's own variables, then the method updates its masks. A step whose
  loss, gradients or new weights are not all finite is not applied: the
  member keeps its previous state and ``diverged`` becomes True, for the rest
  of training (the selection leaves a finite member's new state bit for bit
  as computed, so a diverging member changes nothing in the others).

  Returns the new carry and the step's (loss, accuracy).
  """
  (params, batch_stats, opt_state, sparsity_state), diverged = carry
  old_carry = carry[0]
  optimizer = _optimizer(method, hyper, global_step)
  loss_fn = _loss_fn(model, method, hyper, params, batch_stats, sparsity_state, batch,
                     global_step, keys)
  trained = _trained_variables(method, params, sparsity_state)
  (_, (batch_stats, loss, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trained)
  updates, opt_state = optimizer.update(grads, opt_state, trained)
  updates = (updates[0], scale_method_updates(updates[1], method.trainable_learning_rate_scale))
  weights, method_variables = optax.apply_updates(trained, updates)
  if method.trains_weights:
    params = weights
  sparsity_state = sparsify.with_trainable(sparsity_state, method_variables)
  sparsity_state = method.update(sparsity_state, params, grads[0], global_step, hyper.target)
  if method.zeroes_pruned_weights:
    # Pruned weights stay exactly zero (weight decay and Adam momentum would
    # otherwise move them), and regrown ones start from zero.
    params = masks_lib.apply_masks(params, sparsity_state.masks)
  new_carry = (params, batch_stats, opt_state, sparsity_state)
  diverged = diverged | ~(jnp.isfinite(loss) & _all_finite(grads) & _all_finite(new_carry))
  new_carry = jax.tree.map(lambda new, old: jnp.where(diverged, old, new), new_carry, old_carry)
  return (new_carry, diverged), (loss, accuracy)


#: A member whose mean training loss over an epoch exceeds this many times its first step's
#: loss (or 1, if that is larger) diverged, although every number stayed finite.
BLOW_UP_FACTOR = 100.0


def blew_up(epoch_loss: jax.Array, reference_loss: jax.Array) -> jax.Array:
  """Whether an epoch's mean training loss is a finite blow-up: above
  :data:`BLOW_UP_FACTOR` times ``max(reference_loss, 1)``.

  The reference is the member's loss at its first step, so members that
  start high (large uniform initialisations) are measured against their own
  start; the floor of 1 keeps a twin that starts from a well-trained
  original (loss near 0) from being flagged for an ordinary rise. A member
  at chance level (loss log C, 2.3 for 10 classes) is not a blow-up; one
  whose loss reaches 1e10 with finite weights is.
  """
  return epoch_loss > BLOW_UP_FACTOR * jnp.maximum(reference_loss, 1.0)


#: Receives the progress reports of training calls (see :func:`listening_to_progress`).
_progress_listener: Callable[[], None] | None = None


def _report_progress() -> None:
  listener = _progress_listener
  if listener is not None:
    listener()


@contextlib.contextmanager
def listening_to_progress(listener: Callable[[], None]):
  """Calls ``listener()`` (on a runtime thread) for every progress report of the training
  calls made with ``progress_every > 0`` inside the ``with`` block.

  A report means: one chunk of members (see ``chunk_size``) on one device has
  run another ``progress_every`` steps. A call therefore reports
  ``steps // progress_every`` times per chunk and device.
  """
  global _progress_listener
  previous, _progress_listener = _progress_listener, listener
  try:
    yield
  finally:
    _progress_listener = previous


def shared_batches(seed: int, first_step: jax.Array, num_examples: int,
                   batch_size: int) -> jax.Array:
  """The batches (example indices, [steps, batch_size]) every member trains on in the
  epoch that starts at global step ``first_step`` when the members share their data order
  (``config.training.shared_order_seed = seed``); the last incomplete batch is dropped."""
  return epoch_batches(jax.random.fold_in(jax.random.PRNGKey(seed), first_step), num_examples,
                       batch_size)


def epoch_batches(order_key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
  """One epoch's batches, [steps, batch_size] example indices in the random order of
  ``order_key``; the last incomplete batch is dropped."""
  steps = num_examples // batch_size
  return jax.random.permutation(order_key, num_examples)[:steps * batch_size].reshape(
      steps, batch_size)


def train_member_epoch(model: Model, method: SparsifyMethod, state: TrainState,
                       hyper: MemberHyperparameters, images: jax.Array, labels: jax.Array,
                       first_step: jax.Array, batch_size: int, progress_every: int = 0,
                       batches: jax.Array | None = None,
                       ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One epoch of one member: a ``lax.scan`` of :func:`train_step` over its own batches.

  ``first_step`` is the global step of the epoch's first batch, the same for
  all members. The member's key is split once per epoch: one part orders the
  data (the last incomplete batch is dropped) unless ``batches`` gives the
  order (members sharing it: :func:`shared_batches`), one gives the steps'
  keys, and one is carried to the next epoch. Returns the new state and the epoch's
  mean training loss and accuracy (NaN or inf once the member diverged). A
  finite blow-up (:func:`blew_up`) marks the member diverged at the epoch's end.
  ``train_loss_curve`` is the epoch's losses in a few windows (:func:`loss_curve`).
  With ``progress_every > 0`` it reports every that many steps to the progress
  listener (a host callback that reads no value, so the numbers do not change).
  """
  epoch_key, next_key = jax.random.split(state.key)
  order_key, dropout_key = jax.random.split(epoch_key)
  method_keys, noise_keys = jax.random.split(jax.random.fold_in(epoch_key, 1))
  steps = images.shape[0] // batch_size
  if batches is None:
    batches = epoch_batches(order_key, images.shape[0], batch_size)

  def scan_step(carry, inputs):
    step_index, batch = inputs
    keys = StepKeys(*(jax.random.fold_in(key, step_index)
                      for key in (dropout_key, method_keys, noise_keys)))
    if progress_every:
      jax.lax.cond(step_index % progress_every == progress_every - 1,
                   lambda: jax.debug.callback(_report_progress), lambda: None)
    return train_step(model, method, hyper, carry, (images[batch], labels[batch]),
                      first_step + step_index, keys)

  carry = ((state.params, state.batch_stats, state.opt_state, state.sparsity_state),
           state.diverged)
  ((params, batch_stats, opt_state, sparsity_state), diverged), (losses, accuracies) = \
      jax.lax.scan(scan_step, carry, (jnp.arange(steps), batches))
  reference_loss = jnp.where(jnp.isnan(state.reference_loss), losses[0], state.reference_loss)
  diverged = diverged | blew_up(losses.mean(), reference_loss)
  new_state = state._replace(params=params, batch_stats=batch_stats, opt_state=opt_state,
                             sparsity_state=sparsity_state, key=next_key,
                             epoch=state.epoch + 1, diverged=diverged,
                             reference_loss=reference_loss)
  return new_state, {"train_loss": losses.mean(), "train_accuracy": accuracies.mean(),
                     "train_loss_curve": loss_curve(losses)}


#: Points per epoch of the training-loss curve that :func:`train_member_epoch` returns.
LOSS_CURVE_POINTS = 20


def loss_curve(losses: jax.Array) -> jax.Array:
  """Per-step losses averaged over ``LOSS_CURVE_POINTS`` equal windows (fewer for short
  epochs; the last ``steps % windows`` steps fall out). Window ``j`` ends at step
  ``(j + 1) * (steps // points)`` of the epoch."""
  points = min(LOSS_CURVE_POINTS, losses.shape[0])
  window = losses.shape[0] // points
  return losses[:points * window].reshape(points, window).mean(axis=1)


#: XLA:CPU options for training programs whose method has no weight noise: YNNPACK's
#: reduction fusions off (XLA's own loops instead), dot fusions kept. With them on (the
#: default) the max-pool gradient's count of tied maxima was the largest item of the dense
#: step (15 % at batch 10); without them the dense, magnitude, Gumbel-softmax and edge-popup
#: steps of CNN-s ran 10 to 38 % faster, while variational dropout's ran 20 % slower (XLA
#: then recomputes the pooled gradient in each of the mean and variance paths' consumers),
#: so weight-noise methods keep the defaults (docs/benchmarks.md, 2026-12-06).
CPU_TRAINING_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def _knows_cpu_training_options() -> bool:
  """Whether this XLA accepts :data:`CPU_TRAINING_OPTIONS` (an experimental flag, which
  another jaxlib may not have)."""
  try:
    jax.jit(lambda: 0, compiler_options=CPU_TRAINING_OPTIONS).lower().compile()
  except jax.errors.JaxRuntimeError:
    return False
  return True


def training_options(method: SparsifyMethod) -> dict[str, str]:
  """The XLA compiler options :func:`train_epoch` compiles ``method``'s training with: on
  the CPU :data:`CPU_TRAINING_OPTIONS` unless the method has weight noise (or this XLA
  does not know them), else none."""
  if jax.default_backend() != "cpu" or method.weight_noise or not _knows_cpu_training_options():
    return {}
  return CPU_TRAINING_OPTIONS


def train_epoch(program: Program, population: TrainState, hyper: MemberHyperparameters,
                images: jax.Array, labels: jax.Array, first_step: jax.Array | int = 0,
                ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One epoch of every member in one compiled call (:data:`TRAIN_EPOCH_PROGRAMS`, compiled
  with :func:`training_options`).

  Args:
    program: the model, method, batch size, chunking, mesh and data order (static).
    population: states with a leading member axis; donated (its buffers are
      reused for the result, so do not use it after the call).
    hyper: per-member hyperparameters (including the target sparsity).
    images, labels: the training set, shared by all members (on device).
    first_step: global step of the epoch's first batch (epoch * steps).

  Returns:
    The new population and per-member ``train_loss`` / ``train_accuracy`` [P] and
    ``train_loss_curve`` [P, points] (see :func:`loss_curve`)
    (NaN or inf for a member whose training diverged; see
    :func:`train_member_epoch`).
  """
  compiled = TRAIN_EPOCH_PROGRAMS[bool(training_options(program.method))]
  return compiled(program, population, hyper, images, labels, first_step)


def _train_epoch(program: Program, population: TrainState, hyper: MemberHyperparameters,
                 images: jax.Array, labels: jax.Array, first_step: jax.Array | int = 0,
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
  """:func:`train_epoch`'s computation."""
  # Computed outside the map over members, so that it is one array, not one per member.
  batches = None if program.shared_order_seed < 0 else shared_batches(
      program.shared_order_seed, first_step, images.shape[0], program.batch_size)
  member_fn = lambda state, member_hyper, images, labels, first_step, batches: \
      train_member_epoch(program.model, program.method, state, member_hyper, images, labels,
                         first_step, program.batch_size, program.progress_every, batches)
  return over_population(program, member_fn)(population, hyper, images, labels,
                                              jnp.asarray(first_step), batches)


#: The max-pool form (:data:`jaxsparse.layers.MAX_POOL_FORMS`) a program compiled with
#: :data:`CPU_TRAINING_OPTIONS` is traced in: XLA's own reduction loops reduce one window
#: axis at a time 2.7x as fast as both at once (docs/benchmarks.md, 2026-12-06).
CPU_TRAINING_MAX_POOL_FORM = "rows_then_columns"


def _traced_in_max_pool_form(function: Callable, form: str) -> Callable:
  """``function``, traced with :func:`jaxsparse.layers.max_pool_form` ``form``."""
  @functools.wraps(function)
  def traced(*args, **kwargs):
    with layers.max_pool_form(form):
      return function(*args, **kwargs)
  return traced


def train_epoch_programs(epoch_function=_train_epoch) -> tuple:
  """``epoch_function`` (:func:`_train_epoch`'s signature) jitted as :func:`train_epoch`
  runs it: the program static, the population donated; with XLA's default options, and
  with :data:`CPU_TRAINING_OPTIONS` and :data:`CPU_TRAINING_MAX_POOL_FORM` (indexed by
  whether :func:`training_options` gives them)."""
  def jitted(function, options):
    return jax.jit(function, static_argnames=("program",), donate_argnums=(1,),
                   compiler_options=options)
  return (jitted(epoch_function, None),
          jitted(_traced_in_max_pool_form(epoch_function, CPU_TRAINING_MAX_POOL_FORM),
                 CPU_TRAINING_OPTIONS))


#: :func:`train_epoch`'s compiled programs (:func:`train_epoch_programs`).
TRAIN_EPOCH_PROGRAMS = train_epoch_programs()


#: Batches of training data that re-estimate BatchNorm running statistics: the stale
#: statistics keep a weight of momentum ** batches (0.9 ** 100 < 3e-5).
RECALIBRATION_BATCHES = 100


def recalibrate_member_batch_stats(model: Model, method: SparsifyMethod, state: TrainState,
                                   hyper: MemberHyperparameters, images: jax.Array,
                                   batches: jax.Array) -> TrainState:
  """One member's BatchNorm running statistics updated over ``batches`` (example indices,
  [num_batches, batch_size]) of ``images`` by forward passes in training mode with its
  evaluation weights, without dropout or weight noise; nothing else changes."""
  params = member_evaluation_params(method, state, hyper)

  def update(batch_stats, batch):
    _, batch_stats = apply_model(model, {"params": params, "batch_stats": batch_stats},
                                 images[batch], hyper.compiled_activation, train=True)
    return batch_stats, None

  batch_stats, _ = jax.lax.scan(update, state.batch_stats, batches)
  return state._replace(batch_stats=batch_stats)


@functools.partial(jax.jit, static_argnames=("program", "num_batches"), donate_argnums=(1,))
def recalibrate_batch_stats(program: Program, population: TrainState,
                            hyper: MemberHyperparameters, images: jax.Array,
                            num_batches: int = RECALIBRATION_BATCHES) -> TrainState:
  """Every member's BatchNorm running statistics re-estimated from ``num_batches`` batches of
  ``images`` (batches of ``program.batch_size``, one fixed order for all members, cycled if
  the set holds fewer batches), for weights that no longer match their statistics (see
  :func:`between_epochs`). ``population`` is donated."""
  order = shared_batches(0, 0, images.shape[0], program.batch_size)
  batches = jnp.tile(order, (-(-num_batches // order.shape[0]), 1))[:num_batches]
  member_fn = lambda state, member_hyper, images, batches: recalibrate_member_batch_stats(
      program.model, program.method, state, member_hyper, images, batches)
  return over_population(program, member_fn)(population, hyper, images, batches)


def _with_masks(population: TrainState, masks: PyTree) -> TrainState:
  return population._replace(sparsity_state=population.sparsity_state._replace(masks=masks))


def reassemble(population: TrainState, layer_copy: dict, copies: int) -> TrainState:
  """Every member rebuilt from its ``copies`` consecutive copies: each layer's variables,
  wherever they sit in the state (weights, masks, biases, normalisation parameters and
  statistics, optimizer moments), from the copy ``layer_copy`` names; what belongs to no
  layer (keys, step counts) from copy 0; given to all its copies."""
  def from_copy(path, leaf):
    copy = masks_lib.layer_value(layer_copy, path)
    grouped = leaf.reshape(-1, copies, *leaf.shape[1:])
    return jnp.repeat(grouped[:, 0 if copy is None else copy], copies, axis=0)
  return jax.tree_util.tree_map_with_path(from_copy, population)


@functools.partial(jax.jit, static_argnames=("program", "prune", "grow"))
def meet_copies(program: Program, population: TrainState, target: jax.Array, *, prune: bool,
                grow: bool) -> TrainState:
  """One meeting of every member's copies (see :class:`jaxsparse.sparsify.CopyRounds`):
  with ``prune``, every copy's masks pruned, each member reassembled from its copies and
  its pruned weights zeroed (a partition grows again from zero); with ``grow``, every
  copy's masks grown. ``target``: the members' target sparsities."""
  rounds = program.method.copy_rounds
  copy = jnp.arange(target.shape[0]) % rounds.copies
  if prune:
    masks = jax.vmap(rounds.prune)(population.params, population.masks, target, copy)
    layers = rounds.layer_copy(jax.tree.map(lambda mask: mask[0], masks))
    population = reassemble(_with_masks(population, masks), layers, rounds.copies)
    population = population._replace(
        params=jax.vmap(masks_lib.apply_masks)(population.params, population.masks))
  if grow:
    population = _with_masks(population, jax.vmap(rounds.grow)(population.masks, copy))
  return population


def between_epochs(program: Program, population: TrainState, hyper: MemberHyperparameters,
                   completed_epochs: int, num_members: int,
                   train_images: jax.Array | None = None) -> TrainState:
  """The step a method with copy rounds takes after ``completed_epochs`` epochs (0: at the
  start): its copies meet (:func:`meet_copies`, on the ``num_members`` real members: the
  padding that fills the last device is dropped and made again), then, after a
  reassembly, the members' BatchNorm statistics, which came from other copies, are
  re-estimated from ``train_images``. Any other method: the population as it is."""
  rounds = program.method.copy_rounds
  prune, grow = rounds.meets(completed_epochs) if rounds is not None else (False, False)
  if not (prune or grow):
    return population
  padded = hyper.seed.shape[0]
  real = population if padded == num_members else sharding.unpad_members(population,
                                                                         num_members)
  real = meet_copies(program._replace(mesh=None), real, hyper.sparsity[:num_members],
                     prune=prune, grow=grow)
  population = real if padded == num_members else sharding.shard_members(
      sharding.pad_members(real, padded), program.mesh)
  if prune and jax.tree.leaves(population.batch_stats):
    population = recalibrate_batch_stats(program, population, hyper, train_images)
  return population


def evaluate_member(model: Model, method: SparsifyMethod, state: TrainState, hyper: MemberHyperparameters,
                    images: jax.Array, labels: jax.Array, batch_size: int,
                    ) -> dict[str, jax.Array]:
  """Accuracy, mean loss and predicted classes of one member over a split, in batches.

  The member runs with its method's evaluation weights (the masked weights;
  for Gumbel-softmax also rescaled). The split is padded to a multiple of
  ``batch_size``; padded examples carry zero weight.
  """
  num_examples = images.shape[0]
  num_batches = -(-num_examples // batch_size)
  padding = num_batches * batch_size - num_examples
  weights = jnp.pad(jnp.ones(num_examples), (0, padding)).reshape(num_batches, batch_size)
  images = jnp.pad(images, ((0, padding),) + ((0, 0),) * (images.ndim - 1))
  images = images.reshape(num_batches, batch_size, *images.shape[1:])
  labels = jnp.pad(labels, (0, padding)).reshape(num_batches, batch_size)
  variables = {"params": member_evaluation_params(method, state, hyper),
               "batch_stats": state.batch_stats}

  def batch_metrics(totals, batch):
    batch_images, batch_labels, batch_weights = batch
    logits, _ = apply_model(model, variables, batch_images, hyper.compiled_activation)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels)
    predictions = logits.argmax(-1).astype(jnp.int32)
    correct = predictions == batch_labels
    return (totals[0] + jnp.sum(correct * batch_weights),
            totals[1] + jnp.sum(losses * batch_weights)), predictions

  (correct, loss), predictions = jax.lax.scan(batch_metrics, (0.0, 0.0),
                                              (images, labels, weights))
  return {"accuracy": correct / num_examples, "loss": loss / num_examples,
          "predictions": predictions.reshape(-1)[:num_examples]}


@functools.partial(jax.jit, static_argnames=("program",))
def evaluate(program: Program, population: TrainState, hyper: MemberHyperparameters,
             images: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Per-member ``accuracy`` and ``loss`` [P] and ``predictions`` [P, N] on a split, in one
  compiled call, in batches of ``program.eval_batch_size`` (at most the split's size)."""
  batch_size = min(program.eval_batch_size, images.shape[0])
  member_fn = lambda state, member_hyper, images, labels: evaluate_member(
      program.model, program.method, state, member_hyper, images, labels, batch_size)
  return over_population(program, member_fn)(population, hyper, images, labels)


def member_evaluation_params(method: SparsifyMethod, state: TrainState,
                             hyper: MemberHyperparameters) -> PyTree:
  """The parameters one member is evaluated with: its method's forward without a key (the
  masked weights; for Gumbel-softmax also rescaled)."""
  return method.forward(state.sparsity_state, state.params, None, 0, hyper.target)[0]


@functools.partial(jax.jit, static_argnames=("method",))
def evaluation_params(method: SparsifyMethod, population: TrainState,
                      hyper: MemberHyperparameters) -> PyTree:
  """:func:`member_evaluation_params` of every member (leading axis P): what
  :func:`evaluate` runs, for exporting."""
  return jax.vmap(functools.partial(member_evaluation_params, method))(population, hyper)


def member(population: PyTree, index: int) -> PyTree:
  """Member ``index`` of a population pytree (drops the leading axis)."""
  return jax.tree.map(lambda leaf: leaf[index], population)

