"""The error type for mistakes a user can fix (bad config, missing data, bad workdir)."""

import functools
import sys
from typing import Any, Callable


class UserError(Exception):
  """A problem in the user's input. The command line prints its one-line
  message (which names the field, the value and the fix) without a traceback."""


def invalid_field(field: str, value: Any, allowed: str) -> UserError:
  """The error for ``config.<field>=<value>``, saying what is allowed instead."""
  return UserError(f"config.{field}={value!r} is invalid: {allowed}")


def summary(error: BaseException, limit: int = 200) -> str:
  """``Type: first line of the message`` of an exception raised by code that is not
  jaxsparse's (a library, a user's module), for a one-line error (the message may be
  empty or span many lines)."""
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


def raised_at(error: BaseException) -> str:
  """``' (at file:line)'``: where ``error`` was raised (its innermost frame), or ''."""
  frame = error.__traceback__
  while frame is not None and frame.tb_next is not None:
    frame = frame.tb_next
  return "" if frame is None else f" (at {frame.tb_frame.f_code.co_filename}:{frame.tb_lineno})"


def exit_on_user_error(main: Callable[..., Any]) -> Callable[..., Any]:
  """``main`` for a command line: a :class:`UserError` it raises ends the process with
  ``error: <message>`` on stderr and exit status 2 (no traceback), as a usage error does."""

  @functools.wraps(main)
  def checked_main(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as error:
      exit_with_error(str(error))
  return checked_main


def exit_with_error(message: str) -> None:
  """Ends a command line with ``error: <message>`` on stderr and exit status 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
