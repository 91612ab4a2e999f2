"""Image features in the dataset folder: ``features.npy`` and ``features.json``, one vector per image.

A dataset may hold, beside the pixel cache or instead of it, one precomputed
feature vector per image: a chest X-ray foundation model's embedding, VGG
features of a crowd-sourcing benchmark, the output of ``ltv embed-images``.
``ltv train --input features`` trains a small head on them.

* ``features.npy``: float32 [N, D], row *i* = image *i* of ``images.csv``,
  memory-mapped like the image cache; every row finite (an image without
  features could not be trained on or scored, so there are no gaps);
* ``features.json``: ``{"dim": D, "source": "file" | "model", "model": the
  file or model it came from, ...}`` (``ltv embed-images`` adds how it pooled).

Both are written atomically, the array first; the reader checks the array's
shape against the JSON's ``dim`` and the image count, so a pair left
mismatched by an interrupted write is refused, never misread. This module is
their single reader and writer, and also matches a user's vector file
(:mod:`ltvcli.dataset.vectors`) to a dataset's image ids, for ``ltv ingest
--features`` and ``ltv add-features`` alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.lib.format import open_memmap

from ltvcli import __version__, atomic
from ltvcli.console import log
from ltvcli.dataset.vectors import CHUNK_ROWS, VectorLayout, VectorTable, first_nonfinite, read_vector_file
from ltvcli.errors import LtvError

FEATURES_FILE = "features.npy"
FEATURES_META = "features.json"
#: Image ids a features file may be keyed by, and the names of its array in a .npz.
FEATURE_ID_COLUMNS = ("image_id", "image", "dicom_id")
FEATURE_ARRAY_KEYS = ("features", "embeddings")
HOW_TO_ADD = "add them with `ltv add-features DATASET FILE` or `ltv embed-images DATASET --model PATH`"


def feature_layout(file_parameter: str, ids_parameter: str) -> VectorLayout:
    """How a features file is read, with the names of the parameters (flags) that give it and its ids."""
    return VectorLayout(id_columns=FEATURE_ID_COLUMNS, array_keys=FEATURE_ARRAY_KEYS, file_parameter=file_parameter,
                        ids_parameter=ids_parameter)


# ----------------------------------------------------------------------------- reading
def has_features(folder: Path) -> bool:
    return (folder / FEATURES_META).is_file()


def read_feature_meta(folder: Path) -> dict:
    """``features.json`` of ``folder``; a one-line error when it is missing, damaged, or has no array beside it."""
    meta_path = folder / FEATURES_META
    if not meta_path.is_file():
        raise LtvError(f"{folder}: this dataset has no image features ({FEATURES_FILE}); {HOW_TO_ADD}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LtvError(f"{meta_path}: not valid JSON; {HOW_TO_ADD} again") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("dim"), int) or meta["dim"] < 1:
        raise LtvError(f"{meta_path}: no positive integer 'dim'; {HOW_TO_ADD} again")
    if not (folder / FEATURES_FILE).is_file():
        raise LtvError(f"{folder / FEATURES_FILE}: missing beside {FEATURES_META}; {HOW_TO_ADD} again")
    return meta


def open_features(folder: Path, n_images: int) -> np.ndarray:
    """The features of ``folder``, memory-mapped float32 [N, D], checked against features.json and the image count."""
    meta = read_feature_meta(folder)
    file = folder / FEATURES_FILE
    try:
        vectors = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LtvError(f"{file}: not a readable feature array ({type(exc).__name__}); {HOW_TO_ADD} again") from None
    if vectors.dtype != np.float32 or vectors.shape != (n_images, meta["dim"]):
        raise LtvError(f"{file}: {vectors.dtype} {list(vectors.shape)} does not match {n_images} images x "
                       f"{meta['dim']} dims (float32) of {FEATURES_META} (an interrupted write?); {HOW_TO_ADD} again")
    return vectors


# ----------------------------------------------------------------------------- matching a file to the images
def read_features_file(file: str | Path, image_ids: Sequence[str], *, ids: str | Path | None = None,
                       file_parameter: str = "features", ids_parameter: str = "feature_ids",
                       what: str = "the dataset") -> tuple[VectorTable, np.ndarray]:
    """Read a features file and find each image's row in it: (the table, row of each of ``image_ids``).

    ``file_parameter`` / ``ids_parameter`` name the parameters (flags) that
    gave the file and its ids; ``what`` names the images' dataset in messages.
    See :func:`match_features` for what is checked.
    """
    table = read_vector_file(file, feature_layout(file_parameter, ids_parameter), ids=ids)
    return table, match_features(table, image_ids, what)


def match_features(table: VectorTable, image_ids: Sequence[str], what: str = "the dataset") -> np.ndarray:
    """The row of ``table`` holding each of ``image_ids``' vector, after checking them.

    Every image needs a vector, and every vector it will get must be finite;
    vectors for ids the images do not have (laterals a dataset left out, say)
    are left unused and counted. Each problem is a one-line error naming the
    file, and the row or id.
    """
    position = {key: k for k, key in enumerate(table.ids)}
    row_of = np.array([position.get(str(i), -1) for i in image_ids], dtype=np.int64)
    absent = np.flatnonzero(row_of < 0)
    if len(absent) == len(row_of):
        raise LtvError(f"{table.file}: none of its {len(table.ids)} {table.id_column} values is an image of {what} "
                       f"(its first: {table.ids[0]!r}; the images': {str(image_ids[0])!r})")
    if len(absent):
        raise LtvError(f"{table.file}: {len(absent)} of the {len(row_of)} images of {what} have no feature vector "
                       f"(first: {str(image_ids[absent[0]])!r}); every image needs one")
    bad = first_nonfinite(table.vectors, row_of)
    if bad is not None:
        raise LtvError(f"{table.where(int(row_of[bad]))} (id {str(image_ids[bad])!r}): the feature vector has a "
                       "NaN or infinite value")
    unused = len(table.ids) - len(row_of)
    if unused:
        log(f"{table.file.name}: {unused} of its {len(table.ids)} vectors are for images not in {what}; left unused")
    return row_of


def write_features(folder: Path, vectors: np.ndarray, meta: dict, rows: np.ndarray | None = None) -> dict:
    """Write ``vectors``' ``rows`` (all by default) as ``folder``/features.npy, then features.json; return the metadata.

    The array is gathered a chunk at a time into a temporary file (float32)
    and moved into place, then the JSON the same way: bounded memory even for
    a memory-mapped source, atomic files.
    """
    rows = np.arange(len(vectors)) if rows is None else rows
    meta = {"dim": int(vectors.shape[1]), **meta, "ltv_version": __version__}
    with atomic.atomic_path(folder / FEATURES_FILE) as tmp:
        target = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows), vectors.shape[1]))
        for start in range(0, len(rows), CHUNK_ROWS):
            target[start:start + CHUNK_ROWS] = vectors[rows[start:start + CHUNK_ROWS]]
        target.flush()
        del target
    atomic.write_json(folder / FEATURES_META, meta)
    return meta


def describe(meta: dict) -> str:
    """``1376 dims from embeddings.npz``, for messages and ``ltv info``."""
    return f"{meta['dim']} dims from {meta.get('model') or meta.get('source', 'unknown')}"
