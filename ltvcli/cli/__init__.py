"""The ``ltv`` command line: one module per subcommand group, all thin over the Python API."""

from ltvcli.cli.app import app
from ltvcli.cli import info as _info  # noqa: F401  (registers commands)
from ltvcli.cli import ingest as _ingest  # noqa: F401
from ltvcli.cli import demo as _demo  # noqa: F401
from ltvcli.cli import train as _train  # noqa: F401
from ltvcli.cli import simulate as _simulate  # noqa: F401
from ltvcli.cli import text as _text  # noqa: F401
from ltvcli.cli import evaluate as _evaluate  # noqa: F401
from ltvcli.cli import refine as _refine  # noqa: F401
from ltvcli.cli import reports as _reports  # noqa: F401


def main() -> None:
    """Entry point of the ``ltv`` console script."""
    app()
