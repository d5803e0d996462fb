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

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxsparse import checkpoints, data, metrics, train, twins  # noqa: E402
from jaxsparse.config import load_config_file  # noqa: E402


def variants(config, kl_weights, scopes, methods):
  """(name, TwinRun, config changes) of every protocol to compare, of ``methods``."""
  for scope in scopes if "magnitude" in methods else ():
    for schedule in ("one_shot", "gradual"):
      run = twins.TwinRun("magnitude", scope, tuple(config.twins.sparsities), "")
      yield f"magnitude_{scope}_{schedule}", run, {"schedule": schedule}
  if "variational_dropout" in methods:
    yield "variational_dropout", twins.TwinRun("variational_dropout", None, tuple(kl_weights), ""), {}


def main(config_path: str, zoo: str, epoch: int | None, workdir: str, kl_weights: list[float],
         scopes: list[str], methods: list[str], out: str) -> None:
  """Trains every variant from the zoo and prints (and writes to ``out``) its curves."""
  config = load_config_file(config_path)
  config.logging.progress = "none"
  config.logging.tensorboard = False
  kl_weights = kl_weights or list(config.twins.kl_weights)
  state, table = checkpoints.load_population(zoo, epoch)
  originals = (state.params, state.batch_stats)
  dataset = data.dataset_from_config(config)
  subset = twins.training_subset(dataset, config.twins.train_examples)
  results = {}
  for name, run, changes in variants(config, kl_weights, scopes, methods):
    run = run._replace(workdir=os.path.join(workdir, name))
    twin = twins.twin_config(config, run)
    twin.sparsify.update(changes)
    train.train_and_evaluate(twin, run.workdir, subset,
                             origin=train.Origin(twins.tile_members(originals, len(run.levels))))
    per_epoch = twins.epoch_test_accuracy(run.workdir).to_numpy()
    sparsity = metrics.read_predictions(run.workdir)["sparsity"]
    results[name] = []
    for index, level in enumerate(run.levels):
      members = run.level_members(len(table), index)
      results[name].append({"level": level, "sparsity": float(sparsity[members].mean()),
                            "accuracy_per_epoch": per_epoch[:, members].mean(1).tolist()})
      print(f"{name:<32} level {level:<8g} sparsity {sparsity[members].mean():.3f} "
            f"accuracy per epoch {np.round(per_epoch[:, members].mean(1), 4).tolist()}",
            flush=True)
  if out:
    with open(out, "w") as file:
      json.dump(results, file, indent=1)


if __name__ == "__main__":
  import common
  from absl import flags
  config = flags.DEFINE_string("config", "configs/default.py", "the study config")
  zoo = flags.DEFINE_string("zoo", None, "run directory of the trained zoo")
  epoch = flags.DEFINE_integer("epoch", None, "zoo checkpoint (default: last)")
  workdir = flags.DEFINE_string("workdir", None, "where the variants' runs go")
  kl_weights = flags.DEFINE_list("kl_weights", [], "comma-separated (default: the config's)")
  scopes = flags.DEFINE_list("scopes", ["layerwise"], "magnitude's scopes")
  methods = flags.DEFINE_list("methods", ["magnitude", "variational_dropout"],
                              "which of the two to compare")
  out = flags.DEFINE_string("out", "", "write the curves as JSON here")
  flags.mark_flags_as_required(["zoo", "workdir"])
  common.run(lambda: main(config.value, zoo.value, epoch.value, workdir.value,
                          [float(value) for value in kl_weights.value], scopes.value,
                          methods.value, out.value))
