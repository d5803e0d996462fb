"""Command line: ``python -m jaxsparse.main --config=configs/x.py --workdir=DIR``.

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax logs every checkpoint step at INFO; a run's own output is the progress bar and summary.
  logging.set_verbosity(logging.WARNING)
  from jaxsparse import train  # local: keeps `--help` and flag errors fast
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
