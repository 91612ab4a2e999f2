"""``ltv ingest mimic|openi|table|cifar10|npz``: thin wrappers over the ``ltvcli.ingest`` functions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import command, ingest_app
from ltvcli.cli.choices import BLANK_POLICIES, IMAGE_FORMATS, MISSING_LABELS, NPZ_TASKS, TABLE_TASKS, choice
from ltvcli.console import log

OUT = typer.Option(..., "--out", help="Dataset folder to write (replaced only when the new one is complete).")
SIZE = typer.Option(256, "--size", help="Side of the square cache images, in pixels.")
WORKERS = typer.Option(None, "--workers", help="Decoding processes (default: min(8, CPU count); 0 = this process).")
STRICT = typer.Option(False, "--strict", help="Stop at the first unreadable image (default: list it in "
                                              "skipped.csv and go on).")


def _names(text: str) -> list[str]:
    """Split a comma-separated option value ('PA,AP') into its names."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _done(dataset) -> None:
    log(f"run `ltv info {dataset.path}` to see the counts")


@command(ingest_app, "mimic")
def mimic(
    metadata: Path = typer.Option(..., help="mimic-cxr-2.0.0-metadata.csv[.gz]"),
    split: Path = typer.Option(..., help="mimic-cxr-2.0.0-split.csv[.gz] (the official split)"),
    negbio: Path = typer.Option(..., help="mimic-cxr-2.0.0-negbio.csv[.gz]"),
    chexpert: Path = typer.Option(..., help="mimic-cxr-2.0.0-chexpert.csv[.gz]"),
    images: Path = typer.Option(..., help="Root of the image tree: files/pXX/pSUBJECT/sSTUDY/ holding "
                                          "<dicom_id>.jpg or .dcm"),
    out: Path = OUT,
    size: int = SIZE,
    views: str = typer.Option("PA,AP", help="ViewPosition values to keep, comma-separated, or 'all'."),
    uncertain: str = typer.Option("u0,u1", help="Uncertainty policies, one label set per labeller and policy: "
                                                "u0, u1, ignore (= missing)."),
    blank: str = typer.Option("0", metavar=choice(BLANK_POLICIES),
                              help="What a blank (not mentioned) finding becomes: 0, 1 or ignore."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Hand-labelled CSV keyed by dicom_id "
                                                "(or image) or study_id, one column per finding, values 1/0/blank."),
    reports: Optional[Path] = typer.Option(None, help="Root of files/pXX/pSUBJECT/sSTUDY.txt (default: --images)."),
    image_format: str = typer.Option("auto", "--image-format", metavar=choice(IMAGE_FORMATS),
                                     help="auto (per image: .jpg if present, else .dcm), jpg or dcm."),
    missing_labels: str = typer.Option("error", "--missing-labels", metavar=choice(MISSING_LABELS),
                                       help="A study without a row in a label CSV: error, or skip its images."),
    workers: Optional[int] = WORKERS,
    strict: bool = STRICT,
) -> None:
    """MIMIC-CXR / MIMIC-CXR-JPG: NegBio and CheXpert label sets per uncertainty policy, official split."""
    from ltvcli.ingest.mimic import ingest_mimic

    dataset = ingest_mimic(metadata=metadata, split=split, negbio=negbio, chexpert=chexpert, images=images, out=out,
                           size=size, views=_names(views), uncertain=_names(uncertain), blank=blank,
                           ground_truth=ground_truth, reports=reports, image_format=image_format, workers=workers,
                           strict=strict, missing_labels=missing_labels)
    _done(dataset)


@command(ingest_app, "openi")
def openi(
    reports: Path = typer.Option(..., help="Folder of NLM report XMLs (ecgen-radiology/) or the Kaggle "
                                           "indiana_reports.csv."),
    images: Path = typer.Option(..., help="Folder of the PNG images (NLMCXR_png/ or images_normalized/)."),
    out: Path = OUT,
    projections: Optional[Path] = typer.Option(None, help="Kaggle indiana_projections.csv, or for the XML layout a "
                                                          "CSV with an image id and a projection/view/ViewPosition "
                                                          "column."),
    views: str = typer.Option("PA,AP,Frontal", help="Views to keep, comma-separated, or 'all'."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Hand-labelled CSV keyed by image id "
                                                "(image_id/image/filename) or report id (uid), one column per "
                                                "finding, values 1/0/blank."),
    size: int = SIZE,
    workers: Optional[int] = WORKERS,
    strict: bool = STRICT,
) -> None:
    """OpenI / Indiana University CXR (NLM XML or Kaggle CSV layout): a hand-labelled test set, split `test`."""
    from ltvcli.ingest.openi import ingest_openi

    dataset = ingest_openi(reports=reports, images=images, out=out, projections=projections, views=_names(views),
                           ground_truth=ground_truth, size=size, workers=workers, strict=strict)
    _done(dataset)


@command(ingest_app, "table")
def table(
    labels: Path = typer.Argument(..., help="Label table, CSV(.gz) or Parquet: wide (image, <set> or <set>:<class> "
                                            "columns) or long (image, labeller, label | finding, value)."),
    images: Path = typer.Option(..., help="Folder the table's image paths are relative to."),
    out: Path = OUT,
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Trusted labels: image,label or "
                                                "image,finding,value or image,<class>,..."),
    task: str = typer.Option("auto", metavar=choice(TABLE_TASKS), help="auto (from the columns), multilabel or "
                                                                       "multiclass."),
    classes: Optional[str] = typer.Option(None, help="Class names in order, comma-separated (default: from the "
                                                     "file)."),
    channels: int = typer.Option(1, metavar="[1|3]", help="1 (grayscale) or 3 (RGB)."),
    size: int = SIZE,
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of images drawn for validate when the "
                                                                   "table has no split column."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Share drawn for test (no split column)."),
    seed: int = typer.Option(0, help="Seed of the random split."),
    workers: Optional[int] = WORKERS,
    strict: bool = STRICT,
) -> None:
    """Your own labellers' labels from a wide or long table, images from a folder."""
    from ltvcli.ingest.table import ingest_table

    dataset = ingest_table(labels, images=images, out=out, ground_truth=ground_truth, task=task,
                           classes=_names(classes) if classes else None, channels=channels, size=size,
                           val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, workers=workers,
                           strict=strict)
    _done(dataset)


@command(ingest_app, "cifar10")
def cifar10(
    root: Path = typer.Option(..., help="Folder with data_batch_1..5, test_batch, batches.meta (or its parent)."),
    out: Path = OUT,
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of the train batches held out as "
                                                                   "validate."),
    seed: int = typer.Option(0, help="Seed of the validate hold-out."),
    limit: Optional[int] = typer.Option(None, help="Keep only the first N images of each batch (quick runs)."),
) -> None:
    """CIFAR-10 python batches: 32x32 RGB, clean labels as ground truth, no label sets yet."""
    from ltvcli.ingest.cifar10 import ingest_cifar10

    _done(ingest_cifar10(root=root, out=out, val_fraction=val_fraction, seed=seed, limit=limit))


@command(ingest_app, "npz")
def npz(
    path: Path = typer.Argument(..., help="A .npz with <split>_images and <split>_labels (split: train, val, test)."),
    out: Path = OUT,
    task: str = typer.Option("auto", metavar=choice(NPZ_TASKS),
                             help="auto (one label column: multiclass; several 0/1 columns: multilabel), multiclass "
                                  "or multilabel."),
    classes: str = typer.Option("", help="Class names, comma-separated (default: the file's class_names)."),
    val_fraction: Optional[float] = typer.Option(
        None, "--val-fraction", help="Pool train and val and hold out this share as validate (default: the "
                                     "file's val split, or 0.2 of train without one)."),
    seed: int = typer.Option(0, help="Seed of the validate hold-out."),
    limit: Optional[int] = typer.Option(None, help="Keep only the first N images of each split (quick runs)."),
) -> None:
    """Images and clean labels as numpy arrays (MedMNIST layout): ground truth, no label sets yet."""
    from ltvcli.ingest.npz import ingest_npz

    _done(ingest_npz(path=path, out=out, task=task, classes=_names(classes) or None, val_fraction=val_fraction,
                     seed=seed, limit=limit))
