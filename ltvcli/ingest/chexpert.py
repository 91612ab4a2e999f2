"""CheXpert (Stanford): the labeller's train.csv, the radiologists' valid.csv, reader CSVs -> a dataset folder.

Every file has CheXpert's layout: one row per image, ``Path``
(``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``),
``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA`` and the 14 findings coded
``1.0`` / ``0.0`` / ``-1.0`` (uncertain) / blank (not mentioned).

* ``train.csv`` holds the CheXpert labeller's output: one label set per
  uncertainty policy (``chexpert_u0`` = the paper's U-Zeros, ``chexpert_u1``
  = U-Ones); its images are the ``train`` split, with a patient-grouped
  hold-out as ``validate``.
* ``valid.csv`` holds the radiologists' consensus (0 / 1): the ground truth,
  and its images are the ``test`` split (CheXpert's own test set is not public).
* Reader CSVs of the same layout (one file per radiologist) are one labeller each.

Sex and Age are never read. Image ids are the ``Path`` without its first
folder (``train/patient00001/study1/view1_frontal.jpg``), so the small and
the full-size release give the same ids; the study id is the path's
``patient/study`` part and the subject id its ``patient`` part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset, hold_out
from ltvcli.dataset.format import RAW_MISSING
from ltvcli.dataset.labelsets import (READER_VALUES, TRUTH_VALUES, check_policies, label_sets_from_raw,
                                      parse_raw_value, parse_reader_value, parse_truth_code, raw_to_truth,
                                      uncertainty_policies)
from ltvcli.errors import LtvError, OptionError
from ltvcli.findings import FINDINGS, canonical, is_finding
from ltvcli.ingest.images import check_image_folder, image_decoding
from ltvcli.ingest.paths import outside_reason
from ltvcli.outputs import DATASET, check_output

PATH, FRONTAL_LATERAL, AP_PA = "Path", "Frontal/Lateral", "AP/PA"
FRONTAL_VIEWS = ("PA", "AP", "Frontal")
LABELLER = "chexpert"
ALL_VIEWS = "ALL"


@dataclass
class LabelFile:
    """One CheXpert-layout CSV: its rows' image ids and raw codes [rows, 14] (RAW_MISSING for absent columns)."""

    path: Path
    frame: pd.DataFrame
    ids: list[str]
    paths: list[str]  # the Path cells as written
    codes: np.ndarray


def ingest_chexpert(*, out: Path, images: Path | None, train: Path | None = None, ground_truth: Path | None = None,
                    readers: Sequence[str | Path] = (), views: Sequence[str] = FRONTAL_VIEWS,
                    uncertain: Sequence[str] = ("u0", "u1"), blank: str = "0", val_fraction: float = 0.1,
                    seed: int = 0, size: int = 256, workers: int | None = None, strict: bool = False,
                    device: str = "cpu", force: bool = False,
                    features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest CheXpert's CSVs into ``out``; ``images`` is the folder holding ``Path`` (or None: label-only).

    ``readers`` are reader CSVs, each ``FILE`` or ``NAME=FILE`` (default
    name: the file's stem). ``views`` keeps images whose view (AP/PA for a
    frontal image, else Frontal/Lateral) is listed, or every image with
    ``("all",)``. ``uncertain`` and ``blank`` are the labeller's policies, as
    for MIMIC-CXR; ``val_fraction`` of train.csv's patients (seeded) become
    the ``validate`` split. ``force`` replaces an existing dataset at ``out``.
    """
    check_output(out, DATASET, inputs=[images, train, ground_truth, *_reader_names(readers).values()], force=force)
    decoding = image_decoding(device, workers)
    spec = chexpert_spec(images=images, train=train, ground_truth=ground_truth, readers=readers, views=views,
                         uncertain=uncertain, blank=blank, val_fraction=val_fraction, seed=seed)
    return build_dataset(spec, out, size=size, channels=1, decode=decoding.decode, decode_batch=decoding.batch,
                         workers=decoding.workers, strict=strict, force=force,
                         features=features, feature_ids=feature_ids)


def chexpert_spec(*, images: Path | None, train: Path | None = None, ground_truth: Path | None = None,
                  readers: Sequence[str | Path] = (), views: Sequence[str] = FRONTAL_VIEWS,
                  uncertain: Sequence[str] = ("u0", "u1"), blank: str = "0", val_fraction: float = 0.1,
                  seed: int = 0) -> DatasetSpec:
    """Parse and cross-check the CheXpert CSVs into a :class:`DatasetSpec` (no image is read)."""
    uncertain = uncertainty_policies(uncertain)
    check_policies(uncertain, blank)
    if not 0 <= val_fraction < 1:
        raise OptionError("val_fraction", f"must be in [0, 1); got {val_fraction}")
    if train is None and ground_truth is None:
        raise OptionError("train", "is needed when no ground-truth file is given: there is nothing to ingest")
    images = check_image_folder(images)
    views = [v.strip().upper() for v in views if v.strip()]
    labelled = _read(Path(train), parse_raw_value, "one of 1, 0, -1 or blank", every_finding=True) if train else None
    truth = _read(Path(ground_truth), parse_truth_code, TRUTH_VALUES) if ground_truth else None
    named = _reader_names(readers)
    reads = {name: _read(path, parse_reader_value, READER_VALUES) for name, path in named.items()}

    table = _hold_out_patients(_image_table(labelled, truth), val_fraction, seed)
    for name, file in reads.items():
        count, first = csvio.missing_ids(file.ids, table["image_id"])
        if count:
            raise LtvError(f"{file.path}: {count} image(s) that are in neither the train nor the ground-truth CSV "
                           f"(first: {first!r})")
    table = _select_views(table, views)
    ids = table["image_id"].tolist()
    labeller_raw = _align(labelled, ids)[:, None] if labelled else np.zeros((len(ids), 0, len(FINDINGS)), np.int8)
    label_sets, labels = label_sets_from_raw([LABELLER] if labelled else [], labeller_raw, uncertain, blank)
    reader_raw = np.stack([_align(file, ids) for file in reads.values()], axis=1) if reads else \
        np.zeros((len(ids), 0, len(FINDINGS)), np.int8)
    reader_sets, reader_labels = label_sets_from_raw(list(reads), reader_raw, uncertain, collapse_certain=True)
    manifest = table[["image_id", "study_id", "subject_id", "split", "view"]].copy()
    manifest["source"], refused = _image_files(images, table)
    log(f"{len(ids)} images ({', '.join(f'{s} {n}' for s, n in manifest['split'].value_counts().items())}); "
        f"label sets: {', '.join(s.name for s in label_sets + reader_sets) or 'none'}")
    return DatasetSpec(
        task="multilabel", classes=list(FINDINGS), manifest=manifest, label_sets=label_sets + reader_sets,
        labels=np.concatenate([labels, reader_labels], axis=1),
        ground_truth=raw_to_truth(_align(truth, ids)) if truth else None,
        labellers=[LABELLER] * bool(labelled) + list(reads),
        raw_labels=np.concatenate([labeller_raw, reader_raw], axis=1), has_images=images is not None,
        refused=refused,
        source={"name": "chexpert", "train": str(train) if train else None,
                "ground_truth": str(ground_truth) if ground_truth else None,
                "readers": {name: str(path) for name, path in named.items()}, "images": str(images) if images else None,
                "views": views, "uncertain": uncertain, "blank": blank, "val_fraction": val_fraction, "seed": seed},
    )


# ----------------------------------------------------------------------------- files


def image_id(path: str) -> str:
    """``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`` -> ``train/patient00001/study1/...``.

    Plain string work: a quarter of a million ``Path`` objects cost seconds.
    """
    parts = [part for part in path.strip().split("/") if part]
    if len(parts) > 1 and parts[0].lower().startswith("chexpert"):
        parts = parts[1:]
    return "/".join(parts)


def _read(path: Path, parse, expected: str, every_finding: bool = False) -> LabelFile:
    """A CheXpert-layout CSV; the labeller's must have all 14 findings, others may have fewer (the rest: missing)."""
    frame = csvio.read_table(path, required=(PATH,), what="CheXpert CSV")
    csvio.require_nonblank(frame, PATH, path)
    columns = {canonical(c): c for c in frame.columns if is_finding(c)}
    if every_finding:
        csvio.require_columns(frame, [f for f in FINDINGS if f not in columns], path)
    if not columns:
        raise LtvError(f"{path}: no finding columns; expected CheXpert's ({', '.join(FINDINGS)})")
    paths = frame[PATH].str.strip()
    ids = paths.map(image_id)
    csvio.require_unique(frame.assign(**{PATH: ids}), PATH, path)  # the small and full release name one image alike
    parsed = csvio.parse_cells(frame, list(columns.values()), parse, expected, path)
    codes = np.full((len(frame), len(FINDINGS)), RAW_MISSING, dtype=np.int8)
    codes[:, [FINDINGS.index(f) for f in columns]] = parsed
    return LabelFile(path=path, frame=frame, ids=ids.tolist(), paths=paths.tolist(), codes=codes)


def _reader_names(readers: Sequence[str | Path]) -> dict[str, Path]:
    """``FILE`` or ``NAME=FILE`` -> {name: file}; the name defaults to the file's stem (``rad1.csv`` -> rad1)."""
    named: dict[str, Path] = {}
    for item in readers:
        text = str(item)
        name, sep, file = text.partition("=")
        if not sep or "/" in name or os.sep in name or Path(text).is_file():
            name, file = Path(text).name.split(".")[0], text
        name = name.strip()
        if name in named or name == LABELLER:
            raise OptionError("readers", f"gives the label-set name {name!r} twice; name them NAME=FILE")
        named[name] = Path(file.strip())
    return named


def _image_table(labelled: LabelFile | None, truth: LabelFile | None) -> pd.DataFrame:
    """One row per image of train.csv (split train / validate) and the ground-truth CSV (split test)."""
    parts = []
    for file, split in ((labelled, "train"), (truth, "test")):
        if file is not None:
            frame = file.frame
            frontal = frame[FRONTAL_LATERAL].str.strip() if FRONTAL_LATERAL in frame else pd.Series("", frame.index)
            ap_pa = frame[AP_PA].str.strip() if AP_PA in frame else pd.Series("", frame.index)
            view = np.where((frontal.str.lower() == "frontal") & (ap_pa != ""), ap_pa, frontal)
            folders = [i.split("/")[:-1] for i in file.ids]  # [split,] patient, study
            parts.append(pd.DataFrame({"image_id": file.ids, "study_id": ["/".join(f[-2:]) for f in folders],
                                       "subject_id": [f[-2] if len(f) > 1 else "" for f in folders],
                                       "split": split, "view": view, "path": file.paths}))
    table = pd.concat(parts, ignore_index=True)
    if labelled is not None and truth is not None:
        train_ids = set(labelled.ids)
        both = [i for i in truth.ids if i in train_ids]
        if both:
            raise LtvError(f"{truth.path}: {len(both)} image(s) are also in {labelled.path.name} (first: "
                           f"{both[0]!r}); the ground-truth images must be held out of training")
    return table


def _hold_out_patients(table: pd.DataFrame, val_fraction: float, seed: int) -> pd.DataFrame:
    """``val_fraction`` of the train patients (seeded) become ``validate``, every image of a patient together."""
    train = table["split"] == "train"
    patients = table.loc[train, "subject_id"].drop_duplicates().tolist()
    held = {patients[i] for i in hold_out(len(patients), val_fraction, seed)}
    table.loc[train & table["subject_id"].isin(held), "split"] = "validate"
    return table


def _select_views(table: pd.DataFrame, views: list[str]) -> pd.DataFrame:
    if ALL_VIEWS in views:
        return table
    kept = table[table["view"].str.upper().isin(views)].reset_index(drop=True)
    log(f"{len(kept)} of {len(table)} images have view {'/'.join(views)}")
    return kept


def _align(file: LabelFile, ids: list[str]) -> np.ndarray:
    """The file's raw codes in the order of ``ids``; RAW_MISSING for images it has no row for."""
    rows = pd.Index(file.ids).get_indexer(ids)
    out = np.full((len(ids), len(FINDINGS)), RAW_MISSING, dtype=np.int8)
    out[rows >= 0] = file.codes[rows[rows >= 0]]
    return out


def _image_files(images: Path | None, table: pd.DataFrame) -> tuple[list[str], dict[int, str]]:
    """``images/Path`` as written in the CSV, or ``images/<image id>`` when ``images`` is the release folder itself.

    Also the rows whose ``Path`` would leave the folder (:mod:`ltvcli.ingest.paths`), with why: nothing
    is looked up for them, not even whether the file exists.
    """
    if images is None:
        return [""] * len(table), {}
    root = str(images)
    files, refused = [], {}
    for position, (path, image) in enumerate(zip(table["path"], table["image_id"])):
        as_written = os.path.join(root, path)
        reason = outside_reason(path)
        if reason is not None:
            refused[position] = reason
            files.append(as_written)
        else:
            files.append(as_written if os.path.isfile(as_written) else os.path.join(root, image))
    return files, refused
