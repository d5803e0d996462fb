"""Sparse variational dropout: the KL term, the local reparameterisation, twins, populations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import engine, layers, masks, models, population, sparsify
from jaxsparse.sparsify import variational_dropout as vd

from conftest import SINGLE, assert_trees_close, method_settings, random_dataset, train_population


def numpy_negative_kl(log_alpha):
  """-KL written out from the paper's eq. 14, independently of the library."""
  k1, k2, k3 = 0.63576, 1.87320, 1.48695
  alpha = np.exp(log_alpha)
  return k1 / (1 + np.exp(-(k2 + k3 * log_alpha))) - 0.5 * np.log1p(1 / alpha) - k1


def test_negative_kl_matches_the_formula():
  log_alpha = np.array([-8.0, -3.0, 0.0, 1.5, 3.0, 8.0])
  np.testing.assert_allclose(vd.negative_kl(jnp.asarray(log_alpha)),
                             numpy_negative_kl(log_alpha), rtol=1e-5, atol=1e-6)
  # By hand: -KL(log alpha = 0) = k1 sigmoid(k2) - 0.5 log 2 - k1 = 0.55109 - 0.34657 - k1.
  np.testing.assert_allclose(vd.negative_kl(0.0), 0.55109 - 0.34657 - 0.63576, atol=1e-4)
  # The KL vanishes as alpha grows (all noise, no information) and grows as alpha shrinks.
  assert abs(vd.negative_kl(20.0)) < 1e-6
  assert np.all(np.diff(np.asarray(vd.negative_kl(jnp.linspace(-10, 10, 50)))) > 0)


def test_kl_divergence_sums_clipped_log_alpha_of_every_kernel_and_conv_bias():
  params = {"Conv_0": {"kernel": jnp.full((3, 3, 1, 2), 0.5), "bias": jnp.array([0.01, 2.0])},
            "Dense_0": {"kernel": jnp.full((4, 3), 0.1), "bias": jnp.zeros(3)}}
  log_sigma2 = {"Conv_0": {"kernel": jnp.full((3, 3, 1, 2), 30.0), "bias": jnp.full(2, -10.0)},
                "Dense_0": {"kernel": jnp.full((4, 3), -4.0), "bias": None}}
  conv_log_alpha = 8.0  # 30 - log 0.25 clipped to the conv bound
  dense_log_alpha = -4.0 - np.log(0.01 + 1e-8)
  # A convolution's bias is clipped to the convolution's bounds: -10 - log 4 -> -8.
  bias_log_alpha = np.array([-10.0 - np.log(1e-4 + 1e-8), -8.0])
  expected = -(18 * numpy_negative_kl(conv_log_alpha) + 12 * numpy_negative_kl(dense_log_alpha)
               + numpy_negative_kl(bias_log_alpha).sum())
  np.testing.assert_allclose(vd.kl_divergence(params, log_sigma2), expected, rtol=1e-5)
  kept = vd.variational_dropout_masks(params, log_sigma2)
  assert kept["Conv_0"]["bias"] is None  # sparsity counts kernels alone
  np.testing.assert_array_equal(kept["Conv_0"]["kernel"], 0.0)  # log alpha 8 >= 3: pruned
  np.testing.assert_array_equal(kept["Dense_0"]["kernel"], 1.0)  # log alpha 0.6 < 3: kept


def test_weights_at_the_lower_clip_get_no_kl_gradient():
  """at_lower_clip marks exactly the weights whose KL gradient (on log sigma^2 and on
  theta, by autodiff) is zero; with log sigma^2 = -10, U(0, 1) convolution weights are
  there with probability P(theta > 1/e) = 1 - 1/e, U(0, 1) dense weights never."""
  keys = jax.random.split(jax.random.key(0), 2)
  params = {"Conv_0": {"kernel": jax.random.uniform(keys[0], (5, 5, 8, 64))},
            "Dense_0": {"kernel": jax.random.uniform(keys[1], (300, 100))}}
  log_sigma2 = jax.tree.map(lambda p: jnp.full_like(p, vd.INITIAL_LOG_SIGMA2), params)
  clipped = vd.at_lower_clip(params, log_sigma2)
  by_theta, by_sigma = jax.grad(vd.kl_divergence, argnums=(0, 1))(params, log_sigma2)
  for name in params:
    frozen = np.asarray(clipped[name]["kernel"]) == 1
    assert np.all(np.asarray(by_sigma[name]["kernel"])[frozen] == 0)
    assert np.all(np.asarray(by_theta[name]["kernel"])[frozen] == 0)
    high = vd.log_alpha_bounds(params[name]["kernel"])[1]
    inside = ~frozen & (np.asarray(vd.log_alpha(params[name]["kernel"],
                                                log_sigma2[name]["kernel"])) < high)
    assert np.all(np.asarray(by_sigma[name]["kernel"])[inside] != 0)
  theta = np.asarray(params["Conv_0"]["kernel"])
  np.testing.assert_array_equal(np.asarray(clipped["Conv_0"]["kernel"]) == 1,
                                -10.0 - np.log(theta ** 2 + 1e-8) <= -8.0)
  assert abs(np.mean(np.asarray(clipped["Conv_0"]["kernel"])) - (1 - np.exp(-1))) < 0.01
  assert not np.any(np.asarray(clipped["Dense_0"]["kernel"]))


def test_straight_through_clip_keeps_the_value_and_passes_the_gradient_through_the_clip():
  """Straight-through: log alpha has the clipped value exactly, and the clip's backward
  pass is the identity: the KL's gradient is its derivative at the clipped log alpha
  (numpy central differences, float64) times that of log sigma^2 - log theta^2, also at
  the clip, where the public clip passes none."""
  theta = jnp.array([[0.9, 0.05], [-0.5, 2.0]])  # dense: clip [-10, 10]
  log_sigma2 = jnp.array([[-10.0, -10.0], [12.0, -1.0]])  # log alpha -9.8, -4.0, 13.4, -2.4
  params, noisy = {"Dense_0": {"kernel": theta}}, {"Dense_0": {"kernel": log_sigma2}}
  np.testing.assert_array_equal(vd.log_alpha(theta, log_sigma2, straight_through=True),
                                vd.log_alpha(theta, log_sigma2))
  assert vd.log_alpha(theta, log_sigma2)[1, 0] == 10.0  # clipped
  by_theta, by_sigma = jax.grad(lambda p, s: vd.kl_divergence(p, s, straight_through=True),
                                argnums=(0, 1))(params, noisy)
  t, s, eps = np.asarray(theta, np.float64), np.asarray(log_sigma2, np.float64), 1e-5
  clipped = np.clip(s - np.log(t * t + 1e-8), -10, 10)
  kl_slope = (numpy_negative_kl(clipped - eps) - numpy_negative_kl(clipped + eps)) / (2 * eps)
  np.testing.assert_allclose(by_sigma["Dense_0"]["kernel"], kl_slope, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(by_theta["Dense_0"]["kernel"], kl_slope * -2 * t / (t * t + 1e-8),
                             rtol=1e-4, atol=1e-6)
  public = jax.grad(vd.kl_divergence, argnums=1)(params, noisy)["Dense_0"]["kernel"]
  assert public[1, 0] == 0 and by_sigma["Dense_0"]["kernel"][1, 0] != 0


def test_straight_through_variant_trains_the_same_loss_with_other_gradients():
  """The registered straight-through variant: the same training loss and masks as the
  public clip for the same state and key; other gradients exactly where log alpha sits
  at a bound (a twin's U(0, 1) convolution weights above 1/e)."""
  data = random_dataset(num_train=8)
  model = models.get_model("cnn_s", data.input_shape)
  params = models.init_variables(model, jax.random.PRNGKey(0),
                                  models.INITIALIZERS.index("uniform"))["params"]
  schedule = sparsify.TrainingSchedule(2, 8, 4)
  settings = dict(kl_weight=1000.0, start_epoch=0, end_epoch=0)
  public, straight = (sparsify.get_method(method_settings(name, **settings), schedule)
                      for name in ("variational_dropout", "variational_dropout_straight_through"))
  target = sparsify.Target(0.0, {})
  images, labels = jnp.asarray(data.train_images[:8]), jnp.asarray(data.train_labels[:8])

  def loss_and_grads(method):
    state = method.init(params, None, target)
    def loss(trained):
      model_params, extra, penalty = method.forward(state._replace(trainable=trained), params,
                                                    jax.random.key(1), 5, target)
      logits, _ = models.apply_model(model, {"params": model_params, "batch_stats": {},
                                             **extra}, images, 0, train=True,
                                     noise_key=jax.random.key(2))
      return engine.cross_entropy(logits, labels) + penalty
    # Eager: jitted at the fast tier's optimisation level 0 this gradient is NaN where a
    # pooled maximum saturates the tanh (docs/testing.md, "A known difference ...").
    return state, jax.value_and_grad(loss)(state.trainable)

  (public_state, (public_loss, public_grads)), (straight_state, (straight_loss, straight_grads)) = (
      loss_and_grads(public), loss_and_grads(straight))
  assert public_loss == straight_loss
  assert_trees_close(public_state.masks, straight_state.masks)
  clipped = vd.at_lower_clip(params, public_state.trainable)["Conv_0"]["kernel"]
  assert 0.5 < float(np.mean(clipped)) < 0.75  # about 1 - 1/e of them
  public_conv = np.asarray(public_grads["Conv_0"]["kernel"])
  straight_conv = np.asarray(straight_grads["Conv_0"]["kernel"])
  at_clip = np.asarray(clipped) == 1
  assert np.all(public_conv[at_clip] == 0) and np.all(straight_conv[at_clip] != 0)
  np.testing.assert_allclose(straight_conv[~at_clip], public_conv[~at_clip], rtol=1e-5)


@pytest.mark.parametrize("layer", ["dense", "conv", "banded conv", "conv, noisy bias"])
def test_local_reparameterisation_has_the_weight_noise_moments(layer):
  key = jax.random.PRNGKey(0)
  if layer == "dense":
    module, x = layers.Dense(3), jax.random.normal(key, (1, 5))
  else:
    implementation = "banded" if layer == "banded conv" else "im2col"
    module = layers.Conv(3, (2, 2), implementation=implementation)
    x = jax.random.normal(key, (1, 3, 3, 2))
  params = module.init(key, x)["params"]
  params["bias"] = jnp.array([0.5, -1.0, 0.25])
  theta = params["kernel"]
  log_alpha = {"kernel": jnp.full_like(theta, np.log(0.5))}  # alpha = 0.5
  bias_variance = jnp.zeros(3)
  if layer == "conv, noisy bias":  # alpha 2 for the bias: sigma^2 = 2 b^2 adds to the variance
    log_alpha["bias"] = jnp.full(3, np.log(2.0))
    bias_variance = 2.0 * params["bias"]**2
  variables = {"params": params, "log_alpha": log_alpha}
  samples = jax.vmap(lambda k: module.apply(variables, x, rngs={"noise": k}))(
      jax.random.split(jax.random.PRNGKey(1), 20_000))
  mean = module.apply({"params": params}, x)
  variance = module.apply({"params": {**params, "kernel": 0.5 * theta**2,
                                      "bias": bias_variance}}, x * x)
  np.testing.assert_allclose(samples.mean(0), mean, atol=4 * np.sqrt(variance.max() / 20_000))
  np.testing.assert_allclose(samples.var(0), variance, rtol=0.05)


def test_per_batch_sampling_draws_weights_with_the_local_reparameterisations_variance():
  """``weight_noise_sampling='per_batch'``: one weight sample theta + sigma * eps per call,
  sigma^2 = alpha theta^2 (the variance the layers' local reparameterisation uses), for the
  kernels and the convolution's bias; the dense bias as it is; eps independent between
  leaves; no log alpha for the layers; the same KL penalty as per-example sampling."""
  rng = np.random.default_rng(0)
  params = {"Conv_0": {"kernel": jnp.asarray(rng.uniform(0.1, 1, (2, 2, 1, 4)), jnp.float32),
                       "bias": jnp.asarray([0.5, -0.3, 0.2, 0.8], jnp.float32)},
            "Dense_0": {"kernel": jnp.asarray(rng.uniform(-1, -0.1, (4, 3)), jnp.float32),
                        "bias": jnp.asarray([0.1, 0.2, 0.3], jnp.float32)}}
  alpha = {"Conv_0": 0.5, "Dense_0": 2.0}
  per_batch, per_example = (vd.variational_dropout(lambda step, target: 1e-3, noise_sampling=s)
                            for s in ("per_batch", "per_example"))
  assert not per_batch.weight_noise and per_example.weight_noise
  state = per_batch.init(params, None, None)
  state = state._replace(trainable=jax.tree.map(
      lambda ls2, theta, a: None if ls2 is None else jnp.log(a * theta**2),
      state.trainable, params,
      {k: {"kernel": a, "bias": a} for k, a in alpha.items()}, is_leaf=lambda x: x is None))
  samples, extra, penalty = jax.vmap(lambda key: per_batch.forward(state, params, key, 0, None))(
      jax.random.split(jax.random.key(3), 20_000))
  assert extra == {}
  np.testing.assert_array_equal(samples["Dense_0"]["bias"], np.broadcast_to(
      params["Dense_0"]["bias"], (20_000, 3)))
  for layer, leaf in (("Conv_0", "kernel"), ("Conv_0", "bias"), ("Dense_0", "kernel")):
    theta = np.asarray(params[layer][leaf])
    draws = np.asarray(samples[layer][leaf])
    sigma = np.sqrt(alpha[layer]) * np.abs(theta)
    np.testing.assert_allclose(draws.mean(0), theta, atol=4 * sigma.max() / np.sqrt(20_000))
    np.testing.assert_allclose(draws.var(0), sigma**2, rtol=0.05)
  eps = [((np.asarray(samples[layer][leaf]) - np.asarray(params[layer][leaf]))
          .reshape(20_000, -1)[:, 0]) for layer, leaf in (("Conv_0", "kernel"),
                                                          ("Dense_0", "kernel"))]
  assert abs(np.corrcoef(*eps)[0, 1]) < 0.05
  _, _, public_penalty = per_example.forward(state, params, jax.random.key(3), 0, None)
  np.testing.assert_allclose(penalty, np.full(20_000, public_penalty), rtol=1e-6)


def test_evaluation_zeroes_the_conv_biases_and_weights_whose_log_alpha_reaches_the_threshold():
  """As the public code's Conv2dARD at evaluation: theta and b where log alpha < 3, else 0;
  dense biases have no log sigma^2 and are kept."""
  params = {"Conv_0": {"kernel": jnp.array([0.5, 0.01, -0.2, 1.0]).reshape(1, 1, 1, 4),
                       "bias": jnp.array([0.01, 0.3, -0.001, 0.05])},
            "Dense_0": {"kernel": jnp.array([[0.001, 0.5]]), "bias": jnp.array([0.0, 0.2])}}
  method = vd.variational_dropout(lambda step, target: 1.0)
  state = method.init(params, None, None)
  np.testing.assert_array_equal(state.trainable["Conv_0"]["bias"], vd.INITIAL_LOG_SIGMA2)
  assert state.trainable["Dense_0"]["bias"] is None
  state = state._replace(trainable={
      "Conv_0": {"kernel": jnp.full((1, 1, 1, 4), -6.0), "bias": jnp.full(4, -6.0)},
      "Dense_0": {"kernel": jnp.full((1, 2), -6.0), "bias": None}})
  state = method.update(state, params, None, 0, None)
  evaluated = method.forward(state, params, None, 0, None)[0]
  for name in params:
    for leaf in ("kernel", "bias"):
      theta = np.asarray(params[name][leaf])
      low, high = (-10, 10) if name == "Dense_0" and leaf == "kernel" else (-8, 8)
      noisy = not (name == "Dense_0" and leaf == "bias")
      keep = np.clip(-6.0 - np.log(theta**2 + 1e-8), low, high) < 3 if noisy else True
      np.testing.assert_array_equal(evaluated[name][leaf], np.where(keep, theta, 0.0))
  # |theta| = 0.01 (log alpha 3.2) and 0.001 are pruned, the rest kept.
  np.testing.assert_array_equal(evaluated["Conv_0"]["bias"] != 0, [False, True, False, True])


@pytest.mark.slow
def test_twin_starts_from_the_members_weights():
  data = random_dataset(num_train=64)
  model = models.get_model("cnn_s", data.input_shape)
  method = sparsify.get_method(method_settings("variational_dropout"),
                               sparsify.TrainingSchedule(2, 64, 4))
  hyper = population.member_hyperparameters(population.member_table(SINGLE, num_seeds=2))
  trained = jax.vmap(lambda seed: models.init_variables(model, jax.random.PRNGKey(seed + 7))
                     )(jnp.arange(2))
  twins = jax.vmap(lambda h, p, b: engine.init_member(model, method, h, p, b))(
      hyper, trained["params"], trained["batch_stats"])
  assert_trees_close(twins.params, trained["params"])
  log_sigma2 = twins.sparsity_state.trainable
  assert log_sigma2["Dense_0"]["bias"] is None
  np.testing.assert_array_equal(log_sigma2["Conv_0"]["kernel"], vd.INITIAL_LOG_SIGMA2)
  np.testing.assert_array_equal(log_sigma2["Conv_0"]["bias"], vd.INITIAL_LOG_SIGMA2)


@pytest.fixture(scope="module")
def trained_vd():
  """Four CNN-s members under a strong KL weight, trained 3 epochs."""
  data = random_dataset(num_train=256)
  model = models.get_model("cnn_s", data.input_shape)
  method = sparsify.get_method(method_settings("variational_dropout", kl_weight=500.0,
                                               start_epoch=0, end_epoch=1),
                               sparsify.TrainingSchedule(8, 256, 24))
  table = population.member_table({**SINGLE, "activation": ("tanh", "relu")}, num_seeds=2)
  state, _ = train_population(model, method, table, data, epochs=3)
  return data, model, method, table, state


@pytest.mark.slow
def test_kl_prunes_weights_and_evaluation_uses_the_masks(trained_vd):
  data, model, method, table, state = trained_vd
  achieved = np.asarray(jax.vmap(masks.sparsity)(state.masks))
  assert np.all(achieved > 0.08), achieved  # from about 0.003 at initialisation
  # The masks are exactly log alpha >= 3 of the final weights.
  expected = jax.vmap(vd.variational_dropout_masks)(state.params, state.sparsity_state.trainable)
  assert_trees_close(state.masks, expected)
  hyper = population.member_hyperparameters(table)
  images, labels = jnp.asarray(data.test_images), jnp.asarray(data.test_labels)
  accuracy = engine.evaluate(engine.Program(model, method), state, hyper, images,
                             labels)["accuracy"]
  pruned = state._replace(params=masks.apply_masks(state.params, state.masks))
  dense = engine.Program(model, sparsify.dense.dense())
  np.testing.assert_allclose(
      accuracy, engine.evaluate(dense, pruned._replace(
          sparsity_state=sparsify.dense.DenseState(state.masks)), hyper, images, labels)["accuracy"])


def test_per_epoch_kl_schedule_is_the_public_codes_staircase():
  """The public code sets w = min(1, 0.01 * epoch / 25) once per epoch (epochs 0 to 24)."""
  steps_per_epoch = 7
  for step in range(0, 25 * steps_per_epoch, 3):  # the 25 epochs the public code trains
    epoch = step // steps_per_epoch
    public = min(1.0, 0.01 * epoch / 25) / 0.01
    np.testing.assert_allclose(vd.kl_warmup(step, 0, 25 * steps_per_epoch,
                                                             steps_per_epoch, "per_epoch"),
                               public, rtol=1e-6)
  linear = vd.kl_warmup(3 * steps_per_epoch + 2, 0, 25 * steps_per_epoch,
                                         steps_per_epoch)
  np.testing.assert_allclose(linear, (3 * steps_per_epoch + 2) / (25 * steps_per_epoch))
