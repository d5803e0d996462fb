"""Sparse variational dropout (Molchanov, Ashukha & Vetrov, ICML 2017).

Every prunable weight is Gaussian, w = theta + sigma * eps, with the additive
reparameterisation: theta (the model's weights) and log sigma^2 (this
method's trainable variables, one per weight) are learned, and
log alpha = log sigma^2 - log theta^2 measures how noisy a weight is. The
layers sample their outputs with the local reparameterisation trick (see
:func:`jaxsparse.layers._linear_output`). The loss adds the KL divergence of
the log-uniform prior, approximated as in the paper, scaled to the data set
(``kl_weight`` = 1 is the variational lower bound) and warmed up linearly from
0 between ``start_epoch`` and ``end_epoch``. Weights with log alpha >= the
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
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxsparse import layers
from jaxsparse import masks as masks_lib
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import Field, TwinLevel, register

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


def kl_divergence(params, log_sigma2) -> jax.Array:
  """Sum of the KL approximation over the variables that have a log sigma^2 (clipped log
  alpha): kernels and convolutions' biases."""
  terms = jax.tree.map(
      lambda ls2, theta: 0.0 if ls2 is None else
      -jnp.sum(negative_kl(layers.log_alpha(theta, ls2))),
      log_sigma2, params, is_leaf=lambda x: x is None)
  return sum(jax.tree.leaves(terms))


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
    return indicator(layers.log_alpha(theta, ls2), theta).astype(jnp.float32)
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
  """1 where a kernel weight's log alpha sits at its lower clip (``layers.LOG_ALPHA_BOUNDS``).

  The clip passes no gradient, so there the KL term cannot raise log sigma^2 (nor
  shrink theta); such a weight can only be pruned once the data term has shrunk
  theta. With log sigma^2 = -10 (a twin's start) these are the convolution weights
  with |theta| > 1/e and the dense weights with |theta| > 1. ``None`` for the other
  leaves.
  """
  return _per_weight(lambda log_alpha, theta: log_alpha <= layers.log_alpha_bounds(theta)[0],
                     params, log_sigma2)


def _drop_none(tree) -> dict:
  """A nested dict without its ``None`` leaves (the shape Flax collections take)."""
  flat = traverse_util.flatten_dict(tree)
  return traverse_util.unflatten_dict({k: v for k, v in flat.items() if v is not None})


def variational_dropout(kl_weight, threshold: float = 3.0) -> SparsifyMethod:
  """Sparse variational dropout with ``kl_weight(step, target) -> weight of KL / N``.

  ``kl_weight`` already includes the 1/N that scales the KL term to one
  example (the loss is the mean cross-entropy of a batch).
  """
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
    penalty = kl_weight(step, target) * kl_divergence(params, state.trainable)
    return params, {"log_sigma2": _drop_none(state.trainable)}, penalty

  return SparsifyMethod(init, update, forward, zeroes_pruned_weights=False)


@register("variational_dropout", title="variational dropout", abbreviation="VD",
          fields={"kl_weight": Field(
                      1.0, "weight of the KL term (1 = the variational bound; larger = sparser)",
                      fields.at_least(0, "use 0 or more (1 = the variational bound)")),
                  "log_alpha_threshold": Field(3.0, "log alpha at or above which a weight is "
                                               "pruned"),
                  "start_epoch": fields.START_EPOCH, "end_epoch": fields.END_EPOCH,
                  "trainable_learning_rate_scale": fields.TRAINABLE_LEARNING_RATE_SCALE},
          member_settings=("kl_weight",), validate=fields.check_epoch_window,
          twin_level=TwinLevel("kl_weight", "kl_weights", (100.0, 1000.0), "KL weight"),
          target_sparsity=("variational dropout's sparsity is an outcome of training, not a "
                           "target; use 0 and tune config.sparsify.kl_weight"),
          example=dict(kl_weight=100.0))
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds variational dropout from ``config.sparsify`` (warm-up epochs become steps).

  ``kl_weight`` may differ between members (see :class:`jaxsparse.sparsify.Target`).
  """
  start = settings.start_epoch * training.steps_per_epoch
  end = settings.end_epoch * training.steps_per_epoch
  default_kl_weight = settings.kl_weight

  def kl_weight(step, target):
    scale = target.setting("kl_weight", default_kl_weight) / training.num_examples
    if end <= start:
      return jnp.where(step >= start, scale, 0.0)
    return scale * jnp.clip((step - start) / (end - start), 0.0, 1.0)

  return variational_dropout(kl_weight, settings.log_alpha_threshold)._replace(
      trainable_learning_rate_scale=settings.trainable_learning_rate_scale)
