"""A crowd's answers as a matrix, one row per item and one column per worker -> a multi-class dataset.

This is how crowdsourcing data sets are usually distributed (LabelMe and
Music of Rodrigues & Pereira, the CrowdLayer and PyLearningCrowds
repositories): per split, files whose rows are the same items in the same
order,

* the **answers**: [items, workers] class ids, ``-1`` (or a blank, ``nan``,
  ``NA``) where a worker did not label the item; each worker becomes a label
  set (``worker_01``, ...), missing where it gave no answer;
* the **truth**: the true class id per item, one per line (``-1``: unknown);
* the **features**: [items, D] numbers per item (the items' pixels are
  often not distributed, their features are), which ``ltv train`` trains on.

A split may come without answers (LabelMe's validation and test items have
truth and features only): its label sets are all missing there. Item ``i``
of split ``s`` becomes image ``s-i``. Files are ``.npy`` arrays or text,
values separated by commas or whitespace, no header. The dataset has no
pixels (``has_images: false``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ltvcli.console import log
from ltvcli.dataset import SPLITS, Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.vectors import VectorTable
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import DATASET, check_output

#: Names a split may be given by, besides ltv's own (LabelMe's files say ``valid``).
SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate", "dev": "validate"}
#: Cells that mean "no answer" besides the missing value itself.
BLANKS = ("", "nan", "na", "none", "null")
_SEPARATORS = re.compile(r"[,\s]+")


def ingest_answers(*, out: Path, answers: Mapping[str, Path], truth: Mapping[str, Path] | None = None,
                   features: Mapping[str, Path] | None = None, classes: Sequence[str] | None = None,
                   labellers: Sequence[str] | None = None, missing: int = -1, force: bool = False) -> Dataset:
    """Ingest answer matrices (and truth, and features), each ``{split: file}``, into the dataset folder ``out``.

    ``classes`` names the class ids 0..C-1 (default ``class_0``, ...);
    ``labellers`` names the workers, one per answers column (default
    ``worker_01``, ...); ``missing`` is the value that marks no answer or no
    truth. ``force`` replaces a dataset at ``out``.
    """
    truth, features = truth or {}, features or {}
    inputs = [*answers.values(), *truth.values(), *features.values()]
    check_output(out, DATASET, inputs=inputs, force=force)
    spec, vectors = answers_spec(answers=answers, truth=truth, features=features, classes=classes,
                                 labellers=labellers, missing=missing)
    return build_dataset(spec, out, size=0, channels=0, force=force, features=vectors)


def answers_spec(*, answers: Mapping[str, Path], truth: Mapping[str, Path], features: Mapping[str, Path],
                 classes: Sequence[str] | None, labellers: Sequence[str] | None,
                 missing: int) -> tuple[DatasetSpec, VectorTable | None]:
    """Read and check the files into a label-only :class:`DatasetSpec` and the items' features (or None)."""
    answers, truth, features = (_splits(files, name) for files, name in
                                ((answers, "answers"), (truth, "truth"), (features, "features")))
    if not answers:
        raise OptionError("answers", "needs at least one answers matrix, given as SPLIT=FILE")
    matrices = {split: read_matrix(file, missing) for split, file in answers.items()}
    workers = _worker_count(matrices, answers)
    truths = {split: _column(read_matrix(file, missing), file) for split, file in truth.items()}
    vectors = {split: read_vectors(file) for split, file in features.items()}
    counts = _item_counts(answers, truth, features, matrices, truths, vectors)
    order = [split for split in SPLITS if split in counts]
    names = _class_names(classes, [*matrices.values(), *truths.values()], answers, missing)
    sets = _labellers(labellers, workers)
    labels = np.concatenate([matrices[s] if s in matrices else np.full((counts[s], workers), missing) for s in order])
    manifest = pd.DataFrame({"image_id": [f"{s}-{i}" for s in order for i in range(counts[s])],
                             "split": [s for s in order for _ in range(counts[s])], "source": ""})
    ground_truth = None
    if truths:
        ground_truth = np.concatenate([truths[s] if s in truths else np.full(counts[s], missing) for s in order])
    log(", ".join(f"{counts[s]} {s}" for s in order) + f" items; {workers} workers, "
        f"{int((labels != missing).sum())} answers; {len(names)} classes")
    spec = DatasetSpec(
        task="multiclass", classes=names, manifest=manifest,
        label_sets=[LabelSet(name=name, labeller=name) for name in sets],
        labels=np.where(labels == missing, -1, labels).astype(np.int16),
        ground_truth=None if ground_truth is None else np.where(ground_truth == missing, -1,
                                                                ground_truth).astype(np.int16),
        has_images=False,
        source={"name": "answers", "answers": _names(answers), "truth": _names(truth),
                "features": _names(features), "missing": missing},
    )
    return spec, _feature_table(vectors, order, counts, manifest, features)


def split_files(values: Sequence[str], parameter: str) -> dict[str, Path]:
    """``SPLIT=FILE`` values (a bare ``FILE`` is the train split) as ``{split: file}``; a split at most once."""
    files: dict[str, Path] = {}
    for value in values:
        split, sep, file = value.partition("=")
        split, file = (split.strip(), file) if sep else ("train", value)
        canonical = SPLIT_ALIASES.get(split.lower(), split.lower())
        if canonical not in SPLITS:
            raise OptionError(parameter, f"{value!r}: unknown split {split!r}; expected SPLIT=FILE with SPLIT one of "
                                         f"{', '.join(SPLITS)} (or {', '.join(SPLIT_ALIASES)})")
        if canonical in files:
            raise OptionError(parameter, f"gives split {canonical} twice")
        files[canonical] = Path(file)
    return files


# ----------------------------------------------------------------------------- reading the files
def read_matrix(file: Path, missing: int) -> np.ndarray:
    """An integer matrix [rows, columns] from ``.npy`` or text; blank / nan cells become ``missing``."""
    if file.suffix.lower() == ".npy":
        values = _load_npy(file)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
            raise LtvError(f"{file}: expected a [rows, columns] array of class ids, got {values.dtype} "
                           f"{list(values.shape)}")
        cells = np.where(np.isnan(values), missing, values) if values.dtype.kind == "f" else values
        bad = cells != np.round(cells)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise LtvError(f"{file}, row {row + 1}, column {column + 1}: {values[row, column]!r} is not a class id")
        return cells.astype(np.int64)
    rows = _text_rows(file)
    frame = pd.DataFrame(rows)
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    blank = frame.apply(lambda column: column.str.lower().isin(BLANKS))
    bad = (numbers.isna() & ~blank) | (numbers.notna() & (numbers != numbers.round()))
    if bad.to_numpy().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise LtvError(f"{file}, line {row + 1}, column {column + 1}: {rows[row][column]!r} is not a class id "
                       f"(an integer, or {missing} / blank for none)")
    return numbers.fillna(missing).to_numpy().astype(np.int64)


def read_vectors(file: Path) -> np.ndarray:
    """A float matrix [items, D] of features from ``.npy`` or text, every value finite."""
    if file.suffix.lower() == ".npy":
        values = _load_npy(file)
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.number) or values.dtype.kind == "c":
            raise LtvError(f"{file}: expected a real [items, D] array of features, got {values.dtype} "
                           f"{list(values.shape)}")
        values = values.astype(np.float32)
        where_bad = lambda row: f"{file}, row {row + 1}"  # noqa: E731
    else:
        rows = _text_rows(file)
        values = pd.DataFrame(rows).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
        where_bad = lambda row: f"{file}, line {row + 1}"  # noqa: E731
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise LtvError(f"{where_bad(int((~finite).argmax()))}: a feature that is not a finite number")
    return values


def _load_npy(file: Path) -> np.ndarray:
    if not file.is_file():
        raise LtvError(f"{file}: no such file")
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LtvError(f"{file}: not a readable .npy array ({str(exc).strip().splitlines()[0]})") from None


def _text_rows(file: Path) -> list[list[str]]:
    """The cells of a text matrix, a row per non-empty line; every row as long as the first."""
    if not file.is_file():
        raise LtvError(f"{file}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LtvError(f"{file}: not UTF-8 text; expected numbers separated by commas or spaces") from None
    rows = [_SEPARATORS.split(line.strip()) if line.strip() else None for line in text.splitlines()]
    while rows and rows[-1] is None:
        rows.pop()
    if not rows:
        raise LtvError(f"{file}: empty; expected one row per item")
    width = len(rows[0] or [])
    for number, row in enumerate(rows, start=1):
        if row is None or len(row) != width:
            raise LtvError(f"{file}, line {number}: {len(row or [])} values, line 1 has {width}; every line is "
                           "one item with a value per column")
    return rows


# ----------------------------------------------------------------------------- checks
def _splits(files: Mapping[str, Path], parameter: str) -> dict[str, Path]:
    """``{split: file}`` with split aliases made canonical (a notebook may pass ``{"valid": ...}``)."""
    return split_files([f"{split}={file}" for split, file in files.items()], parameter)


def _column(values: np.ndarray, file: Path) -> np.ndarray:
    if values.shape[1] != 1:
        raise LtvError(f"{file}: {values.shape[1]} values per line; the truth is one class id per item")
    return values[:, 0]


def _worker_count(matrices: dict[str, np.ndarray], files: dict[str, Path]) -> int:
    widths = {split: m.shape[1] for split, m in matrices.items()}
    if len(set(widths.values())) > 1:
        raise LtvError("the answers matrices have different numbers of workers (columns): "
                       + ", ".join(f"{files[s].name} {w}" for s, w in widths.items()))
    return next(iter(widths.values()))


def _item_counts(answers: dict, truth: dict, features: dict, matrices: dict, truths: dict,
                 vectors: dict) -> dict[str, int]:
    """Items per split; every file of a split must have one row per item."""
    counts: dict[str, tuple[int, Path]] = {}
    for files, arrays in ((answers, matrices), (truth, truths), (features, vectors)):
        for split, array in arrays.items():
            if split in counts and counts[split][0] != len(array):
                first, file = counts[split]
                raise LtvError(f"{files[split]}: {len(array)} rows, but {file} has {first} for split {split}; the "
                               "files of a split list the same items in the same order")
            counts.setdefault(split, (len(array), files[split]))
    dims = {features[s].name: v.shape[1] for s, v in vectors.items()}
    if len(set(dims.values())) > 1:
        raise LtvError("the features files have different dimensions D: "
                       + ", ".join(f"{name} {d}" for name, d in dims.items()))
    return {split: count for split, (count, _) in counts.items()}


def _class_names(classes: Sequence[str] | None, arrays: list[np.ndarray], files: dict[str, Path],
                 missing: int) -> list[str]:
    values = np.concatenate([a.reshape(-1) for a in arrays])
    values = values[values != missing]
    if (values < 0).any():
        raise LtvError(f"class ids must be 0 or more (or {missing} for none); found {int(values.min())} in "
                       + ", ".join(f.name for f in files.values()) + " or the truth")
    count = int(values.max()) + 1 if len(values) else 0
    if classes:
        if len(classes) < count:
            raise OptionError("classes", f"names {len(classes)} classes, but the files use class ids up to "
                                         f"{count - 1}")
        return list(classes)
    return [f"class_{i}" for i in range(max(count, 2))]


def _labellers(names: Sequence[str] | None, workers: int) -> list[str]:
    if not names:
        width = len(str(workers))
        return [f"worker_{j + 1:0{max(width, 2)}d}" for j in range(workers)]
    if len(names) != workers or len(set(names)) != len(names):
        raise OptionError("labellers", f"names {len(names)} labellers ({len(set(names))} distinct), the answers have "
                                       f"{workers} columns; give one distinct name per column")
    return list(names)


def _feature_table(vectors: dict[str, np.ndarray], order: list[str], counts: dict[str, int],
                   manifest: pd.DataFrame, files: dict[str, Path]) -> VectorTable | None:
    """The items' features in manifest order, keyed by their image ids; None without features files."""
    if not vectors:
        return None
    lacking = [split for split in order if split not in vectors]
    if lacking:
        raise OptionError("features", f"given for {', '.join(vectors)} but not for {', '.join(lacking)}; every "
                                      "item needs a feature vector (or give none)")
    name = Path(" + ".join(files[s].name for s in order))
    return VectorTable(name, "image_id", manifest["image_id"].tolist(), np.concatenate([vectors[s] for s in order]))


def _names(files: dict[str, Path]) -> dict[str, str]:
    return {split: file.name for split, file in files.items()}
