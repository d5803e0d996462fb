"""Supermasks of frozen random networks: Gumbel-softmax as Dupont et al. run it, and
edge-popup at the same sparsity (docs/supermasks.md).

For each model (Conv-2, Conv-4) and seed:

1. Gumbel-softmax with the public code's protocol (configs/gumbel_softmax_dupont.py:
   logits from 0, temperature 1, no penalty, SGD with the logits at 50 and the
   scales at 1e-3), with the learned per-layer rescaling and without it. Its
   sparsity is an outcome.
2. Edge-popup over the same frozen weights (same seed and network), each
   member's target the sparsity its Gumbel-softmax counterpart achieved, so
   the two compare at equal sparsity (one population per seed: a member's
   target pairs with its seed).

Results: test accuracy and sparsity per member, means with Student's t 95 %
intervals, and edge-popup minus Gumbel-softmax paired by seed::

  python experiments/supermasks.py --workdir=runs/supermasks --quick  # pipeline check, < 5 min
  python experiments/supermasks.py --workdir=runs/supermasks          # CPU-sized full mode

Runs resume (the same command again); everything goes under the workdir.
"""

from __future__ import annotations

import os
import time

from absl import app, logging
import pandas as pd
import scipy.stats

from jaxsparse import analysis, train
from jaxsparse.config import load_config_file, validate_config

import common

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "gumbel_softmax_dupont.py")
MODELS = ("conv2", "conv4")
#: CPU-sized: a Conv-4 step of 3 members at batch 256 takes about 7 s on 2 cores.
FULL = dict(epochs=5, train_examples=5_000, seeds=3, test_examples=None)
QUICK = dict(epochs=1, train_examples=1_000, seeds=2, test_examples=1_000)
#: Edge-popup's scores: SGD with momentum 0.9 at 0.1 (Ramanujan et al.), no weight decay.
EDGE_POPUP_LEARNING_RATE = 0.1


def gumbel_config(model: str, rescale: bool, sizes: dict):
  """The Dupont et al. protocol for ``model``, sized by ``sizes``."""
  config = load_config_file(f"{CONFIG}:{model}")
  config.data.train_examples = sizes["train_examples"]
  config.training.num_epochs = sizes["epochs"]
  config.training.evaluate_validation = False
  config.training.curve_test_examples = 1_000
  config.population.num_seeds = sizes["seeds"]
  config.sparsify.rescale = rescale
  return config


def edge_popup_config(gumbel, seed: int, targets: tuple[float, ...]):
  """Edge-popup over ``gumbel``'s frozen network of ``seed``, at ``targets`` (one member for
  variants that reached the same sparsity)."""
  config = gumbel.copy_and_resolve_references()
  config.sparsify.method = "edge_popup"
  config.sparsify.trainable_learning_rate_scale = 1.0
  config.population.grid.learning_rate = (EDGE_POPUP_LEARNING_RATE,)
  config.population.grid.sparsity = tuple(sorted(set(targets)))
  config.population.first_seed, config.population.num_seeds = seed, 1
  return config


def _rows(members: pd.DataFrame, model: str, method: str) -> pd.DataFrame:
  return pd.DataFrame({"model": model, "method": method, "seed": members["seed"],
                       "target": members["sparsity"], "test_accuracy": members["test_accuracy"],
                       "achieved_sparsity": members["achieved_sparsity"]})


def run_model(model: str, workdir: str, sizes: dict, dataset) -> pd.DataFrame:
  """Both Gumbel-softmax variants, then edge-popup at their sparsities; a row per member."""
  frames = []
  for rescale in (True, False):
    name = "gumbel_softmax" + ("" if rescale else "_no_rescale")
    config = gumbel_config(model, rescale, sizes)
    validate_config(config)
    print(f"== {model}: {name}", flush=True)
    frames.append(_rows(train.train_and_evaluate(config, os.path.join(workdir, model, name),
                                                 dataset), model, name))
  gumbel = pd.concat(frames, ignore_index=True)
  for seed, group in gumbel.groupby("seed"):
    # Four decimals: a target the model's layers can reach, and the same run on a re-run.
    targets = tuple(round(float(value), 4) for value in group["achieved_sparsity"])
    config = edge_popup_config(gumbel_config(model, True, sizes), int(seed), targets)
    validate_config(config)
    print(f"== {model}: edge-popup, seed {seed}, targets {targets}", flush=True)
    members = train.train_and_evaluate(
        config, os.path.join(workdir, model, f"edge_popup_seed{seed}"), dataset)
    frames.append(_rows(members, model, "edge_popup"))
  return pd.concat(frames, ignore_index=True)


def comparisons(results: pd.DataFrame) -> pd.DataFrame:
  """Edge-popup minus each Gumbel-softmax variant, paired by seed: the edge-popup member of
  the seed whose target is the variant's achieved sparsity (paired t interval)."""
  rows = []
  popup = results[results["method"] == "edge_popup"].assign(key=lambda f: f["target"].round(4))
  gumbel = results[results["method"] != "edge_popup"].assign(
      key=lambda f: f["achieved_sparsity"].round(4))
  for (model, variant), group in gumbel.groupby(["model", "method"], sort=False):
    merged = popup[popup["model"] == model].drop_duplicates(["seed", "key"]).merge(
        group, on=["seed", "key"], suffixes=("_popup", "_gumbel"))
    difference = merged["test_accuracy_popup"] - merged["test_accuracy_gumbel"]
    low, high = (scipy.stats.ttest_rel(merged["test_accuracy_popup"],
                                       merged["test_accuracy_gumbel"]).confidence_interval(0.95)
                 if len(merged) > 1 else (float("nan"), float("nan")))
    rows.append({"model": model, "gumbel_variant": variant, "pairs": len(merged),
                 "sparsity": merged["achieved_sparsity_gumbel"].mean(),
                 "difference": difference.mean(), "low": low, "high": high})
  return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, differences: pd.DataFrame) -> str:
  """The summary and the paired comparisons as Markdown tables."""
  lines = ["| model | method | test accuracy (95 % t interval) | achieved sparsity | seeds |",
           "|---|---|---|---|---|"]
  for row in summary.itertuples():
    lines.append(f"| {row.model} | {row.method} | {row.test_accuracy:.4f} ({row.low:.4f} to "
                 f"{row.high:.4f}) | {row.achieved_sparsity:.4f} | {row.seeds} |")
  lines += ["", "| model | edge-popup against | sparsity | difference (paired 95 % interval) | "
            "pairs |", "|---|---|---|---|---|"]
  for row in differences.itertuples():
    lines.append(f"| {row.model} | {row.gumbel_variant} | {row.sparsity:.4f} | "
                 f"{row.difference:+.4f} ({row.low:+.4f} to {row.high:+.4f}) | {row.pairs} |")
  return "\n".join(lines)


def run(workdir: str, models: list[str], quick_mode: bool = False) -> pd.DataFrame:
  """Every model's runs (resuming finished ones), then results.md and results.json."""
  logging.set_verbosity(logging.WARNING)
  started = time.time()
  sizes = QUICK if quick_mode else FULL
  dataset = train.dataset_from_config(gumbel_config(models[0], True, sizes))
  if sizes["test_examples"]:
    dataset = dataset._replace(test_images=dataset.test_images[:sizes["test_examples"]],
                               test_labels=dataset.test_labels[:sizes["test_examples"]])
  results = pd.concat([run_model(model, workdir, sizes, dataset)
                       for model in (models[:1] if quick_mode else models)], ignore_index=True)
  summary = analysis.group_means(results, ["model", "method"], also=("achieved_sparsity",))
  differences = comparisons(results)
  table = markdown(summary, differences)
  common.write_results(workdir, table, started, members=results, summary=summary,
                       comparisons=differences, quick=quick_mode, sizes=sizes)
  return differences


if __name__ == "__main__":
  app.run(common.model_experiment_main(run, tuple(MODELS)))
