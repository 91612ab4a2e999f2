"""Counts a user checks before training (``ltv info``).

The layout follows the paper's Table 1: per labeller and finding the
positives, the uncertains and their ratio, plus per label set and split the
positive / negative / missing counts and how often the label sets disagree.
"""

from __future__ import annotations

import numpy as np

from ltvcli.dataset.format import (MISSING, RAW_BLANK, RAW_MISSING, RAW_NEGATIVE, RAW_POSITIVE, RAW_UNCERTAIN, SPLITS,
                                   Dataset)


def summarize(dataset: Dataset) -> dict:
    """All counts of ``ltv info --json`` as one JSON-ready dict."""
    manifest = dataset.manifest
    targets, mask = dataset.targets()
    summary = {
        "path": str(dataset.path),
        "task": dataset.task,
        "n_images": len(dataset),
        "has_images": dataset.has_images,
        "image_size": dataset.meta.get("image_size"),  # None in a label-only dataset
        "channels": dataset.meta.get("channels"),
        "features": _features(dataset),
        "classes": dataset.classes,
        "label_sets": dataset.label_set_names,
        "has_ground_truth": dataset.has_ground_truth,
        "splits": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
        "views": {str(view): int(count) for view, count in manifest["view"].value_counts().sort_index().items()},
        "label_counts": {},
        "disagreement": {},
    }
    for split in SPLITS:
        rows = dataset.indices(split)
        if len(rows) == 0:
            continue
        summary["label_counts"][split] = _label_counts(dataset, targets[rows], mask[rows])
        summary["disagreement"][split] = _disagreement(dataset, targets[rows], mask[rows])
    if dataset.raw_labels is not None:
        summary["labellers"] = _raw_counts(dataset)
    if dataset.has_ground_truth:
        gt = dataset.ground_truth
        labelled = gt != MISSING if dataset.is_multilabel else np.repeat((gt != MISSING)[:, None], len(dataset.classes), 1)
        summary["ground_truth"] = {
            s: int(labelled[dataset.indices(s)].any(axis=1).sum()) for s in SPLITS
        }
        summary["ground_truth_counts"] = _ground_truth_counts(dataset)
    return summary


def _features(dataset: Dataset) -> dict | None:
    """What features.json says (dim, source, model), or None for a dataset without image features."""
    if not dataset.has_features:
        return None
    meta = dataset.feature_meta
    return {key: meta.get(key) for key in ("dim", "source", "model")}


def _ground_truth_counts(dataset: Dataset) -> dict:
    """Per split with ground truth, and per class: positive / negative / missing trusted labels.

    The positives are what an evaluation can rest on: a finding with a handful
    of positives in the test split gives a wide AUC interval whatever the model.
    """
    targets, mask = dataset.ground_truth_targets()
    counts = {}
    for split in SPLITS:
        rows = dataset.indices(split)
        if not mask[rows].any():
            continue
        per_class = {}
        for c, cls in enumerate(dataset.classes):
            valid = mask[rows, c]
            positive = int((targets[rows, c][valid] == 1).sum())
            per_class[cls] = {"positive": positive, "negative": int(valid.sum()) - positive,
                              "missing": int((~valid).sum())}
        counts[split] = per_class
    return counts


def _label_counts(dataset: Dataset, targets: np.ndarray, mask: np.ndarray) -> dict:
    counts = {}
    for m, name in enumerate(dataset.label_set_names):
        per_class = {}
        for c, cls in enumerate(dataset.classes):
            valid = mask[:, m, c]
            positive = int((targets[valid, m, c] == 1).sum())
            per_class[cls] = {"positive": positive, "negative": int(valid.sum()) - positive,
                              "missing": int((~valid).sum())}
        counts[name] = per_class
    return counts


def _disagreement(dataset: Dataset, targets: np.ndarray, mask: np.ndarray) -> dict:
    """Per class, the share of images whose labelled label sets do not all agree."""
    out = {}
    for c, cls in enumerate(dataset.classes):
        values = np.where(mask[:, :, c], targets[:, :, c], np.nan)
        labelled = mask[:, :, c].sum(axis=1) >= 2
        if not labelled.any():
            out[cls] = None
            continue
        spread = np.nanmax(values[labelled], axis=1) != np.nanmin(values[labelled], axis=1)
        out[cls] = round(float(spread.mean()), 4)
    return out


def _raw_counts(dataset: Dataset) -> dict:
    """Per labeller, split and finding: raw positive, negative, uncertain, blank and not-labelled counts."""
    raw = dataset.raw_labels
    result = {}
    for j, labeller in enumerate(dataset.labellers):
        per_split = {}
        for split in SPLITS:
            rows = dataset.indices(split)
            if len(rows) == 0:
                continue
            per_class = {}
            for c, cls in enumerate(dataset.classes):
                codes = raw[rows, j, c]
                pos, unc = int((codes == RAW_POSITIVE).sum()), int((codes == RAW_UNCERTAIN).sum())
                per_class[cls] = {
                    "positive": pos,
                    "negative": int((codes == RAW_NEGATIVE).sum()),
                    "uncertain": unc,
                    "blank": int((codes == RAW_BLANK).sum()),
                    "not_labelled": int((codes == RAW_MISSING).sum()),
                    "u_p_ratio": round(unc / pos, 3) if pos else None,
                }
            per_split[split] = per_class
        result[labeller] = per_split
    return result
