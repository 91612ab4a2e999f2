"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG: four CSVs and an image tree -> a dataset folder.

The sources (``docs/ingest.md``; exact layouts in the data formats notes):

* ``mimic-cxr-2.0.0-metadata.csv[.gz]``: one row per image (``dicom_id``,
  ``subject_id``, ``study_id``, ``ViewPosition`` are used);
* ``mimic-cxr-2.0.0-split.csv[.gz]``: one row per image, the official split;
* ``mimic-cxr-2.0.0-negbio.csv[.gz]`` / ``-chexpert.csv[.gz]``: one row per
  study, the 14 findings coded 1 / 0 / -1 (uncertain) / blank (not mentioned);
* ``files/pXX/pSUBJECT/sSTUDY/<dicom_id>.{jpg,dcm}`` images and
  ``files/pXX/pSUBJECT/sSTUDY.txt`` reports.

Labels are per study, so every image of a study gets the same labels. Each
(labeller, uncertainty policy) pair becomes one label set, as in the paper
(negbio_u0, negbio_u1, chexpert_u0, chexpert_u1); the raw codes are kept so
``ltv info`` can show uncertain counts. Everything is checked before the
first image is decoded, so a bad CSV never leaves a folder behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log, warn
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset
from ltvcli.dataset.format import SPLITS
from ltvcli.dataset.labelsets import check_policies, label_sets_from_raw, parse_raw_value, uncertainty_policies
from ltvcli.errors import LtvError, OptionError
from ltvcli.findings import FINDINGS
from ltvcli.ingest import handlabels
from ltvcli.ingest.images import check_image_folder, image_decoding
from ltvcli.ingest.paths import outside_reason
from ltvcli.outputs import DATASET, check_output

LABELLERS = ("negbio", "chexpert")
IMAGE_FORMATS = ("auto", "jpg", "dcm")
MISSING_LABELS = ("error", "skip")
ALL_VIEWS = "ALL"


def ingest_mimic(*, metadata: Path, split: Path, negbio: Path, chexpert: Path, images: Path | None, out: Path,
                 size: int = 256, views: Sequence[str] = ("PA", "AP"), uncertain: Sequence[str] = ("u0", "u1"),
                 blank: str = "0", ground_truth: Path | None = None, reports: Path | None = None,
                 image_format: str = "auto", workers: int | None = None, strict: bool = False,
                 missing_labels: str = "error", device: str = "cpu", force: bool = False,
                 features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest MIMIC-CXR into the dataset folder ``out`` and return it opened.

    ``views`` keeps images whose ViewPosition is one of them (``("all",)``
    keeps every image); ``uncertain`` lists the policies that form label
    sets per labeller; ``blank`` is what a not-mentioned finding becomes
    (``"0"``, ``"1"`` or ``"ignore"`` = missing). ``missing_labels="skip"``
    leaves out images whose study has no row in a label CSV (with a counted
    warning) instead of stopping. ``images=None`` writes a label-only dataset.
    ``device="cuda"`` decodes the JPEGs on the GPU (:func:`ltvcli.ingest.images.image_decoding`).
    ``force`` replaces an existing dataset at ``out``.
    """
    check_output(out, DATASET, inputs=[metadata, split, negbio, chexpert, images, ground_truth, reports], force=force)
    decoding = image_decoding(device, workers)
    spec = mimic_spec(metadata=metadata, split=split, negbio=negbio, chexpert=chexpert, images=images,
                      views=views, uncertain=uncertain, blank=blank, ground_truth=ground_truth, reports=reports,
                      image_format=image_format, missing_labels=missing_labels)
    return build_dataset(spec, out, size=size, channels=1, decode=decoding.decode, decode_batch=decoding.batch,
                         workers=decoding.workers, strict=strict, force=force,
                         features=features, feature_ids=feature_ids)


def mimic_spec(*, metadata: Path, split: Path, negbio: Path, chexpert: Path, images: Path | None,
               views: Sequence[str] = ("PA", "AP"), uncertain: Sequence[str] = ("u0", "u1"), blank: str = "0",
               ground_truth: Path | None = None, reports: Path | None = None, image_format: str = "auto",
               missing_labels: str = "error") -> DatasetSpec:
    """Parse and cross-check the MIMIC CSVs into a :class:`DatasetSpec` (no image is read)."""
    uncertain = uncertainty_policies(uncertain)
    check_policies(uncertain, blank)
    _check_choice(image_format, IMAGE_FORMATS, "image_format")
    _check_choice(missing_labels, MISSING_LABELS, "missing_labels")
    views = [v.strip().upper() for v in views if v.strip()]
    metadata, split = Path(metadata), Path(split)
    images = check_image_folder(images)

    all_images = _read_images(metadata, split)
    frame = _select_views(all_images, views, metadata)
    label_files = dict(zip(LABELLERS, (Path(negbio), Path(chexpert))))
    raw, frame = _study_labels(frame, label_files, missing_labels)
    truth = None
    if ground_truth is not None:
        hand = handlabels.read_hand_labels(ground_truth, image_keys=("dicom_id", "image"), group_keys=("study_id",))
        known = set(all_images["dicom_id"] if hand.per_image else all_images["study_id"])
        truth = handlabels.align(hand, frame["dicom_id"].tolist(), frame["study_id"].tolist(), known)
    label_sets, labels = label_sets_from_raw(list(LABELLERS), raw, uncertain, blank)
    manifest, refused = _manifest(frame, images, Path(reports) if reports is not None else images, image_format)
    return DatasetSpec(has_images=images is not None,
        task="multilabel", classes=list(FINDINGS), manifest=manifest, label_sets=label_sets, labels=labels,
        ground_truth=truth, labellers=list(LABELLERS), raw_labels=raw, refused=refused,
        source={"name": "mimic-cxr", "metadata": str(metadata), "split": str(split),
                **{labeller: str(path) for labeller, path in label_files.items()},
                "images": str(images) if images else None,
                "ground_truth": str(ground_truth) if ground_truth else None,
                "views": views, "uncertain": uncertain, "blank": blank, "image_format": image_format,
                "missing_labels": missing_labels},
    )


def _check_choice(value: str, choices: Sequence[str], parameter: str) -> None:
    if value not in choices:
        raise OptionError(parameter, f"must be one of {', '.join(choices)}; got {value!r}")


def _read_images(metadata: Path, split: Path) -> pd.DataFrame:
    """Metadata rows with their official split; the two files must list the same dicom_ids."""
    meta = csvio.read_table(metadata, required=("dicom_id", "subject_id", "study_id", "ViewPosition"),
                            what="metadata CSV")
    for column in ("dicom_id", "subject_id", "study_id"):
        csvio.require_nonblank(meta, column, metadata)
        meta[column] = meta[column].str.strip()
    csvio.require_unique(meta, "dicom_id", metadata)
    splits = csvio.read_table(split, required=("dicom_id", "split"), what="split CSV")
    splits["dicom_id"] = splits["dicom_id"].str.strip()
    csvio.require_unique(splits, "dicom_id", split)
    csvio.require_values(splits, "split", SPLITS, split)
    count, first = csvio.missing_ids(meta["dicom_id"], splits["dicom_id"])
    if count:
        raise LtvError(f"{split}: no row for {count} image(s) of {metadata.name} (first: dicom_id {first!r}); "
                       "the metadata and split files must list the same images")
    count, first = csvio.missing_ids(splits["dicom_id"], meta["dicom_id"])
    if count:
        raise LtvError(f"{split}: {count} row(s) with a dicom_id that is not in {metadata.name} "
                       f"(first: {first!r}); the metadata and split files must list the same images")
    frame = meta[["dicom_id", "subject_id", "study_id", "ViewPosition"]].copy()
    frame["split"] = frame["dicom_id"].map(dict(zip(splits["dicom_id"], splits["split"])))
    frame["view"] = frame.pop("ViewPosition").str.strip()
    return frame


def _select_views(frame: pd.DataFrame, views: list[str], metadata: Path) -> pd.DataFrame:
    if ALL_VIEWS in views:
        return frame.reset_index(drop=True)
    kept = frame[frame["view"].str.upper().isin(views)].reset_index(drop=True)
    log(f"{len(kept)} of {len(frame)} images have view {'/'.join(views)}")
    if kept.empty:
        found = ", ".join(sorted(frame["view"].unique())[:10])
        raise LtvError(f"{metadata}: no image has ViewPosition {', '.join(views)} (values found: {found})")
    return kept


def _study_labels(frame: pd.DataFrame, label_files: dict[str, Path],
                  missing_labels: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Raw codes [N, labellers, 14] for the images of ``frame`` (and ``frame`` less skipped studies)."""
    per_labeller = []
    keep = np.ones(len(frame), dtype=bool)
    for labeller, path in label_files.items():
        studies, codes = _read_labels(path)
        rows = pd.Index(studies).get_indexer(frame["study_id"])
        absent = rows < 0
        if absent.any():
            first = frame["study_id"].iloc[int(absent.argmax())]
            count = frame.loc[absent, "study_id"].nunique()
            if missing_labels == "error":
                raise LtvError(f"{path}: no {labeller} labels for {count} study/studies of the selected images "
                               f"(first: study_id {first!r}); use `missing_labels` skip to leave them out")
            warn(f"{path.name}: no {labeller} labels for {count} study/studies ({int(absent.sum())} images); "
                 "they are left out")
        keep &= ~absent
        per_labeller.append(codes[np.where(absent, 0, rows)])
    raw = np.stack(per_labeller, axis=1)[keep]
    return raw, frame[keep].reset_index(drop=True)


def _read_labels(path: Path) -> tuple[list[str], np.ndarray]:
    """Study ids and raw codes [studies, 14] of one labeller's CSV."""
    frame = csvio.read_table(path, required=("study_id", *FINDINGS), what="label CSV")
    csvio.require_nonblank(frame, "study_id", path)
    csvio.require_unique(frame, "study_id", path)
    codes = csvio.parse_cells(frame, FINDINGS, parse_raw_value, "one of 1, 0, -1 or blank", path)
    return frame["study_id"].str.strip().tolist(), codes


def _manifest(frame: pd.DataFrame, images: Path | None, reports: Path | None,
              image_format: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """One manifest row per image: ids, split, view, the image file and the report file (if it exists).

    Without ``images`` (a label-only dataset) the source column is empty;
    without ``reports`` so is the report column. Also the rows whose ids would
    make a path outside the image folder (see :mod:`ltvcli.ingest.paths`),
    with why: neither their image nor their report is looked at.
    """
    study_dirs = [f"files/p{subject[:2]}/p{subject}/s{study}"
                  for subject, study in zip(frame["subject_id"].str.strip(), frame["study_id"].str.strip())]
    refused = {}
    sources, report_files = [], []
    for position, (folder, dicom_id) in enumerate(zip(study_dirs, frame["dicom_id"])):
        reason = outside_reason(f"{folder}/{dicom_id}")
        if reason is not None:
            refused[position] = reason
            sources.append(str(images / folder / dicom_id) if images is not None else "")
            report_files.append("")
            continue
        sources.append(_image_file(images / folder / dicom_id, image_format) if images is not None else "")
        report = reports / f"{folder}.txt" if reports is not None else None
        report_files.append(str(report) if report is not None and report.is_file() else "")
    manifest = frame.rename(columns={"dicom_id": "image_id"})[["image_id", "study_id", "subject_id", "split",
                                                                 "view"]].copy()
    manifest["source"] = sources
    manifest["report"] = report_files
    return manifest, refused


def _image_file(stem: Path, image_format: str) -> str:
    """The image file of one dicom_id: the chosen format, or with ``auto`` the .jpg if present, else the .dcm."""
    if image_format == "auto":
        jpg = stem.with_name(stem.name + ".jpg")
        return str(jpg) if os.path.isfile(jpg) else str(stem.with_name(stem.name + ".dcm"))
    return str(stem.with_name(f"{stem.name}.{image_format}"))
