"""0/1 labels against the ground truth: accuracy, sensitivity and specificity per finding, with bootstrap intervals.

A label set (a radiologist, an NLP labeller) or a fused label (majority vote,
Dawid-Skene, a run's binarised vote) says yes or no; its ROC AUC is only the
mean of its sensitivity and specificity, so these are what describe it:

* accuracy = (TP + TN) / n, sensitivity = TP / (TP + FN), specificity = TN / (TN + FP),
  over the images the column labels among those with ground truth for the finding
  (a sparse reader is scored on the images it read); the counts go with them.
* 95 % intervals: the percentile bootstrap on the *same* stratified resamples as
  the AUCs of that finding (:func:`ltvcli.metrics.stratified_resamples`, keyed by
  seed and finding), so every resample keeps the ground truth's positives and
  negatives; a column's share is taken over the images it labels in each resample.

Only columns with decisions are scored (:attr:`~ltvcli.evaluate.tables.Column.decisions`),
and only findings the ground truth labels at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltvcli import metrics
from ltvcli.dataset.format import MISSING
from ltvcli.evaluate.tables import EvalData

#: The three rates, in the order of the replicate columns.
RATES = ("accuracy", "sensitivity", "specificity")
#: Columns of the table (binary.csv): counts, then each rate with its interval.
BINARY_COLUMNS = ["model", "kind", "finding", "n", "tp", "fn", "tn", "fp",
                  *[f"{rate}{end}" for rate in RATES for end in ("", "_lo", "_hi")], "note"]
NO_LABELS = "no labels on the images with ground truth"


def score_binary(data: EvalData, n_boot: int, seed: int, level: float) -> pd.DataFrame | None:
    """One row per column with decisions and finding the ground truth labels; None if no column decides."""
    columns = [c for c in data.columns if c.decisions is not None]
    if not columns or data.task != "multilabel":
        return None
    rows = []
    for j, cls in enumerate(data.classes):
        labelled = np.flatnonzero(data.truth[:, j] != MISSING)
        if not len(labelled):
            continue
        y = data.truth[labelled, j].astype(np.int64)
        decisions = {c.name: c.decisions[labelled, j] for c in columns}
        replicates = _replicates(y, decisions, n_boot, metrics.resample_rng(seed, cls))
        for column in columns:
            rows.append([column.name, column.kind, cls,
                         *_row(y, decisions[column.name], replicates[column.name], level)])
    return pd.DataFrame(rows, columns=BINARY_COLUMNS)


def _replicates(y: np.ndarray, decisions: dict[str, np.ndarray], n_boot: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per column, [n_boot, 3] resampled accuracy, sensitivity and specificity (NaN where a resample has none)."""
    subsets = {}
    for name, said in decisions.items():
        valid = ~np.isnan(said)
        subsets[name] = (said == y, (valid, valid & (y == 1), valid & (y == 0)))
    replicates = {name: np.full((n_boot, len(RATES)), np.nan) for name in decisions}
    start = 0
    for counts in metrics.stratified_resamples(y, n_boot, rng):
        for name, (hits, masks) in subsets.items():
            for k, mask in enumerate(masks):
                if mask.any():
                    replicates[name][start:start + len(counts), k] = metrics.resampled_share(counts, hits, mask)
        start += len(counts)
    return replicates


def _row(y: np.ndarray, said: np.ndarray, replicates: np.ndarray, level: float) -> list:
    """n, TP, FN, TN, FP, each rate with its interval, and a note when a rate is not computable."""
    valid = ~np.isnan(said)
    n = int(valid.sum())
    counts = metrics.confusion(y[valid], said[valid].astype(np.int64), 2) if n else np.zeros((2, 2), dtype=np.int64)
    tn, fp, fn, tp = counts.ravel().tolist()
    values = [_rate(tp + tn, n), _rate(tp, tp + fn), _rate(tn, tn + fp)]
    cells = [x for k, value in enumerate(values)
             for x in (value, *metrics.percentile_interval(replicates[:, k], level))]
    note = ""
    if n == 0:
        note = f"not computable: {NO_LABELS}"
    elif tp + fn == 0 or tn + fp == 0:
        note = f"{'sensitivity' if tp + fn == 0 else 'specificity'} not computable: no " \
               f"{'positives' if tp + fn == 0 else 'negatives'} among the images labelled here"
    return [n, tp, fn, tn, fp, *cells, note]


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")
