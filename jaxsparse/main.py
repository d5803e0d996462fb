"""Command line: ``python -m jaxsparse.main --config=configs/x.py --workdir=DIR``.

Runs the config's ``job``: training a zoo, or the sparsified-twins study
(:mod:`jaxsparse.twins`).

Any config field can be overridden, e.g. ``--config.training.num_epochs=5``
or ``--config.population.grid.learning_rate='(1e-3, 1e-4)'``. Everything the
run produces goes under ``--workdir``; running the same command again
resumes from the latest complete checkpoint.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxsparse.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def _unknown_override(argv: list[str]) -> str | None:
  """The first ``--config.a.b=...`` override whose field the config schema lacks."""
  from jaxsparse.config import default_config
  for argument in argv:
    if argument.startswith("--config."):
      path = argument[len("--config."):].split("=", 1)[0]
      node = default_config()
      for part in path.split("."):
        if not hasattr(node, "keys") or part not in node:
          return path
        node = node[part]
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors instead of usage text or tracebacks."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    _fail(str(error))
  except (AttributeError, KeyError) as error:
    # ml_collections raises these, deep in flag parsing, for an unknown override.
    field = _unknown_override(argv)
    _fail(f"config.{field} is not a known field; see jaxsparse/config.py for the fields"
          if field else f"a --config override names no known field ({error})")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax logs every checkpoint step at INFO; a run's own output is the progress bar and summary.
  logging.set_verbosity(logging.WARNING)
  # Local imports keep `--help` and flag errors fast.
  from jaxsparse import train, twins
  try:
    if _CONFIG.value.get("job", "train") == "twins":
      twins.run_study(_CONFIG.value, _WORKDIR.value)
    else:
      train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as error:
    _fail(str(error))


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
