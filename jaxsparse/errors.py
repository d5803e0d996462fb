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
