"""The dry run: it checks and describes a run without compiling or writing anything, and on
request estimates it from a few timed steps."""

import os
import re
import subprocess
import sys

import pytest

from jaxsparse import cpu_cores, data, engine, plan
from jaxsparse.config import resolve

from conftest import make_two_member_config, random_dataset

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("curve_examples", [0, 16])
def test_phase_counts_steps_members_evaluations_and_programs_without_compiling(curve_examples):
  config = resolve(make_two_member_config())
  config.training.curve_test_examples = curve_examples
  config.training.evaluate_every = 2
  config.training.num_epochs = 3
  dataset = random_dataset(num_train=256)
  programs = (engine.init_population, *engine.TRAIN_EPOCH_PROGRAMS, engine.evaluate)
  compiled = [program._cache_size() for program in programs]
  [phase] = plan.phases(config, dataset)
  report = plan.describe(config, [phase])
  assert [program._cache_size() for program in programs] == compiled, \
      "the check-only dry run compiles none of the engine's programs"
  assert phase.name == "zoo" and phase.setup.num_members == 2
  assert phase.epochs == 3 and phase.steps_per_epoch == 256 // 32
  # Each evaluated epoch (2 and the last, 3) evaluates the validation split and the test
  # split, or the learning curve's subset of it; then the last epoch evaluates the rest.
  assert phase.evaluated_epochs == 2
  assert phase.eval_examples == 64 + (curve_examples or 64)
  assert phase.final_eval_examples == (64 - curve_examples if curve_examples else 0)
  # init, train, and one evaluation per split size (64, and the curve's subset)
  assert phase.programs == 3 + bool(curve_examples)
  assert phase.memory.state > 0
  assert "training.num_epochs = 3" in report and "Nothing was compiled" in report
  assert "# zoo: 2 members on 1 cpu device(s), 3 epoch(s)" in report


def test_timed_phase_estimates_from_compiled_and_timed_steps():
  config = resolve(make_two_member_config())
  dataset = random_dataset(num_train=256)
  [phase] = plan.phases(config, dataset)
  timing = plan.time_phase(phase, dataset)
  # At least the training and the evaluation programs were compiled, and timed apart.
  assert timing.programs >= 2 and timing.compile_seconds > 0
  assert timing.step_seconds > 0 and timing.eval_seconds_per_example > 0
  epoch = phase.steps_per_epoch * timing.step_seconds
  evaluation = phase.eval_examples * timing.eval_seconds_per_example
  assert plan.seconds(phase, timing) == pytest.approx(
      timing.compile_seconds + 2 * epoch + 2 * evaluation)
  assert "Estimated duration" in plan.describe(config, [phase], [timing])


def _main(*arguments, cwd=REPOSITORY):
  return subprocess.run([sys.executable, "-m", "jaxsparse.main", *arguments], cwd=cwd,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a second subprocess beside the one below (the fast tier has the smoke run)
@pytest.mark.skipif(not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR),
                    reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_dry_run_of_the_smoke_config_prints_the_plan_and_writes_nothing(tmp_path):
  workdir = tmp_path / "smoke"
  result = _main("--config=configs/smoke.py", f"--workdir={workdir}", "--dry_run")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "data.train_examples = 2000" in result.stdout
  # 2,000 examples in batches of 32.
  # On one CPU device per core (jaxsparse.cpu_cores), unless the environment sets the count.
  devices = min(cpu_cores.usable_cores(), cpu_cores.MAX_DEVICES)
  if cpu_cores.DEVICE_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
    devices = "1" if f"{cpu_cores.DEVICE_COUNT_FLAG}=1" in os.environ["XLA_FLAGS"] else r"\d+"
  assert re.search(rf"# zoo: 4 members on {devices} cpu device\(s\), 1 epoch\(s\) of 62 steps",
                   result.stdout), result.stdout[-2000:]
  assert "Nothing was compiled or written" in result.stdout
  assert not workdir.exists()
  timed = _main("--config=configs/smoke.py", f"--workdir={workdir}", "--dry_run=time")
  assert timed.returncode == 0, timed.stderr[-2000:]
  assert "Estimated duration" in timed.stdout and not workdir.exists()


def test_dry_run_refuses_a_bad_config_in_one_line_and_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  result = _main("--config=configs/smoke.py", f"--workdir={workdir}", "--dry_run",
                 "--config.training.num_epochs=0")
  assert result.returncode == 2
  assert "num_epochs" in result.stderr and "Traceback" not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert not workdir.exists()
