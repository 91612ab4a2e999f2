"""The common interface of fusion methods (one class per method, crowd-kit style).

A fusion method decides what the model is trained on when each image has M
label sets. The training loop (``ltvcli.train``) knows nothing about any
particular method: per batch it calls :meth:`FusionMethod.step`, backpropagates
the returned loss into the model *and* the method's own parameters (the vote's
attention, CM's confusion matrices), and records the returned diagnostics.

Label-only aggregators (majority vote, soft mean, Dawid-Skene) see the whole
training split once, in :meth:`FusionMethod.fit_labels`, before training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn


@dataclass
class Batch:
    """One training batch on the device. ``targets``/``mask`` are [B, M, C] (one-hot for multi-class)."""

    images: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor  # dataset row of each sample, for per-row precomputed labels


@dataclass
class StepResult:
    """What a method returns for a batch.

    ``loss`` is backpropagated by the loop; the other tensors are detached
    diagnostics: the refined soft label ȳ [B, C], its binarisation ỹ [B, C],
    the per-label-set vote weights [B, M] or [B, M, C], and the prediction
    logits of the current model [B, C].
    """

    loss: torch.Tensor
    logits: torch.Tensor
    refined: torch.Tensor | None = None
    binarised: torch.Tensor | None = None
    weights: torch.Tensor | None = None


class FusionMethod(nn.Module):
    """Base class: subclasses set ``name`` and implement :meth:`step`."""

    name: ClassVar[str] = ""
    #: The fewest label sets the method is meaningful with (the loop checks it with a clear error).
    min_label_sets: ClassVar[int] = 1

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool):
        super().__init__()
        self.n_label_sets = n_label_sets
        self.n_classes = n_classes
        self.multilabel = multilabel

    def fit_labels(self, targets: np.ndarray, mask: np.ndarray) -> None:
        """See every training label once before training ([N, M, C] arrays). Default: nothing to fit."""

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """Compute the training loss of ``model`` on ``batch`` (and the refined labels, where defined)."""
        raise NotImplementedError

    def refine(self, model: nn.Module, batch: Batch) -> StepResult:
        """The refined labels and vote weights for export; by default the training step's diagnostics."""
        return self.step(model, batch)


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the valid (unmasked) entries; 0 when none is valid.

    BCE on one-hot vectors is also the multi-class loss, as in the paper.
    """
    mask = mask.to(logits.dtype)
    losses = nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)
