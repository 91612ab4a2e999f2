"""The exceptions that reach the user as a one-line message.

Library code raises :class:`LtvError` for anything the *user* can fix (a bad
file, a missing column, an unknown option value). The CLI prints its message
on one line and exits with a non-zero status; anything else is a bug and keeps
its traceback.

A bad value of a named parameter is an :class:`OptionError`: the Python API
speaks in its own parameter names (``batch_size``), and the CLI rewrites the
name as the flag that sets it (``--batch-size``), so neither layer has to know
the other's spelling.
"""


class LtvError(Exception):
    """A problem with the user's input, explained in one line."""


class OptionError(LtvError):
    """A bad value of the Python parameter ``parameter``; ``problem`` says what is wrong and what was expected.

    ``str(error)`` is ``"<parameter> <problem>"``; the CLI shows ``"<--flag> <problem>"``.
    """

    def __init__(self, parameter: str, problem: str):
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter} {problem}")
