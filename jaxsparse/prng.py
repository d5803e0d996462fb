"""The random draws of a training step, bit for bit ``jax.random``'s, fused on the CPU.

JAX lowers its threefry2x32 hash on the CPU as a rolled loop (a ``fori_loop``
over the hash's five key injections), which XLA:CPU runs as separate passes
over memory; on the GPU it uses the unrolled hash or a kernel. The same hash
written out here as ``jax.numpy`` operations fuses into one elementwise kernel
with the conversion to floats (64 members' [10, 28, 28, 8] normals: 6.9
instead of 27.5 ms), and each draw is computed once per step however many
fusions read it (:func:`_hashed`). Variational dropout draws one normal per
example and output unit at every step, so this draw was much of its step
(docs/history/benchmarks-2026-11.md).

Each function returns exactly what its ``jax.random`` namesake returns for the
same key (tested): the hash of the element's index under JAX's default
"partitionable" bit layout (``jax_threefry_partitionable``, on since JAX 0.5)
and JAX's conversion of 32 bits to a float32. So a switch changes no number a
run makes. For any other key kind, layout, dtype or size it calls
``jax.random`` itself.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def threefry2x32(key1: jax.Array, key2: jax.Array, count1: jax.Array,
                 count2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The Threefry-2x32 hash (20 rounds, Salmon et al. 2011) of the counter pair
  (``count1``, ``count2``) under the key (``key1``, ``key2``), all uint32, unrolled."""
  keys = (key1, key2, key1 ^ key2 ^ _KEY_PARITY)
  x1, x2 = count1 + keys[0], count2 + keys[1]
  for injection in range(5):
    for rotation in _ROTATIONS[injection % 2]:
      x1 = x1 + x2
      x2 = ((x2 << np.uint32(rotation)) | (x2 >> np.uint32(32 - rotation))) ^ x1
    x1 = x1 + keys[(injection + 1) % 3]
    x2 = x2 + keys[(injection + 2) % 3] + np.uint32(injection + 1)
  return x1, x2


def _threefry_key(key: jax.Array, shape: Sequence[int], dtype) -> jax.Array | None:
  """The two uint32 words of ``key`` if ``jax.random`` would hash it with threefry2x32 in
  the partitionable layout into float32 ``shape``; else None (use ``jax.random``)."""
  if jnp.dtype(dtype) != jnp.float32 or not jax.config.jax_threefry_partitionable:
    return None
  if int(np.prod(shape)) >= 2**32 - 1:  # the index would need its high word
    return None
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key) if str(jax.random.key_impl(key)) == "threefry2x32" else None
  return key if jax.config.jax_default_prng_impl == "threefry2x32" else None


def _hashed(words: jax.Array, shape: Sequence[int], to_values) -> jax.Array:
  """``to_values`` of ``jax.random.bits(key, shape)`` (the hash of each element's flat
  index under the key ``words``), computed once.

  The draw runs as a loop over the two halves of the indices. XLA:CPU fuses
  an elementwise producer into each of its consumers, so a noise sample
  drawn in plain operations is hashed and converted again in every fusion
  that reads it (four per pooled convolution in a variational-dropout step:
  the forward pass and three of the backward pass); a loop's result is a
  buffer the fusions read. A loop of one trip would be inlined, so two.
  """
  size = int(np.prod(shape))
  half = -(-size // 2)

  def half_values(start):
    index = lax.iota(jnp.uint32, half) + start
    high, low = threefry2x32(words[0], words[1], jnp.zeros_like(index), index)
    return to_values(high ^ low)

  values = lax.map(half_values, jnp.asarray([0, half], jnp.uint32))
  return values.reshape(-1)[:size].reshape(shape)


def _unit_floats(bits: jax.Array) -> jax.Array:
  """JAX's float32 in [0, 1) from 32 random bits: 23 of them as the mantissa of [1, 2)."""
  mantissa = (bits >> np.uint32(9)) | np.float32(1.0).view(np.uint32)
  return lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)


def _between(floats: jax.Array, minval, maxval) -> jax.Array:
  """JAX's map of [0, 1) floats onto [``minval``, ``maxval``)."""
  return lax.max(minval, floats * (maxval - minval) + minval)


def uniform(key: jax.Array, shape: Sequence[int] = (), dtype=jnp.float32,
            minval: float | jax.Array = 0.0, maxval: float | jax.Array = 1.0) -> jax.Array:
  """``jax.random.uniform(key, shape, dtype, minval, maxval)``, fused on the CPU."""
  shape = tuple(shape)
  words = _threefry_key(key, shape, dtype)
  if words is None:
    return jax.random.uniform(key, shape, dtype, minval, maxval)
  minval = lax.broadcast_to_rank(lax.convert_element_type(minval, dtype), len(shape))
  maxval = lax.broadcast_to_rank(lax.convert_element_type(maxval, dtype), len(shape))
  return _between(_hashed(words, shape, _unit_floats), minval, maxval)


def normal(key: jax.Array, shape: Sequence[int] = (), dtype=jnp.float32) -> jax.Array:
  """``jax.random.normal(key, shape, dtype)`` (the inverse CDF of a uniform), fused on the CPU."""
  shape = tuple(shape)
  words = _threefry_key(key, shape, dtype)
  if words is None:
    return jax.random.normal(key, shape, dtype)
  low = np.nextafter(np.float32(-1.0), np.float32(0.0))

  def standard_normal(bits):  # inside the loop, so the inverse CDF is computed once too
    return np.float32(np.sqrt(2)) * lax.erf_inv(_between(_unit_floats(bits), low,
                                                          np.float32(1.0)))

  return _hashed(words, shape, standard_normal)


def bernoulli(key: jax.Array, p: jax.Array | float, shape: Sequence[int]) -> jax.Array:
  """``jax.random.bernoulli(key, p, shape)``: True with probability ``p``, fused on the CPU."""
  return uniform(key, shape, lax.dtype(p)) < p
