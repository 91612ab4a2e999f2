"""Options declared once: each is a dataclass field with its default, its help and the values it accepts.

A training run (:class:`ltvcli.runs.config.TrainConfig`) and each fusion method
(:mod:`ltvcli.fusion.registry`) declare their options as fields made with
:func:`option` on an :class:`Options` dataclass. Creating one checks every field
here, in one place, and a bad value raises :class:`~ltvcli.errors.OptionError`
naming the Python parameter. ``ltv train`` builds its flags, help and choices
from the same fields (:mod:`ltvcli.cli.options`), so a new option is one new field.

Nothing here imports torch: the CLI reads the declarations to draw ``--help``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from ltvcli.errors import LtvError, OptionError


@dataclass(frozen=True)
class Range:
    """The numbers an option accepts: from ``low`` to ``high`` (None: unbounded), each end open or closed."""

    low: float | None
    high: float | None
    low_open: bool
    high_open: bool
    text: str  # what the error message says was expected

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below


POSITIVE = Range(0, None, True, False, "a positive number")
NON_NEGATIVE = Range(0, None, False, False, "a non-negative number")
UNIT = Range(0, 1, False, False, "a number between 0 and 1")
OPEN_UNIT = Range(0, 1, True, True, "a number strictly between 0 and 1")


@dataclass(frozen=True)
class Rule:
    """What one option field declares besides its default: help text, choices, a numeric range."""

    help: str
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    range: Range | None = None

    def allowed(self) -> tuple[str, ...]:
        """The choices; a callable is asked at use time (choices that come from a registry)."""
        return self.choices() if callable(self.choices) else self.choices


def option(default: Any = dataclasses.MISSING, help: str = "", *, choices=(), range: Range | None = None):  # noqa: A002
    """A dataclass field declaring an option: its default, its help and the values it accepts."""
    return dataclasses.field(default=default, metadata={"rule": Rule(help, choices, range)})


@dataclass(frozen=True)
class Declared:
    """One declared option, as the CLI and the validation see it."""

    name: str
    kind: type  # bool, int, float or str
    optional: bool  # None is a value (meaning "not set")
    default: Any  # dataclasses.MISSING when the option is required
    rule: Rule

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING


class Options:
    """Base of an options dataclass: every field made with :func:`option` is checked when it is created."""

    def __post_init__(self) -> None:
        for item in self.declared():
            object.__setattr__(self, item.name, checked(item, getattr(self, item.name)))

    @classmethod
    def declared(cls) -> list[Declared]:
        """The declared options, in field order."""
        hints = typing.get_type_hints(cls)
        return [_declared(field, hints[field.name]) for field in dataclasses.fields(cls) if "rule" in field.metadata]

    @classmethod
    def names(cls) -> list[str]:
        return [item.name for item in cls.declared()]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]):
        """An instance from ``values`` by name (None or absent: the default); an unknown name is an error."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise LtvError(f"unknown option(s) {', '.join(unknown)}; {cls.__name__} has {', '.join(cls.names())}")
        return cls(**{name: value for name, value in values.items() if value is not None})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def checked(item: Declared, value: Any) -> Any:
    """``value`` for ``item`` after checking its type, choices and range (ints become floats where floats are
    declared); raises :class:`OptionError` naming the option and what it accepts."""
    if value is None and item.optional:
        return None
    value = _typed(item, value)
    choices = item.rule.allowed()
    if choices and value not in choices:
        raise OptionError(item.name, f"{value!r}: expected one of {', '.join(choices)}")
    if item.rule.range is not None and value not in item.rule.range:
        raise OptionError(item.name, f"{value}: expected {item.rule.range.text}")
    return value


def _typed(item: Declared, value: Any) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if item.kind is bool and isinstance(value, bool):
        return value
    if item.kind is int and number and float(value).is_integer():
        return int(value)
    if item.kind is float and number:
        return float(value)
    if item.kind is str and isinstance(value, str):
        return value
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a name"}[item.kind]
    raise OptionError(item.name, f"{value!r}: expected {expected}")


def _declared(field: dataclasses.Field, hint: Any) -> Declared:
    """A field's declaration; ``hint`` is its resolved type (``float``, ``str | None``, ...)."""
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    kinds = [part for part in parts if part is not type(None)]
    return Declared(field.name, kinds[0], len(kinds) < len(parts), field.default, field.metadata["rule"])
