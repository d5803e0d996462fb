"""The twins-verdict protocol study (issue #46): the arms of configs/twins_protocol.py, then
the verdict by the decision rule written there.

  python experiments/twins_protocol.py --workdir=runs/twins_protocol

Trains the uniform zoo under ``WORKDIR/zoo`` and every twin arm under
``WORKDIR/<arm>`` (each a twins study whose ``original_workdir`` is the zoo),
in the order of ``--arms``, then writes ``WORKDIR/verdict.md`` and
``WORKDIR/verdict.json`` (:mod:`experiments.twins_verdict`). Every arm is
resumable: re-running the command continues where it stopped, and a finished
arm is not trained again. ``--arms=zoo,vd_public`` runs a subset;
``--verdict_only`` only rewrites the verdict from what has finished;
``--quick`` checks the pipeline in a few minutes.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxsparse import tables, train, twins  # noqa: E402
from jaxsparse.config import load_config_file  # noqa: E402
from jaxsparse.errors import UserError  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "twins_protocol.py")
#: The order the arms run in: the zoo, then the public protocol first (its sanity check
#: comes earliest) and the departure, the magnitude curves, the bridge, the
#: straight-through clip and the per-batch noise (added after the verdict, descriptive:
#: configs/twins_protocol.py).
ORDER = ("zoo", "vd_public", "vd_strong", "vd_stronger", "magnitude_5", "magnitude_25",
         "bridge", "vd_straight_through", "vd_per_batch", "vd_public_per_batch")
#: ``vd_stronger`` runs only if ``vd_strong``'s twins end below this mean sparsity.
STRONGER_BELOW = 0.9


def quick(config, arm: str):
  """``config`` of ``arm`` shrunk to a pipeline check (same arms, same decision rule)."""
  config.data.name, config.data.image_size, config.data.validation_size = "digits", 28, 300
  config.population.num_seeds = 3
  config.training.num_epochs = 2
  config.training.evaluate_every = 1
  if arm == "zoo":
    return config
  config.twins.num_epochs = {"magnitude_5": 2, "magnitude_25": 3}.get(arm, 3)
  config.twins.train_examples = 300
  if config.sparsify.get("end_epoch", 0) > config.twins.num_epochs:  # (VD's 25, the bridge's 10)
    config.sparsify.end_epoch = config.twins.num_epochs
  return config


def arm_config(arm: str, workdir: str, quick_check: bool = False):
  """The config of ``arm``; a twin arm starts from the zoo under ``workdir``."""
  config = load_config_file(f"{CONFIG}:{arm}")
  config = quick(config, arm) if quick_check else config
  config.logging.progress = "lines"
  if arm != "zoo":
    config.twins.original_workdir = os.path.join(workdir, "zoo")
  return config


def run_arm(arm: str, workdir: str, quick_check: bool = False) -> None:
  """Trains (or resumes, or finds finished) one arm."""
  started = time.time()
  print(f"== {arm} ({time.strftime('%Y-%m-%d %H:%M:%S')})", flush=True)
  config = arm_config(arm, workdir, quick_check)
  if arm == "zoo":
    train.train_and_evaluate(config, os.path.join(workdir, "zoo"))
  else:
    twins.run_study(config, os.path.join(workdir, arm))
  print(f"== {arm} done in {(time.time() - started) / 60:.1f} min", flush=True)


def stronger_needed(workdir: str) -> bool:
  """Whether the pre-registered ``vd_stronger`` arm runs: ``vd_strong`` has finished and its
  twins' mean final sparsity is below :data:`STRONGER_BELOW`."""
  if not os.path.exists(os.path.join(workdir, "vd_strong", "summary.json")):
    return False
  rows = tables.load_trajectories(os.path.join(workdir, "vd_strong"))
  final = rows[rows.epoch == rows.epoch.max()]
  return bool(final.achieved_sparsity.mean() < STRONGER_BELOW)


def main(workdir: str, arms: list[str], verdict_only: bool, quick_check: bool) -> None:
  """Runs the arms (in :data:`ORDER`), then writes the verdict."""
  unknown = [arm for arm in arms if arm not in ORDER]
  if unknown:
    raise UserError(f"--arms={','.join(unknown)} is unknown; use some of {','.join(ORDER)}")
  if not verdict_only:
    for arm in [arm for arm in ORDER if arm in arms]:
      if arm == "vd_stronger" and not stronger_needed(workdir):
        print(f"== {arm}: not needed (vd_strong reached {STRONGER_BELOW:.0%} mean sparsity, "
              "or has not finished)", flush=True)
        continue
      run_arm(arm, workdir, quick_check)
  from experiments import twins_verdict  # (its statistics need no JAX)
  twins_verdict.write_verdict(workdir)


if __name__ == "__main__":
  from absl import flags
  from experiments import common
  workdir = flags.DEFINE_string("workdir", "runs/twins_protocol", "Where the arms and verdict go.")
  arms = flags.DEFINE_list("arms", list(ORDER), f"Arms to run, of {list(ORDER)}.")
  verdict_only = flags.DEFINE_bool("verdict_only", False,
                                   "Only rewrite the verdict from the finished arms.")
  quick_check = flags.DEFINE_bool("quick", False, "A pipeline check in a few minutes: 3 members "
                                  "on the 8x8 digits at 28x28, a few epochs of everything.")
  common.run(lambda: main(workdir.value, arms.value, verdict_only.value, quick_check.value))
