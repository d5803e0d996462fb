"""What the model-by-model experiments share: their command line and how they write results."""

from __future__ import annotations

import json
import os
import time
from typing import Callable

from absl import app, flags
import pandas as pd

from jaxsparse import cpu_cores, errors


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
  """A data frame as a Markdown table (floats to ``digits`` decimals, NaN as 'n/a')."""
  def cell(value):
    if isinstance(value, float):
      return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)
  lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
           "| " + " | ".join("---" for _ in frame.columns) + " |"]
  lines += ["| " + " | ".join(cell(value) for value in row) + " |"
            for row in frame.itertuples(index=False)]
  return "\n".join(lines)


def write_results(workdir: str, table: str, started: float, **tables: pd.DataFrame | bool | dict
                  ) -> None:
  """``results.md`` (``table``) and ``results.json`` (every keyword: data frames as records,
  plus the run time) under ``workdir``; prints the table and the time."""
  record = {name: value.to_dict("records") if isinstance(value, pd.DataFrame) else value
            for name, value in tables.items()}
  with open(os.path.join(workdir, "results.json"), "w") as file:
    json.dump({**record, "seconds": time.time() - started}, file, indent=1, default=str)
  with open(os.path.join(workdir, "results.md"), "w") as file:
    file.write(table + "\n")
  print(table)
  print(f"Done in {(time.time() - started) / 60:.1f} min; results and runs are under "
        f"{workdir}.", flush=True)


def model_experiment_main(run: Callable[[str, list[str], bool], object],
                          models: tuple[str, ...], default: tuple[str, ...] | None = None,
                          ) -> Callable[[list[str]], None]:
  """Defines ``--workdir``, ``--models`` (of ``models``; ``default``, or all of them, when
  not given) and ``--quick`` and returns the ``main`` that calls ``run(workdir, models,
  quick)`` (flags are defined only when a script runs)."""
  workdir = flags.DEFINE_string("workdir", None, "Where every run and the results go.")
  chosen = flags.DEFINE_list("models", list(default or models),
                             f"Models to run, of {list(models)}.")
  quick = flags.DEFINE_bool("quick", False,
                            "A pipeline check in under 5 minutes (the first model only).")
  flags.mark_flags_as_required(["workdir"])
  cpu_cores.split_cpu_by_core()  # before JAX starts: members train on every core

  @errors.exit_on_user_error
  def main(argv):
    del argv
    unknown = [model for model in chosen.value if model not in models]
    if unknown:
      raise app.UsageError(f"--models={','.join(unknown)} is unknown; use some of "
                           f"{','.join(models)}")
    run(workdir.value, chosen.value, quick.value)
  return main
