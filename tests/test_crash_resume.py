"""A study killed with SIGKILL again and again resumes to exactly the uninterrupted result.

The study runs in a child process that kills itself (SIGKILL: no cleanup,
no ``finally``) at one point; the same command then runs again and is killed
at the next point, and so on: inside the zoo's second epoch, in the middle
of that epoch's Orbax checkpoint write, between its metrics and its
checkpoint, while a twin population trains, after a predictions cache is
written, and after the figures but before the report. The last run
completes; its summary.json must equal that of a run never interrupted, and
runs finished before a kill are not trained again.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import files_under

TESTS = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(TESTS)

pytestmark = pytest.mark.slow  # end-to-end: make test-all runs it

STUDY = """
import os, signal, sys
from jaxsparse import checkpoints, engine, report, twins
from conftest import make_tiny_study_config, random_dataset

def die():
  os.kill(os.getpid(), signal.SIGKILL)

def after_calls(function, count, before=True):
  '''``function`` that kills the process on its ``count``-th call (before or after it runs).'''
  calls = [0]
  def wrapped(*args, **kwargs):
    calls[0] += 1
    if calls[0] == count and before:
      die()
    result = function(*args, **kwargs)
    if calls[0] == count:
      die()
    return result
  return wrapped

def mid_write(manager, epoch, state):
  # Orbax writes asynchronously into a temporary directory: die while it is busy.
  manager.save(epoch, args=checkpoints.ocp.args.StandardSave(state))
  die()

# Call counts are those of a run resumed after the previous kill point.
workdir, kill_point = sys.argv[1], sys.argv[2]
if kill_point == "training":                 # inside the zoo's second epoch
  engine.train_epoch = after_calls(engine.train_epoch, 2)
elif kill_point == "checkpoint_write":       # the zoo's epoch-2 checkpoint half written
  checkpoints.save_population = mid_write
elif kill_point == "metrics_written":        # epoch 2's metrics written, its checkpoint not
  checkpoints.save_population = after_calls(checkpoints.save_population, 1)
elif kill_point == "twin_training":          # the first twin population's first epoch
  engine.train_epoch = after_calls(engine.train_epoch, 2)
elif kill_point == "predictions":            # the second predictions cache written
  twins.cache_predictions = after_calls(twins.cache_predictions, 2, before=False)
elif kill_point == "report":                 # figures written, report not
  report._figures = after_calls(report._figures, 1, before=False)

config = make_tiny_study_config(sparsities=(0.8,), num_epochs=2, scopes=("layerwise",))
twins.run_study(config, workdir, random_dataset(num_train=64))
"""


def run_study(workdir, kill_point="none"):
  environment = dict(os.environ, JAX_PLATFORMS="cpu",
                     PYTHONPATH=os.pathsep.join([REPOSITORY, TESTS]))
  return subprocess.run([sys.executable, "-c", textwrap.dedent(STUDY), str(workdir), kill_point],
                        cwd=REPOSITORY, env=environment, capture_output=True, text=True,
                        timeout=600)


def summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as file:
    return json.load(file)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  result = run_study(workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  return summary(workdir)


def _file_times(directory):
  return files_under(directory, lambda path: os.stat(path).st_mtime_ns)


KILL_POINTS = ("training", "checkpoint_write", "metrics_written", "twin_training",
               "predictions", "report")


def test_study_killed_at_every_point_resumes_to_the_uninterrupted_result(uninterrupted,
                                                                          tmp_path):
  original_checkpoints = None
  for kill_point in KILL_POINTS:
    killed = run_study(tmp_path, kill_point)
    assert killed.returncode == -signal.SIGKILL, (kill_point, killed.stderr[-3000:])
    assert not os.path.exists(tmp_path / "summary.json"), kill_point
    if kill_point == "twin_training":
      # The zoo finished in this run: later runs must not touch it.
      assert os.path.exists(tmp_path / "original" / "members.csv")
      original_checkpoints = _file_times(tmp_path / "original" / "checkpoints")
    elif original_checkpoints is not None:
      assert "Already trained for 2 epochs; nothing to do." in killed.stdout, kill_point

  resumed = run_study(tmp_path)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert summary(tmp_path) == uninterrupted
  assert _file_times(tmp_path / "original" / "checkpoints") == original_checkpoints
  # No half-written (temporary) checkpoint is left behind or taken for a real one.
  for root, directories, _ in os.walk(tmp_path):
    assert not [name for name in directories if "tmp" in name.lower()], (root, directories)
