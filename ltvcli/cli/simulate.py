"""``ltv simulate``: replace a dataset's label sets by simulated annotators."""

from __future__ import annotations

from pathlib import Path

import typer

from ltvcli.cli.app import app, command
from ltvcli.simulate import ANNOTATOR_TYPES, simulate_dataset


@command(app, "simulate")
def simulate(
    dataset: Path = typer.Argument(..., help="A dataset folder with ground truth (e.g. from `ltv ingest cifar10`)."),
    out: Path = typer.Option(..., "--out", help="The new dataset folder to write."),
    annotators: str = typer.Option(",".join(ANNOTATOR_TYPES), help="Comma-separated annotator types, each "
                                                                   "optionally at its own noise level (HS:0.3); "
                                                                   "repeats allowed."),
    noise: float = typer.Option(0.3, help="Noise level of HS, SF, OC and AVG without a level of their own (0-1); "
                                          "AD is always 100 % wrong."),
    seed: int = typer.Option(0, help="Seed of the label draws."),
    matrices: Path = typer.Option(None, help="JSON file of extra annotators, one confusion matrix each (row: "
                                             "true class, column: the label given), e.g.\n\n\b\n"
                                             '{"resident": [[0.9, 0.1], [0.3, 0.7]]}'),
    hardness: float = typer.Option(0.0, help="0: errors fall on any image (the paper). Above 0 each class keeps "
                                             "its number of errors, drawn with probability ∝ difficulty^HARDNESS, "
                                             "so they gather on the images hardest to classify (try 4)."),
    force: bool = typer.Option(False, "--force", help="Replace the ltv dataset already at --out."),
) -> None:
    """Draw one label set per simulated annotator from its confusion matrix (the paper's Figure 3)."""
    kinds = [k for k in annotators.split(",") if k.strip()]
    ds = simulate_dataset(dataset, out, annotators=kinds, noise=noise, seed=seed, matrices=matrices,
                          hardness=hardness, force=force)
    typer.echo(f"{out}: {len(ds)} images, label sets {', '.join(ds.label_set_names)}")
