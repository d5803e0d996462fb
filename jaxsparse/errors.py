"""The error type for mistakes a user can fix (bad config, missing data, bad workdir)."""


class UserError(Exception):
  """A problem in the user's input. The command line prints its one-line
  message (which names the field, the value and the fix) without a traceback."""
