"""The Typer application object, the wrapper every command is registered through, and how help names values.

The wrapper is what makes the CLI's error contract hold everywhere: an
:class:`~ltvcli.errors.LtvError` becomes ``error: <message>`` on one line of
stderr and exit status 2; Ctrl-C becomes a one-line note and status 130.

Every command is an :class:`LtvCommand`, whose help names values the
conventional way: ``DATASET``, ``--out PATH``, ``--epochs INTEGER``, a flag
with no value after it, and ``--arch [tiny|resnet18|resnet34|resnet50]`` for
an option with ``metavar=choice(...)`` (:mod:`ltvcli.cli.choices`) or a
``Literal`` type.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable, get_args

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import ArgumentInfo, OptionInfo

from ltvcli import __version__
from ltvcli.cli.choices import choice
from ltvcli.cli.options import flag
from ltvcli.console import set_verbosity
from ltvcli.errors import LtvError, OptionError, spell_parameters


# ----------------------------------------------------------------------------- how help names values
#: The word a help page shows for an option's value, by its Python type (Click's conventional names).
TYPE_METAVARS = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH"}


class _Argument(TyperArgument):
    """A positional argument shown by its metavar alone: ``DATASET``, ``[RUNS]...``.

    Typer 0.29 writes a required argument as ``{dataset}`` in the usage line and
    adds its type (``<path>``) beside the name; the upper-case name says both.
    """

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return [name + ("..." if self.nargs != 1 else "")]


def _option_metavar(option: TyperOption) -> str:
    """``""`` for a flag (it takes no value), ``[a|b]`` for a Literal/Enum, else the type's conventional name."""
    if option.is_flag:
        return ""
    described = option.type_descriptor
    if described.is_choice:
        return choice([str(getattr(c, "value", c)) for c in described.choices])
    if described.is_path:
        return TYPE_METAVARS[Path]
    if described.is_tuple:
        return " ".join(TYPE_METAVARS.get(t, "TEXT") for t in get_args(described.annotation))
    annotation = get_args(described.annotation)[0] if described.is_list else described.annotation
    return TYPE_METAVARS.get(annotation, "TEXT")


def _conventional(params: list) -> list:
    """Give each parameter without an explicit metavar the conventional one (in place; idempotent)."""
    for param in params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument  # Typer builds the parameter objects itself and has no hook for their class
            param.metavar = param.metavar or param.name.upper()
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = _option_metavar(param)
    return params


class LtvCommand(TyperCommand):
    """A command whose help reads like a conventional CLI: ``DATASET``, ``--out PATH``, ``--arch [tiny|...]``.

    Its line in the parent's command list is the docstring's whole first
    paragraph, wrapped, not cut to 45 characters and "...".
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.help and not self.short_help:
            self.short_help = " ".join(inspect.cleandoc(self.help).split("\n\n")[0].split())

    def get_params(self, ctx: Any) -> list:
        return _conventional(super().get_params(ctx))


class LtvGroup(TyperGroup):
    """The same for a command group's own options (``--quiet``, ``--help``)."""

    def get_params(self, ctx: Any) -> list:
        return _conventional(super().get_params(ctx))


# ----------------------------------------------------------------------------- the application
# rich_markup_mode=None: help pages in Click's plain layout. Typer's rich panels squeeze an option's help
# into a third of an 80-column terminal beside its metavar, and read help texts as rich markup, where an
# example like {"resident": [[0.9, 0.1], [0.3, 0.7]]} loses its brackets. Plain, every text is shown as
# written; a paragraph that starts with \b keeps its line breaks.
app = typer.Typer(
    name="ltv",
    help="Label fusion for medical imaging: ingest label sets, learn to vote, export labels, evaluate.",
    cls=LtvGroup,
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_app = typer.Typer(help="Read a source dataset into an ltv dataset folder.", cls=LtvGroup,
                         rich_markup_mode=None, no_args_is_help=True)
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

        return group.command(name, cls=LtvCommand, **kwargs)(wrapper)

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
