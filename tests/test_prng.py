"""jaxsparse.prng draws exactly what jax.random draws, from a hash checked on its own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import prng


@pytest.mark.parametrize("key, count, expected", [
    # Known-answer vectors of Threefry-2x32 with 20 rounds (Random123's kat_vectors,
    # the values JAX's own tests use).
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry2x32_known_answers(key, count, expected):
  words = [jnp.asarray(np.uint32(value)) for value in (*key, *count)]
  assert tuple(int(word) for word in prng.threefry2x32(*words)) == expected


def _keys():
  return jax.random.split(jax.random.key(7), 3)


@pytest.mark.parametrize("shape", [(), (5,), (10, 28, 28, 8), (3, 1, 7)])
def test_normal_and_uniform_equal_jax_random(shape):
  # Both compiled: a training step is, and XLA may fuse a multiply-add there.
  draws = lambda module: jax.jit(lambda key: (
      module.normal(key, shape), module.uniform(key, shape),
      module.uniform(key, shape, minval=1e-6, maxval=1 - 1e-6)))
  for key in _keys():
    for mine, reference in zip(draws(prng)(key), draws(jax.random)(key)):
      np.testing.assert_array_equal(mine, reference)


def test_equal_under_jit_and_vmap_with_traced_bounds_and_probabilities():
  keys, shape = _keys(), (4, 6)
  low = jnp.asarray([-1.0, 0.0, 0.5])
  probability = jnp.asarray([0.1, 0.5, 0.9])
  ours = jax.jit(jax.vmap(lambda k, a, p: (prng.uniform(k, shape, minval=a, maxval=2.0),
                                           prng.bernoulli(k, p, shape),
                                           prng.normal(k, shape))))(keys, low, probability)
  theirs = jax.vmap(lambda k, a, p: (jax.random.uniform(k, shape, minval=a, maxval=2.0),
                                     jax.random.bernoulli(k, p, shape),
                                     jax.random.normal(k, shape)))(keys, low, probability)
  for mine, reference in zip(ours, theirs):
    np.testing.assert_array_equal(mine, reference)


def test_threefry_keys_take_the_unrolled_hash_not_jax_random():
  # The equality tests above would pass as well if every draw fell back to jax.random.
  key, shape = jax.random.key(0), (4, 6)
  for draw in (prng.normal, prng.uniform, lambda k, s: prng.bernoulli(k, 0.5, s)):
    assert "random_bits" not in str(jax.make_jaxpr(draw, static_argnums=1)(key, shape))
  assert "random_bits" in str(jax.make_jaxpr(jax.random.normal, static_argnums=1)(key, shape))


def test_raw_uint32_keys_and_python_probabilities():
  key = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(prng.normal(key, (9,)), jax.random.normal(key, (9,)))
  np.testing.assert_array_equal(prng.bernoulli(key, 0.3, (50,)),
                                jax.random.bernoulli(key, 0.3, (50,)))


def test_other_key_kinds_and_dtypes_fall_back_to_jax_random():
  key = jax.random.key(1, impl="rbg")
  np.testing.assert_array_equal(prng.normal(key, (8,)), jax.random.normal(key, (8,)))
  key = jax.random.key(1)
  half = prng.uniform(key, (8,), jnp.bfloat16)
  assert half.dtype == jnp.bfloat16
  np.testing.assert_array_equal(half, jax.random.uniform(key, (8,), jnp.bfloat16))


def test_normal_samples_are_standard_normal():
  from scipy import stats
  samples = np.asarray(prng.normal(jax.random.key(0), (20000,)))
  assert stats.kstest(samples, "norm").pvalue > 1e-3
