"""Command line: ``python -m jaxsparse.main --config=configs/x.py --workdir=DIR``.

Runs the config's ``job``: training a zoo, or the sparsified-twins study
(:mod:`jaxsparse.twins`).

Any config field can be overridden, e.g. ``--config.training.num_epochs=5``
or ``--config.population.grid.learning_rate='(1e-3, 1e-4)'``. Everything the
run produces goes under ``--workdir``; running the same command again
resumes from the latest complete checkpoint.
"""

import errno
import os
import re
import signal
import sys
import threading
import time

from absl import app, flags, logging
from ml_collections import config_flags

from jaxsparse import cpu_cores, errors
from jaxsparse.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "If the workdir holds a run of another config, discard it instead of "
    "refusing to start.")
_DRY_RUN = flags.DEFINE_enum(
    "dry_run", None, ["check", "time"], "Validate the config and print it resolved, with every "
    "population's member table, programs and memory per device, without compiling or writing "
    "anything ('--dry_run' alone: 'check'); '--dry_run=time' also compiles the programs and "
    "times a few steps to estimate the run's duration.")
_ALLOW_METHOD_MODULE = flags.DEFINE_multi_string(
    "allow_method_module", [], "A module that runs loaded from disk (e.g. the zoo of "
    "config.twins.original_workdir) may import for their method, if you trust it; repeat for "
    "several. Loading a run never imports a module it names otherwise.")
flags.mark_flags_as_required(["config", "workdir"])

#: Errors of the file system that the user fixes (space, permissions), not bugs.
_STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


_fail = errors.exit_with_error


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


def _config_argument(argv: list[str]) -> str | None:
  """The value of ``--config`` in ``argv`` (None if absent)."""
  for index, argument in enumerate(argv):
    if argument.startswith("--config="):
      return argument[len("--config="):]
    if argument == "--config" and index + 1 < len(argv):
      return argv[index + 1]
  return None


def _check_arguments(argv: list[str]) -> None:
  """Mistakes absl and ml_collections would turn into tracebacks or silently wrong configs."""
  import os
  config = _config_argument(argv)
  if config is not None:
    path = config if os.path.exists(config) else config.partition(":")[0]
    if not os.path.isfile(path):
      _fail(f"--config={config}: there is no file {path}; give a config file such as "
            "configs/default.py")
  overrides = [argument[len("--config."):].partition("=") for argument in argv
               if argument.startswith("--config.")]
  fields = [field for field, _, _ in overrides]
  for field in fields:
    if fields.count(field) > 1:
      values = [value for name, _, value in overrides if name == field]
      why = (" (ml_collections would join repeated tuples, multiplying the population)"
             if any(value.strip().startswith(("(", "[")) for value in values) else "")
      _fail(f"--config.{field} is given {len(values)} times ({', '.join(values)}){why}; "
            "give it once")


#: ``module:name`` in a ``--config.sparsify.method`` or ``--config.twins.methods`` override.
_METHOD_IN_MODULE = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)")


def _import_named_methods(argv: list[str]) -> None:
  """Imports the modules of the ``module:name`` methods the command line names, before the
  config file is read, so that their own fields exist and can be overridden too."""
  from jaxsparse import sparsify
  for argument in argv:
    field, _, value = argument.partition("=")
    if field in ("--config.sparsify.method", "--config.twins.methods"):
      for module, name in _METHOD_IN_MODULE.findall(value):
        sparsify.import_method_module(module, f"{module}:{name}")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors instead of usage text or tracebacks."""
  argv = [("--dry_run=check" if argument == "--dry_run" else argument) for argument in argv]
  _check_arguments(argv)
  try:
    _import_named_methods(argv)
  except UserError as error:
    _fail(str(error))
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    _fail(str(error))
  except (AttributeError, KeyError) as error:
    if "get_config" in str(error):
      _fail(f"--config={_config_argument(argv)} defines no get_config(); a config file defines "
            "get_config() returning an ml_collections.ConfigDict (see configs/default.py)")
    # ml_collections raises these, deep in flag parsing, for an unknown override.
    field = _unknown_override(argv)
    _fail(_unknown_field_message(field, argv) if field else
          f"a --config override names no known field ({error})")


def _unknown_field_message(field: str, argv: list[str]) -> str:
  """One line for an override of a field the schema lacks, naming where the fields of
  ``config.sparsify`` come from: the methods' declarations (a module's own, if named)."""
  if not field.startswith("sparsify."):
    return f"config.{field} is not a known field; see docs/configuration.md for the fields"
  from jaxsparse import sparsify
  named = [f"{module}:{name}" for argument in argv if argument.startswith("--config.sparsify.method")
           for module, name in _METHOD_IN_MODULE.findall(argument)]
  where = (f"method {named[0]!r} (module {named[0].split(':')[0]!r}) declares "
           f"{', '.join(sorted(sparsify.declaration(named[0]).fields)) or 'no fields'}"
           if named else "the registered methods declare the fields of config.sparsify")
  return (f"config.{field} is not a known field: {where}; see docs/configuration.md for "
          "the built-in methods' fields")


@errors.exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax logs every checkpoint step at INFO; a run's own output is the progress bar and summary.
  logging.set_verbosity(logging.WARNING)
  # Local imports keep `--help` and flag errors fast.
  job = (lambda: dry_run(_CONFIG.value, _DRY_RUN.value, _WORKDIR.value)) if _DRY_RUN.value else (
      lambda: run_job(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value,
                      tuple(_ALLOW_METHOD_MODULE.value)))
  run_interruptibly(job, _WORKDIR.value)


def run_interruptibly(job, workdir: str) -> None:
  """Runs ``job`` so that Ctrl-C (SIGINT) or SIGTERM stops the process within a second.

  A compiled epoch cannot be interrupted from Python, so the job runs in a
  worker thread while the main thread waits for it and for a signal. On a
  signal the process exits at once (status 128 + the signal's number) with
  one line saying how to resume. This is as safe as SIGKILL, which every
  point of a run survives: checkpoints are renamed into place when complete,
  metrics beyond the last checkpoint are dropped on resume, and the other
  files are written atomically. The job's own exceptions are re-raised here.
  """
  outcome: dict[str, BaseException] = {}

  def target():
    try:
      job()
    except BaseException as error:  # re-raised in the main thread
      outcome["error"] = error

  received: list[int] = []
  handlers = {number: signal.signal(number, lambda number, _: received.append(number))
              for number in (signal.SIGINT, signal.SIGTERM)}
  worker = threading.Thread(target=target, name="jaxsparse-job", daemon=True)
  worker.start()
  try:
    while worker.is_alive() and not received:
      worker.join(0.2)
  finally:
    if not received:  # (after a signal, a second one is only recorded: no traceback)
      for number, handler in handlers.items():
        signal.signal(number, handler)
  if received:
    print(f"\nStopped by {signal.Signals(received[0]).name}; the complete checkpoints in "
          f"{workdir} are kept; run the same command to resume from the last one.",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + received[0])
  if "error" in outcome:
    raise outcome["error"]


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


def dry_run(config, mode: str = "check", workdir: str = ".") -> None:
  """Prints what ``config`` would train in ``workdir`` (with ``mode='time'``, also an
  estimate of its duration from a few timed steps); writes nothing."""
  from jaxsparse import data, plan
  from jaxsparse.config import resolve
  config = resolve(config)
  dataset = data.dataset_from_config(config)
  phases = plan.phases(config, dataset, workdir)
  timings = None
  if mode == "time":
    from jaxsparse import twins
    subset = lambda phase: dataset if phase.name == "zoo" else twins.training_subset(
        dataset, config.twins.train_examples)
    timings = [plan.time_phase(phase, subset(phase)) for phase in phases]
  print(plan.describe(config, phases, timings), flush=True)


def run_job(config, workdir: str, overwrite: bool = False,
            allow_modules: tuple[str, ...] = ()) -> None:
  """Runs the config's job; a full or unwritable disk becomes a :class:`UserError`.

  Checkpoints are complete or absent (Orbax renames a finished temporary
  directory), so after such an error the run resumes from its last complete
  epoch once there is space. ``allow_modules``: modules runs on disk may import
  for their methods (``--allow_method_module``).
  """
  import jax
  from jaxsparse import provenance, sparsify, train, twins
  started = time.time()
  provenance.commit()  # the code this command runs, before anyone commits more
  start_distributed(config)
  try:
    with sparsify.allowing_modules(allow_modules):
      if config.get("job", "train") == "twins":
        twins.run_study(config, workdir, overwrite=overwrite)
      else:
        train.train_and_evaluate(config, workdir, overwrite=overwrite)
    if jax.process_index() == 0:
      provenance.write(workdir, started)
  except OSError as error:
    if error.errno not in _STORAGE_ERRORS:
      raise
    raise UserError(f"cannot write {error.filename or workdir} ({error.strerror}); free space or "
                    "fix permissions and run the same command again to resume from the last "
                    "complete checkpoint") from error


if __name__ == "__main__":
  cpu_cores.split_cpu_by_core()  # before JAX starts: members train on every core
  app.run(main, flags_parser=_parse_flags)
