"""The CLI stays instant: help pages and `ltv info` never import torch, torchvision, scikit-learn or transformers.

Each case runs the real entry point, `python -X importtime -m ltvcli ...`, in
a fresh interpreter and reads which modules it imported from the import-time
report on stderr. A behaviour test, not a timing test: how long the imports
take is measured by benchmarks/bench_cli.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "sklearn", "transformers")


def imported_packages(*args: str) -> set[str]:
    """The top-level packages `python -m ltvcli ARGS` imports (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, not an installed ltv
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ltvcli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert len(lines) > 50, proc.stderr[-2000:]  # the report is there
    return {name.split(".")[0] for name in lines}


@pytest.mark.parametrize("args", [("--help",), ("ingest", "--help"), ("train", "--help"), ("demo", "--help")],
                         ids=" ".join)
def test_help_imports_no_heavy_package(args):
    imported = imported_packages(*args)
    assert "typer" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_info_imports_no_heavy_package(tiny_dataset):
    imported = imported_packages("info", str(tiny_dataset.path))
    assert "pandas" in imported  # it did read the dataset
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_every_help_page_together_imports_no_heavy_package():
    """All --help pages in one interpreter: then no command module may import a heavy package at import time."""
    code = ("import sys, typer.main\n"
            "from typer.testing import CliRunner\n"
            "from ltvcli.cli import app\n"
            "def walk(group, prefix):\n"
            "    for name, command in group.commands.items():\n"
            "        yield prefix + [name]\n"
            "        if hasattr(command, 'commands'):\n"
            "            yield from walk(command, prefix + [name])\n"
            "for path in walk(typer.main.get_command(app), []):\n"
            "    assert CliRunner().invoke(app, path + ['--help']).exit_code == 0, path\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
