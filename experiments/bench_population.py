"""Population training throughput: jaxsparse against the alternatives, in one run.

Every measurement trains P members of one model for ``--steps`` steps on
synthetic data already in memory (after a compiling call; the fastest of 3
calls) and reports
member-steps per second, examples per second and achieved GFLOP/s (forward
+ backward counted as 3x the forward multiply-adds x 2 FLOPs), with compile
time and peak memory. Each runs in its own subprocess, so compile time and
peak memory belong to it alone. Implementations:

- ``jaxsparse``, ``jaxsparse_magnitude``, ``jaxsparse_vd``: the engine
  (dense, with magnitude masks, with variational dropout);
- ``jaxsparse_vd_per_batch``: variational dropout with one weight sample per
  member and step instead of local reparameterisation (a departure from the
  public protocol: ``config.sparsify.weight_noise_sampling = 'per_batch'``);
- ``naive_flax``: jit(vmap(scan)) over straightforward flax.linen layers
  (nn.Conv, nn.max_pool, nn.Dense) with optax Adam;
- ``python_loop``: a Python loop over members calling one jitted
  single-model step of the same flax model;
- ``jaxsparse_gumbel``, ``jaxsparse_edge_popup``: the engine training
  Gumbel-softmax and edge-popup supermasks;
- ``torch_loop`` and ``torch_func``: PyTorch (CPU) loop over models, and the
  torch.func ensemble (stack_module_state + functional_call + vmap), when
  torch is installed (``pip install -e '.[bench]'``);
- ``torch_grouped`` and ``torch_grouped_compiled``: the ensemble as a
  researcher writes it by hand, the members as the groups of one grouped
  ``Conv2d`` per layer and one batched matmul per dense layer
  (experiments/torch_grouped.py, tested member by member against each network
  alone), eager and under ``torch.compile`` (compilation excluded);
- ``jaxsparse_activations`` and ``jaxsparse_interleaved``: the engine with
  members mixing the four activations (P/4 each), as the hyperparameter zoo
  does: in blocks (each chunk's members share an activation, which the engine
  then computes alone) or interleaved in the member table (the engine chunks
  members in the order of their activations, so this measures that sort);
- ``jaxsparse_shared`` and ``torch_func_shared``: the same two when every
  member trains on the same batch (``training.shared_order_seed``; torch.func
  with ``in_dims=None`` for the data), a row of its own: the first layer's
  matmuls of all members become one.

Every other implementation gives each member its own batches (its own
permutation of the data), as the model zoos train.
- ``gemm``: the machine's float32 matrix-multiply rate, the ceiling.

Usage::

  python experiments/bench_population.py                     # the targets: ratios at batch 10 and 32
  python experiments/bench_population.py --set --out=bench.json          # every implementation
  python experiments/bench_population.py --set --full --out=bench.json   # every combination
  python experiments/bench_population.py --gpu --chunk 0 --steps 20 --impls jaxsparse,torch_func
  python experiments/bench_population.py --impl jaxsparse --model cnn_s --population 64 --batch 32
  python experiments/bench_population.py --repeats 3 --impls jaxsparse,torch_func --batch 32
  python experiments/bench_population.py --repeats 3 --impls jaxsparse --populations 8,16,64,256

The default run measures ``TARGET_IMPLS`` (CNN-s, P = 64) at batch 10 and 32,
``--repeats`` (3) alternating rounds each, and prints each median, jaxsparse
over the best PyTorch ensemble and VD's step over the dense one; it writes
``results.json``, ``results.md`` and ``provenance.json`` under ``--workdir``.
A single measurement prints member-steps/s as its last line. With
``--repeats N`` and ``--impls``, every implementation at every size of
``--populations`` is measured N times, alternating (each round starts at
another setting, so that the machine's drift spreads over all), with the
median and the range per setting.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxsparse import cpu_cores  # noqa: E402

IMPLEMENTATIONS = ("jaxsparse", "jaxsparse_magnitude", "jaxsparse_vd", "jaxsparse_vd_per_batch",
                   "jaxsparse_gumbel", "jaxsparse_edge_popup", "naive_flax", "python_loop",
                   "torch_loop", "torch_func", "torch_grouped", "torch_grouped_compiled",
                   "jaxsparse_shared", "torch_func_shared", "jaxsparse_activations",
                   "jaxsparse_interleaved")
#: The engine's rows per sparsification method (the dense engine is ``jaxsparse``).
ENGINE_METHODS = {"jaxsparse_magnitude": "magnitude", "jaxsparse_vd": "variational_dropout",
                  "jaxsparse_vd_per_batch": "variational_dropout",
                  "jaxsparse_gumbel": "gumbel_softmax", "jaxsparse_edge_popup": "edge_popup"}
#: ``config.sparsify`` settings of the engine rows that set more than the method.
ENGINE_SETTINGS = {"jaxsparse_vd_per_batch": {"weight_noise_sampling": "per_batch"}}
#: The PyTorch ensembles the engine is compared with; the report takes the fastest.
TORCH_ENSEMBLES = ("torch_func", "torch_grouped", "torch_grouped_compiled")
#: The targets' measurement (the default run): these, alternating, at both batch sizes.
TARGET_IMPLS = ("jaxsparse", "jaxsparse_vd", "jaxsparse_vd_per_batch", *TORCH_ENSEMBLES)
TARGET_BATCHES = (10, 32)
#: The engine rows whose members mix the four activations (P/4 members each): in blocks of
#: P/4 (every chunk of --chunk members shares one) or interleaved (every chunk mixes all).
MIXED_ACTIVATIONS = {"jaxsparse_activations": "blocks", "jaxsparse_interleaved": "interleaved"}
MODELS = ("cnn_s", "cnn_l", "lenet_300_100", "resnet20")
INPUT_SHAPES = {"cnn_s": (28, 28, 1), "cnn_l": (32, 32, 3), "lenet_300_100": (28, 28, 1),
                "resnet20": (32, 32, 3)}
# (conv features, kernel sizes, pools, dense features) of the models the baselines
# (naive_flax, python_loop, torch_*) build; ResNet-20 is measured with the engine alone.
ARCHITECTURES = {"cnn_s": ((8, 6, 4), (5, 5, 2), (True, True, False), (20,)),
                 "cnn_l": ((16, 32, 15), (3, 3, 3), (True, True, True), (20,)),
                 "lenet_300_100": ((), (), (), (300, 100))}


def _synthetic(model: str, batch: int, steps: int):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(steps * batch, *INPUT_SHAPES[model])).astype(np.float32)
  labels = rng.integers(0, 10, steps * batch).astype(np.int32)
  return images, labels


def _forward_flops(model: str) -> float:
  """FLOPs of one forward pass of one image (2 x multiply-adds of Conv and Dense layers)."""
  import jax
  from jaxsparse import models, structured
  built = models.get_model(model, INPUT_SHAPES[model])
  # Shapes only (a fresh dense model has no zero weights): initialising for
  # real outside jit compiles op by op, about 20 s.
  shapes = jax.eval_shape(lambda key: models.init_variables(built, key), jax.random.PRNGKey(0))
  variables = jax.tree.map(lambda leaf: np.ones(leaf.shape, leaf.dtype), shapes)
  return 2.0 * structured.count_multiply_adds(built, variables)


def fastest_call(run_steps, calls: int = 3) -> float:
  """Seconds of the fastest of ``calls`` calls of ``run_steps`` (single calls vary by 20 %
  on a shared 2-core machine)."""
  fastest = float("inf")
  for _ in range(calls):
    started = time.perf_counter()
    run_steps()
    fastest = min(fastest, time.perf_counter() - started)
  return fastest


def alternating(items, round_index: int) -> list:
  """``items`` in the order of round ``round_index`` of an in-process comparison: as given in
  even rounds, reversed in odd ones, so that none is always timed first."""
  items = list(items)
  return items if round_index % 2 == 0 else items[::-1]


def _time(run_steps, steps: int, repeats: int = 3) -> tuple[float, float]:
  """(compile seconds, seconds per step): the first call compiles, the fastest of the
  next ``repeats`` calls is timed (:func:`fastest_call`)."""
  started = time.perf_counter()
  run_steps()
  first = time.perf_counter() - started
  per_step = fastest_call(run_steps, repeats) / steps
  return max(first - per_step * steps, 0.0), per_step


def _member_orders(population: int, batch: int, steps: int) -> np.ndarray:
  """Each member's own batches: [P, steps, batch] indices into the synthetic data."""
  rng = np.random.default_rng(1)
  return np.stack([rng.permutation(steps * batch) for _ in range(population)]).reshape(
      population, steps, batch)


def _jaxsparse(method_name: str, model: str, population: int, batch: int, steps: int,
               chunk: int, progress: bool = False, shared: bool = False, conv: str = "auto",
               activations: str = "", settings: dict | None = None):
  return _time(engine_steps(method_name, model, population, batch, steps, chunk, progress,
                            shared, conv, activations, settings), steps)


def engine_steps(method_name: str, model: str, population: int, batch: int, steps: int,
                 chunk: int, progress: bool = False, shared: bool = False, conv: str = "auto",
                 activations: str = "", settings: dict | None = None) -> Callable[[], None]:
  """``run_steps()``: ``steps`` training steps of the engine's population (one
  ``train_epoch`` call on synthetic data), each call continuing from the last;
  ``settings``: further ``config.sparsify`` fields."""
  import jax
  import jax.numpy as jnp
  from jaxsparse import build, engine
  from jaxsparse import progress as progress_lib
  from jaxsparse.config import default_config
  config = default_config()  # one tanh / Adam 1e-3 configuration, seeds 0..population-1
  config.model.name = model
  config.model.conv_implementation = conv
  config.sparsify.method = method_name
  config.sparsify.update(settings or {})
  config.population.grid.sparsity = ({"magnitude": 0.8, "gumbel_softmax": 0.5,
                                      "edge_popup": 0.5}.get(method_name, 0.0),)
  config.population.num_seeds = population
  if activations:
    _mix_activations(config, population, interleaved=activations == "interleaved")
  config.training.num_epochs = 1
  config.training.batch_size = batch
  # Members split over every device, as a run does (on the CPU one device per core when
  # --devices is 0: jaxsparse.cpu_cores).
  run = build.setup(config, build.DataShape(INPUT_SHAPES[model], 10, steps * batch),
                         sharded=True)
  program = run.program._replace(
      chunk_size=chunk, shared_order_seed=0 if shared else -1,
      progress_every=progress_lib.report_interval(steps) if progress else 0)
  images, labels = map(jnp.asarray, _synthetic(model, batch, steps))
  state = [engine.init_population(program, run.hyper)]
  # Steps 1 to `steps` of the schedule: magnitude pruning's one-shot ranking at
  # step 0 happens once in a run (masks are re-ranked every 100 steps after),
  # so timing it in every 10-step window would overstate it tenfold.
  first_step = 1

  def run_steps():
    state[0], metrics = engine.train_epoch(program, state[0], run.hyper, images, labels,
                                           first_step)
    jax.block_until_ready(metrics)

  return run_steps


def _mix_activations(config, population: int, interleaved: bool) -> None:
  """Members listed one by one: seeds 0..P-1 with the four activations, P/4 each, in
  blocks of P/4 or interleaved (member i uses activation i mod 4)."""
  from jaxsparse.layers import ACTIVATIONS
  if population % len(ACTIVATIONS):
    raise ValueError(f"P={population}: mixing the {len(ACTIVATIONS)} activations needs a "
                     f"multiple of {len(ACTIVATIONS)} members")
  per_activation = population // len(ACTIVATIONS)
  config.population.members.seed = tuple(range(population))
  config.population.members.activation = tuple(
      ACTIVATIONS[i % len(ACTIVATIONS) if interleaved else i // per_activation]
      for i in range(population))


def _baseline_architecture(model: str):
  """``ARCHITECTURES[model]``, or a one-line error for a model the baselines do not build."""
  if model not in ARCHITECTURES:
    raise ValueError(f"--model={model}: the baselines build {', '.join(ARCHITECTURES)}; "
                     f"measure {model} with the jaxsparse rows")
  return ARCHITECTURES[model]


def _flax_model(model: str):
  import flax.linen as nn

  features, kernels, pools, dense = _baseline_architecture(model)

  class Naive(nn.Module):
    @nn.compact
    def __call__(self, x):
      for feature, kernel, pool in zip(features, kernels, pools):
        x = nn.Conv(feature, (kernel, kernel), padding="VALID")(x)
        if pool:
          x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.tanh(x)
      x = x.reshape(x.shape[0], -1)
      for width in dense:
        x = nn.tanh(nn.Dense(width)(x))
      return nn.Dense(10)(x)

  return Naive()


def _flax_step(module, optimizer):
  import jax
  import optax

  def step(carry, batch):
    params, opt_state = carry
    images, labels = batch

    def loss_fn(p):
      logits = module.apply({"params": p}, images)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  return step


def _naive_flax(model: str, population: int, batch: int, steps: int, loop: bool):
  import jax
  import jax.numpy as jnp
  import optax
  module, optimizer = _flax_model(model), optax.adam(1e-3)
  step = _flax_step(module, optimizer)
  images, labels = _synthetic(model, batch, steps)
  batches = (jnp.asarray(images).reshape(steps, batch, *images.shape[1:]),
             jnp.asarray(labels).reshape(steps, batch))
  keys = jax.random.split(jax.random.PRNGKey(0), population)
  init = lambda key: module.init(key, batches[0][0])["params"]
  if loop:
    members = [init(key) for key in keys]
    members = [(params, optimizer.init(params)) for params in members]
    single = jax.jit(step)

    def run_steps():
      for index, carry in enumerate(members):
        for step_index in range(steps):
          carry, _ = single(carry, (batches[0][step_index], batches[1][step_index]))
        members[index] = carry
      jax.block_until_ready(members)

    return _time(run_steps, steps)

  params = jax.vmap(init)(keys)
  carry = [(params, jax.vmap(optimizer.init)(params))]
  orders = _member_orders(population, batch, steps)
  member_batches = (jnp.asarray(images)[orders], jnp.asarray(labels)[orders])
  epoch = jax.jit(lambda c: jax.vmap(lambda c, b: jax.lax.scan(step, c, b)[0])(
      c, member_batches))

  def run_steps():
    carry[0] = epoch(carry[0])
    jax.block_until_ready(carry[0])

  return _time(run_steps, steps)


def _torch_network(model: str):
  """``model``'s baseline architecture (:func:`_baseline_architecture`) as a PyTorch
  ``nn.Sequential``: each convolution followed by its max-pool and tanh, then the dense layers
  with tanh, and 10 outputs."""
  from torch import nn
  features, kernels, pools, dense = _baseline_architecture(model)
  height, width, channels = INPUT_SHAPES[model]
  layers, in_channels, size = [], channels, height
  for feature, kernel, pool in zip(features, kernels, pools):
    layers.append(nn.Conv2d(in_channels, feature, kernel))
    size -= kernel - 1
    if pool:
      layers.append(nn.MaxPool2d(2))
      size //= 2
    layers.append(nn.Tanh())
    in_channels = feature
  layers.append(nn.Flatten())
  inputs = in_channels * size * size if features else height * width * channels
  for outputs in dense:
    layers += [nn.Linear(inputs, outputs), nn.Tanh()]
    inputs = outputs
  layers.append(nn.Linear(inputs, 10))
  return nn.Sequential(*layers)


def _torch(model: str, population: int, batch: int, steps: int, functional: bool,
           shared: bool = False):
  """``population`` PyTorch networks trained with Adam, each on its own batches (all on the
  same with ``shared``): one after another (a Python loop), or with ``functional`` as one
  ``torch.func`` ensemble (``vmap`` of ``functional_call`` over the stacked parameters)."""
  import torch
  torch.set_num_threads(os.cpu_count() or 1)
  # On a GPU both frameworks run float32 matmuls and convolutions as TF32 (JAX's default
  # precision there); PyTorch's matmuls need asking.
  torch.backends.cuda.matmul.allow_tf32 = True
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  images, labels = _synthetic(model, batch, steps)
  images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
  labels = torch.from_numpy(labels).long().to(device)
  orders = torch.from_numpy(_member_orders(population, batch, steps)).to(device)
  networks = [_torch_network(model).to(device) for _ in range(population)]
  synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
  run_steps = (_torch_func_steps(model, networks, images, labels, orders, steps, shared)
               if functional else _torch_loop_steps(networks, images, labels, orders, steps))

  def run_and_wait():
    run_steps()
    synchronize()

  return _time(run_and_wait, steps)


def _torch_loop_steps(networks, images, labels, orders, steps: int) -> Callable[[], None]:
  """A function that trains each network in turn for ``steps`` steps (Adam), network i on
  the examples ``orders[i, step]``."""
  import torch
  loss_fn = torch.nn.CrossEntropyLoss()
  optimizers = [torch.optim.Adam(network.parameters(), 1e-3) for network in networks]

  def run_steps():
    for member, (network, optimizer) in enumerate(zip(networks, optimizers)):
      for step in range(steps):
        x, y = images[orders[member, step]], labels[orders[member, step]]
        optimizer.zero_grad()
        loss_fn(network(x), y).backward()
        optimizer.step()
  return run_steps


def _torch_func_steps(model: str, networks, images, labels, orders, steps: int,
                      shared: bool) -> Callable[[], None]:
  """A function that trains the networks as one ``torch.func`` ensemble for ``steps`` steps
  (Adam over the stacked parameters), member i on the examples ``orders[i, step]``, or all
  on the same consecutive batches with ``shared``."""
  import torch
  from torch.func import functional_call, stack_module_state
  loss_fn = torch.nn.CrossEntropyLoss()
  params, buffers = stack_module_state(networks)
  base = _torch_network(model).to("meta")
  optimizer = torch.optim.Adam(params.values(), 1e-3)

  def member_loss(member_params, member_buffers, x, y):
    return loss_fn(functional_call(base, (member_params, member_buffers), (x,)), y)

  data_dims = None if shared else 0
  losses = torch.func.vmap(member_loss, in_dims=(0, 0, data_dims, data_dims))
  batch = orders.shape[-1]

  def run_steps():
    for step in range(steps):
      if shared:
        x, y = images[step * batch:(step + 1) * batch], labels[step * batch:(step + 1) * batch]
      else:  # [P, batch, ...]: each member's own batch
        x, y = images[orders[:, step]], labels[orders[:, step]]
      optimizer.zero_grad()
      # Members are independent, so the gradient of the sum is each member's own.
      losses(params, buffers, x, y).sum().backward()
      optimizer.step()
  return run_steps


def _torch_grouped(model: str, population: int, batch: int, steps: int, compiled: bool):
  """The grouped-convolution ensemble (experiments/torch_grouped.py), each member on its own
  batches, Adam; with ``compiled``, its loss under ``torch.compile`` (the first call, which
  compiles, is not timed)."""
  import torch
  import torch_grouped
  torch.set_num_threads(os.cpu_count() or 1)
  features, kernels, pools, dense = _baseline_architecture(model)
  height, _, channels = INPUT_SHAPES[model]
  if not features:
    raise ValueError(f"{model} has no convolutions; torch_grouped builds CNNs")
  network = torch_grouped.GroupedEnsemble(population, channels, height, features, kernels,
                                          pools, dense)
  images, labels = _synthetic(model, batch, steps)
  images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(labels).long()
  orders = torch.from_numpy(_member_orders(population, batch, steps))
  step = torch_grouped.training_step(network, torch.optim.Adam(network.parameters(), 1e-3),
                                     compiled)

  def run_steps():
    for index in range(steps):
      step(images[orders[:, index]], labels[orders[:, index]])

  return _time(run_steps, steps)


def gemm_gflops(size: int = 0, repeats: int = 5) -> float:
  """The float32 GEMM rate of this process's devices at once through JAX at its default
  precision (TF32 on a GPU), the practical compute ceiling: one ``size`` x ``size`` matmul
  per device, sharded, the fastest of ``repeats`` calls; ``size`` 0: 2048 on the CPU, 8192
  elsewhere."""
  import jax
  import jax.numpy as jnp
  from jax.sharding import NamedSharding, PartitionSpec
  size = size or (2048 if jax.default_backend() == "cpu" else 8192)
  devices = jax.devices()
  a = jax.device_put(jnp.ones((len(devices), size, size), jnp.float32),
                     NamedSharding(jax.sharding.Mesh(devices, ("d",)), PartitionSpec("d")))
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(a))
  fastest = float("inf")
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(matmul(a))
    fastest = min(fastest, time.perf_counter() - started)
  return 2 * size**3 * len(devices) / fastest / 1e9


def measure(impl: str, model: str, population: int, batch: int, steps: int,
            chunk: int = 0, progress: bool = False, conv: str = "auto") -> dict:
  """One measurement, in this process."""
  if impl.startswith("jaxsparse"):
    method = ENGINE_METHODS.get(impl, "none")
    compile_seconds, per_step = _jaxsparse(method, model, population, batch, steps, chunk,
                                           progress, shared=impl == "jaxsparse_shared",
                                           conv=conv, activations=MIXED_ACTIVATIONS.get(impl, ""),
                                           settings=ENGINE_SETTINGS.get(impl))
  elif impl in ("naive_flax", "python_loop"):
    compile_seconds, per_step = _naive_flax(model, population, batch, steps,
                                            loop=impl == "python_loop")
  elif impl in ("torch_loop", "torch_func", "torch_func_shared"):
    compile_seconds, per_step = _torch(model, population, batch, steps,
                                       functional=impl != "torch_loop",
                                       shared=impl == "torch_func_shared")
  elif impl in ("torch_grouped", "torch_grouped_compiled"):
    compile_seconds, per_step = _torch_grouped(model, population, batch, steps,
                                               compiled=impl == "torch_grouped_compiled")
  else:
    raise ValueError(f"implementation {impl!r} is unknown; use one of {IMPLEMENTATIONS}")
  member_steps = population / per_step
  flops = 3 * _forward_flops(model) * batch * member_steps
  return {"impl": impl, "model": model, "population": population, "batch": batch,
          "chunk": chunk if impl.startswith("jaxsparse") else None,
          "conv": conv if impl.startswith("jaxsparse") else None,
          "devices": _devices() if impl.startswith("jaxsparse") else None,
          "member_steps_per_second": member_steps, "examples_per_second": member_steps * batch,
          "gflops": flops / 1e9, "compile_seconds": compile_seconds,
          "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "peak_device_memory_mb": _peak_device_memory_mb(impl)}


def _devices() -> int:
  import jax
  return jax.device_count()


def _peak_device_memory_mb(impl: str) -> float | None:
  """The accelerator's peak allocation in this process (None on the CPU)."""
  if impl.startswith("torch"):
    import torch
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
  import jax
  if jax.default_backend() == "cpu":
    return None
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use", 0) / 2**20


def _set_cpu_devices(devices: int) -> None:
  """Before JAX starts: how many CPU devices this process has (0: one per core)."""
  if devices == 0:
    cpu_cores.split_cpu_by_core()
  else:
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} {cpu_cores.DEVICE_COUNT_FLAG}={devices}".strip()


def _in_subprocess(impl, model, population, batch, steps, chunk, conv, devices: int = 0,
                   timeout: float | None = None) -> dict | None:
  command = [sys.executable, __file__, "--impl", impl, "--model", model, "--population",
             str(population), "--batch", str(batch), "--steps", str(steps), "--chunk",
             str(chunk), "--conv", conv, "--devices", str(devices), "--json"]
  try:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    print(f"  {impl} {model} P={population} B={batch} failed: took over {timeout:.0f} s "
          "(--timeout)", flush=True)
    return None
  if result.returncode != 0:
    print(f"  {impl} {model} P={population} B={batch} failed: "
          f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}",
          flush=True)
    return None
  return json.loads(result.stdout.strip().splitlines()[-1])


def rounds(settings: list[tuple[str, int]], repeats: int, model: str, batch: int, steps: int,
           chunk: int, conv: str, devices: int = 0) -> list[dict]:
  """Every ``(implementation, population)`` setting measured ``repeats`` times in fresh
  processes, alternating: round r starts at setting r (mod their number), so no setting is
  always measured first or last, and the machine's drift spreads over all of them."""
  results = []
  for round_ in range(repeats):
    shift = round_ % len(settings)
    for impl, population in settings[shift:] + settings[:shift]:
      result = _in_subprocess(impl, model, population, batch, steps, chunk, conv, devices)
      if result:
        results.append({**result, "round": round_})
        print(f"  round {round_ + 1}/{repeats} {impl:20s} P={population:<4d} "
              f"{result['member_steps_per_second']:9.1f} member-steps/s", flush=True)
  return results


def rounds_table(results: list[dict]) -> str:
  """Per setting (in order of first appearance): the measurements, their median and range,
  and the first setting's median over this one's (for population sizes of one
  implementation, 1.00 is flat; for implementations, how many times faster the first is)."""
  by_setting: dict[tuple[str, int], list[float]] = {}
  for r in results:
    by_setting.setdefault((r["impl"], r["population"]), []).append(r["member_steps_per_second"])
  settings = list(by_setting)
  first = settings[0]
  base = float(np.median(by_setting[first]))
  lines = ["| implementation | P | member-steps/s, each run | median | range | "
           f"{first[0]} P={first[1]} / this |", "|---" * 6 + "|"]
  for impl, population in settings:
    rates = by_setting[impl, population]
    median = float(np.median(rates))
    lines.append(f"| {impl} | {population} | {' / '.join(f'{rate:.1f}' for rate in rates)} | "
                 f"{median:.1f} | {min(rates):.1f} to {max(rates):.1f} | {base / median:.2f} |")
  return "\n".join(lines)


#: The accelerator table (``--gpu``): the models, populations and batch sizes of the zoos.
GPU_MODELS, GPU_POPULATIONS, GPU_BATCHES = ("cnn_s", "cnn_l", "resnet20"), (64, 256, 1024), (10, 32)


def _plan(full: bool, impls: list[str], gpu: bool = False) -> list[tuple]:
  if gpu:  # the baselines build no ResNet-20
    return [(impl, model, population, batch) for model in GPU_MODELS for batch in GPU_BATCHES
            for population in GPU_POPULATIONS for impl in impls
            if impl.startswith("jaxsparse") or model in ARCHITECTURES]
  if full:
    return [(impl, model, population, batch) for model in MODELS for batch in (10, 32)
            for population in (1, 8, 64, 256) for impl in impls]
  # The targets' setting with every implementation, then how the engine scales
  # in P and runs the other models (the naive baseline on CNN-l alone takes
  # minutes: its vmapped convolutions become grouped ones; see --full).
  plan = [(impl, "cnn_s", 64, 32) for impl in impls]
  plan += [("jaxsparse", "cnn_s", population, 32) for population in (1, 8, 256)]
  plan += [("jaxsparse", model, 64, 32) for model in ("cnn_l", "lenet_300_100")]
  return plan


def targets(batches: tuple[int, ...], repeats: int, steps: int, chunk: int, conv: str,
            devices: int) -> tuple[pd.DataFrame, pd.DataFrame]:
  """The targets' measurement: :data:`TARGET_IMPLS` (CNN-s, P = 64) at each batch size in
  ``repeats`` alternating rounds. Returns every measurement and, per batch size, the
  medians, jaxsparse over the best PyTorch ensemble, and VD's step over the dense one with
  the public protocol's sampling and with one weight sample per step (a departure)."""
  impls = [impl for impl in TARGET_IMPLS if impl.startswith("jaxsparse") or
           importlib.util.find_spec("torch") is not None]
  measured, ratios = [], []
  for batch in batches:
    print(f"batch {batch}:", flush=True)
    results = rounds([(impl, 64) for impl in impls], repeats, "cnn_s", batch, steps, chunk,
                     conv, devices)
    measured += [{**result, "batch": batch} for result in results]
    median = lambda impl: float(np.median([r["member_steps_per_second"] for r in results
                                           if r["impl"] == impl] or [np.nan]))
    medians = {impl: median(impl) for impl in impls}
    torch_rows = {impl: rate for impl, rate in medians.items() if impl in TORCH_ENSEMBLES}
    best = max(torch_rows, key=torch_rows.get) if torch_rows else None
    ratios.append({"batch": batch, **{f"{impl} (median)": rate for impl, rate in medians.items()},
                   "best PyTorch": best or "n/a",
                   "jaxsparse / best PyTorch": medians["jaxsparse"] / torch_rows[best]
                   if best else np.nan,
                   "VD step / dense step": medians["jaxsparse"] / medians["jaxsparse_vd"],
                   "VD per-batch step / dense step":
                   medians["jaxsparse"] / medians["jaxsparse_vd_per_batch"]})
  return pd.DataFrame(measured), pd.DataFrame(ratios)


def _define_flags():
  from absl import flags
  define = {"impl": flags.DEFINE_enum("impl", None, IMPLEMENTATIONS, "Measure this one, in "
                                      "this process."),
            "model": flags.DEFINE_enum("model", "cnn_s", MODELS, "The model."),
            "population": flags.DEFINE_integer("population", 64, "Members (P)."),
            "batch": flags.DEFINE_integer("batch", 32, "Batch size per member."),
            "steps": flags.DEFINE_integer("steps", 10, "Steps per timed call."),
            "chunk": flags.DEFINE_integer("chunk", 4, "Members the engine vmaps at once "
                                          "(population.chunk_size; 0: all); 4 measured fastest "
                                          "for CNN-s on the 2-core CPU."),
            "conv": flags.DEFINE_string("conv", "auto", "The engine's "
                                        "model.conv_implementation (auto, im2col, banded, xla)."),
            "devices": flags.DEFINE_integer("devices", 0, "CPU devices the engine splits the "
                                            "members over: 0 one per core, as a run does "
                                            "(jaxsparse.cpu_cores), 1 one device.", lower_bound=0),
            "set": flags.DEFINE_bool("set", False, "Every implementation of --impls once, then "
                                     "how the engine scales (with --full: every model, P and "
                                     "batch)."),
            "full": flags.DEFINE_bool("full", False, "With --set: every model, P and batch."),
            "gpu": flags.DEFINE_bool("gpu", False, "The accelerator table: CNN-s, CNN-l, "
                                     "ResNet-20 at P=64/256/1024, batch 10/32 (use with --chunk 0 "
                                     "and --steps 20)."),
            "impls": flags.DEFINE_list("impls", list(IMPLEMENTATIONS), "Implementations of "
                                       "--set or --repeats."),
            "progress": flags.DEFINE_bool("progress", False, "jaxsparse: with a run's training "
                                          "progress reports, to measure their cost."),
            "timeout": flags.DEFINE_float("timeout", 0, "Seconds one measurement of --set may "
                                          "take (0: no limit)."),
            "json": flags.DEFINE_bool("json", False, "(internal) one JSON line."),
            "out": flags.DEFINE_string("out", "", "Write the measurements of --set or --repeats "
                                       "here as JSON."),
            "repeats": flags.DEFINE_integer("repeats", 0, "Measure each setting of --impls x "
                                            "--populations this many times, alternating (the "
                                            "targets: 3 when 0).", lower_bound=0),
            "populations": flags.DEFINE_list("populations", [], "Population sizes for "
                                             "--repeats (default: --population)."),
            "workdir": flags.DEFINE_string("workdir", "runs/bench", "Where the targets' "
                                           "results go.")}
  return define


def main(flag) -> None:
  from jaxsparse.errors import UserError
  value = {name: holder.value for name, holder in flag.items()}
  unknown = [impl for impl in value["impls"] if impl not in IMPLEMENTATIONS]
  if unknown:
    raise UserError(f"--impls={','.join(unknown)} is unknown; use some of "
                    f"{','.join(IMPLEMENTATIONS)}")
  if value["impl"]:
    if not value["impl"].startswith("jaxsparse"):
      try:
        _baseline_architecture(value["model"])
      except ValueError as error:
        raise UserError(str(error)) from error
    _set_cpu_devices(value["devices"])
    result = measure(value["impl"], value["model"], value["population"], value["batch"],
                     value["steps"], value["chunk"], value["progress"], value["conv"])
    print(json.dumps(result) if value["json"] else
          json.dumps(result, indent=1) + f"\n{result['member_steps_per_second']:.1f}")
    return
  if value["repeats"] and not value["set"] and flag["impls"].present:
    _repeated(value)
  elif value["set"] or value["gpu"]:
    _measure_set(value)
  else:
    _measure_targets(value)


def _measure_targets(value: dict) -> None:
  from experiments.common import markdown_table, write_results
  started = time.time()
  os.makedirs(value["workdir"], exist_ok=True)
  measured, ratios = targets(TARGET_BATCHES, value["repeats"] or 3, value["steps"],
                             value["chunk"], value["conv"], value["devices"])
  if measured.empty:
    raise SystemExit("every measurement failed (the reasons are above)")
  table = "\n\n".join([
      "CNN-s, P = 64, each member on its own batches, member-steps/s (median of the "
      "alternating rounds):", markdown_table(ratios, digits=2),
      rounds_table(measured[measured.batch == TARGET_BATCHES[0]].to_dict("records")),
      rounds_table(measured[measured.batch == TARGET_BATCHES[-1]].to_dict("records"))])
  write_results(value["workdir"], table, started, measurements=measured, ratios=ratios,
                gemm_gflops=gemm_gflops())


def _repeated(value: dict) -> None:
  from jaxsparse.errors import UserError
  try:
    sizes = [int(size) for size in value["populations"]] or [value["population"]]
  except ValueError as error:
    raise UserError(f"--populations={','.join(value['populations'])} is not a list of "
                    "integers; use e.g. --populations=8,64,256") from error
  results = rounds([(impl, size) for impl in value["impls"] for size in sizes],
                   value["repeats"], value["model"], value["batch"], value["steps"],
                   value["chunk"], value["conv"], value["devices"])
  if not results:
    raise SystemExit("every measurement failed (the reasons are above)")
  print(rounds_table(results))
  if value["out"]:
    with open(value["out"], "w") as file:
      json.dump({"results": results, "date": time.strftime("%Y-%m-%d %H:%M"),
                 "cpus": os.cpu_count()}, file, indent=1)


def _measure_set(value: dict) -> None:
  impls = value["impls"]
  if importlib.util.find_spec("torch") is None:
    impls = [impl for impl in impls if not impl.startswith("torch")]
    print("torch is not installed: skipping the PyTorch rows (pip install -e '.[bench]')",
          flush=True)
  ceiling = gemm_gflops()
  print(f"float32 GEMM ceiling: {ceiling:.0f} GFLOP/s", flush=True)
  results = []
  for impl, model, population, batch in _plan(value["full"], impls, value["gpu"]):
    result = _in_subprocess(impl, model, population, batch, value["steps"], value["chunk"],
                            value["conv"], value["devices"], value["timeout"] or None)
    if result:
      result["fraction_of_gemm"] = result["gflops"] / ceiling
      results.append(result)
      print(f"  {impl:20s} {model:14s} P={population:<4d} B={batch:<3d} "
            f"{result['member_steps_per_second']:9.1f} member-steps/s "
            f"{result['gflops']:7.2f} GFLOP/s compile {result['compile_seconds']:5.1f} s "
            f"peak {result['peak_memory_mb']:6.0f} MB", flush=True)
      if value["out"]:  # after each measurement: a run stopped early keeps what it measured
        _write_set(value["out"], ceiling, results)
  print(_table(results))


def _write_set(path: str, ceiling: float, results: list[dict]) -> None:
  """The set's measurements so far, as JSON, with the machine they were taken on."""
  import jax
  with open(path, "w") as file:
    json.dump({"gemm_gflops": ceiling, "results": results, "date": time.strftime("%Y-%m-%d"),
               "machine": os.uname().machine, "cpus": os.cpu_count(),
               "device": jax.devices()[0].device_kind}, file, indent=1)


def _table(results: list[dict]) -> str:
  """Markdown table with each measurement's ratio to jaxsparse at the same setting."""
  reference = {(r["model"], r["population"], r["batch"]): r["member_steps_per_second"]
               for r in results if r["impl"] == "jaxsparse"}
  lines = ["| implementation | model | P | batch | member-steps/s | GFLOP/s | % of GEMM | "
           "jaxsparse / this | compile s | peak MB (device's, if any) |", "|---" * 10 + "|"]
  for r in results:
    key = (r["model"], r["population"], r["batch"])
    ratio = reference[key] / r["member_steps_per_second"] if key in reference else float("nan")
    lines.append(f"| {r['impl']} | {r['model']} | {r['population']} | {r['batch']} | "
                 f"{r['member_steps_per_second']:.1f} | {r['gflops']:.2f} | "
                 f"{100 * r['fraction_of_gemm']:.1f} | {ratio:.2f} | {r['compile_seconds']:.1f} | "
                 f"{r.get('peak_device_memory_mb') or r['peak_memory_mb']:.0f} |")
  return "\n".join(lines)


if __name__ == "__main__":
  from experiments import common
  flag = _define_flags()
  # Each measurement sets its own CPU devices (--devices) in its own process.
  common.run(lambda: main(flag), split_cpu=False)
