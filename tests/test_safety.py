"""Nothing lost, nothing silently wrong: the workdir lock, metrics that cannot break a resume,
finite blow-ups, memory estimates and edited metadata (fast tier; the end-to-end cases,
command-line mistakes included, are in test_bad_inputs.py, test_recovery.py and
test_interrupts.py)."""

import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxsparse import build, engine, memory, metrics
from jaxsparse.config import load_config_file
from jaxsparse.errors import UserError
from jaxsparse.workdir import LOCK_FILE, locked

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOLDER = """
import sys, time
from jaxsparse.workdir import locked
with locked(sys.argv[1]):
  print("held", flush=True)
  time.sleep(600)
"""


@pytest.fixture
def held(tmp_path):
  """A workdir locked by another process (killed with SIGKILL at the end)."""
  workdir = tmp_path / "run"
  holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=REPOSITORY,
                            stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  yield workdir, holder
  holder.kill()
  holder.wait()


def test_a_second_command_is_refused_naming_the_holder(held):
  workdir, holder = held
  with pytest.raises(UserError, match=f"in use by another jaxsparse command \\(pid {holder.pid}"):
    with locked(str(workdir)):
      pass
  with pytest.raises(UserError, match="inside"):  # a study's tree is locked as a whole
    with locked(str(workdir / "original")):
      pass


def test_the_lock_of_a_killed_process_does_not_block(held):
  workdir, holder = held
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert (workdir / LOCK_FILE).exists(), "SIGKILL leaves the file, but not the lock"
  with locked(str(workdir)):
    with locked(str(workdir / "original")):  # nested in one process: the study, then a run
      pass
  assert not (workdir / LOCK_FILE).exists()


def test_a_lock_file_naming_a_dead_process_does_not_block(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / LOCK_FILE).write_text("pid 999999 on elsewhere since 2026-01-01T00:00:00: gone")
  with locked(str(workdir)):
    assert f"pid {os.getpid()}" in (workdir / LOCK_FILE).read_text()
  assert not (workdir / LOCK_FILE).exists()


def test_a_read_only_workdir_is_one_line(tmp_path, monkeypatch):
  # (root writes through chmod, so the probe's refusal is what a read-only mount gives)
  real_open = open

  def read_only(path, *args, **kwargs):
    if ".jaxsparse_write_test" in str(path):
      raise OSError(30, "Read-only file system", str(path))
    return real_open(path, *args, **kwargs)
  monkeypatch.setattr("builtins.open", read_only)
  with pytest.raises(UserError, match="cannot write to --workdir=.*Read-only file system"):
    with locked(str(tmp_path / "run")):
      pass


def test_metrics_skip_a_partial_line_and_keep_one_row_per_member(tmp_path):
  writer = metrics.MetricsWriter(str(tmp_path), tensorboard=False)
  writer.write_epoch(1, {"train_loss": np.array([1.0, 2.0])})
  writer.write_epoch(1, {"train_loss": np.array([3.0, 4.0])})  # a second writer's rows
  writer.write_epoch(2, {"train_loss": np.array([5.0, 6.0])})
  with open(writer.path, "a") as file:
    file.write('{"epoch": 3, "member": 0, "train_lo')  # the disk filled here
  assert len(metrics.read_metrics(writer.path)) == 6
  writer.truncate_after(1)
  rows = metrics.read_metrics(writer.path)
  assert [(row["epoch"], row["member"], row["train_loss"]) for row in rows] == \
      [(1, 0, 3.0), (1, 1, 4.0)]
  assert metrics.read_metrics(str(tmp_path / "missing.jsonl")) == []


def test_final_member_table_reads_the_checkpoint_epoch_not_the_last_row(tmp_path):
  writer = metrics.MetricsWriter(str(tmp_path), tensorboard=False)
  for epoch in (1, 2, 3):
    writer.write_epoch(epoch, {"test_accuracy": np.array([epoch / 10, epoch / 10]),
                               "diverged": np.zeros(2)})
  table = pd.DataFrame({"member": [0, 1]})
  final = metrics.final_member_table(table, writer.path, epoch=2)
  assert final["test_accuracy"].tolist() == [0.2, 0.2]


def test_blow_up_rule():
  reference = jnp.array([0.01, 2.3, 50.0, 2.3, jnp.nan])
  loss = jnp.array([50.0, 2.3 * 101, 4000.0, 2.0, 1e12])
  # 100 x max(reference, 1): a twin from a well-trained original may rise to 100; a member
  # that starts at 50 may reach 5000; NaN reference (no step yet) flags nothing.
  np.testing.assert_array_equal(engine.blew_up(loss, reference),
                                [False, True, False, False, False])


def test_summary_of_a_population_whose_members_all_diverged():
  members = pd.DataFrame({"train_loss": [np.nan, 5e10], "test_accuracy": [0.1, 0.2],
                          "diverged": [True, True]})
  assert "every member diverged" in metrics.population_summary(members)


def _run(num_seeds=2, eval_batch_size=1):
  config = load_config_file(os.path.join(REPOSITORY, "configs", "default.py"))
  config.population.num_seeds = num_seeds
  config.population.chunk_size = 0  # every member's activations at once
  config.training.eval_batch_size = eval_batch_size
  return build.setup(config, build.DataShape((28, 28, 1), 10, 1000))


def test_memory_estimate_names_chunk_size_when_activations_do_not_fit():
  run = _run()
  needed = memory.estimate(run, 2000, (28, 28, 1))
  assert needed.state > 0 and needed.members_at_once == run.num_members
  assert needed.evaluation < needed.activations  # (an evaluation batch of 1)
  # Room for the state, the data and about 3 members' activations at once.
  per_member = needed.activations / needed.members_at_once
  available = (needed.state + needed.data + 3.5 * per_member) / memory.USABLE_SHARE
  with pytest.raises(UserError, match="chunk_size=3 or less") as error:
    memory.check_fits(run, 2000, (28, 28, 1), available=available)
  assert "eval_batch_size" not in str(error.value)
  with pytest.raises(UserError, match="fewer members"):
    memory.check_fits(run, 2000, (28, 28, 1), available=needed.state / 2)
  assert memory.check_fits(run, 2000, (28, 28, 1), available=10 * needed.total) == needed


def test_memory_estimate_names_eval_batch_size_when_evaluation_does_not_fit():
  """Evaluation's activations (members at once x eval batch x the model's layer outputs x 4
  bytes) are checked too: a large ``eval_batch_size`` used to pass the check and then run
  out of memory after the first epoch's training."""
  run = _run(eval_batch_size=1000)
  needed = memory.estimate(run, 2000, (28, 28, 1))
  elements = memory.activation_elements(run.program.model)
  assert needed.eval_batch == 1000
  assert needed.evaluation == run.num_members * 1000 * elements * memory.EVALUATION_FACTOR
  assert needed.activations < needed.evaluation
  assert needed.total == needed.state + needed.data + needed.evaluation
  # Room for the training step and about 40 examples of every member at once.
  per_example = needed.evaluation / 1000
  room = max(needed.activations, 40.5 * per_example)
  available = (needed.state + needed.data + room) / memory.USABLE_SHARE
  with pytest.raises(UserError, match="eval_batch_size=40 or less") as error:
    memory.check_fits(run, 2000, (28, 28, 1), available=available)
  assert "chunk_size=" not in str(error.value)
  # Too little room for training too: fewer members at once, then the batch for that many.
  room = 3.5 * needed.activations / needed.members_at_once
  available = (needed.state + needed.data + room) / memory.USABLE_SHARE
  batch = int(room // (3 * elements * memory.EVALUATION_FACTOR))
  with pytest.raises(UserError, match=f"chunk_size=3 or less .* and set config.training."
                     f"eval_batch_size={batch} or less \\(examples evaluated at once by 3 "):
    memory.check_fits(run, 2000, (28, 28, 1), available=available)
  assert memory.estimate(_run(eval_batch_size=5000), 2000, (28, 28, 1)).eval_batch == 2000


def test_evaluation_of_a_large_model_is_fitted_to_memory():
  from jaxsparse import config as config_lib, models
  config = config_lib.default_config()
  config.training.eval_batch_size = 1000
  resnet = models.get_model("resnet18", (32, 32, 3), 10, padding="symmetric")
  per_example = memory.activation_elements(resnet) * memory.EVALUATION_FACTOR
  available = 8 * 2**30
  fitted = memory.fitted_evaluation(config, resnet, 10, available=available)
  budget = memory.EVALUATION_SHARE * available
  assert fitted.population.chunk_size == 1
  assert fitted.training.eval_batch_size == int(budget // per_example)
  assert fitted.training.eval_batch_size * per_example <= budget
  assert config.population.chunk_size == 0 and config.training.eval_batch_size == 1000
  small = models.get_model("cnn_s", (28, 28, 1))
  assert memory.fitted_evaluation(config, small, 10, available=available) is config


def test_memory_estimate_counts_every_member_state_exactly():
  """The state estimate is the bytes of the population a run creates, every array counted,
  and the data estimate the bytes of the images."""
  for num_seeds in (1, 3):
    run = _run(num_seeds=num_seeds)
    state = engine.init_population(run.program, run.hyper)
    real = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    estimate = memory.estimate(run, 500, (28, 28, 1))
    assert estimate.state == real
    assert estimate.data == np.zeros((500, 28, 28, 1), np.float32).nbytes


def _metadata():
  run = _run()
  return {"config": run.config.to_dict(), "input_shape": [28, 28, 1], "num_classes": 10,
          "members": json.loads(json.dumps(run.table.to_dict(orient="records")))}


@pytest.mark.parametrize("edit,words", [
    (lambda members: members[3].__setitem__("learning_rate", 0.5), "member 3 learning_rate=0.5"),
    (lambda members: members.__delitem__(slice(4, None)), "lists 4 members"),
    (lambda members: members[0].__setitem__("seed", "0"), "member 0 seed='0'"),
    (lambda members: members[1].__setitem__("activation", "relu6"), "member 1 activation"),
])
def test_hand_edited_member_table_is_refused(edit, words):
  metadata = _metadata()
  build.from_metadata(metadata, "metadata.json")  # as written: trusted
  edit(metadata["members"])
  with pytest.raises(UserError, match="edited") as error:
    build.from_metadata(metadata, "metadata.json")
  assert words in str(error.value)


def test_a_target_that_prunes_a_whole_layer_is_refused():
  config = load_config_file(os.path.join(REPOSITORY, "configs", "magnitude.py"))
  config.population.grid.sparsity = (0.5, 0.9999)
  with pytest.raises(UserError, match="sparsity=0.9999 is invalid: it prunes every weight"):
    build.setup(config, build.DataShape((28, 28, 1), 10, 1000))


def test_a_model_that_does_not_fit_the_images_is_refused_before_anything_is_written():
  config = load_config_file(os.path.join(REPOSITORY, "configs", "zoo.py"))
  with pytest.raises(UserError, match=r"'cnn_s' does not fit the 8x8x1 images.*image_size"):
    build.setup(config, build.DataShape((8, 8, 1), 10, 1000))
