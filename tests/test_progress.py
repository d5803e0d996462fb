"""Progress inside an epoch: reports from the compiled call, the bar's ETA, a study's bar."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import engine, models, population, progress, sparsify

from conftest import SINGLE, assert_trees_close, random_dataset

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_progress_reports_leave_the_numbers_unchanged_and_arrive_per_chunk():
  chunk_size, passes = 1, 2  # two members, one at a time
  data = random_dataset(num_train=10 * 16)  # 10 steps of batch 16
  model = models.get_model("cnn_s", data.input_shape)
  hyper = population.member_hyperparameters(population.member_table(SINGLE, num_seeds=2))
  method = sparsify.dense.dense()
  images, labels = jnp.asarray(data.train_images), jnp.asarray(data.train_labels)
  results, reports = [], []
  for every in (0, 3):
    program = engine.Program(model, method, 16, chunk_size=chunk_size, progress_every=every)
    state = engine.init_population(program, hyper)
    with engine.listening_to_progress(lambda: reports.append(every)):
      state, metrics = engine.train_epoch(program, state, hyper, images, labels)
      jax.block_until_ready(metrics)
    results.append((state.params, metrics))
  # After steps 3, 6 and 9 (10 // 3 reports) in every chunk; none without progress_every.
  assert reports == [3] * (10 // 3) * passes
  assert_trees_close(results[0], results[1])


class _Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_eta_leaves_out_the_time_before_the_first_advance(monkeypatch):
  clock = _Clock()
  monkeypatch.setattr(progress.time, "monotonic", clock)
  bar = progress.Bar(total=100, disable=True)
  assert bar.eta_seconds() is None
  clock.now += 60.0  # compilation and the first 10 steps
  bar.advance_to(10)
  assert bar.eta_seconds() is None  # one point gives no rate yet
  clock.now += 10.0  # 20 steps in 10 s: 2 steps/s, 70 steps left
  bar.advance_to(30)
  assert bar.eta_seconds() == pytest.approx(35.0)
  bar.advance_to(20)  # never backwards
  assert bar.n == 30


def test_a_population_bar_advances_the_study_bar_by_member_steps(monkeypatch):
  clock = _Clock()
  monkeypatch.setattr(progress.time, "monotonic", clock)
  study = progress.Bar(total=1000, disable=True)
  # A resumed population of 10 members: 20 of its 50 steps were done before.
  population_bar = progress.Bar(total=50, initial=20, disable=True, parent=study, weight=10)
  assert study.n == 200
  population_bar.advance_to(30)
  clock.now += 5.0
  population_bar.advance_to(40)
  assert study.n == 400
  # 100 member-steps in 5 s since the first timed advance; the skipped 200 are not timed.
  assert study.eta_seconds() == pytest.approx(600 / 20)


def test_epoch_tracker_turns_reports_into_steps():
  bar = progress.Bar(total=3 * 40, disable=True)
  # 40 steps per epoch, a report every 2 steps, 2 chunks: 40 reports per epoch.
  tracker = progress.EpochTracker(bar, steps_per_epoch=40, reports_per_epoch=40)
  tracker.start_epoch(2)
  for _ in range(20):
    tracker.report()
  assert bar.n == 40 + 20
  for _ in range(25):  # more reports than expected never pass the epoch's end
    tracker.report()
  assert bar.n == 80
  tracker.end_epoch(2)
  assert bar.n == 80
  assert progress.report_interval(1000) == 1000 // progress.REPORTS_PER_EPOCH
  assert progress.report_interval(5) == 1


def test_lines_print_at_most_every_n_seconds_with_rate_and_eta(monkeypatch, capsys):
  clock = _Clock()
  monkeypatch.setattr(progress.time, "monotonic", clock)
  bar = progress.new_bar("lines", total=400, desc="zoo", weight=8, every_seconds=30,
                         steps_per_epoch=100)
  bar.advance_to(10)  # the first advance starts the clock: no line yet
  for _ in range(12):  # 10 steps every 10 s: 8 member-steps per step -> 8 member-steps/s
    clock.now += 10.0
    bar.advance_to(bar.n + 10)
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4  # at 30, 60, 90 and 120 s
  # 1 step/s: 360 steps left at 40 of 400 -> 6 minutes
  assert lines[0].endswith("zoo: epoch 1/4, 40/400 steps, 8 member-steps/s, eta 06:00")
  assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d zoo: ", lines[0])
  bar.end_epoch(1, 4, 12.0, {"train_loss": np.array([0.5, 1.5]),
                             "test_accuracy": np.array([0.6, np.nan]),
                             "diverged": np.array([False, True])})
  [line] = capsys.readouterr().out.strip().splitlines()
  assert line.endswith("zoo: epoch 1/4 done in 12 s; train_loss 1.0000 [0.5000, 1.5000], "
                       "test_accuracy 0.6000 [0.6000, 0.6000]; 1 member(s) diverged")


def test_auto_mode_is_the_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
  monkeypatch.setattr(progress.sys.stdout, "isatty", lambda: False, raising=False)
  assert progress.resolve_mode("auto") == "lines"
  assert progress.resolve_mode("bar") == "bar"


@pytest.mark.slow  # a subprocess training a small twins study
def test_a_redirected_run_writes_plain_timestamped_lines_per_epoch(tmp_path):
  log = tmp_path / "log"
  with open(log, "w") as file:
    result = subprocess.run(
        [sys.executable, "-m", "jaxsparse.main", "--config=configs/smoke.py",
         f"--workdir={tmp_path / 'study'}", "--config.job=twins",
         "--config.twins.methods=('magnitude',)", "--config.twins.sparsities=(0.5,)",
         "--config.twins.num_epochs=2", "--config.twins.train_examples=500",
         "--config.logging.tensorboard=False"],
        cwd=REPOSITORY, stdout=file, stderr=subprocess.STDOUT, timeout=600)
  text = log.read_text()
  assert result.returncode == 0, text[-2000:]
  assert "\r" not in text and "\x1b[" not in text
  epochs = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (\w+): epoch (\d)/(\d) done in", text,
                      re.MULTILINE)
  assert epochs == [("original", "1", "1"), ("magnitude_layerwise", "1", "2"),
                    ("magnitude_layerwise", "2", "2")]
  assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d == phase 2/2: twins", text, re.MULTILINE)
