"""The ``ltv`` command line: one module per subcommand group, all thin over the Python API.

The modules are imported in the order ``ltv --help`` lists the commands: the
everyday path first (info, train, export-labels, predict, evaluate), then the
tools around it, the demo last; Typer lists the ``ingest`` group after the
commands. None of them imports torch, torchvision or
scikit-learn at import time (every ``--help`` imports all of them); the
commands import what they need when they run.
"""

from ltvcli.cli.app import app
from ltvcli.cli import info as _info  # noqa: F401  (registers commands)
from ltvcli.cli import ingest as _ingest  # noqa: F401
from ltvcli.cli import train as _train  # noqa: F401
from ltvcli.cli import evaluate as _evaluate  # noqa: F401
from ltvcli.cli import simulate as _simulate  # noqa: F401
from ltvcli.cli import text as _text  # noqa: F401
from ltvcli.cli import features as _features  # noqa: F401
from ltvcli.cli import refine as _refine  # noqa: F401
from ltvcli.cli import reports as _reports  # noqa: F401
from ltvcli.cli import demo as _demo  # noqa: F401


def main() -> None:
    """Entry point of the ``ltv`` console script."""
    app()
