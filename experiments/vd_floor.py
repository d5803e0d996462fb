"""The least that variational dropout's public training step can cost against the dense one.

  python experiments/vd_floor.py --workdir=runs/vd_floor --batch=10
  python experiments/vd_floor.py --workdir=runs/vd_floor_32 --batch=32

Local reparameterisation, as the public model-zoo code trains VD, does all of the dense
step's work (the mean path), the same matrix products again for the variance path (the
squared input times sigma^2: forward, input gradient, sigma^2's gradient; every layer is
noisy) and one standard normal per example and output unit of every layer. So, whatever
the rest costs,

  VD step / dense step  >=  1 + (the dense step's matrix products) / (the dense step)
                              + (the draw alone) / (the dense step)

This script measures the two fractions on CNN-s (P = 64, one device per core, as
``bench_population.py``): the first from a profile of the engine's dense step
(``roofline.py``'s classes: the share of the operations' time in matrix multiplies), the
second by timing, in alternating rounds in one process, the dense step and the draw alone
(``jaxsparse.prng.normal`` of every member's key for each layer's output shape, as VD's
step draws them, reduced to a sum so that no buffer is written: if anything cheaper than
in the step). VD's own step is timed in the same rounds, beside the floor.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def _recorded_draws():
  """Yields the list of the shapes that ``prng.normal`` is asked for while the block runs."""
  from jaxsparse import prng
  shapes, normal = [], prng.normal

  def recording(key, shape=(), *arguments, **keywords):
    shapes.append(tuple(shape))
    return normal(key, shape, *arguments, **keywords)
  prng.normal = recording
  try:
    yield shapes
  finally:
    prng.normal = normal


def noise_shapes(batch: int) -> list[tuple[int, ...]]:
  """The shape of every normal draw in one member's VD training step (one per layer)."""
  import bench_population
  with _recorded_draws() as shapes:
    bench_population.engine_steps("variational_dropout", "cnn_s", 2, batch, 1, 0)()
  return shapes


def draw_steps(shapes, population: int, steps: int):
  """``run()``: ``steps`` steps' normals of ``shapes`` for each of ``population`` members,
  the members split over every device, reduced to one number per member."""
  import jax
  import jax.numpy as jnp
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  from jaxsparse import prng

  def member(key):
    def step(total, index):
      keys = jax.random.split(jax.random.fold_in(key, index), len(shapes))
      return total + sum(prng.normal(k, shape).sum() for k, shape in zip(keys, shapes)), None
    return jax.lax.scan(step, jnp.float32(0), jnp.arange(steps))[0]

  mesh = Mesh(jax.devices(), ("members",))
  keys = jax.device_put(jax.random.split(jax.random.key(0), population),
                        NamedSharding(mesh, PartitionSpec("members")))
  draw = jax.jit(jax.vmap(member))
  return lambda: jax.block_until_ready(draw(keys))


def matmul_share(run_steps, dump: str) -> float:
  """The share of matrix multiplies in the profiled operations' time of ``run_steps``."""
  import roofline
  _, by_operation = roofline.profiled_calls(run_steps)
  seconds = roofline.time_by_kind(by_operation, roofline.classify(dump))
  return seconds.get("matrix multiply", 0.0) / sum(seconds.values())


def measure(batch: int, steps: int, rounds: int, dump: str, population: int = 64) -> dict:
  """The dense step's matrix-product share, and the per-step seconds of the dense step, the
  draw alone and VD's step over ``rounds`` alternating rounds."""
  import bench_population
  dense = bench_population.engine_steps("none", "cnn_s", population, batch, steps, 4)
  dense()  # compiles; profiled while it is the only program XLA has dumped
  share = matmul_share(dense, dump)
  timed = {"dense": dense, "draw": draw_steps(noise_shapes(batch), population, steps),
           "variational dropout": bench_population.engine_steps(
               "variational_dropout", "cnn_s", population, batch, steps, 4)}
  for run_steps in timed.values():
    run_steps()  # compiles
  seconds = {name: [] for name in timed}
  for round_index in range(rounds):
    for name in bench_population.alternating(timed, round_index):
      seconds[name].append(bench_population.fastest_call(timed[name]) / steps)
  return {"matmul_share": share, "seconds": seconds}


def floor_table(result: dict, population: int = 64) -> pd.DataFrame:
  """Each round's ratios over the dense step, and the floor they give: medians (least,
  greatest)."""
  dense = result["seconds"]["dense"]
  draw = [d / s for d, s in zip(result["seconds"]["draw"], dense)]
  vd = [v / s for v, s in zip(result["seconds"]["variational dropout"], dense)]
  floor = [1 + result["matmul_share"] + ratio for ratio in draw]
  rows = [("dense step, member-steps/s", [population / s for s in dense]),
          ("the dense step's matrix products / the dense step (profile)",
           [result["matmul_share"]]),
          ("the draw alone / the dense step", draw),
          ("floor: 1 + matrix products + draw", floor),
          ("VD's step / the dense step, measured", vd)]
  return pd.DataFrame([{"quantity": name, "value": statistics.median(values),
                        "low": min(values), "high": max(values)} for name, values in rows])


def run(workdir: str, batch: int, steps: int, rounds: int, dump: str) -> None:
  from experiments.common import interval_column, markdown_table, write_results
  started = time.time()
  os.makedirs(workdir, exist_ok=True)
  result = measure(batch, steps, rounds, dump)
  table = floor_table(result)
  shown = pd.DataFrame({"quantity": table["quantity"],
                        "median (least to greatest)": interval_column(table, "value", 3)})
  text = (f"CNN-s, P = 64, batch {batch}, {rounds} alternating rounds of {steps} steps:\n\n"
          + markdown_table(shown))
  write_results(workdir, text, started, floor=table, seconds=result["seconds"],
                settings={"batch": batch, "steps": steps, "rounds": rounds})


if __name__ == "__main__":
  from absl import flags
  import common
  import roofline

  workdir = flags.DEFINE_string("workdir", "runs/vd_floor", "Where the results go.")
  batch = flags.DEFINE_integer("batch", 10, "Batch size per member.", lower_bound=1)
  steps = flags.DEFINE_integer("steps", 10, "Steps per timed call.", lower_bound=1)
  rounds = flags.DEFINE_integer("rounds", 6, "Alternating rounds.", lower_bound=1)
  dump_dir = roofline.dump_optimized_hlo()  # before JAX starts
  common.run(lambda: run(workdir.value, batch.value, steps.value, rounds.value, dump_dir))
