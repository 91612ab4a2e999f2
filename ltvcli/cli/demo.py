"""``ltv demo``: generate a synthetic MIMIC-CXR example and run the whole pipeline on it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import ARCHS, choice
from ltvcli.cli.info import print_summary
from ltvcli.demo.pipeline import DemoResult, DemoStep, run_demo
from ltvcli.demo.runs import COLLAPSED, DEMO_METHODS, UNIFORM, VoteSummary
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
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Trainings at once, one thread each (default: one "
                                                            "per CPU core)."),
) -> None:
    """Generate a small synthetic MIMIC-CXR example and run ltv on it end to end.

    Ingest it and show its counts (ltv info), embed the reports, train each method side by side (image-only
    and image+text), export learning-to-vote's refined labels and evaluate every run and label set on the
    hand-labelled test split."""
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    result = run_demo(out, seed=seed, size=size, workers=workers, n_subjects=subjects, epochs=epochs, arch=arch,
                      lr=lr, methods=chosen, text=text, jobs=jobs, after_step=_show)
    print_votes(result.votes)


def _show(step: DemoStep, result: DemoResult) -> None:
    """What a step produced, where there is more to see than its line: the counts, the scores."""
    from ltvcli.evaluate import print_result

    if step.name == "ingest":
        print_summary(result.summary)
    elif step.name == "evaluate":
        print_result(result.evaluation)


def print_votes(votes: list[VoteSummary], console: Console | None = None) -> None:
    """Learning-to-vote's vote in each ltv run: the mean weight of each label set, and whether it degenerated."""
    if not votes:
        return
    console = console or Console(soft_wrap=False)
    console.print("learning-to-vote: mean vote weight of each label set at the best epoch", highlight=False)
    table = Table()
    table.add_column("run")
    table.add_column("epoch", justify="right")
    for name in votes[0].weights:
        table.add_column(name, justify="right")
    for vote in votes:
        table.add_row(vote.run, str(vote.best_epoch), *(f"{weight:.2f}" for weight in vote.weights.values()))
    console.print(table)
    for vote in votes:
        for note in vote.notes() or ["the vote neither collapsed onto one label set nor stayed uniform"]:
            console.print(f"  {vote.run}: {note}", highlight=False)
    for meaning, seen in ((COLLAPSED, any(v.collapsed for v in votes)), (UNIFORM, any(v.uniform for v in votes))):
        if seen:
            console.print(f"  {meaning}", highlight=False)
