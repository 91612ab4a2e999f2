"""The baselines that train on an aggregator's labels: ``single`` and ``mv`` (the paper's R50 rows).

``single`` trains with masked BCE on one label set (``label_set="neg_u1"``) or
on an aggregator's labels (``soft_mean``, ``majority``, ``dawid_skene``); ``mv``
on the per-sample majority vote (R50_MV). The labels of a batch come from
:meth:`~ltvcli.fusion.aggregators.Aggregator.predict_proba` on the batch
itself, so export refines any split with the aggregator fitted on the
training split (kept in the checkpoint with the method).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ltvcli.fusion.aggregators import Aggregator, MajorityVote, OneLabelSet, make_aggregator
from ltvcli.fusion.base import Batch, PredictionMethod, StepResult, hard_labels, masked_bce, mean_count, with_missing


class AggregatedLabels(PredictionMethod):
    """Train on the labels of ``aggregator``; missing labels are masked out of the loss."""

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, aggregator: Aggregator):
        super().__init__(n_label_sets, n_classes, multilabel)
        self.aggregator = aggregator

    def fit_labels(self, targets: np.ndarray, mask: np.ndarray) -> None:
        """Fit the aggregator on the training split's labels (only Dawid-Skene learns anything)."""
        self.aggregator.fit(targets, mask)

    def labels(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """This batch's training labels and their validity, [B, C]."""
        if not self.aggregator.fitted:
            raise RuntimeError(f"fit_labels must run before training on {type(self.aggregator).__name__} labels")
        return self.aggregator.predict_proba(batch.targets, batch.mask, batch.index)

    def result(self, logits: torch.Tensor, batch: Batch) -> StepResult:
        labels, valid = self.labels(batch)
        loss = masked_bce(logits, labels, valid, mean_count(valid))
        return StepResult(loss=loss, logits=logits.detach(), refined=with_missing(labels, valid),
                          binarised=with_missing(hard_labels(labels, self.multilabel), valid))


class SingleLabelSet(AggregatedLabels):
    """``single``: one label set, or the labels of one aggregator (a label set of the same name wins)."""

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, *, label_set: str,
                 label_set_names: list[str], seed: int = 0):
        super().__init__(n_label_sets, n_classes, multilabel,
                         make_aggregator(label_set, label_set_names, multilabel=multilabel, seed=seed))
        self.label_set = label_set

    @property
    def source(self) -> int | str:
        """What ``label_set`` resolved to: the label set's position, or the aggregator's name."""
        return self.aggregator.index if isinstance(self.aggregator, OneLabelSet) else self.label_set


class MajorityLabels(AggregatedLabels):
    """``mv``: the per-sample majority vote of the label sets, ties broken by a seeded hash."""

    min_label_sets: ClassVar[int] = 2

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, *, seed: int = 0):
        super().__init__(n_label_sets, n_classes, multilabel, MajorityVote(multilabel, seed))
