"""The baselines that train on an aggregator's labels: ``single`` and ``mv`` (the paper's R50 rows).

``single`` trains with masked BCE on one label set (``label_set="neg_u1"``) or
on an aggregator's labels (``soft_mean``, ``majority``, ``dawid_skene``); ``mv``
on the per-sample majority vote (R50_MV). The labels of a batch come from
:meth:`~ltvcli.fusion.aggregators.Aggregator.predict_proba` on the batch
itself, so export refines any split with the aggregator fitted on the
training split (kept in the checkpoint with the method).
"""

from __future__ import annotations

import numpy as np
import torch

from ltvcli.errors import OptionError
from ltvcli.fusion.aggregators import AGGREGATOR_NAMES, Aggregator, MajorityVote, OneLabelSet, make_aggregator
from ltvcli.fusion.base import Batch, PredictionMethod, StepResult, as_refined, masked_bce, mean_count
from ltvcli.fusion.registry import SingleOptions, TieBreakOptions


class AggregatedLabels(PredictionMethod):
    """Train on the labels of ``self.aggregator``; missing labels are masked out of the loss."""

    aggregator: Aggregator

    def fit_labels(self, targets: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None) -> None:
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
        refined, binarised = as_refined(labels, valid, self.multilabel)
        return StepResult(loss=loss, logits=logits.detach(), refined=refined, binarised=binarised)


class SingleLabelSet(AggregatedLabels):
    """``single``: one label set, or the labels of one aggregator (a label set of the same name wins)."""

    options: SingleOptions

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: SingleOptions,
                 label_set_names: list[str]):
        super().__init__(n_label_sets, n_classes, multilabel, options, label_set_names)
        if options.label_set is None:
            raise OptionError("label_set", f"`method` single needs `label_set`: one of the label sets "
                                           f"({', '.join(label_set_names)}) or an aggregator "
                                           f"({', '.join(AGGREGATOR_NAMES)})")
        self.aggregator = make_aggregator(options.label_set, label_set_names, multilabel=multilabel,
                                          seed=options.seed)

    @property
    def source(self) -> int | str:
        """What ``label_set`` resolved to: the label set's position, or the aggregator's name."""
        return self.aggregator.index if isinstance(self.aggregator, OneLabelSet) else self.options.label_set


class MajorityLabels(AggregatedLabels):
    """``mv``: the per-sample majority vote of the label sets, ties broken by a seeded hash."""

    options: TieBreakOptions

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: TieBreakOptions,
                 label_set_names: list[str]):
        super().__init__(n_label_sets, n_classes, multilabel, options, label_set_names)
        self.aggregator = MajorityVote(multilabel, options.seed)
