"""The dataset folder: the on-disk contract between ingest, train, export and evaluate.

A dataset folder holds, for N images, M label sets over C classes::

    dataset.json        format version, task, classes, label sets, image size; written last
    images.csv          the manifest: one row per image (ids, split, view, source path, report)
    labels.npy          label sets; multilabel int8 [N, M, C] in {1, 0, -1 = missing},
                        multiclass int16 [N, M] class id or -1 = missing
    images.npy          uint8 [N, S, S] (grayscale) or [N, S, S, 3] (RGB), memory-mapped;
                        absent in a label-only dataset (dataset.json ``has_images: false``), and in a
                        label layer, which names the dataset whose cache it uses (``image_cache``)
    ground_truth.npy    optional; int8 [N, C] or int16 [N], -1 = not labelled
    raw_labels.npy      optional; int8 [N, L, C], each labeller's raw codes (see RAW_*)
    reports.csv         optional; image_id, text for sources whose report text is inline
    skipped.csv         optional; images that could not be decoded, and why
    features.npy, features.json   optional; one float32 feature vector per image (see dataset/features.py),
                        beside the image cache or instead of it

``docs/dataset-format.md`` is the user-facing description; this module is the
single implementation of it. A folder without ``dataset.json`` (an interrupted
ingest) is never opened as a dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.dataset import features as feature_store
from ltvcli.dataset.cache import IMAGE_CACHE_KEY, base_folder, open_base_cache, open_cache
from ltvcli.errors import LtvError

#: The version written. Version 2 added label-only datasets (``has_images``); a version 1 folder
#: always has images and is read unchanged.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
TASKS = ("multilabel", "multiclass")
SPLITS = ("train", "validate", "test")

#: Value of a label-set entry with no label (blank with policy "ignore", or not labelled at all).
MISSING = -1
#: Raw labeller codes stored in raw_labels.npy: the MIMIC CSV convention, a code for blank (an NLP labeller
#: did not mention the finding; the blank policy decides) and one for "not labelled" (a reader who did not
#: read the image, a finding the file has no column for; always missing).
RAW_POSITIVE, RAW_NEGATIVE, RAW_UNCERTAIN, RAW_BLANK, RAW_MISSING = 1, 0, -1, -2, -3

MANIFEST_COLUMNS = ("image_id", "study_id", "subject_id", "split", "view", "source", "report")
META_FILE = "dataset.json"
#: dataset.json keys every reader relies on, and the JSON type each must have.
META_KEYS = {"task": str, "classes": list, "label_sets": list, "n_images": int}


@dataclass(frozen=True)
class LabelSet:
    """One label set: which labeller produced it and how its uncertain labels were mapped."""

    name: str
    labeller: str
    policy: str | None = None  # "u0", "u1", "ignore", or None where the labeller has no uncertain class

    def to_json(self) -> dict:
        return {"name": self.name, "labeller": self.labeller, "policy": self.policy}


class Dataset:
    """A read-only view of a complete dataset folder.

    Arrays are loaded lazily; ``images`` is memory-mapped, so opening a
    dataset of 300,000 images costs nothing until pixels are read.
    """

    def __init__(self, path: Path, meta: dict, manifest: pd.DataFrame):
        self.path = path
        self.meta = meta
        self.manifest = manifest
        self._cache: dict[str, np.ndarray | None] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path) -> "Dataset":
        """Open a dataset folder, checking that it is complete, of a known format version, and undamaged.

        Every array's header is checked against ``dataset.json`` here (shape,
        type, file length), so a truncated or foreign file is a one-line error
        before any command starts writing, not a crash half-way through one.
        """
        path = Path(path)
        meta_path = path / META_FILE
        partial = path.with_name(path.name + ".partial")
        hint = f" (an interrupted ingest left {partial}; re-run the ingest to finish it)" if partial.exists() else ""
        if not path.is_dir():
            raise LtvError(f"{path}: no such dataset folder{hint}")
        if not meta_path.is_file():
            raise LtvError(f"{path}: not a complete ltv dataset, {META_FILE} is missing{hint}")
        meta = _read_meta(meta_path)
        dataset = cls(path, meta, _read_manifest(path / "images.csv", meta["n_images"]))
        for name, (shape, kind) in dataset._array_layouts().items():
            if (path / f"{name}.npy").exists():
                _check_array_file(path / f"{name}.npy", shape, kind)
        return dataset

    def _array_layouts(self) -> dict[str, tuple[tuple, str]]:
        """Per array file: the shape it must have (None: any size on that axis) and its NumPy dtype kind."""
        n, m, c = len(self), len(self.meta["label_sets"]), len(self.classes)
        side = self.meta.get("image_size")
        multilabel = self.is_multilabel
        return {
            "labels": ((n, m, c) if multilabel else (n, m), "i"),
            "images": ((n, side, side) + ((3,) if self.meta.get("channels") == 3 else ()), "u"),
            "ground_truth": ((n, c) if multilabel else (n,), "i"),
            "raw_labels": ((n, len(self.labellers), c), "i"),
            "text_embeddings": ((n, None), "f"),
            "features": ((n, None), "f"),
        }

    # --------------------------------------------------------------- metadata
    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def is_multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def label_sets(self) -> list[LabelSet]:
        return [LabelSet(**item) for item in self.meta["label_sets"]]

    @property
    def label_set_names(self) -> list[str]:
        return [item["name"] for item in self.meta["label_sets"]]

    @property
    def labellers(self) -> list[str]:
        """Labellers with raw codes in raw_labels.npy (empty when the source had none)."""
        return list(self.meta.get("labellers", []))

    @property
    def has_images(self) -> bool:
        """False for a label-only dataset (ingested without images): labels and ground truth, no pixels."""
        return bool(self.meta.get("has_images", True))

    @property
    def image_size(self) -> int:
        self.require_images()
        return int(self.meta["image_size"])

    @property
    def channels(self) -> int:
        self.require_images()
        return int(self.meta["channels"])

    def require_images(self) -> None:
        """Raise, naming the dataset, if it has no image cache.

        Every pixel access (``images``, ``image_size``, ``channels``) goes
        through here, so any command that needs pixels refuses a label-only
        dataset with the same one-line reason before it writes anything.
        """
        if not self.has_images:
            if self.has_features:
                raise LtvError(f"{self.path}: a dataset of image features (ingested without images) has no image "
                               "cache, and this needs pixels; train on its features with `input` features")
            raise LtvError(f"{self.path}: a label-only dataset (ingested without images) has no image cache, "
                           "and this needs pixels; ingest the source again with its images")

    def __len__(self) -> int:
        return int(self.meta["n_images"])

    @property
    def image_ids(self) -> np.ndarray:
        return self.manifest["image_id"].to_numpy()

    # ----------------------------------------------------------------- arrays
    def _array(self, name: str, *, mmap: bool = False, optional: bool = False) -> np.ndarray | None:
        if name not in self._cache:
            file = self.path / f"{name}.npy"
            if not file.exists():
                if not optional:
                    raise LtvError(f"{file}: missing from the dataset folder")
                self._cache[name] = None
            else:
                self._cache[name] = np.load(file, mmap_mode="r" if mmap else None)
        return self._cache[name]

    @property
    def labels(self) -> np.ndarray:
        """Label sets: int8 [N, M, C] (multilabel) or int16 [N, M] (multiclass), -1 = missing."""
        return self._array("labels")

    @property
    def images(self) -> np.ndarray:
        """Memory-mapped uint8 images [N, S, S] or [N, S, S, 3]: this folder's cache, or the one it is a label
        layer over (checked to be the cache it was made over; see :mod:`ltvcli.dataset.cache`); a label-only
        dataset raises."""
        self.require_images()
        if "images" not in self._cache:
            reference = self.meta.get(IMAGE_CACHE_KEY)
            self._cache["images"] = open_cache(self.path) if reference is None else \
                open_base_cache(self.path, reference, self.image_ids)
        return self._cache["images"]

    @property
    def cache_folder(self) -> Path:
        """The folder whose images.npy holds this dataset's pixels: its own, or its base's (a label layer)."""
        self.require_images()
        reference = self.meta.get(IMAGE_CACHE_KEY)
        return self.path if reference is None else base_folder(self.path, reference)

    @property
    def has_features(self) -> bool:
        """Whether each image has a feature vector: this folder's features.npy, or a label layer's base's."""
        return self._features_folder() is not None

    @property
    def features(self) -> np.ndarray:
        """Memory-mapped float32 image features [N, D] (see :mod:`ltvcli.dataset.features`); raises without them."""
        if "features" not in self._cache:
            self._cache["features"] = feature_store.open_features(self._features_folder() or self.path, len(self))
        return self._cache["features"]

    @property
    def feature_meta(self) -> dict:
        """features.json: ``dim``, ``source``, ``model``, ...; raises (saying how to add features) without them."""
        return feature_store.read_feature_meta(self._features_folder() or self.path)

    def _features_folder(self) -> Path | None:
        """The folder holding this dataset's features: its own, else a label layer's base (same rows), else None."""
        if feature_store.has_features(self.path):
            return self.path
        reference = self.meta.get(IMAGE_CACHE_KEY)
        if reference is not None and feature_store.has_features(base_folder(self.path, reference)):
            return base_folder(self.path, reference)
        return None

    @property
    def ground_truth(self) -> np.ndarray | None:
        """Ground truth, int8 [N, C] or int16 [N] with -1 where not labelled; None if absent."""
        return self._array("ground_truth", optional=True)

    @property
    def raw_labels(self) -> np.ndarray | None:
        """Raw labeller codes int8 [N, L, C] (RAW_* values); None if the source had none."""
        return self._array("raw_labels", optional=True)

    @property
    def has_ground_truth(self) -> bool:
        gt = self.ground_truth
        return gt is not None and bool((gt != MISSING).any())

    # ---------------------------------------------------------------- helpers
    def indices(self, split: str) -> np.ndarray:
        """Row indices of one split (``train``, ``validate`` or ``test``)."""
        if split not in SPLITS:
            raise LtvError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.manifest["split"].to_numpy() == split)

    def label_set_index(self, name: str) -> int:
        """Position of a label set by name, with a clear error listing the names that exist."""
        names = self.label_set_names
        if name not in names:
            raise LtvError(f"{self.path}: no label set {name!r}; this dataset has {', '.join(names)}")
        return names.index(name)

    def class_index(self, name: str) -> int:
        """Position of a class by name (findings also by their short names)."""
        from ltvcli.findings import canonical, is_finding

        classes = self.classes
        if name in classes:
            return classes.index(name)
        if is_finding(name) and canonical(name) in classes:
            return classes.index(canonical(name))
        raise LtvError(f"{self.path}: no class {name!r}; this dataset has {', '.join(classes)}")

    def targets(self) -> tuple[np.ndarray, np.ndarray]:
        """Label sets as float targets and a validity mask, both [N, M, C].

        Multi-class label sets become one-hot vectors (the paper's treatment
        of CIFAR-10); a missing multi-class label masks the whole vector.
        """
        return as_targets(self.labels, self.is_multilabel, len(self.classes))

    def ground_truth_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth as float targets and mask, [N, C]; raises if the dataset has none."""
        if not self.has_ground_truth:
            raise LtvError(f"{self.path}: this dataset has no ground-truth labels")
        gt = self.ground_truth
        targets, mask = as_targets(gt[:, None], self.is_multilabel, len(self.classes))
        return targets[:, 0], mask[:, 0]

    def report_texts(self) -> list[str | None]:
        """Report text per image: inline text (reports.csv) or the report file named in the manifest."""
        inline: dict[str, str] = {}
        reports_csv = self.path / "reports.csv"
        if reports_csv.exists():
            frame = pd.read_csv(reports_csv, dtype=str, keep_default_na=False)
            inline = dict(zip(frame["image_id"], frame["text"]))
        files: dict[str, str | None] = {}  # one report per study: read each file once, not once per image
        texts: list[str | None] = []
        for image_id, report in zip(self.manifest["image_id"], self.manifest.get("report", [""] * len(self))):
            if image_id in inline:
                texts.append(inline[image_id])
            elif report:
                if report not in files:
                    files[report] = _read_report(Path(report))
                texts.append(files[report])
            else:
                texts.append(None)
        return texts


def _read_report(path: Path) -> str | None:
    """A report file's text; None when it is gone or unreadable (counted as a missing report by callers).

    Never an error message: the path of a MIMIC report holds the patient's subject id.
    """
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _damaged(file: Path, problem: str) -> LtvError:
    return LtvError(f"{file}: {problem}; the dataset folder is damaged or was edited: re-run the ingest")


def _read_meta(meta_path: Path) -> dict:
    """dataset.json, checked for the keys (and their types) every command reads."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LtvError(f"{meta_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise _damaged(meta_path, "not JSON text (not even UTF-8)") from None
    except OSError as exc:
        raise LtvError(f"{meta_path}: cannot read ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise _damaged(meta_path, f"a JSON {type(meta).__name__}, not the object of an ltv dataset")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise LtvError(f"{meta_path}: format_version {version!r} is not supported (expected one of "
                       f"{', '.join(map(str, READABLE_VERSIONS))})")
    for key, kind in META_KEYS.items():
        if not isinstance(meta.get(key), kind):
            raise _damaged(meta_path, f"key {key!r} is missing or not a JSON {kind.__name__}")
    if meta["task"] not in TASKS:
        raise _damaged(meta_path, f"task {meta['task']!r} is not one of {', '.join(TASKS)}")
    if not all(isinstance(item, dict) and {"name", "labeller"} <= item.keys() for item in meta["label_sets"]):
        raise _damaged(meta_path, "label_sets must be a list of {name, labeller, policy} objects")
    cache = meta.get(IMAGE_CACHE_KEY)
    if cache is not None and not (isinstance(cache, dict) and isinstance(cache.get("dataset"), str)
                                  and isinstance(cache.get("fingerprint"), str)):
        raise _damaged(meta_path, f"{IMAGE_CACHE_KEY} must be a {{dataset, fingerprint}} object of two strings")
    return meta


def _read_manifest(file: Path, n_images: int) -> pd.DataFrame:
    """images.csv as text, with the columns every reader relies on and one row per image."""
    try:
        manifest = pd.read_csv(file, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise _damaged(file, "missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise _damaged(file, f"not a readable CSV ({type(exc).__name__})") from None
    missing = [column for column in ("image_id", "split") if column not in manifest.columns]
    if missing:
        raise _damaged(file, f"no column {', '.join(map(repr, missing))}")
    if len(manifest) != n_images:
        raise _damaged(file, f"{len(manifest)} rows, {META_FILE} says {n_images}")
    return manifest


def _check_array_file(file: Path, shape: tuple, kind: str) -> None:
    """Check a .npy file's header against ``shape`` and ``kind`` and its length against the header (data unread)."""
    from numpy.lib import format as npy

    npy_kinds = {"i": "integers", "u": "unsigned bytes", "f": "floats"}
    try:
        with open(file, "rb") as handle:
            version = npy.read_magic(handle)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            found, _, dtype = read_header(handle)
            offset = handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise _damaged(file, f"not a NumPy array file ({type(exc).__name__})") from None
    if dtype.kind != kind:
        raise _damaged(file, f"holds {dtype} values, not {npy_kinds[kind]}")
    if len(found) != len(shape) or any(want is not None and got != want for got, want in zip(found, shape)):
        expected = "[" + ", ".join("D" if want is None else str(want) for want in shape) + "]"
        raise _damaged(file, f"shape {list(found)}, expected {expected} from {META_FILE}")
    if file.stat().st_size < offset + int(np.prod(found)) * dtype.itemsize:
        raise _damaged(file, "shorter than its header says (truncated)")


def as_targets(labels: np.ndarray, multilabel: bool, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn stored labels ([N, M, C] or [N, M] class ids) into float targets and a mask, [N, M, C]."""
    if multilabel:
        mask = labels != MISSING
        return np.where(mask, labels, 0).astype(np.float32), mask
    ids = labels.astype(np.int64)
    valid = ids != MISSING
    onehot = np.zeros(ids.shape + (n_classes,), dtype=np.float32)
    np.put_along_axis(onehot, np.where(valid, ids, 0)[..., None], 1.0, axis=-1)
    onehot[~valid] = 0.0
    mask = np.repeat(valid[..., None], n_classes, axis=-1)
    return onehot, mask
