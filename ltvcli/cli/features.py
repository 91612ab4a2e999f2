"""``ltv add-features`` and ``ltv embed-images``: one feature vector per image, stored in the dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import DEVICES, RESNETS, choice


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


@command(app, "embed-images")
def embed_images_command(
    dataset: Path = typer.Argument(..., help="A dataset folder with an image cache."),
    model: Path = typer.Option(..., "--model", help="A torchvision state dict file (a ResNet: see --arch) or a "
                                                    "folder holding a Hugging Face image model saved on disk; "
                                                    "nothing is downloaded."),
    arch: str = typer.Option("resnet50", metavar=choice(RESNETS), help="With a state dict: the ResNet it holds "
                                                                        "the weights of."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", metavar=choice(DEVICES), help="auto (GPU when there is one), cuda or cpu."),
    workers: int = typer.Option(2, help="Threads reading images ahead (0: in the main thread)."),
    force: bool = typer.Option(False, "--force", help="Replace the features the dataset already has."),
) -> None:
    """Compute one feature vector per image with a local vision model, for `--input features`."""
    from ltvcli.features import embed_images

    embed_images(dataset, model, arch=arch, batch_size=batch_size, device=device, workers=workers, force=force)
