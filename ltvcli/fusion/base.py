"""The common interface of fusion methods (one class per method, crowd-kit style).

A fusion method decides what the model is trained on when each image has M
label sets. The training loop (``ltvcli.train``) knows nothing about any
particular method: per batch it calls :meth:`FusionMethod.step`, backpropagates
the returned loss into the model *and* the method's own parameters (the vote's
attention, CM's confusion matrices), and records the returned diagnostics.

Label-only statistics (Dawid-Skene's confusion matrices, the reliability
vote's prior) are fitted on the whole training split once, in
:meth:`FusionMethod.fit_labels`, before training.

**The refined labels** of a run are defined by one procedure, the *refinement
pass*: :meth:`FusionMethod.refine` over the split in fixed, ordered batches of
the run's batch size, under :func:`batch_statistics` (BatchNorm normalises
with the batch's own statistics, as in the training step, and updates
nothing; dropout is off). Training runs it at every epoch end where it can be
measured or the method needs it, and reports its accuracy; ``ltv
export-labels`` runs it again on the saved checkpoint, so the labels a user
exports are the labels training measured (``docs/methods.md``, "Refined
labels").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ltvcli.options import Options
from ltvcli.runtime.distributed import all_reduce_mean, unwrap


@dataclass
class Batch:
    """One training batch on the device. ``targets``/``mask`` are [B, M, C] (one-hot for multi-class).

    ``images`` is what the model reads: images [B, C, S, S], or feature
    vectors [B, D] for a head on features (:mod:`ltvcli.heads`). ``text`` holds the report embeddings [B, D] when the model reads text;
    methods hand it to every model call (``model(batch.images, text=batch.text)``).
    """

    images: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor  # dataset row of each sample, for per-row precomputed labels
    text: torch.Tensor | None = None


@dataclass
class StepResult:
    """What a method returns for a batch.

    ``loss`` is backpropagated by the loop; the other tensors are detached
    diagnostics: the refined soft label ȳ [B, C], its binarisation ỹ [B, C],
    the per-label-set vote weights [B, M] or [B, M, C], and the prediction
    logits of the current model [B, C]. ``refined``/``binarised`` are NaN where
    no label set labels that (sample, class): there is no label to refine.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    refined: torch.Tensor | None = None
    binarised: torch.Tensor | None = None
    weights: torch.Tensor | None = None


class FusionMethod(nn.Module):
    """Base class: subclasses implement :meth:`step` and are registered in :mod:`ltvcli.fusion.registry`.

    A method is built from the dataset's shape, its typed ``options`` (the
    dataclass its registry entry declares) and the label set names; it reads
    every hyper-parameter from ``self.options``, so a new one needs no new
    constructor argument.
    """

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: Options,
                 label_set_names: list[str]):
        super().__init__()
        self.n_label_sets = n_label_sets
        self.n_classes = n_classes
        self.multilabel = multilabel
        self.options = options
        self.label_set_names = label_set_names

    #: Whether the method needs the refinement pass at every epoch end (an EM that re-estimates its labels there),
    #: even where the training split has no ground truth to measure the labels against.
    refines_each_epoch: bool = False

    def fit_labels(self, targets: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None) -> None:
        """See every training label once before training ([N, M, C] arrays of the dataset ``rows``, default
        0..N-1). Default: nothing to fit."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates: all but a frozen copy of the network (see :meth:`attach`)."""
        return [parameter for parameter in self.parameters() if parameter.requires_grad]

    def attach(self, model: nn.Module) -> None:
        """Meet the classifier as built, before any training step or checkpoint load. Default: nothing.

        A method that keeps something of the untrained network (the cross-fitted
        vote's frozen copy) takes it here; its checkpoint state then restores
        what it took, so a resume or an export gets the original back.
        """

    def before_refinement(self) -> None:
        """At the end of a complete epoch, before the refinement pass: update what the pass reads. Default: nothing."""

    def after_refinement(self, rows: torch.Tensor, refined: torch.Tensor) -> None:
        """At the end of a complete epoch: the pass's refined labels [N, C] of the training ``rows``.

        Default: nothing."""

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """Compute the training loss of ``model`` on ``batch`` (and the refined labels, where defined)."""
        raise NotImplementedError

    def refine(self, model: nn.Module, batch: Batch) -> StepResult:
        """The refined labels and vote weights for export; by default the training step's diagnostics."""
        return self.step(model, batch)


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               count: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy averaged over the valid (unmasked) entries; 0 when none is valid.

    BCE on one-hot vectors is also the multi-class loss, as in the paper.
    ``count`` replaces the number of valid entries as the divisor; pass
    :func:`mean_count` so that a batch split across ranks gives the same
    gradient as the whole batch.
    """
    mask = mask.to(logits.dtype)
    losses = nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return (losses * mask).sum() / (mask.sum().clamp_min(1.0) if count is None else count)


def mean_count(mask: torch.Tensor, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """The number of valid entries of ``mask`` (summed over ``dims``, all by default), averaged over ranks.

    Dividing a rank's *sum* of losses by this, and letting DDP average the
    gradients, gives sum-over-all-ranks / count-over-all-ranks: the exact
    full-batch mean even when ranks hold different numbers of valid labels.
    It is the plain count in one process; where it is 0 it becomes 1 (the
    sum is 0 then too).
    """
    count = mask.sum(dim=dims).to(torch.float32) if dims is not None else mask.sum().to(torch.float32)
    all_reduce_mean([count])
    return torch.where(count > 0, count, torch.ones_like(count))


def frozen_forward(model: nn.Module, images: torch.Tensor, text: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``model(images, text=text, return_parts=True)`` that leaves every buffer (BN running statistics) as it was.

    :meth:`FusionMethod.refine` is used for export and must not change the
    model; BatchNorm in train mode (as under :func:`batch_statistics`) would
    otherwise update its statistics.
    Gradients still flow to the parameters if the caller enables them.
    """
    net = unwrap(model)
    buffers = {name: buffer.clone() for name, buffer in net.named_buffers()}
    return functional_call(net, buffers, (images,), {"text": text, "return_parts": True})


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """The mode of the refinement pass: BatchNorm normalises with each batch's statistics, dropout is off.

    Learning-to-vote reads features of virtually updated parameters θ̂_m. In
    eval mode BatchNorm would normalise them with the running statistics of
    θ, which do not fit θ̂_m: the vote then sees features unlike any it was
    trained on (on a real crowd, eval-mode export gave labels 2-8 points worse
    than training measured). With batch statistics the vote sees what it saw in
    training, and dropout, a training-time noise, stays off, so the pass is a
    deterministic function of the checkpoint and the batch. The forwards in
    the pass go through :func:`frozen_forward` (or clone the buffers), so no
    running statistic changes. The modules' previous modes are restored.
    """
    net = unwrap(model)
    modes = {module: module.training for module in net.modules()}
    net.eval()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)


class PredictionMethod(FusionMethod):
    """A method whose loss and labels depend only on one plain forward of the model (single, mv, cm).

    Training runs the forward with gradients; export runs it without them and
    without touching BatchNorm statistics. Subclasses implement :meth:`result`.
    """

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        return self.result(model(batch.images, text=batch.text), batch)

    def refine(self, model: nn.Module, batch: Batch) -> StepResult:
        with torch.no_grad():
            return self.result(frozen_forward(model, batch.images, batch.text)[0], batch)

    def result(self, logits: torch.Tensor, batch: Batch) -> StepResult:
        """The StepResult for ``logits``, the model's output on ``batch``."""
        raise NotImplementedError


# Multi-label and multi-class labels in one shape: G groups of K mutually
# exclusive states. Multi-label: one group per class with the states
# (absent, present); multi-class: one group whose states are the classes.
# Methods that model annotators per state (Dawid-Skene, confusion matrices)
# then need a single code path for both tasks.

def group_shape(n_classes: int, multilabel: bool) -> tuple[int, int]:
    """(G, K) for a task: (C, 2) for multi-label, (1, C) for multi-class."""
    return (n_classes, 2) if multilabel else (1, n_classes)


def to_groups(targets: torch.Tensor, mask: torch.Tensor, multilabel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, M, C] targets/mask -> one-hot observations [N, M, G, K] (zero where missing) and validity [N, M, G]."""
    mask = mask.bool()
    if multilabel:
        observed = torch.stack((1 - targets, targets), dim=-1) * mask[..., None]
        return observed, mask
    valid = mask.any(dim=-1, keepdim=True)
    return (targets * mask)[:, :, None, :], valid


def from_groups(values: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """[N, G, K] state probabilities back to per-class [N, C] (a [N, G] flag becomes [N, C] with ``expand``)."""
    return values[..., 1] if multilabel else values[:, 0]


def hard_labels(labels: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Soft [N, C] labels to 0/1: thresholded at 0.5 (multi-label) or one-hot of the arg max (multi-class).

    The binarisation of every method without a vote, and of the refinement phase's training labels.
    """
    if multilabel:
        return (labels >= 0.5).to(labels.dtype)
    return nn.functional.one_hot(labels.argmax(dim=-1), labels.shape[-1]).to(labels.dtype)


def as_refined(labels: torch.Tensor, valid: torch.Tensor, multilabel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """An aggregator's labels as every method without a vote reports them: (refined, binarised), NaN where
    ``valid`` is False; refined is the label itself, binarised its 0/1 form (:func:`hard_labels`)."""
    return with_missing(labels, valid), with_missing(hard_labels(labels, multilabel), valid)


def with_missing(labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Detached ``labels`` with NaN where ``valid`` is False (the StepResult convention)."""
    return labels.detach().float().masked_fill(~valid.bool(), float("nan"))
