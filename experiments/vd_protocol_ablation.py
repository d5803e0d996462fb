"""Which choice of the main job's variational-dropout protocol makes its twins collapse?

On the main job's zoo (``configs/default.py``, trained here once under
``WORKDIR/zoo``), VD twins at all of the job's KL weights are trained with
every combination of the two choices that depart from the public model-zoo
code (issue #46; docs/results.md):

- ``sparsify.trainable_learning_rate_scale``: 30 (log sigma^2 learns 30x faster
  than the weights, the main job until 2026-12-05) or 1 (one rate for every
  parameter, as the public code's single optimizer);
- the KL warm-up: over the first fine-tuning epoch, or over all of them (the
  public code ramps over all 25 of its epochs).

Everything else is the main job's (10 epochs on 2,500 examples, the public
clip). Magnitude twins (both scopes, the job's levels and fine-tuning) are
trained once and also evaluated right after pruning (epoch 0, prune-only),
which costs one evaluation. Per arm: VD's mean sparsity, accuracy drop and
twins at chance per KL weight, and the paired crossover: per member, VD
accuracy minus the member's own magnitude curve (anchored at its dense
accuracy at 0 %) interpolated at the VD twin's sparsity, averaged over its
twins at or above / below 80 %, then over members (mean, standard error,
members).

  python experiments/vd_protocol_ablation.py --workdir=runs/vd_ablation

Resumable: re-running the command trains only what is missing, then rewrites
``results.md`` and ``results.json``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxsparse import analysis, metrics, tables, train, twins  # noqa: E402
from jaxsparse.config import load_config_file  # noqa: E402
from experiments.common import markdown_table, write_results  # noqa: E402

#: (name, trainable_learning_rate_scale, KL warm-up over all fine-tuning epochs).
ARMS = (("scale 30, KL ramp over the first epoch", 30.0, False),
        ("scale 1, KL ramp over the first epoch", 1.0, False),
        ("scale 30, KL ramp over all epochs", 30.0, True),
        ("scale 1, KL ramp over all epochs", 1.0, True))
#: A twin below this test accuracy predicts little better than chance (10 classes).
CHANCE_ACCURACY = 0.15
CROSSOVER = 0.8


def _study_config(base, zoo: str, methods: tuple[str, ...]):
  config = base.copy_and_resolve_references()
  config.twins.methods = methods
  config.twins.original_workdir = zoo
  config.logging.progress = "none"
  return config


def _arm_config(base, zoo: str, scale: float, ramp_all: bool):
  config = _study_config(base, zoo, ("variational_dropout",))
  config.sparsify.trainable_learning_rate_scale = scale
  config.sparsify.start_epoch = 0
  config.sparsify.end_epoch = config.twins.num_epochs if ramp_all else 1
  return config


def _directory(name: str) -> str:
  return name.replace(", ", "_").replace(" ", "_")


def _prune_only(study: str, scope: str, originals: pd.DataFrame) -> pd.DataFrame:
  """The magnitude twins of ``scope`` as evaluated right after pruning (epoch 0)."""
  run_dir = os.path.join(study, "twins", f"magnitude_{scope}")
  rows = pd.DataFrame(metrics.read_metrics(os.path.join(run_dir, "metrics.jsonl")))
  rows = rows[rows["epoch"] == 0].sort_values("member")
  rows["original_member"] = rows["member"] % len(originals)
  rows["original_test_accuracy"] = originals.set_index("member").loc[
      rows["original_member"], "test_accuracy"].to_numpy()
  return rows.assign(diverged=rows["diverged"].astype(bool))


def _prune_only_table(base, comparators: dict, num_originals: int) -> pd.DataFrame:
  """Per scope and target: magnitude twins' mean sparsity, and accuracy before and after
  fine-tuning."""
  rows = []
  for scope in base.twins.scopes:
    pruned = comparators[f"{scope}, prune-only"]
    tuned = comparators[f"{scope}, fine-tuned"]
    for index, target in enumerate(base.twins.sparsities):
      level = pruned[pruned["member"] // num_originals == index]
      rows.append({"scope": scope, "target": target, "sparsity": level.achieved_sparsity.mean(),
                   "accuracy prune-only": level.test_accuracy.mean(),
                   "accuracy fine-tuned": tuned[np.isclose(tuned.level, target)]
                   .test_accuracy.mean()})
  return pd.DataFrame(rows)


def _crossover_rows(arm: str, vd: pd.DataFrame, comparators: dict) -> list[dict]:
  rows = []
  for comparator, magnitude in comparators.items():
    pairs = analysis.paired_twins(magnitude, vd)
    for band, (low, high) in {"at or above 80 %": (CROSSOVER, 1.01),
                              "below 80 %": (0.0, CROSSOVER)}.items():
      means = analysis.member_means(pairs, low, high)
      in_band = pairs[(pairs.achieved_sparsity >= low) & (pairs.achieved_sparsity < high)]
      rows.append({"arm": arm, "magnitude twins": comparator, "band": band,
                   "VD - magnitude": means.mean() if len(means) else np.nan,
                   "s.e.": means.std(ddof=1) / np.sqrt(len(means)) if len(means) > 1 else np.nan,
                   "members": len(means), "twins": int(np.isfinite(in_band.difference).sum())})
  return rows


def run(workdir: str, config_path: str) -> None:
  started = time.time()
  base = load_config_file(config_path)
  zoo = os.path.join(workdir, "zoo")
  train.train_and_evaluate(twins.original_config(base), zoo)
  magnitude_config = _study_config(base, zoo, ("magnitude",))
  magnitude_config.twins.evaluate_at_start = True  # epoch 0: magnitude pruning alone
  magnitude_study = os.path.join(workdir, "magnitude")
  twins.run_study(magnitude_config, magnitude_study)
  magnitude = tables.load_study(magnitude_study)
  originals = magnitude[magnitude.run == "original"]
  comparators = {}
  for scope in base.twins.scopes:
    comparators[f"{scope}, fine-tuned"] = magnitude[magnitude.run == f"magnitude_{scope}"]
    comparators[f"{scope}, prune-only"] = _prune_only(magnitude_study, scope, originals)
  levels, crossover = [], []
  for arm, scale, ramp_all in ARMS:
    study = os.path.join(workdir, _directory(arm))
    twins.run_study(_arm_config(base, zoo, scale, ramp_all), study)
    rows = tables.load_study(study)
    vd = rows[rows.run == "variational_dropout"]
    for level, twins_at in vd.groupby("level"):
      levels.append({"arm": arm, "KL weight": level,
                     "sparsity": twins_at.achieved_sparsity.mean(),
                     "drop": twins_at.accuracy_drop.mean(),
                     "at chance": int((twins_at.test_accuracy < CHANCE_ACCURACY).sum()),
                     "twins": len(twins_at)})
    crossover += _crossover_rows(arm, vd, comparators)
  levels, crossover = pd.DataFrame(levels), pd.DataFrame(crossover)
  prune_only = _prune_only_table(base, comparators, len(originals))
  table = "\n\n".join([
      f"Zoo: {len(originals)} members, mean test accuracy {originals.test_accuracy.mean():.3f} "
      f"({(originals.test_accuracy < CHANCE_ACCURACY).sum()} at chance).",
      "VD twins per arm and KL weight (mean sparsity, mean drop, twins below "
      f"{CHANCE_ACCURACY} accuracy):", markdown_table(levels, digits=3),
      "Paired crossover (VD minus the member's magnitude curve at the VD twin's sparsity, "
      "anchored at its dense accuracy; mean over members, its standard error):",
      markdown_table(crossover, digits=3),
      "Magnitude twins before and after fine-tuning (population means):",
      markdown_table(prune_only, digits=3)])
  write_results(workdir, table, started, levels=levels, crossover=crossover,
                prune_only=prune_only)


if __name__ == "__main__":
  from absl import flags
  from experiments import common
  workdir = flags.DEFINE_string("workdir", "runs/vd_ablation", "Where the zoo, arms and results go.")
  config = flags.DEFINE_string("config", "configs/default.py", "The main job's config.")
  common.run(lambda: run(workdir.value, config.value))
