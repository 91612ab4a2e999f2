"""The Typer application object and the wrapper every command is registered through.

The wrapper is what makes the CLI's error contract hold everywhere: an
:class:`~ltvcli.errors.LtvError` becomes ``error: <message>`` on one line of
stderr and exit status 2; Ctrl-C becomes a one-line note and status 130.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import typer
from typer.models import ArgumentInfo, OptionInfo

from ltvcli import __version__
from ltvcli.cli.options import flag
from ltvcli.console import set_verbosity
from ltvcli.errors import LtvError, OptionError, spell_parameters

app = typer.Typer(
    name="ltv",
    help="Label fusion for medical imaging: ingest label sets, learn to vote, export labels, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_app = typer.Typer(help="Read a source dataset into an ltv dataset folder.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ltv {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors, warnings and results; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail about each step."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    set_verbosity(0 if quiet else 2 if verbose else 1)


def command(group: typer.Typer, name: str | None = None, **kwargs) -> Callable:
    """Register ``fn`` as a subcommand of ``group`` with ltv's error handling."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            try:
                return fn(*args, **kw)
            except LtvError as exc:
                typer.echo(f"error: {_cli_message(exc, fn)}", err=True)
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                typer.echo("interrupted; nothing half-written was left: re-run the command to resume "
                           "(`ltv train` needs --resume)", err=True)
                raise typer.Exit(130) from None

        return group.command(name, **kwargs)(wrapper)

    return decorate


def _cli_message(exc: LtvError, fn: Callable) -> str:
    """The error as a command-line user sees it: each Python parameter name becomes the flag that sets it.

    The command function's parameters are the Python API's names, and their
    Typer defaults carry the flags, so the mapping is read off the function;
    a name that is no parameter of this command is another command's option
    (a run "trained with `text`"), spelled the usual way. The core names
    parameters in backquotes (```label_set```); an :class:`OptionError` names
    its own parameter first unless its problem does.
    """
    flags = _flags(fn)

    def spell(name: str) -> str:
        return flags.get(name, flag(name))

    message = str(exc)
    if isinstance(exc, OptionError) and not exc.names_itself:
        message = f"{spell(exc.parameter)} {exc.problem}"
    return spell_parameters(message, spell)


def _flags(fn: Callable) -> dict[str, str]:
    """Python parameter name -> how the command line spells it: the longest ``--flag``, or ARGUMENT."""
    flags = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        info = parameter.default
        if isinstance(info, ArgumentInfo):
            flags[name] = name.upper()
        elif isinstance(info, OptionInfo):
            decls = [d for d in (info.param_decls or ()) if d.startswith("--")]
            flags[name] = max(decls, key=len) if decls else flag(name)
    return flags
