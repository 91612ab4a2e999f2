"""What identifies a dataset's labels and metadata: a run must be resumed and refined on the data it saw.

The fingerprint covers the files that say what each image is labelled
(``dataset.json``, the manifest, the label sets, the ground truth), not the
image cache: hashing gigabytes of pixels on every resume would cost minutes.
A training run and a refine run folder record it, and refuse a dataset whose
fingerprint differs.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ltvcli.dataset.format import Dataset

#: The files whose bytes identify a dataset. dataset.json alone is the same for any two datasets of equal
#: shape, so the manifest and the labels join it; the image cache (gigabytes) does not.
FINGERPRINT_FILES = ("dataset.json", "images.csv", "labels.npy", "ground_truth.npy")


def dataset_fingerprint(dataset: Dataset) -> str:
    """SHA-256 over the dataset's metadata, manifest and labels: a resumed run must see the same data."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        file = dataset.path / name
        if file.is_file():
            digest.update(name.encode() + b"\0")
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()
