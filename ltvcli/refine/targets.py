"""What the refinement phase trains on and judges: one label per *entry*.

An entry is what one label decides. In a multi-label dataset it is an
(image, finding) pair: each finding is its own binary question, and a
report can be right about one finding and wrong about another, so each is
kept, dropped, scored and re-read on its own. In a multi-class dataset it is
the image (its single class). Arrays over entries are ``[N, G]`` with G = C
(multi-label) or G = 1 (multi-class).

The training label of an entry comes from the dataset's label sets through
the same aggregators ``ltv train`` uses (default: the majority vote), or
from one named label set. Entries the expert has answered (the ``expert``
label set written by ``ltv ingest relabels``) are *trusted*: their label is
the expert's, and the selection never drops them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ltvcli.console import warn
from ltvcli.dataset import Dataset
from ltvcli.dataset.format import as_targets
from ltvcli.errors import LtvError
from ltvcli.fusion.aggregators import make_aggregator
from ltvcli.fusion.base import hard_labels
from ltvcli.fusion.registry import EXPERT_SET

#: Forget rate used where the label sets cannot estimate one (a single label set).
DEFAULT_FORGET_RATE = 0.2
#: Upper bound of an estimated forget rate: co-teaching must keep most of the data to learn from.
MAX_FORGET_RATE = 0.5


@dataclass
class Targets:
    """Training labels of every image: ``values`` [N, C] (soft or hard), ``valid``/``trusted`` [N, G]."""

    values: np.ndarray
    valid: np.ndarray
    trusted: np.ndarray
    multilabel: bool

    def hard(self) -> np.ndarray:
        """0/1 labels [N, C]: thresholded at 0.5 (multi-label) or one-hot of the arg max (multi-class)."""
        return hard_labels(torch.from_numpy(self.values), self.multilabel).numpy()


def group_count(n_classes: int, multilabel: bool) -> int:
    """G, the number of entries per image."""
    return n_classes if multilabel else 1


def as_entries(per_class: np.ndarray, multilabel: bool) -> np.ndarray:
    """A per-class boolean array [N, C] as a per-entry one [N, G] (multi-class: any class)."""
    return per_class if multilabel else per_class.any(axis=1, keepdims=True)


def entry_labels(values: np.ndarray, multilabel: bool) -> np.ndarray:
    """Hard labels per entry [N, G] (int64): 0/1 per finding, or the class id of the image."""
    hard = hard_labels(torch.from_numpy(values), multilabel).numpy()
    return hard.astype(np.int64) if multilabel else hard.argmax(axis=1)[:, None]


def fuse(labels: np.ndarray, label_set_names: list[str], *, multilabel: bool, n_classes: int, source: str,
         seed: int, fit_rows: np.ndarray) -> Targets:
    """Training labels from stored label sets ``labels`` ([N, M, C] int8 or [N, M] int16).

    ``source`` is a label-set name or an aggregator; Dawid-Skene is fitted on
    ``fit_rows`` (the training split). Where the ``expert`` set has an answer,
    that answer is the label and the entry is trusted.
    """
    aggregator = make_aggregator(source, label_set_names, multilabel=multilabel, seed=seed, parameter="labels")
    targets, mask = as_targets(labels, multilabel, n_classes)
    values, valid = aggregator.fit(targets[fit_rows], mask[fit_rows]).predict_proba(targets, mask)
    valid = valid.numpy().astype(bool)
    values = np.where(valid, values.numpy(), 0.0).astype(np.float32)  # 0 where nothing labels the entry
    trusted = np.zeros_like(valid)
    if EXPERT_SET in label_set_names:
        j = label_set_names.index(EXPERT_SET)
        trusted = mask[:, j]
        values = np.where(trusted, targets[:, j], values)
        valid = valid | trusted
    return Targets(values=values, valid=as_entries(valid, multilabel), trusted=as_entries(trusted, multilabel),
                   multilabel=multilabel)


def training_targets(dataset: Dataset, source: str, seed: int = 0) -> Targets:
    """:func:`fuse` on a dataset's label sets (its training split fits Dawid-Skene)."""
    if not dataset.label_set_names:
        raise LtvError(f"{dataset.path}: the dataset has no label sets; there is nothing to refine")
    return fuse(dataset.labels, dataset.label_set_names, multilabel=dataset.is_multilabel,
                n_classes=len(dataset.classes), source=source, seed=seed, fit_rows=dataset.indices("train"))


def estimate_forget_rate(labels: np.ndarray, label_set_names: list[str], hard: np.ndarray, *, multilabel: bool,
                         n_classes: int) -> np.ndarray:
    """Per-entry-group forget rate [G]: how often a label set disagrees with the training label.

    Co-teaching should forget about as many entries as are wrong. The
    average disagreement of one label set with the fused label estimates
    that without ground truth (for three sets at 30 % symmetric noise it
    gives 0.21; the majority vote's true error is 0.22). It needs two or
    more label sets besides ``expert``; with one, :data:`DEFAULT_FORGET_RATE`
    is used. Clipped to [0, :data:`MAX_FORGET_RATE`].
    """
    keep = [j for j, name in enumerate(label_set_names) if name != EXPERT_SET]
    groups = group_count(n_classes, multilabel)
    if len(keep) < 2:
        warn(f"one label set cannot estimate the noise rate; forgetting {DEFAULT_FORGET_RATE:.0%} "
             "(give your own estimate as the forget rate)")
        return np.full(groups, DEFAULT_FORGET_RATE)
    targets, mask = as_targets(labels[:, keep], multilabel, n_classes)
    if multilabel:
        disagree = (targets != hard[:, None, :]) & mask
        counts = mask.sum(axis=(0, 1))
        rate = disagree.sum(axis=(0, 1)) / np.maximum(counts, 1)
    else:
        labelled = mask.any(axis=-1)
        disagree = (targets.argmax(-1) != hard.argmax(-1)[:, None]) & labelled
        rate = np.array([disagree.sum() / max(labelled.sum(), 1)])
    return np.clip(rate, 0.0, MAX_FORGET_RATE)
