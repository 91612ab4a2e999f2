"""Annotator confusion matrices learnt jointly with the classifier (Tanno et al., CVPR 2019): the paper's CM.

The model estimates the clean class probability p(x). Each label set m has
a row-stochastic confusion matrix A_m (row: true state, column: the state
the label set reports), so the label set's predicted distribution is
A_m^T p(x), and the loss is the negative log-likelihood of what each label
set actually says under it. A trace penalty (mean trace of the A_m, weight
``cm_trace``) pushes the matrices to absorb as much disagreement as they
can, which is what lets p(x) converge to the clean labels (Tanno et al.,
section 3).

Multi-class: one C x C matrix per label set over softmax probabilities.
Multi-label: per finding a 2x2 matrix per label set over (1 − p, p) of the
sigmoid output (the (G, K) grouping of :func:`ltvcli.fusion.base.to_groups`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ltvcli.fusion.base import (
    Batch,
    PredictionMethod,
    StepResult,
    from_groups,
    group_shape,
    hard_labels,
    mean_count,
    to_groups,
)
from ltvcli.fusion.registry import CmOptions

#: Initial probability that a label set reports the true state: near identity,
#: so training starts from "every label set is right" and learns the noise.
INITIAL_AGREEMENT = 0.9


class ConfusionMatrices(PredictionMethod):
    """The CM baseline: a confusion matrix per label set (and per finding, multi-label) over the model's output.

    Registry entry ``("cm", None)``; ``options.cm_trace`` weighs the trace term.
    """

    options: CmOptions

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: CmOptions,
                 label_set_names: list[str]):
        super().__init__(n_label_sets, n_classes, multilabel, options, label_set_names)
        n_groups, n_states = group_shape(n_classes, multilabel)
        diagonal = math.log(INITIAL_AGREEMENT * (n_states - 1) / (1 - INITIAL_AGREEMENT))
        logits = torch.eye(n_states).mul(diagonal).expand(n_label_sets, n_groups, n_states, n_states)
        self.confusion_logits = nn.Parameter(logits.clone())

    def confusion(self) -> torch.Tensor:
        """The row-stochastic matrices A [M, G, K, K]: A[m, g, true, reported]."""
        return torch.softmax(self.confusion_logits, dim=-1)

    def clean_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """log p(true state | x) [B, G, K] from the model's logits."""
        logits = logits.float()
        if self.multilabel:
            return torch.stack((nn.functional.logsigmoid(-logits), nn.functional.logsigmoid(logits)), dim=-1)
        return torch.log_softmax(logits, dim=-1)[:, None, :]

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean NLL of every available label under A_m^T p, plus ``cm_trace`` × the mean trace of the A_m."""
        log_confusion = torch.log_softmax(self.confusion_logits, dim=-1)
        log_clean = self.clean_log_probs(logits)
        # log (A_m^T p)_j = logsumexp_k (log p_k + log A_m[k, j]): [B, M, G, K]
        log_reported = torch.logsumexp(log_clean[:, None, :, :, None] + log_confusion[None], dim=-2)
        observed, valid = to_groups(batch.targets, batch.mask, self.multilabel)
        nll = -(observed * log_reported).sum(dim=-1)
        trace = torch.diagonal(log_confusion.exp(), dim1=-2, dim2=-1).sum(dim=-1).mean()
        return (nll * valid).sum() / mean_count(valid) + self.options.cm_trace * trace

    def result(self, logits: torch.Tensor, batch: Batch) -> StepResult:
        clean = from_groups(self.clean_log_probs(logits.detach()).exp(), self.multilabel)
        return StepResult(loss=self.loss(logits, batch), logits=logits.detach(), refined=clean,
                          binarised=hard_labels(clean, self.multilabel))
