"""The one metrics module: ROC AUC, accuracy, stratified bootstrap intervals, DeLong's test.

``ltv evaluate`` reports these statistics, and training scores its validation
split with :func:`validation_score`, built on the same :func:`auc_score` and
:func:`accuracy`, so a run's ``val_auc`` and an evaluation's AUC are one number.

Point estimates are scikit-learn's (``roc_auc_score``, ``accuracy_score``,
``recall_score``, ``confusion_matrix``). What is ours is the resampling: a
1,000-resample bootstrap over 14 findings and several models needs about
100,000 AUCs, so a resample is represented by how many times it draws each
image (a row of *counts*), and :func:`weighted_auc` computes the AUCs of a
whole block of resamples in one vectorised pass over the sorted scores. Its
value on a resample equals ``roc_auc_score`` on the resampled arrays (tested).

Every function here takes arrays and returns numbers: no files, no names of
datasets, so a notebook user can call them on anything.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from scipy.stats import binomtest, norm, rankdata
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score, roc_auc_score

#: Upper bound on the number of cells (resamples x images) of one block of resample counts.
BLOCK_CELLS = 2_000_000


# ----------------------------------------------------------------------------- point estimates
def auc_score(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for binary ``y`` (sklearn's value; ties count one half)."""
    return float(roc_auc_score(y, scores))


def accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of correct class predictions (sklearn ``accuracy_score``, the paper's CIFAR-10 metric)."""
    return float(accuracy_score(y, predicted))


def class_recalls(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class 0..n_classes-1 (0 where a class has no images; callers report those as such)."""
    return recall_score(y, predicted, labels=np.arange(n_classes), average=None, zero_division=0)


def confusion(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix [true class, predicted class] over all classes, also those absent from ``y``."""
    return confusion_matrix(y, predicted, labels=np.arange(n_classes))


def validation_score(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, multilabel: bool) -> float:
    """Macro ROC AUC over the classes with both outcomes (multi-label) or accuracy (multi-class); NaN if none.

    ``probs``, ``targets`` and ``mask`` are [n, C] (one-hot targets for
    multi-class); only the entries in ``mask`` count. This is how training
    chooses its best checkpoint.
    """
    if not np.isfinite(probs).all():
        return float("nan")
    if multilabel:
        columns = [(mask[:, c], c) for c in range(targets.shape[1])]
        aucs = [auc_score(targets[m, c], probs[m, c]) for m, c in columns if _two_outcomes(targets[m, c])]
        return float(np.mean(aucs)) if aucs else float("nan")
    labelled = mask.any(axis=1)
    if not labelled.any():
        return float("nan")
    return accuracy(targets[labelled].argmax(1), probs[labelled].argmax(1))


def scorable(targets: np.ndarray, mask: np.ndarray, multilabel: bool) -> bool:
    """Whether :func:`validation_score` can score anything: a class with both outcomes, or any labelled image."""
    if multilabel:
        return any(_two_outcomes(targets[mask[:, c], c]) for c in range(targets.shape[1]))
    return bool(mask.any())


def _two_outcomes(column: np.ndarray) -> bool:
    return len(np.unique(column)) == 2


# ----------------------------------------------------------------------------- resampling
def resample_rng(seed: int, key: str) -> np.random.Generator:
    """The generator for one finding's resamples.

    Seeded by the user's seed *and* the finding's name, so a finding's interval
    is the same whichever other findings, models or label sets are evaluated
    alongside it, and two runs with the same ``--seed`` agree exactly.
    """
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def stratified_resamples(y: np.ndarray, n_boot: int, rng: np.random.Generator,
                         block_cells: int = BLOCK_CELLS) -> Iterator[np.ndarray]:
    """Yield the stratified bootstrap as blocks of counts [resamples, len(y)].

    Resample by resample, for each class of ``y`` in ascending order, the
    class's members are drawn with replacement as many times as there are of
    them (``rng.integers(0, n_c, n_c)``): every resample keeps the number of
    positives and negatives, so no resample loses a class and every AUC is
    defined. Entry ``[r, i]`` is how often resample ``r`` drew image ``i``.
    Blocks bound the memory on large test sets.
    """
    strata = [np.flatnonzero(y == cls) for cls in np.unique(y)]
    per_block = max(1, block_cells // max(len(y), 1))
    for start in range(0, n_boot, per_block):
        counts = np.zeros((min(per_block, n_boot - start), len(y)), dtype=np.int32)
        for row in counts:
            for members in strata:
                draws = rng.integers(0, len(members), len(members))
                row[members] += np.bincount(draws, minlength=len(members)).astype(np.int32)
        yield counts


def weighted_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of ``weights`` [R, n] (how often each image counts), ties counting one half.

    The Mann-Whitney statistic with weights: scores are sorted once and
    grouped into tied levels; per resample, each level's positive weight is
    multiplied by the negative weight strictly below it plus half the
    negative weight tied with it. NaN where a row leaves a class empty.
    """
    weights = np.atleast_2d(weights)
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    positive = y[order].astype(bool)
    w = weights[:, order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    numerator = (pos * (below + 0.5 * neg)).sum(axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    return np.divide(numerator, denominator, out=np.full(len(w), np.nan), where=denominator > 0)


def resampled_share(counts: np.ndarray, hits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per resample (a row of ``counts``), the share of the drawn images in ``mask`` that are ``hits``: a resampled
    accuracy, recall, sensitivity or specificity. NaN where a resample draws no image of ``mask``."""
    drawn = counts[:, mask]
    with np.errstate(invalid="ignore", divide="ignore"):
        return drawn @ hits[mask] / drawn.sum(axis=1)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of ``values`` (NaN resamples ignored; NaNs if none is left)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- DeLong
def delong_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's structural components by the fast midrank algorithm (Sun & Xu 2014).

    ``scores`` is [k, n] (k score vectors on the same images). Returns the k
    AUCs, ``v10`` [k, positives] (for each positive, the share of negatives it
    outranks, ties one half) and ``v01`` [k, negatives] (for each negative, the
    share of positives that outrank it). Midranks make this O(n log n)
    instead of the O(positives x negatives) pairwise definition.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    positive = np.asarray(y) == 1
    m, n = int(positive.sum()), int((~positive).sum())
    pos, neg = scores[:, positive], scores[:, ~positive]
    rank_all = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (rank_all[:, :m] - rankdata(pos, axis=1)) / n
    v01 = 1.0 - (rank_all[:, m:] - rankdata(neg, axis=1)) / m
    return v10.mean(axis=1), v10, v01


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs [k] and DeLong's covariance matrix [k, k] of k correlated AUCs on the same images."""
    aucs, v10, v01 = delong_components(y, scores)
    cov = np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]
    return aucs, cov


@dataclass(frozen=True)
class PairedPart:
    """One finding of a paired comparison: its images (positions in a shared index), truth and both scores."""

    images: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class DeLongResult:
    """Mean AUC difference (a - b) over the parts, its DeLong standard error and two-sided p-value."""

    difference: float
    se: float
    p_value: float


def delong_test(parts: Sequence[PairedPart]) -> DeLongResult:
    """DeLong's paired test of AUC(a) - AUC(b), on one finding or on the mean over several.

    For one part this is exactly DeLong's test: the variance of the
    difference is var(d10)/m + var(d01)/n, with d the differences of the two
    models' structural components. For the mean over findings, each image's
    centred components from every finding it is labelled for are summed into
    one influence value, so findings evaluated on the same images contribute
    their covariance too (treating them as independent would understate the
    variance of the mean when findings move together). With one part the two
    formulas coincide.
    """
    n_images = 1 + max(int(part.images.max()) for part in parts)
    influence = np.zeros(n_images)
    differences = []
    for part in parts:
        aucs, v10, v01 = delong_components(part.y, np.vstack([part.a, part.b]))
        differences.append(aucs[0] - aucs[1])
        positive = part.y == 1
        for members, d in ((part.images[positive], v10[0] - v10[1]), (part.images[~positive], v01[0] - v01[1])):
            if len(d) < 2:  # a class of one image has no sample variance, so there is no standard error
                influence[members] = np.nan
                continue
            influence[members] += (d - d.mean()) / np.sqrt(len(d) * (len(d) - 1)) / len(parts)
    difference = float(np.mean(differences))
    se = float(np.sqrt(np.sum(influence ** 2)))
    return DeLongResult(difference, se, _two_sided_p(difference, se))


def _two_sided_p(difference: float, se: float) -> float:
    """Normal two-sided p-value; a zero standard error means the two are identical (p = 1) or certainly differ."""
    if not np.isfinite(se):
        return float("nan")
    if se == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    return float(2 * norm.sf(abs(difference) / se))


# ----------------------------------------------------------------------------- accuracy comparisons
def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar test of two classifiers' accuracy on the same images (p = 1 when they never disagree)."""
    a_only = int((correct_a & ~correct_b).sum())
    b_only = int((~correct_a & correct_b).sum())
    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue)
