"""Bad inputs beyond the config checks: each ends in one clear line and leaves every file intact.

``python tests/test_bad_inputs.py`` prints the table of these cases in docs/bad_inputs.md
with the message each gives.
"""

import errno
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import pytest

from jaxsparse import checkpoints, main
from jaxsparse.errors import UserError
from jaxsparse.train import train_and_evaluate

sys.path.insert(0, os.path.dirname(__file__))
from conftest import files_under, make_tiny_config, random_dataset  # noqa: E402

pytestmark = pytest.mark.slow  # end-to-end: make test-all runs it

DATA = random_dataset(num_train=64)


def _config():
  config = make_tiny_config()
  config.population.grid.activation = ("relu",)
  config.population.grid.optimizer = ("adam",)
  config.population.num_seeds = 2
  config.training.num_epochs = 2
  return config


def _trained(directory):
  """A finished 2-member, 2-epoch run in ``directory``."""
  train_and_evaluate(_config(), str(directory), DATA)
  return str(directory)


def _snapshot(directory):
  """Every file under ``directory`` with the hash of its bytes."""
  def digest(path):
    with open(path, "rb") as file:
      return hashlib.sha256(file.read()).hexdigest()
  return files_under(directory, digest)


def _with_data(**changes):
  return DATA._replace(**changes)


def _damage_checkpoint(run):
  """Overwrites the array data files of the last checkpoint with garbage."""
  for root, _, names in os.walk(os.path.join(run, "checkpoints", "2")):
    for name in names:
      if "ocdbt.process" in root or root.endswith(os.sep + "d"):
        with open(os.path.join(root, name), "wb") as file:
          file.write(b"not a checkpoint" * 10)


def _unfinish(run):
  """Makes the finished run look interrupted after its last checkpoint, so that it resumes."""
  os.remove(os.path.join(run, "members.csv"))
  os.remove(os.path.join(run, "metrics.jsonl"))


def _copy_larger_population_checkpoints(run, tmp_path):
  """Replaces the run's checkpoints by those of a run with one more member."""
  other = _config()
  other.population.num_seeds = 3
  train_and_evaluate(other, str(tmp_path / "larger"), DATA)
  shutil.rmtree(os.path.join(run, "checkpoints"))
  shutil.copytree(tmp_path / "larger" / "checkpoints", os.path.join(run, "checkpoints"))
  _unfinish(run)


def _train(config=None, data=DATA, subdirectory=""):
  return lambda run: train_and_evaluate(config or _config(), os.path.join(run, subdirectory)
                                        if subdirectory else run, data)


def _changed(field, value):
  config = _config()
  section, name = field.rsplit(".", 1)
  config[section][name] = value
  return _train(config)


def _write(name, text=None, truncate_to=None):
  def write(run):
    with open(os.path.join(run, name), "r+" if truncate_to else "w") as file:
      if truncate_to:
        file.truncate(truncate_to)
      else:
        file.write(text)
  return write


def _interrupted_after_epoch_1(run):
  """Makes the run look killed while it trained epoch 2."""
  shutil.rmtree(os.path.join(run, "checkpoints", "2"))
  os.remove(os.path.join(run, "members.csv"))
  path = os.path.join(run, "metrics.jsonl")
  rows = [line for line in open(path) if json.loads(line)["epoch"] == 1]
  with open(path, "w") as file:
    file.writelines(rows)


def _disk_full(run, monkeypatch):
  """Resumes epoch 2, whose checkpoint cannot be written."""
  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(run, "checkpoints"))
  monkeypatch.setattr(checkpoints, "save_population", full)
  main.run_job(_config(), run)


def _shrunk_images(size):
  crop = lambda images: images[:, :size, :size]
  return DATA._replace(train_images=crop(DATA.train_images),
                       validation_images=crop(DATA.validation_images),
                       test_images=crop(DATA.test_images))


#: (description, what breaks the finished run ``run`` first or None, the action that must
#: fail, words of the expected message). Functions get the run's directory, and
#: ``tmp_path`` / ``monkeypatch`` when they name them.
CASES = [
    ("--workdir is a file", None, _train(subdirectory="members.csv"),
     "is a file, not a directory"),
    ("--workdir cannot be created (a parent is a file)", None,
     _train(subdirectory=os.path.join("members.csv", "sub")), "cannot write to --workdir"),
    ("workdir holds a run of another model", None, _changed("model.name", "lenet_300_100"),
     "config.model.name='cnn_s'"),
    ("workdir holds a run of another population size", None,
     _changed("population.num_seeds", 3), "config.population.num_seeds=2"),
    ("workdir holds a run of another learning-rate grid", None,
     _changed("population.grid.learning_rate", (0.1,)), "config.population.grid.learning_rate"),
    ("checkpoints without metadata.json",
     lambda run: os.remove(os.path.join(run, "metadata.json")), _train(),
     "holds checkpoints but no metadata.json"),
    ("metadata.json truncated", _write("metadata.json", truncate_to=100), _train(),
     "metadata.json is corrupt"),
    ("metadata.json not written by jaxsparse", _write("metadata.json", json.dumps({"config": {}})),
     lambda run: checkpoints.load_population(run), "lacks its 'input_shape' entry"),
    ("damaged checkpoint files on resume", lambda run: (_damage_checkpoint(run), _unfinish(run)),
     _train(), "cannot be restored"),
    ("checkpoints copied from a run of another population size",
     _copy_larger_population_checkpoints, _train(), "population size"),
    ("loading a directory that holds no run", None,
     lambda run: checkpoints.load_population(os.path.join(run, "checkpoints")), "holds no run"),
    ("loading an epoch that was never saved", None,
     lambda run: checkpoints.load_population(run, epoch=7), "no complete checkpoint 7"),
    ("loading a member that does not exist", None, lambda run: checkpoints.load_member(run, 5),
     "member 5 does not exist"),
    ("resuming on data of another image shape", _unfinish, _train(data=_shrunk_images(20)),
     "was trained on inputs of shape (28, 28, 1)"),
    ("labels outside the number of classes", None,
     _train(data=DATA._replace(num_classes=5), subdirectory="new"), "num_classes is 5"),
    ("images without a channel axis", None,
     _train(data=DATA._replace(test_images=DATA.test_images[..., 0]), subdirectory="new"),
     "test images have shape (64, 28, 28)"),
    ("fewer labels than images", None,
     _train(data=DATA._replace(train_labels=DATA.train_labels[:10]), subdirectory="new"),
     "64 train images but labels of shape (10,)"),
    ("a dataset with one class", None,
     _train(data=DATA._replace(num_classes=1), subdirectory="new"), "at least 2"),
    ("disk full while writing a checkpoint", _interrupted_after_epoch_1, _disk_full,
     "No space left on device"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return _trained(tmp_path_factory.mktemp("template") / "run")


def _call(action, run, tmp_path=None, monkeypatch=None):
  if action is None:
    return None
  code = getattr(action, "__code__", None)
  names = code.co_varnames[:code.co_argcount] if code else ()
  extra = {"tmp_path": tmp_path, "monkeypatch": monkeypatch}
  return action(run, **{name: extra[name] for name in names if name in extra})


@pytest.mark.parametrize("description,breakage,action,expected", CASES,
                         ids=[case[0] for case in CASES])
def test_bad_input_gives_one_clear_line_and_keeps_files(description, breakage, action, expected,
                                                         finished_run, tmp_path, monkeypatch):
  run = str(tmp_path / "run")
  shutil.copytree(finished_run, run)
  _call(breakage, run, tmp_path, monkeypatch)
  before = _snapshot(run)
  with pytest.raises(UserError) as error:
    _call(action, run, tmp_path, monkeypatch)
  message = str(error.value)
  assert "\n" not in message, message
  assert expected in message, message
  after = _snapshot(run)
  assert {name: digest for name, digest in after.items() if not name.startswith("new")} == before
  assert not any(name.startswith("new" + os.sep + "checkpoints") for name in after)


def test_overwrite_discards_another_config_and_keeps_the_same_config(tmp_path):
  run = _trained(tmp_path / "run")
  config = _config()
  first = checkpoints.load_population(run)[0]
  train_and_evaluate(config, run, DATA, overwrite=True)  # same config: kept, not retrained
  np.testing.assert_array_equal(checkpoints.load_population(run)[0].params["Dense_0"]["kernel"],
                                first.params["Dense_0"]["kernel"])
  config.population.num_seeds = 3
  members = train_and_evaluate(config, run, DATA, overwrite=True)
  assert len(members) == 3


def _markdown_table():
  import pathlib
  import tempfile
  with tempfile.TemporaryDirectory() as directory:
    template = _trained(os.path.join(directory, "template"))
    rows = ["| bad input | message |", "| --- | --- |"]
    for index, (description, breakage, action, _) in enumerate(CASES):
      run = os.path.join(directory, f"case{index}")
      shutil.copytree(template, run)
      extra = pathlib.Path(directory, f"extra{index}")
      extra.mkdir()
      patcher = pytest.MonkeyPatch()
      try:
        _call(breakage, run, extra, patcher)
        _call(action, run, extra, patcher)
        message = "(no error)"
      except UserError as error:
        message = str(error).replace(directory + os.sep, "").replace("|", "\\|")
      finally:
        patcher.undo()
      rows.append(f"| {description} | `{message}` |")
    return "\n".join(rows)


if __name__ == "__main__":
  print(_markdown_table())
