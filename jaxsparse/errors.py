"""The error type for mistakes a user can fix (bad config, missing data, bad workdir)."""

from typing import Any


class UserError(Exception):
  """A problem in the user's input. The command line prints its one-line
  message (which names the field, the value and the fix) without a traceback."""


def invalid_field(field: str, value: Any, allowed: str) -> UserError:
  """The error for ``config.<field>=<value>``, saying what is allowed instead."""
  return UserError(f"config.{field}={value!r} is invalid: {allowed}")
