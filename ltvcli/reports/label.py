"""``ltv label-reports``: label every image's report and add the labeller's label sets to a new dataset.

Reports are labelled once per distinct text (a study's images share one), in
chunks of :data:`CHUNK` texts; each finished chunk is saved in
``NEW.reports.partial/``, so an interrupted run, re-run with the same
arguments, labels only the chunks still missing and writes the same
dataset. The new dataset is the old one plus the label sets
``<labeller>_u0`` and ``<labeller>_u1`` and the labeller's raw codes in
``raw_labels.npy``, written as a label layer over the old one's image
cache (no pixel is copied); images without a report get no labels from it
(raw code RAW_MISSING, MISSING in the label sets). A label-only dataset (no
images) gives a label-only dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli import atomic
from ltvcli.console import log, track
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset
from ltvcli.dataset.format import RAW_MISSING
from ltvcli.dataset.labelsets import label_sets_from_raw
from ltvcli.dataset.layers import build_layer
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import DATASET, check_output
from ltvcli.reports.engine import ReportLabeller, versions
from ltvcli.reports.rules import Rules, check_classes, finding_name, load_rules
from ltvcli.workers import worker_pool

CHUNK = 1000  # distinct report texts per saved chunk
POLICIES = ("u0", "u1")
STAGING_SUFFIX = ".reports.partial"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def label_reports(dataset: str | Path, out: str | Path, *, labeller: str = "medspacy",
                  rules: list[Path] | None = None, replace_rules: bool = False, workers: int | None = None,
                  batch_size: int = 256, force: bool = False) -> Dataset:
    """Label the reports of ``dataset``'s images and write ``out`` with the new label sets (see the module notes).

    ``rules`` are extra rule tables (added to ltv's, or instead of them with
    ``replace_rules``); ``workers`` processes label the chunks (default: the
    CPU count, at most 8; 0 = this process). ``force`` replaces an existing
    dataset at ``out``.
    """
    out = check_output(out, DATASET, inputs=[dataset, *(rules or [])], force=force)
    source = Dataset.open(dataset)
    if source.has_images:  # the new dataset is a layer over the folder holding the pixels
        check_output(out, DATASET, inputs=[source.cache_folder], force=force)
    check_labeller(labeller, source)
    if workers is not None and workers < 0:
        raise OptionError("workers", f"must be 0 (this process) or more, got {workers}")
    if batch_size < 1:
        raise OptionError("batch_size", f"must be at least 1, got {batch_size}")
    table = load_rules(rules, replace=replace_rules)
    classes = [finding_name(c) for c in source.classes]
    check_classes(table, classes)
    stack = versions()  # medspaCy is there (a one-line error with the install command if not)
    texts = source.report_texts()
    has_report = np.array([bool(t and t.strip()) for t in texts])
    if not has_report.any():
        raise LtvError(f"{source.path}: no image has a report (reports.csv or the manifest's 'report' column)")
    distinct = list(dict.fromkeys(t for t, ok in zip(texts, has_report) if ok))
    log(f"{int(has_report.sum())} of {len(texts)} images have a report; {len(distinct)} distinct report texts")
    codes = _label_distinct(distinct, table, classes, out, workers, batch_size)
    position = {text: i for i, text in enumerate(distinct)}
    raw = np.full((len(texts), len(classes)), RAW_MISSING, dtype=np.int8)  # no report: not labelled
    rows = np.flatnonzero(has_report)
    raw[rows] = codes[[position[texts[i]] for i in rows]]
    provenance = {"labeller": labeller, "from": str(source.path), "rules": table.sources,
                  "rules_sha256": table.digest, **stack}
    result = write_labelled(source, out, labeller=labeller, raw=raw, provenance=provenance, force=force)
    shutil.rmtree(_staging(out), ignore_errors=True)
    _summary(labeller, raw, has_report, classes)
    return result


def check_labeller(labeller: str, source: Dataset) -> None:
    """The labeller's name must be new to the dataset and usable in label-set names."""
    if not _NAME.match(labeller):
        raise OptionError("labeller", f"must be a name of letters, digits and '-', starting with a letter; got "
                                      f"{labeller!r}")
    taken = {ls.name for ls in source.label_sets}
    if labeller in source.labellers or any(f"{labeller}_{p}" in taken for p in POLICIES):
        raise OptionError("labeller", f"{labeller!r} already labelled {source.path}; choose another name")
    if source.task != "multilabel":
        raise LtvError(f"{source.path}: reports are labelled per finding; this dataset is {source.task}")


def write_labelled(source: Dataset, out: Path, *, labeller: str, raw: np.ndarray, provenance: dict,
                   force: bool = False) -> Dataset:
    """Write ``out``: ``source`` plus the labeller's raw codes [N, C] and its u0 / u1 label sets.

    The one place label-reports writes a dataset: labels only, as a label
    layer over ``source``'s image cache (:func:`build_layer`; no pixel is
    copied), or a label-only dataset when ``source`` has no images. Rows
    without a report are RAW_MISSING, so their label-set values are MISSING
    whatever the policy. ``force`` replaces an existing dataset at ``out``.
    """
    sets, values = label_sets_from_raw([labeller], raw[:, None, :], list(POLICIES), blank="0")
    old_raw = source.raw_labels
    if old_raw is None:
        old_raw = np.zeros((len(source), 0, len(source.classes)), dtype=np.int8)
    reports_csv = source.path / "reports.csv"
    reports = pd.read_csv(reports_csv, dtype=str, keep_default_na=False) if reports_csv.exists() else None
    spec = DatasetSpec(
        task=source.task, classes=source.classes, manifest=source.manifest,
        label_sets=source.label_sets + sets,
        labels=np.concatenate([source.labels.astype(np.int8), values.astype(np.int8)], axis=1),
        ground_truth=source.ground_truth if source.has_ground_truth else None,
        labellers=source.labellers + [labeller],
        raw_labels=np.concatenate([old_raw.astype(np.int8), raw[:, None, :].astype(np.int8)], axis=1),
        reports=reports, has_images=source.has_images,
        source={**source.meta.get("source", {}),
                "label_reports": source.meta.get("source", {}).get("label_reports", []) + [provenance]},
    )
    if source.has_images:
        return build_layer(spec, out, over=source, force=force)
    return build_dataset(spec, out, size=0, channels=0, force=force)


# ----------------------------------------------------------------------------- labelling, resumable

def _staging(out: Path) -> Path:
    return out.with_name(out.name + STAGING_SUFFIX)


def _fingerprint(texts: list[str], rules: Rules, classes: list[str]) -> str:
    digest = hashlib.sha256(f"{rules.digest}|{CHUNK}|{'|'.join(classes)}|{len(texts)}\n".encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8", "replace")).digest())
    return digest.hexdigest()


def _label_distinct(texts: list[str], rules: Rules, classes: list[str], out: Path, workers: int | None,
                    batch_size: int) -> np.ndarray:
    """Raw codes [len(texts), C], reusing the chunks an interrupted run already saved."""
    staging = _staging(out)
    plan = {"fingerprint": _fingerprint(texts, rules, classes), "n_texts": len(texts), "chunk": CHUNK}
    plan_file = staging / "plan.json"
    if staging.exists() and (not plan_file.exists() or json.loads(plan_file.read_text()) != plan):
        shutil.rmtree(staging)  # another run's partial work (other reports, rules or classes): start over
    staging.mkdir(parents=True, exist_ok=True)
    atomic.write_json(plan_file, plan)
    chunks = [(i, texts[start:start + CHUNK]) for i, start in enumerate(range(0, len(texts), CHUNK))]
    todo = [(i, part) for i, part in chunks if not (staging / f"chunk_{i:05d}.npy").exists()]
    if len(todo) < len(chunks):
        log(f"resuming: {len(chunks) - len(todo)} of {len(chunks)} chunks of reports already labelled")
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    workers = min(workers, len(todo))
    with track(sum(len(part) for _, part in todo), "labelling reports") as advance:
        if not todo:
            pass
        elif workers <= 1:
            labeller = ReportLabeller(rules, classes)
            for i, part in todo:
                atomic.write_npy(staging / f"chunk_{i:05d}.npy", labeller.label(part, batch_size=batch_size))
                advance(len(part))
        else:
            with worker_pool(workers, _init_worker, (rules, classes, batch_size)) as pool:
                for i, codes in pool.map(_label_chunk, todo):
                    atomic.write_npy(staging / f"chunk_{i:05d}.npy", codes)
                    advance(len(codes))
    parts = [np.load(staging / f"chunk_{i:05d}.npy") for i, _ in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, len(classes)), dtype=np.int8)


_WORKER: dict = {}


def _init_worker(rules: Rules, classes: list[str], batch_size: int) -> None:
    _WORKER["labeller"] = ReportLabeller(rules, classes)
    _WORKER["batch_size"] = batch_size


def _label_chunk(job: tuple[int, list[str]]) -> tuple[int, np.ndarray]:
    i, texts = job
    return i, _WORKER["labeller"].label(texts, batch_size=_WORKER["batch_size"])


def _summary(labeller: str, raw: np.ndarray, has_report: np.ndarray, classes: list[str]) -> None:
    labelled = raw[has_report]
    for j, name in enumerate(classes):
        positive, uncertain = int((labelled[:, j] == 1).sum()), int((labelled[:, j] == -1).sum())
        log(f"{labeller} {name}: {positive} positive, {uncertain} uncertain of {len(labelled)} images", level=2)
