"""``ltv add-features`` and ``ltv embed-images``: one feature vector per image, stored in the dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import app, command


@command(app, "add-features")
def add_features_command(
    dataset: Path = typer.Argument(..., help="A dataset folder written by `ltv ingest`."),
    file: Path = typer.Argument(..., help="The vectors, keyed by image id: .csv or .parquet (an image_id column "
                                          "and D value columns), .npz (features and image_id arrays), or .npy "
                                          "with --ids."),
    ids: Optional[Path] = typer.Option(None, "--ids", metavar="FILE", help="With a .npy FILE: the image id of each "
                                                                          "row, in order (a CSV with an image_id "
                                                                          "column, e.g. DATASET/images.csv, or .txt, "
                                                                          "one per line)."),
    force: bool = typer.Option(False, "--force", help="Replace the features the dataset already has."),
) -> None:
    """Add precomputed image features (e.g. a foundation model's embeddings) to a dataset, for `--input features`."""
    from ltvcli.features import add_features

    add_features(dataset, file, ids=ids, force=force)
