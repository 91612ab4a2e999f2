"""Label tables from a user's own labellers (CSV or Parquet) -> a dataset folder.

The table is read strictly: a column becomes a label set only when it is
declared, so an id, age or view column can never turn into a "labeller".

* wide, one row per image: ``image`` plus label columns declared either by
  ``labeller`` (``COLUMN`` or ``COLUMN=NAME``; the cell is a class name or id
  for a multi-class task, or the list of present classes ``A|B`` for a
  multi-label one) or by their name ``<labelset>:<class>`` (one column per
  label set and class; the cell is a judgement, see below);
* long, one row per judgement, as crowd-sourcing tools export:
  ``image, labeller, label`` (the label set is the ``labeller`` value; the
  cell as in a declared column) or ``image, labeller, finding, value``
  (``class`` is accepted for ``finding``; the cell is a judgement).

A judgement is ``1`` / ``0`` / ``-1`` or ``yes`` / ``no`` / ``hedge`` /
``uncertain`` (any case); uncertain ones go through the uncertainty policies
like an NLP labeller's. A blank cell is a missing label. Besides the label
columns a table may have ``split``, the ``group`` column (patients, for a
grouped random split; used, never stored) and the columns listed in
``ignore``; any other column is an error naming it. Ground truth uses the same
layouts without the labeller: ``image, label``, ``image, finding, value`` or
``image, <class>, <class>, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log, warn
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.build import draw_splits
from ltvcli.dataset.format import MISSING, RAW_MISSING, RAW_NEGATIVE, RAW_POSITIVE, SPLITS, TASKS
from ltvcli.dataset.labelsets import (READER_VALUES, TRUTH_VALUES, label_sets_from_raw, parse_reader_value,
                                      parse_truth_code, raw_to_truth, uncertainty_policies)
from ltvcli.errors import LtvError, OptionError
from ltvcli.findings import FINDINGS, canonical, is_finding
from ltvcli.ingest.images import check_image_folder, image_decoding
from ltvcli.ingest.paths import image_sources
from ltvcli.outputs import DATASET, check_output

SET_SEPARATOR = ":"
#: Separates the classes of a multi-label cell: ``Atelectasis|Effusion`` (NIH's Finding Labels).
CLASS_SEPARATOR = "|"
IMAGE, SPLIT = "image", "split"
CLASS_COLUMNS = ("finding", "class")

CLASS, LIST, JUDGEMENT = "class", "list", "judgement"  # what a label cell holds


@dataclass
class Column:
    """The cells of one label set for one class (a judgement column) or for all classes.

    ``cells`` is a slice of the file's rows (index = file row, for messages)
    with the ``image`` column and the ``value`` column; ``kind`` says what a
    cell holds: a class (multi-class), a class list or a judgement.
    """

    label_set: str
    cls: str | None
    cells: pd.DataFrame
    value: str
    kind: str


@dataclass
class Table:
    """A parsed labels or ground-truth file, before its values are encoded."""

    path: Path
    task: str
    frame: pd.DataFrame
    columns: list[Column]
    images: list[str]


def ingest_table(labels: Path, *, images: Path | None, out: Path, ground_truth: Path | None = None,
                 task: str = "auto", classes: Sequence[str] | None = None, labeller: Sequence[str] = (),
                 ignore: Sequence[str] = (), group: str | None = None, uncertain: Sequence[str] = ("u0", "u1"),
                 channels: int = 1, size: int = 256, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 seed: int = 0, workers: int | None = None, strict: bool = False,
                 device: str = "cpu", force: bool = False,
                 features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest a wide or long label table (CSV or Parquet) whose ``image`` column names files under ``images``.

    ``labeller`` declares the wide table's label columns (``COLUMN`` or
    ``COLUMN=NAME``; ``<labelset>:<class>`` columns declare themselves, and
    ``SET=NAME`` renames their label set); ``ignore`` lists columns to leave
    out. ``task`` is ``auto`` (from the columns), ``multilabel`` or
    ``multiclass``; ``classes`` fixes the class names and their order.
    Without a ``split`` column, ``val_fraction`` and ``test_fraction`` of the
    images -- of the ``group`` column's groups, if given -- are drawn (seeded)
    for validate and test. ``images=None`` writes a label-only dataset.
    ``device="cuda"`` decodes JPEGs on the GPU. ``force`` replaces an
    existing dataset at ``out``.
    """
    check_output(out, DATASET, inputs=[labels, images, ground_truth], force=force)
    if channels not in (1, 3):
        raise OptionError("channels", f"must be 1 or 3; got {channels}")
    decoding = image_decoding(device, workers)
    spec = table_spec(labels, images=images, ground_truth=ground_truth, task=task, classes=classes,
                      labeller=labeller, ignore=ignore, group=group, uncertain=uncertain,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return build_dataset(spec, out, size=size, channels=channels, decode=decoding.decode,
                         decode_batch=decoding.batch, workers=decoding.workers, strict=strict, force=force,
                         features=features, feature_ids=feature_ids)


def table_spec(labels: Path, *, images: Path | None, ground_truth: Path | None = None, task: str = "auto",
               classes: Sequence[str] | None = None, labeller: Sequence[str] = (), ignore: Sequence[str] = (),
               group: str | None = None, uncertain: Sequence[str] = ("u0", "u1"), val_fraction: float = 0.1,
               test_fraction: float = 0.1, seed: int = 0) -> DatasetSpec:
    """Parse the label table (and ground truth) into a :class:`DatasetSpec` (no image is read)."""
    if task not in ("auto", *TASKS):
        raise OptionError("task", f"must be auto, multilabel or multiclass; got {task!r}")
    uncertain = uncertainty_policies(uncertain)
    images = check_image_folder(images)
    table = read_label_table(Path(labels), task=task, labeller=labeller, ignore=ignore, group=group)
    truth = (read_label_table(Path(ground_truth), task=table.task, ignore=ignore, ground_truth=True)
             if ground_truth else None)
    if truth is not None:
        count, first = csvio.missing_ids(truth.images, table.images)
        if count:
            raise LtvError(f"{truth.path}: {count} image(s) that are not in {table.path.name} (first: {first!r})")
    names = class_names([table] + ([truth] if truth else []), classes)
    if truth is not None:
        _warn_truth_only_classes(table, truth, names)
    sets = list(dict.fromkeys(column.label_set for column in table.columns))
    labellers, raw = [], None
    if table.task == "multilabel":
        raw = encode_raw(table, names, sets, parse_reader_value, READER_VALUES)
        label_sets, label_values = label_sets_from_raw(sets, raw, uncertain, collapse_certain=True)
        labellers = sets
    else:
        label_sets = [LabelSet(name=name, labeller=name) for name in sets]
        label_values = encode_classes(table, names, sets)
    truth_values = None
    if truth is not None:
        truth_values = (raw_to_truth(encode_raw(truth, names, ["ground truth"], parse_truth_code, TRUTH_VALUES,
                                                table.images))[:, 0]
                        if table.task == "multilabel" else encode_classes(truth, names, ["ground truth"],
                                                                         table.images)[:, 0])
    splits = _splits(table, group, val_fraction, test_fraction, seed)
    sources, refused = (image_sources(images, table.images) if images is not None
                        else ([""] * len(table.images), {}))
    manifest = pd.DataFrame({"image_id": table.images, "split": splits, "source": sources})
    log(f"{len(table.images)} images, {len(sets)} labeller(s), {len(label_sets)} label set(s), {len(names)} "
        f"classes ({table.task})")
    return DatasetSpec(
        task=table.task, classes=names, manifest=manifest, label_sets=label_sets, labels=label_values,
        ground_truth=truth_values, labellers=labellers, raw_labels=raw, has_images=images is not None,
        refused=refused,
        source={"name": "table", "labels": str(labels), "images": str(images) if images else None,
                "ground_truth": str(ground_truth) if ground_truth else None, "task": table.task,
                "uncertain": uncertain, "ignored_columns": len(ignore),
                "split": "column" if SPLIT in table.frame else
                {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed,
                 "grouped": group is not None}},
    )


# ----------------------------------------------------------------------------- layouts


def read_label_table(path: Path, *, task: str = "auto", labeller: Sequence[str] = (), ignore: Sequence[str] = (),
                     group: str | None = None, ground_truth: bool = False) -> Table:
    """Read a labels file (or, with ``ground_truth``, a file without labellers) and find its layout."""
    what = "ground-truth" if ground_truth else "labels"
    frame = csvio.read_table(path, required=(IMAGE,), what=what)
    csvio.require_nonblank(frame, IMAGE, path)
    frame[IMAGE] = frame[IMAGE].str.strip()
    ignored = _ignored(frame, path, ignore, ground_truth)
    if group is not None:
        if group not in frame.columns:
            raise OptionError("group", f"names column {group!r}, which {path.name} does not have")
        csvio.require_nonblank(frame, group, path)
    reserved = {IMAGE, SPLIT, *([group] if group else []), *ignored}
    long = "labeller" in frame or (ground_truth and ("label" in frame or "value" in frame))
    if long and labeller:
        raise OptionError("labeller", f"declares the label columns of a wide table; {path.name} is a long table "
                                      "that names its labellers in its labeller column")
    found, columns = (_long_columns(frame, path, reserved, task, ground_truth) if long
                      else _wide_columns(frame, path, reserved, labeller, task, ground_truth))
    if task != "auto" and found != task:
        raise LtvError(f"{path}: the columns ({', '.join(map(repr, frame.columns))}) are those of a {found} table, "
                       f"not {task}; see docs/ingest.md for the layouts")
    if not columns:
        raise LtvError(f"{path}: no label columns besides {', '.join(c for c in frame.columns if c in reserved)}")
    return Table(path=path, task=found, frame=frame, columns=columns, images=list(dict.fromkeys(frame[IMAGE])))


def _ignored(frame: pd.DataFrame, path: Path, ignore: Sequence[str], ground_truth: bool) -> set[str]:
    """The ``ignore`` columns this file has; in the labels file each must exist (a typo is not silent)."""
    names = {name.strip() for name in ignore}
    absent = sorted(names - set(frame.columns))
    if absent and not ground_truth:
        raise OptionError("ignore", f"names column(s) {', '.join(map(repr, absent))} that {path.name} does not "
                                    "have")
    return names & set(frame.columns)


def _long_columns(frame: pd.DataFrame, path: Path, reserved: set[str], task: str,
                  ground_truth: bool) -> tuple[str, list[Column]]:
    """image, labeller, label (classes or class lists) or image, labeller, finding, value (judgements)."""
    group = [] if ground_truth else ["labeller"]
    if "label" in frame:
        keys, value = [IMAGE, *group], "label"
        kind = LIST if task == "multilabel" or _has_lists(frame[value]) else CLASS
    elif "value" in frame:
        keys = [IMAGE, *group, csvio.first_present(frame, CLASS_COLUMNS, path, "finding")]
        value, kind = "value", JUDGEMENT
    else:
        raise LtvError(f"{path}: a long labels table needs columns image, labeller and either label (multi-class) "
                       f"or finding, value (multi-label); found {', '.join(map(repr, frame.columns))}")
    _refuse_unknown(frame, path, reserved | set(keys) | {value}, long=True)
    for key in keys:
        csvio.require_nonblank(frame, key, path)
        frame[key] = frame[key].str.strip()
    csvio.require_unique(frame, keys, path)
    found = "multiclass" if kind == CLASS else "multilabel"
    if len(keys) == 1:  # image, label: ground truth
        return found, [Column("ground truth", None, frame[[IMAGE, value]], value, kind)]
    columns = []
    for name, cells in frame.groupby(keys[1:], sort=False):  # per labeller (and finding)
        label_set = "ground truth" if ground_truth else name[0]
        columns.append(Column(label_set, name[-1] if kind == JUDGEMENT else None, cells[[IMAGE, value]], value, kind))
    return found, columns


def _wide_columns(frame: pd.DataFrame, path: Path, reserved: set[str], labeller: Sequence[str], task: str,
                  ground_truth: bool) -> tuple[str, list[Column]]:
    """Declared plain columns and ``<labelset>:<class>`` columns (ground truth: one column per class)."""
    csvio.require_unique(frame, IMAGE, path)
    names = [c for c in frame.columns if c not in reserved]
    if ground_truth:  # image, <class>, <class>, ...
        return "multilabel", [Column("ground truth", c, frame[[IMAGE, c]], c, JUDGEMENT) for c in names]
    declared = _declarations(labeller)
    judged = [c for c in names if SET_SEPARATOR in c]
    prefixes = {c.split(SET_SEPARATOR, 1)[0].strip() for c in judged}
    plain = [c for c in declared if c in frame.columns and SET_SEPARATOR not in c]
    unknown = [c for c in declared if c not in plain and c not in prefixes]
    if unknown:
        raise OptionError("labeller", f"names {', '.join(map(repr, unknown))}, which is neither a column of "
                                      f"{path.name} nor the <labelset> of its <labelset>{SET_SEPARATOR}<class> "
                                      "columns")
    _refuse_unknown(frame, path, reserved | set(plain) | set(judged), long=False)
    multilabel = bool(judged) or task == "multilabel" or any(_has_lists(frame[c]) for c in plain)
    columns = []
    for c in frame.columns:  # label sets in the order of their first column
        if c in plain:
            columns.append(Column(declared[c], None, frame[[IMAGE, c]], c, LIST if multilabel else CLASS))
        elif c in judged:
            prefix, cls = (part.strip() for part in c.split(SET_SEPARATOR, 1))
            columns.append(Column(declared.get(prefix, prefix), cls, frame[[IMAGE, c]], c, JUDGEMENT))
    clash = [declared[c] for c in plain if declared[c] in {declared.get(p, p) for p in prefixes}]
    duplicates = [name for name in {declared[c] for c in plain} if [declared[c] for c in plain].count(name) > 1]
    if clash or duplicates:
        raise OptionError("labeller", f"gives the label-set name {(clash or duplicates)[0]!r} to more than one "
                                      "label column; name each label set once")
    return ("multilabel" if multilabel else "multiclass"), columns


def _declarations(labeller: Sequence[str]) -> dict[str, str]:
    """``COLUMN`` or ``COLUMN=NAME`` declarations -> {column: label-set name}."""
    declared: dict[str, str] = {}
    for item in labeller:
        column, _, name = item.partition("=")
        column, name = column.strip(), name.strip() or column.strip()
        if not column:
            raise OptionError("labeller", f"{item!r} names no column; expected COLUMN or COLUMN=NAME")
        if column in declared:
            raise OptionError("labeller", f"declares column {column!r} twice")
        declared[column] = name
    return declared


def _refuse_unknown(frame: pd.DataFrame, path: Path, known: set[str], *, long: bool) -> None:
    """One error listing every column that is neither a label column nor image/split/group/ignored.

    Only the column names are shown, never a cell: such columns are often
    patient ids or demographics.
    """
    unknown = ", ".join(repr(c) for c in frame.columns if c not in known)
    if not unknown:
        return
    if long:
        raise OptionError("ignore", f"does not list the column(s) {unknown} of {path.name}, and a long table "
                                    "has only image, labeller, label or finding and value, split and the group "
                                    "column; list the others here to leave them out")
    raise OptionError("labeller", f"does not declare the column(s) {unknown} of {path.name}; declare each label "
                                  "column (COLUMN or COLUMN=NAME), or leave it out with `ignore`")


def _has_lists(cells: pd.Series) -> bool:
    return bool(cells.str.contains(CLASS_SEPARATOR, regex=False).any())


# ----------------------------------------------------------------------------- classes and values


def class_names(tables: list[Table], given: Sequence[str] | None) -> list[str]:
    """The class list: ``given`` (checked against the files), else taken from the files.

    Multi-label names that are all chest X-ray findings become the canonical
    finding names in FINDINGS order; other names keep their first-seen
    order. Multi-class values that are all non-negative integers are class ids
    0..max; otherwise the distinct values, sorted, are the class names.
    """
    multilabel = tables[0].task == "multilabel"
    if given:
        names = [name.strip() for name in given]
        if multilabel:  # (cells are checked one by one, with their line, when encoded)
            keys = {_class_key(name) for name in names}
            for table in tables:
                for cls in _multilabel_classes(table):
                    if _class_key(cls) not in keys:
                        raise LtvError(f"{table.path}: class {cls!r} is not one of `classes` {', '.join(names)}")
        return names
    if multilabel:
        seen = list(dict.fromkeys(cls for table in tables for cls in _multilabel_classes(table)))
        if all(is_finding(name) for name in seen):
            found = {canonical(name) for name in seen}
            return [f for f in FINDINGS if f in found]
        return seen
    seen = list(dict.fromkeys(v for table in tables for v in _cell_texts(table)))
    if seen and all(v.isdigit() for v in seen):
        return [str(i) for i in range(max(int(v) for v in seen) + 1)]
    return sorted(seen)


def _multilabel_classes(table: Table) -> list[str]:
    """Class names a multi-label table mentions: judgement columns' classes and the entries of class lists."""
    names = []
    for column in table.columns:
        if column.kind == JUDGEMENT:
            names.append(column.cls)
        else:
            names += [name for text in column.cells[column.value].unique() for name in _split_list(text)]
    return list(dict.fromkeys(names))


def _cell_texts(table: Table) -> list[str]:
    texts = (v.strip() for column in table.columns for v in column.cells[column.value].unique())
    return list(dict.fromkeys(v for v in texts if v))


def _split_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(CLASS_SEPARATOR) if name.strip()]


def _warn_truth_only_classes(table: Table, truth: Table, names: list[str]) -> None:
    """Warn about ground-truth classes no label set ever labels (they stay, all-missing in every label set)."""
    if table.task == "multilabel":
        labelled = {_class_key(c) for c in _multilabel_classes(table)}
        truth_classes = [c for c in _multilabel_classes(truth) if _class_key(c) not in labelled]
    else:
        labelled = set(_cell_texts(table))
        truth_classes = [c for c in _cell_texts(truth) if c not in labelled]
    if truth_classes:
        warn(f"{truth.path.name}: ground-truth class(es) {', '.join(map(repr, truth_classes))} are in no label "
             "set; every label set is missing for them")


def encode_classes(table: Table, names: list[str], sets: list[str], images: list[str] | None = None) -> np.ndarray:
    """Multi-class cells -> int16 [N, M] class ids, -1 = missing; rows follow ``images`` (default: the table's)."""
    images = table.images if images is None else images
    row_of = pd.Index(images)
    out = np.full((len(images), len(sets)), MISSING, dtype=np.int16)
    ids = {name: j for j, name in enumerate(names)}
    ids.update({str(j): j for j in range(len(names)) if str(j) not in ids})
    for column in table.columns:
        values = csvio.parse_cells(column.cells, [column.value], lambda text: _class_id(text, ids),
                                   f"a class of {', '.join(names)} or blank", table.path, dtype=np.int16)
        out[row_of.get_indexer(column.cells[IMAGE]), sets.index(column.label_set)] = values[:, 0]
    return out


def encode_raw(table: Table, names: list[str], sets: list[str], parse: Callable[[str], int | None], expected: str,
               images: list[str] | None = None) -> np.ndarray:
    """Multi-label cells -> raw codes int8 [N, M, C] (RAW_*; RAW_MISSING where nothing was said).

    A judgement column fills one class; a class list makes its classes
    positive and every other class negative (a blank list says nothing).
    """
    images = table.images if images is None else images
    row_of = pd.Index(images)
    out = np.full((len(images), len(sets), len(names)), RAW_MISSING, dtype=np.int8)
    class_of = {key: j for j, name in enumerate(names) for key in {name, _class_key(name)}}
    for column in table.columns:
        rows, m = row_of.get_indexer(column.cells[IMAGE]), sets.index(column.label_set)
        if column.kind == JUDGEMENT:
            values = csvio.parse_cells(column.cells, [column.value], parse, expected, table.path)
            out[rows, m, class_of[_class_key(column.cls)]] = values[:, 0]
        else:
            out[rows, m] = _encode_lists(column, class_of, len(names), table.path)
    return out


def _encode_lists(column: Column, class_of: dict[str, int], n_classes: int, path: Path) -> np.ndarray:
    """Class-list cells -> raw codes [rows, C]; each distinct text is parsed once (NIH has ~800 of them)."""
    patterns = {}
    for text in column.cells[column.value].unique():
        codes = np.full(n_classes, RAW_MISSING, dtype=np.int8)
        if text.strip():
            codes[:] = RAW_NEGATIVE
            for name in _split_list(text):
                codes[class_of[_class_key(name)]] = RAW_POSITIVE
        patterns[text] = codes
    return np.stack([patterns[text] for text in column.cells[column.value]]) if len(column.cells) else \
        np.zeros((0, n_classes), dtype=np.int8)


def _class_id(text: str, ids: dict[str, int]) -> int | None:
    """A multi-class cell: blank -> MISSING, a class name or id -> its index, else None (invalid)."""
    text = text.strip()
    return MISSING if not text else ids.get(text)


def _class_key(name: str) -> str:
    """Findings match by any alias; other class names match exactly."""
    return canonical(name) if is_finding(name) else name


# ----------------------------------------------------------------------------- split


def _splits(table: Table, group: str | None, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """The ``split`` column (one value per image), else a seeded random split of images or of groups."""
    groups = _per_image(table, group) if group else None
    if SPLIT in table.frame:
        table.frame[SPLIT] = table.frame[SPLIT].str.strip()
        csvio.require_values(table.frame, SPLIT, SPLITS, table.path)
        splits = _per_image(table, SPLIT)
        if groups is not None:
            spread = pd.DataFrame({"group": groups, "split": splits}).groupby("group")["split"].nunique()
            if (spread > 1).any():
                warn(f"{table.path.name}: {int((spread > 1).sum())} group(s) of column {group!r} have images in "
                     "more than one split")
        return splits
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise OptionError("val_fraction", "must be in [0, 1), as must the test fraction, and the two must add up "
                                          "to less than 1")
    units = groups if groups is not None else table.images
    names = list(dict.fromkeys(units))  # images, or groups in order of first appearance
    split_of = draw_splits(names, test_fraction, val_fraction, seed)
    if groups is not None:
        n_test, n_val = (list(split_of.values()).count(name) for name in ("test", "validate"))
        log(f"random split over {len(names)} group(s) of column {group!r}: {n_test} test, {n_val} validate")
    return [split_of[unit] for unit in units]


def _per_image(table: Table, column: str) -> list[str]:
    """One value of ``column`` per image (long tables repeat it on every row of an image; it must agree)."""
    frame = table.frame
    per_image = frame.drop_duplicates([IMAGE, column])
    conflict = per_image[IMAGE].duplicated().to_numpy()
    if conflict.any():
        image = per_image[IMAGE].iloc[int(conflict.argmax())]
        raise LtvError(f"{table.path}: image {image!r} has more than one {column} value")
    return per_image.set_index(IMAGE)[column].str.strip().loc[table.images].tolist()
