"""Command line: ``python -m jaxsparse.main --config=configs/x.py --workdir=DIR``.

Runs the config's ``job``: training a zoo, or the sparsified-twins study
(:mod:`jaxsparse.twins`).

Any config field can be overridden, e.g. ``--config.training.num_epochs=5``
or ``--config.population.grid.learning_rate='(1e-3, 1e-4)'``. Everything the
run produces goes under ``--workdir``; running the same command again
resumes from the latest complete checkpoint.
"""

import errno
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxsparse.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "If the workdir holds a run of another config, discard it instead of "
    "refusing to start.")
flags.mark_flags_as_required(["config", "workdir"])

#: Errors of the file system that the user fixes (space, permissions), not bugs.
_STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


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
  try:
    run_job(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value)
  except UserError as error:
    _fail(str(error))


def start_distributed(config) -> None:
  """Joins the processes of a multi-host run (``config.distributed``); nothing for one."""
  settings = config.get("distributed")
  if settings is None or settings.mode == "off":
    return
  import jax
  if jax.distributed.is_initialized():  # (asking for devices here would start JAX too early)
    return
  if settings.mode == "auto":
    jax.distributed.initialize()
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts gather metrics
  jax.distributed.initialize(
      coordinator_address=settings.coordinator_address or None,
      num_processes=settings.num_processes or None,
      process_id=settings.process_id if settings.process_id >= 0 else None)


def run_job(config, workdir: str, overwrite: bool = False) -> None:
  """Runs the config's job; a full or unwritable disk becomes a :class:`UserError`.

  Checkpoints are complete or absent (Orbax renames a finished temporary
  directory), so after such an error the run resumes from its last complete
  epoch once there is space.
  """
  from jaxsparse import train, twins
  start_distributed(config)
  try:
    if config.get("job", "train") == "twins":
      twins.run_study(config, workdir, overwrite=overwrite)
    else:
      train.train_and_evaluate(config, workdir, overwrite=overwrite)
  except OSError as error:
    if error.errno not in _STORAGE_ERRORS:
      raise
    raise UserError(f"cannot write {error.filename or workdir} ({error.strerror}); free space or "
                    "fix permissions and run the same command again to resume from the last "
                    "complete checkpoint") from error


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
