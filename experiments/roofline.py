"""How far the engine's training step is from this machine's limit, and where its time goes.

  python experiments/roofline.py --workdir=runs/roofline            # CNN-s, P = 64, batch 32
  python experiments/roofline.py --workdir=runs/roofline --method=variational_dropout

1. **The ceiling**: the float32 matrix-multiply rate of every CPU device at once (a
   2,048 x 2,048 matmul per device, sharded, the fastest of 5 calls:
   ``bench_population.gemm_gflops``).
2. **The work**: the FLOPs of one member's training step, 3 x the forward pass's
   (2 x the multiply-adds of its convolutions and dense layers) x the batch.
3. **The engine**: member-steps/s of one ``train_epoch`` call of ``--steps`` steps (the
   fastest of 3 after a compiling call), its GFLOP/s and its fraction of the ceiling.
4. **Where the time goes**: a JAX profile of those calls. Every XLA:CPU operation it
   records is classed by what its HLO computes (the optimized HLO that XLA dumps):
   convolution, matrix multiply, reduction, data movement (copies, transposes, slices,
   gathers, pads) or elementwise; loops and calls are containers (their operations are
   counted instead). The share of each kind is its part of the summed operation time over
   every device's threads.
5. **The heaviest operations** (``--top``): the operations that take the most time, each
   with its kind, share, result type and the JAX operation it came from (its ``op_name``).

Writes ``results.json`` (``roofline``, ``parts`` and ``top``), ``results.md`` and
``provenance.json`` under ``--workdir``.
"""

from __future__ import annotations

import atexit
import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONTAINERS = {"while", "call", "conditional"}
MOVEMENT = {"copy", "transpose", "concatenate", "slice", "dynamic-slice", "dynamic-update-slice",
            "pad", "gather", "scatter", "broadcast", "reshape", "bitcast", "iota", "reverse",
            "copy-start", "copy-done", "tuple", "get-tuple-element", "parameter", "constant",
            "bitcast-convert"}
KINDS = ("convolution", "matrix multiply", "reduction", "data movement", "elementwise", "other")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([a-z][a-z\-]*)\(")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_RESULT = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def parse_hlo(text: str) -> tuple[dict[str, list[str]], dict[str, tuple[str, str | None]]]:
  """(computation -> its instructions' opcodes, instruction -> (opcode, called computation))
  of an HLO module's text."""
  computations: dict[str, list[str]] = {}
  instructions: dict[str, tuple[str, str | None]] = {}
  current = None
  for line in text.splitlines():
    if line.startswith("}"):
      current = None
      continue
    header = _COMPUTATION.match(line)
    if header and not line.startswith(" "):  # (types may hold '/*index=5*/' comments)
      current = header.group(1)
      computations[current] = []
      continue
    instruction = _INSTRUCTION.match(line)
    if instruction and current is not None:
      name, opcode = instruction.groups()
      computations[current].append(opcode)
      called = _CALLS.search(line)
      instructions[name] = (opcode, called.group(1) if called else None)
  return computations, instructions


def kind_of(opcode: str, called: str | None, computations: dict[str, list[str]]) -> str:
  """What an operation computes (:data:`KINDS`), or 'container' for loops and calls."""
  if opcode in CONTAINERS:
    return "container"
  body = set(computations.get(called, [])) if called else set()
  opcodes = body | {opcode}
  if "convolution" in opcodes:
    return "convolution"
  if "dot" in opcodes:
    return "matrix multiply"
  if opcodes & {"reduce", "reduce-window", "select-and-scatter"}:
    return "reduction"
  if opcodes <= MOVEMENT | {"fusion"}:
    return "data movement"
  if opcode in ("fusion", "custom-call") or body:
    return "elementwise" if not opcodes & {"custom-call", "sort"} else "other"
  return "elementwise" if opcode not in ("custom-call", "sort", "rng") else "other"


def _dumped_modules(dump_dir: str):
  """(module name, text) of every optimized module XLA dumped."""
  for path in glob.glob(os.path.join(dump_dir, "*after_optimizations.txt")):
    with open(path) as file:
      text = file.read()
    module = re.search(r"HloModule\s+([\w.\-]+)", text)
    yield (module.group(1) if module else ""), text


def classify(dump_dir: str) -> dict[tuple[str, str], str]:
  """(HLO module, operation) -> kind, for every optimized module XLA dumped."""
  kinds = {}
  for module, text in _dumped_modules(dump_dir):
    computations, instructions = parse_hlo(text)
    for name, (opcode, called) in instructions.items():
      kinds[(module, name)] = kind_of(opcode, called, computations)
  return kinds


def describe_operations(text: str) -> dict[str, tuple[str, str]]:
  """operation -> (its result's type, the JAX operation it came from: the last three parts
  of its ``op_name`` metadata) of an HLO module's text."""
  described = {}
  for line in text.splitlines():
    match = _RESULT.match(line)
    if match:
      op_name = _OP_NAME.search(line)
      described[match.group(1)] = (match.group(2), "/".join(
          (op_name.group(1) if op_name else "").split("/")[-3:]))
  return described


def time_by_operation(trace_dir: str) -> dict[tuple[str, str], float]:
  """Seconds of every (HLO module, operation) in a profile, summed over its calls."""
  from jax import profiler
  seconds: dict[tuple[str, str], float] = collections.defaultdict(float)
  for path in glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True):
    for plane in profiler.ProfileData.from_file(path).planes:
      for line in plane.lines:
        for event in line.events:
          stats = dict(event.stats)
          if "hlo_op" in stats:
            seconds[(stats.get("hlo_module", ""), stats["hlo_op"])] += event.duration_ns / 1e9
  return dict(seconds)


def time_by_kind(seconds: dict[tuple[str, str], float],
                 kinds: dict[tuple[str, str], str]) -> dict[str, float]:
  """The operations' seconds (:func:`time_by_operation`) summed by kind (containers left
  out)."""
  by_kind: dict[str, float] = collections.defaultdict(float)
  for (module, operation), duration in seconds.items():
    kind = kinds.get((module, operation))
    if kind is None:  # an operation of a module XLA did not dump (none expected)
      kind = kind_of(operation.split(".")[0], None, {})
    if kind != "container":
      by_kind[kind] += duration
  return dict(by_kind)


def top_operations(seconds: dict[tuple[str, str], float], kinds: dict[tuple[str, str], str],
                   described: dict[tuple[str, str], tuple[str, str]], count: int
                   ) -> pd.DataFrame:
  """The ``count`` operations that take the most time (containers left out), with their
  kind, share of all operations' time, result type and JAX origin."""
  timed = {key: duration for key, duration in seconds.items()
           if kinds.get(key) != "container"}
  total = sum(timed.values()) or 1.0
  rows = [{"operation": key[1], "kind": kinds.get(key, "?"), "share": duration / total,
           "result": described.get(key, ("", ""))[0], "from": described.get(key, ("", ""))[1]}
          for key, duration in sorted(timed.items(), key=lambda item: -item[1])[:count]]
  return pd.DataFrame(rows, columns=["operation", "kind", "share", "result", "from"])


def profiled_calls(run_steps, calls: int = 3) -> tuple[list[float], dict[tuple[str, str], float]]:
  """(seconds of each of ``calls`` calls of ``run_steps``, :func:`time_by_operation` of
  their profile)."""
  import jax
  timings = []
  with tempfile.TemporaryDirectory() as trace:
    jax.profiler.start_trace(trace)
    for _ in range(calls):
      begun = time.perf_counter()
      run_steps()
      timings.append(time.perf_counter() - begun)
    jax.profiler.stop_trace()
    return timings, time_by_operation(trace)


def dump_optimized_hlo() -> str:
  """Makes XLA write the optimized HLO of every program it compiles to a new folder (call
  it before JAX starts), for :func:`classify`; returns the folder, deleted at exit."""
  dump = tempfile.mkdtemp(prefix="roofline_hlo_")
  atexit.register(shutil.rmtree, dump, ignore_errors=True)  # once nothing compiles any more
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_dump_to=" + dump +
                             " --xla_dump_hlo_as_text").strip()
  return dump


def run(workdir: str, method: str, population: int, batch: int, steps: int, chunk: int,
        dump: str, top_count: int = 10) -> None:
  """The roofline of ``method``'s step, classed with the HLO XLA dumped to ``dump``
  (:func:`dump_optimized_hlo`), written under ``workdir``."""
  import jax
  import bench_population
  from experiments.common import markdown_table, write_results
  started = time.time()
  os.makedirs(workdir, exist_ok=True)
  ceiling = bench_population.gemm_gflops()
  run_steps = bench_population.engine_steps(method, "cnn_s", population, batch, steps, chunk)
  run_steps()  # compiles
  timings, by_operation = profiled_calls(run_steps)
  kinds = classify(dump)
  seconds = time_by_kind(by_operation, kinds)
  described = {(module, name): description for module, text in _dumped_modules(dump)
               for name, description in describe_operations(text).items()}
  top = top_operations(by_operation, kinds, described, top_count)
  member_steps = population * steps / min(timings)
  step_flops = 3 * bench_population._forward_flops("cnn_s") * batch
  achieved = member_steps * step_flops / 1e9
  roofline = pd.DataFrame([
      {"quantity": "float32 matmul ceiling, every device (GFLOP/s)", "value": ceiling},
      {"quantity": "FLOPs of one member's training step (3 x forward x batch)",
       "value": step_flops},
      {"quantity": "engine member-steps/s (profiled calls, fastest)", "value": member_steps},
      {"quantity": "engine GFLOP/s", "value": achieved},
      {"quantity": "fraction of the ceiling", "value": achieved / ceiling}])
  total = sum(seconds.values())
  parts = pd.DataFrame([{"kind": kind, "seconds (summed over threads)": seconds.get(kind, 0.0),
                         "share": seconds.get(kind, 0.0) / total} for kind in KINDS])
  table = "\n\n".join([
      f"{method}, CNN-s, P = {population}, batch {batch}, {jax.device_count()} device(s):",
      markdown_table(roofline, digits=3), markdown_table(parts, digits=3)]
      + ([f"The {top_count} operations that take the most time:", markdown_table(top, digits=3)]
         if top_count else []))
  write_results(workdir, table, started, roofline=roofline, parts=parts, top=top,
                settings={"method": method, "population": population, "batch": batch,
                          "steps": steps, "chunk": chunk, "devices": jax.device_count()})


if __name__ == "__main__":
  from absl import flags
  from experiments import common
  workdir = flags.DEFINE_string("workdir", "runs/roofline", "Where the results go.")
  method = flags.DEFINE_string("method", "none", "The engine's sparsification method.")
  population = flags.DEFINE_integer("population", 64, "Members (P).", lower_bound=1)
  batch = flags.DEFINE_integer("batch", 32, "Batch size per member.", lower_bound=1)
  steps = flags.DEFINE_integer("steps", 10, "Steps per timed call.", lower_bound=1)
  chunk = flags.DEFINE_integer("chunk", 4, "Members vmapped at once (0: all).", lower_bound=0)
  top = flags.DEFINE_integer("top", 10, "List the operations that take the most time, this "
                             "many (0: none).", lower_bound=0)
  dump_dir = dump_optimized_hlo()  # before JAX starts
  common.run(lambda: run(workdir.value, method.value, population.value, batch.value,
                         steps.value, chunk.value, dump_dir, top.value))
