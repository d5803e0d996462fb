"""A population's memory, estimated before anything is compiled, against what the device has.

A population too large for memory otherwise fails deep inside XLA (an
allocation error for terabytes, or the kernel's out-of-memory killer) after
minutes of compiling. :func:`check_fits` names the problem and the fix
(``config.population.chunk_size``, fewer members or more devices) first.

The estimate is deliberately rough: the population's state (every member's
weights, optimizer state, masks and method state, exact), the data splits
held on the device (exact), and the larger of two working sets, which never
coexist: the activations of the members trained at once (batch x the sum of
the model's layer outputs per example x :data:`ACTIVATION_FACTOR`, for the
backward pass's buffers and the gradients' temporaries), and those of the
members evaluated at once (evaluation batch x the same sum x
:data:`EVALUATION_FACTOR`).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsparse import engine, sharding
from jaxsparse.errors import UserError

#: Bytes counted per activation element while training: float32 for the forward
#: value, its gradient and one temporary (a rough bound, not a measurement).
ACTIVATION_FACTOR = 3 * 4
#: Bytes counted per activation element while evaluating: one float32 (forward only). For
#: 10 ResNet-18s evaluated at once in batches of 1,000 on 32x32 images this gives 59 GB;
#: XLA asked for 55.7 GB (and failed) on this machine on 2026-12-05 (docs/modelzoo.md).
EVALUATION_FACTOR = 4
#: Share of the available memory a population may plan to use.
USABLE_SHARE = 0.9


class MemoryEstimate(NamedTuple):
  """Bytes a population needs on one device: state, data, the activations of the members
  trained at once (``members_at_once``) and those of the same members evaluated at once in
  batches of ``eval_batch``."""
  state: int
  data: int
  activations: int
  members_at_once: int
  evaluation: int
  eval_batch: int

  @property
  def total(self) -> int:
    """All of it (training and evaluation take turns, so the larger of the two)."""
    return self.state + self.data + max(self.activations, self.evaluation)


def activation_elements(model) -> int:
  """Elements of every layer's output for one example (without running the model)."""
  dummy = jnp.zeros((1, *model.input_shape), jnp.float32)

  def forward(dummy):
    variables = model.module.init(jax.random.PRNGKey(0), dummy, activation=0,
                                  dropout_rate=0.0, train=False)
    _, state = model.module.apply(variables, dummy, activation=0, dropout_rate=0.0,
                                  train=False, capture_intermediates=True,
                                  mutable=["intermediates"])
    return state["intermediates"]
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(jax.eval_shape(forward, dummy)))


def estimate(run, num_examples: int, image_shape: tuple[int, ...]) -> MemoryEstimate:
  """The :class:`MemoryEstimate` of ``run`` (an :class:`jaxsparse.build.Setup`)
  on one of its devices, for data of ``num_examples`` images of ``image_shape``."""
  program = run.program
  shards = sharding.num_shards(program.mesh)
  abstract = jax.eval_shape(engine.init_population, program._replace(mesh=None), run.hyper)
  state = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(abstract)) // shards
  data = num_examples * math.prod(image_shape) * 4
  per_device = -(-run.padded_size // shards)
  at_once = min(program.chunk_size or per_device, per_device)
  elements = activation_elements(program.model)
  eval_batch = max(1, min(program.eval_batch_size, num_examples))
  return MemoryEstimate(state, data, at_once * elements * ACTIVATION_FACTOR * program.batch_size,
                        at_once, at_once * elements * EVALUATION_FACTOR * eval_batch, eval_batch)


def available_bytes() -> int | None:
  """Memory a computation may use on the first local device (None when unknown)."""
  device = jax.local_devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    return stats.get("bytes_limit")
  try:
    with open("/proc/meminfo") as file:
      fields = dict(line.split(":", 1) for line in file)
    return int(fields["MemAvailable"].split()[0]) * 1024
  except (OSError, KeyError, ValueError):
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else None
    return pages * os.sysconf("SC_PAGE_SIZE") if pages else None


def check_fits(run, num_examples: int, image_shape: tuple[int, ...],
               available: int | None = None) -> MemoryEstimate:
  """Raises :class:`UserError` if ``run`` would not fit in ``available`` bytes (default:
  :func:`available_bytes`), naming the estimate and the fix. Returns the estimate."""
  needed = estimate(run, num_examples, image_shape)
  available = available_bytes() if available is None else available
  if available is None or needed.total <= USABLE_SHARE * available:
    return needed
  gib = lambda value: (f"{value / 2**30:.1f} GiB" if value >= 2**30 else
                       f"{value / 2**20:.0f} MiB")
  working = (f"activations {gib(needed.activations)} for {needed.members_at_once} members at "
             f"once, evaluation {gib(needed.evaluation)} in batches of {needed.eval_batch}")
  raise UserError(
      f"the population needs about {gib(needed.total)} per device (state {gib(needed.state)}, "
      f"data {gib(needed.data)}, {working}), more than the {gib(available)} available; "
      f"{_fix(needed, USABLE_SHARE * available - needed.state - needed.data)}")


def _fix(needed: MemoryEstimate, room: float) -> str:
  """What makes ``needed`` fit in ``room`` bytes beside the state and data: fewer members
  trained at once if training's activations need it, then (for that many members) a smaller
  evaluation batch if evaluation's need it (cheaper than evaluating fewer members at once)."""
  state_fix = ("the members' state alone does not fit: train fewer members, or split them "
               "over more devices (config.population.num_devices)")
  fixes, at_once = [], needed.members_at_once
  if needed.activations > room:
    per_member = needed.activations / at_once
    if room < per_member:
      return state_fix
    at_once = int(room // per_member)
    fixes.append(f"set config.population.chunk_size={at_once} or less (members trained at "
                 "once on a device)")
  per_example = needed.evaluation / needed.members_at_once / needed.eval_batch * at_once
  if per_example * needed.eval_batch > room:
    if room < per_example:
      return state_fix
    fixes.append(f"set config.training.eval_batch_size={int(room // per_example)} or less "
                 f"(examples evaluated at once by {at_once} members)")
  return " and ".join(fixes)


#: Share of the available memory an evaluation's activations may plan to use (the rest is
#: for the data and the population's state).
EVALUATION_SHARE = 0.5


def fitted_evaluation(config, model, num_members: int, available: int | None = None):
  """``config`` with ``population.chunk_size`` and ``training.eval_batch_size`` lowered, when
  needed, so that evaluating ``num_members`` members of ``model`` (a
  :class:`jaxsparse.models.Model`) keeps its activations (members at once x batch x
  :func:`activation_elements` x :data:`EVALUATION_FACTOR`) within
  :data:`EVALUATION_SHARE` of ``available`` bytes (default: :func:`available_bytes`): first
  one member at a time, then smaller batches. By this estimate a ResNet-18 zoo evaluated 10
  members at once in batches of 1,000 needs about 59 GB. Returns ``config`` itself when it
  fits."""
  available = available_bytes() if available is None else available
  if available is None:
    return config
  per_example = activation_elements(model) * EVALUATION_FACTOR
  budget = EVALUATION_SHARE * available
  at_once = min(config.population.chunk_size or num_members, num_members)
  batch = config.training.eval_batch_size
  if at_once * batch * per_example <= budget:
    return config
  config = config.copy_and_resolve_references()
  config.population.chunk_size = 1
  config.training.eval_batch_size = int(max(1, min(batch, budget // per_example)))
  return config

