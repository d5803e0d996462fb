"""ThinResNet against L1 filter pruning at equal budgets (Tessier et al. 2023).

Two arms, one recipe (``--config``, default configs/filter.py) and the same
number of epochs:

- pruned: one population of full-width ResNet-20s, trained for
  ``sparsify.start_epoch`` epochs, pruned by filter L1 norm at each channel
  sparsity in the config's grid (0 is the unpruned reference), fine-tuned for
  the remaining epochs (the pre-training counts against the budget), then
  shrunk physically;
- thin: for each pruning rate, ResNet-20s scaled in width and trained from
  scratch, at the width (a multiple of 1/16) whose parameter count is closest
  to the shrunk network's.

Every point has ``population.num_seeds`` members; the results are test
accuracy (mean and Student's t 95 % interval over seeds) against parameters
and multiply-adds::

  python experiments/structured_vs_thin.py --workdir=runs/thin --quick   # about 5 minutes
  python experiments/structured_vs_thin.py --workdir=runs/thin           # about an hour, 2 cores

``--quick`` trains 2 seeds of one rate (0.5) for 2 epochs on 1,000 examples
and tests on 2,000: it checks the pipeline, not the claim. ``--config.*``
overrides apply to both arms. Runs resume (the same command again), and
everything goes under the workdir: ``pruned/``, ``thin_<width>/``,
``results.json``, ``results.md`` and ``figures/``.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags, logging
import jax
import matplotlib
import numpy as np
import pandas as pd
from ml_collections import config_flags

from jaxsparse import analysis, build, checkpoints, data, models, structured, train
from jaxsparse import masks as masks_lib
from jaxsparse.config import validate_config

import common

matplotlib.use("Agg")

#: The thin arm's candidate widths.
WIDTHS = tuple(k / 16 for k in range(2, 17))
QUICK_TEST_EXAMPLES = 2_000


def quick(config):
  """The config of ``--quick``: 2 seeds of one rate, 2 epochs on 1,000 examples."""
  config.population.num_seeds = 2
  config.population.grid.sparsity = (0.0, 0.5)
  config.data.train_examples = 1_000
  config.training.num_epochs = 2
  config.training.warmup_epochs = 0.5
  config.sparsify.start_epoch = 1
  return config


def _model_of_ones(config, input_shape, width: float):
  """The config's model at ``width`` and variables of ones: counting needs shapes only
  (with equal weights the L1 norms tie, and ties keep the first channels), and no
  initialisation is compiled per width."""
  model = models.get_model(config.model.name, input_shape, 10, width=width)
  shapes = jax.eval_shape(lambda key: models.init_variables(model, key), jax.random.PRNGKey(0))
  return model, jax.tree.map(lambda leaf: np.ones(leaf.shape, leaf.dtype), shapes)


def budget(config, input_shape, width: float, rate: float) -> tuple[int, int]:
  """Parameters and multiply-adds per image of the config's model at ``width``, with
  ``rate`` of the inner channels of every block removed."""
  model, variables = _model_of_ones(config, input_shape, width)
  params = variables["params"]
  masks = structured.channel_masks(params, masks_lib.dense_masks(params), rate)
  small, params, batch_stats = structured.shrink(model, params, variables["batch_stats"], masks)
  return (models.count_parameters(params),
          structured.count_multiply_adds(small, {"params": params, "batch_stats": batch_stats}))


def matched_widths(config, input_shape, rates) -> dict[float, float]:
  """For each pruning rate, the candidate width whose parameter count is closest."""
  thin = {width: models.count_parameters(_model_of_ones(config, input_shape, width)[1]["params"])
          for width in WIDTHS}
  matched = {}
  for rate in rates:
    target = budget(config, input_shape, 1.0, rate)[0]
    matched[rate] = min(thin, key=lambda width: abs(thin[width] - target))
  return matched


def member_rows(workdir: str, arm: str, width: float) -> list[dict]:
  """Test accuracy, parameters and multiply-adds of every member of a finished run."""
  state, table = checkpoints.load_population(workdir)
  model = build.load_setup(workdir).model
  members = pd.read_csv(os.path.join(workdir, "members.csv"))
  rows = []
  for index in range(len(table)):
    member = jax.tree.map(lambda leaf: leaf[index], state)
    small, params, batch_stats = structured.shrink(model, member.params, member.batch_stats,
                                                   member.masks)
    rows.append({
        "arm": arm, "width": width, "channel_sparsity": float(table["sparsity"][index]),
        "seed": int(table["seed"][index]),
        "test_accuracy": float(members["test_accuracy"][index]),
        "diverged": bool(members["diverged"][index]),
        "parameters": models.count_parameters(params),
        "multiply_adds": structured.count_multiply_adds(
            small, {"params": params, "batch_stats": batch_stats}),
    })
  return rows


def summarise(results: pd.DataFrame) -> pd.DataFrame:
  """One row per (arm, width, rate): mean test accuracy, its t interval, the budget."""
  return analysis.group_means(results, ["arm", "width", "channel_sparsity"],
                              also=("parameters", "multiply_adds"))


def markdown(summary: pd.DataFrame) -> str:
  """The summary as a Markdown table."""
  table = pd.DataFrame({
      "arm": summary["arm"], "width": summary["width"].map("{:g}".format),
      "channel sparsity": summary["channel_sparsity"].map("{:g}".format),
      "test accuracy (95 % t interval)": common.interval_column(summary, "test_accuracy"),
      "seeds": summary["seeds"], "parameters": summary["parameters"].map("{:,.0f}".format),
      "multiply-adds": summary["multiply_adds"].map("{:,.0f}".format)})
  return common.markdown_table(table)


def plot(summary: pd.DataFrame, results: pd.DataFrame, directory: str) -> None:
  """Test accuracy against parameters and against multiply-adds, PNG and PDF. The unpruned
  network (channel sparsity 0) is both arms' full-size point."""
  import matplotlib.pyplot as plt
  from matplotlib.ticker import FuncFormatter
  os.makedirs(directory, exist_ok=True)
  reference = summary[summary["channel_sparsity"] == 0].head(1)
  arms = {arm: pd.concat([reference, rows]).drop_duplicates(["arm", "width", "channel_sparsity"])
          for arm, rows in summary.groupby("arm", sort=False)}
  for budget_column, label in (("parameters", "parameters"),
                               ("multiply_adds", "multiply-adds per image")):
    figure, axes = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
    for (arm, rows), marker in zip(arms.items(), ("o", "s")):
      members = results[results["arm"] == arm]
      line = axes.errorbar(rows[budget_column], rows["test_accuracy"],
                           yerr=[rows["test_accuracy"] - rows["low"],
                                 rows["high"] - rows["test_accuracy"]],
                           marker=marker, capsize=3, label=f"{arm}: mean, 95 % t interval")
      axes.scatter(members[budget_column], members["test_accuracy"], s=10, alpha=0.4,
                   color=line[0].get_color(), label=f"{arm}: seeds")
    axes.xaxis.set_major_formatter(FuncFormatter(
        lambda value, _: f"{value / 1e6:g}M" if value >= 1e6 else f"{value / 1e3:g}k"))
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy")
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    for extension in ("png", "pdf"):
      figure.savefig(os.path.join(directory, f"accuracy_vs_{budget_column}.{extension}"),
                     dpi=200)
    plt.close(figure)


def run_arms(config, workdir: str, dataset) -> pd.DataFrame:
  """Trains (or resumes, or loads) both arms; one row per member."""
  rates = [rate for rate in config.population.grid.sparsity if rate > 0]
  widths = matched_widths(config, dataset.input_shape, rates)
  print("Thin widths matched to the pruning rates by parameters: " +
        ", ".join(f"{rate:g} -> {width:g}" for rate, width in widths.items()), flush=True)
  thin_configs = {width: thin_config(config, width)
                  for width in sorted(set(widths.values()), reverse=True)}
  for thin in thin_configs.values():
    validate_config(thin)  # before the pruned arm trains (a model without widths)
  pruned_dir = os.path.join(workdir, "pruned")
  train.train_and_evaluate(config, pruned_dir, dataset)
  rows = member_rows(pruned_dir, "L1 filter pruning", 1.0)
  for width, thin in thin_configs.items():
    thin_dir = os.path.join(workdir, f"thin_{width:g}")
    train.train_and_evaluate(thin, thin_dir, dataset)
    rows += member_rows(thin_dir, "ThinResNet", width)
  return pd.DataFrame(rows)


def thin_config(config, width: float):
  """The thin arm's config at ``width``: the same recipe, no pruning, the same seeds."""
  thin = config.copy_and_resolve_references()
  thin.model.width = width
  thin.sparsify.method = "none"
  thin.population.grid.sparsity = (0.0,)
  return thin


def run(config, workdir, quick_mode=False):
  """Trains both arms (resuming finished runs) and writes the table, figures and
  results.json under ``workdir``."""
  logging.set_verbosity(logging.WARNING)  # Orbax reports every save and restore at INFO
  started = time.time()
  config = quick(config) if quick_mode else config
  validate_config(config)
  dataset = data.dataset_from_config(config)
  if quick_mode:
    dataset = dataset._replace(test_images=dataset.test_images[:QUICK_TEST_EXAMPLES],
                               test_labels=dataset.test_labels[:QUICK_TEST_EXAMPLES])
  results = run_arms(config, workdir, dataset)
  summary = summarise(results)
  table = markdown(summary)
  plot(summary, results, os.path.join(workdir, "figures"))
  with open(os.path.join(workdir, "results.json"), "w") as file:
    json.dump({"members": results.to_dict("records"), "summary": summary.to_dict("records"),
               "config": config.to_dict(), "quick": quick_mode,
               "seconds": time.time() - started}, file, indent=1, default=str)
  with open(os.path.join(workdir, "results.md"), "w") as file:
    file.write(table + "\n")
  print(table)
  print(f"Done in {(time.time() - started) / 60:.1f} min; results, figures and both arms' runs "
        f"are under {workdir}.", flush=True)


if __name__ == "__main__":
  # Defined only when run as a script: jaxsparse.main defines a --config flag too, and
  # tests import both.
  config = config_flags.DEFINE_config_file(
      "config", os.path.join(os.path.dirname(__file__), "..", "configs", "filter.py"),
      "The pruned arm's config; the thin arm uses the same recipe.")
  workdir = flags.DEFINE_string("workdir", None, "Where both arms and the results go.")
  quick_mode = flags.DEFINE_bool("quick", False, "A pipeline check in about 5 minutes.")
  flags.mark_flags_as_required(["workdir"])
  common.run(lambda: run(config.value, workdir.value, quick_mode.value))
