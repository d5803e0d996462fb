"""Ctrl-C and SIGTERM stop a run within seconds, keep its checkpoints and say how to resume;
a second command on a busy workdir is refused (end to end through the command line)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir):
  # 16 members of CNN-s on 1,200 digits at batch 10: epochs of several seconds.
  return [sys.executable, "-m", "jaxsparse.main", "--config=configs/zoo.py",
          f"--workdir={workdir}", "--config.data.name=digits", "--config.data.image_size=28",
          "--config.data.validation_size=300", "--config.population.num_seeds=4",
          "--config.population.grid.activation=('tanh','relu')",
          "--config.population.grid.learning_rate=(1e-3,3e-4)",
          "--config.training.batch_size=10", "--config.training.num_epochs=40",
          "--config.logging.progress=none"]


def _start(workdir):
  return subprocess.Popen(_command(workdir), cwd=REPOSITORY, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout=300):
  deadline = time.time() + timeout
  while not condition():
    assert time.time() < deadline, "timed out"
    time.sleep(0.2)


def _stop(process, number):
  """Sends ``number``; returns (seconds until the process ended, exit status, stdout, stderr)."""
  process.send_signal(number)
  sent = time.time()
  stdout, stderr = process.communicate(timeout=120)
  return time.time() - sent, process.returncode, stdout, stderr


def test_signals_stop_within_seconds_and_a_busy_workdir_is_refused(tmp_path):
  workdir = tmp_path / "run"
  first = _start(workdir)
  try:
    _wait_for(lambda: (workdir / "checkpoints" / "1" / "checksums.json").exists())
    second = subprocess.run(_command(workdir), cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        line for line in second.stderr.strip().splitlines() if line.startswith("error:")]
    assert f"in use by another jaxsparse command (pid {first.pid}" in second.stderr
    time.sleep(1.0)  # inside a later epoch's compiled call
    seconds, status, _, stderr = _stop(first, signal.SIGTERM)
  finally:
    first.kill()
  epoch_seconds = json.loads(open(workdir / "metrics.jsonl").readline())["epoch_seconds"]
  assert status == 128 + signal.SIGTERM
  assert seconds < 3 < epoch_seconds, (seconds, epoch_seconds)
  assert "Traceback" not in stderr
  assert stderr.strip().splitlines()[-1].startswith("Stopped by SIGTERM")
  assert "run the same command to resume" in stderr

  # Epochs take about a second on one CPU device per core, so the first run may have
  # finished more than one before the signal: the resumed run goes on from its last.
  last = max(int(path.parent.name)
             for path in (workdir / "checkpoints").glob("*/checksums.json"))
  resumed = _start(workdir)
  try:
    _wait_for(lambda: (workdir / "checkpoints" / str(last + 1) / "checksums.json").exists())
    seconds, status, stdout, _ = _stop(resumed, signal.SIGINT)
  finally:
    resumed.kill()
  assert status == 128 + signal.SIGINT and seconds < 3
  assert f"Resuming from the checkpoint of epoch {last}" in stdout
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert {row["epoch"] for row in rows} >= set(range(1, last + 2))


def test_a_second_ctrl_c_while_stopping_is_no_traceback(tmp_path):
  workdir = tmp_path / "run"
  process = _start(workdir)
  try:
    _wait_for(lambda: (workdir / "checkpoints" / "1" / "checksums.json").exists())
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
  finally:
    process.kill()
  assert process.returncode == 128 + signal.SIGINT
  assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
  assert stderr.strip().splitlines()[-1].startswith("Stopped by SIGINT")


#: The command line, with the study's report held up for a while (for a signal to land in it).
SLOW_REPORT = """
import os, time
from absl import app
from jaxsparse import main, report
write_report = report.write_report

def slow(*args, **kwargs):
  print("writing the report", flush=True)
  time.sleep(float(os.environ["REPORT_DELAY"]))
  return write_report(*args, **kwargs)

report.write_report = slow
app.run(main.main, flags_parser=main._parse_flags)
"""


def test_sigterm_during_the_report_loses_nothing_and_the_rerun_writes_it(tmp_path):
  arguments = ["--config=configs/smoke.py", f"--workdir={tmp_path / 'study'}",
               "--config.job=twins", "--config.twins.methods=('magnitude',)",
               "--config.twins.sparsities=(0.5,)", "--config.twins.train_examples=200",
               "--config.logging.tensorboard=False", "--config.logging.progress=none"]
  process = subprocess.Popen([sys.executable, "-c", SLOW_REPORT, *arguments], cwd=REPOSITORY,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, REPORT_DELAY="60"))
  try:
    _wait_for(lambda: "writing the report" in process.stdout.readline()
              or process.poll() is not None)
    seconds, status, _, stderr = _stop(process, signal.SIGTERM)
  finally:
    process.kill()
  assert status == 128 + signal.SIGTERM and seconds < 3
  assert "Traceback" not in stderr
  assert not (tmp_path / "study" / "report.md").exists()
  again = subprocess.run([sys.executable, "-c", SLOW_REPORT, *arguments], cwd=REPOSITORY,
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, REPORT_DELAY="0"))
  assert again.returncode == 0, again.stderr[-2000:]
  assert "nothing to do" in again.stdout  # the zoo and the twins were not trained again
  summary = json.loads((tmp_path / "study" / "summary.json").read_text())
  assert summary["claims"] and (tmp_path / "study" / "report.md").exists()
