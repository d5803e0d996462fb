"""Mask helpers: exact top-k counts, deterministic ties, NumPy reference, sparsity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import masks


def params_tree(seed=0):
  rng = np.random.default_rng(seed)
  return {"Conv_0": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32),
                     "bias": jnp.zeros(4)},
          "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(10, 6)), jnp.float32),
                      "bias": jnp.zeros(6)}}


def numpy_layerwise(weights, sparsity):
  """Straightforward reference: sort |w| descending (stable), keep the first round((1-s) n)."""
  flat = np.abs(np.asarray(weights)).ravel()
  keep = flat.size - int(np.round(sparsity * flat.size))
  order = np.argsort(-flat, kind="stable")
  mask = np.zeros(flat.size, np.float32)
  mask[order[:keep]] = 1
  return mask.reshape(weights.shape)


def test_dense_masks_cover_kernels_only():
  tree = masks.dense_masks(params_tree())
  assert tree["Conv_0"]["bias"] is None and tree["Dense_0"]["bias"] is None
  np.testing.assert_array_equal(tree["Dense_0"]["kernel"], 1.0)
  assert float(masks.sparsity(tree)) == 0.0


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.8, 0.9, 0.95])
def test_layerwise_masks_equal_numpy_reference_with_exact_counts(sparsity):
  params = params_tree()
  scores = jax.tree.map(jnp.abs, params)
  result = masks.layerwise_top_k_masks(scores, masks.dense_masks(params), sparsity)
  for layer in ("Conv_0", "Dense_0"):
    kernel = params[layer]["kernel"]
    np.testing.assert_array_equal(result[layer]["kernel"], numpy_layerwise(kernel, sparsity))
    assert int(result[layer]["kernel"].sum()) == kernel.size - int(np.round(sparsity * kernel.size))
  assert result["Conv_0"]["bias"] is None


def test_global_masks_use_one_threshold_over_all_layers():
  params = params_tree()
  scores = jax.tree.map(jnp.abs, params)
  result = masks.global_top_k_masks(scores, masks.dense_masks(params), 0.7)
  all_weights = np.concatenate([np.abs(np.asarray(params[l]["kernel"])).ravel()
                                for l in ("Conv_0", "Dense_0")])
  keep = all_weights.size - int(np.round(0.7 * all_weights.size))
  threshold = np.sort(all_weights)[::-1][keep - 1]
  kept = sum(int(result[l]["kernel"].sum()) for l in ("Conv_0", "Dense_0"))
  assert kept == keep
  for layer in ("Conv_0", "Dense_0"):
    weights = np.abs(np.asarray(params[layer]["kernel"]))
    np.testing.assert_array_equal(result[layer]["kernel"], (weights >= threshold).astype(np.float32))


def test_ties_are_broken_by_position_and_jit_agrees():
  scores = jnp.asarray([1.0, 3.0, 3.0, 3.0, 2.0])
  np.testing.assert_array_equal(masks.keep_top_k(scores, 2), [0, 1, 1, 0, 0])
  np.testing.assert_array_equal(jax.jit(masks.keep_top_k)(scores, 2), [0, 1, 1, 0, 0])


def numpy_keep_top_k(scores, num_keep):
  """Reference: a stable descending argsort (NaN last, -0.0 equal to 0.0), first num_keep."""
  order = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), kind="stable")
  order = np.concatenate([order[~np.isnan(scores[order])], order[np.isnan(scores[order])]])
  kept = np.zeros(scores.size, np.float32)
  kept[order[:num_keep]] = 1
  return kept


def test_keep_top_k_matches_a_stable_numpy_sort_with_ties_signed_zeros_and_nans():
  rng = np.random.default_rng(0)
  keep = jax.jit(jax.vmap(masks.keep_top_k))
  for _ in range(20):
    size = int(rng.integers(1, 60))
    scores = rng.integers(-3, 4, (4, size)).astype(np.float32) * 0.5  # many ties
    scores[rng.random((4, size)) < 0.2] = -0.0
    scores[1] = rng.normal(size=size)
    scores[2, rng.random(size) < 0.2] = np.nan
    scores[3] = [np.inf, -np.inf, 1e-30, -1e-30] * (size // 4) + [
        0.0] * (size % 4)
    num_keep = rng.integers(0, size + 1, 4)
    result = keep(jnp.asarray(scores), jnp.asarray(num_keep, jnp.int32))
    for member in range(4):
      np.testing.assert_array_equal(result[member],
                                    numpy_keep_top_k(scores[member], num_keep[member]))


def test_per_member_sparsity_under_vmap_equals_each_member_alone():
  population = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[params_tree(s) for s in range(3)])
  targets = jnp.asarray([0.5, 0.8, 0.95])

  def prune(params, target):
    return masks.layerwise_top_k_masks(jax.tree.map(jnp.abs, params),
                                       masks.dense_masks(params), target)

  together = jax.jit(jax.vmap(prune))(population, targets)
  for index in range(3):
    alone = prune(params_tree(index), float(targets[index]))
    np.testing.assert_array_equal(together["Dense_0"]["kernel"][index], alone["Dense_0"]["kernel"])
    assert abs(float(masks.sparsity(jax.tree.map(lambda m: m[index], together)))
               - float(targets[index])) < 0.02


def test_layer_sparsity_reports_each_prunable_leaf():
  params = params_tree()
  result = masks.layerwise_top_k_masks(jax.tree.map(jnp.abs, params), masks.dense_masks(params), 0.75)
  per_layer = masks.layer_sparsity(result)
  assert set(per_layer) == {"Conv_0/kernel", "Dense_0/kernel"}
  assert float(per_layer["Conv_0/kernel"]) == pytest.approx(0.75)  # 54 of 72 pruned
  assert float(per_layer["Dense_0/kernel"]) == pytest.approx(0.75)  # 45 of 60 pruned


def test_erk_budget_meets_the_target_and_favours_small_layers():
  shapes = [(5, 5, 1, 8), (5, 5, 8, 6), (2, 2, 6, 4), (36, 20), (20, 10)]
  sizes = np.array([np.prod(shape) for shape in shapes])
  for target in (0.5, 0.8, 0.95):
    per_layer = np.array(masks.erk_sparsities(shapes, target))
    assert np.all((0 <= per_layer) & (per_layer < 1))
    np.testing.assert_allclose(np.sum(sizes * per_layer) / sizes.sum(), target, atol=1e-5)
    # Erdos-Renyi-Kernel density grows with sum(shape) / prod(shape).
    raw = np.array([sum(shape) / np.prod(shape) for shape in shapes])
    sparse = per_layer > 0
    assert np.all(np.diff(per_layer[sparse][np.argsort(raw[sparse])]) <= 1e-6)
  # At 50 % the layers whose ERK density would exceed 1 are kept dense.
  assert list(np.array(masks.erk_sparsities(shapes, 0.5)) == 0) == [False, False, True, False, True]


def test_erk_masks_keep_each_layers_budget_exactly():
  params = {"a": {"kernel": jnp.arange(120.0).reshape(10, 12)},
            "b": {"kernel": jnp.arange(30.0).reshape(3, 10), "bias": jnp.zeros(10)}}
  kept = masks.top_k_masks(params, masks.dense_masks(params), 0.7, "erk")
  per_layer = masks.erk_sparsities([(10, 12), (3, 10)], 0.7)
  for name, size, sparsity in (("a", 120, per_layer[0]), ("b", 30, per_layer[1])):
    assert int(np.sum(kept[name]["kernel"] == 0)) == round(float(sparsity) * size)
  assert kept["b"]["bias"] is None
