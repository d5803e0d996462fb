"""The harness every experiment script shares: one command-line style (absl flags, defined
under ``if __name__ == "__main__"`` so that tests can import the scripts), one way to run
(:func:`run`), one results writer (:func:`write_results`) and one Markdown table
(:func:`markdown_table`, its intervals by :func:`interval_column`)."""

from __future__ import annotations

import json
import os
import time
from typing import Callable

from absl import app, flags, logging
import pandas as pd

from jaxsparse import cpu_cores, errors, provenance


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
  """A data frame as a Markdown table: floats to ``digits`` decimals, but a column whose
  numbers are all whole (a KL weight, a step count) without them; NaN as 'n/a'."""
  def whole(column) -> bool:
    numbers = [value for value in column if isinstance(value, float) and value == value]
    return bool(numbers) and all(value.is_integer() for value in numbers)

  formats = {name: "{:,.0f}" if whole(frame[name]) else f"{{:.{digits}f}}"
             for name in frame.columns}

  def cell(name, value):
    if isinstance(value, float):
      return "n/a" if value != value else formats[name].format(value)
    return str(value)
  lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
           "| " + " | ".join("---" for _ in frame.columns) + " |"]
  lines += ["| " + " | ".join(cell(name, value) for name, value in zip(frame.columns, row))
            + " |" for row in frame.itertuples(index=False)]
  return "\n".join(lines)


def interval_column(frame: pd.DataFrame, value: str, digits: int = 4,
                    signed: bool = False) -> pd.Series:
  """Each row's ``value (low to high)`` from the columns ``value``, ``low`` and ``high``, to
  ``digits`` decimals (with a sign when ``signed``), for a cell of :func:`markdown_table`."""
  spec = f"{'+' if signed else ''}.{digits}f"
  return pd.Series([f"{v:{spec}} ({low:{spec}} to {high:{spec}})"
                    for v, low, high in zip(frame[value], frame["low"], frame["high"])],
                   index=frame.index, dtype=object)


def write_results(workdir: str, table: str, started: float, **tables: pd.DataFrame | bool | dict
                  ) -> None:
  """``results.md`` (``table``), ``results.json`` (every keyword: data frames as records,
  plus the run time) and ``provenance.json`` under ``workdir``; prints the table and the
  time."""
  record = {name: value.to_dict("records") if isinstance(value, pd.DataFrame) else value
            for name, value in tables.items()}
  with open(os.path.join(workdir, "results.json"), "w") as file:
    json.dump({**record, "seconds": time.time() - started}, file, indent=1, default=str)
  with open(os.path.join(workdir, "results.md"), "w") as file:
    file.write(table + "\n")
  provenance.write(workdir, started)
  print(table)
  print(f"Done in {(time.time() - started) / 60:.1f} min; results and runs are under "
        f"{workdir}.", flush=True)


def run(main: Callable[[], object], split_cpu: bool = True) -> None:
  """Runs an experiment script's ``main()`` once absl has parsed its flags: one JAX CPU
  device per core (before JAX starts; unless ``split_cpu`` is False, for a script that
  chooses its devices itself), Orbax's INFO logs off, a :class:`UserError` as one line with
  exit status 2, and arguments that are not flags refused."""
  if split_cpu:
    cpu_cores.split_cpu_by_core()
  provenance.commit()  # the code this command runs, before anyone commits more

  def absl_main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    errors.exit_on_user_error(main)()
  app.run(absl_main)


def model_experiment_main(run_models: Callable[[str, list[str], bool], object],
                          models: tuple[str, ...], default: tuple[str, ...] | None = None
                          ) -> None:
  """Defines ``--workdir``, ``--models`` (of ``models``; ``default``, or all of them, when
  not given) and ``--quick`` and runs ``run_models(workdir, models, quick)`` (:func:`run`)."""
  workdir = flags.DEFINE_string("workdir", None, "Where every run and the results go.")
  chosen = flags.DEFINE_list("models", list(default or models),
                             f"Models to run, of {list(models)}.")
  quick = flags.DEFINE_bool("quick", False,
                            "A pipeline check in under 5 minutes (the first model only).")
  flags.mark_flags_as_required(["workdir"])

  def main():
    unknown = [model for model in chosen.value if model not in models]
    if unknown:
      raise errors.UserError(f"--models={','.join(unknown)} is unknown; use some of "
                             f"{','.join(models)}")
    run_models(workdir.value, chosen.value, quick.value)
  run(main)
