"""The package's layers, read from its source: every import points down (or within its own unit), no cycles.

Each top-level module or package of ``ltvcli`` is a *unit*. Units sit in
layers, lowest first; a unit may import its own modules and units of lower
layers, never a unit of its own layer or above. So the runtime layer stands
below everything that computes, ``train`` is reached by nothing but the demo
and the CLI, and evaluation and refinement read runs through ``ltvcli.runs``.
Every ``import`` statement counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import ltvcli

PACKAGE = Path(ltvcli.__file__).parent

LAYERS = [
    {"__init__", "errors", "backbones", "metrics", "workers"},
    {"atomic", "outputs", "console", "options", "csvio", "findings"},
    {"dataset"},
    {"runtime"},
    {"models"},
    {"fusion", "text", "features", "heads"},
    {"runs"},
    {"train", "evaluate", "refine", "ingest", "simulate", "reports"},
    {"demo"},
    {"cli"},
    {"__main__"},
]
LAYER = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}


def unit_of(path: Path) -> str:
    """The unit a source file belongs to: its top-level package, or its own module name."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def imported_units(path: Path) -> set[str]:
    """The ltvcli units ``path`` imports (``from ltvcli import csvio`` counts as ``csvio``)."""
    units = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "ltvcli":
            names = [f"ltvcli.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ltvcli":
                units.add(parts[1] if len(parts) > 1 and parts[1] in LAYER else "__init__")
    return units


@functools.cache
def dependencies() -> dict[str, set[str]]:
    """Unit -> the other units it imports, over every source file of the package (parsed once per session)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = unit_of(path)
        graph.setdefault(unit, set()).update(imported_units(path) - {unit})
    return graph


def test_every_unit_has_a_layer():
    assert set(dependencies()) <= set(LAYER), f"place these in LAYERS: {set(dependencies()) - set(LAYER)}"


def test_imports_only_point_down():
    upward = sorted((unit, other) for unit, others in dependencies().items() for other in others
                    if LAYER[other] >= LAYER[unit])
    assert not upward, f"imports of a unit in the same or a higher layer: {upward}"


def test_nothing_below_the_cli_reaches_into_train():
    for unit in ("fusion", "text", "refine", "evaluate", "ingest", "runs", "runtime", "dataset", "simulate"):
        assert "train" not in dependencies()[unit], unit


def test_no_cycle_between_units():
    graph, done, path = dependencies(), set(), []

    def visit(unit: str) -> None:
        assert unit not in path, f"import cycle: {' -> '.join(path[path.index(unit):] + [unit])}"
        if unit in done:
            return
        path.append(unit)
        for other in sorted(graph.get(unit, ())):
            visit(other)
        path.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)


def test_the_checker_sees_a_violation(tmp_path):
    """The rules are not vacuous: an upward import in a file is found."""
    bad = PACKAGE / "fusion" / "__init__.py"
    source = tmp_path / "bad.py"
    source.write_text(bad.read_text(encoding="utf-8") + "\nfrom ltvcli.train import train\n", encoding="utf-8")
    assert "train" in imported_units(source)
