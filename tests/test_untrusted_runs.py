"""A run directory is data, never code: loading one imports no module it names.

A shared or downloaded run directory can ship a Python module and name it in its
``metadata.json`` as its method's module. Loading the run, in a process whose
current directory is that run (so that the directory is on ``sys.path``), must
not run that module's code: not through the loaders, not through the twins
study's ``config.twins.original_workdir``, not through the export command and
not through the study tables. With consent the module is imported, but never
from the run's own directory.
"""

import json
import os
import subprocess
import sys

import pytest

from jaxsparse.train import train_and_evaluate

from conftest import make_two_member_config, random_dataset

pytestmark = pytest.mark.slow  # subprocesses: make test-all runs it

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Leaves a marker beside itself when imported, and registers a method if it gets that far.
HOSTILE_MODULE = '''
import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "MODULE_RAN"), "w").write("x")
from jaxsparse.sparsify import register
from jaxsparse.sparsify.dense import from_settings
register("hostile")(from_settings)
'''

STUDY_CONFIG = '''
from jaxsparse.config import default_config

def get_config():
  config = default_config()
  config.job = "twins"
  config.twins.methods = ("magnitude",)
  config.twins.sparsities = (0.5,)
  config.twins.original_workdir = "."
  config.logging.progress = "none"
  return config
'''


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
  """A finished run that ships ``hostile_module.py`` and names it as its method's module."""
  root = tmp_path_factory.mktemp("untrusted")
  run = root / "run"
  train_and_evaluate(make_two_member_config(), str(run), random_dataset(num_train=64))
  (run / "hostile_module.py").write_text(HOSTILE_MODULE)
  metadata = json.loads((run / "metadata.json").read_text())
  metadata["method_module"] = "hostile_module"
  metadata["config"]["sparsify"]["method"] = "hostile_module:hostile"
  (run / "metadata.json").write_text(json.dumps(metadata))
  (root / "study_config.py").write_text(STUDY_CONFIG)
  return run


def _in_run(run, arguments):
  """``python ARGUMENTS`` started in the run directory (which Python puts on sys.path)."""
  environment = dict(os.environ, PYTHONPATH=REPOSITORY)
  return subprocess.run([sys.executable, *arguments], cwd=str(run), env=environment,
                        capture_output=True, text=True, timeout=300)


LOAD = "from jaxsparse import checkpoints; checkpoints.load_population('.')"
TABLES = "from jaxsparse import tables; tables.load_study('.')"


@pytest.mark.parametrize("arguments", [
    ["-c", LOAD],
    ["-c", TABLES],
    ["-m", "jaxsparse.main", "--config=../study_config.py", "--workdir=../study"],
    ["-m", "jaxsparse.modelzoo", "export", ".", "--out=../exported", "--format=arrays"],
], ids=["load_population", "tables.load_study", "twins study original_workdir", "export"])
def test_loading_a_run_never_runs_the_module_it_names(hostile_run, arguments):
  result = _in_run(hostile_run, arguments)
  assert result.returncode != 0
  assert not (hostile_run / "MODULE_RAN").exists(), "the run's module was imported"
  message = result.stderr.strip().splitlines()[-1]
  assert "hostile_module" in message and "allow" in message, result.stderr[-2000:]
  assert not (hostile_run.parent / "study" / "twins").exists()
  assert not (hostile_run.parent / "exported").exists()


def test_an_allowed_module_is_never_looked_up_in_the_run_directory(hostile_run):
  allowed = ("from jaxsparse import checkpoints; "
             "checkpoints.load_population('.', allow_modules=('hostile_module',))")
  result = _in_run(hostile_run, ["-c", allowed])
  assert result.returncode != 0
  assert not (hostile_run / "MODULE_RAN").exists()
  assert "cannot be imported" in result.stderr.strip().splitlines()[-1]
  flag = _in_run(hostile_run, ["-m", "jaxsparse.modelzoo", "export", ".", "--out=../exported",
                               "--format=arrays", "--allow_method_module=hostile_module"])
  assert flag.returncode == 2 and not (hostile_run / "MODULE_RAN").exists()
  assert "cannot be imported" in flag.stderr
