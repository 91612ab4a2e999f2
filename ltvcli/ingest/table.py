"""Label tables from a user's own labellers (CSV or Parquet) -> a dataset folder.

Two layouts, told apart by their columns (``docs/ingest.md`` has examples):

* wide, one row per image: ``image`` plus one column per label set
  (multi-class; the cell is a class name or id) or one column per label set
  and class named ``<labelset>:<class>`` (multi-label; cells 1 / 0);
* long, one row per judgement, as crowd-sourcing tools export:
  ``image, labeller, label`` (multi-class) or
  ``image, labeller, finding, value`` (multi-label; ``class`` is accepted
  for ``finding``).

``image`` is a path relative to ``--images``; a blank cell (or a long-layout
pair that does not occur) is a missing label. An optional ``split`` column
gives the split, otherwise a seeded random split is drawn. Ground truth uses
the same layouts without the labeller: ``image, label``,
``image, finding, value`` or ``image, <class>, <class>, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.format import MISSING, SPLITS, TASKS
from ltvcli.dataset.labelsets import parse_binary
from ltvcli.errors import LtvError
from ltvcli.findings import FINDINGS, canonical, is_finding
from ltvcli.ingest.images import default_workers, load_image

SET_SEPARATOR = ":"
RESERVED = ("image", "split")
CLASS_COLUMNS = ("finding", "class")


@dataclass
class Column:
    """The cells of one label set for one class (multi-label) or for all classes (multi-class).

    ``cells`` is a slice of the file's rows (index = file row, for messages)
    with the ``image`` column and ``value`` column.
    """

    label_set: str
    cls: str | None
    cells: pd.DataFrame
    value: str


@dataclass
class Table:
    """A parsed labels or ground-truth file, before its values are encoded."""

    path: Path
    task: str
    frame: pd.DataFrame
    columns: list[Column]
    images: list[str]


def ingest_table(labels: Path, *, images: Path, out: Path, ground_truth: Path | None = None, task: str = "auto",
                 classes: Sequence[str] | None = None, channels: int = 1, size: int = 256,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                 workers: int | None = None, strict: bool = False) -> Dataset:
    """Ingest a wide or long label table (CSV or Parquet) whose ``image`` column names files under ``images``.

    ``task`` is ``auto`` (from the columns), ``multilabel`` or ``multiclass``;
    ``classes`` fixes the class names and their order (otherwise they are
    taken from the file). Without a ``split`` column, ``val_fraction`` and
    ``test_fraction`` of the images are drawn (seeded) for validate and test.
    """
    if channels not in (1, 3):
        raise LtvError(f"--channels must be 1 or 3; got {channels}")
    spec = table_spec(labels, images=images, ground_truth=ground_truth, task=task, classes=classes,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return build_dataset(spec, out, size=size, channels=channels, decode=load_image,
                         workers=default_workers(workers), strict=strict)


def table_spec(labels: Path, *, images: Path, ground_truth: Path | None = None, task: str = "auto",
               classes: Sequence[str] | None = None, val_fraction: float = 0.1, test_fraction: float = 0.1,
               seed: int = 0) -> DatasetSpec:
    """Parse the label table (and ground truth) into a :class:`DatasetSpec` (no image is read)."""
    if task not in ("auto", *TASKS):
        raise LtvError(f"--task must be auto, multilabel or multiclass; got {task!r}")
    images = Path(images)
    if not images.is_dir():
        raise LtvError(f"{images}: no such image folder")
    table = read_label_table(Path(labels), task=task)
    truth = read_label_table(Path(ground_truth), task=table.task, ground_truth=True) if ground_truth else None
    if truth is not None:
        count, first = csvio.missing_ids(truth.images, table.images)
        if count:
            raise LtvError(f"{truth.path}: {count} image(s) that are not in {table.path.name} (first: {first!r})")
    names = class_names([table] + ([truth] if truth else []), classes)
    sets = list(dict.fromkeys(column.label_set for column in table.columns))
    label_values = encode(table, names, sets)
    truth_values = encode(truth, names, ["ground truth"], table.images)[:, 0] if truth else None
    manifest = pd.DataFrame({"image_id": table.images, "split": _splits(table, val_fraction, test_fraction, seed),
                             "source": [str(images / name) for name in table.images]})
    log(f"{len(table.images)} images, {len(sets)} label sets, {len(names)} classes ({table.task})")
    return DatasetSpec(
        task=table.task, classes=names, manifest=manifest,
        label_sets=[LabelSet(name=name, labeller=name) for name in sets], labels=label_values,
        ground_truth=truth_values,
        source={"name": "table", "labels": str(labels), "images": str(images),
                "ground_truth": str(ground_truth) if ground_truth else None, "task": table.task,
                "split": "column" if "split" in table.frame else
                {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}},
    )


# ----------------------------------------------------------------------------- layouts


def read_label_table(path: Path, *, task: str = "auto", ground_truth: bool = False) -> Table:
    """Read a labels file (or, with ``ground_truth``, a file without labellers) and find its layout."""
    what = "ground-truth file" if ground_truth else "labels file"
    frame = csvio.read_table(path, required=("image",), what=what)
    csvio.require_nonblank(frame, "image", path)
    frame["image"] = frame["image"].str.strip()
    long = "labeller" in frame or (ground_truth and ("label" in frame or "value" in frame))
    found, columns = _long_columns(frame, path, ground_truth) if long else _wide_columns(frame, path, ground_truth,
                                                                                         task)
    if task != "auto" and found != task:
        raise LtvError(f"{path}: the columns ({', '.join(frame.columns)}) are those of a {found} table, "
                       f"not {task}; see docs/ingest.md for the layouts")
    if not columns:
        raise LtvError(f"{path}: no label columns besides {', '.join(c for c in RESERVED if c in frame)}")
    return Table(path=path, task=found, frame=frame, columns=columns, images=list(dict.fromkeys(frame["image"])))


def _long_columns(frame: pd.DataFrame, path: Path, ground_truth: bool) -> tuple[str, list[Column]]:
    """image, labeller, label (multi-class) or image, labeller, finding, value (multi-label)."""
    group = [] if ground_truth else ["labeller"]
    if "label" in frame:
        task, keys, value = "multiclass", ["image", *group], "label"
    elif "value" in frame:
        keys = ["image", *group, csvio.first_present(frame, CLASS_COLUMNS, path, "finding")]
        task, value = "multilabel", "value"
    else:
        raise LtvError(f"{path}: a long labels table needs columns image, labeller and either label (multi-class) "
                       f"or finding, value (multi-label); found {', '.join(frame.columns)}")
    for key in keys:
        csvio.require_nonblank(frame, key, path)
        frame[key] = frame[key].str.strip()
    csvio.require_unique(frame, keys, path)
    if len(keys) == 1:  # image, label: the ground truth of a multi-class table
        return task, [Column("ground truth", None, frame[["image", value]], value)]
    columns = []
    for name, cells in frame.groupby(keys[1:], sort=False):  # per labeller (and finding)
        label_set = "ground truth" if ground_truth else name[0]
        columns.append(Column(label_set, name[-1] if task == "multilabel" else None, cells[["image", value]], value))
    return task, columns


def _wide_columns(frame: pd.DataFrame, path: Path, ground_truth: bool, task: str) -> tuple[str, list[Column]]:
    """One column per label set (multi-class) or per ``<labelset>:<class>`` (multi-label)."""
    names = [c for c in frame.columns if c not in RESERVED]
    csvio.require_unique(frame, "image", path)
    if ground_truth:  # image, <class>, <class>, ...: the wide ground truth of a multi-label table
        return "multilabel", [Column("ground truth", c, frame[["image", c]], c) for c in names]
    if not any(SET_SEPARATOR in c for c in names) and task != "multilabel":
        return "multiclass", [Column(c, None, frame[["image", c]], c) for c in names]
    plain = [c for c in names if SET_SEPARATOR not in c]
    if plain:
        raise LtvError(f"{path}: column {plain[0]!r} is not named <labelset>{SET_SEPARATOR}<class>; in a wide "
                       "multi-label table every label column is")
    columns = []
    for c in names:
        label_set, cls = (part.strip() for part in c.split(SET_SEPARATOR, 1))
        columns.append(Column(label_set, cls, frame[["image", c]], c))
    return "multilabel", columns


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
        if multilabel:  # (multi-class cells are checked one by one, with their line, when encoded)
            keys = {_class_key(name) for name in names}
            for table in tables:
                for column in table.columns:
                    if _class_key(column.cls) not in keys:
                        raise LtvError(f"{table.path}: class {column.cls!r} is not one of --classes "
                                       f"{', '.join(names)}")
        return names
    if multilabel:
        seen = list(dict.fromkeys(column.cls for table in tables for column in table.columns))
        if all(is_finding(name) for name in seen):
            found = {canonical(name) for name in seen}
            return [f for f in FINDINGS if f in found]
        return seen
    cells = (v.strip() for table in tables for column in table.columns for v in column.cells[column.value].unique())
    seen = list(dict.fromkeys(v for v in cells if v))
    if seen and all(v.isdigit() for v in seen):
        return [str(i) for i in range(max(int(v) for v in seen) + 1)]
    return sorted(seen)


def encode(table: Table, names: list[str], sets: list[str], images: list[str] | None = None) -> np.ndarray:
    """Encode a table's cells: int8 [N, M, C] (multi-label) or int16 [N, M] (multi-class); -1 = missing.

    Rows follow ``images`` (default: the table's own image order).
    """
    images = table.images if images is None else images
    row_of = pd.Index(images)
    multilabel = table.task == "multilabel"
    if multilabel:
        out = np.full((len(images), len(sets), len(names)), MISSING, dtype=np.int8)
        class_of = {key: j for j, name in enumerate(names) for key in {name, _class_key(name)}}
    else:
        out = np.full((len(images), len(sets)), MISSING, dtype=np.int16)
        ids = {name: j for j, name in enumerate(names)}
        ids.update({str(j): j for j in range(len(names)) if str(j) not in ids})
    for column in table.columns:
        rows = row_of.get_indexer(column.cells["image"])
        m = sets.index(column.label_set)
        if multilabel:
            values = csvio.parse_cells(column.cells, [column.value], parse_binary, "1, 0 or blank", table.path)
            out[rows, m, class_of[_class_key(column.cls)]] = values[:, 0]
        else:
            values = csvio.parse_cells(column.cells, [column.value], lambda text: _class_id(text, ids),
                                       f"a class of {', '.join(names)} or blank", table.path, dtype=np.int16)
            out[rows, m] = values[:, 0]
    return out


def _class_id(text: str, ids: dict[str, int]) -> int | None:
    """A multi-class cell: blank -> MISSING, a class name or id -> its index, else None (invalid)."""
    text = text.strip()
    return MISSING if not text else ids.get(text)


def _class_key(name: str) -> str:
    """Findings match by any alias; other class names match exactly."""
    return canonical(name) if is_finding(name) else name


# ----------------------------------------------------------------------------- split


def _splits(table: Table, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """The ``split`` column (one value per image), else a seeded random split."""
    frame = table.frame
    if "split" in frame:
        frame["split"] = frame["split"].str.strip()
        csvio.require_values(frame, "split", SPLITS, table.path)
        per_image = frame.drop_duplicates(["image", "split"])
        conflict = per_image["image"].duplicated().to_numpy()
        if conflict.any():
            image = per_image["image"].iloc[int(conflict.argmax())]
            raise LtvError(f"{table.path}: image {image!r} has more than one split value")
        return per_image.set_index("image")["split"].loc[table.images].tolist()
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise LtvError("--val-fraction and --test-fraction must be in [0, 1) and add up to less than 1")
    n = len(table.images)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    split = np.full(n, "train", dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test:n_test + n_val]] = "validate"
    return split.tolist()
