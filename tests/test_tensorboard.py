"""TensorBoard holds what a researcher looks for: every member's curves, the training loss
by step, and the hyperparameters, read back here with a reader of the file format."""

import collections
import glob
import os
import struct

import numpy as np
import pandas as pd
import pytest
from tensorboardX.proto import event_pb2

from jaxsparse import engine, metrics, train

from conftest import make_two_member_config, random_dataset


def read_events(directory):
  """{tag: {step: value}} of the scalars, and the plugin summaries' tags, of the event
  files directly in ``directory`` (TFRecords: length, its CRC, the Event, its CRC)."""
  scalars, plugins = collections.defaultdict(dict), set()
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    with open(path, "rb") as file:
      content = file.read()
    offset = 0
    while offset < len(content):
      (length,) = struct.unpack("<Q", content[offset:offset + 8])
      event = event_pb2.Event.FromString(content[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
          plugins.add((value.metadata.plugin_data.plugin_name, value.tag))
        if value.WhichOneof("value") == "simple_value":
          scalars[value.tag][event.step] = value.simple_value
  return scalars, plugins


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  config = make_two_member_config()
  config.logging.tensorboard = True
  workdir = str(tmp_path_factory.mktemp("run"))
  train.train_and_evaluate(config, workdir, random_dataset(num_train=256))
  return workdir


def test_every_member_has_its_own_curves_beside_the_population(finished_run):
  scalars, plugins = read_events(os.path.join(finished_run, "tensorboard"))
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(finished_run, "metrics.jsonl")))
  for _, row in rows.iterrows():
    tag = f"members/test_accuracy/{int(row['member']):04d}"
    assert scalars[tag][int(row["epoch"])] == pytest.approx(row["test_accuracy"], abs=1e-6)
  final = rows[rows["epoch"] == 2]
  assert scalars["population_mean/test_accuracy"][2] == pytest.approx(
      final["test_accuracy"].mean(), abs=1e-6)
  assert ("custom_scalars", "custom_scalars__config__") in plugins


def test_the_training_loss_by_step_averages_to_the_epochs_loss(finished_run):
  scalars, _ = read_events(os.path.join(finished_run, "tensorboard"))
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(finished_run, "metrics.jsonl")))
  steps = 256 // 32  # fewer steps than LOSS_CURVE_POINTS: one point per step
  assert steps < engine.LOSS_CURVE_POINTS
  for member in (0, 1):
    curve = scalars[f"steps/members/train_loss/{member:04d}"]
    assert sorted(curve) == list(range(1, 2 * steps + 1))
    for epoch in (1, 2):
      points = [curve[(epoch - 1) * steps + step] for step in range(1, steps + 1)]
      expected = rows[(rows["epoch"] == epoch) & (rows["member"] == member)]["train_loss"]
      assert np.mean(points) == pytest.approx(float(expected.iloc[0]), rel=1e-5)


def test_each_member_is_an_hparams_session_with_its_final_metrics(finished_run):
  members = pd.read_csv(os.path.join(finished_run, "members.csv"))
  for member in (0, 1):
    scalars, plugins = read_events(
        os.path.join(finished_run, "tensorboard", f"member_{member:04d}"))
    assert ("hparams", "_hparams_/session_start_info") in plugins
    assert scalars["hparam/test_accuracy"][2] == pytest.approx(
        members.loc[member, "test_accuracy"], abs=1e-6)


def test_loss_curve_windows_are_means_of_consecutive_steps():
  losses = np.arange(45, dtype=np.float32)
  curve = np.asarray(engine.loss_curve(losses))
  # 20 windows of 2 steps; the last 5 steps fall out.
  np.testing.assert_allclose(curve, losses[:40].reshape(20, 2).mean(axis=1))
