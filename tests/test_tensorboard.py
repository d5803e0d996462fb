"""TensorBoard holds what a researcher looks for, laid out as the Flax world expects: one run
per population with every scalar on the global step, members named by their
hyperparameters, the training loss by step, and HParams sessions (a twin's with its
original, method, scope and level), read back with TensorBoard's own reader."""

import os

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing import event_accumulator

from jaxsparse import engine, metrics, train, twins

from conftest import make_tiny_study_config, make_two_member_config, random_dataset

STEPS = 256 // 32  # steps per epoch of the runs below


def read_run(directory):
  """TensorBoard's view of one run: {tag: {step: value}} and its plugin tags."""
  accumulator = event_accumulator.EventAccumulator(
      directory, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
  accumulator.Reload()
  scalars = {tag: {event.step: event.value for event in accumulator.Scalars(tag)}
             for tag in accumulator.Tags()["scalars"]}
  plugins = {}
  for name in ("custom_scalars", "hparams"):
    try:
      plugins[name] = accumulator.PluginTagToContent(name)
    except KeyError:  # the run holds no such summary
      pass
  return scalars, plugins


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  config = make_two_member_config()
  config.logging.tensorboard = True
  workdir = str(tmp_path_factory.mktemp("run"))
  train.train_and_evaluate(config, workdir, random_dataset(num_train=256))
  return workdir


def test_members_are_named_by_the_hyperparameters_that_vary():
  table = pd.DataFrame(dict(member=[0, 1, 2, 3], configuration=[0, 0, 1, 1], seed=[1, 2, 1, 2],
                            activation=["tanh", "tanh", "relu", "relu"], momentum=0.9))
  assert metrics.member_names(table) == ["seed=1,activation=tanh", "seed=2,activation=tanh",
                                         "seed=1,activation=relu", "seed=2,activation=relu"]
  assert metrics.member_names(table.iloc[:1]) == ["member=0"]
  assert metrics.tag_name("seed=1,activation=tanh") == "seed-1/activation-tanh"


def test_one_run_holds_every_member_on_the_global_step(finished_run):
  directory = os.path.join(finished_run, "tensorboard")
  runs = [root for root, _, names in os.walk(directory)
          if any(name.startswith("events.out") for name in names)]
  scalars, plugins = read_run(directory)
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(finished_run, "metrics.jsonl")))
  for _, row in rows.iterrows():
    tag = f"members/test_accuracy/seed-{int(row['member'])}"
    # Epoch e's values sit at the step where it ended.
    assert scalars[tag][int(row["epoch"]) * STEPS] == pytest.approx(row["test_accuracy"],
                                                                     abs=1e-6)
  final = rows[rows["epoch"] == 2]
  assert scalars["population/test_accuracy/mean"][2 * STEPS] == pytest.approx(
      final["test_accuracy"].mean(), abs=1e-6)
  assert "custom_scalars" in plugins
  # The scalars' run, and one HParams session per member beside it (nothing else).
  assert sorted(os.path.relpath(run, directory) for run in runs) == [
      ".", os.path.join("hparams", "seed=0"), os.path.join("hparams", "seed=1")]


def test_the_training_loss_by_step_averages_to_the_epochs_loss(finished_run):
  scalars, _ = read_run(os.path.join(finished_run, "tensorboard"))
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(finished_run, "metrics.jsonl")))
  assert STEPS < engine.LOSS_CURVE_POINTS  # one point per step
  for member in (0, 1):
    curve = scalars[f"members/train_loss_steps/seed-{member}"]
    assert sorted(curve) == list(range(1, 2 * STEPS + 1))
    for epoch in (1, 2):
      points = [curve[(epoch - 1) * STEPS + step] for step in range(1, STEPS + 1)]
      expected = rows[(rows["epoch"] == epoch) & (rows["member"] == member)]["train_loss"]
      assert np.mean(points) == pytest.approx(float(expected.iloc[0]), rel=1e-5)
      # the epoch's own mean sits on the same axis, at its last step
      assert scalars[f"members/train_loss/seed-{member}"][epoch * STEPS] == pytest.approx(
          float(expected.iloc[0]), rel=1e-6)


def test_each_member_is_an_hparams_session_with_its_final_metrics(finished_run):
  members = pd.read_csv(os.path.join(finished_run, "members.csv"))
  for member in (0, 1):
    scalars, plugins = read_run(os.path.join(finished_run, "tensorboard", "hparams",
                                             f"seed={member}"))
    assert "_hparams_/session_start_info" in plugins["hparams"]
    assert scalars["hparam/test_accuracy"][2 * STEPS] == pytest.approx(
        members.loc[member, "test_accuracy"], abs=1e-6)


@pytest.mark.slow  # a twins study
def test_a_twins_hparams_session_names_its_original_method_scope_and_level(tmp_path):
  from tensorboard.plugins.hparams import plugin_data_pb2
  config = make_tiny_study_config(sparsities=(0.5,), kl_weights=(500.0,), scopes=("global",))
  config.logging.tensorboard = True
  twins.run_study(config, str(tmp_path), random_dataset(num_train=64))
  directory = tmp_path / "twins" / "magnitude_global" / "tensorboard" / "hparams"
  sessions = sorted(os.listdir(directory))
  assert sessions == ["activation=relu", "activation=tanh"]  # 2 originals at one level
  _, plugins = read_run(str(directory / sessions[0]))
  start = plugin_data_pb2.HParamsPluginData.FromString(
      plugins["hparams"]["_hparams_/session_start_info"]).session_start_info
  hparams = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
             for key, value in start.hparams.items()}
  assert hparams["method"] == "magnitude" and hparams["scope"] == "global"
  assert hparams["level"] == 0.5 and hparams["original_member"] == 1  # relu: member 1


def test_loss_curve_windows_are_means_of_consecutive_steps():
  losses = np.arange(45, dtype=np.float32)
  curve = np.asarray(engine.loss_curve(losses))
  # 20 windows of 2 steps; the last 5 steps fall out.
  np.testing.assert_allclose(curve, losses[:40].reshape(20, 2).mean(axis=1))
