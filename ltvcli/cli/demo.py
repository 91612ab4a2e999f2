"""``ltv demo``: generate a synthetic MIMIC-CXR example and run the whole pipeline on it."""

from __future__ import annotations

from pathlib import Path

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import ARCHS, choice
from ltvcli.cli.info import print_summary
from ltvcli.demo.pipeline import DEMO_METHODS, run_demo
from ltvcli.demo.synth import DEFAULT_SUBJECTS


@command(app, "demo")
def demo(
    out: Path = typer.Option(Path("ltv-demo"), "--out", help="Folder for the example, the dataset and the runs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated example and of training."),
    size: int = typer.Option(64, "--size", help="Side of the ingested square images, in pixels."),
    workers: int = typer.Option(0, "--workers", help="Processes for image decoding (default 0: decode in this "
                                                      "process, faster for the demo's small images)."),
    subjects: int = typer.Option(DEFAULT_SUBJECTS, "--subjects", help="Patients in the generated example "
                                                                      "(fewer = faster; the default gives about "
                                                                      "290 frontal images)."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs per method."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (the paper's 1e-4 is for a pretrained "
                                                "ResNet-50; the demo's small CNN starts from scratch)."),
    arch: str = typer.Option("tiny", "--arch", metavar=choice(ARCHS),
                             help="Network: tiny (a small CNN, CPU-friendly) or a ResNet."),
    methods: str = typer.Option(",".join(DEMO_METHODS), "--methods", help="Comma-separated methods to train."),
    text: bool = typer.Option(True, "--text/--no-text", help="Embed the reports (TF-IDF + SVD, a stand-in for "
                                                             "BioBERT) and also train single and ltv with them "
                                                             "(runs single+text, ltv+text)."),
) -> None:
    """Generate a small synthetic MIMIC-CXR example and run ltv on it end to end: ingest, info, embed the
    reports, train each method (image-only and image+text), export the refined labels, evaluate on the
    hand-labelled test split."""
    from ltvcli.evaluate import print_result

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    result = run_demo(out, seed=seed, size=size, workers=workers, n_subjects=subjects, epochs=epochs, arch=arch,
                      lr=lr, methods=chosen, text=text)
    print_summary(result.summary)
    print_result(result.evaluation)
