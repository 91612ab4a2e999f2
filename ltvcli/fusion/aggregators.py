"""Label-only fusion: soft mean, majority vote, Dawid-Skene, and the baselines that train on them.

The aggregators are plain functions of the label sets (no images, no model):
``targets``/``mask`` are [N, M, C] (one-hot for multi-class, as
``Dataset.targets()`` returns them; numpy arrays or tensors) and each returns
``(labels, valid)``, both [N, C]: the fused label (float) and whether any
label set labelled that (sample, class). A notebook user calls them directly;
the ``single`` and ``mv`` methods below train a model on their output.

Every aggregator is computed per sample from that sample's labels, except
Dawid-Skene, whose annotator confusion matrices are fitted once on the
training split (``fit_labels``) and then give the posterior of any sample.
So the methods compute a batch's labels from the batch itself, on the
device, for the training split and for export of any split alike.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ltvcli.fusion.base import (
    Batch,
    PredictionMethod,
    StepResult,
    from_groups,
    group_shape,
    hard_labels,
    masked_bce,
    mean_count,
    to_groups,
    with_missing,
)

AGGREGATOR_NAMES = ("soft_mean", "dawid_skene", "majority")

#: Pseudo-count added to every confusion-matrix cell in Dawid-Skene's M-step,
#: so that a pair of states never seen together keeps a finite log-likelihood.
_DS_PSEUDO_COUNT = 0.01
_HASH_MASK = 0xFFFFFFFF


def soft_mean(targets, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of the available labels per sample and class (a vote share in [0, 1])."""
    targets, mask = _tensors(targets, mask)
    votes = (targets * mask).sum(dim=1)
    count = mask.sum(dim=1)
    valid = count > 0
    return votes / count.clamp_min(1), valid


def majority_vote(targets, mask, seed: int = 0, *, multilabel: bool, rows=None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The most frequent label per sample and class (multi-class: the most frequent class id), 0/1.

    A tie is broken at random among the tied values (the paper's "if the
    majority is not achieved, we randomly select one from the available
    sets"). The draw is a fixed function of (``seed``, row, class), with
    ``rows`` the sample ids (default 0..N-1): the same image gets the same
    vote every epoch, after a resume and at export, whether the vote is taken
    for a whole split or batch by batch.
    """
    targets, mask = _tensors(targets, mask)
    observed, valid = to_groups(targets, mask, multilabel)
    votes = observed.sum(dim=1)  # [N, G, K]
    rows = torch.arange(len(targets)) if rows is None else torch.as_tensor(rows)
    rows = rows.to(targets.device)
    n_groups, n_states = votes.shape[1:]
    keys = (rows.long()[:, None, None] * n_groups + torch.arange(n_groups, device=votes.device)[:, None]) * n_states
    keys = keys + torch.arange(n_states, device=votes.device)
    tied_best = votes == votes.amax(dim=-1, keepdim=True)
    winner = (tied_best * (1 + _keyed_uniform(seed, keys))).argmax(dim=-1)
    labels = from_groups(nn.functional.one_hot(winner, n_states).to(targets.dtype), multilabel)
    return labels, valid.any(dim=1).expand(-1, targets.shape[-1])


def fit_dawid_skene(targets, mask, multilabel: bool, n_iter: int = 50, tol: float = 1e-6,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit Dawid-Skene by EM: per-annotator confusion matrices [G, M, K, K] and the state prior [G, K].

    Multi-label is C independent binary problems (a 2x2 matrix per class and
    label set), multi-class one C x C problem. EM starts from the soft mean
    (the usual initialisation) and stops after ``n_iter`` rounds or when no
    posterior moves by more than ``tol``. Computed in float64.
    """
    targets, mask = _tensors(targets, mask)
    observed, valid = to_groups(targets.double(), mask, multilabel)
    labelled = valid.any(dim=1)  # [N, G]
    shares = observed.sum(dim=1)
    soft = shares / shares.sum(dim=-1, keepdim=True).clamp_min(1)
    posterior = torch.where(labelled[..., None], soft, 1 / shares.shape[-1])
    for _ in range(n_iter):
        confusion, prior = _ds_maximise(posterior, observed, labelled)
        updated = _ds_posterior(confusion, prior, observed)
        converged = (updated - posterior).abs().max() <= tol
        posterior = updated
        if converged:
            break
    return _ds_maximise(posterior, observed, labelled)


def dawid_skene_labels(confusion: torch.Tensor, prior: torch.Tensor, targets, mask, multilabel: bool,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior probability of each class under fitted Dawid-Skene parameters, per sample ([N, C])."""
    targets, mask = _tensors(targets, mask)
    observed, valid = to_groups(targets.to(confusion.dtype), mask, multilabel)
    posterior = _ds_posterior(confusion, prior, observed)
    return from_groups(posterior, multilabel).to(targets.dtype), valid.any(dim=1).expand(-1, targets.shape[-1])


def dawid_skene(targets, mask, multilabel: bool, n_iter: int = 50, tol: float = 1e-6,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dawid-Skene soft labels: fit by EM, then the posterior of every sample ([N, C])."""
    confusion, prior = fit_dawid_skene(targets, mask, multilabel, n_iter, tol)
    return dawid_skene_labels(confusion, prior, targets, mask, multilabel)


def _ds_maximise(posterior: torch.Tensor, observed: torch.Tensor, labelled: torch.Tensor,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """M-step: confusion[g, m, k, j] ~ sum_n P(true k) * [annotator m said j]; prior = mean posterior."""
    counts = torch.einsum("ngk,nmgj->gmkj", posterior, observed) + _DS_PSEUDO_COUNT
    confusion = counts / counts.sum(dim=-1, keepdim=True)
    weight = labelled[..., None].to(posterior.dtype)
    prior = (posterior * weight).sum(0) + _DS_PSEUDO_COUNT
    return confusion, prior / prior.sum(dim=-1, keepdim=True)


def _ds_posterior(confusion: torch.Tensor, prior: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """E-step: P(true state k | labels) per sample and group, [N, G, K]; unlabelled samples get the prior."""
    log_joint = prior.log() + torch.einsum("nmgj,gmkj->ngk", observed, confusion.log())
    return torch.softmax(log_joint, dim=-1)


def _keyed_uniform(seed: int, keys: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in [0, 1), each a fixed function of (``seed``, key): a counter-based draw.

    An integer hash (two rounds of the 32-bit multiply-xorshift mix) instead
    of a stateful generator, so that the draw for a sample does not depend
    on which other samples were drawn before it. Arithmetic stays below 2**63.
    """
    def mix(x: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            x = (((x >> 16) ^ x) * 0x45D9F3B) & _HASH_MASK
        return (x >> 16) ^ x

    keys = mix(keys.long() & _HASH_MASK) ^ (int(seed) & _HASH_MASK)
    return mix(keys).double() / 2.0**32


def _tensors(targets, mask) -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.as_tensor(targets)
    return (targets if targets.is_floating_point() else targets.float()), torch.as_tensor(mask).bool()



class SingleLabelSet(PredictionMethod):
    """Train on one label set, or on the labels of one aggregator (the paper's R50 baselines).

    ``source`` is a label set's position or an aggregator name. Missing
    labels are masked out of the loss.
    """

    name: ClassVar[str] = "single"

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, *, source: int | str, seed: int = 0):
        super().__init__(n_label_sets, n_classes, multilabel)
        if isinstance(source, str) and source not in AGGREGATOR_NAMES:
            raise ValueError(f"unknown aggregator {source!r}")
        self.source = source
        self.seed = seed
        if source == "dawid_skene":  # fitted once, kept in the state dict for resume and export
            n_groups, n_states = group_shape(n_classes, multilabel)
            self.register_buffer("ds_confusion", torch.zeros(n_groups, n_label_sets, n_states, n_states,
                                                             dtype=torch.float64))
            self.register_buffer("ds_prior", torch.zeros(n_groups, n_states, dtype=torch.float64))

    def fit_labels(self, targets: np.ndarray, mask: np.ndarray) -> None:
        """Fit Dawid-Skene's confusion matrices on the training split's labels (other sources need nothing)."""
        if self.source == "dawid_skene":
            confusion, prior = fit_dawid_skene(targets, mask, self.multilabel)
            self.ds_confusion.copy_(confusion)
            self.ds_prior.copy_(prior)

    def labels(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """This batch's training labels and their validity, [B, C]."""
        if isinstance(self.source, int):
            return batch.targets[:, self.source], batch.mask[:, self.source].bool()
        if self.source == "soft_mean":
            return soft_mean(batch.targets, batch.mask)
        if self.source == "majority":
            return majority_vote(batch.targets, batch.mask, self.seed, multilabel=self.multilabel, rows=batch.index)
        if not self.ds_prior.any():
            raise RuntimeError("fit_labels must run before training on dawid_skene labels")
        return dawid_skene_labels(self.ds_confusion, self.ds_prior, batch.targets, batch.mask, self.multilabel)

    def result(self, logits: torch.Tensor, batch: Batch) -> StepResult:
        labels, valid = self.labels(batch)
        loss = masked_bce(logits, labels, valid, mean_count(valid))
        return StepResult(loss=loss, logits=logits.detach(), refined=with_missing(labels, valid),
                          binarised=with_missing(hard_labels(labels, self.multilabel), valid))


class MajorityVote(SingleLabelSet):
    """Train on the per-sample majority vote of the label sets (the paper's R50_MV)."""

    name: ClassVar[str] = "mv"
    min_label_sets: ClassVar[int] = 2

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, *, seed: int = 0):
        super().__init__(n_label_sets, n_classes, multilabel, source="majority", seed=seed)
