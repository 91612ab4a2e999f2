"""``ltv ingest mimic|openi|table|cifar10|npz``: thin wrappers over the ``ltvcli.ingest`` functions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import command, ingest_app
from ltvcli.cli.choices import BLANK_POLICIES, DEVICES, IMAGE_FORMATS, MISSING_LABELS, NPZ_TASKS, TABLE_TASKS, choice
from ltvcli.console import log
from ltvcli.errors import LtvError

OUT = typer.Option(..., "--out", help="Dataset folder to write: a new or empty folder, or with --force an ltv "
                                       "dataset (replaced only when the new one is complete).")
FORCE = typer.Option(False, "--force", help="Replace the ltv dataset already at --out (nothing else is ever "
                                            "replaced).")
SIZE = typer.Option(256, "--size", help="Side of the square cache images, in pixels.")
WORKERS = typer.Option(None, "--workers", help="Decoding processes (default: min(8, CPU count); 0 = this process).")
DEVICE = typer.Option("cpu", "--device", metavar=choice(DEVICES), help="cpu: decode in worker processes; cuda: decode JPEGs in batches "
                                               "on the GPU (nvJPEG), other files on the CPU; auto: cuda when "
                                               "there is one.")
STRICT = typer.Option(False, "--strict", help="Stop at the first unreadable image (default: list it in "
                                              "skipped.csv and go on).")
NO_IMAGES = typer.Option(False, "--no-images", help="Ingest the labels only: no image is read, the dataset has no "
                                                    "image cache; `ltv info` works, commands that need pixels "
                                                    "refuse it. With --features: a dataset of features, which "
                                                    "`ltv train` trains on.")
FEATURES = typer.Option(None, "--features", metavar="FILE", help="One feature vector per image (a foundation "
                                                                "model's embeddings, say), keyed by image id: .csv "
                                                                "or .parquet (an image_id column and D value "
                                                                "columns), .npz (features and image_id arrays), or "
                                                                ".npy with --feature-ids.")
FEATURE_IDS = typer.Option(None, "--feature-ids", metavar="FILE", help="With a .npy --features file: the image id "
                                                                      "of each row, in order (a CSV with an "
                                                                      "image_id column, or .txt, one per line).")


def _names(text: str) -> list[str]:
    """Split a comma-separated option value ('PA,AP') into its names."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _done(dataset) -> None:
    log(f"run `ltv info {dataset.path}` to see the counts")


def _image_root(images: Optional[Path], no_images: bool) -> Optional[Path]:
    """The image folder, or None for a label-only ingest; exactly one of --images / --no-images must be given.

    Leaving the images out is a choice the user states, so a forgotten
    --images never yields a dataset that cannot train.
    """
    if images is not None and no_images:
        raise LtvError("--images and --no-images exclude each other; give one of them")
    if images is None and not no_images:
        raise LtvError("--images DIR is required (or --no-images to ingest the labels only)")
    return images


@command(ingest_app, "mimic")
def mimic(
    metadata: Path = typer.Option(..., help="mimic-cxr-2.0.0-metadata.csv[.gz]"),
    split: Path = typer.Option(..., help="mimic-cxr-2.0.0-split.csv[.gz] (the official split)"),
    negbio: Path = typer.Option(..., help="mimic-cxr-2.0.0-negbio.csv[.gz]"),
    chexpert: Path = typer.Option(..., help="mimic-cxr-2.0.0-chexpert.csv[.gz]"),
    images: Optional[Path] = typer.Option(None, help="Root of the image tree: files/pXX/pSUBJECT/sSTUDY/ holding "
                                                     "<dicom_id>.jpg or .dcm"),
    no_images: bool = NO_IMAGES,
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
    device: str = DEVICE,
    strict: bool = STRICT,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """MIMIC-CXR / MIMIC-CXR-JPG: NegBio and CheXpert label sets per uncertainty policy, official split."""
    from ltvcli.ingest.mimic import ingest_mimic

    dataset = ingest_mimic(metadata=metadata, split=split, negbio=negbio, chexpert=chexpert,
                           images=_image_root(images, no_images), out=out,
                           size=size, views=_names(views), uncertain=_names(uncertain), blank=blank,
                           ground_truth=ground_truth, reports=reports, image_format=image_format, workers=workers,
                           strict=strict, missing_labels=missing_labels, device=device, force=force,
                           features=features, feature_ids=feature_ids)
    _done(dataset)


@command(ingest_app, "openi")
def openi(
    reports: Path = typer.Option(..., help="NLMCXR_reports.tgz (or its ecgen-radiology/ folder of XMLs), or the "
                                           "Kaggle indiana_reports.csv."),
    images: Optional[Path] = typer.Option(None, help="Folder of the PNG images (NLMCXR_png/ or images_normalized/)."),
    no_images: bool = NO_IMAGES,
    out: Path = OUT,
    projections: Optional[Path] = typer.Option(None, help="View table: the Kaggle indiana_projections.csv, or a "
                                                          "DICOM-metadata CSV (imageid, View Position) such as "
                                                          "nlmcxr_dicom_metadata.csv.gz; either fits either layout."),
    views: str = typer.Option("PA,AP,Frontal", help="Views to keep, comma-separated, or 'all'."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Hand-labelled CSV keyed by image id "
                                                "(image_id/image/filename) or report id (uid), one column per "
                                                "finding, values 1/0/blank; default: the reports' MeSH coding."),
    mesh_map: Optional[Path] = typer.Option(None, "--mesh-map", help="Your MeSH -> finding table (columns "
                                            "mesh_term, qualifier, finding, label), instead of ltv's "
                                            "openi_mesh.csv."),
    size: int = SIZE,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    strict: bool = STRICT,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """OpenI / Indiana University CXR (NLM XML or Kaggle CSV layout): a hand-labelled test set, split `test`."""
    from ltvcli.ingest.openi import ingest_openi

    dataset = ingest_openi(reports=reports, images=_image_root(images, no_images), out=out, projections=projections,
                           views=_names(views), ground_truth=ground_truth, mesh_map=mesh_map, size=size,
                           workers=workers, strict=strict, device=device, force=force,
                           features=features, feature_ids=feature_ids)
    _done(dataset)


@command(ingest_app, "nih")
def nih(
    out: Path = OUT,
    images: Optional[Path] = typer.Option(None, help="Folder holding the PNGs, at any depth (NIH's "
                                                     "images_001/images/ ... images_012/images/)."),
    no_images: bool = NO_IMAGES,
    data_entry: Optional[Path] = typer.Option(None, "--data-entry", help="NIH's Data_Entry_2017*.csv: every image, "
                                              "its patient and NIH's NLP labels (label set nih). Without it, the "
                                              "images of the Google files."),
    train_val_list: Optional[Path] = typer.Option(None, "--train-val-list", help="train_val_list.txt (official "
                                                  "split; with --test-list)."),
    test_list: Optional[Path] = typer.Option(None, "--test-list", help="test_list.txt (official split)."),
    readers: list[Path] = typer.Option([], "--readers", help="Google's individual reads (individual_readers.csv, "
                                       "all_findings/test_individual_readers.csv); repeat for several files."),
    ground_truth: list[Path] = typer.Option([], "--ground-truth", help="Google's adjudicated labels (test_labels.csv, "
                                            "validation_labels.csv, all_findings/test_labels.csv); repeatable."),
    reader_sets: str = typer.Option("reader", "--reader-sets", help="reader: one labeller per radiologist; "
                                    "position: the four-findings reads pooled as read1, read2, read3."),
    uncertain: str = typer.Option("u0,u1", help="Policies for HEDGE reads, one label set per policy for readers who "
                                                "hedged: u0, u1, ignore (U-Zeros, U-Ones)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of the patients without expert labels "
                                                                   "held out as validate (of the official train_val "
                                                                   "patients with the lists)."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of those patients drawn for test "
                                                                     "(without the official lists)."),
    seed: int = typer.Option(0, help="Seed of the patient draws."),
    size: int = SIZE,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    strict: bool = STRICT,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """NIH ChestX-ray14: NIH's NLP labels, Google's radiologists as labellers, their adjudication as ground truth."""
    from ltvcli.ingest.nih import ingest_nih

    dataset = ingest_nih(out=out, images=_image_root(images, no_images), data_entry=data_entry,
                         train_val_list=train_val_list, test_list=test_list, readers=readers,
                         ground_truth=ground_truth, reader_sets=reader_sets, uncertain=_names(uncertain),
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, size=size,
                         workers=workers, strict=strict, device=device, force=force,
                         features=features, feature_ids=feature_ids)
    _done(dataset)


@command(ingest_app, "chexpert")
def chexpert(
    out: Path = OUT,
    images: Optional[Path] = typer.Option(None, help="Folder the CSVs' Path column is relative to (the one holding "
                                                     "CheXpert-v1.0-small/), or the release folder itself."),
    no_images: bool = NO_IMAGES,
    train: Optional[Path] = typer.Option(None, help="train.csv: the CheXpert labeller (label sets chexpert_u0, "
                                                    "chexpert_u1); its images are split train / validate."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="valid.csv: the radiologists' consensus, "
                                                "the ground truth; its images are split test."),
    readers: list[str] = typer.Option([], "--readers", metavar="[NAME=]FILE", help="A radiologist's CSV in the same "
                                      "layout, one label set each (named after the file); repeat for each."),
    views: str = typer.Option("PA,AP,Frontal", help="Views to keep (AP/PA of frontal images, else Frontal/Lateral), "
                                                    "comma-separated, or 'all'."),
    uncertain: str = typer.Option("u0,u1", help="Uncertainty policies, one label set each: u0 (U-Zeros), u1 "
                                                "(U-Ones), ignore (U-Ignore)."),
    blank: str = typer.Option("0", help="What the labeller's blank (not mentioned) becomes: 0, 1 or ignore."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of train.csv's patients held out as "
                                                                   "validate."),
    seed: int = typer.Option(0, help="Seed of the validate hold-out."),
    size: int = SIZE,
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    strict: bool = STRICT,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """CheXpert: the labeller's train.csv as U-Zeros / U-Ones label sets, valid.csv as ground truth, reader CSVs."""
    from ltvcli.ingest.chexpert import ingest_chexpert

    dataset = ingest_chexpert(out=out, images=_image_root(images, no_images), train=train,
                              ground_truth=ground_truth, readers=readers, views=_names(views),
                              uncertain=_names(uncertain), blank=blank, val_fraction=val_fraction, seed=seed,
                              size=size, workers=workers, strict=strict, device=device, force=force,
                              features=features, feature_ids=feature_ids)
    _done(dataset)


@command(ingest_app, "table")
def table(
    labels: Path = typer.Argument(..., help="Label table, CSV(.gz) or Parquet: wide (image, declared label columns, "
                                            "<set>:<class> columns) or long (image, labeller, label | finding, "
                                            "value)."),
    images: Optional[Path] = typer.Option(None, help="Folder the table's image paths are relative to."),
    no_images: bool = NO_IMAGES,
    out: Path = OUT,
    labeller: list[str] = typer.Option([], "--labeller", metavar="COLUMN[=NAME]",
                                       help="A wide table's label column (repeat for each); the cell is a class, "
                                            "or classes joined by | (A|B). <set>:<class> columns need no "
                                            "declaration; SET=NAME renames their label set."),
    ignore: list[str] = typer.Option([], "--ignore", metavar="COLUMN", help="A column to leave out (repeat); "
                                     "any column neither declared nor ignored is an error."),
    group: Optional[str] = typer.Option(None, "--group", metavar="COLUMN", help="Column of patient (group) ids: "
                                        "the random split keeps each group in one split. Used, never stored."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Trusted labels: image,label or "
                                                "image,finding,value or image,<class>,..."),
    task: str = typer.Option("auto", metavar=choice(TABLE_TASKS), help="auto (from the columns), multilabel or "
                                                                       "multiclass."),
    classes: Optional[str] = typer.Option(None, help="Class names in order, comma-separated (default: from the "
                                                     "file)."),
    uncertain: str = typer.Option("u0,u1", help="Uncertainty policies for labellers with -1/hedge/uncertain "
                                                "cells, one label set per policy: u0, u1, ignore (U-Zeros, U-Ones)."),
    channels: int = typer.Option(1, metavar="[1|3]", help="1 (grayscale) or 3 (RGB)."),
    size: int = SIZE,
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of images (of groups with --group) "
                                                                   "drawn for validate when the table has no "
                                                                   "split column."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Share drawn for test (no split column)."),
    seed: int = typer.Option(0, help="Seed of the random split."),
    workers: Optional[int] = WORKERS,
    device: str = DEVICE,
    strict: bool = STRICT,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """Your own labellers' labels from a wide or long table, images from a folder."""
    from ltvcli.ingest.table import ingest_table

    dataset = ingest_table(labels, images=_image_root(images, no_images), out=out, ground_truth=ground_truth,
                           task=task, classes=_names(classes) if classes else None, labeller=labeller,
                           ignore=ignore, group=group, uncertain=_names(uncertain), channels=channels, size=size,
                           val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, workers=workers,
                           strict=strict, device=device, force=force,
                           features=features, feature_ids=feature_ids)
    _done(dataset)


@command(ingest_app, "cifar10")
def cifar10(
    root: Path = typer.Option(..., help="Folder with data_batch_1..5, test_batch, batches.meta (or its parent)."),
    out: Path = OUT,
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of the train batches held out as "
                                                                   "validate."),
    seed: int = typer.Option(0, help="Seed of the validate hold-out."),
    limit: Optional[int] = typer.Option(None, help="Keep only the first N images of each batch (quick runs)."),
    no_images: bool = NO_IMAGES,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """CIFAR-10 python batches: 32x32 RGB, clean labels as ground truth, no label sets yet."""
    from ltvcli.ingest.cifar10 import ingest_cifar10

    _done(ingest_cifar10(root=root, out=out, val_fraction=val_fraction, seed=seed, limit=limit, no_images=no_images,
                         force=force, features=features, feature_ids=feature_ids))


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
    no_images: bool = NO_IMAGES,
    force: bool = FORCE,
    features: Optional[Path] = FEATURES,
    feature_ids: Optional[Path] = FEATURE_IDS,
) -> None:
    """Images and clean labels as numpy arrays (MedMNIST layout): ground truth, no label sets yet."""
    from ltvcli.ingest.npz import ingest_npz

    _done(ingest_npz(path=path, out=out, task=task, classes=_names(classes) or None, val_fraction=val_fraction,
                     seed=seed, limit=limit, no_images=no_images, force=force,
                     features=features, feature_ids=feature_ids))


@command(ingest_app, "answers")
def answers(
    out: Path = OUT,
    answers: list[str] = typer.Option(..., "--answers", metavar="[SPLIT=]FILE", help="A crowd's answers: one row "
                                      "per item, one column per worker, class ids, -1 or blank for no answer "
                                      "(.npy or text). SPLIT is train (the default), validate or test; repeat per "
                                      "split."),
    truth: list[str] = typer.Option([], "--truth", metavar="[SPLIT=]FILE", help="The true class id of each item of "
                                    "a split, one per line (-1: unknown); repeat per split."),
    features: list[str] = typer.Option([], "--features", metavar="[SPLIT=]FILE", help="A feature vector per item of "
                                       "a split, one row each (.npy or text); repeat per split. Every split needs "
                                       "them, or none."),
    classes: Optional[str] = typer.Option(None, help="Names of the class ids 0, 1, ..., comma-separated (default: "
                                                     "class_0, class_1, ...)."),
    labellers: Optional[str] = typer.Option(None, help="Names of the workers, one per answers column, "
                                                       "comma-separated (default: worker_01, worker_02, ...)."),
    missing: int = typer.Option(-1, help="The value that marks no answer (and unknown truth)."),
    force: bool = FORCE,
) -> None:
    """A worker x item answers matrix per split (LabelMe, CrowdLayer layout), with truth and features: no images."""
    from ltvcli.ingest.answers import ingest_answers, split_files

    _done(ingest_answers(out=out, answers=split_files(answers, "answers"), truth=split_files(truth, "truth"),
                         features=split_files(features, "features"), classes=_names(classes) if classes else None,
                         labellers=_names(labellers) if labellers else None, missing=missing, force=force))
