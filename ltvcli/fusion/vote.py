"""The reliability vote (``--vote reliability``): learning-to-vote that learns whom to believe.

Why not the paper's vote: its attention is trained only through L(ŷ, ỹ),
which rewards agreeing with the model's current prediction, not with the
truth. In practice it either collapses onto one label set or stays uniform
(a majority vote). This vote keeps the frame -- a virtual step per label
set, a learned vote over their features, refined soft labels, the
differentiable binarisation -- but gives the vote a truth-seeking model and
objective:

* Global reliability: per label set m and class group g a Dawid-Skene
  confusion matrix π[g, m] (true state -> reported state) and a state prior,
  fitted by EM on the training split (:meth:`fit_labels`, kept as buffers).
* Per-sample correction: a score a[b, m, g] = W · F_m + b from each label
  set's virtual-step feature F_m (zero-initialised), turned into reliability
  multipliers λ = M · softmax_m(a) (all 1 -- plain Dawid-Skene -- at start).
* The posterior of the truth: log q(k) = log prior(k) + Σ_m λ_m log π_m[k, y_m];
  the refined label ȳ is q (the probability of "present" for multi-label).
  With ``model_evidence`` γ > 0 the image speaks too: the class prior becomes
  (1 − γ) log prior(k) + γ log p_θ(k | x), the model's own (detached)
  prediction -- at γ = 1 the posterior of Raykar et al. (JMLR 2010,
  "Learning from crowds"). Where the label sets agree it changes little;
  where they split, the image decides, which Dawid-Skene on labels alone
  cannot do.
* The model trains on ỹ = sigmoid(k (ȳ − T)) *detached*: the vote gets no
  reward for agreeing with the model.
* The vote trains on leave-one-out pseudo-likelihood: the posterior from the
  other label sets must predict what label set m said, through π_m. A label
  set that contradicts the rest is down-weighted because trusting it makes
  the others unpredictable. Where a trusted label set exists (``expert`` or
  ``--trusted``), the posterior from the *other* sets must also predict it.

Reported vote weights, per (sample, label set, class): the posterior mass of
the state the label set said, shared among the sets that said it, over the
mass of the states said at all, so they sum to 1 over the label sets and
ȳ = Σ_m w_m y_m whenever the label sets disagree. A label set the posterior
deems wrong gets a weight near 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ltvcli.fusion.aggregators import DawidSkene
from ltvcli.fusion.base import (
    Batch,
    StepResult,
    from_groups,
    group_shape,
    masked_bce,
    mean_count,
    to_groups,
    with_missing,
)
from ltvcli.errors import OptionError
from ltvcli.fusion.ltv import LearningToVote
from ltvcli.fusion.registry import EXPERT_SET, ReliabilityOptions


class ReliabilityVote(LearningToVote):
    """Learning-to-vote with a Dawid-Skene reliability prior and a truth-seeking (leave-one-out) vote objective.

    Registry entry ``("ltv", "reliability")``; ``options`` is a
    :class:`~ltvcli.fusion.registry.ReliabilityOptions`. ``trusted`` is the
    position of the trusted label set (``options.trusted``, else one named
    ``expert``), or None.
    """

    options: ReliabilityOptions

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: ReliabilityOptions,
                 label_set_names: list[str]):
        super().__init__(n_label_sets, n_classes, multilabel, options, label_set_names)
        self.trusted = _trusted(options.trusted, label_set_names)
        n_groups, n_states = group_shape(n_classes, multilabel)
        # One score per (label set, class group) from that label set's own feature F_m: the
        # weights are shared over label sets, so a set is judged by what its step did.
        self.attention = nn.LazyLinear(n_groups)
        self.register_buffer("log_confusion", torch.zeros(n_groups, n_label_sets, n_states, n_states))
        self.register_buffer("log_prior", torch.zeros(n_groups, n_states))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit_labels(self, targets: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Fit the global reliability (Dawid-Skene confusion matrices and prior) on the training split."""
        fitted = DawidSkene(self.multilabel).fit(targets, mask)
        self.log_confusion.copy_(fitted.confusion_.log())
        self.log_prior.copy_(fitted.prior_.log())
        self.fitted.fill_(True)

    def multipliers(self, features: torch.Tensor) -> torch.Tensor:
        """λ = M · softmax_m(W · F_m + b): [B, M, G]; the scores start at zero, i.e. at plain Dawid-Skene."""
        if is_lazy(self.attention.weight):
            self.attention.initialize_parameters(features)
            with torch.no_grad():
                self.attention.weight.zero_()
                self.attention.bias.zero_()
        scores = self.attention(features.float())
        return self.n_label_sets * torch.softmax(scores, dim=1)

    def _vote(self, model: nn.Module, batch: Batch, logits: torch.Tensor, trunk_output: torch.Tensor) -> StepResult:
        if not bool(self.fitted):
            raise RuntimeError("fit_labels must run before the reliability vote")
        features = self.virtual_features(model, batch, logits, trunk_output)
        observed, valid = to_groups(batch.targets.float(), batch.mask, self.multilabel)
        evidence = self.evidence(observed)
        weighted = self.multipliers(features)[..., None] * evidence
        base = self.base_log_prior(logits)
        posterior = torch.softmax(base + weighted.sum(dim=1), dim=-1)  # [B, G, K]
        refined, binarised, entries = self.binarise(posterior, valid)
        loss = masked_bce(logits, binarised, entries, mean_count(entries))
        loss = loss + self.vote_loss(base, weighted, evidence, observed, valid)
        return StepResult(loss=loss, logits=logits.detach(), refined=with_missing(refined, entries),
                          binarised=with_missing(binarised, entries),
                          weights=self.label_weights(posterior.detach(), observed, valid))

    def label_vote(self, targets: torch.Tensor, mask: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The vote from the labels alone, before any image speaks: this vote's label-only part.

        Without images there are no virtual-step features, so every multiplier
        is 1, and no model, so no model evidence: the posterior is plain
        Dawid-Skene's under the matrices :meth:`fit_labels` fitted. Refined ȳ,
        its binarisation ỹ = sigmoid(k (ȳ − T)) and the vote weights are those
        of training. Returns (refined, binarised) [N, C], NaN where no label
        set labels, and the weights [N, M, C].
        """
        if not bool(self.fitted):
            raise RuntimeError("fit_labels must run before the reliability vote")
        observed, valid = to_groups(torch.as_tensor(targets).float(), torch.as_tensor(mask).bool(), self.multilabel)
        posterior = torch.softmax(self.log_prior + self.evidence(observed).sum(dim=1), dim=-1)
        refined, binarised, entries = self.binarise(posterior, valid)
        return (with_missing(refined, entries), with_missing(binarised, entries),
                self.label_weights(posterior, observed, valid))

    def evidence(self, observed: torch.Tensor) -> torch.Tensor:
        """log π_m[k, y_m] per (sample, set, group, true state) [B, M, G, K]; 0 where the set gave no label."""
        return torch.einsum("bmgj,gmkj->bmgk", observed, self.log_confusion)

    def binarise(self, posterior: torch.Tensor, valid: torch.Tensor,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Refined ȳ [B, C] from the posterior [B, G, K], its binarisation ỹ (detached), and where any set labels."""
        labelled = valid.any(dim=1)  # [B, G]
        refined = from_groups(posterior, self.multilabel)
        entries = labelled if self.multilabel else labelled.expand(-1, self.n_classes)
        binarised = torch.sigmoid(self.options.k * (refined - self.options.threshold)).detach()
        return refined, binarised, entries

    def base_log_prior(self, logits: torch.Tensor) -> torch.Tensor:
        """What is believed before the label sets speak, [B or 1, G, K]: the class prior, mixed with the model's view."""
        if self.options.model_evidence == 0:
            return self.log_prior[None]
        logits = logits.detach().float()
        if self.multilabel:
            model = torch.stack((nn.functional.logsigmoid(-logits), nn.functional.logsigmoid(logits)), dim=-1)
        else:
            model = torch.log_softmax(logits, dim=-1)[:, None]
        return (1 - self.options.model_evidence) * self.log_prior + self.options.model_evidence * model

    def vote_loss(self, base: torch.Tensor, weighted: torch.Tensor, evidence: torch.Tensor, observed: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
        """−mean log p(y_m | the other label sets): each set's label predicted through π_m by the rest's posterior.

        The trusted label set, where there is one, is predicted as the truth
        itself (identity π) and counts as much as all the others together.
        """
        total = base + weighted.sum(dim=1)  # [B, G, K]
        leave_out = torch.log_softmax(total[:, None] - weighted, dim=-1)  # [B, M, G, K]
        nll = -torch.logsumexp(leave_out + evidence, dim=-1)
        loss = (nll * valid).sum() / mean_count(valid)
        if self.trusted is not None:
            said = observed[:, self.trusted]
            trusted_valid = valid[:, self.trusted]
            trusted_nll = -(leave_out[:, self.trusted] * said).sum(dim=-1)
            loss = loss + (trusted_nll * trusted_valid).sum() / mean_count(trusted_valid)
        return loss

    def label_weights(self, posterior: torch.Tensor, observed: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Vote weight of each label set per (sample, class) [B, M, C]: see :func:`posterior_weights`."""
        return posterior_weights(posterior, observed, valid, self.multilabel, self.n_classes)


def posterior_weights(posterior: torch.Tensor, observed: torch.Tensor, valid: torch.Tensor, multilabel: bool,
                      n_classes: int) -> torch.Tensor:
    """Vote weight of each label set per (sample, class) [B, M, C]: q(what it said) / (#sets that said it · Z).

    ``posterior`` is q [B, G, K]. Z is the posterior mass of the states some
    set said, so the weights sum to 1 over the label sets wherever any labels;
    0 where a set has no label.
    """
    said_by = observed.sum(dim=1)  # [B, G, K] label sets per state
    mass = (posterior * (said_by > 0)).sum(dim=-1).clamp_min(1e-12)  # Z [B, G]
    share = torch.where(said_by > 0, posterior / said_by.clamp_min(1), torch.zeros_like(posterior))
    weights = (observed * share[:, None]).sum(dim=-1) / mass[:, None] * valid  # [B, M, G]
    return weights if multilabel else weights.expand(-1, -1, n_classes)


def _trusted(name: str | None, label_set_names: list[str]) -> int | None:
    """Position of the trusted label set: ``name`` if given (it must exist), else ``expert`` if present."""
    if name is not None and name not in label_set_names:
        raise OptionError("trusted", f"unknown `trusted` {name!r}; expected a label set ({', '.join(label_set_names)})")
    if name is None and EXPERT_SET in label_set_names:
        name = EXPERT_SET
    return None if name is None else label_set_names.index(name)
