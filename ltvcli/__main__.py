"""``python -m ltvcli`` runs the same command line as the ``ltv`` script."""

from ltvcli.cli import main

main()
