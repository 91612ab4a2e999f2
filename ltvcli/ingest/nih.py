"""NIH ChestX-ray14 with Google's radiologist reads -> a dataset folder.

The files, as NIH and Google distribute them (``docs/ingest.md`` has the layouts):

* ``Data_Entry_2017*.csv``: one row per image (``Image Index``, ``Finding Labels``
  -- NIH's NLP labels joined by ``|`` --, ``Patient ID``, ``View Position``,
  and age, sex and image geometry, which are never read);
* ``train_val_list.txt`` / ``test_list.txt``: the official patient-wise split;
* Google's expert labels: ``individual_readers.csv`` (four findings, three
  reads per image by 22 radiologists, ``YES`` / ``NO`` / ``HEDGE``) and the
  adjudicated ``test_labels.csv`` / ``validation_labels.csv`` (Data_Entry rows
  plus four finding columns); the all-findings set's
  ``test_individual_readers.csv`` (five radiologists, NIH's 14 findings plus
  ``Abnormal`` and ``Other``) and ``test_labels.csv`` (their majority).

NIH's NLP labels become the label set ``nih``; every radiologist becomes a
labeller (or, for the four-findings reads, each read position: first, second,
third read); the adjudicated labels are the ground truth. Findings are
mapped to ltv's 14 (:data:`NIH_COLUMNS`); findings without a counterpart are
left out, and a finding a file does not cover is missing, never negative.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log, warn
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset
from ltvcli.dataset.build import draw_splits
from ltvcli.dataset.format import RAW_MISSING, RAW_NEGATIVE, RAW_POSITIVE, RAW_UNCERTAIN
from ltvcli.dataset.labelsets import (READER_VALUES, TRUTH_VALUES, label_sets_from_raw, parse_reader_value,
                                      parse_truth_code, raw_to_truth, uncertainty_policies)
from ltvcli.errors import LtvError, OptionError
from ltvcli.findings import FINDINGS
from ltvcli.ingest.images import check_image_folder, image_decoding
from ltvcli.ingest.paths import image_sources
from ltvcli.outputs import DATASET, check_output

#: NIH's and Google's finding columns -> (ltv finding or None, inverted). None: no counterpart in ltv's 14.
#: ``Abnormal`` (any actionable finding) is the opposite of ltv's ``No Finding``.
NIH_COLUMNS: dict[str, tuple[str | None, bool]] = {
    "Atelectasis": ("Atelectasis", False),
    "Cardiomegaly": ("Cardiomegaly", False),
    "Consolidation": ("Consolidation", False),
    "Edema": ("Edema", False),
    "Effusion": ("Pleural Effusion", False),
    "Infiltration": ("Lung Opacity", False),
    "Mass": ("Lung Lesion", False),
    "Nodule": ("Lung Lesion", False),
    "Pneumonia": ("Pneumonia", False),
    "Pneumothorax": ("Pneumothorax", False),
    "Pleural_Thickening": ("Pleural Other", False),
    "Emphysema": (None, False),
    "Fibrosis": (None, False),
    "Hernia": (None, False),
    "No Finding": ("No Finding", False),
    # Google's column names
    "Fracture": ("Fracture", False),
    "Airspace opacity": ("Lung Opacity", False),
    "Nodule/mass": ("Lung Lesion", False),
    "Nodule or mass": ("Lung Lesion", False),
    "Abnormal": ("No Finding", True),
    "Other": (None, False),
}
#: The names NIH's NLP writes in ``Finding Labels``.
NIH_LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
              "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
              "No Finding")
FOUR_FINDINGS_MARK = "Airspace opacity"  # a column only the four-findings files have
IMAGE_COLUMNS = ("Image Index", "Image ID")
PATIENT, READER, FINDING_LABELS, VIEW = "Patient ID", "Reader ID", "Finding Labels", "View Position"
SET_COLUMNS = ("Set ID", "Set Id")
GOOGLE_SETS = {"test": "test", "val": "validate", "validation": "validate"}
READER_SETS = ("reader", "position")
NLP_LABELLER = "nih"

#: Raw codes by precedence when several columns name one finding (Mass and Nodule -> Lung Lesion).
_PRECEDENCE = {RAW_MISSING: 0, RAW_NEGATIVE: 1, RAW_UNCERTAIN: 2, RAW_POSITIVE: 3}  # readers never leave "blank"


@dataclass
class GoogleFile:
    """One of Google's label files: readers (a ``Reader ID`` column) or adjudicated labels."""

    path: Path
    frame: pd.DataFrame
    image_column: str
    four_findings: bool  # the Radiology 2019 four-findings set (else the all-findings set)

    @property
    def images(self) -> pd.Series:
        return self.frame[self.image_column]


def ingest_nih(*, out: Path, images: Path | None, data_entry: Path | None = None,
               train_val_list: Path | None = None, test_list: Path | None = None, readers: Sequence[Path] = (),
               ground_truth: Sequence[Path] = (), reader_sets: str = "reader",
               uncertain: Sequence[str] = ("u0", "u1"), val_fraction: float = 0.1, test_fraction: float = 0.2,
               seed: int = 0, size: int = 256, workers: int | None = None, strict: bool = False,
               device: str = "cpu", force: bool = False,
               features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest NIH ChestX-ray14 and/or Google's expert labels into ``out``; ``images=None`` = label-only.

    ``reader_sets`` is ``reader`` (one labeller per radiologist) or
    ``position`` (the four-findings reads pooled by position: first, second,
    third read of an image). ``uncertain`` lists the policies for readers who
    hedged. Without the official lists the split is drawn by patient
    (``val_fraction``, ``test_fraction`` of the patients without expert labels).
    ``force`` replaces an existing dataset at ``out``.
    """
    check_output(out, DATASET, inputs=[images, data_entry, train_val_list, test_list, *readers, *ground_truth],
                 force=force)
    decoding = image_decoding(device, workers)
    spec = nih_spec(images=images, data_entry=data_entry, train_val_list=train_val_list, test_list=test_list,
                    readers=readers, ground_truth=ground_truth, reader_sets=reader_sets, uncertain=uncertain,
                    val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return build_dataset(spec, out, size=size, channels=1, decode=decoding.decode, decode_batch=decoding.batch,
                         workers=decoding.workers, strict=strict, force=force,
                         features=features, feature_ids=feature_ids)


def nih_spec(*, images: Path | None, data_entry: Path | None = None, train_val_list: Path | None = None,
             test_list: Path | None = None, readers: Sequence[Path] = (), ground_truth: Sequence[Path] = (),
             reader_sets: str = "reader", uncertain: Sequence[str] = ("u0", "u1"), val_fraction: float = 0.1,
             test_fraction: float = 0.2, seed: int = 0) -> DatasetSpec:
    """Read and cross-check the NIH and Google files into a :class:`DatasetSpec` (no image is read)."""
    if reader_sets not in READER_SETS:
        raise OptionError("reader_sets", f"must be reader or position; got {reader_sets!r}")
    if (train_val_list is None) != (test_list is None):
        raise OptionError("test_list", "and `train_val_list` go together: give both official lists, or neither")
    uncertain = uncertainty_policies(uncertain)
    images = check_image_folder(images)
    truth_files = [_read_google(Path(p), readers=False) for p in ground_truth]
    reader_files = [_read_google(Path(p), readers=True) for p in readers]
    if data_entry is None and not truth_files and not reader_files:
        raise OptionError("data_entry", "is needed when no Google label file is given: there is nothing to ingest")
    table = (_read_data_entry(Path(data_entry)) if data_entry is not None
             else _image_table_from_google(truth_files, reader_files))
    if data_entry is not None:
        for google in truth_files + reader_files:
            _require_known(google, table, data_entry)
    ids = table["image"].tolist()
    labellers, raws = [], []
    if (table[FINDING_LABELS] != "").any():
        labellers.append(NLP_LABELLER)
        raws.append(_nlp_codes(table[FINDING_LABELS]))
    for name, codes in _reader_codes(reader_files, ids, reader_sets):
        labellers.append(name)
        raws.append(codes)
    raw = np.stack(raws, axis=1) if raws else np.zeros((len(ids), 0, len(FINDINGS)), dtype=np.int8)
    label_sets, labels = label_sets_from_raw(labellers, raw, uncertain, collapse_certain=True)
    truth = _ground_truth(truth_files, ids) if truth_files else None
    split = _splits(table, truth_files + reader_files, train_val_list, test_list, val_fraction, test_fraction, seed)
    sources, refused = _image_files(images, ids)
    manifest = pd.DataFrame({"image_id": ids, "subject_id": table[PATIENT].tolist(), "split": split,
                             "view": table[VIEW].tolist(), "source": sources})
    log(f"{len(ids)} images of {table[PATIENT].nunique()} patients; labellers: "
        f"{len(labellers)} ({', '.join(labellers[:4])}{', ...' if len(labellers) > 4 else ''})")
    return DatasetSpec(
        task="multilabel", classes=list(FINDINGS), manifest=manifest, label_sets=label_sets, labels=labels,
        ground_truth=truth, labellers=labellers, raw_labels=raw, has_images=images is not None, refused=refused,
        source={"name": "nih", "data_entry": str(data_entry) if data_entry else None,
                "official_split": train_val_list is not None, "readers": [str(p) for p in readers],
                "ground_truth": [str(p) for p in ground_truth], "reader_sets": reader_sets,
                "uncertain": uncertain, "images": str(images) if images else None},
    )


# ----------------------------------------------------------------------------- the image table


def _read_data_entry(path: Path) -> pd.DataFrame:
    """Image, patient, view and Finding Labels per image from NIH's Data_Entry CSV."""
    frame = csvio.read_table(path, required=("Image Index", FINDING_LABELS, PATIENT), what="Data_Entry CSV")
    return _image_rows(frame, "Image Index", path)


def _image_rows(frame: pd.DataFrame, image_column: str, path: Path) -> pd.DataFrame:
    """image, patient, view and NLP labels of a file with one row per image; the labels' words are checked."""
    for column in (image_column, PATIENT):
        csvio.require_nonblank(frame, column, path)
    csvio.require_unique(frame, image_column, path)
    if FINDING_LABELS in frame:
        csvio.parse_cells(frame, [FINDING_LABELS], lambda text: 0 if _nlp_words_known(text) else None,
                          f"a |-joined list of NIH's labels ({', '.join(NIH_LABELS)})", path)
    return pd.DataFrame({"image": frame[image_column].str.strip().to_numpy(),
                         PATIENT: frame[PATIENT].str.strip().to_numpy(),
                         VIEW: frame[VIEW].str.strip().to_numpy() if VIEW in frame else "",
                         FINDING_LABELS: frame[FINDING_LABELS].str.strip().to_numpy() if FINDING_LABELS in frame
                         else ""})


def _nlp_words(text: str) -> list[str]:
    return [name.strip() for name in text.split("|") if name.strip()]


def _nlp_words_known(text: str) -> bool:
    return all(name in NIH_LABELS for name in _nlp_words(text))


def _image_table_from_google(truth_files: list[GoogleFile], reader_files: list[GoogleFile]) -> pd.DataFrame:
    """Without Data_Entry: the images of Google's files, whose adjudicated rows are Data_Entry rows."""
    parts = [_image_rows(g.frame.drop_duplicates(g.image_column), g.image_column, g.path)
             for g in truth_files + reader_files]
    table = pd.concat(parts)
    table = table.sort_values(FINDING_LABELS, ascending=False, kind="stable")  # rows with NLP labels first
    table = table.drop_duplicates("image").sort_values("image", kind="stable")
    return table.reset_index(drop=True)


def _require_known(google: GoogleFile, table: pd.DataFrame, data_entry: Path) -> None:
    count, first = csvio.missing_ids(google.images.str.strip(), table["image"])
    if count:
        raise LtvError(f"{google.path}: {count} image(s) that are not in {Path(data_entry).name} (first: "
                       f"{first!r}); check that the files belong together")


def _image_files(images: Path | None, ids: list[str]) -> tuple[list[str], dict[int, str]]:
    """Each image's file: found anywhere under ``images`` (NIH ships images_001/images/ ... images_012/).

    Also the images whose name would leave the folder (:mod:`ltvcli.ingest.paths`), with why: they are never
    opened (a file name found by the walk holds no folder, so it never is such a name).
    """
    if images is None:
        return [""] * len(ids), {}
    wanted, found = set(ids), {}
    for folder, _, names in os.walk(images):
        for name in names:
            if name in wanted and name not in found:
                found[name] = os.path.join(folder, name)
    sources, refused = image_sources(images, ids)
    return [found.get(image, source) for image, source in zip(ids, sources)], refused


# ----------------------------------------------------------------------------- labels


def _nlp_codes(finding_labels: pd.Series) -> np.ndarray:
    """NIH's NLP labels as raw codes [N, 14]: listed findings positive, the rest of its vocabulary negative.

    Findings NIH's vocabulary has no word for (Fracture, Support Devices,
    Enlarged Cardiomediastinum) are not labelled (missing); so is every
    finding of an image without a Finding Labels row.
    """
    covered = sorted({FINDINGS.index(NIH_COLUMNS[name][0]) for name in NIH_LABELS if NIH_COLUMNS[name][0]})
    patterns: dict[str, np.ndarray] = {}
    for text in finding_labels.unique():  # a few hundred combinations among 112,120 images
        codes = np.full(len(FINDINGS), RAW_MISSING, dtype=np.int8)
        if text:
            codes[covered] = RAW_NEGATIVE
            for name in _nlp_words(text):
                if NIH_COLUMNS[name][0] is not None:
                    codes[FINDINGS.index(NIH_COLUMNS[name][0])] = RAW_POSITIVE
        patterns[text] = codes
    return np.stack([patterns[text] for text in finding_labels])


def _finding_codes(google: GoogleFile, parse, expected: str) -> np.ndarray:
    """Each row's cells as raw codes over ltv's 14 findings; several columns of one finding combine.

    A finding no column covers is not labelled; a positive wins over uncertain,
    uncertain over negative (Mass or Nodule present -> Lung Lesion present).
    """
    frame = google.frame
    columns = [c for c in frame.columns if c in NIH_COLUMNS and NIH_COLUMNS[c][0] is not None]
    parsed = csvio.parse_cells(frame, columns, parse, expected, google.path)
    out = np.full((len(frame), len(FINDINGS)), RAW_MISSING, dtype=np.int8)
    rank = np.vectorize(_PRECEDENCE.get)
    for j, column in enumerate(columns):
        finding, inverted = NIH_COLUMNS[column]
        codes = parsed[:, j]
        if inverted:
            codes = np.select([codes == RAW_POSITIVE, codes == RAW_NEGATIVE], [RAW_NEGATIVE, RAW_POSITIVE], codes)
        target = out[:, FINDINGS.index(finding)]
        out[:, FINDINGS.index(finding)] = np.where(rank(codes) > rank(target), codes, target)
    return out


def _reader_codes(files: list[GoogleFile], ids: list[str], reader_sets: str) -> list[tuple[str, np.ndarray]]:
    """One (labeller, raw codes [N, 14]) per radiologist -- or per read position of the four-findings reads.

    A radiologist who read an image twice (the real file has a few) keeps the
    findings both reads agree on; where they differ the finding is missing
    for that read (counted in a warning).
    """
    row_of = pd.Index(ids)
    parts = []
    for google in files:
        reads = pd.DataFrame({"image": google.images.str.strip(), "reader": google.frame[READER].str.strip()})
        codes = _finding_codes(google, parse_reader_value, READER_VALUES)
        reads, codes = _merge_repeated_reads(reads, codes, google.path)
        if reader_sets == "position" and google.four_findings:  # the file keeps no reading order: row order
            reads["labeller"] = "read" + (reads.groupby("image", sort=False).cumcount() + 1).astype(str)
        else:
            reads["labeller"] = "reader" + reads["reader"]
        parts.append((reads, codes))
    labellers = list(dict.fromkeys(name for reads, _ in parts for name in reads["labeller"]))
    out = {name: np.full((len(ids), len(FINDINGS)), RAW_MISSING, dtype=np.int8) for name in labellers}
    for reads, codes in parts:
        rows = row_of.get_indexer(reads["image"])
        for name, positions in reads.groupby("labeller", sort=False).indices.items():
            target = out[name][rows[positions]]
            conflict = (target != RAW_MISSING) & (target != codes[positions])  # same reader in two files
            out[name][rows[positions]] = np.where(conflict, RAW_MISSING, np.where(target != RAW_MISSING, target,
                                                                                 codes[positions]))
    return [(name, out[name]) for name in labellers]


def _merge_repeated_reads(reads: pd.DataFrame, codes: np.ndarray, path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (image, reader): repeated reads keep the codes they agree on, not labelled elsewhere."""
    repeated = reads.duplicated(["image", "reader"], keep=False).to_numpy()
    if not repeated.any():
        return reads.reset_index(drop=True), codes
    first = ~reads.duplicated(["image", "reader"]).to_numpy()
    merged = codes.copy()
    disagree = 0
    for _, positions in reads[repeated].groupby(["image", "reader"], sort=False).indices.items():
        rows = np.flatnonzero(repeated)[positions]
        same = (codes[rows] == codes[rows[0]]).all(axis=0)
        disagree += int((~same).sum())
        merged[rows[0]] = np.where(same, codes[rows[0]], RAW_MISSING)
    pairs = int((repeated & first).sum())
    warn(f"{path.name}: {pairs} (image, radiologist) pair(s) were read twice; the {disagree} finding(s) where "
         "the two reads differ are left missing for that radiologist")
    return reads[first].reset_index(drop=True), merged[first]


def _ground_truth(files: list[GoogleFile], ids: list[str]) -> np.ndarray:
    """Adjudicated labels [N, 14] (1 / 0 / MISSING); the four-findings adjudication wins over the all-findings majority.

    The four-findings labels were adjudicated until the three radiologists
    agreed; the all-findings reference is a plain majority of three, so where
    both label an image's finding the adjudicated one is kept (disagreements
    are counted).
    """
    row_of = pd.Index(ids)
    truth = np.full((len(ids), len(FINDINGS)), RAW_MISSING, dtype=np.int8)
    differ = 0
    for google in sorted(files, key=lambda g: not g.four_findings):
        rows = row_of.get_indexer(google.images.str.strip())
        codes = _finding_codes(google, parse_truth_code, TRUTH_VALUES)
        current = truth[rows]
        differ += int(((current != RAW_MISSING) & (codes != RAW_MISSING) & (current != codes)).sum())
        truth[rows] = np.where(current != RAW_MISSING, current, codes)
    if differ:
        log(f"ground truth: {differ} finding label(s) of the all-findings majority differ from the four-findings "
            "adjudication; the adjudicated ones are kept")
    return raw_to_truth(truth)



# ----------------------------------------------------------------------------- files


def _read_google(path: Path, *, readers: bool) -> GoogleFile:
    """A Google label file; its role (readers or adjudicated) must match the option it was given to."""
    frame = csvio.read_table(path, what="Google labels")
    image_column = csvio.first_present(frame, IMAGE_COLUMNS, path, "image id")
    csvio.require_nonblank(frame, image_column, path)
    if not any(c in NIH_COLUMNS for c in frame.columns if c not in (FINDING_LABELS,)):
        raise LtvError(f"{path}: no finding columns; expected Google's (Fracture, Pneumothorax, Airspace opacity, "
                       "Nodule/mass) or NIH's (Atelectasis, ..., Hernia)")
    if readers and READER not in frame:
        raise LtvError(f"{path}: no {READER!r} column; this is not a file of individual reads (adjudicated labels "
                       "are ground truth)")
    if not readers and READER in frame:
        raise LtvError(f"{path}: has a {READER!r} column; individual reads are readers, not ground truth")
    if readers:
        csvio.require_nonblank(frame, READER, path)
    else:
        csvio.require_unique(frame, image_column, path)
    if PATIENT not in frame:
        raise LtvError(f"{path}: missing required column(s) {PATIENT!r}")
    return GoogleFile(path=path, frame=frame, image_column=image_column,
                      four_findings=FOUR_FINDINGS_MARK in frame)


# ----------------------------------------------------------------------------- split


def _splits(table: pd.DataFrame, google: list[GoogleFile], train_val_list: Path | None, test_list: Path | None,
            val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """One split per patient: expert-labelled patients where Google put them, the others official or drawn.

    A patient with an image in Google's test set is ``test`` (all of their
    images), else one in Google's validation set is ``validate``, so no
    expert-labelled image -- and no image of its patient -- ever trains.
    The other patients follow the official lists (``train_val`` -> train,
    with a seeded hold-out of ``val_fraction`` of those patients as validate)
    or, without them, a seeded draw of ``test_fraction`` / ``val_fraction``
    of the patients.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise OptionError("val_fraction", "must be in [0, 1), as must the test fraction, and the two must add up "
                                          "to less than 1")
    patients = table[PATIENT].tolist()
    expert = _google_patient_splits(table, google)
    if train_val_list is not None:
        official = _official(table, Path(train_val_list), Path(test_list))
        moved = sum(p in expert and (expert[p] == "test") != (o == "test") for p, o in zip(patients, official))
        if moved:
            log(f"{moved} image(s) of expert-labelled patients follow Google's split instead of the official lists")
        train = [p for p, o in dict.fromkeys(zip(patients, official)) if o == "train" and p not in expert]
        held_out = draw_splits(list(dict.fromkeys(train)), 0.0, val_fraction, seed)
        return [expert.get(p) or (held_out[p] if o == "train" else "test") for p, o in zip(patients, official)]
    free = [p for p in dict.fromkeys(patients) if p not in expert]
    split_of = {**draw_splits(free, test_fraction, val_fraction, seed), **expert}
    return [split_of[p] for p in patients]


def _google_patient_splits(table: pd.DataFrame, google: list[GoogleFile]) -> dict[str, str]:
    """Patient -> ``test`` or ``validate`` for patients with an image in one of Google's sets.

    The four-findings files say which set an image is in (``Set ID``); the
    all-findings images are all from the test set.
    """
    patient_of = dict(zip(table["image"], table[PATIENT]))
    split_of: dict[str, str] = {}
    for g in google:
        column = next((c for c in SET_COLUMNS if c in g.frame), None)
        if column is None:
            sets = pd.Series("test", index=g.frame.index)
        else:
            sets = g.frame[column].str.strip().str.lower()
            csvio.require_values(g.frame.assign(**{column: sets}), column, GOOGLE_SETS, g.path)
        for image, name in zip(g.images.str.strip(), sets.map(GOOGLE_SETS)):
            patient = patient_of[image]
            if split_of.get(patient) != "test":
                split_of[patient] = name
    return split_of


def _official(table: pd.DataFrame, train_val_list: Path, test_list: Path) -> list[str]:
    """Each image's official split: ``test`` (test_list.txt) or ``train`` (train_val_list.txt)."""
    lists = {}
    for path in (train_val_list, test_list):
        if not path.is_file():
            raise LtvError(f"{path}: no such image list file")
        lists[path] = set(path.read_text(encoding="utf-8").split())
    test, train_val = lists[test_list], lists[train_val_list]
    both = [image for image in table["image"] if image in test and image in train_val]
    if both:
        raise LtvError(f"{test_list}: {len(both)} image(s) are in both official lists (first: {both[0]!r})")
    count, first = csvio.missing_ids(table["image"], test | train_val)
    if count:
        raise LtvError(f"{test_list.name} and {train_val_list.name} do not list {count} image(s) (first: {first!r}); "
                       "the official lists cover every ChestX-ray14 image")
    return ["test" if image in test else "train" for image in table["image"]]
