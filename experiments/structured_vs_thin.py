"""Structured L1 filter pruning versus width-scaled networks (ThinResNet), on equal terms.

Trains (or loads, when its workdir already holds it) one population of
ResNet-20s filter-pruned at several channel sparsities (configs/filter.py)
and, with the same recipe and number of epochs, width-scaled ResNet-20s from
scratch; then shrinks every pruned member physically and reports test
accuracy against parameters and multiply-adds for both::

  python experiments/structured_vs_thin.py --workdir=runs/structured
  python experiments/structured_vs_thin.py --workdir=/tmp/s --widths=0.5 \\
      --config.training.num_epochs=1 --config.sparsify.start_epoch=0

``--config.*`` overrides apply to both arms (the width arm replaces the
method by 'none' and the channel sparsities by the width). Writes
``results.json`` and ``results.md`` under the workdir.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging
import jax

import pandas as pd
from ml_collections import config_flags

from jaxsparse import checkpoints, experiment, masks, models, structured, train
from jaxsparse.config import validate_config

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "..", "configs", "filter.py"),
    "The filter-pruning config; the width arm uses the same recipe.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where both arms and the results go.")
_WIDTHS = flags.DEFINE_list("widths", ["0.75", "0.5", "0.25"], "Width multipliers of the thin arm.")
flags.mark_flags_as_required(["workdir"])


def _member_rows(workdir: str, arm: str, width: float) -> list[dict]:
  """Test accuracy, parameters and multiply-adds of every member of a finished run."""
  state, table = checkpoints.load_population(workdir)
  model = experiment.from_metadata(checkpoints.read_metadata(workdir)).model
  members = pd.read_csv(os.path.join(workdir, "members.csv"))
  rows = []
  for index in range(len(table)):
    member = jax.tree.map(lambda leaf: leaf[index], state)
    small_model, params, batch_stats = structured.shrink(model, member.params,
                                                         member.batch_stats, member.masks)
    rows.append({
        "arm": arm, "width": width, "channel_sparsity": float(table["sparsity"][index]),
        "seed": int(table["seed"][index]),
        "test_accuracy": float(members["test_accuracy"][index]),
        "parameters": models.count_parameters(params),
        "multiply_adds": structured.count_multiply_adds(
            small_model, {"params": params, "batch_stats": batch_stats}),
        "weight_sparsity": float(masks.sparsity(member.masks)),
    })
  return rows


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax reports every save and restore at INFO
  config = _CONFIG.value
  validate_config(config)
  rows = []
  filter_dir = os.path.join(_WORKDIR.value, "filter")
  train.train_and_evaluate(config, filter_dir)
  rows += _member_rows(filter_dir, "L1 filter pruning", 1.0)
  for width in map(float, _WIDTHS.value):
    thin = config.copy_and_resolve_references()
    thin.model.width = width
    thin.sparsify.method = "none"
    thin.population.grid.sparsity = (0.0,)
    thin_dir = os.path.join(_WORKDIR.value, f"thin_{width:g}")
    train.train_and_evaluate(thin, thin_dir)
    rows += _member_rows(thin_dir, "ThinResNet", width)

  results = pd.DataFrame(rows)
  summary = results.groupby(["arm", "width", "channel_sparsity"], sort=False).agg(
      test_accuracy=("test_accuracy", "mean"), parameters=("parameters", "mean"),
      multiply_adds=("multiply_adds", "mean"), members=("seed", "count")).reset_index()
  lines = ["| arm | width | channel sparsity | test accuracy | parameters | multiply-adds |",
           "|---|---|---|---|---|---|"]
  for row in summary.itertuples():
    lines.append(f"| {row.arm} | {row.width:g} | {row.channel_sparsity:g} | "
                 f"{row.test_accuracy:.4f} | {row.parameters:,.0f} | {row.multiply_adds:,.0f} |")
  table = "\n".join(lines)
  with open(os.path.join(_WORKDIR.value, "results.json"), "w") as file:
    json.dump({"members": rows, "config": config.to_dict()}, file, indent=1, default=str)
  with open(os.path.join(_WORKDIR.value, "results.md"), "w") as file:
    file.write(table + "\n")
  print(table)



if __name__ == "__main__":
  app.run(main)
