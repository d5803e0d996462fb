"""Damaged or inconsistent run files are repaired from the checkpoint, the truth of a run,
instead of breaking a resume or giving silently wrong numbers (end to end: slow tier)."""

import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from jaxsparse import engine, metrics, twins
from jaxsparse.train import train_and_evaluate

sys.path.insert(0, os.path.dirname(__file__))
from conftest import make_two_member_config, random_dataset  # noqa: E402

pytestmark = pytest.mark.slow

DATA = random_dataset(num_train=64)


_config = make_two_member_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  run = str(tmp_path_factory.mktemp("template") / "run")
  members = train_and_evaluate(_config(), run, DATA)
  return run, members


@pytest.fixture
def run(finished, tmp_path):
  copy = str(tmp_path / "run")
  shutil.copytree(finished[0], copy)
  return copy


def _rows(run):
  return metrics.read_metrics(os.path.join(run, "metrics.jsonl"))


def _keep_lines(run, keep):
  path = os.path.join(run, "metrics.jsonl")
  lines = open(path).readlines()
  with open(path, "w") as file:
    file.writelines(keep(lines))


def test_a_partial_line_left_by_a_full_disk_does_not_break_the_resume(run, finished):
  shutil.rmtree(os.path.join(run, "checkpoints", "2"))  # killed while checkpointing epoch 2
  _keep_lines(run, lambda lines: lines[:3] + [lines[3][:25]])
  members = train_and_evaluate(_config(), run, DATA)
  assert sorted((row["epoch"], row["member"]) for row in _rows(run)) == \
      [(1, 0), (1, 1), (2, 0), (2, 1)]
  np.testing.assert_array_equal(members["test_accuracy"], finished[1]["test_accuracy"])


@pytest.mark.parametrize("damage,tensorboard", [("last rows dropped", False),
                                                ("last rows dropped", True),
                                                ("empty", False), ("missing", False)])
def test_missing_final_metrics_are_recomputed_from_the_checkpoint(run, finished, damage,
                                                                   tensorboard, capsys):
  if damage == "last rows dropped":
    _keep_lines(run, lambda lines: lines[:3])
  elif damage == "empty":
    _keep_lines(run, lambda lines: [])
  else:
    os.remove(os.path.join(run, "metrics.jsonl"))
  config = _config()
  config.logging.tensorboard = tensorboard  # (its histogram of an all-NaN loss once failed)
  members = train_and_evaluate(config, run, DATA)
  assert "Recomputed the metrics of epoch 2" in capsys.readouterr().out
  assert len(members) == 2 and not members["diverged"].any()
  for column in ("test_accuracy", "validation_accuracy", "achieved_sparsity"):
    np.testing.assert_array_equal(members[column], finished[1][column])
  assert members["train_loss"].isna().all()  # an average over the epoch: not recomputable
  written = pd.read_csv(os.path.join(run, "members.csv"))
  np.testing.assert_array_equal(written["test_accuracy"], finished[1]["test_accuracy"])


def test_predictions_of_another_run_or_garbage_are_recomputed(run, finished, tmp_path):
  other = str(tmp_path / "other")
  config = _config()
  config.population.grid.learning_rate = (0.1,)
  train_and_evaluate(config, other, DATA)
  shutil.copy(os.path.join(other, "predictions.npz"), os.path.join(run, "predictions.npz"))
  assert metrics.read_predictions(run) is None, "a copied cache is not this run's"
  record = twins.cache_predictions(run, DATA, batch_size=50)
  np.testing.assert_array_equal(record["accuracy"], finished[1]["test_accuracy"])
  with open(os.path.join(run, "predictions.npz"), "wb") as file:
    file.write(b"\x93NUMPY garbage")
  assert metrics.read_predictions(run) is None
  record = twins.cache_predictions(run, DATA, batch_size=50)
  np.testing.assert_array_equal(record["accuracy"], finished[1]["test_accuracy"])


def test_a_failure_before_the_first_checkpoint_blocks_nothing(tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise RuntimeError("a data-dependent failure in the first epoch")
  monkeypatch.setattr(engine, "train_epoch", fail)
  with pytest.raises(RuntimeError):
    train_and_evaluate(_config(), str(tmp_path), DATA)
  assert not (tmp_path / "checkpoints").exists()
  monkeypatch.undo()
  corrected = _config()
  corrected.training.batch_size = 8  # another config, without --overwrite
  assert len(train_and_evaluate(corrected, str(tmp_path), DATA)) == 2


def test_an_eval_batch_larger_than_the_split_is_the_split(tmp_path, finished):
  config = _config()
  config.training.eval_batch_size = 10**9
  members = train_and_evaluate(config, str(tmp_path), DATA)
  np.testing.assert_array_equal(members["test_accuracy"], finished[1]["test_accuracy"])


def test_a_population_whose_members_all_diverge_reports_and_resumes(tmp_path, capsys):
  config = _config()
  config.population.grid.optimizer = ("sgd",)
  config.population.grid.learning_rate = (1e10,)
  train_and_evaluate(config, str(tmp_path), DATA)
  again = train_and_evaluate(config, str(tmp_path), DATA)
  assert again["diverged"].all()
  assert capsys.readouterr().out.count("every member diverged") == 2
