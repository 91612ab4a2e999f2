"""The evaluation API: models and label sets scored against trusted labels, as in the paper's Table 4.

:func:`evaluate` is what ``ltv evaluate`` calls: it reads the inputs
(:func:`load_inputs`) and scores them (:func:`score`). A notebook user with
arrays instead of files builds an :class:`~ltvcli.evaluate.tables.EvalData`
and calls :func:`score` directly.

Multi-label data (chest X-ray findings) get per-finding ROC AUCs with
stratified bootstrap intervals and their macro average, and the columns that
make 0/1 decisions (label sets, fused labels) their accuracy, sensitivity and
specificity (:mod:`ltvcli.evaluate.binary`); multi-class data (CIFAR-style)
get accuracy, per-class recall and confusion matrices. Two columns can be
compared: a paired bootstrap interval of the difference on the same
resamples, and DeLong's test (AUC) or McNemar's test (accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli.console import log, track, warn
from ltvcli.dataset.format import MISSING, SPLITS, Dataset
from ltvcli.dataset.labelsets import select_label_sets
from ltvcli.errors import LtvError, OptionError
from ltvcli import metrics
from ltvcli.evaluate.binary import score_binary
from ltvcli.evaluate.tables import (
    UNKNOWN_ID_POLICIES,
    Column,
    EvalData,
    check_fused_ids,
    dataset_classes,
    dataset_ground_truth,
    fused_column,
    labeller_columns,
    labels_on_dataset,
    labels_on_predictions,
    prediction_scores,
    read_fused,
    read_labels,
    read_predictions,
    split_name,
)

AVERAGE = "Average"
PAIR = "pair"  # key tag of the compared columns' replicates on the images both score
ACCURACY = "accuracy"
RECALL = "recall"
#: Columns of the long score table, per task (the CSV written by ``--out`` has exactly these).
SCORE_COLUMNS = {
    "multilabel": ["model", "kind", "finding", "auc", "lo", "hi", "n_pos", "n_neg", "note"],
    "multiclass": ["model", "kind", "metric", "class", "value", "lo", "hi", "n", "note"],
}
#: Why a label set's cell is empty when it labels none of the evaluated images (annotators that labelled the
#: training images only): a result to report, not an error.
NO_LABELS = "no labels on this split"
COMPARISON_COLUMNS = ["row", "a", "b", "value_a", "value_b", "difference", "lo", "hi", "p_value", "test", "note"]
#: ``split`` values: one split, or every image with ground truth.
EVAL_SPLITS = (*SPLITS, "all")


@dataclass
class EvaluationResult:
    """Scores of every column, the optional comparison, and what produced them.

    ``scores`` is the long table (one row per column and finding, plus the
    average; see :data:`SCORE_COLUMNS`); ``comparison`` has one row per
    finding plus the average (or one accuracy row), ``None`` without two
    columns to compare; ``confusion`` maps each column to its confusion matrix
    (multi-class only); ``binary`` has the accuracy, sensitivity and
    specificity of each label set and fused labels file per finding
    (multi-label only; :data:`~ltvcli.evaluate.binary.BINARY_COLUMNS`), None
    without such columns; ``data`` keeps the aligned inputs for the ROC plots.
    """

    data: EvalData
    scores: pd.DataFrame
    comparison: pd.DataFrame | None
    settings: dict
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    binary: pd.DataFrame | None = None

    @property
    def task(self) -> str:
        return self.data.task

    def value(self, model: str, row: str) -> float:
        """One cell: a column's AUC on a finding (or ``Average``), or its ``accuracy`` / recall of a class."""
        if self.task == "multilabel":
            hit = self.scores[(self.scores.model == model) & (self.scores.finding == row)]
            return float(hit.auc.iloc[0]) if len(hit) else float("nan")
        metric, cls = (ACCURACY, "") if row == ACCURACY else (RECALL, row)
        hit = self.scores[(self.scores.model == model) & (self.scores.metric == metric) & (self.scores["class"] == cls)]
        return float(hit.value.iloc[0]) if len(hit) else float("nan")


# ----------------------------------------------------------------------------- the API
def evaluate(
    runs: Sequence[str | Path] = (),
    *,
    dataset: str | Path | Dataset | None = None,
    labels: str | Path | None = None,
    predictions: Sequence[str | Path] = (),
    fused: Sequence[str | Path] = (),
    label_sets: str | Sequence[str] | None = None,
    policy: str | None = None,
    compare: tuple[str, str] | None = None,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    unknown_ids: str = "error",
    checkpoint: str = "best",
    device: str = "auto",
) -> EvaluationResult:
    """Score runs, prediction tables, fused labels and the dataset's label sets against ground truth.

    ``runs``, ``predictions`` and ``fused`` (refined-labels tables from ``ltv
    export-labels``) entries may be ``NAME=PATH`` to name their column.
    Ground truth is ``labels`` (a hand-labelled file keyed by image or study
    id) or else the dataset's own on ``split`` (``all``: every split). The
    dataset's label sets are columns too: all of them, or those ``label_sets``
    and ``policy`` choose (:func:`~ltvcli.dataset.labelsets.select_label_sets`).
    """
    data = load_inputs(runs, dataset=dataset, labels=labels, predictions=predictions, fused=fused,
                       label_sets=label_sets, policy=policy, split=split, unknown_ids=unknown_ids,
                       checkpoint=checkpoint, device=device)
    return score(data, compare=compare, n_boot=n_boot, seed=seed, level=level)


def load_inputs(
    runs: Sequence[str | Path] = (),
    *,
    dataset: str | Path | Dataset | None = None,
    labels: str | Path | None = None,
    predictions: Sequence[str | Path] = (),
    fused: Sequence[str | Path] = (),
    label_sets: str | Sequence[str] | None = None,
    policy: str | None = None,
    split: str = "test",
    unknown_ids: str = "error",
    checkpoint: str = "best",
    device: str = "auto",
) -> EvalData:
    """Read the ground truth and every column, aligned on the labelled images."""
    if split not in EVAL_SPLITS:
        raise OptionError("split", f"{split!r}: expected one of {', '.join(EVAL_SPLITS)}")
    if unknown_ids not in UNKNOWN_ID_POLICIES:
        raise OptionError("unknown_ids", f"{unknown_ids!r}: expected one of {', '.join(UNKNOWN_ID_POLICIES)}")
    tables = [read_predictions(spec) for spec in predictions]
    ds = None if dataset is None else dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    fused_tables = [read_fused(spec, classes=None if ds is None else dataset_classes(ds)) for spec in fused]
    if ds is None:
        if runs:
            raise LtvError("evaluating a run needs `dataset` (the images to predict on)")
        if labels is None or not (tables or fused_tables):
            raise LtvError("nothing to evaluate: give `dataset`, or `predictions` or `fused` with `labels`")
        if label_sets is not None or policy is not None:
            raise LtvError("`label_sets` and `policy` choose among a dataset's label sets; give `dataset`")
        label_table = read_labels(Path(labels))
        image_ids, truth = labels_on_predictions(label_table, tables + fused_tables, unknown_ids)
        classes, task, rows = label_table.classes, "multilabel", None
        source = f"{Path(labels).name} (hand labels by {label_table.key})"
    else:
        for table in fused_tables:
            check_fused_ids(table, ds)
        classes, task = dataset_classes(ds), ds.task
        if labels is not None:
            label_table = read_labels(Path(labels), classes=classes, multiclass=not ds.is_multilabel)
            rows, truth = labels_on_dataset(label_table, ds, unknown_ids)
            classes = label_table.classes
            source = f"{Path(labels).name} (hand labels by {label_table.key}) on {ds.path.name}"
        else:
            rows, truth = dataset_ground_truth(ds, split, classes)
            held = "every split's" if split == "all" else f"{split} split"
            source = f"{ds.path.name}, {held} ground truth"
        image_ids = ds.image_ids[rows]
    labelled = truth != MISSING
    keep = labelled.any(axis=1) if truth.ndim == 2 else labelled
    if not keep.any():
        raise LtvError(f"{source}: no labelled image to evaluate on")
    image_ids, truth = image_ids[keep], truth[keep]
    rows = rows[keep] if rows is not None else None
    labelled = (truth != MISSING) if task == "multilabel" else np.repeat((truth != MISSING)[:, None], len(classes), 1)
    columns = [] if ds is None else labeller_columns(ds, rows, classes, _scored_label_sets(ds, label_sets, policy))
    empty = [column.name for column in columns if np.isnan(column.scores).all()]
    if len(empty) == 1:
        warn(f"label set {empty[0]!r}: {NO_LABELS} ({len(image_ids)} evaluated images); its cells are n/a")
    elif empty:  # a crowd's workers, who labelled training images only: one line, not one per worker
        named = ", ".join(map(repr, empty[:3])) + (f" and {len(empty) - 3} more" if len(empty) > 3 else "")
        warn(f"{len(empty)} label sets ({named}): {NO_LABELS} ({len(image_ids)} evaluated images); their cells are n/a")
    columns += [fused_column(table, image_ids, classes, labelled) for table in fused_tables]
    columns += [run_column(spec, ds, rows, classes, labelled, checkpoint, device) for spec in runs]
    columns += [Column(t.name, "model", prediction_scores(t, image_ids, classes, labelled)) for t in tables]
    _check_unique_names(columns)
    log(f"evaluating {len(columns)} column(s) on {len(image_ids)} labelled images ({source})")
    return EvalData(task, classes, image_ids, truth, columns, source)


def run_column(spec: str | Path, dataset: Dataset, rows: np.ndarray, classes: list[str], labelled: np.ndarray,
               checkpoint: str, device: str) -> Column:
    """A trained run's probabilities on the evaluated images (the run checks it knows the dataset's classes)."""
    from ltvcli.runs.predict import predict_probabilities  # torch is imported only when a run is scored

    name, path = split_name(spec)
    image_ids, probs = predict_probabilities(path, dataset, split=_covering_split(dataset, rows),
                                             checkpoint=checkpoint, device=device)
    position = pd.Index(image_ids).get_indexer(dataset.image_ids[rows])
    scores = probs[position][:, [dataset.class_index(c) for c in classes]].astype(np.float64)
    if np.isnan(scores[labelled]).any():
        raise LtvError(f"{path}: the {checkpoint} checkpoint predicts NaN; the run diverged")
    return Column(name, "model", scores)


def _scored_label_sets(dataset: Dataset, label_sets: str | Sequence[str] | None, policy: str | None) -> list[int]:
    """The label sets scored as columns: all by default (none to score in a dataset without label sets)."""
    if label_sets is None and policy is None:
        return list(range(len(dataset.label_set_names)))
    return select_label_sets(dataset, label_sets, policy)


def _covering_split(dataset: Dataset, rows: np.ndarray) -> str | None:
    """The one split holding every evaluated image (predict only those), or None for all images."""
    splits = set(dataset.manifest["split"].to_numpy()[rows])
    return splits.pop() if len(splits) == 1 else None


def _check_unique_names(columns: list[Column]) -> None:
    seen: set[str] = set()
    for column in columns:
        if column.name in seen:
            raise LtvError(f"two columns are named {column.name!r}; name them with NAME=PATH")
        seen.add(column.name)


# ----------------------------------------------------------------------------- scoring
def score(data: EvalData, *, compare: tuple[str, str] | None = None, n_boot: int = 1000, seed: int = 0,
          level: float = 0.95) -> EvaluationResult:
    """Score every column of ``data``; compare two columns (default: the first two models)."""
    if n_boot < 0:
        raise OptionError("n_boot", f"{n_boot}: expected 0 (no intervals) or a positive number of resamples")
    if not 0 < level < 1:
        raise LtvError(f"confidence level {level}: expected a number between 0 and 1")
    pair = _pair(data, compare)
    settings = {"n_boot": n_boot, "seed": seed, "level": level, "n_images": len(data.image_ids),
                "source": data.source, "compare": list(pair) if pair else None}
    if data.task == "multilabel":
        scores, comparison = _score_multilabel(data, pair, n_boot, seed, level)
        return EvaluationResult(data, scores, comparison, settings, binary=score_binary(data, n_boot, seed, level))
    scores, comparison, confusions = _score_multiclass(data, pair, n_boot, seed, level)
    return EvaluationResult(data, scores, comparison, settings, confusions)


def _pair(data: EvalData, compare: tuple[str, str] | None) -> tuple[str, str] | None:
    if compare:
        for name in compare:
            data.column(name)
        if compare[0] == compare[1]:
            raise OptionError("compare", f"{compare[0]} {compare[1]}: name two different columns")
        return tuple(compare)
    candidates = data.models + data.fused
    return (candidates[0], candidates[1]) if len(candidates) >= 2 else None


@dataclass
class _Cell:
    """One column on one finding: its point value, bootstrap replicates and counts."""

    value: float
    replicates: np.ndarray
    n_pos: int
    n_neg: int
    note: str = ""


def _score_multilabel(data: EvalData, pair, n_boot: int, seed: int, level: float):
    """Per-finding AUCs and their average for every column; the paired comparison when there is a pair."""
    cells: dict[str, dict[str, _Cell]] = {}
    paired: dict[str, tuple[_Cell, _Cell, metrics.PairedPart]] = {}
    with track(len(data.classes), "bootstrap AUCs") as advance:
        for j, cls in enumerate(data.classes):
            cells[cls], comparison = _score_finding(data, j, cls, pair, n_boot, seed)
            if comparison:
                paired[cls] = comparison
            advance(1)
    rows = []
    for column in data.columns:
        per_finding = [cells[cls][column.name] for cls in data.classes]
        for cls, cell in zip(data.classes, per_finding):
            rows.append([column.name, column.kind, cls, cell.value, *_interval(cell.replicates, level), cell.n_pos,
                         cell.n_neg, cell.note])
        average = _average(per_finding, data.classes, n_boot)
        rows.append([column.name, column.kind, AVERAGE, average.value, *_interval(average.replicates, level),
                     None, None, average.note])
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS["multilabel"])
    return scores, (_compare_findings(pair, paired, data.classes, level) if pair else None)


def _score_finding(data: EvalData, j: int, cls: str, pair, n_boot: int, seed: int):
    """Every column's AUC on finding ``j`` with replicates on the same resamples; the pair's paired part."""
    labelled = np.flatnonzero(data.truth[:, j] != MISSING)
    y = data.truth[labelled, j].astype(np.int64)
    reason = _single_class_reason(y, "the ground truth")
    if reason:
        cell = _Cell(np.nan, np.full(n_boot, np.nan), int(y.sum()), int((y == 0).sum()), f"not computable: {reason}")
        return {c.name: cell for c in data.columns}, None
    scores = {c.name: c.scores[labelled, j] for c in data.columns}
    subsets = {name: ~np.isnan(s) for name, s in scores.items()}
    jobs = {name: (name, subsets[name]) for name in scores}
    if pair:  # the comparison scores both on the images both score; usually each already scores all of them
        both = subsets[pair[0]] & subsets[pair[1]]
        jobs.update({(PAIR, n): (n, both) for n in pair if not (both == subsets[n]).all()})
    replicates = {key: np.full(n_boot, np.nan) for key in jobs}
    computable = {key: not _single_class_reason(y[valid], "") for key, (_, valid) in jobs.items()}
    start = 0
    for counts in metrics.stratified_resamples(y, n_boot, metrics.resample_rng(seed, cls)):
        for key, (name, valid) in jobs.items():
            if computable[key]:
                replicates[key][start:start + len(counts)] = metrics.weighted_auc(y[valid], scores[name][valid],
                                                                                   counts[:, valid])
        start += len(counts)
    cells = {name: _auc_cell(y, scores[name], subsets[name], replicates[name]) for name in scores}
    if not pair:
        return cells, None
    a, b = (_auc_cell(y, scores[n], both, replicates.get((PAIR, n), replicates[n])) for n in pair)
    return cells, (a, b, metrics.PairedPart(labelled[both], y[both], scores[pair[0]][both], scores[pair[1]][both]))


def _single_class_reason(y: np.ndarray, what: str) -> str:
    if len(y) == 0:
        return f"{what} labels no image"
    if (y == 1).all():
        return f"{what} has no negatives"
    if (y == 0).all():
        return f"{what} has no positives"
    return ""


def _auc_cell(y: np.ndarray, scores: np.ndarray, valid: np.ndarray, replicates: np.ndarray) -> _Cell:
    y_valid = y[valid]
    n_pos, n_neg = int((y_valid == 1).sum()), int((y_valid == 0).sum())
    reason = NO_LABELS if not valid.any() else _single_class_reason(
        y_valid, "on the images this column scores, the ground truth")
    if reason:
        return _Cell(np.nan, np.full(len(replicates), np.nan), n_pos, n_neg, f"not computable: {reason}")
    return _Cell(metrics.auc_score(y_valid, scores[valid]), replicates, n_pos, n_neg, _left_out_note(valid))


def _left_out_note(valid: np.ndarray) -> str:
    """Label sets may not label every image; say how many of the labelled ones they skip."""
    return f"{int((~valid).sum())} labelled images without a label here left out" if (~valid).any() else ""


def _average(cells: list[_Cell], classes: list[str], n_boot: int) -> _Cell:
    """Macro average over the computable findings; its replicates average the same resamples."""
    included = [c for c in cells if np.isfinite(c.value)]
    if not included:
        return _Cell(np.nan, np.full(n_boot, np.nan), 0, 0, "not computable: no finding is")
    left_out = [cls for cls, c in zip(classes, cells) if not np.isfinite(c.value)]
    note = f"mean of {len(included)} of {len(cells)}; left out: {', '.join(left_out)}" if left_out else ""
    replicates = np.mean([c.replicates for c in included], axis=0)
    return _Cell(float(np.mean([c.value for c in included])), replicates, 0, 0, note)


def _interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    return metrics.percentile_interval(replicates, level)


def _compare_findings(pair, paired: dict, classes: list[str], level: float) -> pd.DataFrame:
    """Paired difference per finding and on the average: bootstrap interval and DeLong p-value."""
    rows, parts, included = [], [], []
    for cls in classes:
        if cls not in paired:
            rows.append([cls, *pair, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, "DeLong",
                         "not computable: the ground truth has one class only"])
            continue
        a, b, part = paired[cls]
        if not (np.isfinite(a.value) and np.isfinite(b.value)):
            rows.append([cls, *pair, a.value, b.value, np.nan, np.nan, np.nan, np.nan, "DeLong", a.note or b.note])
            continue
        difference = a.replicates - b.replicates
        rows.append([cls, *pair, a.value, b.value, a.value - b.value, *_interval(difference, level),
                     metrics.delong_test([part]).p_value, "DeLong", a.note])
        parts.append(part)
        included.append((a.value, b.value, difference))
    if parts:
        mean_a, mean_b = (float(np.mean([values[k] for values in included])) for k in (0, 1))
        difference = np.mean([values[2] for values in included], axis=0)
        note = f"mean of {len(parts)} of {len(classes)} findings" if len(parts) < len(classes) else ""
        rows.append([AVERAGE, *pair, mean_a, mean_b, mean_a - mean_b, *_interval(difference, level),
                     metrics.delong_test(parts).p_value, "DeLong", note])
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# ----------------------------------------------------------------------------- multi-class
def _score_multiclass(data: EvalData, pair, n_boot: int, seed: int, level: float):
    """Accuracy, per-class recall (each with an interval) and the confusion matrix of every column."""
    y = data.truth.astype(np.int64)
    n_classes = len(data.classes)
    predicted = {c.name: np.argmax(np.nan_to_num(c.scores, nan=-1.0), axis=1) for c in data.columns}
    correct = {name: predicted[name] == y for name in predicted}
    valid = {c.name: ~np.isnan(c.scores).any(axis=1) for c in data.columns}
    # replicate columns: accuracy, then the recall of each class; for the pair, accuracy on the images both label
    jobs = {name: [valid[name]] + [valid[name] & (y == k) for k in range(n_classes)] for name in predicted}
    if pair:
        both = valid[pair[0]] & valid[pair[1]]
        jobs.update({(PAIR, n): [both] for n in pair})
    replicates = {key: np.empty((n_boot, len(masks))) for key, masks in jobs.items()}
    start = 0
    for counts in metrics.stratified_resamples(y, n_boot, metrics.resample_rng(seed, ACCURACY)):
        for key, masks in jobs.items():
            hits = correct[key[1] if isinstance(key, tuple) else key]  # (PAIR, name) or name
            shares = [metrics.resampled_share(counts, hits, m) for m in masks]
            replicates[key][start:start + len(counts)] = np.stack(shares, axis=1)
        start += len(counts)
    rows, confusions = [], {}
    for column in data.columns:
        ok = valid[column.name]
        yv, pv = y[ok], predicted[column.name][ok]
        if ok.any():
            values = [metrics.accuracy(yv, pv), *metrics.class_recalls(yv, pv, n_classes)]
            confusions[column.name] = metrics.confusion(yv, pv, n_classes)
        else:
            values = [np.nan] * (n_classes + 1)
            confusions[column.name] = np.zeros((n_classes, n_classes), dtype=np.int64)
        sizes = [int(ok.sum()), *(int((yv == k).sum()) for k in range(n_classes))]
        note = _left_out_note(ok)
        empty = f"not computable: {NO_LABELS}" if not ok.any() else "not computable: no image of this class"
        for k, (value, n) in enumerate(zip(values, sizes)):
            rows.append([column.name, column.kind, ACCURACY if k == 0 else RECALL,
                         "" if k == 0 else data.classes[k - 1], value if n else np.nan,
                         *_interval(replicates[column.name][:, k], level), n, note if n else empty])
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS["multiclass"])
    if not pair:
        return scores, None, confusions
    if not both.any():
        comparison = pd.DataFrame([[ACCURACY, *pair, *[np.nan] * 6, "McNemar", f"not computable: {NO_LABELS}"]],
                                  columns=COMPARISON_COLUMNS)
        return scores, comparison, confusions
    a, b = (metrics.accuracy(y[both], predicted[n][both]) for n in pair)
    difference = replicates[(PAIR, pair[0])][:, 0] - replicates[(PAIR, pair[1])][:, 0]
    p = metrics.mcnemar_p(correct[pair[0]][both], correct[pair[1]][both])
    comparison = pd.DataFrame([[ACCURACY, *pair, a, b, a - b, *_interval(difference, level), p, "McNemar", ""]],
                              columns=COMPARISON_COLUMNS)
    return scores, comparison, confusions
