"""Image features made elsewhere, added to a finished dataset (``ltv add-features DATASET FILE``).

A chest X-ray foundation model's published embeddings, or vectors computed on
another machine, come as a file keyed by image id (:mod:`ltvcli.dataset.vectors`
reads the layouts). Every image of the dataset needs a finite vector; vectors
of images the dataset does not have (views it left out) are ignored and
counted. The vectors become the dataset's ``features.npy`` and
``features.json`` (:mod:`ltvcli.dataset.features`), written atomically; no
other file of the folder changes, so runs trained on its images stay valid.
"""

from __future__ import annotations

from pathlib import Path

from ltvcli.console import log
from ltvcli.dataset import Dataset
from ltvcli.dataset.features import describe, has_features, read_feature_meta, read_features_file, write_features
from ltvcli.errors import LtvError
from ltvcli.outputs import DATASET, check_output


def add_features(dataset: Dataset | str | Path, file: str | Path, *, ids: str | Path | None = None,
                 force: bool = False) -> dict:
    """Store the vectors of ``file`` as ``dataset``'s image features; return features.json's contents.

    ``ids`` lists the rows' image ids for a ``.npy`` file (a CSV with an
    ``image_id`` column, the dataset's own ``images.csv`` for rows in its
    order, or a ``.txt`` file with one id per line). Features the dataset
    already has are replaced only with ``force``.
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    # Only features.npy and features.json are written, each atomically: an input inside the folder (its
    # images.csv as the ids of a .npy, even its old features.npy) is read before anything is replaced.
    check_output(ds.path, DATASET, reuse=True, parameter="dataset")
    check_replace(ds, force)
    table, row_of = read_features_file(file, ds.image_ids, ids=ids, file_parameter="file", ids_parameter="ids",
                                       what=str(ds.path))
    meta = write_features(ds.path, table.vectors, {"source": "file", "model": Path(file).name}, row_of)
    log(f"{ds.path}: image features of {len(ds)} images, {describe(meta)}")
    return meta


def check_replace(dataset: Dataset, force: bool) -> None:
    """Features a dataset already holds are replaced only with ``force`` (a run may have been trained on them)."""
    if has_features(dataset.path) and not force:
        raise LtvError(f"{dataset.path}: already has image features ({describe(read_feature_meta(dataset.path))}); "
                       "add `force` to replace them")
