"""What an evaluation scores, read and aligned on image ids.

Three kinds of input meet here: the ground truth (a dataset's own, or a
hand-labelled CSV keyed by image or study id), the scores to evaluate
(prediction tables from any tool, a trained run's predictions, the dataset's
label sets, fused labels exported by ``ltv export-labels``) and the ids that
tie them together. Everything comes out as one
:class:`EvalData`: the labelled images in a fixed order, their truth, and one
score matrix per column, so the statistics never see a file or an id.

Ids in a label file that match nothing are a mistake by default (wrong file,
wrong id column); ``unknown_ids="warn"`` drops them with a counted warning.
A labelled image without a prediction is always an error: scoring a model on
the images it happens to cover would flatter it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log, warn
from ltvcli.dataset.format import MISSING, Dataset, as_targets
from ltvcli.dataset.labelsets import parse_binary
from ltvcli.errors import LtvError
from ltvcli.findings import canonical, is_finding
from ltvcli.fusion.table import COLUMNS as REFINED_COLUMNS

#: Names of the per-image id column, in order of preference.
IMAGE_ID_COLUMNS = ("image", "image_id", "dicom_id")
#: A label file keyed by study gives each of the study's images its labels.
STUDY_ID_COLUMN = "study_id"
#: Id columns that are never classes (subject ids are read past, never used or printed).
ID_COLUMNS = (*IMAGE_ID_COLUMNS, STUDY_ID_COLUMN, "subject_id")
#: Column of a multi-class label file: the class name of each image.
MULTICLASS_LABEL_COLUMN = "label"
UNKNOWN_ID_POLICIES = ("error", "warn")
#: Column kinds: a model's probabilities, a label set of the dataset, fused labels from ``ltv export-labels``.
KINDS = ("model", "labeller", "fused")


@dataclass(frozen=True)
class Column:
    """One column of the results table: a model, a label set or fused labels, with its scores on the evaluated images.

    ``scores`` is float [n, C]; NaN marks an image and class without a score
    (a label set's missing label). Multi-class columns hold class
    probabilities (or one-hot labels); the predicted class is the arg-max.
    ``decisions`` are the column's 0/1 labels [n, C] (NaN where it has none)
    when it makes any, scored by accuracy, sensitivity and specificity: a
    label set's labels (its scores), fused labels' binarisation; None for a
    model, whose probabilities have no threshold of their own.
    """

    name: str
    kind: str
    scores: np.ndarray
    decisions: np.ndarray | None = None


@dataclass
class EvalData:
    """The aligned inputs of one evaluation.

    ``truth`` is int8 [n, C] with 1 / 0 / -1 = not labelled (multilabel) or
    int16 [n] class ids with -1 = not labelled (multiclass); every image is
    labelled for at least one class. ``source`` says in words where the truth
    came from, for the report header.
    """

    task: str
    classes: list[str]
    image_ids: np.ndarray
    truth: np.ndarray
    columns: list[Column]
    source: str

    @property
    def models(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "model"]

    @property
    def fused(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "fused"]

    def column(self, name: str) -> Column:
        """A column by name, with an error listing the names that exist."""
        for column in self.columns:
            if column.name == name:
                return column
        raise LtvError(f"no column named {name!r}; the columns are {', '.join(c.name for c in self.columns)}")


# ----------------------------------------------------------------------------- names
def class_key(name: str) -> str:
    """How a class column is matched: findings by canonical name (aliases welcome), other classes exactly."""
    name = name.strip()
    return canonical(name) if is_finding(name) else name


def split_name(spec: str | Path) -> tuple[str, Path]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path is named by its folder name or file stem."""
    text = str(spec)
    if "=" in text and not Path(text).exists():
        name, path = text.split("=", 1)
        if not name.strip():
            raise LtvError(f"{text!r}: empty name before '='; write NAME=PATH")
        return name.strip(), Path(path)
    path = Path(text)
    return (path.name if path.is_dir() else path.stem), path


# ----------------------------------------------------------------------------- reading tables
def _id_column(frame: pd.DataFrame, path: Path, allowed: tuple[str, ...]) -> str:
    key = csvio.first_present(frame, allowed, path, "id")
    csvio.require_nonblank(frame, key, path)
    csvio.require_unique(frame, key, path)
    return key


def _class_columns(frame: pd.DataFrame, path: Path, classes: list[str] | None) -> dict[str, str]:
    """Class -> column of a ground-truth table: its non-id columns, which must be classes of ``classes``."""
    columns: dict[str, str] = {}
    for column in frame.columns:
        if column in ID_COLUMNS:
            continue
        key = class_key(column)
        if classes is not None and key not in classes:
            raise LtvError(f"{path}: column {column!r} is not a class of the dataset; expected columns named "
                           f"{', '.join(map(repr, classes))}")
        if key in columns:
            raise LtvError(f"{path}: columns {columns[key]!r} and {column!r} both name the class {key!r}")
        columns[key] = column
    if not columns:
        raise LtvError(f"{path}: no class columns; expected an id column ({', '.join(IMAGE_ID_COLUMNS)} or "
                       f"{STUDY_ID_COLUMN}) and one column per finding")
    order = classes if classes is not None else list(columns)
    return {key: columns[key] for key in order if key in columns}


@dataclass(frozen=True)
class LabelTable:
    """A hand-labelled ground-truth file: keyed rows and their truth (multilabel [rows, C] or class ids [rows])."""

    path: Path
    key: str
    ids: np.ndarray
    classes: list[str]
    truth: np.ndarray

    @property
    def per_image(self) -> bool:
        return self.key in IMAGE_ID_COLUMNS


def read_labels(path: Path, *, classes: list[str] | None = None, multiclass: bool = False) -> LabelTable:
    """Read a ground-truth CSV/Parquet: an id column and 1/0/blank per class (or one ``label`` column).

    ``classes`` (a dataset's) restricts and orders the class columns; without
    it the file's own columns are the classes. Multi-class files name each
    image's class in a ``label`` column (blank = not labelled).
    """
    path = Path(path)
    frame = csvio.read_table(path, what="ground-truth")
    key = _id_column(frame, path, (*IMAGE_ID_COLUMNS, STUDY_ID_COLUMN))
    ids = frame[key].str.strip().to_numpy()
    if multiclass:
        csvio.require_columns(frame, [MULTICLASS_LABEL_COLUMN], path)
        ids_of = {name: i for i, name in enumerate(classes)}
        truth = csvio.parse_cells(frame, [MULTICLASS_LABEL_COLUMN],
                                  lambda text: MISSING if not text.strip() else ids_of.get(text.strip()),
                                  f"a class name ({', '.join(classes)}) or blank", path, dtype=np.int16)[:, 0]
        return LabelTable(path, key, ids, list(classes), truth)
    columns = _class_columns(frame, path, classes)
    truth = csvio.parse_cells(frame, list(columns.values()), parse_binary, "0, 1 or blank", path)
    return LabelTable(path, key, ids, list(columns), truth)


@dataclass(frozen=True)
class PredictionTable:
    """A predictions file: probabilities per class, keyed by image id (cells still text until aligned)."""

    name: str
    path: Path
    frame: pd.DataFrame  # index: image id; columns: class keys

    @property
    def ids(self) -> pd.Index:
        return self.frame.index


def read_predictions(spec: str | Path) -> PredictionTable:
    """Read ``[NAME=]FILE``: an image id column and one probability column per class."""
    name, path = split_name(spec)
    frame = csvio.read_table(path, what="predictions")
    key = _id_column(frame, path, IMAGE_ID_COLUMNS)
    frame = frame.set_index(frame[key].str.strip()).drop(columns=[key])
    keys = [class_key(c) if c not in ID_COLUMNS else c for c in frame.columns]
    for position, repeated in enumerate(pd.Index(keys).duplicated()):
        if repeated:
            raise LtvError(f"{path}: columns {frame.columns[keys.index(keys[position])]!r} and "
                           f"{frame.columns[position]!r} both name the class {keys[position]!r}")
    frame.columns = keys
    return PredictionTable(name, path, frame)


def prediction_scores(table: PredictionTable, image_ids: np.ndarray, classes: list[str],
                      labelled: np.ndarray) -> np.ndarray:
    """Probabilities [n, C] for ``image_ids``; every labelled (image, class) must have one in [0, 1].

    ``labelled`` is a bool [n, C] of the (image, class) pairs with ground truth.
    """
    missing = [c for c in classes if c not in table.frame.columns]
    if missing:
        raise LtvError(f"{table.path}: no column {missing[0]!r}" + (f" (nor {len(missing) - 1} other class(es))"
                       if len(missing) > 1 else "") + "; expected one probability column per class")
    rows = table.ids.get_indexer(image_ids)
    if (rows < 0).any():
        first = image_ids[np.argmax(rows < 0)]
        raise LtvError(f"{table.path}: no prediction for {int((rows < 0).sum())} of the {len(image_ids)} "
                       f"labelled images (first: {first!r})")
    text = table.frame.iloc[rows][classes]
    values = text.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce")).to_numpy(np.float64)
    blank = (text.apply(lambda col: col.str.strip() == "")).to_numpy()
    _check_cells(table, rows, classes, np.isnan(values) & ~blank, "is not a number")
    _check_cells(table, rows, classes, (values < 0) | (values > 1), "is outside [0, 1]; expected probabilities")
    absent = np.isnan(values) & labelled
    if absent.any():
        raise LtvError(f"{table.path}: no prediction for {int(absent.any(axis=1).sum())} of the {len(image_ids)} "
                       f"labelled images (blank cells; first in column {classes[int(absent.any(axis=0).argmax())]!r})")
    return values


def _check_cells(table: PredictionTable, rows: np.ndarray, classes: list[str], bad: np.ndarray, what: str) -> None:
    """Raise at the first bad cell (in file order), naming file, line and column."""
    if bad.any():
        where = np.argwhere(bad)
        first = where[np.argmin(rows[where[:, 0]])]
        row, column = int(rows[first[0]]), classes[first[1]]
        value = table.frame.iloc[row][column]
        raise LtvError(f"{table.path}, line {row + 2}, column {column!r}: value {value!r} {what}")


@dataclass(frozen=True)
class FusedTable:
    """A refined-labels table (``ltv export-labels``, of a run or of a label-only fusion), one column per class.

    ``refined`` and ``binarised`` are indexed by image id with one float column
    per class key, NaN where the file's cell is blank (no label set labelled
    that image and class); ``present`` says which (image, class) rows the file has.
    """

    name: str
    path: Path
    refined: pd.DataFrame
    binarised: pd.DataFrame
    present: pd.DataFrame

    @property
    def ids(self) -> pd.Index:
        return self.refined.index


def read_fused(spec: str | Path, classes: list[str] | None = None) -> FusedTable:
    """Read ``[NAME=]FILE``, a refined-labels table: ``image_id, finding, refined, binarised`` (weights ignored).

    ``classes`` (a dataset's) are the findings the file may name. Values are
    numbers in [0, 1] or blank; an (image, finding) pair appears once.
    """
    name, path = split_name(spec)
    frame = csvio.read_table(path, required=REFINED_COLUMNS, what="fused labels")
    csvio.require_nonblank(frame, "image_id", path)
    frame = frame.assign(image_id=frame["image_id"].str.strip(), finding=frame["finding"].str.strip().map(class_key))
    if classes is not None:
        unknown = ~frame["finding"].isin(classes).to_numpy()
        if unknown.any():
            position = int(unknown.argmax())
            raise LtvError(f"{csvio.where(path, frame, position, 'finding')}: {frame['finding'].iloc[position]!r} is "
                           f"not a class of the dataset; expected one of {', '.join(classes)}")
    csvio.require_unique(frame, ["image_id", "finding"], path)
    values = frame.assign(present=1.0, **{c: _unit_numbers(frame, c, path) for c in ("refined", "binarised")})
    wide = {c: values.pivot(index="image_id", columns="finding", values=c) for c in ("refined", "binarised", "present")}
    return FusedTable(name, path, wide["refined"], wide["binarised"], wide["present"].notna())


def _unit_numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """The cells of ``column`` as numbers in [0, 1], NaN where blank; an error naming the first other cell."""
    text = frame[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    bad = (np.isnan(values) & (text != "").to_numpy() & (text.str.lower() != "nan").to_numpy()) | (values < 0) | \
        (values > 1)
    if bad.any():
        position = int(bad.argmax())
        raise LtvError(f"{csvio.where(path, frame, position, column)}: value {text.iloc[position]!r} is not a number "
                       "in [0, 1] or blank")
    return values


def fused_column(table: FusedTable, image_ids: np.ndarray, classes: list[str], labelled: np.ndarray) -> Column:
    """The fused labels of ``image_ids``: refined as scores, binarised >= 0.5 as decisions, NaN where blank.

    Every evaluated class must be in the file and every labelled (image,
    class) must have a row: fused labels that skip some images would be
    scored on the ones they chose. A blank row is a label no label set gave,
    left out of this column like a label set's missing label.
    """
    missing = [c for c in classes if c not in table.refined.columns]
    if missing:
        raise LtvError(f"{table.path}: no rows for finding {missing[0]!r}" + (
            f" (nor {len(missing) - 1} other class(es))" if len(missing) > 1 else "") +
            "; expected every class the ground truth labels")
    rows = table.ids.get_indexer(image_ids)
    if (rows < 0).any():
        raise LtvError(f"{table.path}: no rows for {int((rows < 0).sum())} of the {len(image_ids)} evaluated images "
                       f"(first: {image_ids[np.argmax(rows < 0)]!r}); export the split(s) evaluated")
    absent = ~table.present.iloc[rows][classes].to_numpy() & labelled
    if absent.any():
        image, cls = np.argwhere(absent)[0]
        raise LtvError(f"{table.path}: no row for image {image_ids[image]!r} and finding {classes[cls]!r}")
    refined = table.refined.iloc[rows][classes].to_numpy(np.float64)
    binarised = table.binarised.iloc[rows][classes].to_numpy(np.float64)
    valid = ~np.isnan(refined) & ~np.isnan(binarised)
    return Column(table.name, "fused", np.where(valid, refined, np.nan),
                  np.where(valid, (binarised >= 0.5).astype(np.float64), np.nan))


def check_fused_ids(table: FusedTable, dataset: Dataset) -> None:
    """Fused labels name the dataset's images only: other ids mean the labels of another dataset."""
    unknown = ~table.ids.isin(dataset.image_ids)
    if unknown.any():
        raise LtvError(f"{table.path}: {int(unknown.sum())} of its {len(table.ids)} images are not in the dataset "
                       f"{dataset.path} (first: {table.ids[np.argmax(unknown)]!r}); fused labels of another dataset?")


# ----------------------------------------------------------------------------- ids
def known_only(ids: np.ndarray, known, path: Path, key: str, where: str, policy: str) -> np.ndarray:
    """Mask of ``ids`` found in ``known``; unknown ones are an error or (``warn``) dropped with a count."""
    mask = pd.Index(ids).isin(known)
    if mask.all():
        return mask
    count, first = int((~mask).sum()), ids[np.argmax(~mask)]
    message = f"{path}: {count} of {len(ids)} {key} value(s) are not in {where} (first: {first!r})"
    if policy == "error":
        raise LtvError(message + "; check the file, or pass `unknown_ids` warn to leave them out")
    warn(message + "; left out")
    return mask


def labels_on_dataset(table: LabelTable, dataset: Dataset, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Dataset row indices and their truth for a label file keyed by image or (all images of a) study."""
    column = "image_id" if table.per_image else STUDY_ID_COLUMN
    dataset_ids = dataset.manifest[column].to_numpy()
    keep = known_only(table.ids, dataset_ids, table.path, table.key, f"the dataset {dataset.path}", policy)
    position = pd.Index(table.ids[keep]).get_indexer(dataset_ids)
    rows = np.flatnonzero(position >= 0)
    if not table.per_image:
        log(f"{table.path.name}: {int(keep.sum())} studies label {len(rows)} images", level=2)
    return rows, table.truth[keep][position[rows]]


def labels_on_predictions(table: LabelTable, predictions: list[PredictionTable | FusedTable],
                          policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Image ids and truth of a label file when there is no dataset: ids are checked against the scored files."""
    if not table.per_image:
        raise LtvError(f"{table.path}: keyed by {table.key}; study ids need `dataset` to find each study's images")
    known = set().union(*(set(p.ids) for p in predictions))
    keep = known_only(table.ids, known, table.path, table.key, "any predictions or fused labels file", policy)
    return table.ids[keep], table.truth[keep]


# ----------------------------------------------------------------------------- dataset parts
def dataset_ground_truth(dataset: Dataset, split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``split`` (``all``: every split) with ground truth and their truth (restricted to ``classes``)."""
    if not dataset.has_ground_truth:
        raise LtvError(f"{dataset.path}: the dataset has no ground truth; pass `labels` with a hand-labelled file")
    rows = np.arange(len(dataset)) if split == "all" else dataset.indices(split)
    truth = dataset.ground_truth[rows]
    if dataset.is_multilabel:
        truth = truth[:, [dataset.class_index(c) for c in classes]]
        labelled = (truth != MISSING).any(axis=1)
    else:
        labelled = truth != MISSING
    if not labelled.any():
        raise LtvError(f"{dataset.path}: no image of the {split} split has ground truth; pass `labels` or `split`")
    return rows[labelled], truth[labelled]


def labeller_columns(dataset: Dataset, rows: np.ndarray, classes: list[str], chosen: list[int]) -> list[Column]:
    """The ``chosen`` label sets as score columns: 1/0 labels (one-hot for multi-class), NaN where missing."""
    targets, mask = as_targets(dataset.labels[rows][:, chosen], dataset.is_multilabel, len(dataset.classes))
    picked = [dataset.class_index(c) for c in classes]
    scores = np.where(mask, targets, np.nan)[:, :, picked]
    return [Column(dataset.label_set_names[m], "labeller", scores[:, k], scores[:, k]) for k, m in enumerate(chosen)]


def dataset_classes(dataset: Dataset) -> list[str]:
    """The dataset's classes as evaluation keys (findings by canonical name)."""
    return [class_key(c) for c in dataset.classes]
