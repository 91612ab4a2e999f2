"""Image caches: a dataset's own ``images.npy``, or the one a *label layer* stands on.

A label layer is a dataset folder with its own labels (and metadata, manifest,
ground truth) but no pixels: ``ltv simulate`` and ``ltv ingest relabels``
write one instead of copying gigabytes of images. Its ``dataset.json`` names
the folder that holds the cache, relative to the layer, with the cache's
fingerprint::

    "image_cache": {"dataset": "../cifar10", "fingerprint": "5f0c..."}

The fingerprint (:func:`image_cache_fingerprint`) covers the image ids in row
order, the cache's shape and dtype, and a fixed sample of its rows, so it is
cheap to check every time a layer's pixels are opened. If the base folder is
gone, or its cache no longer has the layer's images row for row, opening the
pixels is a one-line error naming the base: never the wrong pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ltvcli.errors import LtvError

#: The dataset.json key of a label layer.
IMAGE_CACHE_KEY = "image_cache"
CACHE_FILE = "images.npy"
#: How many rows, spread evenly over the cache, the fingerprint reads.
SAMPLED_ROWS = 64


def image_cache_fingerprint(image_ids: Sequence[str], images: np.ndarray) -> str:
    """SHA-256 over the image ids (row order), the cache's shape and dtype, and an even sample of its rows."""
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}\n".encode())
    digest.update("\n".join(map(str, image_ids)).encode())
    rows = np.unique(np.linspace(0, len(images) - 1, min(SAMPLED_ROWS, len(images))).round().astype(np.int64))
    for row in rows:
        digest.update(np.ascontiguousarray(images[row]).tobytes())
    return digest.hexdigest()


def open_cache(folder: Path) -> np.ndarray:
    """``folder``/images.npy, memory-mapped (nothing is read until pixels are used)."""
    file = folder / CACHE_FILE
    if not file.is_file():
        raise LtvError(f"{file}: missing from the dataset folder")
    try:
        return np.load(file, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:  # truncated or foreign: a layer's base is not checked on open
        raise LtvError(f"{file}: not a readable image cache ({type(exc).__name__})") from None


def base_folder(layer: Path, reference: dict) -> Path:
    """The folder holding a layer's pixels, from its ``image_cache`` entry."""
    return (layer / reference["dataset"]).resolve()


def open_base_cache(layer: Path, reference: dict, image_ids: Sequence[str]) -> np.ndarray:
    """The image cache a layer stands on, after checking it is still the one the layer was made over."""
    base = base_folder(layer, reference)
    if not (base / CACHE_FILE).is_file():
        raise LtvError(f"{layer}: its images are in {base} ({reference['dataset']} in its dataset.json), which is "
                       "missing; put that dataset back there, or make this one again from where it is now")
    images = open_cache(base)
    if image_cache_fingerprint(image_ids, images) != reference["fingerprint"]:
        raise LtvError(f"{layer}: the image cache in {base} is not the one this dataset was made over (its "
                       "images, their order or their size changed); make this dataset again from it")
    return images
