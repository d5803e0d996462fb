"""A dry run: what a config would train, and about how long it would take, writing nothing.

``python -m jaxsparse.main --config=... --workdir=... --dry_run`` validates
the config, prints the resolved config and each population's member table,
and times a few steps of every population (the zoo, and each twin
population of a twins study) to estimate the run's duration. Compilation is
timed apart from the steps, so the estimate is compile time plus epochs times
(steps times the step time plus the epoch's evaluation), plus the whole test
pass of the last epoch where the others evaluate a learning curve's subset.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxsparse import build, engine, memory, sharding
from jaxsparse.config import completed_config, validate_config
from jaxsparse.data import Dataset
from jaxsparse.workdir import flatten_config

#: Optimizer steps timed per population (after one call that compiles them).
TIMED_STEPS = 3
#: Examples of the evaluation timed per population (at most; a run evaluates in batches of
#: ``config.training.eval_batch_size``, whose cost per example is about the same).
TIMED_EVAL_EXAMPLES = 256
#: jax.monitoring's event for one compilation by the backend.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class PhaseEstimate(NamedTuple):
  """The timing of one population (the zoo, or one twin population).

  Attributes:
    name: 'zoo' or 'twins: <method>'.
    table: its member table.
    epochs, steps_per_epoch: its training length.
    eval_examples: examples evaluated after each epoch (validation, and the test split or
      its first ``training.curve_test_examples``).
    final_eval_examples: examples the last epoch evaluates beyond that (the rest of the
      test split, when the others evaluate only a learning curve's subset).
    programs: programs compiled to time it (training, evaluation, initialisation).
    compile_seconds: time spent compiling them.
    step_seconds: one optimizer step of every member.
    eval_seconds_per_example: evaluating every member on one example.
    devices: the devices its members are split over (on the CPU one per core:
      :mod:`jaxsparse.cpu_cores`).
  """
  name: str
  table: pd.DataFrame
  epochs: int
  steps_per_epoch: int
  eval_examples: int
  final_eval_examples: int
  programs: int
  compile_seconds: float
  step_seconds: float
  eval_seconds_per_example: float
  devices: int = 1

  @property
  def seconds(self) -> float:
    """The estimated duration of the population's training and evaluation."""
    epoch = (self.steps_per_epoch * self.step_seconds
             + self.eval_examples * self.eval_seconds_per_example)
    final = self.final_eval_examples * self.eval_seconds_per_example
    return self.compile_seconds + self.epochs * epoch + final


def _timed(function):
  """``function()``'s result (ready) and its duration in seconds."""
  started = time.perf_counter()
  result = jax.block_until_ready(function())
  return result, time.perf_counter() - started


def estimate_phase(name: str, config: ml_collections.ConfigDict, dataset: Dataset,
                   timed_steps: int = TIMED_STEPS) -> PhaseEstimate:
  """Times ``timed_steps`` steps and one evaluation batch of the population of ``config``
  on ``dataset`` (each called twice: the first call compiles, the second is timed)."""
  run = build.setup(config, build.data_shape(dataset), sharded=True)
  training = run.config.training
  test_examples = len(dataset.test_labels)
  curve_examples = min(training.curve_test_examples or test_examples, test_examples)
  validation_examples = len(dataset.validation_labels) if training.evaluate_validation else 0
  memory.check_fits(run, len(dataset.train_labels) + validation_examples + test_examples,
                    dataset.input_shape)
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
  return PhaseEstimate(name, run.table, training.num_epochs, run.steps_per_epoch,
                       validation_examples + curve_examples, test_examples - curve_examples,
                       len(compiles), float(np.sum(compiles)),
                       step_time / steps, eval_time / batch, sharding.num_shards(run.mesh))


def phases(config: ml_collections.ConfigDict, dataset: Dataset) -> list[PhaseEstimate]:
  """The estimates of every population ``config`` trains: the zoo, then (for a twins
  study) each twin population on its fine-tuning subset."""
  from jaxsparse import twins  # local: a training run does not need the study's module
  validate_config(config)
  if config.get("job", "train") != "twins":
    return [estimate_phase("zoo", config, dataset)]
  config = twins.study_config(config)
  estimates = [] if config.twins.original_workdir else [
      estimate_phase("zoo", twins.original_config(config), dataset)]
  subset = twins.training_subset(dataset, config.twins.train_examples)
  for run in twins.twin_runs(config, "."):
    estimates.append(estimate_phase(f"twins: {run.name}", twins.twin_config(config, run), subset))
  return estimates


def _duration(seconds: float) -> str:
  return f"{seconds / 3600:.1f} h" if seconds >= 5400 else (
      f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s")


def _phase_lines(estimate: PhaseEstimate) -> list[str]:
  evaluation = estimate.eval_examples * estimate.eval_seconds_per_example
  return [f"# {estimate.name}: {len(estimate.table)} members on {estimate.devices} "
          f"{jax.default_backend()} device(s), {estimate.epochs} epoch(s) of "
          f"{estimate.steps_per_epoch} steps",
          estimate.table.to_string(max_rows=20), "",
          f"compiled {estimate.programs} program(s) in {estimate.compile_seconds:.1f} s; one "
          f"step of every member {estimate.step_seconds * 1000:.1f} ms; evaluating "
          f"{estimate.eval_examples} examples {evaluation:.1f} s per epoch"
          + (f" (and {estimate.final_eval_examples} more after the last)"
             if estimate.final_eval_examples else "") + "; estimate "
          f"{_duration(estimate.seconds)}", ""]


def describe(config: ml_collections.ConfigDict, estimates: list[PhaseEstimate]) -> str:
  """The dry run's report: the resolved config (every field), each population's member
  table and timing, and the estimated total."""
  fields = flatten_config(completed_config(config).to_dict())
  lines = ["# resolved config (every field; override any with --config.<field>=<value>)"]
  lines += [f"{path} = {tuple(value) if isinstance(value, list) else value!r}"
            for path, value in fields.items()] + [""]
  for estimate in estimates:
    lines += _phase_lines(estimate)
  total = sum(estimate.seconds for estimate in estimates)
  lines.append(f"Estimated duration: {_duration(total)} (compilation included; data loading, "
               "checkpoints and reports not). Nothing was written.")
  return "\n".join(lines)
