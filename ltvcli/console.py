"""Terminal output shared by the library and the CLI.

One rich console, one verbosity setting. Library functions report progress
through :func:`track` and :func:`log`, so the CLI's ``--quiet`` and
``--verbose`` apply to them too, and a notebook user gets the same bars.
Nothing here ever prints patient identifiers: callers pass counts and file
names, not rows.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
_verbosity = 1  # 0 quiet, 1 normal, 2 verbose


def set_verbosity(level: int) -> None:
    """0 hides progress bars and notes, 1 is the default, 2 adds detail lines."""
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    """The current level (0 quiet, 1 normal, 2 verbose); whether to draw a live view is :func:`progress_bars`."""
    return _verbosity


def progress_bars() -> bool:
    """Whether to draw progress bars: not with --quiet, and only on a terminal.

    A log file or a pipe would get each bar's final state as one more line
    (``ltv train`` printed every epoch twice: its line, then its bar), so
    there the result lines alone tell the story.
    """
    return _verbosity >= 1 and console.is_terminal


@contextmanager
def console_to(file: TextIO) -> Iterator[None]:
    """Send everything the shared console prints to ``file`` for a while (a worker's log file).

    Afterwards it writes to whatever ``sys.stderr`` is at the time again (a
    test runner swaps it per command), not to the stream it had before.
    """
    console.file = file
    try:
        yield
    finally:
        console.file = None  # rich: no file of its own, so sys.stderr when printing


def log(message: str, *, level: int = 1) -> None:
    """Print a note on stderr if the verbosity allows it (level 2 = only with --verbose)."""
    if _verbosity >= level:
        console.print(message, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print a warning; shown even with --quiet because it may change what the user does next."""
    console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


@contextmanager
def track(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` items; yields ``advance(n)``.

    With --quiet, off a terminal (see :func:`progress_bars`) or when nothing
    is to be done the bar is not drawn, and ``advance`` is a no-op, so
    callers never branch on verbosity.
    """
    if not progress_bars() or total == 0:
        yield lambda n=1: None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
