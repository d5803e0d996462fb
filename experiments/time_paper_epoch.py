"""Times the first steps of the paper-scale study and projects its run time on this machine.

The seed study's zoo (configs/twins_paper.py: 2,560 CNN-s members, 50 epochs
at batch 10, plus 25-epoch magnitude and variational-dropout twins) is far
too large to run in CI or on a laptop, so this measures what one optimizer
step of the whole population costs, for the dense zoo, a magnitude twin
population and a variational-dropout twin population, after compilation,
over ``--steps`` steps of the real first epoch, and projects (linearly in the
members: ``--members`` times a sample of the population)::

  python experiments/time_paper_epoch.py --steps=10 [--members=2560] [--out=FILE]

Prints a table (seconds per step, member-steps per second, seconds per
member-epoch, projected hours) and writes it as JSON with ``--out``.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags
import jax
import jax.numpy as jnp

from jaxsparse import build, data, engine, twins
from jaxsparse.config import load_config_file

FLAGS = flags.FLAGS


def _time_population(run, images, labels, steps):
  """Seconds per step of ``run``'s population (members split over its mesh, as a run
  trains) over ``steps`` steps, timed on a second call (the first compiles)."""
  state = engine.init_population(run.program, run.hyper)
  batch_size = run.program.batch_size
  subset = images[:steps * batch_size], labels[:steps * batch_size]
  train = lambda state: engine.train_epoch(run.program, state, run.hyper, *subset)
  state, metrics = train(state)
  jax.block_until_ready(metrics)
  started = time.perf_counter()
  state, metrics = train(state)
  jax.block_until_ready(metrics)
  return (time.perf_counter() - started) / steps


def main():
  """Times every phase of the paper-scale study and prints the projection."""
  config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                         "configs", "twins_paper.py"))
  dataset = data.dataset_from_config(config)
  shape = build.data_shape(dataset)
  images, labels = jnp.asarray(dataset.train_images), jnp.asarray(dataset.train_labels)
  phases = [("dense zoo", twins.original_config(config))]
  phases += [(f"{run.name} twins", twins.twin_config(config, run))
             for run in twins.twin_runs(config, "unused")]
  rows = []
  for name, phase_config in phases:
    run = build.setup(phase_config, shape)
    members = min(FLAGS.members or run.num_members, run.num_members)
    timed = build.setup(phase_config, shape, table=run.table.iloc[:members], sharded=True)
    seconds = _time_population(timed, images, labels, FLAGS.steps)
    epochs = phase_config.training.num_epochs
    member_epoch = seconds / members * run.steps_per_epoch
    hours = member_epoch * run.num_members * epochs / 3600
    rows.append({"phase": name, "members_timed": members, "members": run.num_members,
                 "seconds_per_step": seconds, "member_steps_per_second": members / seconds,
                 "seconds_per_member_epoch": member_epoch, "epochs": epochs,
                 "projected_hours": hours})
    print(f"{name}: {seconds:.3f} s/step for {members} members, {members / seconds:.0f} "
          f"member-steps/s, {member_epoch:.2f} s per member-epoch; {run.num_members} members x "
          f"{epochs} epochs -> {hours:.1f} h", flush=True)
  total = sum(row["projected_hours"] for row in rows)
  print(f"projected total on {jax.default_backend()} ({jax.device_count()} device(s)): "
        f"{total:.1f} hours ({total / 24:.1f} days)")
  if FLAGS.out:
    with open(FLAGS.out, "w") as file:
      json.dump({"rows": rows, "projected_hours": total, "backend": jax.default_backend(),
                 "steps_timed": FLAGS.steps}, file, indent=1)


if __name__ == "__main__":
  import common
  flags.DEFINE_integer("steps", 10, "Steps of the first epoch to time (after a compiling call).")
  flags.DEFINE_integer("members", 0, "Members to time (0: all of the paper's 2,560).")
  flags.DEFINE_string("out", "", "Write the measurements as JSON here.")
  common.run(main)  # timed as a run trains: a CPU device per core
