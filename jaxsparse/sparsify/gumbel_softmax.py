"""Subnetwork extraction with Gumbel-softmax (Dupont, Alaoui, Sahbi & Lebois, ICIP 2022).

The weights stay frozen at their random initialisation; every prunable weight
gets a learnable logit, and each step samples a binary keep/drop mask from the
binary concrete (Gumbel-softmax) relaxation at temperature tau: the forward
pass uses the hard sample (logit + logistic noise > 0), the backward pass the
gradient of the soft one, sigmoid((logit + noise) / tau) (straight-through).
tau anneals exponentially from ``temperature_start`` to ``temperature_end``
over the run. With ``rescale`` each layer learns a scale of its surviving
weights, which compensates the signal lost to dropped weights. At evaluation
the mask is the most probable one, logit > 0. The logits learn at
``trainable_learning_rate_scale`` times the member's learning rate, the
scales at ``scales_learning_rate_scale`` times it (the frozen weights at none).

Sparsity is an outcome of training; with ``sparsity_penalty`` > 0 a
quadratic penalty pulls the expected kept fraction of every prunable tensor
(mean of sigmoid(logit)) to 1 - the member's target sparsity.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsparse import masks as masks_lib, prng
from jaxsparse.sparsify import fields
from jaxsparse.sparsify.base import SparsifyMethod, TrainingSchedule
from jaxsparse.sparsify.registry import Field, register


class GumbelSoftmaxState(NamedTuple):
  """State of Gumbel-softmax mask learning.

  Attributes:
    masks: the most probable mask, logit > 0 (recomputed after every step).
    trainable: ``{'logits': ...}`` (one per prunable weight, ``None``
      elsewhere) and, with rescaling, ``{'scales': ...}`` (one scalar per
      prunable tensor).
  """
  masks: Any
  trainable: Any


#: Logits start here: keep probability sigmoid(3) = 0.95, so training starts
#: from (nearly) the whole random network and learns what to drop. Starting at
#: the target's keep probability instead leaves all logits equal and below 0
#: for targets above 50 %, where the most probable mask is empty.
INITIAL_LOGIT = 3.0


def sample_mask(key: jax.Array, logits: jax.Array, temperature: jax.Array | float) -> jax.Array:
  """A hard 0/1 binary-concrete sample with straight-through gradients to ``logits``.

  P(1) = sigmoid(logit): logistic noise L makes logit + L > 0 with exactly
  that probability.
  """
  uniform = prng.uniform(key, logits.shape, minval=1e-6, maxval=1.0 - 1e-6)
  noisy = logits + jnp.log(uniform) - jnp.log1p(-uniform)
  return masks_lib.straight_through((noisy > 0).astype(logits.dtype),
                                    jax.nn.sigmoid(noisy / temperature))


def density_penalty(logits, target: jax.Array | float) -> jax.Array:
  """Mean over prunable tensors of (expected kept fraction - (1 - target))^2.

  Per tensor rather than overall, so that no layer can be emptied (which
  kills the frozen network's signal) while others stay dense.
  """
  leaves = [leaf for leaf in jax.tree.leaves(logits) if leaf is not None]
  return sum((jnp.mean(jax.nn.sigmoid(leaf)) - (1.0 - target)) ** 2
             for leaf in leaves) / len(leaves)


def gumbel_softmax(temperature, rescale: bool = True, sparsity_penalty: float = 0.0,
                   initial_logit: float = INITIAL_LOGIT) -> SparsifyMethod:
  """Gumbel-softmax mask learning with ``temperature(step, target) -> tau``, every logit
  starting at ``initial_logit``."""

  def most_probable(logits):
    return jax.tree.map(lambda leaf: None if leaf is None else (leaf > 0).astype(jnp.float32),
                        logits, is_leaf=lambda x: x is None)

  def init(params, key, target):
    del key, target
    prunable = masks_lib.dense_masks(params)
    trainable = {"logits": masks_lib.map_prunable(
        lambda p: jnp.full_like(p, initial_logit), prunable, params)}
    if rescale:
      trainable["scales"] = masks_lib.map_prunable(lambda p: jnp.ones((), p.dtype), prunable,
                                                   params)
    return GumbelSoftmaxState(most_probable(trainable["logits"]), trainable)

  def update(state, params, grads, step, target):
    del params, grads, step, target
    return state._replace(masks=most_probable(state.trainable["logits"]))

  def forward(state, params, key, step, target):
    logits = state.trainable["logits"]
    if key is None:
      kept, penalty = state.masks, 0.0
    else:
      keys = masks_lib.key_per_leaf(key, logits)
      tau = temperature(step, target)
      kept = masks_lib.map_prunable(lambda k, logit: sample_mask(k, logit, tau),
                                    state.masks, keys, logits)
      penalty = sparsity_penalty * density_penalty(logits, target.sparsity)
    weights = masks_lib.apply_masks(params, kept)
    if rescale:
      weights = jax.tree.map(lambda w, s: w if s is None else w * s, weights,
                             state.trainable["scales"], is_leaf=lambda x: x is None)
    return weights, {}, penalty

  return SparsifyMethod(init, update, forward, trains_weights=False,
                        zeroes_pruned_weights=False)


_TEMPERATURE_CHECK = fields.positive("use a positive temperature, e.g. 0.5")
_SCALE_CHECK = fields.positive("use a positive multiple of the member's learning rate, e.g. 10")


@register("gumbel_softmax", title="Gumbel-softmax", uses_run_length=True,
          summary="masks over frozen weights from Gumbel-softmax samples (Dupont et al., ICIP "
          "2022)", configs=("configs/gumbel_softmax.py", "configs/gumbel_softmax_dupont.py"),
          fields={"temperature_start": Field(1.0, "temperature at the first step",
                                             _TEMPERATURE_CHECK),
                  "temperature_end": Field(0.1, "temperature at the last step (annealed "
                                           "exponentially)", _TEMPERATURE_CHECK),
                  "rescale": Field(True, "learn a scale of each layer's kept weights"),
                  "sparsity_penalty": Field(
                      0.0, "weight of the penalty pulling the kept fraction to 1 - target "
                      "(0 = sparsity is an outcome)", fields.at_least(0, "use 0 (off) or more")),
                  "initial_logit": Field(
                      INITIAL_LOGIT, "every mask logit's first value (keep probability "
                      "sigmoid(logit)); Dupont et al.'s code starts at 0",
                      fields.finite("use a finite number, e.g. 0")),
                  # Here the logits' rate; the scales have their own.
                  "trainable_learning_rate_scale": fields.TRAINABLE_LEARNING_RATE_SCALE,
                  "scales_learning_rate_scale": Field(
                      1.0, "learning rate of Gumbel-softmax's per-layer scales, as a multiple "
                      "of the member's", _SCALE_CHECK)},
          member_settings=("temperature_start", "temperature_end"),
          example=dict(sparsity_penalty=50.0))
def from_settings(settings, training: TrainingSchedule) -> SparsifyMethod:
  """Builds Gumbel-softmax mask learning from ``config.sparsify``.

  The temperature schedule's ends may differ between members (see
  :class:`jaxsparse.sparsify.Target`).
  """
  num_steps = max(training.num_steps, 1)
  default_start, default_end = settings.temperature_start, settings.temperature_end

  def temperature(step, target):
    start = target.setting("temperature_start", default_start)
    end = target.setting("temperature_end", default_end)
    return start * (end / start) ** jnp.clip(step / num_steps, 0.0, 1.0)
  method = gumbel_softmax(temperature, settings.rescale, settings.sparsity_penalty,
                          settings.initial_logit)
  return method._replace(trainable_learning_rate_scale=(
      ("logits", settings.trainable_learning_rate_scale),
      ("scales", settings.scales_learning_rate_scale)))
