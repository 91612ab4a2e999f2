"""Phase 1: co-teaching with Variance-of-Gradients (VoG) selection, per entry (Khanal et al., MICCAI 2024).

Two networks train side by side. In every batch each network ranks the
entries (``ltvcli.refine.targets``) by its own loss and *keeps* the ones it
finds easiest; each network then learns only from the entries its peer kept
(the small-loss exchange of co-teaching). What the first network keeps in
the last epoch is the "probably clean" set; every other labelled entry is a
*suspect*, the pool the expert's budget is spent on.

Small loss alone throws out the rare: an under-represented class has large
losses even where its labels are right. After ``warmup`` epochs a fraction
``mix_ratio`` of the kept entries therefore comes from the lowest VoG instead
of the smallest loss: entries whose gradient has settled are kept even if
their loss is still large.

How the paper's per-sample rules become per-entry rules (all as in the
authors' public code unless said otherwise):

* **loss**: per-entry binary cross-entropy (multi-label; each finding its own
  question) or the softmax cross-entropy of the image (multi-class);
* **ranking**: within a batch, *separately for each finding* among the
  entries that have a label, so a rare finding is not ranked against a
  common one; trusted (expert) entries are always kept and never ranked;
* **forget rate**: per finding, the estimate of
  :func:`~ltvcli.refine.targets.estimate_forget_rate` unless given, ramped
  linearly from 0 over the first ``warmup`` epochs (``linspace(0, rate, warmup)``);
* **kept count**: ``r = floor((1 - rate) * n)`` of the n ranked entries;
  ``floor(r * (1 - mix))`` smallest losses, then ``floor(r * mix)`` lowest VoG
  among the rest (only after ``warmup`` epochs; before that, ``floor(r)`` by loss);
* **VoG** of an entry: after each epoch, the gradient of that entry's loss
  with respect to the final layer's parameters of its own class, i.e. the
  bias and weight row of finding c (multi-label) or of the labelled class
  (multi-class): ``g = (p - y) * [1, F]`` with p the predicted probability,
  y the label and F the GAP feature (computed in eval mode, a choice of
  ours: it leaves the BatchNorm statistics alone). VoG is the population
  standard deviation of g over the last ``vog_epochs`` epochs, averaged over
  its D + 1 dimensions.

Adam at ``lr`` replaces the authors' SGD with cosine decay (the rest of ltv
uses Adam).

On a dataset of image features (``input`` features) the two networks are
heads on the features (:mod:`ltvcli.heads`, ``head`` linear or mlp) instead
of CNNs; F is then the head's feature (the standardised input of a linear
head, the hidden layer of an mlp), for VoG, MC dropout and coreset alike.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ltvcli.backbones import ARCHS, HEADS
from ltvcli.console import log, track
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.heads import build_head
from ltvcli.models import build_model
from ltvcli.options import NON_NEGATIVE, POSITIVE, UNIT, Options, Range, option
from ltvcli.refine.targets import (
    Targets,
    estimate_forget_rate,
    group_count,
    training_targets,
)
from ltvcli.runtime import DEVICES, INPUTS
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.runtime.inputs import Batches, model_inputs, resolve_input
from ltvcli.runtime.loader import epoch_batches, ordered_batches

#: Forward passes with MC dropout on the GAP feature for BALD (per network).
MC_SAMPLES = 10
#: Dropout probability of those passes.
MC_DROPOUT = 0.25
#: Bound on the number of gradient values held at once while computing VoG.
_VOG_CHUNK_VALUES = 16_000_000


#: Batches and VoG need at least two of a kind: BatchNorm cannot normalise one image, a standard deviation
#: needs two epochs.
AT_LEAST_TWO = Range(2, None, False, False, "an integer of at least 2")
FORGET_RATE = Range(0, 1, False, True, "a fraction in [0, 1)")


@dataclass
class CoteachConfig(Options):
    """Options of the selection phase, checked on creation; ``docs/refine.md`` (and ``ltv refine --help``)
    explain each."""

    labels: str = option("majority")
    arch: str = option("resnet18", choices=ARCHS)
    input: str | None = option(None, choices=INPUTS)
    head: str = option("linear", choices=HEADS)
    epochs: int = option(20, range=POSITIVE)
    warmup: int = option(10, range=NON_NEGATIVE)
    vog_epochs: int = option(5, range=AT_LEAST_TWO)
    mix_ratio: float = option(0.2, range=UNIT)
    forget_rate: float | None = option(None, range=FORGET_RATE)
    batch_size: int = option(64, range=AT_LEAST_TWO)
    lr: float = option(1e-3, range=POSITIVE)
    seed: int = option(0)
    device: str = option("auto", choices=DEVICES)
    workers: int = option(2, range=NON_NEGATIVE)

    #: Options that do not change the result (a saved run is reused whatever their value).
    RUNTIME_ONLY: ClassVar[tuple[str, ...]] = ("device", "workers")

    def result_options(self) -> dict:
        """The options that determine the outcome, for deciding whether a saved run can be reused."""
        return {k: v for k, v in self.to_json().items() if k not in self.RUNTIME_ONLY}


# ----------------------------------------------------------------------------- the rules, as functions
def forget_schedule(epoch: int, rate: np.ndarray, warmup: int) -> np.ndarray:
    """Forget rate at 0-based ``epoch``: ``linspace(0, rate, warmup)[epoch]``, then ``rate``."""
    if warmup <= 1 or epoch >= warmup:
        return rate
    return rate * epoch / (warmup - 1)


def entry_losses(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Per-entry loss [B, G]: BCE per finding, or the image's softmax cross-entropy (soft targets allowed)."""
    if multilabel:
        return nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1, keepdim=True)


def gradient_factor(probs: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """a = p - y per entry [N, G]: the final-layer gradient of the entry's loss is ``a * [1, F]``.

    Multi-label: p = sigmoid of finding c's logit. Multi-class: the softmax
    probability and label of the labelled class (the arg max of the target).
    """
    if multilabel:
        return probs - targets
    cls = targets.argmax(dim=1, keepdim=True)
    return probs.gather(1, cls) - targets.gather(1, cls)


def final_layer_gradients(factor: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Per-entry gradients [N, G, D + 1] (bias first, then the weight row) from ``a`` [N, G] and F [N, D]."""
    ones = torch.ones(features.shape[:-1] + (1,), dtype=features.dtype, device=features.device)
    return factor[..., None] * torch.cat([ones, features], dim=-1)[..., None, :]


def variance_of_gradients(factors: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """VoG [N, G] from the last epochs' ``a`` [W, N, G] and F [W, N, D].

    The standard deviation over the W epochs (population, divisor W) of each
    gradient component, averaged over the D + 1 components; computed in
    chunks of images so the [W, N, G, D + 1] gradients never exist at once.
    """
    n, groups, width = factors.shape[1], factors.shape[2], features.shape[2] + 1
    chunk = max(1, _VOG_CHUNK_VALUES // (factors.shape[0] * groups * width))
    out = []
    for start in range(0, n, chunk):
        grads = final_layer_gradients(factors[:, start:start + chunk], features[:, start:start + chunk])
        out.append(grads.std(dim=0, correction=0).mean(dim=-1))
    return torch.cat(out) if out else factors.new_zeros((0, groups))


def _ranks(values: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
    """Position of each entry in ascending order of ``values`` within its column; ineligible entries last."""
    keyed = torch.where(eligible, values.double(), torch.full_like(values, math.inf, dtype=torch.float64))
    order = torch.argsort(keyed, dim=0, stable=True)
    return torch.argsort(order, dim=0, stable=True)


def _floor(x: torch.Tensor) -> torch.Tensor:
    """floor with a tolerance, so (1 - 0.3) * 10 counts as 7, not 6, even from a float32 rate."""
    return torch.floor(x + 1e-6)


def select_entries(loss: torch.Tensor, vog: torch.Tensor | None, valid: torch.Tensor, trusted: torch.Tensor,
                   rate: torch.Tensor, mix: float) -> torch.Tensor:
    """The entries [B, G] one network keeps from a batch (see the module docstring for the counts).

    ``rate`` is the forget rate per column [G]; ``mix`` the share taken by
    lowest VoG (ignored when ``vog`` is None). Trusted entries are kept.
    """
    ranked = valid & ~trusted
    count = ranked.sum(dim=0).double()
    remember = _floor((1 - rate.double()) * count)
    use_vog = vog is not None and mix > 0
    by_loss = _floor(remember * (1 - mix)) if use_vog else remember
    keep = ranked & (_ranks(loss, ranked) < by_loss)
    if use_vog:
        rest = ranked & ~keep
        keep = keep | (rest & (_ranks(vog, rest) < _floor(remember * mix)))
    return keep | (trusted & valid)


# ----------------------------------------------------------------------------- the outcome
@dataclass
class ModelOutputs:
    """What the pair of networks says about a set of images (row order of ``rows``)."""

    probs: np.ndarray           # [n, C] from the mean of the two networks' logits
    mc_probs: np.ndarray        # [2 * MC_SAMPLES, n, C] with dropout on the GAP feature (for BALD)
    features: np.ndarray        # [n, D] GAP feature of network 1 (for coreset)
    loss: np.ndarray            # [n, G] network 1's entry loss against the training label
    vog: np.ndarray             # [n, G] network 1's VoG; NaN before vog_epochs epochs


@dataclass
class Selection:
    """The end of phase 1 on the training split: who was kept, and what the networks say."""

    rows: np.ndarray            # dataset rows of the training split
    targets: np.ndarray         # [n, C] training labels
    valid: np.ndarray           # [n, G] entries with a label
    trusted: np.ndarray         # [n, G] entries answered by the expert
    kept: np.ndarray            # [n, G] kept as probably clean by network 1 in the last epoch
    forget_rate: np.ndarray     # [G]
    outputs: ModelOutputs

    @property
    def suspects(self) -> np.ndarray:
        """Labelled, not trusted, not kept: the entries co-teaching believes may be wrong."""
        return self.valid & ~self.trusted & ~self.kept


# ----------------------------------------------------------------------------- the trainer
class CoTeaching:
    """Two networks, their optimisers and the per-entry state of one selection run on a dataset."""

    def __init__(self, dataset: Dataset, config: CoteachConfig):
        self.dataset, self.config = dataset, config
        self.multilabel = dataset.is_multilabel
        self.device = resolve_device(config.device)
        self.rows = dataset.indices("train")
        if len(self.rows) < 2:
            raise LtvError(f"{dataset.path}: the train split has {len(self.rows)} image(s); refining needs at least 2")
        self.position = np.full(len(dataset), -1, dtype=np.int64)
        self.position[self.rows] = np.arange(len(self.rows))
        self.set_targets(training_targets(dataset, config.labels, config.seed))  # checks `labels` before any work
        self.inputs = model_inputs(dataset, resolve_input(config.input, dataset), self.device)
        torch.manual_seed(config.seed)
        self.networks = [self._network() for _ in range(2)]
        self.forget_rate = self._forget_rate()
        n, groups = len(self.rows), group_count(len(dataset.classes), self.multilabel)
        self.kept = np.ones((n, groups), dtype=bool)
        self.history: list[deque] = [deque(maxlen=config.vog_epochs) for _ in self.networks]
        self.optimizers = [torch.optim.Adam(net.parameters(), lr=config.lr) for net in self.networks]
        self._last: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None  # the latest pass over the split

    def _network(self) -> nn.Module:
        """A CNN on the images (``arch``), or a head on the features (``head``) standardised on the train split."""
        n_classes = len(self.dataset.classes)
        if self.inputs.kind == "features":
            net = build_head(self.config.head, self.inputs.dim, n_classes)
            net.standardise_with(self.dataset.features, self.rows)
        else:
            net = build_model(self.config.arch, n_classes, in_channels=self.dataset.channels,
                              image_size=self.dataset.image_size)
        return net.to(self.device)

    # ------------------------------------------------------------------ labels
    def set_targets(self, targets: Targets) -> None:
        """Train on new labels from now on (after the expert answered some entries)."""
        self.targets = targets
        self._y = torch.from_numpy(targets.values).to(self.device)
        self._valid = torch.from_numpy(targets.valid).to(self.device)
        self._trusted = torch.from_numpy(targets.trusted).to(self.device)

    def _forget_rate(self) -> np.ndarray:
        groups = group_count(len(self.dataset.classes), self.multilabel)
        if self.config.forget_rate is not None:
            return np.full(groups, self.config.forget_rate)
        rate = estimate_forget_rate(self.dataset.labels[self.rows], self.dataset.label_set_names,
                                    self.targets.hard()[self.rows], multilabel=self.multilabel,
                                    n_classes=len(self.dataset.classes))
        log(f"forget rate estimated from label-set disagreement: {_describe(rate)}")
        return rate

    # ------------------------------------------------------------------ phase 1
    def fit(self) -> Selection:
        """Train both networks for ``epochs`` epochs with the small-loss + VoG exchange; return the selection."""
        cfg = self.config
        observe_from = min(cfg.warmup, cfg.epochs) - cfg.vog_epochs
        vogs: list[torch.Tensor] | None = None
        with track(cfg.epochs, "co-teaching") as advance:
            for epoch in range(cfg.epochs):
                mix = cfg.mix_ratio if epoch >= cfg.warmup and vogs is not None else 0.0
                loss = self._train_epoch(epoch, mix, vogs)
                if epoch >= observe_from or epoch == cfg.epochs - 1:
                    vogs = self._observe()
                log(f"epoch {epoch + 1}: loss {loss:.4f}, kept {self.kept[self.targets.valid[self.rows]].mean():.1%} "
                    f"of the labelled entries{' (VoG mix on)' if mix else ''}", level=2)
                advance(1)
        return self.selection()

    def _train_epoch(self, epoch: int, mix: float, vogs: list[torch.Tensor] | None) -> float:
        cfg = self.config
        rate = torch.from_numpy(forget_schedule(epoch, self.forget_rate, cfg.warmup)).to(self.device)
        for net in self.networks:
            net.train()
        total, batches = 0.0, epoch_batches(self.rows, cfg.batch_size, cfg.seed, epoch)
        for rows, index, x in self._batches(batches):
            pos = torch.from_numpy(self.position[rows]).to(self.device)
            y, valid, trusted = self._y[index], self._valid[index], self._trusted[index]
            with autocast(self.device):
                logits = [net(x).float() for net in self.networks]
            losses = [entry_losses(z, y, self.multilabel) for z in logits]
            keeps = [select_entries(l.detach(), None if vogs is None else vogs[k][pos], valid, trusted, rate, mix)
                     for k, l in enumerate(losses)]
            for k, optimizer in enumerate(self.optimizers):  # each network learns from its peer's choice
                peer = keeps[1 - k].float()
                step_loss = (losses[k] * peer).sum() / peer.sum().clamp_min(1.0)
                optimizer.zero_grad(set_to_none=True)
                step_loss.backward()
                optimizer.step()
                total += step_loss.item() / 2
            self.kept[self.position[rows]] = keeps[0].cpu().numpy()
        return total / max(len(batches), 1)

    def _batches(self, batches: list[np.ndarray]) -> Batches:
        """The networks' input for each batch of rows, on the device: images read ahead, or gathered features."""
        return self.inputs.batches(batches, workers=self.config.workers)

    # ------------------------------------------------------------------ observing
    @torch.no_grad()
    def _forward_all(self, rows: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features F (a CNN's GAP) and logits of both networks (eval mode) for ``rows``, in order."""
        for net in self.networks:
            net.eval()
        features: list[list[torch.Tensor]] = [[], []]
        logits: list[list[torch.Tensor]] = [[], []]
        for _, _, x in self._batches(ordered_batches(rows, max(self.config.batch_size, 256))):
            for k, net in enumerate(self.networks):
                with autocast(self.device):
                    f = net.features(x)
                    z = net.head(f)
                features[k].append(f.float())
                logits[k].append(z.float())
        return [torch.cat(f) for f in features], [torch.cat(z) for z in logits]

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def _observe(self) -> list[torch.Tensor] | None:
        """Record this epoch's final-layer gradients; return each network's VoG once enough epochs are in."""
        features, logits = self._forward_all(self.rows)
        y = self._y[torch.from_numpy(self.rows).to(self.device)]
        for k in range(2):
            self.history[k].append((gradient_factor(self._probs(logits[k]), y, self.multilabel), features[k]))
        self._last = (features, logits)
        if len(self.history[0]) < self.config.vog_epochs:
            return None
        return [variance_of_gradients(torch.stack([a for a, _ in h]), torch.stack([f for _, f in h]))
                for h in self.history]

    def outputs(self) -> ModelOutputs:
        """Probabilities, MC-dropout samples, features, losses and VoG on the training split."""
        if self._last is None:
            self._last = self._forward_all(self.rows)
        features, logits = self._last
        y = self._y[torch.from_numpy(self.rows).to(self.device)]
        loss = entry_losses(logits[0], y, self.multilabel)
        return ModelOutputs(probs=_np(self._probs((logits[0] + logits[1]) / 2)), mc_probs=_np(self._mc_probs(features)),
                            features=_np(features[0]), loss=_np(loss),
                            vog=_np(self._current_vog(len(self.rows), loss.shape[1])))

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """The pair's probabilities [len(rows), C] (mean of the two networks' logits), e.g. on the test split."""
        _, logits = self._forward_all(rows)
        return _np(self._probs((logits[0] + logits[1]) / 2))

    def _current_vog(self, n: int, groups: int) -> torch.Tensor:
        history = self.history[0]
        if len(history) < self.config.vog_epochs:
            return torch.full((n, groups), math.nan)
        return variance_of_gradients(torch.stack([a for a, _ in history]), torch.stack([f for _, f in history]))

    @torch.no_grad()
    def _mc_probs(self, features: list[torch.Tensor]) -> torch.Tensor:
        """MC dropout on the GAP feature, through each network's head: [2 * MC_SAMPLES, n, C]."""
        generator = torch.Generator(device=features[0].device).manual_seed(self.config.seed)
        samples = []
        for net, f in zip(self.networks, features):
            for _ in range(MC_SAMPLES):
                keep = (torch.rand(f.shape, generator=generator, device=f.device) >= MC_DROPOUT).to(f.dtype)
                samples.append(self._probs(net.head(f * keep / (1 - MC_DROPOUT)).float()))
        return torch.stack(samples)

    def selection(self) -> Selection:
        """The current state as a :class:`Selection` (after :meth:`fit`)."""
        rows = self.rows
        return Selection(rows=rows, targets=self.targets.values[rows], valid=self.targets.valid[rows],
                         trusted=self.targets.trusted[rows], kept=self.kept.copy(), forget_rate=self.forget_rate,
                         outputs=self.outputs())

    # ------------------------------------------------------------------ after phase 1
    def finetune(self, use: np.ndarray, epochs: int, seed: int) -> None:
        """Train both networks for ``epochs`` on the entries ``use`` [n, G] only (fresh Adam, no selection).

        The paper's recalibration between relabelling rounds: the probably-clean
        entries plus the expert's answers, with the current training labels.
        """
        self._last = None
        mask = torch.zeros(self.targets.valid.shape, dtype=torch.bool, device=self.device)
        mask[torch.from_numpy(self.rows).to(self.device)] = torch.from_numpy(use).to(self.device)
        rows = self.rows[use.any(axis=1)]
        if len(rows) < 2:
            return
        optimizers = [torch.optim.Adam(net.parameters(), lr=self.config.lr) for net in self.networks]
        for net in self.networks:
            net.train()
        for epoch in range(epochs):
            for _, index, x in self._batches(epoch_batches(rows, self.config.batch_size, seed, epoch)):
                weight = mask[index].float()
                for net, optimizer in zip(self.networks, optimizers):
                    with autocast(self.device):
                        logits = net(x).float()
                    loss = (entry_losses(logits, self._y[index], self.multilabel) * weight).sum() \
                        / weight.sum().clamp_min(1.0)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()

    def state(self) -> list[dict]:
        """Copies of both networks' state dicts (on the CPU)."""
        return [{k: v.detach().cpu().clone() for k, v in net.state_dict().items()} for net in self.networks]

    def load_state(self, states: list[dict]) -> None:
        """Restore both networks (e.g. a saved run, or the end of phase 1 before another strategy's rounds)."""
        self._last = None
        for net, state in zip(self.networks, states):
            net.load_state_dict(copy.deepcopy(state))


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _describe(rate: np.ndarray) -> str:
    return f"{rate[0]:.3f}" if len(rate) == 1 else f"{rate.min():.3f}-{rate.max():.3f} across findings"
