"""Which weights could variational dropout prune? The clip of log alpha, per VD twin.

Log alpha is clipped to [-8, 8] for convolutions and [-10, 10] for dense layers
(the public model-zoo code's bounds), and the clip passes no gradient. A twin
starts with log sigma^2 = -10, so every convolution weight of its original with
|theta| > 1/e starts at the lower clip, where the KL term cannot move it
(``variational_dropout.at_lower_clip``); only the data term, by shrinking
theta, can bring it back. With the zoo's U(0, 1) initialisation that is most
of the convolution weights. Per VD twin at one KL weight of a finished twins
study (e.g. ``make run``'s), this prints the achieved sparsity, the sparsity it
would reach if it pruned every weight not at the clip at the start and none of
those, and the share of the clipped weights it kept::

  python experiments/vd_clip.py --study=runs/default --kl_weight=100000

``--method=variational_dropout_straight_through`` reads the twins whose clip
passes gradients instead, for which the bound is no limit.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from jaxsparse import checkpoints, masks, twins, workdir as workdir_lib
from jaxsparse.sparsify import variational_dropout as vd


def clip_table(study: str, kl_weight: float,
               method: str = "variational_dropout") -> pd.DataFrame:
  """One row per VD twin at ``kl_weight``: its hyperparameters, achieved sparsity,
  ``bound`` (1 - the share of weights at the lower clip at its start) and
  ``clipped_kept`` (the share of those it still keeps)."""
  state, table = twins.load_twins(study, method, kl_weight)
  original, _ = checkpoints.load_population(workdir_lib.study_original_dir(study))
  rows = []
  for twin, member in enumerate(table["original_member"]):
    start = jax.tree.map(lambda leaf: leaf[member], original.params)
    # The twin's start: the member's weights with VD's initial log sigma^2.
    at_start = vd.at_lower_clip(start, vd.initial_log_sigma2(start))
    kernels = [name for name, layer in start.items() if "kernel" in layer]
    clipped = {name: np.asarray(at_start[name]["kernel"]) for name in kernels}
    kept = {name: np.asarray(state.sparsity_state.masks[name]["kernel"][twin])
            for name in kernels}
    weights = sum(mask.size for mask in kept.values())
    at_clip = sum(float(np.sum(clipped[name])) for name in kernels)
    kept_at_clip = sum(float(np.sum(clipped[name] * kept[name])) for name in kernels)
    rows.append({"activation": table["activation"][twin],
                 "initializer": table["initializer"][twin],
                 "achieved_sparsity": float(masks.sparsity(kept)),
                 "bound": 1 - at_clip / weights,
                 "clipped_kept": kept_at_clip / max(at_clip, 1)})
  return pd.DataFrame(rows)


def main(study: str, kl_weight: float, method: str) -> None:
  """Prints the clip table of the study's VD twins at ``kl_weight``."""
  rows = clip_table(study, kl_weight, method)
  with pd.option_context("display.float_format", "{:.3f}".format):
    print(rows.to_string(index=False))
    print(rows.groupby("initializer")[["achieved_sparsity", "bound", "clipped_kept"]].mean())
  print(f"correlation of achieved sparsity and bound over twins: "
        f"{np.corrcoef(rows['achieved_sparsity'], rows['bound'])[0, 1]:.3f}")


if __name__ == "__main__":
  import common
  from absl import flags
  study = flags.DEFINE_string("study", None, "a finished twins study's workdir")
  kl_weight = flags.DEFINE_float("kl_weight", None, "the VD level to read")
  variant = flags.DEFINE_string("method", "variational_dropout", "variational_dropout (the "
                                "public clip) or variational_dropout_straight_through")
  flags.mark_flags_as_required(["study", "kl_weight"])
  common.run(lambda: main(study.value, kl_weight.value, variant.value))
