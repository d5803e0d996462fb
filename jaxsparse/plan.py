"""A dry run: what a config would train, what it needs and (on request) how long it takes.

``python -m jaxsparse.main --config=... --workdir=... --dry_run`` resolves
the config (every check a run makes) and prints it with every field, each
population's member table (the zoo, and each twin population of a twins
study), the programs it compiles and its memory per device, in seconds and
without compiling anything. ``--dry_run=time`` also compiles every
population's programs and times a few steps and an evaluation batch to
estimate the run's duration: compile time plus epochs times (steps times the
step time plus the epoch's evaluations), plus the whole test pass of the last
epoch where the others evaluate a learning curve's subset. Nothing is written.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from jaxsparse import build, engine, memory, sharding
from jaxsparse.data import Dataset
from jaxsparse.workdir import flatten_config

#: Optimizer steps timed per population (after one call that compiles them).
TIMED_STEPS = 3
#: Examples of the evaluation timed per population (at most; a run evaluates in batches of
#: ``config.training.eval_batch_size``, whose cost per example is about the same).
TIMED_EVAL_EXAMPLES = 256
#: jax.monitoring's event for one compilation by the backend.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
#: The dry run's modes: 'check' (nothing compiled) and 'time' (compiles and times steps).
MODES = ("check", "time")


class Phase(NamedTuple):
  """One population a run trains (the zoo, or one twin population), as set up.

  Attributes:
    name: 'zoo' or 'twins: <method>'.
    setup: its :class:`jaxsparse.build.Setup` (members split over the devices).
    epochs, steps_per_epoch: its training length.
    eval_examples: examples evaluated after each evaluated epoch (validation, and the
      test split or its first ``training.curve_test_examples``).
    final_eval_examples: examples the last epoch evaluates beyond that (the rest of the
      test split, when the others evaluate only a learning curve's subset).
    evaluated_epochs: epochs after which it evaluates (``training.evaluate_every``, the
      last, and 0 with ``evaluate_at_start``).
    programs: the programs it compiles: initialisation, the training epoch, one
      evaluation per split size, and the meeting of copies if its method has them.
    memory: its estimated memory per device (:mod:`jaxsparse.memory`).
  """
  name: str
  setup: build.Setup
  epochs: int
  steps_per_epoch: int
  eval_examples: int
  final_eval_examples: int
  evaluated_epochs: int
  programs: int
  memory: memory.MemoryEstimate


class Timing(NamedTuple):
  """A phase's measured programs: compiled, and a few steps and one evaluation timed.

  Attributes:
    programs: programs compiled to time it (training, evaluation, initialisation).
    compile_seconds: time spent compiling them.
    step_seconds: one optimizer step of every member.
    eval_seconds_per_example: evaluating every member on one example.
  """
  programs: int
  compile_seconds: float
  step_seconds: float
  eval_seconds_per_example: float


def seconds(phase: Phase, timing: Timing) -> float:
  """The estimated duration of a phase's training and evaluation, compilation included."""
  epoch = phase.steps_per_epoch * timing.step_seconds
  evaluation = phase.eval_examples * timing.eval_seconds_per_example
  final = phase.final_eval_examples * timing.eval_seconds_per_example
  return (timing.compile_seconds + phase.epochs * epoch + phase.evaluated_epochs * evaluation
          + final)


def _phase(name: str, config: ml_collections.ConfigDict, dataset: Dataset) -> Phase:
  """The :class:`Phase` of the population of (resolved) ``config`` on ``dataset``."""
  run = build.setup(config, build.data_shape(dataset), sharded=True)
  training = run.config.training
  test_examples = len(dataset.test_labels)
  curve_examples = min(training.curve_test_examples or test_examples, test_examples)
  validation_examples = len(dataset.validation_labels) if training.evaluate_validation else 0
  data_examples = len(dataset.train_labels) + len(dataset.validation_labels) + test_examples
  evaluated = len({epoch for epoch in range(1, training.num_epochs + 1)
                   if epoch % training.evaluate_every == 0} | {training.num_epochs})
  evaluated += bool(training.evaluate_at_start)
  split_sizes = {test_examples, curve_examples} | ({validation_examples} - {0})
  programs = 2 + len(split_sizes) + (run.method.copy_rounds is not None)
  return Phase(name, run, training.num_epochs, run.steps_per_epoch,
               validation_examples + curve_examples, test_examples - curve_examples,
               evaluated, programs, memory.check_fits(run, data_examples, dataset.input_shape))


def phases(config: ml_collections.ConfigDict, dataset: Dataset,
           workdir: str = ".") -> list[Phase]:
  """Every population a resolved ``config`` trains in ``workdir``, set up (nothing
  compiled): the zoo, then (for a twins study) each twin population on its fine-tuning
  subset (those a finished study already holds included)."""
  from jaxsparse import twins  # local: a training run does not need the study's module
  if config.job != "twins":
    return [_phase("zoo", config, dataset)]
  config = twins.study_config(config)
  estimates = [] if config.twins.original_workdir else [
      _phase("zoo", twins.original_config(config), dataset)]
  subset = twins.training_subset(dataset, config.twins.train_examples)
  for run in twins.twin_runs(config, workdir):
    estimates.append(_phase(f"twins: {run.name}", twins.twin_config(config, run), subset))
  return estimates


def _timed(function):
  """``function()``'s result (ready) and its duration in seconds."""
  started = time.perf_counter()
  result = jax.block_until_ready(function())
  return result, time.perf_counter() - started


def time_phase(phase: Phase, dataset: Dataset, timed_steps: int = TIMED_STEPS) -> Timing:
  """Compiles ``phase``'s programs and times ``timed_steps`` steps and one evaluation batch
  on ``dataset`` (each called twice: the first call compiles, the second is timed)."""
  run, training = phase.setup, phase.setup.config.training
  compiles = []
  listener = lambda event, seconds, **_: compiles.append(seconds) if event == _COMPILE_EVENT \
      else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    state = engine.init_population(run.program, run.hyper)
    steps = min(timed_steps, run.steps_per_epoch)
    images = dataset.train_images[:steps * training.batch_size]
    labels = dataset.train_labels[:steps * training.batch_size]
    train = lambda state: engine.train_epoch(run.program, state, run.hyper, images, labels)
    (state, _), _ = _timed(lambda: train(state))
    (state, _), step_time = _timed(lambda: train(state))
    batch = min(training.eval_batch_size, len(dataset.test_labels), TIMED_EVAL_EXAMPLES)
    evaluate = lambda: engine.evaluate(run.program, state, run.hyper,
                                       dataset.test_images[:batch], dataset.test_labels[:batch])
    _timed(evaluate)
    _, eval_time = _timed(evaluate)
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return Timing(len(compiles), float(np.sum(compiles)), step_time / steps, eval_time / batch)


def _duration(value: float) -> str:
  return f"{value / 3600:.1f} h" if value >= 5400 else (
      f"{value / 60:.1f} min" if value >= 90 else f"{value:.0f} s")


def _mib(value: float) -> str:
  return f"{value / 2**20:,.0f} MiB"


def _phase_lines(phase: Phase, timing: Timing | None) -> list[str]:
  run, need = phase.setup, phase.memory
  lines = [f"# {phase.name}: {run.num_members} members on {sharding.num_shards(run.mesh)} "
           f"{jax.default_backend()} device(s), {phase.epochs} epoch(s) of "
           f"{phase.steps_per_epoch} steps",
           run.table.to_string(max_rows=20), "",
           f"{phase.programs} program(s) to compile; memory per device about "
           f"{_mib(need.total)} (state {_mib(need.state)}, data {_mib(need.data)}, activations "
           f"{_mib(need.activations)} for {need.members_at_once} members at once, evaluation "
           f"{_mib(need.evaluation)} in batches of {need.eval_batch})"]
  if timing is not None:
    evaluation = phase.eval_examples * timing.eval_seconds_per_example
    lines.append(
        f"compiled {timing.programs} program(s) in {timing.compile_seconds:.1f} s; one step "
        f"of every member {timing.step_seconds * 1000:.1f} ms; evaluating "
        f"{phase.eval_examples} examples {evaluation:.1f} s per evaluated epoch"
        + (f" (and {phase.final_eval_examples} more after the last)"
           if phase.final_eval_examples else "")
        + f"; estimate {_duration(seconds(phase, timing))}")
  return lines + [""]


def describe(config: ml_collections.ConfigDict, phases: list[Phase],
             timings: list[Timing] | None = None) -> str:
  """The dry run's report: the resolved config (every field), each population's member
  table, programs and memory, and with ``timings`` (one per phase) the estimated total."""
  lines = ["# resolved config (every field; override any with --config.<field>=<value>)"]
  lines += [f"{path} = {tuple(value) if isinstance(value, list) else value!r}"
            for path, value in flatten_config(config.to_dict()).items()] + [""]
  for phase, timing in zip(phases, timings or [None] * len(phases)):
    lines += _phase_lines(phase, timing)
  members = sum(phase.setup.num_members for phase in phases)
  programs = sum(phase.programs for phase in phases)
  lines.append(f"{len(phases)} population(s), {members} members, {programs} programs.")
  if timings is None:
    lines.append("Nothing was compiled or written; --dry_run=time compiles the programs and "
                 "times a few steps to estimate the run's duration.")
  else:
    total = sum(seconds(phase, timing) for phase, timing in zip(phases, timings))
    lines.append(f"Estimated duration: {_duration(total)} (compilation included; data "
                 "loading, checkpoints and reports not). Nothing was written.")
  return "\n".join(lines)
