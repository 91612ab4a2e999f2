"""CIFAR-10 (python version) -> a multi-class dataset with the clean labels as ground truth.

The batches are pickled dicts with bytes keys: ``b"data"`` (rows of 3072
bytes: 1024 red, 1024 green, 1024 blue, each a row-major 32x32 plane) and
``b"labels"``; ``batches.meta`` holds ``b"label_names"``. CIFAR-10 has no
noisy label sets of its own (M = 0): annotators are simulated later, the
paper's CIFAR-10 experiment. The pixels are stored as they are (32x32 RGB),
no decoding.

Pickle can run code while loading, so the batches are read with an
unpickler that only accepts the numpy array types these files contain.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.console import log
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset, hold_out
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import DATASET, check_output

TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
SIDE = 32
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode")}  # how Python 3 writes bytes at pickle protocol 2


def ingest_cifar10(*, root: Path, out: Path, val_fraction: float = 0.2, seed: int = 0,
                   limit: int | None = None, no_images: bool = False, force: bool = False,
                   features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest the CIFAR-10 python batches in ``root`` into ``out``.

    Train batches 1-5 -> ``train`` with ``val_fraction`` held out (seeded) as
    ``validate``; ``test_batch`` -> ``test``. ``limit`` keeps the first N
    images of each batch (quick runs). Image ids: ``train-<position>``
    (position in the concatenated train batches) and ``test-<position>``.
    ``no_images`` keeps only the labels (a label-only dataset). ``force``
    replaces an existing dataset at ``out``.
    """
    check_output(out, DATASET, inputs=[root], force=force)
    spec = cifar10_spec(root=root, val_fraction=val_fraction, seed=seed, limit=limit)
    return build_dataset(dataclasses.replace(spec, has_images=not no_images), out, size=SIDE, channels=3,
                         force=force, features=features, feature_ids=feature_ids)


def cifar10_spec(*, root: Path, val_fraction: float = 0.2, seed: int = 0, limit: int | None = None) -> DatasetSpec:
    """Read the batches into a :class:`DatasetSpec` holding the pixels."""
    root = _batch_folder(Path(root))
    if not 0 <= val_fraction < 1:
        raise OptionError("val_fraction", f"must be in [0, 1); got {val_fraction}")
    if limit is not None and limit < 1:
        raise OptionError("limit", f"must be at least 1; got {limit}")
    classes = [name.decode() if isinstance(name, bytes) else str(name)
               for name in _load(root / META).get(b"label_names", [])]
    if len(classes) != 10:
        raise LtvError(f"{root / META}: expected 10 label_names, found {len(classes)}")
    train_pixels, train_labels = _read_batches(root, TRAIN_BATCHES, limit)
    test_pixels, test_labels = _read_batches(root, (TEST_BATCH,), limit)
    split = np.full(len(train_labels), "train", dtype=object)
    held_out = hold_out(len(train_labels), val_fraction, seed)
    split[held_out] = "validate"
    manifest = pd.DataFrame({
        "image_id": [f"train-{i}" for i in range(len(train_labels))] + [f"test-{i}" for i in range(len(test_labels))],
        "split": split.tolist() + ["test"] * len(test_labels), "source": "",
    })
    labels = np.concatenate([train_labels, test_labels]).astype(np.int16)
    log(f"CIFAR-10: {len(train_labels)} train ({len(held_out)} held out as validate), {len(test_labels)} test")
    return DatasetSpec(task="multiclass", classes=classes, manifest=manifest, label_sets=[],
                       labels=np.zeros((len(labels), 0), dtype=np.int16), ground_truth=labels,
                       pixels=np.concatenate([train_pixels, test_pixels]),
                       source={"name": "cifar10", "root": str(root), "val_fraction": val_fraction, "seed": seed,
                               "limit": limit})


def _batch_folder(root: Path) -> Path:
    """``root`` itself, or its ``cifar-10-batches-py`` folder (the archive's layout)."""
    if not (root / META).is_file() and (root / "cifar-10-batches-py" / META).is_file():
        return root / "cifar-10-batches-py"
    if not root.is_dir():
        raise LtvError(f"{root}: no such folder")
    return root


def _read_batches(root: Path, names: tuple[str, ...], limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [N, 32, 32, 3] uint8 and labels [N] of the batches, in order."""
    pixels, labels = [], []
    for name in names:
        path = root / name
        batch = _load(path)
        if b"data" not in batch or b"labels" not in batch:
            raise LtvError(f"{path}: not a CIFAR-10 batch (no b'data' / b'labels' entries)")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        target = np.asarray(batch[b"labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(target) != len(data):
            raise LtvError(f"{path}: expected data of shape [N, 3072] and N labels; got {data.shape} and "
                           f"{len(target)} labels")
        if len(target) and (target.min() < 0 or target.max() > 9):
            raise LtvError(f"{path}: labels must be 0-9; found {int(target.min())}..{int(target.max())}")
        data, target = data[:limit], target[:limit]
        pixels.append(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))
        labels.append(target)
    return np.concatenate(pixels), np.concatenate(labels)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays; refuses any other global (no code runs)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load(path: Path) -> dict:
    if not path.is_file():
        raise LtvError(f"{path}: missing; expected the CIFAR-10 python batches ({', '.join(TRAIN_BATCHES)}, "
                       f"{TEST_BATCH}, {META})")
    try:
        with open(path, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise LtvError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(batch, dict):
        raise LtvError(f"{path}: not a CIFAR-10 python batch (a {type(batch).__name__}, expected a dict)")
    return batch
