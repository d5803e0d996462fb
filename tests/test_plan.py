"""The dry run: it estimates a run from a few timed steps and writes nothing."""

import os
import re
import subprocess
import sys

import pytest

from jaxsparse import cpu_cores, data, plan

from conftest import make_two_member_config, random_dataset

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("curve_examples", [0, 16])
def test_phase_estimate_counts_steps_members_evaluations_and_compilations(curve_examples):
  config = make_two_member_config()
  config.training.curve_test_examples = curve_examples
  dataset = random_dataset(num_train=256)
  [estimate] = plan.phases(config, dataset)
  assert estimate.name == "zoo" and len(estimate.table) == 2
  assert estimate.epochs == 2 and estimate.steps_per_epoch == 256 // 32
  # Every epoch evaluates the validation split and the test split, or the learning curve's
  # subset of it; then the last epoch evaluates the rest of the test split.
  assert estimate.eval_examples == 64 + (curve_examples or 64)
  assert estimate.final_eval_examples == (64 - curve_examples if curve_examples else 0)
  # At least the training and the evaluation programs were compiled, and timed apart.
  assert estimate.programs >= 2 and estimate.compile_seconds > 0
  assert estimate.step_seconds > 0 and estimate.eval_seconds_per_example > 0
  epoch = (estimate.steps_per_epoch * estimate.step_seconds
           + estimate.eval_examples * estimate.eval_seconds_per_example)
  final = estimate.final_eval_examples * estimate.eval_seconds_per_example
  assert estimate.seconds == pytest.approx(estimate.compile_seconds + 2 * epoch + final)
  report = plan.describe(config, [estimate])
  assert "training.num_epochs = 2" in report and "Estimated duration" in report
  assert "# zoo: 2 members on 1 cpu device(s), 2 epoch(s)" in report


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
  assert "Estimated duration" in result.stdout
  assert not workdir.exists()


def test_dry_run_refuses_a_bad_config_in_one_line_and_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  result = _main("--config=configs/smoke.py", f"--workdir={workdir}", "--dry_run",
                 "--config.training.num_epochs=0")
  assert result.returncode == 2
  assert "num_epochs" in result.stderr and "Traceback" not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert not workdir.exists()
