"""Writing a dataset folder: resumable, atomic, independent of the number of workers.

Every ingest source ends in :func:`build_dataset`. The source has already
parsed its CSVs into a :class:`DatasetSpec` (manifest, label sets, ground
truth); this module fills the image cache and publishes the folder.

Interruption safety: all work happens in ``OUT.partial/``. Decoded images go
into a memory-mapped ``images.npy`` there, and a per-image status array is
saved (atomically) after every chunk. Re-running the same command finds the
partial folder, checks that it was planned from the same inputs (a
fingerprint of the manifest and image options), and decodes only what is not
done yet. ``dataset.json`` is written last and the folder is then renamed
onto ``OUT``, so a reader sees the old dataset or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from ltvcli import __version__, atomic
from ltvcli.console import log, track, warn
from ltvcli.dataset.features import (has_features, match_features, read_feature_meta, read_features_file,
                                     write_features)
from ltvcli.dataset.format import FORMAT_VERSION, MANIFEST_COLUMNS, SPLITS, TASKS, Dataset, LabelSet
from ltvcli.dataset.vectors import VectorTable
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import DATASET, check_output
from ltvcli.workers import worker_pool

PENDING, DONE, FAILED = 0, 1, 2
CHUNK = 256


@dataclass
class DatasetSpec:
    """Everything a source knows before any pixel is decoded.

    ``labels`` is [N, M, C] int8 (multilabel) or [N, M] int16 (multiclass) in
    the order of ``label_sets``; ``manifest`` has one row per image with at
    least ``image_id``, ``split`` and ``source`` (the image file to decode, or
    an empty string when ``pixels`` supplies the images). ``has_images=False``
    makes a label-only dataset: no image is decoded and the folder has no
    ``images.npy``. ``refused`` maps manifest rows whose source the ingest
    will not open (a path that leaves the image folder) to the reason: they
    are never read, and end in ``skipped.csv`` like an image that fails to
    decode.
    """

    task: str
    classes: list[str]
    manifest: pd.DataFrame
    label_sets: list[LabelSet]
    labels: np.ndarray
    ground_truth: np.ndarray | None = None
    labellers: list[str] = field(default_factory=list)
    raw_labels: np.ndarray | None = None
    reports: pd.DataFrame | None = None
    source: dict = field(default_factory=dict)
    pixels: np.ndarray | None = None  # in-memory images (CIFAR-10); decoded from files otherwise
    has_images: bool = True
    refused: dict[int, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Check shapes and values, so a bug in a source never produces a bad folder."""
        n = len(self.manifest)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        if n == 0:
            raise LtvError("no images left to ingest (check the view filter, splits and ids)")
        if self.labels.shape[:2] != (n, len(self.label_sets)):
            raise ValueError(f"labels shape {self.labels.shape} does not match {n} images x {len(self.label_sets)} sets")
        bad_splits = set(self.manifest["split"]) - set(SPLITS)
        if bad_splits:
            raise LtvError(f"unknown split value(s) {sorted(bad_splits)}; expected {', '.join(SPLITS)}")
        if self.manifest["image_id"].duplicated().any():
            dup = self.manifest["image_id"][self.manifest["image_id"].duplicated()].iloc[0]
            raise LtvError(f"image id {dup!r} appears more than once")


def hold_out(n: int, fraction: float, seed: int) -> np.ndarray:
    """Positions (of ``n``) to hold out as the validate split: a seeded random ``fraction`` of them.

    Sources without an official validation split share it, so the same seed
    holds out the same images whichever source wrote the folder.
    """
    return np.random.default_rng(seed).permutation(n)[:round(n * fraction)]


def draw_splits(units: list[str], test_fraction: float, val_fraction: float, seed: int) -> dict[str, str]:
    """A seeded split of ``units`` (patients, groups or images): ``test_fraction`` test, ``val_fraction``
    validate, the rest train. Units, not images, are drawn so that one patient's images share a split."""
    n = len(units)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    split_of = dict.fromkeys(units, "train")
    split_of.update({units[i]: "test" for i in order[:n_test]})
    split_of.update({units[i]: "validate" for i in order[n_test:n_test + n_val]})
    return split_of


def _full_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    frame = manifest.copy()
    for column in MANIFEST_COLUMNS:
        if column not in frame:
            frame[column] = ""
    ordered = list(MANIFEST_COLUMNS) + [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    return frame[ordered].astype(str).reset_index(drop=True)


def _fingerprint(manifest: pd.DataFrame, size: int, channels: int) -> str:
    """Identify a plan of images to decode; a partial folder is resumed only under the same plan."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT_VERSION}|{size}|{channels}|{len(manifest)}".encode())
    for image_id, source in zip(manifest["image_id"], manifest["source"]):
        digest.update(f"{image_id}\0{source}\n".encode())
    return digest.hexdigest()


def build_dataset(
    spec: DatasetSpec,
    out: str | Path,
    *,
    size: int,
    channels: int,
    decode: Callable[[str, int, int], np.ndarray] | None = None,
    workers: int = 0,
    strict: bool = False,
    decode_batch: Callable[[list[str], int, int], list[np.ndarray | None]] | None = None,
    force: bool = False,
    features: str | Path | VectorTable | None = None,
    feature_ids: str | Path | None = None,
) -> Dataset:
    """Decode the images of ``spec`` into a cache and publish the dataset folder at ``out``.

    ``decode(source, size, channels)`` turns one file into a uint8 array; it
    must be a module-level function (it runs in worker processes). With
    ``decode_batch(sources, size, channels)`` the images are decoded a chunk
    at a time in this process instead (a GPU decoder; ``workers`` is then not
    used), and the sources it returns ``None`` for go through ``decode``. With
    ``strict`` the first unreadable image stops the ingest; otherwise such
    images are left out, counted, and listed in ``skipped.csv``. A spec with
    ``has_images=False`` is published as a label-only dataset (``size``,
    ``channels`` and ``decode`` are not used). An existing dataset at ``out``
    is replaced only with ``force`` (and nothing else ever is:
    :func:`ltvcli.outputs.check_output`).

    ``features`` adds one feature vector per image from a file (with
    ``feature_ids`` for a ``.npy``; see :mod:`ltvcli.dataset.features`), or
    from vectors a source has read itself (a :class:`VectorTable` keyed by
    the manifest's image ids): they are matched to the images before any
    pixel is decoded, so a missing id stops the ingest at once, and the
    images left out as unreadable leave their vectors out too. With
    ``has_images=False`` it makes a dataset of features without pixels.
    """
    files = [] if isinstance(features, VectorTable) else [features, feature_ids]
    out = check_output(out, DATASET, inputs=files, force=force)
    spec.validate()
    staging = out.with_name(out.name + ".partial")
    manifest = _full_manifest(spec.manifest)
    vectors = _feature_rows(features, feature_ids, manifest["image_id"].tolist())
    if not spec.has_images:
        return _publish_label_only(spec, manifest, staging, out, force, vectors)
    if size < 8:
        raise OptionError("size", f"must be at least 8 pixels, got {size}")
    if strict and spec.refused:
        index = min(spec.refused)
        raise LtvError(f"{_image_name(manifest, index)}: {spec.refused[index]}; `strict` stops here")
    shape = (len(manifest), size, size) + ((3,) if channels == 3 else ())
    fingerprint = _fingerprint(manifest, size, channels)

    with atomic.writing(out):
        status = _open_staging(staging, fingerprint, len(manifest))
        failures: dict[int, str] = dict(spec.refused)
        status[list(spec.refused)] = FAILED
        images = open_memmap(staging / "images.npy", mode="r+" if (staging / "images.npy").exists() else "w+",
                             dtype=np.uint8, shape=shape)
        if spec.pixels is not None:
            images[:] = spec.pixels
            status[:] = DONE
        else:
            if decode is None:
                raise ValueError("decode is required when spec.pixels is None")
            failures |= _fill_images(manifest, images, status, staging, decode, decode_batch, size, channels,
                                     workers if decode_batch is None else 0, strict)
        images.flush()
        del images
    keep = status == DONE
    skipped = manifest.loc[~keep, ["image_id", "source"]].copy()
    skipped["reason"] = [failures.get(i, "not decoded") for i in np.flatnonzero(~keep)]
    if not keep.any():
        # nothing to publish: the list goes into the staging folder, which a re-run resumes from
        atomic.write_csv(staging / "skipped.csv", skipped)
        first = int(np.flatnonzero(~keep)[0])
        raise LtvError(f"none of the {len(skipped)} image(s) could be read, so no dataset was written (first: "
                       f"{_image_name(manifest, first)}: "
                       f"{_private(failures.get(first, 'not decoded'), manifest['source'].iloc[first])}); "
                       f"all are listed in {staging / 'skipped.csv'}")
    if len(skipped):
        warn(f"{len(skipped)} image(s) could not be read and were left out; see {out / 'skipped.csv'}")
    with atomic.writing(out):
        _write_arrays(spec, manifest, keep, staging, skipped, vectors)
        (staging / "status.npy").unlink()
        (staging / "plan.json").unlink()
    return _publish(spec, manifest[keep], staging, out, size, channels, force)


@dataclass
class _FeatureRows:
    """Features matched to the manifest: ``table.vectors[row_of[i]]`` is image i's vector."""

    table: VectorTable
    row_of: np.ndarray

    def write(self, staging: Path, keep: np.ndarray) -> None:
        write_features(staging, self.table.vectors, {"source": "file", "model": self.table.file.name},
                       self.row_of[keep])


def _feature_rows(features: str | Path | VectorTable | None, feature_ids: str | Path | None,
                  image_ids: list[str]) -> _FeatureRows | None:
    if features is None:
        return None
    if isinstance(features, VectorTable):
        return _FeatureRows(features, match_features(features, image_ids, "this ingest"))
    return _FeatureRows(*read_features_file(features, image_ids, ids=feature_ids, what="this ingest"))


def _publish(spec: DatasetSpec, kept: pd.DataFrame, staging: Path, out: Path, size: int | None,
             channels: int | None, force: bool) -> Dataset:
    """Write dataset.json last, check ``out`` once more, then move the staging folder onto it."""
    meta = _metadata(spec, kept, size, channels)
    atomic.write_json(staging / DATASET.marker, meta)
    check_output(out, DATASET, force=force)  # again: the folder may have appeared while the images were decoded
    atomic.replace_dir(staging, out, DATASET.marker)
    kind = ", label-only: no images" if not spec.has_images else ""
    if has_features(out):
        kind = f", {read_feature_meta(out)['dim']}-dim features" + (", no images" if not spec.has_images else "")
    log(f"wrote {out} ({meta['n_images']} images, {len(spec.label_sets)} label sets{kind})")
    return Dataset.open(out)


def _publish_label_only(spec: DatasetSpec, manifest: pd.DataFrame, staging: Path, out: Path,
                        force: bool, vectors: _FeatureRows | None = None) -> Dataset:
    """A dataset folder without images.npy: labels, ground truth, manifest and reports (and features) only.

    Nothing is decoded, so there is nothing to resume: a staging folder left
    by an earlier (image) ingest is discarded, once it is known to be ltv's.
    """
    with atomic.writing(out):
        _fresh_staging(staging)
        _write_arrays(spec, manifest, np.ones(len(manifest), dtype=bool), staging, manifest.iloc[:0], vectors)
        (staging / "plan.json").unlink()
    return _publish(spec, manifest, staging, out, None, None, force)


def _fresh_staging(staging: Path) -> None:
    """An empty staging folder for a write with nothing to resume (labels only, or a label layer).

    A staging folder an ltv ingest left is discarded; one ltv did not write is
    refused (:func:`_check_left_by_ltv`). The new one gets a plan.json with no
    fingerprint, so that, if this write is interrupted, the next one knows the
    folder as ltv's (and no image ingest resumes it); the writer removes it
    before publishing.
    """
    if staging.exists():
        _check_left_by_ltv(staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    atomic.write_json(staging / "plan.json", {"fingerprint": None, "ltv_version": __version__})


def _image_name(manifest: pd.DataFrame, index: int) -> str:
    """How messages name one image: its position and the dataset's own id, never its source path.

    A MIMIC source path holds the patient's subject id (``files/p10/p10000032/...``).
    """
    return f"image {index + 1} of {len(manifest)} (id {manifest['image_id'].iloc[index]!r})"


def _private(reason: str, source: str) -> str:
    """A decoder's message with the image's path cut to its file name (decoders often quote the path)."""
    return reason.replace(source, Path(source).name) if source else reason


def _open_staging(staging: Path, fingerprint: str, n: int) -> np.ndarray:
    """Return the per-image status array of the staging folder, resuming when the plan matches."""
    plan_file = staging / "plan.json"
    if staging.exists():
        _check_left_by_ltv(staging)
        try:
            same_plan = json.loads(plan_file.read_text())["fingerprint"] == fingerprint
            status = np.load(staging / "status.npy")
            same_plan = same_plan and status.shape == (n,)
        except (OSError, ValueError, KeyError, TypeError):
            same_plan = False
        if same_plan:
            done = int((status == DONE).sum())
            log(f"resuming the interrupted ingest in {staging}: {done} of {n} images already decoded")
            status[status == FAILED] = PENDING  # retry: the user may have fixed the file
            return status
        log(f"discarding {staging}: it was started with other inputs")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    atomic.write_json(plan_file, {"fingerprint": fingerprint, "ltv_version": __version__})
    status = np.zeros(n, dtype=np.int8)
    atomic.write_npy(staging / "status.npy", status)
    return status


def _check_left_by_ltv(staging: Path) -> None:
    """Refuse an existing staging folder that an ltv ingest did not leave (no plan.json): it is never deleted."""
    if not (staging / "plan.json").is_file() and any(staging.iterdir()):
        raise LtvError(f"{staging}: exists and was not left by an ltv ingest (no plan.json); move it away, "
                       "ltv writes its unfinished dataset there")


def _decode_one(job: tuple[int, str, Callable, int, int]) -> tuple[int, np.ndarray | None, str | None]:
    index, source, decode, size, channels = job
    try:
        return index, decode(source, size, channels), None
    except LtvError as exc:
        return index, None, str(exc)
    except Exception as exc:  # any decoder failure is a property of that file, reported per image
        return index, None, f"{type(exc).__name__}: {exc}"


def _decode_batches(decode_batch: Callable, jobs: Iterator[tuple]) -> Iterator[tuple]:
    """Decode ``CHUNK`` jobs at a time with ``decode_batch``; those it leaves (``None``) go through ``_decode_one``."""
    for chunk in _chunks(jobs, CHUNK):
        _, _, _, size, channels = chunk[0]
        decoded = decode_batch([job[1] for job in chunk], size, channels)
        for job, pixels in zip(chunk, decoded):
            yield (job[0], pixels, None) if pixels is not None else _decode_one(job)


def _fill_images(manifest: pd.DataFrame, images: np.ndarray, status: np.ndarray, staging: Path, decode: Callable,
                 decode_batch: Callable | None, size: int, channels: int, workers: int,
                 strict: bool) -> dict[int, str]:
    """Decode every pending image into ``images``; save progress after each chunk."""
    sources = manifest["source"].tolist()
    pending = np.flatnonzero(status == PENDING)
    failures: dict[int, str] = {}
    jobs = ((int(i), sources[i], decode, size, channels) for i in pending)
    with track(len(pending), "decoding images") as advance, _mapper(workers) as mapper:
        results = mapper(_decode_one, jobs) if decode_batch is None else _decode_batches(decode_batch, jobs)
        for chunk in _chunks(results, CHUNK):
            for index, pixels, error in chunk:
                if error is None:
                    images[index] = pixels
                    status[index] = DONE
                else:
                    status[index] = FAILED
                    failures[index] = error
                    if strict:
                        _save_status(images, status, staging)
                        raise LtvError(f"{_image_name(manifest, index)}: cannot read the image "
                                       f"({_private(error, sources[index])}); `strict` stops here")
            _save_status(images, status, staging)
            advance(len(chunk))
    return failures


def _save_status(images: np.ndarray, status: np.ndarray, staging: Path) -> None:
    images.flush()  # pixels reach the disk before the status that claims them
    atomic.write_npy(staging / "status.npy", status)


class _mapper:
    """``map`` in this process (workers=0) or an ordered map over a process pool whose workers die with us."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def __enter__(self):
        if self.workers <= 0:
            return map
        self.pool = worker_pool(self.workers)
        return lambda fn, jobs: self.pool.map(fn, jobs, chunksize=8)

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _chunks(iterable, n: int) -> Iterator[list]:
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_arrays(spec: DatasetSpec, manifest: pd.DataFrame, keep: np.ndarray, staging: Path,
                  skipped: pd.DataFrame, vectors: _FeatureRows | None = None) -> None:
    """Write labels, ground truth, manifest (and features) for the kept images; compact the image cache if needed."""
    if not keep.all():
        _compact_images(staging / "images.npy", keep)
    if vectors is not None:
        vectors.write(staging, keep)
    atomic.write_npy(staging / "labels.npy", spec.labels[keep])
    if spec.ground_truth is not None:
        atomic.write_npy(staging / "ground_truth.npy", spec.ground_truth[keep])
    if spec.raw_labels is not None:
        atomic.write_npy(staging / "raw_labels.npy", spec.raw_labels[keep])
    atomic.write_csv(staging / "images.csv", manifest[keep])
    if spec.reports is not None:
        kept_ids = set(manifest.loc[keep, "image_id"])
        atomic.write_csv(staging / "reports.csv", spec.reports[spec.reports["image_id"].isin(kept_ids)])
    if len(skipped):
        atomic.write_csv(staging / "skipped.csv", skipped)


def _compact_images(path: Path, keep: np.ndarray) -> None:
    source = np.load(path, mmap_mode="r")
    with atomic.atomic_path(path) as tmp:
        target = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(int(keep.sum()),) + source.shape[1:])
        rows = np.flatnonzero(keep)
        for start in range(0, len(rows), CHUNK):
            part = rows[start:start + CHUNK]
            target[start:start + len(part)] = source[part]
        target.flush()
        del target
    del source


def _metadata(spec: DatasetSpec, manifest: pd.DataFrame, size: int | None, channels: int | None) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "ltv_version": __version__,
        "task": spec.task,
        "classes": list(spec.classes),
        "label_sets": [ls.to_json() for ls in spec.label_sets],
        "labellers": list(spec.labellers),
        "n_images": int(len(manifest)),
        "splits": {split: int((manifest["split"] == split).sum()) for split in SPLITS},
        "has_images": spec.has_images,
        "image_size": int(size) if spec.has_images else None,
        "channels": int(channels) if spec.has_images else None,
        "has_ground_truth": spec.ground_truth is not None,
        "has_reports": spec.reports is not None or bool((manifest["report"] != "").any()),
        "source": spec.source,
    }
