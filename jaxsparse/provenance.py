"""Where a result came from: the commit, the date, the machine and the command.

Every finished command writes :data:`PROVENANCE_FILE` beside its results (the
main job in its workdir, an experiment script beside ``results.json``), and
``experiments/results_doc.py`` copies it into docs/results/ with the results, so
that every table in docs/results.md carries one provenance line.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import shlex
import subprocess
import sys

PROVENANCE_FILE = "provenance.json"
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*arguments: str) -> str | None:
  try:
    return subprocess.run(("git", "-C", _REPOSITORY, *arguments), capture_output=True,
                          text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None


@functools.lru_cache(maxsize=None)
def commit() -> str:
  """The checkout's commit (short hash), with ``+changes`` when tracked files differ from
  it; 'unknown' outside a git checkout. Computed once per process: a command calls it as
  it starts, so that a commit made while it runs does not stand for its code."""
  head = _git("rev-parse", "--short=7", "HEAD")
  if head is None:
    return "unknown"
  changed = _git("status", "--porcelain", "--untracked-files=no")
  return head + ("+changes" if changed else "")


def _processor() -> str:
  try:
    with open("/proc/cpuinfo") as file:
      names = [line.split(":", 1)[1].strip() for line in file if line.startswith("model name")]
  except OSError:
    names = []
  return names[0] if names else platform.processor() or platform.machine()


def machine() -> str:
  """The machine in words: processor, CPU cores and JAX's devices."""
  import jax
  devices = jax.devices()
  kinds = sorted({device.device_kind for device in devices})
  return (f"{_processor()}, {os.cpu_count()} CPU cores, {len(devices)} JAX "
          f"{devices[0].platform} device(s) ({', '.join(kinds)})")


def command(argv: list[str] | None = None) -> str:
  """The command line as typed (``python -m jaxsparse.main`` for the main module)."""
  argv = list(sys.argv if argv is None else argv)
  program = argv[0] if argv else "python"
  if program.endswith(os.path.join("jaxsparse", "main.py")):
    program = "-m jaxsparse.main"
  elif os.path.isabs(program) and program.startswith(_REPOSITORY + os.sep):
    program = os.path.relpath(program, _REPOSITORY)
  return " ".join(["python", program, *map(shlex.quote, argv[1:])])


def record(started: float) -> dict:
  """The provenance of a command that started at ``started`` (a ``time.time()``) and
  finishes now."""
  def utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")
  now = datetime.datetime.now(datetime.timezone.utc).timestamp()
  return {"commit": commit(), "started": utc(started), "finished": utc(now),
          "minutes": round((now - started) / 60, 1), "machine": machine(),
          "command": command()}


def write(directory: str, started: float) -> None:
  """Writes :func:`record` to ``directory``/:data:`PROVENANCE_FILE`."""
  with open(os.path.join(directory, PROVENANCE_FILE), "w") as file:
    json.dump(record(started), file, indent=1)


def line(provenance: dict) -> str:
  """One Markdown line: commit, dates, machine and command."""
  return (f"*Provenance: commit `{provenance['commit']}`, {provenance['started']} to "
          f"{provenance['finished']} ({provenance['minutes']} min), {provenance['machine']}; "
          f"`{provenance['command']}`.*")
