"""The exceptions that reach the user as a one-line message.

Library code raises :class:`LtvError` for anything the *user* can fix (a bad
file, a missing column, an unknown option value). The CLI prints its message
on one line and exits with a non-zero status; anything else is a bug and keeps
its traceback.

The core speaks in Python parameter names, never in command-line flags: a
message names a parameter in backquotes (```label_set```), which a notebook
user reads as is and the CLI rewrites as the flag that sets it
(``--label-set``; ``ltvcli.cli.app``). A bad value of one named parameter is an
:class:`OptionError`, so neither layer has to know the other's spelling.
"""

import re
from typing import Callable

#: A parameter named in a message or help text: a Python identifier in backquotes.
_MENTION = re.compile(r"`([a-z_][a-z0-9_]*)`")


class LtvError(Exception):
    """A problem with the user's input, explained in one line (parameters named in backquotes)."""


class OptionError(LtvError):
    """A bad value of the Python parameter ``parameter``; ``problem`` says what is wrong and what was expected.

    ``str(error)`` is ``"<parameter> <problem>"``, or just ``problem`` when the
    problem names the parameter itself in backquotes (``"unknown `label_set` 'x'"``);
    the CLI shows the flag in its place.
    """

    def __init__(self, parameter: str, problem: str):
        self.parameter = parameter
        self.problem = problem
        super().__init__(problem if self.names_itself else f"{parameter} {problem}")

    @property
    def names_itself(self) -> bool:
        """Whether ``problem`` already names the parameter (in backquotes), so no prefix is needed."""
        return f"`{self.parameter}`" in self.problem


def spell_parameters(text: str, spell: Callable[[str], str]) -> str:
    """``text`` with every parameter named in backquotes written as ``spell(name)`` (the CLI: its flag)."""
    return _MENTION.sub(lambda match: spell(match.group(1)), text)
