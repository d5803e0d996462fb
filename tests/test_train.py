"""Runs: outputs under the workdir, resume equals an uninterrupted run, loaders."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jaxsparse import checkpoints, engine, sparsify
from jaxsparse.errors import UserError
from jaxsparse.train import train_and_evaluate

from conftest import assert_trees_close, random_dataset

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Interrupt(Exception):
  pass


def assert_same_run(metrics_a: pd.DataFrame, workdir_a, metrics_b: pd.DataFrame, workdir_b):
  """Two runs logged the same metrics (all but their epochs' timings) and saved the same
  population."""
  pd.testing.assert_frame_equal(metrics_a.drop(columns="epoch_seconds"),
                                metrics_b.drop(columns="epoch_seconds"))
  assert_trees_close(checkpoints.load_population(str(workdir_a))[0],
                     checkpoints.load_population(str(workdir_b))[0])


def interrupt_after(epoch_to_stop):
  def on_epoch_end(epoch, state):
    if epoch == epoch_to_stop:
      raise Interrupt
  return on_epoch_end


@pytest.fixture(scope="module")
def data():
  return random_dataset(num_train=128)


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path, tiny_config, data):
  tiny_config.training.num_epochs = 3
  uninterrupted = train_and_evaluate(tiny_config, str(tmp_path / "a"), dataset=data)

  with pytest.raises(Interrupt):
    train_and_evaluate(tiny_config, str(tmp_path / "b"), dataset=data,
                       on_epoch_end=interrupt_after(1))
  # Simulate a crash after the metrics were written but before the next checkpoint:
  with open(tmp_path / "b" / "metrics.jsonl", "a") as file:
    file.write(json.dumps({"epoch": 2, "member": 0, "train_loss": -1.0}) + "\n")
  resumed = train_and_evaluate(tiny_config, str(tmp_path / "b"), dataset=data)

  assert_same_run(uninterrupted, tmp_path / "a", resumed, tmp_path / "b")
  rows = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
  assert sorted((r["epoch"], r["member"]) for r in rows) == [
      (epoch, member) for epoch in (1, 2, 3) for member in range(4)]


@pytest.mark.slow
def test_finished_run_returns_at_once_with_same_results(tmp_path, tiny_config, data, capsys):
  first = train_and_evaluate(tiny_config, str(tmp_path), dataset=data)
  steps_before = sorted(os.listdir(tmp_path / "checkpoints"))
  second = train_and_evaluate(tiny_config, str(tmp_path), dataset=data)
  assert "Already trained for 2 epochs" in capsys.readouterr().out
  assert sorted(os.listdir(tmp_path / "checkpoints")) == steps_before == ["1", "2"]
  pd.testing.assert_frame_equal(first, second)


@pytest.mark.slow
def test_loaders_return_population_and_member(tmp_path, tiny_config, data):
  members = train_and_evaluate(tiny_config, str(tmp_path), dataset=data)
  state, table = checkpoints.load_population(str(tmp_path))
  assert len(table) == 4 and list(table["optimizer"]) == ["adam", "sgd", "adam", "sgd"]
  assert state.params["Conv_0"]["kernel"].shape == (4, 5, 5, 1, 8)
  assert int(state.epoch[0]) == 2
  member_state, row = checkpoints.load_member(str(tmp_path), 3)
  assert row["activation"] == "relu" and row["optimizer"] == "sgd"
  assert_trees_close(engine.member(state, 3), member_state)
  first_epoch, _ = checkpoints.load_population(str(tmp_path), epoch=1)
  assert int(first_epoch.epoch[0]) == 1
  # The restored population evaluates to the accuracies that were logged.
  from jaxsparse import models, population
  import jax.numpy as jnp
  model = models.get_model("cnn_s", data.input_shape)
  accuracy = engine.evaluate(engine.Program(model, sparsify.dense.dense(), eval_batch_size=32),
                             state, population.member_hyperparameters(table),
                             jnp.asarray(data.test_images), jnp.asarray(data.test_labels))[
                                 "accuracy"]
  np.testing.assert_allclose(accuracy, members["test_accuracy"], rtol=1e-6)
  with pytest.raises(UserError, match="4 members"):
    checkpoints.load_member(str(tmp_path), 4)


def test_cli_trains_writes_outputs_and_resumes(tmp_path):
  workdir = tmp_path / "run"
  command = [sys.executable, "-m", "jaxsparse.main", "--config=configs/zoo.py",
             f"--workdir={workdir}", "--config.data.name=digits", "--config.data.image_size=28",
             "--config.data.validation_size=300", "--config.population.num_seeds=1",
             "--config.population.grid.activation=('tanh',)",
             "--config.population.grid.learning_rate=(1e-3,)",
             "--config.training.num_epochs=2", "--config.logging.progress=none"]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  assert "2 members of cnn_s on digits (1200 train / 300 validation / 297 test)" in result.stdout
  assert "validation_accuracy" in result.stdout
  for name in ("metadata.json", "metrics.jsonl", "members.csv", "checkpoints/2", "tensorboard"):
    assert (workdir / name).exists(), name
  members = pd.read_csv(workdir / "members.csv")
  assert len(members) == 2 and members["test_accuracy"].between(0, 1).all()
  assert (members["achieved_sparsity"] == 0).all() and (members["sparsity"] == 0).all()
  # Adam at 1e-3 learns digits well above chance in 2 epochs.
  assert members.loc[members["optimizer"] == "adam", "test_accuracy"].iloc[0] > 0.5
  again = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr
  assert "Already trained for 2 epochs" in again.stdout


def test_curve_test_examples_evaluate_a_subset_until_the_last_epoch(tmp_path, tiny_config, data):
  """Learning curves on the first test examples; the last epoch evaluates the whole test set,
  and its curve value is the accuracy of the final predictions on that subset."""
  from jaxsparse import metrics
  tiny_config.training.curve_test_examples = 5
  train_and_evaluate(tiny_config, str(tmp_path), data)
  rows = metrics.read_metrics(str(tmp_path / "metrics.jsonl"))
  first = [row for row in rows if row["epoch"] == 1]
  last = [row for row in rows if row["epoch"] == 2]
  assert all("curve_accuracy" in row and "test_accuracy" not in row for row in first)
  assert all("curve_accuracy" in row and "test_accuracy" in row for row in last)
  final = metrics.read_predictions(str(tmp_path))
  subset = (final["predictions"][:, :5] == data.test_labels[:5]).mean(axis=1)
  np.testing.assert_allclose([row["curve_accuracy"] for row in last], subset, atol=1e-6)
  np.testing.assert_allclose([row["test_accuracy"] for row in last], final["accuracy"])


def test_evaluation_schedule_logs_epoch_zero_and_every_nth_epoch(tmp_path, data):
  """evaluate_at_start logs the members as they start (a magnitude twin right after its
  one-shot pruning); evaluate_every skips the epochs between, never the last."""
  from jaxsparse.config import default_config
  config = default_config()
  config.sparsify.method = "magnitude"
  config.population.grid.sparsity = (0.0, 0.9)
  config.training.num_epochs = 3
  config.training.evaluate_every = 2
  config.training.evaluate_at_start = True
  config.logging.progress = "none"
  config.logging.tensorboard = False
  train_and_evaluate(config, str(tmp_path), dataset=data)
  rows = pd.DataFrame([json.loads(line) for line in open(tmp_path / "metrics.jsonl")])
  assert sorted(set(rows["epoch"])) == [0, 1, 2, 3]
  evaluated = rows.groupby("epoch")["test_accuracy"].apply(lambda column: column.notna().all())
  assert evaluated.to_dict() == {0: True, 1: False, 2: True, 3: True}
  start = rows[rows["epoch"] == 0].set_index("member")
  np.testing.assert_allclose(start["achieved_sparsity"], [0.0, 0.9], atol=2e-3)
  assert start["train_loss"].isna().all()
  # Epoch 0 is the fresh population: its accuracy is the initial members' own.
  from jaxsparse import build
  run = build.setup(config, build.data_shape(data))
  initial = engine.init_population(run.program, run.hyper)
  expected = engine.evaluate(run.program, initial, run.hyper, data.test_images,
                             data.test_labels)["accuracy"]
  np.testing.assert_allclose(start["test_accuracy"], np.asarray(expected), rtol=1e-6)


@pytest.mark.slow
def test_raising_num_epochs_extends_a_finished_run_to_what_a_longer_run_gives(tmp_path, data):
  """A finished 2-epoch zoo extended to 3 epochs equals a zoo trained 3 epochs from the
  start, bit for bit; a shorter run, or a longer one whose schedule decays over the whole
  run, is refused in one line."""
  from jaxsparse.config import default_config
  config = default_config()
  config.population.grid.activation = ("tanh", "relu")
  config.training.num_epochs = 2
  config.logging.progress = "none"
  config.logging.tensorboard = False
  train_and_evaluate(config, str(tmp_path / "extended"), dataset=data)
  config.training.num_epochs = 3
  extended = train_and_evaluate(config, str(tmp_path / "extended"), dataset=data)
  direct = train_and_evaluate(config, str(tmp_path / "direct"), dataset=data)
  assert_same_run(extended, tmp_path / "extended", direct, tmp_path / "direct")
  config.training.num_epochs = 2
  with pytest.raises(UserError, match="num_epochs=3; 2 would shorten it"):
    train_and_evaluate(config, str(tmp_path / "direct"), dataset=data)
  config.training.lr_schedule = "warmup_cosine"
  train_and_evaluate(config, str(tmp_path / "cosine"), dataset=data)
  config.training.num_epochs = 3
  with pytest.raises(UserError, match="cannot be extended because its learning-rate schedule "
                                      "'warmup_cosine' decays over the whole run"):
    train_and_evaluate(config, str(tmp_path / "cosine"), dataset=data)
