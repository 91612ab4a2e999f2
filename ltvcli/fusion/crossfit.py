"""The cross-fitted vote (``--vote crossfit``): Dawid-Skene and the image's *out-of-fold* evidence, EM inside training.

Why: a vote that lets the image speak must not hear the labels back. The
classifier memorises its noisy training labels, so its own prediction on a
training image mostly repeats them (on LabelMe, using it as evidence gave
0.845 label accuracy; cross-fitted evidence 0.870). Here the image's evidence
for row i comes from a head that never trained on row i.

State (all in the checkpoint):

* Dawid-Skene confusion matrices π[g, m] of every label set (``fit_labels``,
  then re-estimated by an M-step at every epoch end);
* H linear *cross-fit heads* on a detached representation of the image: the
  model's input as given where it is a feature vector (``ltv train --input
  features``), else the classifier's feature F (the GAP feature of a CNN).
  Each training row falls in one of H folds by a keyed hash of (seed, row);
  head h trains on every row outside fold h;
* the table q of refined labels of the training rows (Dawid-Skene's
  posterior before the first epoch end).

Per step the classifier trains on q (masked BCE, soft targets) and every head
on q over its rows, with L2 ``head_decay``; the heads' logits are scaled by
``head_lr_scale``, so under the one Adam learning rate they learn that many
times faster than the classifier (Adam's step is scale-free).

Refined label (:meth:`CrossFitVote.refine`, the refinement pass and so the
E-step) of row i in fold f(i)::

    log q_i(k) = log p_{h = f(i)}(k | x_i) + Σ_m log π_m[k, y_im] + const

The head's prediction carries the class prior, so there is no separate prior.
At every complete epoch's end the training loop calls
:meth:`~CrossFitVote.before_refinement` (M-step: π from q), runs the pass, and
hands its labels to :meth:`~CrossFitVote.after_refinement` (q for the next
epoch). The labels the pass reports are what ``ltv export-labels`` writes
from the same checkpoint. docs/methods.md has the measurements behind each
choice.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ltvcli.fusion.aggregators import DawidSkene, ds_maximise, keyed_uniform
from ltvcli.fusion.base import (
    Batch,
    FusionMethod,
    StepResult,
    from_groups,
    frozen_forward,
    group_shape,
    hard_labels,
    masked_bce,
    mean_count,
    to_groups,
    with_missing,
)
from ltvcli.fusion.registry import CrossFitOptions
from ltvcli.fusion.vote import posterior_weights


class CrossFitVote(FusionMethod):
    """The cross-fitted vote: registry entry ``("ltv", "crossfit")``, options :class:`CrossFitOptions`."""

    options: CrossFitOptions
    refines_each_epoch = True

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: CrossFitOptions,
                 label_set_names: list[str]):
        super().__init__(n_label_sets, n_classes, multilabel, options, label_set_names)
        n_groups, n_states = group_shape(n_classes, multilabel)
        # H heads of C logits each, as one linear map; its input size is known at the first batch, hence lazy
        self.heads = nn.LazyLinear(options.folds * n_classes)
        self.register_buffer("log_confusion", torch.zeros(n_groups, n_label_sets, n_states, n_states))
        self.register_buffer("table", torch.zeros(0, n_classes))  # q of the training rows, in the order of `rows`
        # the training split as fit_labels saw it (sorted rows); rebuilt from the dataset, so not saved
        self.register_buffer("rows", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("targets", torch.zeros(0, n_label_sets, n_classes), persistent=False)
        self.register_buffer("mask", torch.zeros(0, n_label_sets, n_classes, dtype=torch.bool), persistent=False)

    # ------------------------------------------------------------------ before training
    def fit_labels(self, targets: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Dawid-Skene on the training labels: the confusions π and the first table q (its posterior)."""
        rows = np.arange(len(targets)) if rows is None else np.asarray(rows)
        order = np.argsort(rows, kind="stable")
        targets, mask = torch.as_tensor(targets[order]).float(), torch.as_tensor(mask[order]).bool()
        fitted = DawidSkene(self.multilabel).fit(targets, mask)
        self.log_confusion = fitted.confusion_.log().float()
        self.table = fitted.predict_proba(targets, mask)[0].float()
        self.rows = torch.as_tensor(rows[order], dtype=torch.long)
        self.targets, self.mask = targets, mask

    # ------------------------------------------------------------------ per batch
    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """The classifier and the heads trained on the table's q for this batch's rows."""
        logits, _, features = model(batch.images, text=batch.text, return_parts=True)
        target = self.table[self.positions(batch.index)]
        observed, valid = to_groups(batch.targets.float(), batch.mask, self.multilabel)
        labelled = valid.any(dim=1)  # [B, G]
        entries = self._per_class(labelled)
        loss = masked_bce(logits, target, entries, mean_count(entries))
        heads = self.head_logits(self.representation(batch, features))
        loss = loss + self.head_loss(heads, target, batch.index, labelled)
        return StepResult(loss=loss, logits=logits.detach(), refined=with_missing(target, entries),
                          binarised=with_missing(hard_labels(target, self.multilabel), entries),
                          weights=self._weights(self.states(target), observed, valid))

    def refine(self, model: nn.Module, batch: Batch) -> StepResult:
        """The E-step: each row's posterior from its out-of-fold head and the label sets' confusions."""
        with torch.no_grad():
            logits, _, features = frozen_forward(model, batch.images, batch.text)
            heads = self.head_logits(self.representation(batch, features))
            own = heads[torch.arange(len(heads), device=heads.device), self.fold(batch.index)]
            observed, valid = to_groups(batch.targets.float(), batch.mask, self.multilabel)
            evidence = torch.einsum("bmgj,gmkj->bgk", observed, self.log_confusion)
            posterior = torch.softmax(self.state_log_probs(own) + evidence, dim=-1)  # [B, G, K]
        entries = self._per_class(valid.any(dim=1))
        refined = from_groups(posterior, self.multilabel)
        return StepResult(loss=torch.zeros((), device=logits.device), logits=logits.detach(),
                          refined=with_missing(refined, entries),
                          binarised=with_missing(hard_labels(refined, self.multilabel), entries),
                          weights=self._weights(posterior, observed, valid))

    # ------------------------------------------------------------------ at the end of each epoch
    def before_refinement(self) -> None:
        """M-step: every label set's confusion matrices from the table q (Dawid-Skene's M-step)."""
        observed, valid = to_groups(self.targets.double(), self.mask, self.multilabel)
        confusion, _ = ds_maximise(self.states(self.table.double()), observed, valid.any(dim=1))
        self.log_confusion.copy_(confusion.log())

    def after_refinement(self, rows: torch.Tensor, refined: torch.Tensor) -> None:
        """The pass's labels become q, the targets of the next epoch (rows without labels keep 0: never used)."""
        self.table[self.positions(rows)] = torch.nan_to_num(refined.to(self.table), nan=0.0)

    # ------------------------------------------------------------------ the heads
    @staticmethod
    def representation(batch: Batch, features: torch.Tensor) -> torch.Tensor:
        """What the heads read, [B, D], detached: the model's input as given where it is a feature vector (not the
        classifier's standardised copy: measured better), else the classifier's feature F."""
        return (batch.images if batch.images.ndim == 2 else features).detach().float()

    def head_logits(self, representation: torch.Tensor) -> torch.Tensor:
        """Every head's logits [B, H, C] on the image's representation [B, D]."""
        if is_lazy(self.heads.weight):
            self.heads.initialize_parameters(representation)
            with torch.no_grad():  # heads start uniform: no evidence until they have learnt some
                self.heads.weight.zero_()
                self.heads.bias.zero_()
        logits = self.options.head_lr_scale * self.heads(representation).float()
        return logits.view(len(logits), self.options.folds, self.n_classes)

    def head_loss(self, heads: torch.Tensor, target: torch.Tensor, rows: torch.Tensor,
                  labelled: torch.Tensor) -> torch.Tensor:
        """Σ_h mean over the rows outside fold h of CE(head h, q), + head_decay/2 · ||W||² of the scaled heads."""
        learns = self.fold(rows)[:, None] != torch.arange(self.options.folds, device=rows.device)  # [B, H]
        nll = -(self.states(target)[:, None] * self.state_log_probs(heads)).sum(dim=-1)  # [B, H, G]
        weight = learns[..., None] & labelled[:, None]
        per_head = (nll * weight).sum(dim=(0, 2)) / mean_count(weight, dims=(0, 2))
        decay = 0.5 * self.options.head_decay * (self.options.head_lr_scale * self.heads.weight).pow(2).sum()
        return per_head.sum() + decay

    def fold(self, rows: torch.Tensor) -> torch.Tensor:
        """The fold of each dataset row: a keyed hash of (seed, row), so it never depends on batches or ranks."""
        draw = keyed_uniform(self.options.seed, rows)
        return (draw * self.options.folds).long().clamp_max(self.options.folds - 1)

    # ------------------------------------------------------------------ shapes
    def positions(self, rows: torch.Tensor) -> torch.Tensor:
        """Where dataset ``rows`` sit in the table; every one must be a training row."""
        positions = torch.searchsorted(self.rows, rows).clamp_max(max(len(self.rows) - 1, 0))
        if len(self.rows) == 0 or not bool((self.rows[positions] == rows).all()):
            raise RuntimeError("the cross-fitted vote trains on the rows fit_labels saw (the training split) only")
        return positions

    def states(self, labels: torch.Tensor) -> torch.Tensor:
        """Per-class labels [N, C] as state probabilities [N, G, K]."""
        return torch.stack((1 - labels, labels), dim=-1) if self.multilabel else labels[:, None]

    def state_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the states from logits [..., C]: [..., C, 2] (multi-label) or [..., 1, C]."""
        if self.multilabel:
            return torch.stack((nn.functional.logsigmoid(-logits), nn.functional.logsigmoid(logits)), dim=-1)
        return torch.log_softmax(logits, dim=-1).unsqueeze(-2)

    def _per_class(self, labelled: torch.Tensor) -> torch.Tensor:
        """A [B, G] flag as [B, C]."""
        return labelled if self.multilabel else labelled.expand(-1, self.n_classes)

    def _weights(self, posterior: torch.Tensor, observed: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return posterior_weights(posterior.detach().float(), observed, valid, self.multilabel, self.n_classes)
