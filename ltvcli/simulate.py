"""Simulated annotators: label sets drawn from known confusion matrices.

The paper proves learning-to-vote on CIFAR-10 with five simulated annotator
types (its Figure 3, after Tanno et al., CVPR 2019). Each annotator is a
confusion matrix A with A[i, j] = P(annotator says j | true class i); every
sample's label is drawn from the row of its true class, so *which* samples
are corrupted is random while the annotator's overall noise is the matrix's.

Multi-class (C classes), at noise level rho:

* ``HS`` hammer-spammer: right with probability 1 - rho, otherwise any other class uniformly;
* ``SF`` structured flips: right with 1 - rho, otherwise always the *next* class (c -> c + 1 mod C);
* ``OC`` ordered confusion: right with 1 - rho, otherwise a neighbouring class in class order
  (c - 1 or c + 1, half each; the single neighbour at the ends);
* ``AD`` adversarial: always wrong, systematically: c -> c + floor(C / 2) mod C (noise 100 %, not scaled);
* ``AVG`` right with 1 - rho, otherwise a wrong label drawn from the average of the HS, SF, OC and AD
  wrong-label patterns (so its noise is rho too, as in the paper's noise sweep).

Multi-label data use, per class, a 2x2 matrix over (negative, positive):
``HS`` flips both ways with rho; ``SF`` misses positives (false-negative rate rho);
``OC`` over-calls (false-positive rate rho); ``AD`` always flips; ``AVG`` averages the four matrices.
Each annotator may carry its own level: ``HS:0.3,SF:0.4`` (the paper's Table 2 mixes levels).
``docs/annotators.md`` writes every matrix out.

Which samples an annotator gets wrong (``hardness`` h): at h = 0, the
paper's setting, every sample of a class is equally likely -- exactly the
Dawid-Skene model, which therefore recovers such labels almost perfectly.
At h > 0 each class keeps its number of errors, but they are drawn with
probability proportional to difficulty^h, so they gather on the images that
are hard to classify, as human readers err on ambiguous images: the
annotators' errors fall on the same images, and the image itself tells which
labels to distrust (a class-conditional model of the annotators cannot see
that). Difficulty is 1 − the out-of-fold probability of the true class under
a logistic regression on 16 × 16 thumbnails: a property of the image, not of
the network later trained on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ltvcli.console import log
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.format import MISSING
from ltvcli.errors import LtvError

ANNOTATOR_TYPES = ("HS", "SF", "OC", "AD", "AVG")
THUMBNAIL = 16  # side of the thumbnails the difficulty model sees


def confusion_matrix(kind: str, n_classes: int, noise: float) -> np.ndarray:
    """The C x C confusion matrix of one annotator type at noise level ``noise`` (0..1)."""
    kind = _check_kind(kind)
    _check_noise(noise)
    if n_classes < 2:
        raise LtvError("simulated annotators need at least 2 classes")
    if kind == "AD":
        return wrong_label_pattern("AD", n_classes)
    if kind == "AVG":
        wrong = np.mean([wrong_label_pattern(k, n_classes) for k in ("HS", "SF", "OC", "AD")], axis=0)
    else:
        wrong = wrong_label_pattern(kind, n_classes)
    return (1 - noise) * np.eye(n_classes) + noise * wrong


def wrong_label_pattern(kind: str, n_classes: int) -> np.ndarray:
    """Where a wrong label goes: a row-stochastic C x C matrix with a zero diagonal.

    An annotator at noise level rho is ``(1 - rho) I + rho * pattern``; AD is
    its pattern alone (always wrong) and AVG mixes the four patterns, so that
    AVG, like HS, SF and OC, is wrong exactly ``rho`` of the time -- the
    paper's noise sweep sets all four to the same level.
    """
    eye = np.eye(n_classes)
    if kind == "AD":
        return np.roll(eye, n_classes // 2, axis=1)
    if kind == "HS":
        return (1 - eye) / (n_classes - 1)
    if kind == "SF":
        return np.roll(eye, 1, axis=1)
    wrong = np.roll(eye, 1, axis=1) + np.roll(eye, -1, axis=1)  # OC
    wrong[0, -1] = wrong[-1, 0] = 0.0  # no wrap-around: the ends have one neighbour
    return wrong / wrong.sum(axis=1, keepdims=True)


def flip_matrix(kind: str, noise: float) -> np.ndarray:
    """The 2x2 (negative, positive) matrix of one annotator type for a multi-label class."""
    kind = _check_kind(kind)
    _check_noise(noise)
    if kind == "AVG":
        return np.mean([flip_matrix(k, noise) for k in ("HS", "SF", "OC", "AD")], axis=0)
    fpr, fnr = {"HS": (noise, noise), "SF": (0.0, noise), "OC": (noise, 0.0), "AD": (1.0, 1.0)}[kind]
    return np.array([[1 - fpr, fpr], [fnr, 1 - fnr]])


def check_matrix(matrix: np.ndarray, n: int, name: str) -> np.ndarray:
    """Validate a user-supplied confusion matrix: n x n, non-negative, rows summing to 1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (n, n):
        raise LtvError(f"confusion matrix {name!r}: shape {matrix.shape}, expected ({n}, {n})")
    if (matrix < 0).any():
        raise LtvError(f"confusion matrix {name!r}: negative entries")
    sums = matrix.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-6)
    if len(bad):
        raise LtvError(f"confusion matrix {name!r}: row {bad[0]} sums to {sums[bad[0]]:.6g}, expected 1")
    return matrix


def load_matrices(path: Path, n: int) -> dict[str, np.ndarray]:
    """Read ``{"name": [[...], ...], ...}`` from a JSON file; each matrix n x n (2 x 2 for multi-label)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LtvError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise LtvError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict) or not raw:
        raise LtvError(f"{path}: expected a JSON object mapping annotator names to matrices")
    return {name: check_matrix(value, n, f"{path}:{name}") for name, value in raw.items()}


def draw_labels(truth: np.ndarray, matrix: np.ndarray, rng: np.random.Generator,
                error_weight: np.ndarray | None = None) -> np.ndarray:
    """Draw one label per entry of ``truth`` (class ids, -1 = unknown) from the rows of ``matrix``.

    Without ``error_weight`` every entry is drawn independently. With it (same
    shape as ``truth``, e.g. difficulty^h), each true state s keeps
    its error count, round((1 − A[s, s]) · n_s), but the wrong entries are
    sampled with probability proportional to their weight; a wrong label then
    comes from the row's off-diagonal part. The matrix still holds per class.
    """
    if error_weight is not None:
        return _draw_on_hard(truth, matrix, rng, error_weight)
    known = truth != MISSING
    cumulative = np.cumsum(matrix, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.random(truth.shape)
    rows = cumulative[np.where(known, truth, 0)]
    drawn = (u[..., None] > rows).sum(axis=-1)
    return np.where(known, drawn, MISSING)


def _draw_on_hard(truth: np.ndarray, matrix: np.ndarray, rng: np.random.Generator,
                  error_weight: np.ndarray) -> np.ndarray:
    if truth.ndim == 2:  # multi-label: each class keeps its own error counts
        return np.stack([_draw_on_hard(truth[:, c], matrix, rng, error_weight[:, c])
                         for c in range(truth.shape[1])], axis=1)
    labels = truth.copy()
    for state in range(len(matrix)):
        members = np.flatnonzero(truth == state)
        n_wrong = int(round((1.0 - matrix[state, state]) * len(members)))
        if n_wrong == 0:
            continue
        weight = error_weight[members] + 1e-12  # every entry stays possible
        wrong = rng.choice(members, size=n_wrong, replace=False, p=weight / weight.sum())
        elsewhere = matrix[state].copy()
        elsewhere[state] = 0.0
        labels[wrong] = rng.choice(len(matrix), size=n_wrong, p=elsewhere / elsewhere.sum())
    return labels


def image_difficulty(dataset: Dataset) -> np.ndarray:
    """How hard each labelled entry is to classify from its image, in [0, 1], shaped like the ground truth.

    1 − the out-of-fold (5-fold) probability of the true state under a
    logistic regression on standardised thumbnails; one binary model per class
    for multi-label data. Entries without ground truth get 0 (never drawn).
    """
    from sklearn.linear_model import LogisticRegression  # here, not at the top: `ltv simulate --help` stays fast
    from sklearn.model_selection import cross_val_predict

    pixels = _thumbnails(dataset.images)
    truth = dataset.ground_truth.astype(np.int64)
    columns = truth if truth.ndim == 2 else truth[:, None]
    difficulty = np.zeros(columns.shape)
    for c in range(columns.shape[1]):
        known = np.flatnonzero(columns[:, c] != MISSING)
        states, counts = np.unique(columns[known, c], return_counts=True)
        if len(states) < 2 or counts.min() < 5:
            continue  # one state only (or too few to cross-validate): nothing tells the images apart
        probability = cross_val_predict(LogisticRegression(max_iter=300, C=0.1), pixels[known], columns[known, c],
                                         cv=5, method="predict_proba")
        difficulty[known, c] = 1.0 - probability[np.arange(len(known)), np.searchsorted(states, columns[known, c])]
    return difficulty if truth.ndim == 2 else difficulty[:, 0]


def _thumbnails(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Standardised THUMBNAIL² (× channels) area-averaged copies of the memory-mapped images, [N, features]."""
    import torch
    from sklearn.preprocessing import StandardScaler

    parts = []
    for start in range(0, len(images), chunk):
        block = torch.from_numpy(np.asarray(images[start:start + chunk], dtype=np.float32))
        block = block[:, None] if block.ndim == 3 else block.permute(0, 3, 1, 2)
        parts.append(torch.nn.functional.adaptive_avg_pool2d(block, THUMBNAIL).flatten(1).numpy())
    return StandardScaler().fit_transform(np.concatenate(parts))


def simulate_dataset(dataset: str | Path, out: str | Path, *, annotators: list[str] | None = None,
                     noise: float = 0.3, seed: int = 0, matrices: Path | None = None,
                     hardness: float = 0.0) -> Dataset:
    """Write a copy of ``dataset`` whose label sets come from simulated annotators.

    ``annotators`` lists types, each optionally at its own level (``HS:0.3``;
    repeats allowed: ``HS,HS,AD``); ``matrices``
    (a JSON file) adds user-defined annotators. ``hardness`` > 0 gathers
    the errors on the images hardest to classify (see the module docstring).
    Ground truth, images and splits are kept; the original label sets are
    replaced.
    """
    if not hardness >= 0:
        raise LtvError(f"--hardness must be 0 (errors on any image) or more, got {hardness}")
    source = Dataset.open(dataset)
    if not source.has_ground_truth:
        raise LtvError(f"{source.path}: simulated annotators need ground truth (clean labels) to corrupt")
    n = 2 if source.is_multilabel else len(source.classes)
    named = annotator_matrices(annotators if annotators is not None else list(ANNOTATOR_TYPES), source, noise)
    if matrices is not None:
        named.update(load_matrices(matrices, n))
    if not named:
        raise LtvError("no annotators: give --annotators and/or --matrices")
    rng = np.random.default_rng(seed)
    truth = source.ground_truth.astype(np.int64)
    error_weight = image_difficulty(source) ** hardness if hardness > 0 else None
    labels = np.stack([draw_labels(truth, m, rng, error_weight) for m in named.values()], axis=1)
    labels = labels.astype(np.int8 if source.is_multilabel else np.int16)
    for j, name in enumerate(named):
        valid = labels[:, j] != MISSING
        log(f"annotator {name}: label accuracy {np.mean(labels[:, j][valid] == truth[valid]):.3f}", level=2)
    spec = DatasetSpec(
        task=source.task, classes=source.classes, manifest=source.manifest,
        label_sets=[LabelSet(name=name, labeller=name) for name in named], labels=labels,
        ground_truth=source.ground_truth, reports=None, pixels=source.images,
        source={"name": "simulate", "from": str(source.path), "noise": noise, "seed": seed,
                "hardness": hardness, "matrices": {k: v.tolist() for k, v in named.items()}},
    )
    return build_dataset(spec, out, size=source.image_size, channels=source.channels)


def annotator_matrices(kinds: list[str], source: Dataset, noise: float) -> dict[str, np.ndarray]:
    """One matrix per ``TYPE`` or ``TYPE:LEVEL`` entry, named by type (``HS``, ``HS_2``, ...)."""
    named: dict[str, np.ndarray] = {}
    for entry in kinds:
        kind, level = parse_annotator(entry, noise)
        matrix = flip_matrix(kind, level) if source.is_multilabel else confusion_matrix(kind, len(source.classes), level)
        name, i = kind, 1
        while name in named:
            i += 1
            name = f"{kind}_{i}"
        named[name] = matrix
    return named


def parse_annotator(entry: str, noise: float) -> tuple[str, float]:
    """``"HS"`` -> (HS, noise); ``"HS:0.3"`` -> (HS, 0.3): its own level instead of ``--noise``."""
    kind, _, level = entry.partition(":")
    kind = _check_kind(kind)
    if not level.strip():
        return kind, noise
    if kind == "AD":
        raise LtvError(f"annotator {entry!r}: AD is always wrong and takes no noise level")
    try:
        value = float(level)
    except ValueError:
        raise LtvError(f"annotator {entry!r}: the level after ':' must be a number between 0 and 1") from None
    _check_noise(value, f"annotator {entry!r}: noise level")
    return kind, value


def _check_kind(kind: str) -> str:
    upper = kind.strip().upper()
    if upper not in ANNOTATOR_TYPES:
        raise LtvError(f"unknown annotator type {kind!r}; expected one of {', '.join(ANNOTATOR_TYPES)}")
    return upper


def _check_noise(noise: float, what: str = "--noise") -> None:
    if not 0.0 <= noise <= 1.0:
        raise LtvError(f"{what} must be between 0 and 1 (a fraction), got {noise}")
