"""Supermasks of frozen random networks: Gumbel-softmax as Dupont et al. run it, and
edge-popup at the same sparsity (docs/supermasks.md).

For each model and seed:

1. Gumbel-softmax with the public code's protocol (configs/gumbel_softmax_dupont.py:
   logits from 0, temperature 1, no penalty, SGD with the logits at 50 and the
   scales at 1e-3), with the learned per-layer rescaling and without it. Its
   sparsity is an outcome.
2. Edge-popup over the same frozen weights (same seed and network), each
   member's target the sparsity its Gumbel-softmax counterpart achieved, so
   the two compare at equal sparsity (one population per seed: a member's
   target pairs with its seed).

LeNet-300-100 (266,610 weights) is the network this CPU can train to the end
(``SIZES``); the paper's Conv-2 and Conv-4 need a GPU or TPU at the public
code's learning rates (``--models=conv2,conv4``; docs/supermasks.md).

Results: test accuracy and sparsity per member, means with Student's t 95 %
intervals, and edge-popup minus Gumbel-softmax paired by seed::

  python experiments/supermasks.py --workdir=runs/supermasks --quick  # pipeline check, < 5 min
  python experiments/supermasks.py --workdir=runs/supermasks          # LeNet-300-100, full size

Runs resume (the same command again); everything goes under the workdir.
"""

from __future__ import annotations

import os
import time

from absl import logging
import numpy as np
import pandas as pd
import scipy.stats

from jaxsparse import analysis, data, metrics, train
from jaxsparse.config import load_config_file, validate_config
from jaxsparse.workdir import METRICS_FILE

import common

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "gumbel_softmax_dupont.py")
#: Per model: epochs, training examples (0: the whole split), seeds, test examples (None: all).
#: LeNet-300-100's 100 epochs of 195 steps take about 6 min per variant here; Conv-2 and
#: Conv-4 take 3 to 13 s per step of 3 members on this 2-core CPU, and at the logits' rate
#: of 50 their big layers' logits move about 1e-4 per step, so they are sized for a GPU.
SIZES = {
    "lenet_300_100": dict(epochs=100, train_examples=0, seeds=3, test_examples=None),
    "conv2": dict(epochs=100, train_examples=0, seeds=3, test_examples=None),
    "conv4": dict(epochs=100, train_examples=0, seeds=3, test_examples=None),
}
MODELS = tuple(SIZES)
#: What runs without ``--models``: the network this CPU trains to the end.
CPU_MODELS = ("lenet_300_100",)
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
  # The results need the last epoch alone; every epoch's Conv-4 checkpoints filled a 64 GiB disk.
  config.checkpoint.max_to_keep = 1
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


def _rows(members: pd.DataFrame, model: str, method: str, run_dir: str) -> pd.DataFrame:
  """One row per member: its results, each layer's sparsity (``layer/<name>``) and its
  curve accuracy per epoch (``curve``, on the config's first test images)."""
  layers = {name.replace("/kernel", ""): values
            for name, values in metrics.read_predictions(run_dir).items()
            if name.startswith("layer/")}
  curves = pd.DataFrame(metrics.read_metrics(os.path.join(run_dir, METRICS_FILE)))
  curves = curves.drop_duplicates(["epoch", "member"], keep="last").pivot(
      index="member", columns="epoch", values="curve_accuracy")
  return pd.DataFrame({"model": model, "method": method, "seed": members["seed"],
                       "target": members["sparsity"], "test_accuracy": members["test_accuracy"],
                       "achieved_sparsity": members["achieved_sparsity"], **layers,
                       "curve": [list(curves.loc[member]) for member in members["member"]]})


def run_model(model: str, workdir: str, sizes: dict, dataset) -> pd.DataFrame:
  """Both Gumbel-softmax variants, then edge-popup at their sparsities; a row per member."""
  frames = []
  for rescale in (True, False):
    name = "gumbel_softmax" + ("" if rescale else "_no_rescale")
    config = gumbel_config(model, rescale, sizes)
    validate_config(config)
    print(f"== {model}: {name}", flush=True)
    run_dir = os.path.join(workdir, model, name)
    frames.append(_rows(train.train_and_evaluate(config, run_dir, dataset), model, name,
                        run_dir))
  gumbel = pd.concat(frames, ignore_index=True)
  for seed, group in gumbel.groupby("seed"):
    # Four decimals: a target the model's layers can reach, and the same run on a re-run.
    targets = tuple(round(float(value), 4) for value in group["achieved_sparsity"])
    config = edge_popup_config(gumbel_config(model, True, sizes), int(seed), targets)
    validate_config(config)
    print(f"== {model}: edge-popup, seed {seed}, targets {targets}", flush=True)
    run_dir = os.path.join(workdir, model, f"edge_popup_seed{seed}")
    frames.append(_rows(train.train_and_evaluate(config, run_dir, dataset), model,
                        "edge_popup", run_dir))
  return pd.concat(frames, ignore_index=True)


def layer_table(results: pd.DataFrame) -> pd.DataFrame:
  """Mean sparsity of every layer per model and method."""
  layers = [column for column in results if column.startswith("layer/")]
  return results.groupby(["model", "method"], sort=False)[layers].mean().reset_index()


def plot_curves(results: pd.DataFrame, directory: str) -> None:
  """Curve accuracy per epoch, a panel per model, a line per method (the mean over its
  members, the members' range shaded); PNG and PDF."""
  import matplotlib.pyplot as plt
  os.makedirs(directory, exist_ok=True)
  models = list(dict.fromkeys(results["model"]))
  figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False,
                              constrained_layout=True)
  for axis, model in zip(axes[0], models):
    for method, rows in results[results["model"] == model].groupby("method", sort=False):
      curves = np.array(rows["curve"].tolist(), dtype=float)
      epochs = np.arange(1, curves.shape[1] + 1)
      line, = axis.plot(epochs, curves.mean(axis=0), label=method)
      axis.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), alpha=0.2,
                        color=line.get_color())
    axis.set(title=model, xlabel="epoch", ylabel="test accuracy (first 1,000 images)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
  for extension in ("png", "pdf"):
    figure.savefig(os.path.join(directory, f"supermasks_curves.{extension}"), dpi=200)
  plt.close(figure)


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


def markdown(summary: pd.DataFrame, differences: pd.DataFrame, layers: pd.DataFrame) -> str:
  """The summary, the paired comparisons and the layers' sparsity as Markdown tables."""
  summary_table = pd.DataFrame({
      "model": summary["model"], "method": summary["method"],
      "test accuracy (95 % t interval)": common.interval_column(summary, "test_accuracy"),
      "achieved sparsity": summary["achieved_sparsity"], "seeds": summary["seeds"]})
  differences_table = pd.DataFrame({
      "model": differences["model"], "edge-popup against": differences["gumbel_variant"],
      "sparsity": differences["sparsity"],
      "difference (paired 95 % interval)": common.interval_column(differences, "difference",
                                                                  signed=True),
      "pairs": differences["pairs"]})
  layers_table = layers.rename(columns=lambda name: name.removeprefix("layer/"))
  return "\n\n".join(common.markdown_table(table, digits=4)
                      for table in (summary_table, differences_table, layers_table))


def sized_dataset(model: str, sizes: dict):
  """The training and test data of ``model``'s runs at ``sizes``."""
  dataset = data.dataset_from_config(gumbel_config(model, True, sizes))
  if sizes["test_examples"]:
    dataset = dataset._replace(test_images=dataset.test_images[:sizes["test_examples"]],
                               test_labels=dataset.test_labels[:sizes["test_examples"]])
  return dataset


def run(workdir: str, models: list[str], quick_mode: bool = False) -> pd.DataFrame:
  """Every model's runs (resuming finished ones), then results.md and results.json."""
  logging.set_verbosity(logging.WARNING)
  started = time.time()
  models = models[:1] if quick_mode else models
  sizes = {model: QUICK if quick_mode else SIZES[model] for model in models}
  results = pd.concat([run_model(model, workdir, sizes[model], sized_dataset(model, sizes[model]))
                       for model in models], ignore_index=True)
  summary = analysis.group_means(results, ["model", "method"], also=("achieved_sparsity",))
  differences = comparisons(results)
  layers = layer_table(results)
  table = markdown(summary, differences, layers)
  plot_curves(results, os.path.join(workdir, "figures"))
  common.write_results(workdir, table, started, members=results, summary=summary,
                       comparisons=differences, layers=layers, quick=quick_mode, sizes=sizes)
  return differences


if __name__ == "__main__":
  common.model_experiment_main(run, MODELS, default=CPU_MODELS)
