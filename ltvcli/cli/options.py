"""Command-line options built from declared ones (:mod:`ltvcli.options`): one flag per field, no list to keep.

Typer reads a command's options off its function signature, and a function
may carry a ``__signature__`` built at import time. So ``ltv train`` is
``def train(ctx, **options)`` whose signature :func:`with_options` extends
with a :func:`parameter` for every field of
:class:`~ltvcli.runs.config.TrainConfig` and of the fusion registry's
options: a new field there is a new flag here, with its default, help and
choices. The flags are the field names with ``-`` for ``_`` (:func:`flag`),
which is also how :mod:`ltvcli.cli.app` turns the core's parameter names back
into flags in error messages.

Nothing here imports torch: drawing ``--help`` reads declarations only.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Optional

import typer

from ltvcli.cli.choices import choice
from ltvcli.errors import spell_parameters
from ltvcli.options import Declared


def flag(name: str) -> str:
    """The flag of the Python parameter ``name``: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def parameter(item: Declared, *, help: str | None = None,  # noqa: A002
              argument: bool = False, path: bool = False) -> inspect.Parameter:
    """The Typer parameter of one declared option: its flag (or a positional ``argument``), default, help, choices.

    ``path`` types it as a path (shell completion; the option still receives a
    path string). Parameters the help names in backquotes are written as flags.
    """
    kind = Path if path else item.kind
    text = spell_parameters(help if help is not None else item.rule.help, flag)
    if argument:
        return _keyword(item.name, typer.Argument(..., help=text), kind)
    choices = item.rule.allowed()
    info = typer.Option(... if item.required else item.default, flag(item.name), help=text,
                        metavar=choice(choices) if choices else None)
    return _keyword(item.name, info, Optional[kind] if item.optional else kind)


def with_options(parameters: list[inspect.Parameter]) -> Callable[[Callable], Callable]:
    """Add ``parameters`` to ``fn(..., **options)``'s own: Typer builds an option for each, ``fn`` gets them in
    ``options``."""

    def decorate(fn: Callable) -> Callable:
        own = [p for p in inspect.signature(fn).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        fn.__signature__ = inspect.Signature(own + parameters)
        return fn

    return decorate


def _keyword(name: str, default: object, annotation: object) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
