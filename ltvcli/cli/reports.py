"""``ltv label-reports``: label each image's report with medspaCy's ConText and add the labeller's label sets."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ltvcli.cli.app import app, command


@command(app, "label-reports")
def label_reports(
    dataset: Path = typer.Argument(..., help="A multi-label dataset whose images have reports (e.g. from "
                                             "`ltv ingest openi`, or MIMIC with --reports)."),
    out: Path = typer.Option(..., "--out", help="The new dataset folder to write (a new or empty folder, or with "
                                                "--force an ltv dataset): DATASET plus the label sets LABELLER_u0 "
                                                "and LABELLER_u1, over DATASET's images (none copied)."),
    labeller: str = typer.Option("medspacy", "--labeller", help="Name of the labeller in the new dataset."),
    rules: Optional[List[Path]] = typer.Option(None, "--rules", help="A rules CSV (kind,finding,phrase,option) "
                                                                     "whose rows are added to ltv's; repeatable. "
                                                                     "See docs/label-reports.md."),
    replace_rules: bool = typer.Option(False, "--replace-rules", help="Use only the --rules files, not ltv's."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Labelling processes (default: min(8, CPU "
                                                                  "count); 0 = this process)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Reports per spaCy batch."),
    force: bool = typer.Option(False, "--force", help="Replace the ltv dataset already at --out."),
) -> None:
    """Label every image's report (positive / negative / uncertain / not mentioned per finding)."""
    from ltvcli.reports.label import label_reports as label_reports_api

    ds = label_reports_api(dataset, out, labeller=labeller, rules=rules or [], replace_rules=replace_rules,
                           workers=workers, batch_size=batch_size, force=force)
    typer.echo(f"{out}: {len(ds)} images, label sets {', '.join(ds.label_set_names)}")
