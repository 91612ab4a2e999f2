"""Report embeddings in the dataset folder: ``text_embeddings.npy`` and ``text_embeddings.json``.

They are an optional part of the dataset format (``docs/dataset-format.md``):
row *i* of the float32 ``[N, D]`` array belongs to image *i* of
``images.csv``; a row of NaN marks an image without a report (or without an
embedding in an imported file). Both files are written atomically and are
the only files touched, so adding or replacing embeddings never disturbs a
finished dataset. This module is the single reader and writer of the pair;
``embed_reports`` and ``import_embeddings`` produce the vectors, training
calls :func:`load_text_embeddings`.
"""

from __future__ import annotations

import json

import numpy as np

from ltvcli import __version__, atomic
from ltvcli.dataset import SPLITS, Dataset
from ltvcli.errors import LtvError

ARRAY_FILE = "text_embeddings.npy"
META_FILE = "text_embeddings.json"
HOW_TO_MAKE = "run `ltv embed-reports DATASET --model PATH` (or `--embeddings FILE`)"


def save_text_embeddings(dataset: Dataset, vectors: np.ndarray, *, source: str, model: str,
                         pooling: str | None, max_length: int | None) -> dict:
    """Store ``vectors`` ([N, D], NaN rows = no embedding) with their metadata; return the metadata.

    Each file is written atomically, the array first; :func:`load_text_embeddings`
    checks the array's shape against the metadata and the dataset, which
    catches a pair left mismatched by an interruption between the two writes
    whenever the dimension changed.
    """
    if vectors.ndim != 2 or len(vectors) != len(dataset):
        raise ValueError(f"expected [{len(dataset)}, D] embeddings, got shape {vectors.shape}")
    vectors = vectors.astype(np.float32, copy=False)
    meta = {
        "source": source,
        "model": model,
        "dim": int(vectors.shape[1]),
        "pooling": pooling,
        "max_length": max_length,
        "missing": int(np.isnan(vectors).any(axis=1).sum()),
        "ltv_version": __version__,
    }
    atomic.write_npy(dataset.path / ARRAY_FILE, vectors)
    atomic.write_json(dataset.path / META_FILE, meta)
    return meta


def read_text_embedding_meta(dataset: Dataset) -> dict:
    """The metadata of a dataset's report embeddings; a clear error when it has none."""
    meta_path = dataset.path / META_FILE
    if not meta_path.is_file() or not (dataset.path / ARRAY_FILE).is_file():
        raise LtvError(f"{dataset.path}: this dataset has no report embeddings ({ARRAY_FILE}); {HOW_TO_MAKE}")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LtvError(f"{meta_path}: not valid JSON ({exc.msg} at line {exc.lineno}); {HOW_TO_MAKE}") from None


def load_text_embeddings(dataset: Dataset, require_all: bool = True) -> np.ndarray:
    """The report embedding of every image, float32 [N, D], row i = image i of images.csv.

    With ``require_all`` (what image+text training needs) any image without
    an embedding is an error that says how many are missing in which split;
    otherwise those rows are NaN and the caller decides.
    """
    meta = read_text_embedding_meta(dataset)
    vectors = np.load(dataset.path / ARRAY_FILE)
    if vectors.shape != (len(dataset), meta.get("dim")):
        raise LtvError(f"{dataset.path / ARRAY_FILE}: shape {vectors.shape} does not match {len(dataset)} images x "
                       f"{meta.get('dim')} dims of {META_FILE} (an interrupted write?); {HOW_TO_MAKE}")
    if require_all:
        _require_all(dataset, np.isnan(vectors).any(axis=1))
    return vectors


def _require_all(dataset: Dataset, missing: np.ndarray) -> None:
    """Raise, counting per split, if any image has no embedding."""
    if not missing.any():
        return
    parts = []
    for split in SPLITS:
        rows = dataset.indices(split)
        count = int(missing[rows].sum())
        if count:
            parts.append(f"{count} of {len(rows)} images of split {split}")
    raise LtvError(f"{dataset.path}: {'; '.join(parts)} have no report embedding; run `ltv embed-reports` "
                   "with a report (or an imported embedding) for every image, or train without text")
