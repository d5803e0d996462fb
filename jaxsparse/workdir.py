"""The run directory: what a run writes where, its metadata, and the checks before writing.

Layout of a training run's ``--workdir``:

- ``metadata.json``: the config, the method's module, the dataset's input
  shape and class count, the member table, and links (a twin's original);
- ``checkpoints/<epoch>/``: Orbax checkpoints of the whole population;
- ``metrics.jsonl``: one row per (epoch, member); ``members.csv``: the final
  row per member; ``predictions.npz``: final test predictions and sparsity;
- ``tensorboard/``: the same metrics for TensorBoard.

A twins study's workdir holds ``original/`` and ``twins/<method>_<level>/``
(each a run directory as above), ``report.md``, ``summary.json`` and
``figures/``.

A workdir belongs to one config. Re-running the same config resumes it; a
different config is refused (naming the first differing field) unless the
user asks to overwrite, because mixing two runs' checkpoints and metrics
would silently corrupt both. Fields that change how a run is reported or
scheduled on the machine, but not its results, may differ.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import math
import os
import shutil
import socket
import sys
import tempfile
from typing import Any, Iterator

import jax
import ml_collections

from jaxsparse.errors import UserError

METADATA_FILE = "metadata.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
MEMBERS_FILE = "members.csv"
PREDICTIONS_FILE = "predictions.npz"
TENSORBOARD_DIR = "tensorboard"
#: Held (``flock``) by the one command working on a workdir; see :func:`locked`.
LOCK_FILE = ".jaxsparse.lock"
#: What a run writes under its workdir; ``overwrite`` removes exactly these.
RUN_OUTPUTS = (CHECKPOINT_DIR, METADATA_FILE, METRICS_FILE, MEMBERS_FILE, TENSORBOARD_DIR,
               PREDICTIONS_FILE)

# A twins study's workdir.
ORIGINAL_DIR = "original"
TWINS_DIR = "twins"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
FIGURES_DIR = "figures"

#: Config fields that may differ between a run and its resumption: they do not
#: change any member's results (output, scheduling on the machine, or which
#: other twin runs a study makes, each in its own workdir). The twins study's
#: level lists (one field per kind of level) are added by
#: :func:`resumable_differences`.
RESUMABLE_DIFFERENCES = ("logging", "checkpoint", "population.chunk_size",
                         "population.num_devices", "distributed",
                         "training.eval_batch_size", "twins.methods")


def resumable_differences() -> tuple[str, ...]:
  """:data:`RESUMABLE_DIFFERENCES` and the twins study's level lists."""
  from jaxsparse import sparsify
  return RESUMABLE_DIFFERENCES + tuple(f"twins.{field}" for field in sparsify.twin_levels())


def twin_run_dir(study_dir: str, method: str, scope: str | None = None) -> str:
  """Where a twins study keeps the twins of ``method`` (at ``scope``), all levels together."""
  name = method.replace(":", ".") + ("" if scope is None else f"_{scope}")
  return os.path.join(study_dir, TWINS_DIR, name)


@contextlib.contextmanager
def staged_directory(path: str, action: str) -> Iterator[str]:
  """A new directory ``path`` written whole or not at all: yields a staging directory beside
  it, renamed into place when the block ends normally and removed when it fails. ``path``
  must not exist or be empty (``action`` names what is written, for the error)."""
  if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
    raise UserError(f"{path} exists and is not empty; {action} into a new directory")
  parent, name = os.path.split(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{name}.{action}-", dir=parent)
  try:
    yield staging
    if os.path.isdir(path):
      os.rmdir(path)  # empty, as checked above
    os.replace(staging, path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def study_original_dir(study_dir: str) -> str | None:
  """The original zoo of a twins study: its own ``original/``, or the run its twins link to
  (a zoo trained elsewhere or imported: ``config.twins.original_workdir``); None if
  ``study_dir`` is not a study."""
  own = os.path.join(study_dir, ORIGINAL_DIR)
  if os.path.exists(os.path.join(own, METADATA_FILE)):
    return own
  twins_dir = os.path.join(study_dir, TWINS_DIR)
  for name in sorted(os.listdir(twins_dir)) if os.path.isdir(twins_dir) else ():
    run_dir = os.path.join(twins_dir, name)
    if os.path.exists(os.path.join(run_dir, METADATA_FILE)):
      link = read_metadata(run_dir).get("original", {}).get("workdir")
      if link:
        return os.path.normpath(os.path.join(run_dir, link))
  return None


def write_metadata(workdir: str, config: ml_collections.ConfigDict, input_shape,
                   num_classes: int, table, method_module: str,
                   links: dict | None = None, data_digest: str | None = None) -> None:
  """Writes ``metadata.json`` atomically (write to a temporary file, then rename).

  ``method_module`` is the module that registers the run's method (loaders
  import it); ``links`` are extra entries, e.g. a twin run's ``original``;
  ``data_digest`` fingerprints the data (:func:`jaxsparse.data.digest`).
  """
  metadata = {"config": config.to_dict(), "method_module": method_module,
              "input_shape": list(input_shape), "num_classes": int(num_classes),
              "data_digest": data_digest,
              "members": table.to_dict(orient="records"), **(links or {})}
  path = os.path.join(workdir, METADATA_FILE)
  with open(path + ".tmp", "w") as file:
    json.dump(metadata, file, indent=1)
  os.replace(path + ".tmp", path)


def flatten_config(tree: dict, prefix: str = "") -> dict[str, Any]:
  """A config dict as ``{dotted path: value}`` (tuples become lists, as in JSON)."""
  flat = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten_config(value, path + "."))
    else:
      flat[path] = list(value) if isinstance(value, tuple) else value
  return flat


#: The fields that say how long a run trains: a finished run can be extended by raising them.
LENGTH_FIELDS = ("training.num_epochs", "twins.num_epochs")


def config_difference(saved: dict, current: dict,
                      ignore: tuple[str, ...] = ()) -> tuple[str, Any, Any] | None:
  """The first field (dotted path) whose value differs between two config dicts, with both
  values; None if they agree on every field outside :func:`resumable_differences` and
  ``ignore``.

  A field missing on one side (a run made before the field existed) counts
  as agreeing.
  """
  saved, current = flatten_config(saved), flatten_config(current)
  resumable = resumable_differences() + tuple(ignore)
  for path in sorted(saved.keys() & current.keys()):
    if any(path == field or path.startswith(field + ".") for field in resumable):
      continue
    # JSON turned tuples into lists and may have turned ints into floats.
    if _normalised(saved[path]) != _normalised(current[path]):
      return path, saved[path], current[path]
  return None


def run_fingerprint(metadata: dict[str, Any]) -> str:
  """A digest of what determines a run's results: its config (fields outside
  :func:`resumable_differences`), member table and links (a twin's original). Caches
  derived from a run carry it, so that a cache copied from another run is not trusted."""
  resumable = resumable_differences()
  config = {path: value for path, value in flatten_config(metadata["config"]).items()
            if not any(path == field or path.startswith(field + ".") for field in resumable)}
  content = {"config": config, "members": metadata["members"],
             "original": metadata.get("original")}
  return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def read_metadata(workdir: str) -> dict[str, Any]:
  """The parsed ``metadata.json`` of a run, checked entry by entry, or a UserError saying
  what is wrong with it (one line)."""
  path = os.path.join(workdir, METADATA_FILE)
  if not os.path.exists(path):
    raise UserError(f"{workdir} holds no run ({METADATA_FILE} is missing); give the --workdir "
                    "of a training run")
  try:
    with open(path) as file:
      metadata = json.load(file)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise UserError(f"{path} is corrupt ({error}); restore it from a backup, or re-run with "
                    "--overwrite to discard the run") from error
  except OSError as error:
    raise UserError(f"{path} cannot be read ({error.strerror}); give a run directory whose "
                    "metadata.json is a readable file") from error
  if not isinstance(metadata, dict):
    raise UserError(f"{path} holds a JSON {type(metadata).__name__}, not the object jaxsparse "
                    "writes; use another --workdir")
  for key in ("config", "input_shape", "num_classes", "members"):
    if key not in metadata:
      raise UserError(f"{path} lacks its {key!r} entry, so it was not written by jaxsparse; "
                      "use another --workdir")
  for key, (valid, what) in _METADATA_ENTRIES.items():
    if key in metadata and not valid(metadata[key]):
      shown = repr(metadata[key])
      shown = shown if len(shown) <= 60 else shown[:57] + "..."
      raise UserError(f"{path}: its {key!r} entry is {shown}, not {what}; it was edited or "
                      "damaged: restore it from a backup, or re-run with --overwrite to discard "
                      "the run")
  return metadata


def _whole(value: Any, low: int) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= low


#: The entries of ``metadata.json`` that loading a run reads: a check and what it must be.
_METADATA_ENTRIES: dict[str, tuple[Any, str]] = {
    "config": (lambda value: isinstance(value, dict), "an object of config fields"),
    "input_shape": (lambda value: isinstance(value, list) and 1 <= len(value) <= 3 and
                    all(_whole(size, 1) for size in value),
                    "a list of 1 to 3 positive whole numbers"),
    "num_classes": (lambda value: _whole(value, 2), "a whole number of at least 2"),
    "members": (lambda value: isinstance(value, list) and
                all(isinstance(row, dict) for row in value), "a list of member objects"),
    "method_module": (lambda value: value is None or isinstance(value, str),
                      "a module name"),
}


def member_difference(saved: Any, expected: list[dict]) -> str | None:
  """How the member list of a run's ``metadata.json`` differs from the members its config
  makes (JSON records, e.g. ``table.to_json(orient='records')``), in words; None if it does
  not (JSON's number types aside: an integer stored as 3.0 is 3)."""
  if not isinstance(saved, list) or len(saved) != len(expected):
    count = len(saved) if isinstance(saved, list) else f"a {type(saved).__name__} of"
    return f"lists {count} members, but its config makes {len(expected)}"
  for index, (row, expected_row) in enumerate(zip(saved, expected)):
    for field, value in expected_row.items():
      found = row.get(field) if isinstance(row, dict) else row
      if not isinstance(row, dict) or not _same_value(found, value):
        return f"gives member {index} {field}={found!r}, but its config makes {value!r}"
  return None


def _same_value(saved: Any, expected: Any) -> bool:
  """Equal, with JSON's number types (an integer stored as 3.0 is 3; a bool is no number;
  pandas' missing value is NaN in metadata.json and null in ``to_json``)."""
  if expected is None:
    return saved is None or (isinstance(saved, float) and math.isnan(saved))
  if isinstance(expected, bool) or isinstance(saved, bool):
    return saved is expected
  if isinstance(expected, (int, float)) and isinstance(saved, (int, float)):
    return float(saved) == float(expected)
  return saved == expected


#: What a member list that :func:`member_difference` finds edited is told to do.
EDITED_MEMBERS_FIX = ("it was edited, so the run cannot be trusted: restore it from a backup, "
                      "or discard the run with the training command's --overwrite")


def _normalised(value: Any) -> Any:
  return json.loads(json.dumps(value))


def run_difference(metadata: dict, config: ml_collections.ConfigDict,
                   links: dict | None = None, members: list[dict] | None = None,
                   length_dependence: str | None = None) -> str | None:
  """How a run's metadata differs from a run of ``config`` with ``links`` (and, if given,
  ``members``: the member records the config makes), in words: the first differing config
  field (see :func:`config_difference`), link or member; None if none differs.

  A run that trains longer (:data:`LENGTH_FIELDS` raised) extends the saved run,
  unless ``length_dependence`` says why its first epochs would differ; a shorter one is
  refused.
  """
  difference = (_length_difference(metadata["config"], config.to_dict(), length_dependence)
                or config_difference(metadata["config"], config.to_dict(), LENGTH_FIELDS))
  if isinstance(difference, str):
    return difference
  if difference is not None:
    field, saved, current = difference
    return f"holds a run with config.{field}={saved!r}, but this run has {current!r}"
  for key, value in (links or {}).items():
    if key in metadata and _normalised(metadata[key]) != _normalised(value):
      return f"holds a run with {key}={metadata[key]!r}, but this run has {value!r}"
  if members is not None:
    difference = member_difference(metadata["members"], members)
    if difference is not None:
      return f"holds a run whose {METADATA_FILE} {difference}; {EDITED_MEMBERS_FIX}"
  return None


def _length_difference(saved: dict, current: dict, length_dependence: str | None) -> str | None:
  """Why a run of ``current`` cannot continue the saved run as far as its length goes: it
  is shorter, or longer while its first epochs depend on its length; None otherwise."""
  saved, current = flatten_config(saved), flatten_config(current)
  for field in LENGTH_FIELDS:
    if field not in saved or field not in current or saved[field] == current[field]:
      continue
    if current[field] < saved[field]:
      return (f"holds a run with config.{field}={saved[field]}; {current[field]} would shorten "
              "it, and a run cannot be shortened (its later checkpoints exist)")
    if length_dependence:
      return (f"holds a run with config.{field}={saved[field]}, but this run has "
              f"{current[field]}: it cannot be extended because {length_dependence}, so its "
              "first epochs would differ")
  return None


def _ensure_directory(workdir: str) -> None:
  """Creates ``workdir`` if needed and checks that this process can write to it."""
  if os.path.islink(workdir) and not os.path.exists(workdir):
    raise UserError(f"--workdir={workdir} is a symbolic link to {os.readlink(workdir)}, which "
                    "does not exist; create its target or choose another --workdir")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir={workdir} is a file, not a directory; choose another --workdir")
  try:
    os.makedirs(workdir, exist_ok=True)
    # One probe per process: the processes of a multi-host run share the workdir.
    probe = os.path.join(workdir, f".jaxsparse_write_test_{os.getpid()}_{jax.process_index()}")
    with open(probe, "w") as file:
      file.write("ok")
    os.remove(probe)
  except OSError as error:
    raise UserError(f"cannot write to --workdir={workdir} ({error.strerror}); choose a "
                    "writable directory") from error


#: Lock files this process holds: directory (real path) -> open file descriptor.
_HELD_LOCKS: dict[str, int] = {}


@contextlib.contextmanager
def locked(workdir: str) -> Iterator[None]:
  """Holds ``workdir``'s lock for the block, so that one command at a time works on it.

  The lock is an exclusive ``flock`` on ``workdir/.jaxsparse.lock``, which
  names its holder; the kernel releases it when the holder exits in any way
  (even SIGKILL), so a lock file left by a dead process never blocks. A
  directory inside a locked one (a twins study's runs) counts as locked by
  the study's holder. Nested use in one process (the study, then each of
  its runs) takes nothing more. Only process 0 of a multi-host run locks.

  Raises:
    UserError: another command holds the lock of ``workdir`` or of a
      directory around it (the message names it), or ``workdir`` cannot be
      created or written.
  """
  _ensure_directory(workdir)
  path = os.path.realpath(workdir)
  if jax.process_index() != 0 or _held_around(path):
    yield
    return
  descriptor = _acquire(path)
  _HELD_LOCKS[path] = descriptor
  try:
    yield
  finally:
    del _HELD_LOCKS[path]
    with contextlib.suppress(OSError):
      os.remove(os.path.join(path, LOCK_FILE))
    os.close(descriptor)


def _held_around(path: str) -> bool:
  """Whether this process holds the lock of ``path`` or of a directory around it; refuses
  when another process holds one of those around it."""
  directory = path
  while True:
    if directory in _HELD_LOCKS:
      return True
    if directory != path and os.path.exists(os.path.join(directory, LOCK_FILE)):
      os.close(_acquire(directory, inside=path))  # refuses if held; released at once
    parent = os.path.dirname(directory)
    if parent == directory:
      return False
    directory = parent


def _acquire(directory: str, inside: str | None = None) -> int:
  """The descriptor of ``directory``'s lock file, exclusively locked and naming this process."""
  lock_path = os.path.join(directory, LOCK_FILE)
  while True:
    try:
      descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
      raise UserError(f"cannot open the lock file {lock_path} ({error.strerror}); it must be a "
                      "file jaxsparse can write: remove or rename it, or use another "
                      "--workdir") from error
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(descriptor, 1000).decode(errors="replace").strip() or "unknown"
      os.close(descriptor)
      where = directory if inside is None else f"{inside} (inside {directory})"
      raise UserError(f"{where} is in use by another jaxsparse command ({holder}); wait for it "
                      "to finish or stop it, or use another --workdir") from None
    # The holder before us may have removed the file between our open and our lock.
    with contextlib.suppress(FileNotFoundError):
      if os.stat(lock_path).st_ino == os.fstat(descriptor).st_ino:
        break
    os.close(descriptor)
  started = datetime.datetime.now().isoformat(timespec="seconds")
  holder = f"pid {os.getpid()} on {socket.gethostname()} since {started}: {' '.join(sys.argv)}"
  os.ftruncate(descriptor, 0)
  os.write(descriptor, holder.encode())
  return descriptor


def has_checkpoint(workdir: str) -> bool:
  """Whether ``workdir/checkpoints`` holds anything (a complete or partial checkpoint)."""
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  return os.path.isdir(directory) and bool(os.listdir(directory))


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict,
                    overwrite: bool = False, links: dict | None = None,
                    members: list[dict] | None = None,
                    length_dependence: str | None = None) -> None:
  """Makes sure ``workdir`` can hold the run of ``config``, before anything is written.

  ``links`` are the metadata entries the run will record (a twin's original
  and its epoch): a run linked elsewhere is another run, like one of another
  config. ``members`` are the member records the config makes: a run whose
  ``metadata.json`` lists others was edited and is not resumed (nor reported
  as finished) from it. A config that trains longer extends the run (see
  :func:`run_difference`; ``length_dependence``: why it could not). A run that
  never completed a checkpoint (it failed before the end of its first epoch)
  holds nothing to resume and is replaced.

  Raises:
    UserError: the workdir cannot be created or written, or it holds a run
      of another config or an edited one (unless ``overwrite``, which then
      removes that run's outputs and nothing else), or checkpoints without
      jaxsparse's metadata (which ``overwrite`` does not remove either:
      jaxsparse did not write them, as far as it can tell).
  """
  _ensure_directory(workdir)
  has_metadata = os.path.exists(os.path.join(workdir, METADATA_FILE))
  if not has_metadata and has_checkpoint(workdir):
    raise UserError(f"{workdir} holds checkpoints but no {METADATA_FILE}, so they cannot be "
                    "checked against this config (nor are they known to be jaxsparse's, so "
                    "--overwrite leaves them); move them away or use another --workdir")
  if not has_metadata:
    return
  if not has_checkpoint(workdir) and jax.process_index() == 0:
    _remove_outputs(workdir)  # a run that failed before its first checkpoint
    return
  if overwrite:
    if jax.process_index() == 0:
      _discard_run(workdir, config, links, members, length_dependence)
    return
  difference = run_difference(read_metadata(workdir), config, links, members,
                              length_dependence)
  if difference is not None:
    raise UserError(f"{workdir} {difference}" + (
        "" if "--overwrite" in difference else
        "; use another --workdir, or --overwrite to discard that run"))


def _discard_run(workdir: str, config: ml_collections.ConfigDict, links: dict | None,
                 members: list[dict] | None, length_dependence: str | None) -> None:
  """Removes the outputs of another (or an edited) run; a run of this config, links and
  members (or one it extends) is kept."""
  try:
    if run_difference(read_metadata(workdir), config, links, members,
                      length_dependence) is None:
      return
  except UserError:
    pass  # unreadable metadata: the run cannot be resumed, so it goes
  print(f"Overwriting the run in {workdir} (another config, or edited).", flush=True)
  _remove_outputs(workdir)


def _remove_outputs(workdir: str) -> None:
  """Removes what a run writes (:data:`RUN_OUTPUTS`) and nothing else."""
  for name in RUN_OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)
