"""Per-image vectors from a user's file, keyed by ids: report embeddings and image features alike.

Sites bring vectors made elsewhere (BioBERT report embeddings, a chest X-ray
foundation model's image embeddings) in a handful of layouts, read here once:

* CSV or Parquet: one id column and D numeric columns, one row per id;
* ``.npz``: a [K, D] array under one of the caller's array names and a string
  id array named like an id column;
* ``.npy`` [K, D] with an ids file: a CSV (or Parquet) whose id column lists
  the K rows' ids in order, or a ``.txt`` file with one id per line.

The reader checks what holds for any use -- one id per row, ids present and
unique, a real [K, D] array -- and leaves to the caller how the ids meet the
dataset (report embeddings may skip images, image features may not) and which
rows must be finite (:func:`first_nonfinite`). A ``.npy`` file is memory-mapped,
so a 300,000 x 1,376 array costs no memory until its rows are used.
``np.load`` runs with ``allow_pickle=False``: opening a file never runs code.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli.csvio import PARQUET_SUFFIXES, read_table
from ltvcli.errors import LtvError, OptionError

TABLE_SUFFIXES = (".csv",) + PARQUET_SUFFIXES
#: Rows checked for NaN / infinity at a time: bounded memory on a memory-mapped file.
CHUNK_ROWS = 65_536


@dataclass
class VectorTable:
    """Vectors read from ``file``: ``vectors[k]`` belongs to ``ids[k]``, an id of kind ``id_column``."""

    file: Path
    id_column: str
    ids: list[str]
    vectors: np.ndarray  # [K, D] real numbers, possibly memory-mapped; not yet checked for NaN

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def where(self, position: int) -> str:
        """How messages name row ``position`` of the file: ``file, line N`` for a CSV, ``file, row N`` otherwise."""
        return where(self.file, position)


@dataclass(frozen=True)
class VectorLayout:
    """What a caller accepts: its id columns, the array names of a ``.npz``, and its parameters' names.

    ``file_parameter`` / ``ids_parameter`` are the Python parameters (and so
    the flags) that name the vector file and the ids file in messages.
    """

    id_columns: tuple[str, ...]
    array_keys: tuple[str, ...]
    file_parameter: str
    ids_parameter: str


def read_vector_file(file: str | Path, layout: VectorLayout, *, ids: str | Path | None = None) -> VectorTable:
    """Read ids and vectors from a CSV, Parquet, ``.npz``, or ``.npy`` (+ ids file), checking both."""
    file = Path(file)
    if not file.is_file():
        raise OptionError(layout.file_parameter, f"{file}: no such file")
    suffix = file.suffix.lower()
    if ids is not None and suffix != ".npy":
        raise OptionError(layout.ids_parameter, f"is only for a .npy file; {file.name} carries its own ids")
    if suffix == ".npy":
        return _read_npy(file, ids, layout)
    if suffix == ".npz":
        return _read_npz(file, layout)
    if suffix in TABLE_SUFFIXES:
        return _read_table(file, layout)
    raise OptionError(layout.file_parameter, f"{file}: unknown file type {suffix!r}; expected .csv, .parquet, "
                                             f".npz, or .npy with `{layout.ids_parameter}`")


def first_nonfinite(vectors: np.ndarray, rows: np.ndarray | None = None) -> int | None:
    """The first position (of ``rows``, or of all rows) whose vector holds a NaN or an infinity; None if none.

    Read in chunks, so a memory-mapped array is never loaded whole.
    """
    count = len(vectors) if rows is None else len(rows)
    for start in range(0, count, CHUNK_ROWS):
        part = vectors[start:start + CHUNK_ROWS] if rows is None else vectors[rows[start:start + CHUNK_ROWS]]
        bad = ~np.isfinite(part).all(axis=1)
        if bad.any():
            return start + int(bad.argmax())
    return None


def where(file: Path, position: int) -> str:
    """``file, line N`` for a CSV (the header is line 1), ``file, row N`` (1-based) otherwise."""
    return f"{file}, line {position + 2}" if file.suffix.lower() == ".csv" else f"{file}, row {position + 1}"


def _id_column(columns: Sequence[str], file: Path, layout: VectorLayout) -> str:
    """The one id column; several would leave the others to be read as dimensions."""
    present = [c for c in columns if c in layout.id_columns]
    if not present:
        raise LtvError(f"{file}: no id column; expected one of {', '.join(map(repr, layout.id_columns))}")
    if len(present) > 1:
        raise LtvError(f"{file}: several id columns ({', '.join(map(repr, present))}); keep one, since every "
                       "other column is read as a dimension")
    return present[0]


def _read_table(file: Path, layout: VectorLayout) -> VectorTable:
    frame = read_table(file, what="vectors table")
    id_column = _id_column(frame.columns, file, layout)
    value_columns = [c for c in frame.columns if c != id_column]
    if not value_columns:
        raise LtvError(f"{file}: no value columns next to {id_column!r}")
    vectors = np.empty((len(frame), len(value_columns)), dtype=np.float32)
    for j, column in enumerate(value_columns):
        vectors[:, j] = _numeric_column(frame[column], file, column)
    return VectorTable(file, id_column, _as_ids(frame[id_column].astype(str).to_numpy(), file), vectors)


def _numeric_column(cells: pd.Series, file: Path, column: str) -> np.ndarray:
    """One dimension as floats; the first cell that is not a finite number is reported."""
    values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        position = int(bad.argmax())
        raise LtvError(f"{where(file, position)}, column {column!r}: {cells.iloc[position]!r} is not a finite number")
    return values


def _read_npz(file: Path, layout: VectorLayout) -> VectorTable:
    try:
        with np.load(file, allow_pickle=False) as data:
            id_column = _id_column(data.files, file, layout)
            key = next((k for k in layout.array_keys if k in data.files), None)
            if key is None:
                raise LtvError(f"{file}: no {' or '.join(map(repr, layout.array_keys))} array; found "
                               f"{', '.join(map(repr, data.files))}")
            ids, vectors = data[id_column], data[key]
    except ValueError as exc:
        raise LtvError(f"{file}: cannot read ({str(exc).strip().splitlines()[0]}); store ids as a string array, "
                       f"e.g. np.savez(f, {layout.array_keys[0]}=x, image_id=np.array(ids, dtype=str))") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise LtvError(f"{file}: not a readable .npz file ({type(exc).__name__})") from None
    return VectorTable(file, id_column, _as_ids(ids, file), _check_shape(vectors, len(ids), file))


def _read_npy(file: Path, ids_file: str | Path | None, layout: VectorLayout) -> VectorTable:
    if ids_file is None:
        raise OptionError(layout.file_parameter, f"{file}: a .npy file has no ids; add `{layout.ids_parameter}` "
                                                 f"IDS, a CSV with an {layout.id_columns[0]} column or a .txt file "
                                                 "listing the id of each row, in order")
    id_column, ids = read_ids(Path(ids_file), layout)
    try:
        vectors = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LtvError(f"{file}: not a numeric .npy array ({str(exc).strip().splitlines()[0]})") from None
    return VectorTable(file, id_column, ids, _check_shape(vectors, len(ids), file))


def read_ids(file: Path, layout: VectorLayout) -> tuple[str, list[str]]:
    """The ids of a ``.npy`` file's rows: a ``.txt`` file (one per line) or a table with an id column."""
    if file.suffix.lower() != ".txt":
        frame = read_table(file, what="ids")
        id_column = _id_column(frame.columns, file, layout)
        return id_column, _as_ids(frame[id_column].to_numpy(), file)
    if not file.is_file():
        raise LtvError(f"{file}: no such ids file")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LtvError(f"{file}: not UTF-8 text; expected one id per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise LtvError(f"{file}: no ids; expected one id per line")
    return layout.id_columns[0], _as_ids(np.array(lines, dtype=str), file, first_line=1)


def _as_ids(ids: np.ndarray, file: Path, first_line: int | None = None) -> list[str]:
    """Ids as stripped strings, each present and appearing once."""
    if ids.ndim != 1:
        raise LtvError(f"{file}: ids must be one-dimensional, got shape {ids.shape}")
    ids = np.char.strip(ids.astype(str))
    blank = ids == ""
    if blank.any():
        position = int(blank.argmax())
        place = f"{file}, line {position + first_line}" if first_line else where(file, position)
        raise LtvError(f"{place}: empty id; every row needs one")
    values, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = np.flatnonzero(counts > 1)[np.argmin(first[counts > 1])]
        raise LtvError(f"{file}: id {str(values[k])!r} appears {counts[k]} times; each must appear once")
    return ids.tolist()


def _check_shape(vectors: np.ndarray, n_ids: int, file: Path) -> np.ndarray:
    """A real [K, D] array with one row per id."""
    if vectors.ndim != 2 or vectors.shape[1] == 0 or not np.issubdtype(vectors.dtype, np.number) \
            or np.issubdtype(vectors.dtype, np.complexfloating):
        raise LtvError(f"{file}: expected a real [K, D] array of vectors, got {vectors.dtype} {list(vectors.shape)}")
    if len(vectors) != n_ids:
        raise LtvError(f"{file}: {len(vectors)} rows but {n_ids} ids; expected one id per row")
    return vectors
