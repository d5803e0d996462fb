"""Whether a module constant of jaxsparse makes the engine faster: its training step with the
constant at two values, both compiled in one process and timed in alternating rounds.

  python experiments/ab_constant.py --constant=layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO \
      --values=0,2 --batch=10 --rounds=10

Separate processes of the same program ran up to 1.5x apart on the project's shared 2-core
machine, more than most changes gain; two programs in one process, alternating, share
whatever the machine does to them. Each value gets its own compiled program (its own
``jax.jit`` of the engine's epoch, made and traced with the constant set); each round
times every value (the fastest of 3 calls of ``--steps`` steps; CNN-s by default, P = 64,
one device per core, as ``bench_population.py``), the order reversed every other round.
Prints each value's median member-steps/s and the median, least and greatest of the
rounds' ratios (second value over first); ``--workdir`` keeps them as results.json and
results.md.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_constant(name: str) -> tuple[object, str]:
  """(module, attribute) of ``module.ATTRIBUTE`` under ``jaxsparse``, or a one-line error."""
  from jaxsparse.errors import UserError
  module_name, _, attribute = name.rpartition(".")
  if not module_name:
    raise UserError(f"--constant={name!r}: give it as module.NAME, e.g. "
                     "layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO")
  try:
    module = importlib.import_module(f"jaxsparse.{module_name}")
  except ModuleNotFoundError:
    raise UserError(f"--constant={name!r}: there is no module jaxsparse.{module_name}") from None
  if not hasattr(module, attribute):
    raise UserError(f"--constant={name!r}: jaxsparse.{module_name} has no {attribute}")
  return module, attribute


def parse_value(text: str, current: object) -> object:
  """``text`` as the type of the constant's current value (int, float, bool or str)."""
  from jaxsparse.errors import UserError
  if isinstance(current, bool):
    if text not in ("True", "False"):
      raise UserError(f"--values: {text!r} is not a bool; give True or False")
    return text == "True"
  try:
    return type(current)(text)
  except ValueError:
    raise UserError(f"--values: {text!r} is not of the constant's type, "
                    f"{type(current).__name__}") from None


def _new_epoch_function():
  """The engine's epoch as a new function object, so that its jit has its own trace and
  compile caches (a jit of the engine's own function would reuse the first value's)."""
  from jaxsparse import engine

  def epoch(program, population, hyper, images, labels, first_step=0):
    return engine._train_epoch(program, population, hyper, images, labels, first_step)
  return epoch


@contextlib.contextmanager
def _variant(module, attribute: str, value, programs=None):
  """The constant at ``value`` and the engine's epoch programs ``programs`` (None: new ones,
  made with the constant set, for constants that the making reads); yields the programs;
  both restored after."""
  from jaxsparse import engine
  saved = getattr(module, attribute), engine.TRAIN_EPOCH_PROGRAMS
  setattr(module, attribute, value)
  try:
    if programs is None:
      programs = engine.train_epoch_programs(_new_epoch_function())
    engine.TRAIN_EPOCH_PROGRAMS = programs
    yield programs
  finally:
    setattr(module, attribute, saved[0])
    engine.TRAIN_EPOCH_PROGRAMS = saved[1]


def compare(constant: str, values: tuple[str, str], method: str, model: str, batch: int,
            steps: int, rounds: int, chunk: int = 4, population: int = 64) -> dict:
  """Each value's member-steps/s over ``rounds`` alternating rounds, and their ratios."""
  import bench_population
  module, attribute = parse_constant(constant)
  settings = [parse_value(text, getattr(module, attribute)) for text in values]
  variants = []
  for value in settings:
    with _variant(module, attribute, value) as programs:
      run_steps = bench_population.engine_steps(method, model, population, batch, steps, chunk)
      run_steps()  # compiles, with the constant at this value
    variants.append((value, programs, run_steps))
  rates = [[] for _ in variants]
  for round_index in range(rounds):
    for index in bench_population.alternating(range(len(variants)), round_index):
      value, programs, run_steps = variants[index]
      with _variant(module, attribute, value, programs):
        rates[index].append(population * steps / bench_population.fastest_call(run_steps))
  ratios = [second / first for first, second in zip(*rates)]
  return {"constant": constant, "values": [str(value) for value in settings],
          "method": method, "model": model, "batch": batch, "rounds": rounds,
          "member_steps_per_second": [statistics.median(series) for series in rates],
          "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
          "ratio_max": max(ratios), "rates": rates}


def summary(result: dict) -> str:
  """One line: each value's median member-steps/s and the ratios of the rounds."""
  first, second = result["values"]
  rate_first, rate_second = result["member_steps_per_second"]
  return (f"{result['constant']} ({result['method']}, {result['model']}, batch "
          f"{result['batch']}): {first}: {rate_first:,.0f}, {second}: {rate_second:,.0f} "
          f"member-steps/s (medians of {result['rounds']} alternating rounds); {second} over "
          f"{first}: median {result['ratio_median']:.3f}, least {result['ratio_min']:.3f}, "
          f"greatest {result['ratio_max']:.3f}")


if __name__ == "__main__":
  from absl import flags
  import pandas as pd
  import common

  constant = flags.DEFINE_string("constant", None, "module.NAME of a constant under "
                                 "jaxsparse, e.g. layers.TRANSPOSED_PATCHES_MAX_WIDTH_RATIO.",
                                 required=True)
  values = flags.DEFINE_list("values", None, "Its two values, first the baseline.",
                             required=True)
  method = flags.DEFINE_string("method", "none", "The sparsification method.")
  model = flags.DEFINE_string("model", "cnn_s", "The model.")
  batch = flags.DEFINE_integer("batch", 10, "Batch size per member.", lower_bound=1)
  steps = flags.DEFINE_integer("steps", 10, "Steps per timed call.", lower_bound=1)
  rounds = flags.DEFINE_integer("rounds", 10, "Alternating rounds.", lower_bound=1)
  workdir = flags.DEFINE_string("workdir", "", "Where to write results.json and results.md "
                                "(none if empty).")

  def main():
    from jaxsparse.errors import UserError
    if len(values.value) != 2:
      raise UserError(f"--values={','.join(values.value)}: give two values, e.g. 0,2")
    started = time.time()
    result = compare(constant.value, tuple(values.value), method.value, model.value,
                     batch.value, steps.value, rounds.value)
    if not workdir.value:
      print(summary(result))
    else:
      os.makedirs(workdir.value, exist_ok=True)
      frame = pd.DataFrame({"value": result["values"],
                            "member_steps_per_second": result["member_steps_per_second"]})
      common.write_results(workdir.value, summary(result) + "\n\n" + common.markdown_table(frame),
                           started, ab=frame, ratios={key: result[key] for key in (
                               "ratio_median", "ratio_min", "ratio_max", "rates")})

  common.run(main)  # one JAX CPU device per core, as bench_population.py
