"""Twin protocols compared on one trained zoo: magnitude one-shot vs gradual, and VD's levels.

For the choices docs/twins.md documents: which magnitude-pruning schedule the
study uses by default (one-shot at the start of fine-tuning, or gradual over
it), and which KL weights make variational dropout's twins span the sparsities
the paper's claims are about. Every variant is one twin population trained
from the zoo's checkpoint with the study config's fine-tuning budget, exactly
as the study trains it (:func:`jaxsparse.twins.twin_config`); the script prints
and writes (``--out``) the mean test accuracy per fine-tuning epoch and the
achieved sparsity per level.

  python experiments/twin_protocols.py --config=configs/default.py \
      --zoo=runs/default/original --workdir=/tmp/protocols --out=protocols.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxsparse import checkpoints, cpu_cores, data, errors, metrics, train, twins  # noqa: E402
from jaxsparse.config import load_config_file  # noqa: E402


def variants(config, kl_weights, scopes, methods):
  """(name, TwinRun, config changes) of every protocol to compare, of ``methods``."""
  for scope in scopes if "magnitude" in methods else ():
    for schedule in ("one_shot", "gradual"):
      run = twins.TwinRun("magnitude", scope, tuple(config.twins.sparsities), "")
      yield f"magnitude_{scope}_{schedule}", run, {"schedule": schedule}
  if "variational_dropout" in methods:
    yield "variational_dropout", twins.TwinRun("variational_dropout", None, tuple(kl_weights), ""), {}


@errors.exit_on_user_error
def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="configs/default.py")
  parser.add_argument("--zoo", required=True, help="run directory of the trained zoo")
  parser.add_argument("--epoch", type=int, default=None, help="zoo checkpoint (default: last)")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--kl_weights", default="", help="comma-separated (default: the config's)")
  parser.add_argument("--scopes", default="layerwise")
  parser.add_argument("--methods", default="magnitude,variational_dropout",
                      help="comma-separated: which of the two to compare")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  config = load_config_file(args.config)
  config.logging.progress = "none"
  config.logging.tensorboard = False
  kl_weights = [float(v) for v in args.kl_weights.split(",")] if args.kl_weights else \
      list(config.twins.kl_weights)
  state, table = checkpoints.load_population(args.zoo, args.epoch)
  originals = (state.params, state.batch_stats)
  dataset = data.dataset_from_config(config)
  subset = twins.training_subset(dataset, config.twins.train_examples)
  results = {}
  for name, run, changes in variants(config, kl_weights, args.scopes.split(","),
                                         args.methods.split(",")):
    run = run._replace(workdir=os.path.join(args.workdir, name))
    twin = twins.twin_config(config, run)
    twin.sparsify.update(changes)
    train.train_and_evaluate(twin, run.workdir, subset,
                             origin=train.Origin(twins.tile_members(originals, len(run.levels))))
    per_epoch = twins.epoch_test_accuracy(run.workdir)
    sparsity = metrics.read_predictions(run.workdir)["sparsity"]
    results[name] = []
    for index, level in enumerate(run.levels):
      members = run.level_members(len(table), index)
      results[name].append({"level": level, "sparsity": float(sparsity[members].mean()),
                            "accuracy_per_epoch": per_epoch[:, members].mean(1).tolist()})
      print(f"{name:<32} level {level:<8g} sparsity {sparsity[members].mean():.3f} "
            f"accuracy per epoch {np.round(per_epoch[:, members].mean(1), 4).tolist()}",
            flush=True)
  if args.out:
    with open(args.out, "w") as file:
      json.dump(results, file, indent=1)


if __name__ == "__main__":
  cpu_cores.split_cpu_by_core()  # before JAX starts
  main()
