"""GaP's small-scale claim, fairly (Ma et al., ICLR 2022; docs/gap_claim.md).

GaP was published at ImageNet / WMT scale only; the claim checkable at small
scale is that scheduled grow-and-prune beats static random-mask sparse
training and magnitude pruning at the same sparsity and budget. Every arm
trains the same number of epochs with the same recipe, at 80 / 90 / 95 %
(one member per level and seed):

- ``dense``: no pruning (the ceiling);
- ``random``: a static random mask at the target from the initialisation;
- ``one_shot_mp``: dense for half the epochs, magnitude pruning in one shot,
  fine-tuning for the other half;
- ``gradual_mp``: dense for the first quarter, Zhu & Gupta's polynomial
  schedule until three quarters, fine-tuning after;
- ``cyclic_gap``: from a random mask, partitions grown and pruned in turn
  until three quarters (each partition dense twice), fine-tuning after;
- ``parallel_gap``: the same window in rounds of one epoch, a copy per
  partition (3x the member-steps: the paper's parallel variant trades
  devices for time).

Per model, level and GaP variant the result is the difference of mean test
accuracy to each baseline with Welch's t 95 % interval::

  python experiments/gap_claim.py --workdir=runs/gap --quick   # pipeline check, < 5 min
  python experiments/gap_claim.py --workdir=runs/gap           # CNN-s and ResNet-20

Runs resume (the same command again); everything goes under the workdir:
``<model>/<arm>/`` (ordinary runs), ``results.json``, ``results.md`` and
``figures/``.
"""

from __future__ import annotations

import os
import time

from absl import flags, logging
import matplotlib
import pandas as pd
import scipy.stats

from jaxsparse import analysis, data, errors, train
from jaxsparse.config import load_config_file, validate_config

import common

matplotlib.use("Agg")

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
LEVELS = (0.8, 0.9, 0.95)
ARMS = ("dense", "random", "one_shot_mp", "gradual_mp", "cyclic_gap", "parallel_gap")
BASELINES = ("random", "one_shot_mp", "gradual_mp")
GAP_ARMS = ("cyclic_gap", "parallel_gap")
NUM_PARTITIONS = 3

#: Per model: the recipe's config file and the sizes of the full mode, CPU-sized: a
#: ResNet-20 step of 3 members at batch 64 takes about 2 s here, so its arms train on 2,000
#: examples for 3 epochs at 90 % only and test on 2,000 (docs/gap_claim.md; all three
#: levels take about 75 min here: set ``levels=LEVELS`` on a faster machine).
MODELS = {
    "cnn_s": dict(config="magnitude.py", epochs=6, train_examples=12_000, levels=LEVELS,
                  seeds=3, test_examples=None),
    "resnet20": dict(config="filter.py", epochs=3, train_examples=2_000, levels=(0.9,),
                     seeds=3, test_examples=2_000),
}
QUICK = dict(epochs=2, train_examples=1_000, levels=(0.9,), seeds=2, test_examples=2_000)


def base_config(model: str, epochs: int, train_examples: int, levels, seeds: int):
  """The recipe every arm of ``model`` shares (that of its method config in configs/)."""
  config = load_config_file(os.path.join(CONFIGS, MODELS[model]["config"]))
  config.data.train_examples = train_examples
  config.training.num_epochs = epochs
  config.training.evaluate_validation = False
  config.training.curve_test_examples = 1_000
  config.population.grid.sparsity = tuple(levels)
  config.population.num_seeds = seeds
  return config


def arm_config(base, arm: str):
  """``base`` changed into ``arm`` (see the module doc); phases scale with the epochs."""
  config = base.copy_and_resolve_references()
  epochs = config.training.num_epochs
  end = max(3 * epochs // 4, 1)
  steps_per_epoch = config.data.train_examples // config.training.batch_size
  settings = config.sparsify
  if arm == "dense":
    settings.method = "none"
    config.population.grid.sparsity = (0.0,)
  elif arm == "random":
    settings.method, settings.start_epoch = "random", 0
  elif arm == "one_shot_mp":
    settings.method, settings.schedule, settings.start_epoch = "magnitude", "one_shot", epochs // 2
  elif arm == "gradual_mp":
    settings.method, settings.schedule = "magnitude", "gradual"
    settings.start_epoch, settings.end_epoch = epochs // 4, end
    settings.update_every = max(steps_per_epoch // 4, 1)
  elif arm in GAP_ARMS:
    settings.method = "gap" if arm == "cyclic_gap" else "parallel_gap"
    settings.start_epoch, settings.end_epoch = 0, end
    settings.num_partitions = NUM_PARTITIONS
    settings.num_rounds = 2 * NUM_PARTITIONS if arm == "cyclic_gap" else end
  else:
    raise ValueError(f"arm {arm!r} is unknown; use one of {ARMS}")
  settings.scope = "layerwise"
  return config


def run_model(model: str, workdir: str, quick_mode: bool, levels=()) -> pd.DataFrame:
  """Trains (or resumes) every arm of ``model``; one row per member. ``levels`` replaces the
  mode's target sparsities when given (e.g. the levels a slower machine left out)."""
  sizes = QUICK if quick_mode else MODELS[model]
  if levels:
    sizes = dict(sizes, levels=tuple(levels))
  base = base_config(model, sizes["epochs"], sizes["train_examples"], sizes["levels"],
                     sizes["seeds"])
  configs = {arm: arm_config(base, arm) for arm in ARMS}
  for config in configs.values():
    validate_config(config)  # every arm before the first trains
  dataset = data.dataset_from_config(base)
  if sizes["test_examples"]:
    dataset = dataset._replace(test_images=dataset.test_images[:sizes["test_examples"]],
                               test_labels=dataset.test_labels[:sizes["test_examples"]])
  rows = []
  for arm, config in configs.items():
    print(f"== {model}: {arm}", flush=True)
    members = train.train_and_evaluate(config, os.path.join(workdir, model, arm), dataset)
    if "copy" in members:
      members = members[members["copy"] == 0]  # the copies of a member end identical
    rows.append(pd.DataFrame({
        "model": model, "arm": arm, "target": members["sparsity"],
        "seed": members["seed"], "test_accuracy": members["test_accuracy"],
        "achieved_sparsity": members["achieved_sparsity"], "diverged": members["diverged"]}))
  return pd.concat(rows, ignore_index=True)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
  """One row per (model, arm, target): mean test accuracy, its t interval, sparsity."""
  return analysis.group_means(results, ["model", "arm", "target"], also=("achieved_sparsity",))


def comparisons(results: pd.DataFrame) -> pd.DataFrame:
  """GaP minus each baseline per model and level: the difference of mean test accuracy,
  Welch's t 95 % interval, and what it resolves."""
  rows = []
  for (model, target), group in results[results["target"] > 0].groupby(["model", "target"]):
    accuracy = {arm: rows_["test_accuracy"].to_numpy() for arm, rows_ in group.groupby("arm")}
    for gap_arm in GAP_ARMS:
      for baseline in BASELINES:
        a, b = accuracy[gap_arm], accuracy[baseline]
        interval = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        verdict = ("GaP ahead" if interval.low > 0 else "GaP behind" if interval.high < 0
                   else "not resolved")
        rows.append({"model": model, "target": target, "gap": gap_arm, "baseline": baseline,
                     "difference": a.mean() - b.mean(), "low": interval.low,
                     "high": interval.high, "verdict": verdict})
  return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, differences: pd.DataFrame) -> str:
  """The summary and the comparisons as Markdown tables."""
  summary_table = pd.DataFrame({
      "model": summary["model"], "arm": summary["arm"],
      "target": summary["target"].map("{:.0%}".format),
      "test accuracy (95 % t interval)": common.interval_column(summary, "test_accuracy"),
      "achieved sparsity": summary["achieved_sparsity"], "seeds": summary["seeds"]})
  differences_table = pd.DataFrame({
      "model": differences["model"], "target": differences["target"].map("{:.0%}".format),
      "GaP": differences["gap"], "baseline": differences["baseline"],
      "difference (Welch 95 % interval)": common.interval_column(differences, "difference",
                                                                 signed=True),
      "verdict": differences["verdict"]})
  return "\n\n".join(common.markdown_table(table, digits=4)
                      for table in (summary_table, differences_table))


def plot(summary: pd.DataFrame, results: pd.DataFrame, directory: str) -> None:
  """Test accuracy against target sparsity, a panel per model, a line per arm with its
  interval and its seeds, the dense model as a band; PNG and PDF. Accuracy axes span
  [0, 1]: a t interval of 3 seeds can reach past them."""
  import matplotlib.pyplot as plt
  os.makedirs(directory, exist_ok=True)
  models = list(dict.fromkeys(summary["model"]))
  figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False,
                              constrained_layout=True)
  for axis, model in zip(axes[0], models):
    rows = summary[summary["model"] == model]
    for arm, arm_rows in rows.groupby("arm", sort=False):
      if arm == "dense":
        axis.axhspan(arm_rows["low"].iloc[0], arm_rows["high"].iloc[0], color="0.85",
                     label="dense (95 % t interval)" if model == models[0] else None)
        continue
      line = axis.errorbar(arm_rows["target"] * 100, arm_rows["test_accuracy"],
                           yerr=[arm_rows["test_accuracy"] - arm_rows["low"],
                                 arm_rows["high"] - arm_rows["test_accuracy"]],
                           marker="o", capsize=3, label=arm if model == models[0] else None)
      seeds = results[(results["model"] == model) & (results["arm"] == arm)]
      axis.scatter(seeds["target"] * 100, seeds["test_accuracy"], s=9, alpha=0.5,
                   color=line[0].get_color())
    axis.set_ylim(0, 1)
    axis.set_title(model)
    axis.set_xlabel("target sparsity (%)")
    axis.set_ylabel("test accuracy")
    axis.grid(alpha=0.3)
  # One panel is too narrow for the legend in a row of 4 (a --quick run, one model).
  figure.legend(loc="outside lower center", ncol=4 if len(models) > 1 else 2, fontsize=8,
                frameon=False,
                title="mean and 95 % t interval over 3 seeds; small dots: seeds")
  for extension in ("png", "pdf"):
    figure.savefig(os.path.join(directory, f"gap_claim.{extension}"), dpi=200)
  plt.close(figure)


def run(workdir: str, models: list[str], quick_mode: bool = False, levels=()) -> pd.DataFrame:
  """Trains every arm of every model (resuming finished runs) at ``levels`` (default: each
  model's own) and writes the tables, the figure and results.json under ``workdir``; returns
  the comparisons."""
  logging.set_verbosity(logging.WARNING)  # Orbax reports every save and restore at INFO
  started = time.time()
  results = pd.concat([run_model(model, workdir, quick_mode, levels)
                       for model in (models[:1] if quick_mode else models)], ignore_index=True)
  summary, differences = summarise(results), comparisons(results)
  table = markdown(summary, differences)
  plot(summary, results, os.path.join(workdir, "figures"))
  common.write_results(workdir, table, started, members=results, summary=summary,
                       comparisons=differences, quick=quick_mode)
  return differences


if __name__ == "__main__":
  chosen_levels = flags.DEFINE_list(
      "levels", [], "Target sparsities, e.g. 0.8,0.95 (default: each model's own, MODELS).")

  def run_at_chosen_levels(workdir, models, quick_mode):
    try:
      levels = tuple(float(level) for level in chosen_levels.value)
    except ValueError:
      raise errors.UserError(f"--levels={','.join(chosen_levels.value)} is not a list of "
                           "numbers; use e.g. --levels=0.8,0.95") from None
    if any(not 0 < level < 1 for level in levels):
      raise errors.UserError(f"--levels={','.join(chosen_levels.value)}: every level is a "
                           "sparsity between 0 and 1 (exclusive)")
    return run(workdir, models, quick_mode, levels)

  common.model_experiment_main(run_at_chosen_levels, tuple(MODELS))
