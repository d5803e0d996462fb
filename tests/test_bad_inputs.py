"""Bad inputs beyond the config checks: each ends in one clear line and leaves every file intact.

``python tests/test_bad_inputs.py`` prints the table of these cases in docs/bad_inputs.md
with the message each gives.
"""

import errno
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxsparse import checkpoints, main, memory
from jaxsparse import data as data_lib
from jaxsparse.errors import UserError
from jaxsparse.train import train_and_evaluate

sys.path.insert(0, os.path.dirname(__file__))
from conftest import files_under, make_two_member_config, random_dataset  # noqa: E402

pytestmark = pytest.mark.slow  # end-to-end: make test-all runs it

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATA = random_dataset(num_train=64)


_config = make_two_member_config


def _trained(directory):
  """A finished 2-member, 2-epoch run in ``directory``."""
  train_and_evaluate(_config(), str(directory), DATA)
  return str(directory)


def _snapshot(directory):
  """Every file under ``directory`` with the hash of its bytes."""
  def digest(path):
    if os.path.islink(path):
      return "link to " + os.readlink(path)
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


def _changed_new(field, value, method=None):
  """Trains a changed config in a new directory ``new`` of the run."""
  config = _config()
  section, name = field.rsplit(".", 1)
  config[section][name] = value
  if method:
    config.sparsify.method = method
  return _train(config, subdirectory="new")


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
  # The CLI's job loads the config's data; the run was trained on DATA.
  monkeypatch.setattr(data_lib, "dataset_from_config", lambda config: DATA)
  main.run_job(_config(), run)


def _shrunk_images(size):
  crop = lambda images: images[:, :size, :size]
  return DATA._replace(train_images=crop(DATA.train_images),
                       validation_images=crop(DATA.validation_images),
                       test_images=crop(DATA.test_images))


def _overwrite_bytes(run):
  """Overwrites 4 bytes in the middle of the largest data file of the last checkpoint."""
  files = [os.path.join(root, name) for root, _, names in
           os.walk(os.path.join(run, "checkpoints", "2")) for name in names
           if os.sep + "d" in root]
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as file:
    file.seek(os.path.getsize(path) // 2)
    file.write(b"\xff\xff\x7f\x7f")


def _edit_members(edit):
  def change(run):
    path = os.path.join(run, "metadata.json")
    with open(path) as file:
      metadata = json.load(file)
    edit(metadata["members"])
    with open(path, "w") as file:
      json.dump(metadata, file)
  return change


HOLDERS = []


def _hold_lock(run):
  """Another command working on the run (a process holding its lock)."""
  holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                             "from jaxsparse.workdir import locked\n"
                             "with locked(sys.argv[1]):\n print('held', flush=True)\n"
                             " time.sleep(300)\n", run],
                            stdout=subprocess.PIPE, text=True)
  HOLDERS.append(holder)
  assert holder.stdout.readline().strip() == "held"


@pytest.fixture(autouse=True, scope="module")
def _stop_holders():
  yield
  for holder in HOLDERS:
    holder.kill()


def _dangling_link(run):
  os.symlink(os.path.join(run, "gone"), os.path.join(run, "link"))


def _foreign_checkpoints(run):
  """A directory that never held a jaxsparse run, with directories of the same names."""
  for name in os.listdir(run):
    path = os.path.join(run, name)
    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  for name in ("checkpoints", "tensorboard"):
    os.makedirs(os.path.join(run, name, "mine"))
    with open(os.path.join(run, name, "mine", "weights.pt"), "w") as file:
      file.write("someone else's")


def _too_large(run, monkeypatch):
  monkeypatch.setattr(memory, "available_bytes", lambda: 2**25)
  config = _config()
  config.population.num_seeds = 64
  train_and_evaluate(config, os.path.join(run, "new"), DATA)


def _cli(*arguments):
  """The command line; its one-line error as a UserError."""
  def run_cli(run):
    result = subprocess.run(
        [sys.executable, "-m", "jaxsparse.main", *(argument.format(run=run) for argument in
                                                   arguments)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    if result.returncode:
      assert "Traceback" not in result.stderr, result.stderr
      raise UserError(result.stderr.strip().removeprefix("error: "))
  return run_cli


def _edit_metadata(edit):
  """Edits the run's metadata.json (``edit(metadata)`` changes the parsed dict in place)."""
  def change(run):
    path = os.path.join(run, "metadata.json")
    with open(path) as file:
      metadata = json.load(file)
    edit(metadata)
    with open(path, "w") as file:
      json.dump(metadata, file)
  return change


def _setting(key, value):
  return lambda metadata: metadata.__setitem__(key, value)


def _load(**kwargs):
  return lambda run: checkpoints.load_population(run, **kwargs)


def _lock_is_a_directory(run):
  os.makedirs(os.path.join(run, ".jaxsparse.lock"))


def _module_raising_on_import(run, monkeypatch):
  """Trains with a method from a user's module that raises while it is imported."""
  directory = os.path.join(run, "new_code")
  os.makedirs(directory)
  with open(os.path.join(directory, "raising_method.py"), "w") as file:
    file.write("import math\nRATE = 1 / math.floor(0.5)\n")
  monkeypatch.syspath_prepend(directory)
  config = _config()
  config.sparsify.method = "raising_method:mine"
  train_and_evaluate(config, os.path.join(run, "new"), DATA)


# A zoo of the published layout (tests/test_modelzoo.py) under the run's ``zoo/``, broken in
# one trial; the action imports it into ``new`` (``_import``).


def _zoo(damage=None, epochs=(1, 2)):
  def write(run):
    from test_modelzoo import write_zoo
    source = os.path.join(run, "zoo")
    write_zoo(pathlib.Path(source), epochs=epochs)
    trial = os.path.join(source, sorted(os.listdir(source))[1])
    if damage is not None:
      damage(trial)
  return write


def _import(**kwargs):
  def run_import(run):
    from jaxsparse.modelzoo import import_zoo
    import_zoo(os.path.join(run, "zoo"), os.path.join(run, "new"), dataset=DATA, **kwargs)
  return run_import


def _trial_file(name, content):
  def write(trial):
    path = os.path.join(trial, name)
    if content is None:
      os.remove(path)
      os.makedirs(path)
    else:
      with open(path, "wb") as file:
        file.write(content)
  return write


def _trial_params(**changes):
  def change(trial):
    path = os.path.join(trial, "params.json")
    with open(path) as file:
      params = json.load(file)
    params.update(changes)
    with open(path, "w") as file:
      json.dump(params, file)
  return change


def _export(out="new", **kwargs):
  """Exports the run to ``out`` (relative to the run)."""
  def run_export(run):
    from jaxsparse.modelzoo import export_run
    export_run(run, os.path.join(run, out), **kwargs)
  return run_export


def _study(original):
  """A twins study in ``new`` whose zoo is ``original`` (a path relative to the run)."""
  def run_study(run):
    from jaxsparse import twins
    from jaxsparse.config import default_config
    config = default_config()
    config.job = "twins"
    config.twins.methods = ("magnitude",)
    config.twins.original_workdir = os.path.join(run, original)
    config.logging.progress = "none"
    twins.run_study(config, os.path.join(run, "new"), dataset=DATA)
  return run_study


def _garbage_run(run):
  os.makedirs(os.path.join(run, "garbage"))
  with open(os.path.join(run, "garbage", "metadata.json"), "wb") as file:
    file.write(os.urandom(64))


def _load_study(run):
  from jaxsparse import tables
  tables.load_study(run)


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
    ("resuming on other data of the same shape (another split or order)", _unfinish,
     _train(data=_with_data(train_labels=DATA.train_labels[::-1].copy())),
     "was trained on other data"),
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
    ("another command works on the workdir", _hold_lock, _train(),
     "in use by another jaxsparse command (pid"),
    ("another command works on the study around the workdir", _hold_lock,
     _train(subdirectory="original"), "(inside"),
    ("4 bytes of a checkpoint overwritten", lambda run: (_overwrite_bytes(run), _unfinish(run)),
     _train(), "is damaged ("),
    ("a member's learning rate edited in metadata.json",
     _edit_members(lambda members: members[1].__setitem__("learning_rate", 0.5)),
     lambda run: checkpoints.load_population(run), "member 1 learning_rate=0.5"),
    ("the member list in metadata.json cut short", _edit_members(lambda members: members.pop()),
     lambda run: checkpoints.load_population(run), "lists 1 members"),
    ("a dangling symbolic link as --workdir", _dangling_link, _train(subdirectory="link"),
     "which does not exist"),
    ("--overwrite on a directory whose checkpoints/ jaxsparse did not write",
     _foreign_checkpoints, lambda run: train_and_evaluate(_config(), run, DATA, overwrite=True),
     "--overwrite leaves them"),
    ("a target sparsity that prunes whole layers", None,
     _changed_new("population.grid.sparsity", (0.9999,), method="magnitude"),
     "prunes every weight"),
    ("a population too large for memory", None, _too_large, "chunk_size"),
    ("a config path that does not exist", None,
     _cli("--config=configs/nope.py", "--workdir={run}/new"), "there is no file"),
    ("a config file without get_config()", lambda run: open(
        os.path.join(run, "..", "no_get_config.py"), "w").write("CONFIG = 1\n"),
     _cli("--config={run}/../no_get_config.py", "--workdir={run}/new"),
     "defines no get_config()"),
    ("a tuple override given twice", None,
     _cli("--config=configs/default.py", "--config.population.grid.learning_rate=(1e-3,)",
          "--config.population.grid.learning_rate=(1e-3,)", "--workdir={run}/new"),
     "given 2 times"),
    ("a string in a numeric tuple", None,
     _cli("--config=configs/default.py", "--config.population.grid.learning_rate=('1e-3',)",
          "--workdir={run}/new"), "use finite numbers"),
    ("an empty method list for the twins study", None,
     _cli("--config=configs/twins_paper.py", "--config.twins.methods=()",
          "--workdir={run}/new"), "list the methods"),
    ("a repeated twin level", None,
     _cli("--config=configs/twins_paper.py", "--config.twins.sparsities=(0.5,0.5)",
          "--workdir={run}/new"), "listed twice"),
    ("a non-finite normalisation", None,
     _cli("--config=configs/default.py", "--config.data.std=nan", "--workdir={run}/new"),
     "use a finite number"),
    # A run directory is data (the trust model in docs/bad_inputs.md).
    ("loading a run whose metadata names a module it ships",
     lambda run: (open(os.path.join(run, "shipped.py"), "w").write("raise SystemExit(3)\n"),
                  _edit_metadata(_setting("method_module", "shipped"))(run)),
     _load(), "loading a run never imports code it names unless you allow it"),
    ("a method module that is missing when a run is reloaded",
     _edit_metadata(_setting("method_module", "gone_method_module")),
     _load(allow_modules=("gone_method_module",)), "cannot be imported"),
    ("metadata.json naming a path as its method module",
     _edit_metadata(_setting("method_module", "../../evil")), _load(), "not a module name"),
    ("a user's method module that raises on import", None, _module_raising_on_import,
     "importing module 'raising_method' raised ZeroDivisionError"),
    # No silent repair of an edited run.
    ("a finished run's member learning rate edited (the training command)",
     _edit_members(lambda members: members[0].__setitem__("learning_rate", 0.5)), _train(),
     "member 0 learning_rate=0.5"),
    ("a finished run's member list cut short (the training command)",
     _edit_members(lambda members: members.pop()), _train(), "lists 1 members"),
    ("an interrupted run's member list edited before resuming",
     lambda run: (_unfinish(run), _edit_members(
         lambda members: members[1].__setitem__("seed", 7))(run)), _train(), "member 1 seed=7"),
    ("metadata.json with input_shape '28x28'", _edit_metadata(_setting("input_shape", "28x28")),
     _train(), "its 'input_shape' entry is '28x28'"),
    ("metadata.json whose member list is an object",
     _edit_metadata(lambda metadata: metadata.__setitem__("members", {"0": {}})), _train(),
     "its 'members' entry is"),
    ("metadata.json with num_classes 0", _edit_metadata(_setting("num_classes", 0)), _load(),
     "a whole number of at least 2"),
    ("metadata.json that is a JSON list", _write("metadata.json", "[1, 2]"), _load(),
     "holds a JSON list"),
    ("a lock file that is a directory", _lock_is_a_directory, _train(),
     "cannot open the lock file"),
    # Zoo import.
    ("a trial's result.json of random bytes", _zoo(_trial_file("result.json", os.urandom(99))),
     _import(), "result.json is not a readable UTF-8 text file"),
    ("a trial's result.json lines that are JSON but not objects",
     _zoo(_trial_file("result.json", b"[1, 2]\n3\n")), _import(),
     "line 1 of result.json is a JSON list, not an object"),
    ("a trial's seed of 2**70", _zoo(_trial_params(seed=2**70)), _import(),
     "seed=1180591620717411303424 is outside 0 to 2147483647"),
    ("a trial's learning rate that is a string", _zoo(_trial_params(**{"optim::lr": "fast"})),
     _import(), "optim::lr='fast' is not a finite number"),
    ("a 0-byte checkpoint file",
     _zoo(_trial_file(os.path.join("checkpoint_000002", "checkpoints"), b"")), _import(),
     "is not a readable PyTorch file (EOFError"),
    ("a trial whose params.json is a directory", _zoo(_trial_file("params.json", None)),
     _import(), "params.json is not a readable JSON file"),
    ("one trial lacks the requested epoch's checkpoint",
     _zoo(lambda trial: shutil.rmtree(os.path.join(trial, "checkpoint_000002"))),
     _import(epoch=2), "seed=2 has no checkpoint of epoch 2"),
    ("a checkpoint path that is a directory",
     _zoo(_trial_file(os.path.join("checkpoint_000002", "checkpoints"), None)), _import(),
     "is a directory, not the state-dict file"),
    ("importing epoch 0", _zoo(epochs=(0, 1)), _import(epoch=0), "the zoo before training"),
    ("a zoo mixing architectures", _zoo(_trial_params(**{"model::type": "CNN3"})), _import(),
     "the zoo mixes architectures"),
    ("a zoo whose trials share no checkpoint epoch",
     _zoo(lambda trial: (shutil.rmtree(os.path.join(trial, "checkpoint_000001")), shutil.rmtree(
         os.path.join(trial, "checkpoint_000002")), os.makedirs(
             os.path.join(trial, "checkpoint_000003")))), _import(),
     "has no checkpoint of an epoch the trials before it have"),
    # Export.
    ("exporting into a directory that is not empty", None,
     _export(out="checkpoints", format="arrays"), "exists and is not empty"),
    ("exporting a run whose member table was edited",
     _edit_members(lambda members: members[0].__setitem__("learning_rate", 0.5)),
     _export(format="arrays"), "member 0 learning_rate=0.5"),
    ("exporting a directory that holds no run", None,
     lambda run: _export(out="../new", format="arrays")(os.path.join(run, "checkpoints")),
     "is not a jaxsparse run"),
    # The twins study's zoo (config.twins.original_workdir).
    ("original_workdir is a half-written run (no checkpoint yet)",
     lambda run: shutil.rmtree(os.path.join(run, "checkpoints")), _study("."),
     "no complete checkpoint"),
    ("original_workdir is garbage (random bytes as metadata.json)", _garbage_run,
     _study("garbage"), "metadata.json is corrupt"),
    ("original_workdir is not a run", None, _study("checkpoints"), "is not a jaxsparse run"),
    # Study tables.
    ("tables.load_study of a run whose members.csv is cut",
     _write("members.csv", truncate_to=12), _load_study, "members.csv is unreadable"),
    ("tables.load_study of a run without metrics",
     lambda run: (os.remove(os.path.join(run, "members.csv")),
                  os.remove(os.path.join(run, "metrics.jsonl"))), _load_study,
     "has no metrics yet"),
    # Command-line mistakes.
    ("a scalar override given twice", None,
     _cli("--config=configs/default.py", "--config.training.num_epochs=3",
          "--config.training.num_epochs=4", "--workdir={run}/new"),
     "--config.training.num_epochs is given 2 times (3, 4); give it once"),
    ("--dry_run of an invalid config", None,
     _cli("--config=configs/smoke.py", "--config.training.num_epochs=0", "--dry_run",
          "--workdir={run}/new"), "config.training.num_epochs=0 is invalid"),
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


def test_docs_table_lists_every_case():
  """docs/bad_inputs.md's table is this module's output: regenerate it with
  ``python tests/test_bad_inputs.py`` when a case is added or renamed."""
  with open(os.path.join(REPOSITORY, "docs", "bad_inputs.md")) as file:
    rows = [line.split(" | ")[0].removeprefix("| ") for line in file
            if line.startswith("| ") and not line.startswith(("| bad input", "| ---"))]
  assert rows == [case[0] for case in CASES]


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
    for holder in HOLDERS:
      holder.kill()
    return "\n".join(rows)


if __name__ == "__main__":
  print(_markdown_table())
