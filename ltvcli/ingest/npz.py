"""Images and clean labels stored as numpy arrays in one ``.npz`` file -> a dataset with ground truth.

The layout is the one MedMNIST and many benchmark subsets use: per split
``<split>_images`` ([N, H, W] grey or [N, H, W, 1|3], uint8, square) and
``<split>_labels`` ([N] or [N, 1] class indices, or [N, C] 0/1 findings), for
the splits ``train``, ``val`` and ``test``; optionally ``<split>_index`` (the
images' ids in the original dataset) and ``class_names``. The labels become
the dataset's ground truth and no label sets are written: ``ltv simulate``
adds annotators, as in the paper's proof of concept.

``np.load`` is called with ``allow_pickle=False``, so opening a file never
runs code.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.console import log
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset, hold_out
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import DATASET, check_output

FILE_SPLITS = {"train": "train", "val": "validate", "test": "test"}  # key prefix in the file -> ltv split
TASKS = ("auto", "multiclass", "multilabel")


def ingest_npz(*, path: Path, out: Path, task: str = "auto", classes: list[str] | None = None,
               val_fraction: float | None = None, seed: int = 0, limit: int | None = None,
               no_images: bool = False, force: bool = False,
               features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest the arrays of ``path`` into the dataset folder ``out`` (``force``: replacing one that is there).

    ``val_fraction`` None keeps the file's own ``val`` split (or holds out 20 %
    of ``train`` when it has none); a number pools ``train`` and ``val`` and
    holds out that share of the pool, seeded, as ``validate`` -- the paper's
    "20 % of the noisy training data". ``limit`` keeps the first N images of
    each split; ``no_images`` keeps only the labels (a label-only dataset).
    """
    check_output(out, DATASET, inputs=[path], force=force)
    spec = npz_spec(path=path, task=task, classes=classes, val_fraction=val_fraction, seed=seed, limit=limit)
    pixels = spec.pixels
    return build_dataset(dataclasses.replace(spec, has_images=not no_images), out, size=pixels.shape[1],
                         channels=1 if pixels.ndim == 3 else pixels.shape[3], force=force,
                         features=features, feature_ids=feature_ids)


def npz_spec(*, path: Path, task: str = "auto", classes: list[str] | None = None,
             val_fraction: float | None = None, seed: int = 0, limit: int | None = None) -> DatasetSpec:
    """Read and check the arrays of ``path`` into a :class:`DatasetSpec` holding the pixels."""
    if task not in TASKS:
        raise OptionError("task", f"must be one of {', '.join(TASKS)}; got {task!r}")
    if val_fraction is not None and not 0 <= val_fraction < 1:
        raise OptionError("val_fraction", f"must be in [0, 1); got {val_fraction}")
    if limit is not None and limit < 1:
        raise OptionError("limit", f"must be at least 1; got {limit}")
    arrays = _load(Path(path))
    parts = {key: _split_arrays(path, arrays, key, limit) for key in FILE_SPLITS if f"{key}_images" in arrays}
    if "train" not in parts:
        raise LtvError(f"{path}: no train_images array; expected <split>_images and <split>_labels for "
                       f"split train (and optionally val, test)")
    _check_same_image_shape(path, parts)
    labels = np.concatenate([parts[key][1] for key in parts])
    task = _task(path, task, labels)
    names = _class_names(path, arrays, classes, task, labels)
    manifest = _manifest(parts, val_fraction, seed)
    counts = manifest["split"].value_counts()
    log(f"{path.name}: {counts.get('train', 0)} train, {counts.get('validate', 0)} validate, "
        f"{counts.get('test', 0)} test images, {task}, {len(names)} classes")
    if task == "multiclass":
        truth, label_shape = labels.reshape(-1).astype(np.int16), (len(manifest), 0)
    else:
        truth, label_shape = labels.astype(np.int8), (len(manifest), 0, len(names))
    return DatasetSpec(task=task, classes=names, manifest=manifest, label_sets=[],
                       labels=np.zeros(label_shape, dtype=truth.dtype), ground_truth=truth,
                       pixels=np.concatenate([parts[key][0] for key in parts]),
                       source={"name": "npz", "file": path.name, "val_fraction": val_fraction, "seed": seed,
                               "limit": limit})


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise LtvError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise LtvError(f"{path}: not a readable .npz of plain arrays ({exc})") from None


def _split_arrays(path: Path, arrays: dict[str, np.ndarray], key: str,
                  limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and ids of one split, checked and cut to ``limit``."""
    images = arrays[f"{key}_images"]
    if f"{key}_labels" not in arrays:
        raise LtvError(f"{path}: {key}_images has no {key}_labels array")
    labels = arrays[f"{key}_labels"]
    ids = arrays.get(f"{key}_index", np.arange(len(images)))
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[1] != images.shape[2] \
            or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise LtvError(f"{path}: {key}_images must be uint8 [N, S, S] or [N, S, S, 1|3]; got "
                       f"{images.dtype} {list(images.shape)}")
    if labels.ndim not in (1, 2) or len(labels) != len(images) or len(ids) != len(images):
        raise LtvError(f"{path}: {key}_labels ({list(labels.shape)}) and {key}_index must have one row per image "
                       f"of {key}_images ({len(images)})")
    if not np.issubdtype(labels.dtype, np.integer) and not np.issubdtype(labels.dtype, np.bool_):
        raise LtvError(f"{path}: {key}_labels must hold integers; got {labels.dtype}")
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    labels = labels.reshape(len(labels), -1) if labels.ndim == 2 else labels[:, None]
    return images[:limit], labels[:limit].astype(np.int64), np.asarray(ids)[:limit]


def _check_same_image_shape(path: Path, parts: dict) -> None:
    shapes = {key: part[0].shape[1:] for key, part in parts.items()}
    if len(set(shapes.values())) > 1:
        raise LtvError(f"{path}: the splits' images differ in shape: "
                       + ", ".join(f"{key} {list(shape)}" for key, shape in shapes.items()))


def _task(path: Path, task: str, labels: np.ndarray) -> str:
    """``auto``: one label column is multi-class, several 0/1 columns are multi-label."""
    if task == "auto":
        task = "multiclass" if labels.shape[1] == 1 else "multilabel"
    if labels.min() < 0:
        raise LtvError(f"{path}: labels must be non-negative; found {int(labels.min())}")
    if task == "multiclass" and labels.shape[1] != 1:
        raise LtvError(f"{path}: multi-class labels need one column per image; found {labels.shape[1]}")
    if task == "multilabel" and labels.max() > 1:
        raise LtvError(f"{path}: multi-label labels must be 0 or 1; found {int(labels.max())}")
    return task


def _class_names(path: Path, arrays: dict[str, np.ndarray], classes: list[str] | None, task: str,
                 labels: np.ndarray) -> list[str]:
    """``--classes``, else the file's ``class_names``, else ``class_0``, ``class_1``, ..."""
    count = int(labels.max()) + 1 if task == "multiclass" else labels.shape[1]
    names = classes if classes else [str(name) for name in arrays.get("class_names", [])]
    if not names:
        return [f"class_{i}" for i in range(max(count, 2) if task == "multiclass" else count)]
    if len(names) < count or (task == "multilabel" and len(names) != count):
        raise LtvError(f"{path}: {len(names)} class names for labels that need "
                       f"{'at least ' if task == 'multiclass' else ''}{count}")
    return names


def _manifest(parts: dict, val_fraction: float | None, seed: int) -> pd.DataFrame:
    """Image ids ``<file split>-<index>`` and each image's ltv split."""
    ids, splits = [], []
    for key, (_, _, index) in parts.items():
        ids += [f"{key}-{i}" for i in index]
        splits += [FILE_SPLITS[key]] * len(index)
    split = np.array(splits, dtype=object)
    if val_fraction is not None or "val" not in parts:
        pool = np.flatnonzero(split != "test")
        split[pool] = "train"
        split[pool[hold_out(len(pool), 0.2 if val_fraction is None else val_fraction, seed)]] = "validate"
    return pd.DataFrame({"image_id": ids, "split": split.tolist(), "source": ""})
