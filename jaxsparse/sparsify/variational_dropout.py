"""Sparse variational dropout (Molchanov, Ashukha & Vetrov, ICML 2017).

Every prunable weight is Gaussian, w = theta + sigma * eps, with the additive
reparameterisation: theta (the model's weights) and log sigma^2 (this
method's trainable variables, one per weight) are learned, and
log alpha = log sigma^2 - log theta^2 measures how noisy a weight is. The
layers sample their outputs with the local reparameterisation trick (see
:func:`jaxsparse.layers._linear_output`). The loss adds the KL divergence of
the log-uniform prior, approximated as in the paper, scaled to the data set
(``kl_weight`` = 1 is the variational lower bound) and warmed up from 0
between ``start_epoch`` and ``end_epoch``, linearly per step or, as the
public model-zoo code does, per epoch (``kl_schedule``). Weights with log alpha >= the
threshold (3) are the mask's zeros at evaluation; sparsity is an outcome of
training, not a target.

Convolutions' biases are Gaussian too, as in the public model-zoo code's
``Conv2dARD`` (ModelZoos/ModelZooDataset): a log sigma^2 of their own, their
sigma^2 added to the output variance, their KL term in the loss, and a bias
whose log alpha reaches the threshold is zeroed at evaluation. Dense layers'
biases stay deterministic (its ``LinearARD`` declares a bias log sigma^2 but
never uses it). Sparsity counts weights (kernels) alone, as that code does.

A twin of a trained member starts from that member's weights as theta, with
log sigma^2 = -10 everywhere.

Log alpha is clipped to [-8, 8] in convolutions and [-10, 10] in dense
layers, and, as in the public code, the clip passes no gradient: a weight
with |theta| > 1/e starts at a convolution's lower clip, where the KL term
cannot reach it. ``variational_dropout_straight_through`` is the same method
with a clip that passes gradients (the same values and masks; a departure
from the public code, for zoos whose large weights would otherwise stay out
of the KL term's reach). The method computes log alpha and hands it to the
layers as the ``'log_alpha'`` collection.

``weight_noise_sampling = 'per_batch'`` is a labelled departure from the
public protocol, for speed: instead of the layers' local reparameterisation
(one output sample per example, two matrix products per layer), the method
draws one weight sample w = theta + sigma * eps per member and step, shared by
the batch's examples (:func:`sampled_weights`), and the layers run as dense
ones. Its gradients have a higher variance (Kingma et al. 2015); its effect
on the twins is measured in docs/twins_protocol.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxsparse import masks as masks_lib, prng
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import Field, TwinLevel, register

#: How the KL weight warms up (see :func:`kl_warmup`).
KL_SCHEDULES = ("linear", "per_epoch")
#: How training samples the weight noise: per example by local reparameterisation (the
#: public code), or one weight sample per member and step (a departure; see the module doc).
NOISE_SAMPLINGS = ("per_example", "per_batch")
#: Constants of the KL approximation (Molchanov et al. 2017, eq. 14).
KL_CONSTANTS = (0.63576, 1.87320, 1.48695)
INITIAL_LOG_SIGMA2 = -10.0


class VariationalDropoutState(NamedTuple):
  """State of variational dropout.

  Attributes:
    masks: 1 where a kernel weight's log alpha < threshold (recomputed after every step).
    trainable: log sigma^2 of every kernel and convolution bias (``None`` elsewhere).
  """
  masks: Any
  trainable: Any


def negative_kl(log_alpha: jax.Array) -> jax.Array:
  """-KL(q(w) || log-uniform prior) per weight, Molchanov et al.'s approximation.

  -KL ~= k1 sigmoid(k2 + k3 log alpha) - 0.5 log(1 + 1/alpha) - k1.
  """
  k1, k2, k3 = KL_CONSTANTS
  return (k1 * jax.nn.sigmoid(k2 + k3 * log_alpha)
          - 0.5 * jax.nn.softplus(-log_alpha) - k1)


#: Range log alpha is clipped to, per kernel kind (the values of the public model-zoo code:
#: Molchanov et al.'s [-8, 8] for convolutions, a wider [-10, 10] for dense layers).
LOG_ALPHA_BOUNDS: dict[str, tuple[float, float]] = {"conv": (-8.0, 8.0), "dense": (-10.0, 10.0)}


def log_alpha_bounds(theta: jax.Array) -> tuple[float, float]:
  """The range log alpha is clipped to for a Dense kernel (2-D), or a Conv kernel (4-D) or
  bias (1-D: only convolutions give their biases weight noise, as the public code does)."""
  return LOG_ALPHA_BOUNDS["dense" if theta.ndim == 2 else "conv"]


def log_alpha(theta: jax.Array, log_sigma2: jax.Array,
              straight_through: bool = False) -> jax.Array:
  """Clipped log alpha = log sigma^2 - log theta^2 of a kernel or a convolution's bias.

  The clip passes no gradient (the public code's ``torch.clamp``); with
  ``straight_through`` its value is the same but its backward pass is the
  identity, so a weight at a bound can still be moved by the KL term.
  """
  low, high = log_alpha_bounds(theta)
  raw = log_sigma2 - jnp.log(theta * theta + 1e-8)
  clipped = jnp.clip(raw, low, high)
  if not straight_through:
    return clipped
  return masks_lib.straight_through(jax.lax.stop_gradient(clipped), raw)


def log_alphas(params, log_sigma2, straight_through: bool = False) -> Any:
  """:func:`log_alpha` of every leaf that has a log sigma^2, ``None`` for the others."""
  return jax.tree.map(lambda ls2, theta: None if ls2 is None else
                      log_alpha(theta, ls2, straight_through),
                      log_sigma2, params, is_leaf=lambda x: x is None)


def kl_divergence(params, log_sigma2, straight_through: bool = False) -> jax.Array:
  """Sum of the KL approximation over the variables that have a log sigma^2 (clipped log
  alpha): kernels and convolutions' biases."""
  return _kl_of(log_alphas(params, log_sigma2, straight_through))


def _kl_of(log_alpha_tree) -> jax.Array:
  """The KL approximation summed over a tree of (clipped) log alphas."""
  return sum(-jnp.sum(negative_kl(leaf)) for leaf in jax.tree.leaves(log_alpha_tree))


def _has_log_sigma2(params) -> Any:
  """True for the kernels and for the biases of convolutions (a sibling 4-D kernel)."""
  flat = traverse_util.flatten_dict(params)

  def noisy(path, leaf):
    kernel = flat.get(path[:-1] + ("kernel",))
    return masks_lib.is_prunable(path, leaf) or (
        path[-1] == "bias" and kernel is not None and kernel.ndim == 4)
  return {path: noisy(path, leaf) for path, leaf in flat.items()}


def initial_log_sigma2(params) -> Any:
  """log sigma^2 = -10 for every kernel and convolution bias of ``params``, ``None``
  elsewhere (the public code's ``ard_init``)."""
  noisy = _has_log_sigma2(params)
  return jax.tree_util.tree_map_with_path(
      lambda path, theta: jnp.full_like(theta, INITIAL_LOG_SIGMA2)
      if noisy[tuple(entry.key for entry in path)] else None, params)


def _per_weight(indicator, params, log_sigma2, kernels: bool = True):
  """``indicator(log alpha, theta)`` as float32 for every kernel (``kernels``) or every
  bias (not ``kernels``) with a log sigma^2, ``None`` for the other leaves."""
  def leaf(path, ls2, theta):
    if ls2 is None or masks_lib.is_prunable(path, theta) != kernels:
      return None
    return indicator(log_alpha(theta, ls2), theta).astype(jnp.float32)
  return jax.tree_util.tree_map_with_path(leaf, log_sigma2, params,
                                          is_leaf=lambda x: x is None)


def variational_dropout_masks(params, log_sigma2, threshold: float = 3.0):
  """1 where a kernel weight's log alpha < ``threshold``; ``None`` for the other leaves."""
  return _per_weight(lambda log_alpha, _: log_alpha < threshold, params, log_sigma2)


def kept_biases(params, log_sigma2, threshold: float = 3.0):
  """1 where a convolution bias's log alpha < ``threshold`` (0: zeroed at evaluation);
  ``None`` for the other leaves."""
  return _per_weight(lambda log_alpha, _: log_alpha < threshold, params, log_sigma2,
                     kernels=False)


def at_lower_clip(params, log_sigma2):
  """1 where a kernel weight's log alpha sits at its lower clip (:data:`LOG_ALPHA_BOUNDS`).

  The clip passes no gradient (unless straight-through), so there the KL term
  cannot raise log sigma^2 (nor shrink theta); such a weight can only be pruned
  once the data term has shrunk theta. With log sigma^2 = -10 (a twin's start)
  these are the convolution weights with |theta| > 1/e and the dense weights
  with |theta| > 1. ``None`` for the other leaves.
  """
  return _per_weight(lambda log_alpha, theta: log_alpha <= log_alpha_bounds(theta)[0],
                     params, log_sigma2)


def sampled_weights(params, log_alpha_tree, key: jax.Array):
  """One sample w = theta + sigma * eps of every weight with a log alpha (sigma^2 = alpha
  theta^2, the variance the layers' local reparameterisation uses), one eps per weight from
  ``key``; the other leaves (``None`` in ``log_alpha_tree``) are ``params``' own."""
  flat_log_alpha, treedef = jax.tree.flatten(log_alpha_tree, is_leaf=lambda x: x is None)
  flat_theta = treedef.flatten_up_to(params)
  keys = jax.random.split(key, len(flat_theta))

  def sample(log_alpha_leaf, theta, leaf_key):
    if log_alpha_leaf is None:
      return theta
    sigma = jnp.exp(0.5 * log_alpha_leaf) * jnp.abs(theta)
    return theta + sigma * prng.normal(leaf_key, theta.shape, theta.dtype)
  return treedef.unflatten(list(map(sample, flat_log_alpha, flat_theta, keys)))


def _drop_none(tree) -> dict:
  """A nested dict without its ``None`` leaves (the shape Flax collections take)."""
  flat = traverse_util.flatten_dict(tree)
  return traverse_util.unflatten_dict({k: v for k, v in flat.items() if v is not None})


def variational_dropout(kl_weight, threshold: float = 3.0, straight_through: bool = False,
                        noise_sampling: str = "per_example") -> SparsifyMethod:
  """Sparse variational dropout with ``kl_weight(step, target) -> weight of KL / N``.

  ``kl_weight`` already includes the 1/N that scales the KL term to one
  example (the loss is the mean cross-entropy of a batch). ``straight_through``:
  log alpha's clip passes gradients during training (see :func:`log_alpha`);
  the masks are the same function of theta and log sigma^2 either way.
  ``noise_sampling``: one of :data:`NOISE_SAMPLINGS` (see the module doc).
  """
  if noise_sampling not in NOISE_SAMPLINGS:
    raise ValueError(f"noise_sampling {noise_sampling!r}: use one of {NOISE_SAMPLINGS}")
  per_batch = noise_sampling == "per_batch"

  def init(params, key, target):
    del key, target
    log_sigma2 = initial_log_sigma2(params)
    return VariationalDropoutState(variational_dropout_masks(params, log_sigma2, threshold),
                                   log_sigma2)

  def update(state, params, grads, step, target):
    del grads, step, target
    return state._replace(masks=variational_dropout_masks(params, state.trainable, threshold))

  def forward(state, params, key, step, target):
    if key is None:  # evaluation: theta where log alpha < threshold, no noise
      params = masks_lib.apply_masks(params, state.masks)
      return masks_lib.apply_masks(params, kept_biases(params, state.trainable, threshold)), \
          {}, 0.0
    noise = log_alphas(params, state.trainable, straight_through)
    penalty = kl_weight(step, target) * _kl_of(noise)
    if per_batch:
      return sampled_weights(params, noise, key), {}, penalty
    return params, {"log_alpha": _drop_none(noise)}, penalty

  return SparsifyMethod(init, update, forward, zeroes_pruned_weights=False,
                        weight_noise=not per_batch)


_DECLARATION = dict(
    fields={"kl_weight": Field(
                1.0, "weight of the KL term (1 = the variational bound; larger = sparser)",
                fields.at_least(0, "use 0 or more (1 = the variational bound)")),
            "log_alpha_threshold": Field(3.0, "log alpha at or above which a weight is pruned"),
            "kl_schedule": Field(
                "linear", "how the KL weight warms up from start_epoch to end_epoch: 'linear' "
                "(every step) or 'per_epoch' (the public model-zoo code: constant within an "
                "epoch, kl_weight x (epoch - start_epoch) / (end_epoch - start_epoch))",
                fields.one_of(KL_SCHEDULES)),
            "weight_noise_sampling": Field(
                "per_example", "how training samples the weight noise: 'per_example' (local "
                "reparameterisation, the public code) or 'per_batch' (one weight sample per "
                "member and step, shared by the batch; a departure, about the dense step's "
                "cost)", fields.one_of(NOISE_SAMPLINGS)),
            "start_epoch": fields.START_EPOCH, "end_epoch": fields.END_EPOCH,
            "trainable_learning_rate_scale": fields.TRAINABLE_LEARNING_RATE_SCALE},
    member_settings=("kl_weight",), validate=fields.check_epoch_window,
    twin_level=TwinLevel("kl_weight", "kl_weights", (100.0, 1000.0), "KL weight"),
    target_sparsity=("variational dropout's sparsity is an outcome of training, not a "
                     "target; use 0 and tune config.sparsify.kl_weight"),
    example=dict(kl_weight=100.0))


def kl_warmup(step, start: int, end: int, steps_per_epoch: int, schedule: str = "linear"):
  """The fraction of its KL weight a step uses: 0 before ``start``, 1 from ``end`` (steps).

  ``'linear'`` rises every step; ``'per_epoch'`` is the public model-zoo
  code's ``min(1, w * epoch / epochs)`` set once per epoch: 0 in the first
  epoch of the warm-up, ``(epochs - 1) / epochs`` in its last, 1 after it.
  """
  if end <= start:
    return jnp.where(step >= start, 1.0, 0.0)
  if schedule == "per_epoch":
    epochs = (end - start) // steps_per_epoch
    done = jnp.floor_divide(step - start, steps_per_epoch)
    return jnp.clip(done / epochs, 0.0, 1.0)
  return jnp.clip((step - start) / (end - start), 0.0, 1.0)


def _build(settings, training: TrainingSchedule, straight_through: bool) -> SparsifyMethod:
  """Variational dropout from ``config.sparsify`` (warm-up epochs become steps)."""
  start = settings.start_epoch * training.steps_per_epoch
  end = settings.end_epoch * training.steps_per_epoch
  default_kl_weight, schedule = settings.kl_weight, settings.kl_schedule
  steps_per_epoch = max(training.steps_per_epoch, 1)

  def kl_weight(step, target):
    scale = target.setting("kl_weight", default_kl_weight) / training.num_examples
    return scale * kl_warmup(step, start, end, steps_per_epoch, schedule)

  return variational_dropout(kl_weight, settings.log_alpha_threshold, straight_through,
                             settings.weight_noise_sampling)._replace(
      trainable_learning_rate_scale=settings.trainable_learning_rate_scale)


@register("variational_dropout", title="variational dropout", abbreviation="VD",
          summary="sparse variational dropout (Molchanov et al., ICML 2017), as the public "
          "model-zoo code trains it; sparsity is an outcome of the KL weight",
          configs=("configs/variational_dropout.py",), **_DECLARATION)
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Variational dropout as the public model-zoo code trains it: log alpha's clip passes no
  gradient. ``kl_weight`` may differ between members (see :class:`jaxsparse.sparsify.Target`).
  """
  return _build(settings, training, straight_through=False)


@register("variational_dropout_straight_through",
          title="variational dropout (straight-through clip)", abbreviation="VD-ST",
          summary="variational dropout whose log-alpha clip passes gradients (a departure "
          "from the public code)",
          # Levels of their own: the same KL weight prunes more than with the public clip.
          **{**_DECLARATION, "twin_level": TwinLevel(
              "kl_weight", "straight_through_kl_weights", (10.0, 100.0), "KL weight")})
def straight_through_from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Variational dropout whose log alpha clip passes gradients straight through (a
  departure from the public code, not its protocol): the same values, the same masks,
  but a weight whose log alpha sits at a bound is still moved by the KL term. With
  log sigma^2 = -10, a weight with |theta| > 1/e starts at a convolution's lower clip,
  which with the public clip only the data term can leave (docs/methods.md).
  """
  return _build(settings, training, straight_through=True)
