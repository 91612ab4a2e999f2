"""The one exception type that reaches the user as a one-line message.

Library code raises :class:`LtvError` for anything the *user* can fix (a bad
file, a missing column, an unknown option value). The CLI prints its message
on one line and exits with a non-zero status; anything else is a bug and keeps
its traceback.
"""


class LtvError(Exception):
    """A problem with the user's input, explained in one line."""
