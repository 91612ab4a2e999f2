"""Label-only aggregators: one label set, the soft mean, the majority vote, Dawid-Skene.

An aggregator turns the M label sets of each sample into one label per class,
from the labels alone (no images, no model). One interface, crowd-kit style:

* ``fit(targets, mask)`` sees the training split's labels once and returns the
  aggregator; only :class:`DawidSkene` learns anything there (its fitted state,
  ``confusion_`` and ``prior_``, ends with an underscore);
* ``predict_proba(targets, mask, rows=None)`` gives the fused labels of any
  samples: ``(labels, valid)``, both [N, C], the label (a probability; 0/1 for
  the majority vote) and whether any label set labelled that (sample, class).

``targets``/``mask`` are [N, M, C] (one-hot for multi-class, as
``Dataset.targets()`` returns them; numpy arrays or tensors). Every aggregator
except Dawid-Skene is computed per sample from that sample's labels, so the
fusion methods (``single``, ``mv``), the refinement phase and training's
validation reference compute a batch's labels from the batch itself, for any
split. Aggregators are torch modules so that a fitted state moves with its
fusion method to the device and into its checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from ltvcli.errors import OptionError
from ltvcli.fusion.base import from_groups, to_groups

#: Aggregators a ``label_set`` (``ltv train``) or ``labels`` (``ltv refine``) option may name.
AGGREGATOR_NAMES = ("soft_mean", "dawid_skene", "majority")

#: Pseudo-count added to every confusion-matrix cell in Dawid-Skene's M-step,
#: so that a pair of states never seen together keeps a finite log-likelihood.
_DS_PSEUDO_COUNT = 0.01
_HASH_MASK = 0xFFFFFFFF


class Aggregator(nn.Module):
    """Fuses M label sets into one label per (sample, class); see the module docstring for the interface."""

    def __init__(self, multilabel: bool):
        super().__init__()
        self.multilabel = multilabel

    @property
    def fitted(self) -> bool:
        """Whether :meth:`predict_proba` can run (only Dawid-Skene needs :meth:`fit` first)."""
        return True

    def fit(self, targets, mask) -> Aggregator:
        """Learn from the training split's labels; nothing to learn by default."""
        return self

    def predict_proba(self, targets, mask, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused labels and their validity, [N, C] each; ``rows`` are the samples' dataset rows."""
        raise NotImplementedError

    def fit_predict_proba(self, targets, mask, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fit(targets, mask).predict_proba(targets, mask, rows)


class OneLabelSet(Aggregator):
    """One label set as it is: the paper's R50 baseline on a single labeller."""

    def __init__(self, index: int, multilabel: bool):
        super().__init__(multilabel)
        self.index = index

    def predict_proba(self, targets, mask, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        targets, mask = _tensors(targets, mask)
        return targets[:, self.index], mask[:, self.index]


class SoftMean(Aggregator):
    """The mean of the available labels per sample and class (a vote share in [0, 1])."""

    def predict_proba(self, targets, mask, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        targets, mask = _tensors(targets, mask)
        votes = (targets * mask).sum(dim=1)
        count = mask.sum(dim=1)
        return votes / count.clamp_min(1), count > 0


class MajorityVote(Aggregator):
    """The most frequent label per sample and class (multi-class: the most frequent class id), 0/1.

    A tie is broken at random among the tied values (the paper's "if the
    majority is not achieved, we randomly select one from the available
    sets"). The draw is a fixed function of (``seed``, row, class), with
    ``rows`` the sample ids (default 0..N-1): the same image gets the same
    vote every epoch, after a resume and at export, whether the vote is taken
    for a whole split or batch by batch.
    """

    def __init__(self, multilabel: bool, seed: int = 0):
        super().__init__(multilabel)
        self.seed = seed

    def predict_proba(self, targets, mask, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        targets, mask = _tensors(targets, mask)
        observed, valid = to_groups(targets, mask, self.multilabel)
        votes = observed.sum(dim=1)  # [N, G, K]
        rows = (torch.arange(len(targets)) if rows is None else torch.as_tensor(rows)).to(targets.device)
        n_groups, n_states = votes.shape[1:]
        keys = (rows.long()[:, None, None] * n_groups + torch.arange(n_groups, device=votes.device)[:, None]) \
            * n_states + torch.arange(n_states, device=votes.device)
        tied_best = votes == votes.amax(dim=-1, keepdim=True)
        winner = (tied_best * (1 + keyed_uniform(self.seed, keys))).argmax(dim=-1)
        labels = from_groups(nn.functional.one_hot(winner, n_states).to(targets.dtype), self.multilabel)
        return labels, valid.any(dim=1).expand(-1, targets.shape[-1])


class DawidSkene(Aggregator):
    """Dawid-Skene by EM: a confusion matrix per label set (and class group) and a state prior.

    Multi-label is C independent binary problems (a 2x2 matrix per class and
    label set), multi-class one C x C problem. EM starts from the soft mean
    (the usual initialisation), adds a pseudo-count of 0.01 to every
    confusion cell and stops after ``n_iter`` rounds or when no posterior
    moves by more than ``tol``; computed in float64. :meth:`fit` sets
    ``confusion_`` [G, M, K, K] and ``prior_`` [G, K]; :meth:`predict_proba`
    is the posterior of the true class of any sample under them.
    """

    def __init__(self, multilabel: bool, n_iter: int = 50, tol: float = 1e-6):
        super().__init__(multilabel)
        self.n_iter = n_iter
        self.tol = tol
        self.confusion_: torch.Tensor | None = None
        self.prior_: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.prior_ is not None

    def fit(self, targets, mask) -> DawidSkene:
        targets, mask = _tensors(targets, mask)
        observed, valid = to_groups(targets.double(), mask, self.multilabel)
        labelled = valid.any(dim=1)  # [N, G]
        shares = observed.sum(dim=1)
        soft = shares / shares.sum(dim=-1, keepdim=True).clamp_min(1)
        posterior = torch.where(labelled[..., None], soft, 1 / shares.shape[-1])
        for _ in range(self.n_iter):
            confusion, prior = ds_maximise(posterior, observed, labelled)
            updated = ds_posterior(confusion, prior, observed)
            converged = (updated - posterior).abs().max() <= self.tol
            posterior = updated
            if converged:
                break
        self.confusion_, self.prior_ = ds_maximise(posterior, observed, labelled)
        return self

    def predict_proba(self, targets, mask, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.fitted:
            raise RuntimeError("DawidSkene is not fitted: call fit (a fusion method's fit_labels) first")
        targets, mask = _tensors(targets, mask)
        confusion, prior = self.confusion_.to(targets.device), self.prior_.to(targets.device)
        observed, valid = to_groups(targets.to(confusion.dtype), mask, self.multilabel)
        posterior = ds_posterior(confusion, prior, observed)
        return from_groups(posterior, self.multilabel).to(targets.dtype), valid.any(dim=1).expand(-1, targets.shape[-1])

    def get_extra_state(self) -> dict:
        """The fitted state, so a fusion method's checkpoint keeps the matrices fitted on its training split."""
        return {"confusion_": self.confusion_, "prior_": self.prior_} if self.fitted else {}

    def set_extra_state(self, state: dict) -> None:
        self.confusion_, self.prior_ = state.get("confusion_"), state.get("prior_")


def make_aggregator(source: str, label_set_names: list[str], *, multilabel: bool, seed: int = 0,
                    parameter: str = "label_set") -> Aggregator:
    """The aggregator ``source`` names: a label set (a name wins over an aggregator of the same name) or one of
    :data:`AGGREGATOR_NAMES`. ``parameter`` is the caller's name for the option, for the error message."""
    if source in label_set_names:
        return OneLabelSet(label_set_names.index(source), multilabel)
    if source == "soft_mean":
        return SoftMean(multilabel)
    if source == "majority":
        return MajorityVote(multilabel, seed)
    if source == "dawid_skene":
        return DawidSkene(multilabel)
    raise OptionError(parameter, f"unknown `{parameter}` {source!r}; expected a label set "
                                 f"({', '.join(label_set_names)}) or an aggregator ({', '.join(AGGREGATOR_NAMES)})")


# ----------------------------------------------------------------------------- shortcuts for notebooks
def soft_mean(targets, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`SoftMean` on ``targets``/``mask`` (multi-label and multi-class alike)."""
    return SoftMean(multilabel=True).predict_proba(targets, mask)


def majority_vote(targets, mask, seed: int = 0, *, multilabel: bool, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`MajorityVote` on ``targets``/``mask``; ``rows`` key the tie-breaks (default 0..N-1)."""
    return MajorityVote(multilabel, seed).predict_proba(targets, mask, rows)


def dawid_skene(targets, mask, multilabel: bool, n_iter: int = 50, tol: float = 1e-6,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`DawidSkene` fitted on ``targets``/``mask``, then their posteriors."""
    return DawidSkene(multilabel, n_iter, tol).fit_predict_proba(targets, mask)


# ----------------------------------------------------------------------------- EM steps and keyed draws
def ds_maximise(posterior: torch.Tensor, observed: torch.Tensor, labelled: torch.Tensor,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """M-step: confusion[g, m, k, j] ~ sum_n P(true k) * [annotator m said j]; prior = mean posterior."""
    counts = torch.einsum("ngk,nmgj->gmkj", posterior, observed) + _DS_PSEUDO_COUNT
    confusion = counts / counts.sum(dim=-1, keepdim=True)
    weight = labelled[..., None].to(posterior.dtype)
    prior = (posterior * weight).sum(0) + _DS_PSEUDO_COUNT
    return confusion, prior / prior.sum(dim=-1, keepdim=True)


def ds_posterior(confusion: torch.Tensor, prior: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """E-step: P(true state k | labels) per sample and group, [N, G, K]; unlabelled samples get the prior."""
    log_joint = prior.log() + torch.einsum("nmgj,gmkj->ngk", observed, confusion.log())
    return torch.softmax(log_joint, dim=-1)


def keyed_uniform(seed: int, keys: torch.Tensor) -> torch.Tensor:
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
