"""A method from the user's own module is as first-class as a built-in one.

The module below lives outside the package: it declares a config field of
its own and sweeps it per member. A run selects it as ``'module:name'``,
trains a population with it from the command line, and a fresh process
reloads the run (importing the module its metadata names only when the
loader is allowed to).
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxsparse import masks, models, sparsify
from jaxsparse.config import default_config, validate_config
from jaxsparse.errors import UserError

from conftest import assert_trees_close, method_settings

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_MODULE = '''
"""A user's method: one-shot magnitude pruning to a fraction of the member's target."""
from typing import Any, NamedTuple

from jaxsparse import masks
from jaxsparse.sparsify import Field, SparsifyMethod, register
from jaxsparse.sparsify.magnitude import magnitude_masks


class State(NamedTuple):
  masks: Any


@register("fraction_magnitude",
          fields={"target_fraction": Field(1.0, "prune to this fraction of the target",
                                           lambda v, c: None if 0 < v <= 1 else "use (0, 1]")},
          member_settings=("target_fraction",))
def build(settings, training):
  default = settings.target_fraction

  def init(params, key, target):
    sparsity = target.sparsity * target.setting("target_fraction", default)
    return State(magnitude_masks(params, masks.dense_masks(params), sparsity))

  return SparsifyMethod(init, lambda state, params, grads, step, target: state)
'''

CONFIG = '''
from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "lenet_300_100"
  config.data.name = "digits"
  config.data.validation_size = 300
  config.sparsify.method = "user_pruning:fraction_magnitude"
  config.population.grid.sparsity = (0.8,)
  config.population.method_grid.target_fraction = (0.5, 1.0)
  config.training.num_epochs = 1
  config.training.batch_size = 64
  config.logging.progress = "none"
  config.logging.tensorboard = False
  return config
'''

LOAD = '''
import json, sys
import jax
from jaxsparse import checkpoints, masks
state, table = checkpoints.load_population(sys.argv[1], allow_modules=sys.argv[2:])
sparsity = jax.vmap(masks.sparsity)(state.masks)
print(json.dumps({"target_fraction": table["target_fraction"].tolist(),
                  "sparsity": [float(s) for s in sparsity]}))
'''


def _run(arguments, path, cwd):
  environment = dict(os.environ, PYTHONPATH=os.pathsep.join([path, REPOSITORY]))
  return subprocess.run([sys.executable, *arguments], cwd=cwd, env=environment,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_method_from_a_user_module_trains_a_sweep_and_reloads_in_a_fresh_process(tmp_path):
  module_dir = tmp_path / "user_code"
  module_dir.mkdir()
  (module_dir / "user_pruning.py").write_text(USER_MODULE)
  (module_dir / "user_config.py").write_text(CONFIG)
  workdir = tmp_path / "run"
  trained = _run(["-m", "jaxsparse.main", f"--config={module_dir / 'user_config.py'}",
                  f"--workdir={workdir}"], str(module_dir), REPOSITORY)
  assert trained.returncode == 0, trained.stderr[-3000:]

  metadata = json.loads((workdir / "metadata.json").read_text())
  assert metadata["method_module"] == "user_pruning"
  assert metadata["config"]["sparsify"]["target_fraction"] == 1.0  # the declared default
  members = [row["target_fraction"] for row in metadata["members"]]
  assert members == [0.5, 1.0]

  # A fresh process, started elsewhere, whose code never imports the user's module: the
  # run names it, and the loader imports it only when allowed to.
  refused = _run(["-c", LOAD, str(workdir)], str(module_dir), str(tmp_path))
  assert refused.returncode != 0
  message = refused.stderr.strip().splitlines()[-1]
  assert "user_pruning" in message and "allow_modules=('user_pruning',)" in message
  loaded = _run(["-c", LOAD, str(workdir), "user_pruning"], str(module_dir), str(tmp_path))
  assert loaded.returncode == 0, loaded.stderr[-3000:]
  result = json.loads(loaded.stdout.strip().splitlines()[-1])
  assert result["target_fraction"] == [0.5, 1.0]
  # Layer-wise top-k at 0.8 x fraction per tensor: the prunable weights' sparsity.
  np.testing.assert_allclose(result["sparsity"], [0.4, 0.8], atol=2e-3)

  # Without the module on the path, loading says so in one line.
  missing = subprocess.run(
      [sys.executable, "-c", LOAD, str(workdir), "user_pruning"], cwd=str(tmp_path),
      capture_output=True,
      text=True, timeout=600, env=dict(os.environ, PYTHONPATH=REPOSITORY))
  assert missing.returncode != 0
  assert "user_pruning" in missing.stderr and "PYTHONPATH" in missing.stderr


PLAIN_CONFIG = '''
from jaxsparse.config import default_config


def get_config():
  config = default_config()
  config.model.name = "lenet_300_100"
  config.data.name = "digits"
  config.data.validation_size = 300
  config.population.grid.sparsity = (0.8,)
  config.training.num_epochs = 1
  config.training.batch_size = 64
  config.logging.progress = "none"
  config.logging.tensorboard = False
  return config
'''


@pytest.mark.slow
def test_a_method_named_on_the_command_line_has_its_own_fields_there(tmp_path):
  """The config file knows nothing of the user's module; the command line names the method
  as module:name and overrides its own field on the same line."""
  module_dir = tmp_path / "user_code"
  module_dir.mkdir()
  (module_dir / "user_pruning.py").write_text(USER_MODULE)
  (module_dir / "plain_config.py").write_text(PLAIN_CONFIG)
  command = ["-m", "jaxsparse.main", f"--config={module_dir / 'plain_config.py'}",
             "--config.sparsify.method=user_pruning:fraction_magnitude"]
  trained = _run([*command, "--config.sparsify.target_fraction=0.5",
                  f"--workdir={tmp_path / 'run'}"], str(module_dir), REPOSITORY)
  assert trained.returncode == 0, trained.stderr[-3000:]
  metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
  assert metadata["config"]["sparsify"]["target_fraction"] == 0.5
  wrong = _run([*command, "--config.sparsify.target_fractoin=0.5",
                f"--workdir={tmp_path / 'wrong'}"], str(module_dir), REPOSITORY)
  assert wrong.returncode == 2
  [message] = wrong.stderr.strip().splitlines()
  assert "config.sparsify.target_fractoin is not a known field" in message
  assert "module 'user_pruning'" in message and "target_fraction" in message


def test_unknown_method_module_is_one_line_naming_the_field():
  config = default_config()
  config.sparsify.method = "no_such_module_here:my_method"
  with pytest.raises(UserError) as error:
    validate_config(config)
  message = str(error.value)
  assert "\n" not in message
  assert "sparsify.method" in message and "no_such_module_here" in message


def test_a_built_method_does_not_change_when_the_config_does():
  params = models.init_variables(models.get_model("lenet_300_100", (8, 8, 1)),
                                 jax.random.PRNGKey(0))["params"]
  settings = method_settings("magnitude", schedule="gradual", start_epoch=0, end_epoch=4)
  method = sparsify.get_method(settings, sparsify.TrainingSchedule(10))
  target = sparsify.Target(0.9)
  before = jax.jit(method.update)(method.init(params, None, target), params, params, 10, target)
  settings.schedule = "one_shot"  # what a builder that kept the ConfigDict would now read
  settings.update_every = 7
  after = jax.jit(method.update)(method.init(params, None, target), params, params, 10, target)
  assert float(masks.sparsity(before.masks)) < 0.9  # gradual: a quarter of the way at step 10
  assert_trees_close(before, after)


def test_registration_rejects_an_inconsistent_declaration():
  """A sweep of an undeclared or reserved field, a default that differs from another
  method's, a twin level set by a field that is not swept, a field named 'method'."""
  with pytest.raises(ValueError, match="does not declare"):
    sparsify.register("bad_a", member_settings=("strength",))
  with pytest.raises(ValueError, match="member-table column"):
    sparsify.register("bad_b", fields={"learning_rate": sparsify.Field(1.0, "")},
                      member_settings=("learning_rate",))
  with pytest.raises(ValueError, match="another method declares"):
    sparsify.register("bad_c", fields={"scope": sparsify.Field("global", "")})
  with pytest.raises(ValueError, match="must be one of its member_settings"):
    sparsify.register("bad_d", fields={"strength": sparsify.Field(1.0, "")},
                      twin_level=sparsify.TwinLevel(setting="strength"))
  with pytest.raises(ValueError, match="may not declare a field named 'method'"):
    sparsify.register("bad_e", fields={"method": sparsify.Field("x", "")})
  assert not {"bad_a", "bad_b", "bad_c", "bad_d", "bad_e"} & set(sparsify.method_names())
