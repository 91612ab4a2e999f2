"""``ltv demo``: generate a synthetic MIMIC-CXR example and run the pipeline on it."""

from __future__ import annotations

from pathlib import Path

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.info import print_summary
from ltvcli.demo.pipeline import run_demo
from ltvcli.demo.synth import DEFAULT_SUBJECTS


@command(app, "demo")
def demo(
    out: Path = typer.Option(Path("ltv-demo"), "--out", help="Folder for the example, the dataset and the runs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated example (same seed, same files)."),
    size: int = typer.Option(64, "--size", help="Side of the ingested square images, in pixels."),
    workers: int = typer.Option(0, "--workers", help="Processes for image decoding (default 0: decode in this "
                                                      "process, faster for the demo's small images)."),
    subjects: int = typer.Option(DEFAULT_SUBJECTS, "--subjects", help="Patients in the generated example "
                                                                      "(fewer = faster; the default gives about "
                                                                      "270 frontal images)."),
) -> None:
    """Generate a small synthetic MIMIC-CXR example and run ltv on it, end to end, in a few minutes."""
    result = run_demo(out, seed=seed, size=size, workers=workers, n_subjects=subjects)
    print_summary(result.summary)
