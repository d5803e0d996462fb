"""Progress of long runs: a bar (or timestamped lines) that moves inside an epoch, an ETA
that leaves compilation out, and a study's overall bar.

``config.logging.progress`` picks how: ``'bar'`` (tqdm, for a terminal),
``'lines'`` (plain timestamped lines for batch jobs and logs: one per epoch
and population with the population's metrics, and one at most every
``logging.lines_every_seconds`` inside a long epoch with the steps done,
member-steps per second and the ETA), ``'none'``, or ``'auto'`` (the bar when
the output is a terminal, else lines): :func:`new_bar`.

An epoch is one compiled call, so the bar cannot follow Python's loop. The
training call reports instead, through a host callback every
``report_interval(steps)`` steps (:func:`jaxsparse.engine.listening_to_progress`);
:class:`EpochTracker` turns those reports into steps done. The callback reads
no value of the computation, so the numbers do not change, and about 20
reports per epoch cost little (measured in docs/history/benchmarks-2026-11.md).

The ETA is measured from the first report a process sees, i.e. after the
training program was compiled and its first steps ran: compilation (and
epochs done before a resume) does not inflate it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Mapping

import numpy as np
from tqdm import tqdm

#: Progress reports per epoch (the bar moves about this often).
REPORTS_PER_EPOCH = 20
_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}{postfix}]"


def report_interval(steps_per_epoch: int) -> int:
  """Steps between two progress reports of a training call."""
  return max(1, steps_per_epoch // REPORTS_PER_EPOCH)


class Bar:
  """A tqdm bar over work units whose ETA counts only the time after its first advance.

  Thread-safe (training reports arrive on a runtime thread). With ``parent``,
  every advance also advances the parent by ``weight`` times as much (a
  population's steps count ``members`` member-steps in a study's bar).
  """

  def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "steps",
               disable: bool = False, parent: Bar | None = None, weight: int = 1,
               position: int | None = None):
    self.total, self.n = total, min(initial, total)  # kept here: a disabled tqdm counts nothing
    self._bar = tqdm(total=total, initial=self.n, desc=desc, unit=unit, disable=disable,
                     bar_format=_BAR_FORMAT, position=position, leave=position in (None, 0),
                     dynamic_ncols=True)
    self._lock = threading.Lock()
    self._warm: tuple[int, float] | None = None  # (units done, time) at the first advance
    self._metrics = ""
    self.parent, self.weight = parent, weight
    if parent is not None:
      parent.skip(self.n * weight)
    self._show()

  def advance_to(self, n: int) -> None:
    """Moves the bar forward to ``n`` units done (never back)."""
    with self._lock:
      delta = min(n, self.total) - self.n
      if delta <= 0:
        return
      self.n += delta
      if self._warm is None:
        self._warm = (self.n, time.monotonic())
      self._bar.update(delta)
      self._show()
    if self.parent is not None:
      self.parent.advance_to(self.parent.n + delta * self.weight)

  def skip(self, units: int) -> None:
    """Counts ``units`` as done without timing them (work done before a resume)."""
    with self._lock:
      units = min(units, self.total - self.n)
      if units <= 0:
        return
      self.n += units
      if self._warm is not None:
        self._warm = (self._warm[0] + units, self._warm[1])
      self._bar.update(units)
      self._show()

  def eta_seconds(self) -> float | None:
    """Seconds left at the rate since the first advance (None before a second one)."""
    if self._warm is None or self.n <= self._warm[0]:
      return None
    rate = (self.n - self._warm[0]) / max(time.monotonic() - self._warm[1], 1e-9)
    return (self.total - self.n) / rate

  def set_metrics(self, **metrics: float) -> None:
    """Shows ``metrics`` (e.g. the last epoch's mean test accuracy) after the ETA."""
    with self._lock:
      self._metrics = ", ".join(f"{name}={value:.4f}" for name, value in metrics.items())
      self._show()

  def end_epoch(self, epoch: int, num_epochs: int, seconds: float,
                metrics: Mapping[str, np.ndarray]) -> None:
    """Epoch ``epoch`` of ``num_epochs`` is done: shows its mean test accuracy (or learning
    curve's) and training loss beside the bar (:class:`Lines` prints a line instead)."""
    del epoch, num_epochs, seconds
    accuracy = metrics.get("test_accuracy", metrics.get("curve_accuracy"))
    shown = {"train_loss": np.nanmean(metrics["train_loss"])} if "train_loss" in metrics else {}
    if accuracy is not None:
      shown["test_accuracy"] = np.nanmean(accuracy)
    self.set_metrics(**shown)

  def _show(self) -> None:
    eta = self.eta_seconds()
    timing = ("compiling, first steps" if self._warm is None and self.n < self.total
              else "" if eta is None else f"eta {tqdm.format_interval(eta)}")
    self._bar.set_postfix_str(", ".join(part for part in (timing, self._metrics) if part))

  def write(self, line: str) -> None:
    """Prints ``line`` above the bars (a plain print when the bar is off)."""
    if self._bar.disable:
      print(line, flush=True)
    else:
      tqdm.write(line)

  def close(self) -> None:
    self._bar.close()

  def __enter__(self) -> Bar:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class Lines(Bar):
  """A :class:`Bar` that prints plain timestamped lines instead of redrawing a bar: at most
  one every ``every_seconds`` while work advances (steps done, member-steps per second,
  ETA), and one per epoch (:meth:`end_epoch`). ``steps_per_epoch`` numbers the epochs;
  ``weight`` (members) turns steps into member-steps."""

  def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "steps",
               parent: Bar | None = None, weight: int = 1, every_seconds: float = 60.0,
               steps_per_epoch: int = 0):
    self._every, self._last_line = every_seconds, time.monotonic()
    self._steps_per_epoch, self._desc, self._unit = steps_per_epoch, desc, unit
    super().__init__(total, initial, desc, unit, disable=True, parent=parent, weight=weight)

  def _show(self) -> None:
    now = time.monotonic()
    if self._warm is None or self.n >= self.total or now - self._last_line < self._every:
      return
    self._last_line = now
    rate = (self.n - self._warm[0]) / max(now - self._warm[1], 1e-9) * self.weight
    eta = self.eta_seconds()
    where = (f"epoch {self.n // self._steps_per_epoch + 1}/{self.total // self._steps_per_epoch}"
             ", " if self._steps_per_epoch else "")
    self.write(f"{self._desc}: {where}{self.n:,}/{self.total:,} {self._unit}, "
               f"{rate:,.0f} member-steps/s" + ("" if eta is None else
                                                 f", eta {tqdm.format_interval(eta)}"))

  def end_epoch(self, epoch: int, num_epochs: int, seconds: float,
                metrics: Mapping[str, np.ndarray]) -> None:
    self.write(f"{self._desc}: epoch {epoch}/{num_epochs} done in {seconds:.0f} s; "
               f"{epoch_summary(metrics)}")

  def write(self, line: str) -> None:
    """Prints ``line`` with the time."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", flush=True)


#: The metrics an epoch's line summarises, in this order (those a run has).
LINE_METRICS = ("train_loss", "validation_accuracy", "test_accuracy", "curve_accuracy",
                "achieved_sparsity", "agreement")


def epoch_summary(metrics: Mapping[str, np.ndarray]) -> str:
  """'name mean [min, max]' of the epoch's metrics over its (finite) members, and how many
  diverged."""
  parts = []
  for name in LINE_METRICS:
    values = np.asarray(metrics.get(name, []), np.float64)
    values = values[np.isfinite(values)]
    if values.size:
      parts.append(f"{name} {values.mean():.4f} [{values.min():.4f}, {values.max():.4f}]")
  diverged = int(np.sum(np.asarray(metrics.get("diverged", []), bool)))
  return ", ".join(parts) + (f"; {diverged} member(s) diverged" if diverged else "")


def resolve_mode(mode: str) -> str:
  """``'auto'``: ``'bar'`` when the output is a terminal, else ``'lines'``; other modes as
  they are."""
  if mode != "auto":
    return mode
  return "bar" if sys.stdout.isatty() and sys.stderr.isatty() else "lines"


def new_bar(mode: str, total: int, initial: int = 0, desc: str = "", unit: str = "steps",
            parent: Bar | None = None, weight: int = 1, position: int | None = None,
            every_seconds: float = 60.0, steps_per_epoch: int = 0) -> Bar:
  """A :class:`Bar` (``'bar'``), :class:`Lines` (``'lines'``) or a silent bar (``'none'``);
  ``'auto'`` resolves by :func:`resolve_mode`."""
  mode = resolve_mode(mode)
  if mode == "lines":
    return Lines(total, initial, desc, unit, parent, weight, every_seconds, steps_per_epoch)
  return Bar(total, initial, desc, unit, disable=mode == "none", parent=parent, weight=weight,
             position=position)


class EpochTracker:
  """Turns a training call's progress reports into a bar's position.

  ``reports_per_epoch`` is how many reports one epoch's call makes in this
  process (``steps // every`` per chunk of members and local device); the bar
  counts population steps (one step of every member).
  """

  def __init__(self, bar: Bar, steps_per_epoch: int, reports_per_epoch: int):
    self.bar, self.steps_per_epoch = bar, steps_per_epoch
    self.reports_per_epoch = max(1, reports_per_epoch)
    self._epoch_start, self._reports = 0, 0
    self._lock = threading.Lock()

  def start_epoch(self, epoch: int) -> None:
    """Epoch ``epoch`` (1-based) begins: reports count from its first step."""
    with self._lock:
      self._epoch_start, self._reports = (epoch - 1) * self.steps_per_epoch, 0

  def report(self) -> None:
    """One report of the running call (called by the runtime)."""
    with self._lock:
      self._reports += 1
      done = self.steps_per_epoch * min(self._reports, self.reports_per_epoch)
      position = self._epoch_start + done // self.reports_per_epoch
    self.bar.advance_to(position)

  def end_epoch(self, epoch: int) -> None:
    """Epoch ``epoch`` is complete (trained, evaluated and checkpointed)."""
    self.bar.advance_to(epoch * self.steps_per_epoch)
