"""The shape of a sparsification method, and its registry.

A method is a pair of pure functions, in the spirit of optax:

- ``init(params, key, target) -> state``
- ``update(state, params, grads, step, target) -> state``

where ``state`` is a NamedTuple whose ``masks`` field is the mask pytree (see
:mod:`jaxsparse.masks`) next to whatever else the method tracks. ``target``
is the member's target sparsity and ``step`` the global training step; both
may be traced, and ``step`` is the same for all members, so a method may
branch on it with ``lax.cond`` at no cost under ``vmap``. Methods keep no
hidden state and draw randomness only from keys in their state.

Methods are registered by name with :func:`register`; a config selects one
with ``config.sparsify.method`` and :func:`get_method` builds it from
``config.sparsify``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import ml_collections

PyTree = Any


class SparsifyMethod(NamedTuple):
  """A sparsification method: ``init`` and ``update`` (see the module doc)."""
  init: Callable[[PyTree, jax.Array, jax.Array], NamedTuple]
  update: Callable[[NamedTuple, PyTree, PyTree, jax.Array, jax.Array], NamedTuple]


_REGISTRY: dict[str, Callable[..., SparsifyMethod]] = {}


def register(name: str):
  """Decorator: registers ``builder(settings, steps_per_epoch) -> SparsifyMethod`` as ``name``."""
  def decorate(builder):
    _REGISTRY[name] = builder
    return builder
  return decorate


def method_names() -> tuple[str, ...]:
  """Names of the registered methods."""
  return tuple(_REGISTRY)


def get_method(settings: ml_collections.ConfigDict, steps_per_epoch: int) -> SparsifyMethod:
  """Builds the method named ``settings.method`` from ``config.sparsify`` settings."""
  return _REGISTRY[settings.method](settings, steps_per_epoch)
