"""Report embeddings made elsewhere (``ltv embed-reports --embeddings FILE``).

A site may already have report vectors (from another model, or computed on
another machine). They come keyed by image id or by study id:

* CSV or Parquet: one id column (``image_id``, ``image``, ``dicom_id`` or
  ``study_id``) and D numeric columns, one row per id;
* ``.npz``: an ``embeddings`` array [K, D] and a string id array named like
  one of those columns;
* ``.npy`` [K, D] with ``--ids IDS.csv``, a CSV whose id column lists the K
  rows' ids in order (or a ``.txt`` file, one id per line).

The files are read by :mod:`ltvcli.dataset.vectors`, as image features are.

Study ids fan out to every image of the study (the manifest's ``study_id``).
An id the dataset does not have is an error (a file for another dataset, or
ids in another spelling); an image the file does not cover is allowed, gets a
NaN row, and is counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltvcli.console import warn
from ltvcli.csvio import missing_ids
from ltvcli.dataset import Dataset
from ltvcli.dataset.vectors import VectorLayout, VectorTable, first_nonfinite, read_vector_file
from ltvcli.errors import LtvError
from ltvcli.text.store import save_text_embeddings

IMAGE_ID_COLUMNS = ("image_id", "image", "dicom_id")
STUDY_ID_COLUMN = "study_id"
ID_COLUMNS = IMAGE_ID_COLUMNS + (STUDY_ID_COLUMN,)
EMBEDDINGS_KEY = "embeddings"
#: How report embeddings come: keyed by image or study, a .npz's array named ``embeddings``, the flags
#: ``--embeddings`` and ``--ids``.
LAYOUT = VectorLayout(id_columns=ID_COLUMNS, array_keys=(EMBEDDINGS_KEY,), file_parameter="embeddings",
                      ids_parameter="ids")


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


def read_embedding_file(file: Path, *, ids: str | Path | None = None) -> VectorTable:
    """Read ids and vectors from a CSV, Parquet, .npz, or .npy (+ ids file) file; every value must be finite."""
    table = read_vector_file(file, LAYOUT, ids=ids)
    bad = first_nonfinite(table.vectors)
    if bad is not None:
        raise LtvError(f"{table.where(bad)}: embedding has a NaN or infinite value")
    return table


def align_to_images(ds: Dataset, table: VectorTable, file: Path) -> np.ndarray:
    """float32 [N, D] in images.csv order; NaN rows for images the file does not cover."""
    by_study = table.id_column == STUDY_ID_COLUMN
    keys = ds.manifest[table.id_column if by_study else "image_id"].str.strip()
    if by_study and not (keys != "").any():
        raise LtvError(f"{file}: keyed by study_id, but {ds.path}/images.csv has no study ids; key it by image_id")
    unknown, first = missing_ids(table.ids, set(keys))
    if unknown:
        raise LtvError(f"{file}: {unknown} of {len(table.ids)} {table.id_column} values are not in {ds.path} "
                       f"(first: {first!r})")
    position = {key: k for k, key in enumerate(table.ids)}
    row_of = keys.map(position).fillna(-1).to_numpy(dtype=np.int64)
    vectors = np.full((len(ds), table.dim), np.nan, dtype=np.float32)
    covered = row_of >= 0
    vectors[covered] = table.vectors[row_of[covered]]
    return vectors
