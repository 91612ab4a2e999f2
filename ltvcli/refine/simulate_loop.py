"""Is an expert's time worth it? The refinement loop with the ground truth playing the expert.

For each seed: phase 1 (co-teaching + VoG) once; then, for each strategy
from the same starting networks, ``rounds`` rounds of

1. pick ``budget`` candidates (the suspects of phase 1 not re-read yet) with the strategy;
2. the "expert" answers with the ground truth; the answers are applied exactly
   as ``ltv ingest relabels`` applies them (:func:`~ltvcli.refine.relabels.apply_answers`)
   and the training labels are fused again;
3. recalibrate: both networks train ``recal_epochs`` epochs on the entries kept
   by phase 1 plus every answered entry (the paper's protocol);
4. measure: the accuracy of the training labels against the ground truth
   (all labelled training entries), how many of the answered labels were
   wrong before (the errors fixed), and the pair's test ROC AUC (macro over
   classes) and accuracy.

``random`` (the same candidates, a random order) is the baseline the paper
compares against; ``none`` recalibrates without relabelling anything, which
shows how much of a gain comes from the extra epochs alone. Round 0 is the
end of phase 1, the same for every strategy of a seed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.console import log
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError, OptionError
from ltvcli.metrics import accuracy, validation_score
from ltvcli.refine.coteach import CoTeaching, CoteachConfig, Selection
from ltvcli.refine.queue import candidate_entries
from ltvcli.refine.relabels import Answers, apply_answers
from ltvcli.refine.scores import STRATEGIES, pick
from ltvcli.refine.targets import Targets, entry_labels, fuse
from ltvcli.runtime.determinism import deterministic

SIM_STRATEGIES = STRATEGIES + ("none",)
METRICS = ("label_accuracy", "test_auc", "test_accuracy")


def simulate_refinement(dataset: str | Path, config: CoteachConfig, *, budget: int, rounds: int,
                        strategies: list[str], seeds: list[int], recal_epochs: int = 5,
                        candidates: str = "suspected") -> pd.DataFrame:
    """One row per (seed, strategy, round) with the cumulative budget and the :data:`METRICS`."""
    data = Dataset.open(dataset)
    _check(data, budget, rounds, strategies, seeds, recal_epochs)
    records = []
    for seed in seeds:
        log(f"seed {seed}: phase 1 (co-teaching + VoG)")
        with deterministic():
            teacher = CoTeaching(data, replace(config, seed=seed))
            loop = _Loop(data, teacher, teacher.fit(), seed, candidates)
            for strategy in strategies:
                records.extend(loop.run(strategy, budget, rounds, recal_epochs))
    return pd.DataFrame.from_records(records)


def _check(data: Dataset, budget: int, rounds: int, strategies: list[str], seeds: list[int],
           recal_epochs: int) -> None:
    for strategy in strategies:
        if strategy not in SIM_STRATEGIES:
            raise OptionError("strategies", f"unknown strategy {strategy!r}; expected some of "
                                            f"{', '.join(SIM_STRATEGIES)}")
    for option, value in (("budget", budget), ("rounds", rounds), ("recal_epochs", recal_epochs)):
        if value < 1:
            raise OptionError(option, f"{value}: expected a positive integer")
    if not strategies or not seeds:
        raise LtvError("give at least one strategy (`strategies`) and one seed (`seeds`)")
    truth = data.ground_truth
    for split in ("train", "test"):
        rows = data.indices(split)
        if truth is None or len(rows) == 0 or not (truth[rows] >= 0).any():
            raise LtvError(f"{data.path}: the simulated expert needs ground truth on the {split} split "
                           "(e.g. a dataset from `ltv simulate`)")


class _Loop:
    """The rounds of one seed: the shared phase-1 result, replayed for each strategy."""

    def __init__(self, data: Dataset, teacher: CoTeaching, selection: Selection, seed: int, candidates: str):
        self.data, self.teacher, self.selection = data, teacher, selection
        self.seed, self.candidates = seed, candidates
        self.start = teacher.state()
        self.start_targets = teacher.targets
        rows = selection.rows
        truth = data.ground_truth[rows].reshape(len(rows), -1)  # [n, G]: 0/1 per finding, or the class id
        self.truth, self.truth_known = truth, truth >= 0
        self.test_rows = data.indices("test")
        self.start_quality = self._quality()

    def run(self, strategy: str, budget: int, rounds: int, recal_epochs: int) -> list[dict]:
        teacher, data, sel = self.teacher, self.data, self.selection
        teacher.load_state(self.start)
        teacher.set_targets(self.start_targets)
        labels, names = data.labels, data.label_set_names
        answered = np.zeros_like(sel.valid)
        current = sel
        records = [self._record(strategy, 0, answered, self.start_targets, self.start_quality, 0)]
        corrected = 0
        for r in range(1, rounds + 1):
            if strategy != "none":
                pool, covered = candidate_entries(current, self.candidates)
                pool = pool & self.truth_known
                if pool.any():
                    positions, groups, _ = pick(strategy, pool, budget, current.outputs, covered=covered,
                                                multilabel=data.is_multilabel, seed=self.seed * 1000 + r)
                    answers = Answers(rows=sel.rows[positions], groups=groups,
                                      values=self.truth[positions, groups], skipped=0)
                    corrected += self._wrong(teacher.targets, positions, groups)
                    labels, names = apply_answers(labels, names, answers, multilabel=data.is_multilabel)
                    teacher.set_targets(fuse(labels, names, multilabel=data.is_multilabel,
                                             n_classes=len(data.classes), source=teacher.config.labels,
                                             seed=self.seed, fit_rows=sel.rows))
                    answered[positions, groups] = True
            use = (sel.kept | answered) & teacher.targets.valid[sel.rows]
            teacher.finetune(use, recal_epochs, seed=self.seed * 1000 + r)
            current = replace(sel, targets=teacher.targets.values[sel.rows],
                              trusted=teacher.targets.trusted[sel.rows], outputs=teacher.outputs())
            records.append(self._record(strategy, r, answered, teacher.targets, self._quality(), corrected))
            log(f"seed {self.seed}, {strategy}, round {r}: {int(answered.sum())} answered, label accuracy "
                f"{records[-1]['label_accuracy']:.4f}, test AUC {records[-1]['test_auc']:.4f}")
        return records

    def _wrong(self, targets: Targets, positions: np.ndarray, groups: np.ndarray) -> int:
        """How many of the picked entries had a wrong training label (the errors the answers fix)."""
        current = entry_labels(targets.values[self.selection.rows], self.data.is_multilabel)
        return int((current[positions, groups] != self.truth[positions, groups]).sum())

    def _record(self, strategy: str, round_: int, answered: np.ndarray, targets: Targets,
                quality: tuple[float, float], corrected: int) -> dict:
        rows = self.selection.rows
        labels = entry_labels(targets.values[rows], self.data.is_multilabel)
        known = self.truth_known & targets.valid[rows]
        correct = labels == self.truth
        return {"seed": self.seed, "strategy": strategy, "round": round_, "budget": int(answered.sum()),
                "corrected": corrected,
                "label_accuracy": float(correct[known].mean()),
                "test_auc": quality[0], "test_accuracy": quality[1]}

    def _quality(self) -> tuple[float, float]:
        """(macro ROC AUC, accuracy) of the pair on the test split, against the ground truth."""
        probs = self.teacher.probabilities(self.test_rows)
        truth, mask = self.data.ground_truth_targets()
        truth, mask = truth[self.test_rows], mask[self.test_rows]
        auc = validation_score(probs, truth, mask, multilabel=True)  # one-vs-rest for one-hot multi-class truth
        if self.data.is_multilabel:
            share = accuracy(truth[mask], probs[mask] >= 0.5)
        else:
            share = validation_score(probs, truth, mask, multilabel=False)
        return auc, share


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (strategy, round), and the paired difference to ``random``.

    ``<metric>_vs_random`` is the mean over seeds of (strategy - random) at the
    same seed and round; ``<metric>_wins`` counts the seeds where it is > 0.
    """
    keys = ["strategy", "round"]
    grouped = results.groupby(keys, sort=False)
    table = grouped[["budget", "corrected"]].mean()
    for metric in METRICS:
        table[f"{metric}_mean"] = grouped[metric].mean()
        table[f"{metric}_std"] = grouped[metric].std(ddof=1)
    if (results["strategy"] == "random").any():
        baseline = results.loc[results["strategy"] == "random", ["seed", "round", *METRICS]]
        paired = results.merge(baseline, on=["seed", "round"], suffixes=("", "_random"))
        for metric in ("label_accuracy", "test_auc"):
            paired[metric] = paired[metric] - paired[f"{metric}_random"]
            by_key = paired.groupby(keys, sort=False)[metric]
            table[f"{metric}_vs_random"] = by_key.mean()
            table[f"{metric}_wins"] = by_key.apply(lambda d: int((d > 0).sum()))
    table["seeds"] = grouped.size()
    return table.reset_index()
