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
  features``); on images, ``evidence`` ``initial`` (the default) reads
  :class:`InitialFeatures`, the network as built and frozen, ``trained`` the
  classifier's own feature F. Each training row falls in one of H folds by a
  keyed hash of (seed, row); head h trains on every row outside fold h;
* with the frozen network, one *temperature* T of the heads' out-of-fold
  logits, learnt against q;
* the table q of refined labels of the training rows (Dawid-Skene's
  posterior before the first epoch end).

Why the frozen network on images: cross-fitting promises evidence for row i
that never saw row i's label, and the classifier's feature F breaks that
promise -- the trunk under F trained on every row, row i included, so F
already encodes q_i and the heads read it back. Where Dawid-Skene is wrong on
a whole group of images (PneumoniaMNIST's hard-image annotators), evidence
from F only confirms it (0.690 against Dawid-Skene's 0.688); the frozen
network's features, shaped by no label, move the labels (0.70). Pretrained
weights (``--pretrained``) make it a pretrained embedding; without them it is a
random-convolution feature, weaker on CIFAR-10 than F (docs/methods.md), and
``evidence`` ``trained`` keeps F.

Why the temperature: heads on the frozen network's 1,024 features of a
10-class problem overfit their folds, are over-confident out of fold and
outvote the label sets where they are wrong (CIFAR-10: 0.884, below
Dawid-Skene; 0.927 with T). T is fitted where the heads are honest -- each
row's out-of-fold logits against q -- and divides those logits in the
E-step. It is used with the frozen network only: on features the user
chose (LabelMe's VGG) it cost 0.005-0.013, and on F it settles at 1.

Per step the classifier trains on q (masked BCE, soft targets), every head
on q over its rows, with L2 ``head_decay``, and T (with the frozen network)
on the rows' out-of-fold logits (detached, so only T learns from that
term); the heads' logits and log T are scaled by ``head_lr_scale``, so
under the one Adam learning rate they learn that many times faster than the
classifier (Adam's step is scale-free).

Refined label (:meth:`CrossFitVote.refine`, the refinement pass and so the
E-step) of row i in fold f(i), with z the out-of-fold head's logits::

    log q_i(k) = log softmax(z / T)(k) + Σ_m log π_m[k, y_im] + const

(T = 1 where the heads do not read the frozen network.)

The head's prediction carries the class prior, so there is no separate prior.
At every complete epoch's end the training loop calls
:meth:`~CrossFitVote.before_refinement` (M-step: π from q), runs the pass, and
hands its labels to :meth:`~CrossFitVote.after_refinement` (q for the next
epoch). The labels the pass reports are what ``ltv export-labels`` writes
from the same checkpoint. docs/methods.md has the measurements behind each
choice.
"""

from __future__ import annotations

import copy
import math

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
from ltvcli.models import LtvNet
from ltvcli.runtime.distributed import all_reduce_sum, unwrap

#: The frozen network's last-stage output is average-pooled to the smallest square grid that gives at least
#: this many numbers per image (a 4 x 4 grid of the tiny CNN's 64 channels, the GAP of a ResNet-50's 2,048).
INITIAL_FEATURES = 1024


class InitialFeatures(nn.Module):
    """The image network as built -- before any label shaped it -- frozen, and standardised features from it.

    Features: the last stage's output (``model.last(model.trunk(x))``),
    average-pooled to a g x g grid with g the smallest giving at least
    :data:`INITIAL_FEATURES` numbers, then standardised per dimension by the
    running mean and variance of every training batch seen so far (summed
    over ranks; the statistics are buffers, so a resume continues them). A
    linear head on the raw ReLU outputs learns badly under Adam (their offsets
    dwarf their spread); standardised, as the research prototype fed them, it
    learns (PneumoniaMNIST, seed 0: 0.690 raw, 0.706 standardised).

    The network stays in eval mode, so BatchNorm uses its stored statistics and
    a batch never changes another's features.
    """

    def __init__(self, model: LtvNet):
        super().__init__()
        self.net = copy.deepcopy(unwrap(model)).eval()
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.grid = math.ceil(math.sqrt(INITIAL_FEATURES / self.net.image_dim))
        dim = self.net.image_dim * self.grid ** 2
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("total", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("squares", torch.zeros(dim, dtype=torch.float64))

    def train(self, mode: bool = True) -> InitialFeatures:
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, images: torch.Tensor, update: bool) -> torch.Tensor:
        """Standardised features [B, D] of ``images``; ``update`` (a training step) adds the batch to the
        statistics first."""
        with torch.no_grad():
            out = self.net.last(self.net.trunk(images))
            z = nn.functional.adaptive_avg_pool2d(out, self.grid).flatten(1).double()
            if update:
                sums = all_reduce_sum(torch.cat((z.new_tensor([len(z)]), z.sum(0), z.pow(2).sum(0))))
                self.count += sums[0]
                self.total += sums[1:1 + z.shape[1]]
                self.squares += sums[1 + z.shape[1]:]
            mean = self.total / self.count.clamp_min(1)
            variance = (self.squares / self.count.clamp_min(1) - mean ** 2).clamp_min(0)
            return ((z - mean) * torch.rsqrt(variance + 1e-6)).float()


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
        # T of the frozen network's heads, scaled by head_lr_scale as the heads' logits (no gradient otherwise)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.initial: InitialFeatures | None = None  # the frozen network, on images with evidence "initial"
        self._register_load_state_dict_pre_hook(self._untempered_before_temperature)
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

    @staticmethod
    def _untempered_before_temperature(state: dict, prefix: str, *_) -> None:
        """A checkpoint written before the temperature existed used the heads' logits as they were: T = 1."""
        state.setdefault(prefix + "log_temperature", torch.zeros(()))

    def attach(self, model: nn.Module) -> None:
        """With ``evidence`` initial, keep the image network as built (a network on features has none to keep:
        the heads read the features themselves)."""
        if self.options.evidence == "initial" and isinstance(unwrap(model), LtvNet):
            self.initial = InitialFeatures(model)

    # ------------------------------------------------------------------ per batch
    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """The classifier and the heads trained on the table's q for this batch's rows."""
        logits, _, features = model(batch.images, text=batch.text, return_parts=True)
        target = self.table[self.positions(batch.index)]
        observed, valid = to_groups(batch.targets.float(), batch.mask, self.multilabel)
        labelled = valid.any(dim=1)  # [B, G]
        entries = self._per_class(labelled)
        loss = masked_bce(logits, target, entries, mean_count(entries))
        heads = self.head_logits(self.representation(batch, features, update=True))
        loss = loss + self.head_loss(heads, target, batch.index, labelled)
        if self.initial is not None:
            loss = loss + self.calibration_loss(self.own(heads.detach(), batch.index), target, labelled)
        return StepResult(loss=loss, logits=logits.detach(), refined=with_missing(target, entries),
                          binarised=with_missing(hard_labels(target, self.multilabel), entries),
                          weights=self._weights(self.states(target), observed, valid))

    def refine(self, model: nn.Module, batch: Batch) -> StepResult:
        """The E-step: each row's posterior from its out-of-fold head and the label sets' confusions."""
        with torch.no_grad():
            logits, _, features = frozen_forward(model, batch.images, batch.text)
            heads = self.head_logits(self.representation(batch, features, update=False))
            own = self.calibrated(self.own(heads, batch.index))
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
    def representation(self, batch: Batch, features: torch.Tensor, update: bool) -> torch.Tensor:
        """What the heads read, [B, D], detached: the model's input as given where it is a feature vector (not the
        classifier's standardised copy: measured better on LabelMe), else the frozen network's features
        (``evidence`` initial; ``update`` adds a training batch to their statistics) or the classifier's
        feature F (``trained``)."""
        if batch.images.ndim == 2:
            return batch.images.detach().float()
        if self.initial is not None:
            return self.initial(batch.images, update)
        return features.detach().float()

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

    def own(self, heads: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Each row's out-of-fold logits [B, C]: those of the head of its own fold, the one that never trained on
        it."""
        return heads[torch.arange(len(heads), device=heads.device), self.fold(rows)]

    def calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        """Out-of-fold logits divided by the temperature T where the heads read the frozen network; as they are
        otherwise (T is not learnt there)."""
        if self.initial is None:
            return logits
        return self.tempered(logits)

    def tempered(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` / T."""
        return logits * torch.exp(-self.options.head_lr_scale * self.log_temperature)

    def calibration_loss(self, own: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        """Mean CE(softmax(own / T), q) over the labelled entries: T learns how far the out-of-fold heads are to
        be believed (``own`` is detached, so the heads do not learn from it)."""
        nll = -(self.states(target) * self.state_log_probs(self.tempered(own))).sum(dim=-1)  # [B, G]
        return (nll * labelled).sum() / mean_count(labelled)

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
