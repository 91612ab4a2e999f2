"""Report embeddings made elsewhere (``ltv embed-reports --embeddings FILE``).

A site may already have report vectors (from another model, or computed on
another machine). They come keyed by image id or by study id:

* CSV or Parquet: one id column (``image_id``, ``image``, ``dicom_id`` or
  ``study_id``) and D numeric columns, one row per id;
* ``.npz``: an ``embeddings`` array [K, D] and a string id array named like
  one of those columns;
* ``.npy`` [K, D] with ``--ids IDS.csv``, a CSV whose id column lists the K
  rows' ids in order.

Study ids fan out to every image of the study (the manifest's ``study_id``).
An id the dataset does not have is an error (a file for another dataset, or
ids in another spelling); an image the file does not cover is allowed, gets a
NaN row, and is counted.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.console import warn
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError, OptionError
from ltvcli.csvio import PARQUET_SUFFIXES, missing_ids, read_table
from ltvcli.text.store import save_text_embeddings

IMAGE_ID_COLUMNS = ("image_id", "image", "dicom_id")
STUDY_ID_COLUMN = "study_id"
ID_COLUMNS = IMAGE_ID_COLUMNS + (STUDY_ID_COLUMN,)
EMBEDDINGS_KEY = "embeddings"
TABLE_SUFFIXES = (".csv",) + PARQUET_SUFFIXES


@dataclass
class EmbeddingTable:
    """Vectors read from a file: ``vectors[k]`` belongs to ``ids[k]``, an id of kind ``id_column``."""

    id_column: str
    ids: list[str]
    vectors: np.ndarray

    @property
    def by_study(self) -> bool:
        return self.id_column == STUDY_ID_COLUMN


def import_embeddings(dataset: Dataset | str | Path, file: str | Path, *, ids: str | Path | None = None) -> dict:
    """Store the embeddings of ``file`` (keyed by image or study id) in the dataset folder; return the metadata."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    file = Path(file)
    table = read_embedding_file(file, ids=ids)
    vectors = align_to_images(ds, table, file)
    meta = save_text_embeddings(ds, vectors, source="file", model=file.name, pooling=None, max_length=None)
    if meta["missing"]:
        warn(f"{meta['missing']} of {len(ds)} images have no embedding in {file.name}; their rows are NaN")
    return meta


def read_embedding_file(file: Path, *, ids: str | Path | None = None) -> EmbeddingTable:
    """Read ids and vectors from a CSV, Parquet, .npz, or .npy (+ ids CSV) file, checking both."""
    if not file.is_file():
        raise OptionError("embeddings", f"{file}: no such file")
    suffix = file.suffix.lower()
    if ids is not None and suffix != ".npy":
        raise OptionError("ids", f"is only for a .npy embeddings file; {file.name} carries its own ids")
    if suffix == ".npy":
        table = _read_npy(file, ids)
    elif suffix == ".npz":
        table = _read_npz(file)
    elif suffix in TABLE_SUFFIXES:
        table = _read_table(file)
    else:
        raise OptionError("embeddings", f"{file}: unknown file type {suffix!r}; expected .csv, .parquet, .npz, "
                                        "or .npy with `ids`")
    return table


def align_to_images(ds: Dataset, table: EmbeddingTable, file: Path) -> np.ndarray:
    """float32 [N, D] in images.csv order; NaN rows for images the file does not cover."""
    keys = ds.manifest[table.id_column if table.by_study else "image_id"].str.strip()
    if table.by_study and not (keys != "").any():
        raise LtvError(f"{file}: keyed by study_id, but {ds.path}/images.csv has no study ids; key it by image_id")
    unknown, first = missing_ids(table.ids, set(keys))
    if unknown:
        raise LtvError(f"{file}: {unknown} of {len(table.ids)} {table.id_column} values are not in {ds.path} "
                       f"(first: {first!r})")
    position = {key: k for k, key in enumerate(table.ids)}
    row_of = keys.map(position).fillna(-1).to_numpy(dtype=np.int64)
    vectors = np.full((len(ds), table.vectors.shape[1]), np.nan, dtype=np.float32)
    covered = row_of >= 0
    vectors[covered] = table.vectors[row_of[covered]]
    return vectors


def _id_column(columns, file: Path) -> str:
    """The one id column; several would leave the others to be read as embedding dimensions."""
    present = [c for c in columns if c in ID_COLUMNS]
    if not present:
        raise LtvError(f"{file}: no id column; expected one of {', '.join(map(repr, ID_COLUMNS))}")
    if len(present) > 1:
        raise LtvError(f"{file}: several id columns ({', '.join(map(repr, present))}); keep one, since every "
                       "other column is read as an embedding dimension")
    return present[0]


def _read_table(file: Path) -> EmbeddingTable:
    frame = read_table(file, what="embeddings table")
    id_column = _id_column(frame.columns, file)
    value_columns = [c for c in frame.columns if c != id_column]
    if not value_columns:
        raise LtvError(f"{file}: no embedding columns next to {id_column!r}")
    vectors = np.empty((len(frame), len(value_columns)), dtype=np.float32)
    for j, column in enumerate(value_columns):
        vectors[:, j] = _numeric_column(frame[column], file, column)
    return EmbeddingTable(id_column, _as_ids(frame[id_column].astype(str).to_numpy(), file), vectors)


def _numeric_column(cells: pd.Series, file: Path, column: str) -> np.ndarray:
    """One embedding dimension as floats; the first cell that is not a finite number is reported."""
    values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        position = int(bad.argmax())
        raise LtvError(f"{_where(file, position)}, column {column!r}: {cells.iloc[position]!r} is not a finite number")
    return values


def _read_npz(file: Path) -> EmbeddingTable:
    try:
        with np.load(file, allow_pickle=False) as data:
            id_column = _id_column(data.files, file)
            if EMBEDDINGS_KEY not in data.files:
                raise LtvError(f"{file}: no {EMBEDDINGS_KEY!r} array; found {', '.join(map(repr, data.files))}")
            ids, vectors = data[id_column], data[EMBEDDINGS_KEY]
    except ValueError as exc:
        raise LtvError(f"{file}: cannot read ({str(exc).strip().splitlines()[0]}); store ids as a string array, "
                       "e.g. np.savez(f, embeddings=x, image_id=np.array(ids, dtype=str))") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise LtvError(f"{file}: not a readable .npz file ({type(exc).__name__})") from None
    return EmbeddingTable(id_column, _as_ids(ids, file), _check_vectors(vectors, len(ids), file))


def _read_npy(file: Path, ids_file: str | Path | None) -> EmbeddingTable:
    if ids_file is None:
        raise OptionError("embeddings", f"{file}: a .npy file has no ids; add `ids` IDS.csv, a CSV with an image_id "
                                        "or study_id column listing the id of each row")
    frame = read_table(ids_file, what="ids CSV")
    id_column = _id_column(frame.columns, Path(ids_file))
    try:
        vectors = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LtvError(f"{file}: not a numeric .npy array ({str(exc).strip().splitlines()[0]})") from None
    return EmbeddingTable(id_column, _as_ids(frame[id_column].to_numpy(), Path(ids_file)),
                          _check_vectors(vectors, len(frame), file))


def _as_ids(ids: np.ndarray, file: Path) -> list[str]:
    """Ids as stripped strings, each present and appearing once."""
    if ids.ndim != 1:
        raise LtvError(f"{file}: ids must be one-dimensional, got shape {ids.shape}")
    ids = np.char.strip(ids.astype(str))
    _check_ids(ids, file)
    return ids.tolist()


def _check_vectors(vectors: np.ndarray, n_ids: int, file: Path) -> np.ndarray:
    """A finite real [K, D] array with one row per id."""
    if vectors.ndim != 2 or vectors.shape[1] == 0 or not np.issubdtype(vectors.dtype, np.number) \
            or np.issubdtype(vectors.dtype, np.complexfloating):
        raise LtvError(f"{file}: embeddings must be a real [K, D] array, got {vectors.dtype} {vectors.shape}")
    if len(vectors) != n_ids:
        raise LtvError(f"{file}: {len(vectors)} embedding rows but {n_ids} ids; expected one id per row")
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise LtvError(f"{_where(file, int((~finite).argmax()))}: embedding has a NaN or infinite value")
    return vectors.astype(np.float32)


def _check_ids(ids: np.ndarray, file: Path) -> None:
    blank = ids == ""
    if blank.any():
        raise LtvError(f"{_where(file, int(blank.argmax()))}: empty id; every row needs one")
    values, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = np.flatnonzero(counts > 1)[np.argmin(first[counts > 1])]
        raise LtvError(f"{file}: id {str(values[k])!r} appears {counts[k]} times; each must appear once")


def _where(file: Path, position: int) -> str:
    """``file, line N`` for a CSV (the header is line 1), ``file, row N`` (1-based) otherwise."""
    return f"{file}, line {position + 2}" if file.suffix.lower() == ".csv" else f"{file}, row {position + 1}"
