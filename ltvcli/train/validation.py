"""Scoring the validation split after each epoch: what chooses a run's best checkpoint.

The metric is :func:`ltvcli.metrics.validation_score` -- macro ROC AUC for
multi-label data, accuracy for multi-class -- the same statistics ``ltv
evaluate`` reports. The reference is the split's ground truth where it has
any, otherwise the label sets' majority vote (the same
:class:`~ltvcli.fusion.aggregators.MajorityVote` the ``mv`` method trains on).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ltvcli.dataset import Dataset
from ltvcli.fusion.aggregators import MajorityVote
from ltvcli.metrics import scorable, validation_score
from ltvcli.runs.predict import probabilities
from ltvcli.runtime.inputs import ModelInputs


class Validator:
    """Scores the validation split against its ground truth, or the label sets' majority vote without one."""

    def __init__(self, dataset: Dataset, seed: int, text: np.ndarray | None = None):
        self.dataset = dataset
        self.text = text
        self.rows = dataset.indices("validate")
        self.metric = "auc" if dataset.is_multilabel else "accuracy"
        self.reference: str | None = None
        self.targets = np.zeros((0, len(dataset.classes)), dtype=np.float32)
        self.mask = np.zeros_like(self.targets, dtype=bool)
        if len(self.rows) == 0:
            return
        if dataset.has_ground_truth:
            truth, truth_mask = dataset.ground_truth_targets()
            if truth_mask[self.rows].any():
                self.reference = "ground_truth"
                self.targets, self.mask = truth[self.rows], truth_mask[self.rows]
                return
        self.reference = "majority_vote"
        self.targets, self.mask = _majority_reference(dataset, self.rows, seed)

    @property
    def scorable(self) -> bool:
        """Whether any class can be scored (AUC needs both outcomes in a column)."""
        return scorable(self.targets, self.mask, self.dataset.is_multilabel)

    def score(self, model: nn.Module, inputs: ModelInputs, workers: int) -> float:
        probs = probabilities(model, inputs, self.rows, workers=workers, text=self.text)
        return validation_score(probs, self.targets, self.mask, self.dataset.is_multilabel)


def _majority_reference(dataset: Dataset, rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    targets, mask = dataset.targets()
    labels, valid = MajorityVote(dataset.is_multilabel, seed).predict_proba(targets[rows], mask[rows], rows)
    return labels.numpy().astype(np.float32), valid.numpy()
