"""The table of sparsification methods in docs/history/results-2026-11.md, from finished runs of the configs in configs/.

Reads the workdirs of runs such as ``python -m jaxsparse.main
--config=configs/gap.py --workdir=runs/methods/gap`` and prints, per run and
target sparsity, the population's test accuracy (mean, standard deviation,
min, max), the achieved weight sparsity, and the sparsity of every layer::

  python experiments/methods_table.py --workdirs=runs/methods/magnitude,runs/methods/gap,...

Runs whose sparsity is an outcome (variational dropout) are grouped by member
instead of by target.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pandas as pd

from jaxsparse import checkpoints, masks


def run_rows(workdir: str) -> pd.DataFrame:
  """One row per member: its target, test accuracy, achieved and per-layer sparsity."""
  members = pd.read_csv(os.path.join(workdir, "members.csv"))
  state, _ = checkpoints.load_population(workdir)
  per_layer = {name: np.asarray(values)
               for name, values in jax.vmap(masks.layer_sparsity)(state.masks).items()}
  rows = members[["sparsity", "test_accuracy", "achieved_sparsity"]].copy()
  for name, values in per_layer.items():
    rows[name.replace("/kernel", "")] = values
  rows.insert(0, "run", os.path.basename(os.path.normpath(workdir)))
  return rows


def markdown(workdirs: list[str]) -> str:
  """The table, one line per (run, target sparsity) and per member for outcome runs."""
  frames = [run_rows(workdir) for workdir in workdirs]
  layers = [column for column in frames[0].columns if column not in (
      "run", "sparsity", "test_accuracy", "achieved_sparsity")]
  lines = ["| run | target | test accuracy mean ± std (min-max) | achieved sparsity | "
           + " | ".join(layers) + " |", "|---" * (4 + len(layers)) + "|"]
  for frame in frames:
    by_member = (frame["sparsity"] == 0).all()
    groups = ([(str(i), frame.iloc[[i]]) for i in range(len(frame))] if by_member
              else [(f"{target:.0%}", group) for target, group in frame.groupby("sparsity")])
    for label, group in groups:
      accuracy = group["test_accuracy"]
      layer_cells = " | ".join(f"{group[layer].mean():.3f}" for layer in layers)
      lines.append(
          f"| {group['run'].iloc[0]} | {'member ' + label if by_member else label} | "
          f"{accuracy.mean():.4f} ± {accuracy.std(ddof=0):.4f} ({accuracy.min():.4f}-"
          f"{accuracy.max():.4f}) | {group['achieved_sparsity'].mean():.4f} | {layer_cells} |")
  return "\n".join(lines)


if __name__ == "__main__":
  import common
  from absl import flags
  workdirs = flags.DEFINE_list("workdirs", None, "the runs' workdirs, comma-separated")
  flags.mark_flags_as_required(["workdirs"])
  common.run(lambda: print(markdown(workdirs.value)))
