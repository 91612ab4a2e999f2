"""The expert's answers come back: ``ltv ingest relabels DATASET QUEUE_DONE.csv [--out NEW]``.

The answered queue (any CSV with ``image_id``, ``finding`` and ``expert``
columns; other columns are ignored) is written into the dataset: into a new
folder with ``out`` (the source left as it was), otherwise into DATASET
itself, replaced atomically (a reader sees the old folder or the new one).
No pixel is copied: the new folder is a label layer over the source's image
cache (:mod:`ltvcli.dataset.cache`), or, in place, keeps the cache file itself
(a hard link).
Each answer is *trusted*, in two ways:

* every label set of the new dataset carries the expert's answer for that
  entry, so whatever ``ltv train`` fuses (LTV's vote, majority, Dawid-Skene,
  one label set) trains on the answer: all voters agree;
* a label set named ``expert`` holds the answers and nothing else (missing
  elsewhere). It records what was re-read, lets ``ltv refine`` keep those
  entries out of later queues and never drop them, and allows
  ``ltv train --method single --label-set expert`` on the answers alone.

Answers are labels, not ground truth: ``ground_truth.npy`` (the evaluation
reference) is copied unchanged, so an evaluation never grades the expert by
the expert. Importing again into a dataset that already has an ``expert`` set
adds to it (a later answer for the same entry replaces the earlier one).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.atomic import atomic_path, replace_dir
from ltvcli.console import log
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet
from ltvcli.dataset.format import MISSING
from ltvcli.dataset.layers import build_layer
from ltvcli.errors import LtvError
from ltvcli.fusion.registry import EXPERT_SET
from ltvcli.outputs import DATASET, check_output
from ltvcli.refine.queue import ANSWER_COLUMN

REQUIRED_COLUMNS = ("image_id", "finding", ANSWER_COLUMN)
_POSITIVE = {"1", "1.0", "yes", "y", "true", "positive", "present"}
_NEGATIVE = {"0", "0.0", "no", "n", "false", "negative", "absent"}
#: Optional dataset files that belong to the images rather than the labels, carried into the new folder.
_CARRIED_FILES = ("text_embeddings.npy", "text_embeddings.json", "features.npy", "features.json")


@dataclass
class Answers:
    """The expert's answers: dataset ``rows``, entry ``groups`` (finding, or 0) and ``values`` (0/1 or class id)."""

    rows: np.ndarray
    groups: np.ndarray
    values: np.ndarray
    skipped: int

    def __len__(self) -> int:
        return len(self.rows)


def read_answers(path: str | Path, dataset: Dataset) -> Answers:
    """Read and check an answered queue; every problem names the file, the line and what was expected."""
    path = Path(path)
    frame = csvio.read_table(path, what="answered queue")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LtvError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)} "
                       "(the queue written by `ltv refine`, with the expert column filled in)")
    ids = {image_id: row for row, image_id in enumerate(dataset.image_ids)}
    seen: dict[tuple[int, int], tuple[int, int]] = {}
    skipped = 0
    for i, (image_id, finding, answer) in enumerate(zip(frame["image_id"], frame["finding"], frame[ANSWER_COLUMN])):
        line = i + 2  # line 1 is the header
        if answer.strip() == "":
            skipped += 1
            continue
        if image_id not in ids:
            raise LtvError(f"{path}: line {line}: image_id {image_id!r} is not an image of {dataset.path}")
        cls = _class(dataset, finding, f"{path}: line {line}: finding")
        key, value = _entry(dataset, ids[image_id], cls, answer.strip(), f"{path}: line {line}")
        if key in seen and seen[key][0] != value:
            raise LtvError(f"{path}: lines {seen[key][1]} and {line} give different answers for {image_id!r}"
                           + (f" / {finding!r}" if dataset.is_multilabel else ""))
        seen[key] = (value, line)
    if not seen:
        raise LtvError(f"{path}: the {ANSWER_COLUMN!r} column is blank in every row; there is nothing to import")
    keys = sorted(seen)
    return Answers(rows=np.array([k[0] for k in keys]), groups=np.array([k[1] for k in keys]),
                   values=np.array([seen[k][0] for k in keys]), skipped=skipped)


def _class(dataset: Dataset, name: str, where: str) -> int:
    try:
        return dataset.class_index(name.strip())
    except LtvError:
        raise LtvError(f"{where} {name!r} is not a class of this dataset; expected one of "
                       f"{', '.join(dataset.classes)}") from None


def _entry(dataset: Dataset, row: int, cls: int, answer: str, where: str) -> tuple[tuple[int, int], int]:
    """((row, group), value) of one answer."""
    if dataset.is_multilabel:
        word = answer.lower()
        if word not in _POSITIVE | _NEGATIVE:
            raise LtvError(f"{where}: expert answer {answer!r} is not 1 or 0 (yes/no, positive/negative also "
                           "work; leave it blank to skip)")
        return (row, cls), int(word in _POSITIVE)
    if answer not in dataset.classes and answer.isdigit() and int(answer) < len(dataset.classes):
        return (row, 0), int(answer)  # a class id
    return (row, 0), _class(dataset, answer, f"{where}: expert answer")


def apply_answers(labels: np.ndarray, label_set_names: list[str], answers: Answers, *, multilabel: bool,
                  ) -> tuple[np.ndarray, list[str]]:
    """Label sets with the answers written into every set, plus the ``expert`` set (added if new).

    ``labels`` is [N, M, C] (multi-label) or [N, M] (multi-class); nothing
    but the answered entries changes, in any set.
    """
    names = list(label_set_names)
    out = labels.copy()
    if EXPERT_SET not in names:
        names.append(EXPERT_SET)
        out = np.concatenate([out, np.full(out[:, :1].shape, MISSING, dtype=out.dtype)], axis=1)
    if multilabel:
        out[answers.rows[:, None], np.arange(len(names))[None, :], answers.groups[:, None]] = answers.values[:, None]
    else:
        out[answers.rows, :] = answers.values[:, None]
    return out, names


def import_relabels(dataset: str | Path, queue: str | Path, out: str | Path | None = None, *,
                    force: bool = False) -> Dataset:
    """``dataset`` with the answers of ``queue`` as trusted labels, written to ``out`` (default: in place).

    ``force`` replaces an existing dataset at ``out``.
    """
    source = Dataset.open(dataset)
    in_place = out is None or Path(out).resolve() == source.path.resolve()
    if in_place:  # the queue must not be deleted with the old folder
        check_output(source.path, DATASET, inputs=[queue], reuse=True, parameter="dataset")
    else:
        check_output(out, DATASET, inputs=[source.path, queue], force=force)
    # in place: build next to the dataset, then swap the folders in one rename
    target = source.path.with_name(f".{source.path.name}.relabels") if in_place else Path(out)
    answers = read_answers(queue, source)
    labels, names = apply_answers(source.labels, source.label_set_names, answers, multilabel=source.is_multilabel)
    label_sets = source.label_sets + ([LabelSet(name=EXPERT_SET, labeller=EXPERT_SET)]
                                      if EXPERT_SET not in source.label_set_names else [])
    reports = source.path / "reports.csv"
    spec = DatasetSpec(
        task=source.task, classes=source.classes, manifest=source.manifest, label_sets=label_sets, labels=labels,
        ground_truth=source.ground_truth, labellers=source.labellers, raw_labels=source.raw_labels,
        reports=pd.read_csv(reports, dtype=str, keep_default_na=False) if reports.exists() else None,
        source={"name": "relabels", "from": str(source.path.resolve()), "queue": str(Path(queue).resolve()),
                "answers": len(answers), "previous": source.meta.get("source")},
    )
    result = build_layer(spec, target, over=source, own_images=in_place and source.cache_folder == source.path,
                         force=force or in_place)
    for name in _CARRIED_FILES:
        if (source.path / name).exists():
            with atomic_path(result.path / name) as tmp:
                shutil.copyfile(source.path / name, tmp)
    if in_place:
        replace_dir(result.path, source.path, DATASET.marker)
        result = Dataset.open(source.path)
    log(f"imported {len(answers)} expert answer(s) into {result.path} ({answers.skipped} blank row(s) skipped); "
        f"every label set carries them and label set {EXPERT_SET!r} records them")
    return result
