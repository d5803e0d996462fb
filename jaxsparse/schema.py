"""Declared config fields: a default, one line of documentation and a check of the value.

Every field of a config is one :class:`Field`: the core fields in
:mod:`jaxsparse.config` (grouped by section), each method's own in its
declaration (:func:`jaxsparse.sparsify.register`), so that defaults,
validation and docs/configuration.md come from one table. A check returns
``None`` for a valid value, else what is allowed instead (one line: the
config's error names the field and the value around it).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

#: ``(value, config) -> None`` if ``value`` is valid, else what is allowed (e.g. "use 1 or
#: more"); ``config`` is the whole (complete) config, for limits such as
#: ``training.num_epochs``.
Check = Callable[[Any, Any], "str | None"]


class Field(NamedTuple):
  """A config field.

  Attributes:
    default: its value when a config does not set it.
    doc: one line for the reader of a config (docs/configuration.md shows it).
    check: see :data:`Check`; applied to the config's value (and, for a method's
      field, to every value the population sweeps).
  """
  default: Any
  doc: str
  check: Check | None = None


def is_number(value) -> bool:
  """A finite int or float (not a bool, a string or NaN)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def is_whole(value) -> bool:
  """An int (not a bool)."""
  return isinstance(value, int) and not isinstance(value, bool)


def at_least(low: float, allowed: str) -> Check:
  """A check: the value is a number >= ``low``, else ``allowed`` (what to use instead)."""
  return lambda value, config: None if is_number(value) and value >= low else allowed


def whole_at_least(low: int, allowed: str) -> Check:
  """A check: the value is a whole number >= ``low``, else ``allowed``."""
  return lambda value, config: None if is_whole(value) and value >= low else allowed


def positive(allowed: str) -> Check:
  """A check: the value is a number > 0, else ``allowed``."""
  return lambda value, config: None if is_number(value) and value > 0 else allowed


def finite(allowed: str) -> Check:
  """A check: the value is a finite number, else ``allowed``."""
  return lambda value, config: None if is_number(value) else allowed


def within(low: float, high: float, allowed: str, closed: bool = False) -> Check:
  """A check: the value is a number in [low, high) (or [low, high] if ``closed``)."""
  def check(value, config):
    inside = is_number(value) and low <= value and (value <= high if closed else value < high)
    return None if inside else allowed
  return check


def one_of(choices: tuple) -> Check:
  """A check: the value is one of ``choices``."""
  return lambda value, config: None if value in choices else \
      f"use one of {', '.join(map(str, choices))}"


def boolean(value, config) -> str | None:
  """A check: the value is True or False."""
  del config
  return None if isinstance(value, bool) else "use True or False"


def text(value, config) -> str | None:
  """A check: the value is a string."""
  del config
  return None if isinstance(value, str) else "use a string"


def values(each: Check, what: str, nonempty: bool = False, distinct: bool = True) -> Check:
  """A check of a tuple field: a tuple (or list) whose every item passes ``each``; with
  ``nonempty`` at least one item; with ``distinct`` no item twice (a repeated grid value
  makes identical members, counted twice in every statistic)."""
  def check(value, config):
    if not isinstance(value, (tuple, list)):
      return f"list the values, e.g. ({value!r},)"
    if nonempty and not value:
      return f"{what}; list at least one value" if what else "list at least one value"
    for item in value:
      allowed = each(item, config)
      if allowed:
        return f"{allowed} (item {item!r})"
    if distinct:
      for index, item in enumerate(value):
        if item in value[:index]:
          return f"{item!r} is listed twice; list each value once"
    return None
  return check
