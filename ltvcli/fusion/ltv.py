"""Learning-to-vote (Wang et al., "Learning Quality Labels for Robust Image Classification").

Per batch (x, Y) with M label sets (Algorithm 1 of the paper):

1. predict ŷ with θ -- the one real forward, and the only BatchNorm update;
2. for each label set m a *virtual* step θ̂_m = θ − α ∇θ L(ŷ, y_m)      (eq. 1)
   and the GAP feature F_m of x under θ̂_m (detached);
3. vote weights w = softmax(W_attn · Cat(F_1..F_M) + b_attn)            (eq. 2)
4. ȳ = Σ_m w_m y_m and its differentiable binarisation
   ỹ = sigmoid(k (ȳ − T))                                                (eq. 3)
5. the loss L(ŷ, ỹ), whose backward (by the training loop) updates θ
   (eq. 4) and, through ỹ, W_attn and b_attn (eqs. 5-6).

The fast path, exact rather than approximate: the gradient of the BCE with
respect to the logits is p − y_m, linear in the label, so every virtual
gradient is one vector-Jacobian product J^T [mask_m (p − y_m)] / n_m on the
graph of the *same* forward that gives ŷ (kept with ``retain_graph``). No
model is copied and no extra forward with gradients runs; the M feature
forwards under θ̂_m run without autograd through
:func:`torch.func.functional_call` with cloned BatchNorm buffers, so the
running statistics see only the real forward. ``meta_scope="last"``
restricts the virtual step to layer4 + FC and recomputes only
``last_stage(h)`` from the trunk output h of the real forward, so the trunk
runs once per batch.

With report text (``Batch.text``), F is Cat(GAP(image), text MLP(e)) and the
text MLP is part of both scopes, so each θ̂_m also moves the text features the
vote sees. The model says what F_m is (``vote_features`` / ``vote_stage``): the
GAP feature of a CNN, the hidden layer or the logits of a head on precomputed
features (:mod:`ltvcli.heads`).

Missing labels are masked everywhere: in each virtual loss, and in the vote,
whose weights are renormalised per (sample, class) over the label sets that
have a label there; where none has one, the entry leaves the final loss.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from torch.func import functional_call

from ltvcli.fusion.base import Batch, FusionMethod, StepResult, frozen_forward, masked_bce, mean_count, with_missing
from ltvcli.fusion.registry import LtvOptions
from ltvcli.runtime.distributed import all_reduce_mean, unwrap, world_size


class LearningToVote(FusionMethod):
    """The learning-to-vote module: the attention W_attn, b_attn and the meta-training step around it.

    Registry entry ``("ltv", "paper")``; ``options`` is a
    :class:`~ltvcli.fusion.registry.LtvOptions` (alpha, k, threshold, meta_scope).
    """

    options: LtvOptions

    def __init__(self, n_label_sets: int, n_classes: int, multilabel: bool, options: LtvOptions,
                 label_set_names: list[str]):
        super().__init__(n_label_sets, n_classes, multilabel, options, label_set_names)
        # W_attn, b_attn: nn.Linear(M * D, M). D is the model's feature size, which the
        # method learns only at its first batch, hence lazy. An optimizer built before
        # that holds the same Parameter objects, which are filled in place.
        self.attention = nn.LazyLinear(n_label_sets)

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        logits, trunk_output, _ = model(batch.images, text=batch.text, return_parts=True)
        return self._vote(model, batch, logits, trunk_output)

    def refine(self, model: nn.Module, batch: Batch) -> StepResult:
        """The vote of the refinement pass: the same computation, with no parameter, gradient or BN statistic changed.

        The pass runs it under :func:`~ltvcli.fusion.base.batch_statistics`:
        BatchNorm normalises the virtual features F_m with the batch's own
        statistics, as in the training step (eval mode's running statistics do
        not fit θ̂_m and gave a vote unlike the trained one).
        """
        with torch.enable_grad():
            logits, trunk_output, _ = frozen_forward(model, batch.images, batch.text)
            result = self._vote(model, batch, logits, trunk_output)
        result.loss = result.loss.detach()
        return result

    def virtual_features(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                         trunk_output: torch.Tensor) -> torch.Tensor:
        """F_m, the vote features of the batch under each virtually updated θ̂_m: [B, M, D], detached.

        ``logits`` and ``trunk_output`` come from one forward of ``model`` on
        ``batch.images`` whose graph is still alive.
        """
        net = unwrap(model)
        if getattr(net, "closed_form_vote", False) and world_size() == 1:  # a head on features: ltvcli.heads
            return net.virtual_vote_features(trunk_output.detach(), self._cotangents(logits, batch))
        names, params = self._scope(net)
        buffers = {name: buffer.clone() for name, buffer in net.named_buffers()}
        last = self.options.meta_scope == "last"
        stage, inputs = ("vote_stage", trunk_output.detach()) if last else ("vote_features", batch.images)
        features = []
        for step in self._virtual_steps(logits, params, batch):
            with torch.no_grad():
                updated = dict(zip(names, torch._foreach_sub(params, step)))  # θ̂_m = θ − α g_m, one fused op
                features.append(_call(net, stage, {**updated, **buffers}, inputs, batch.text))
        return torch.stack(features, dim=1)

    def vote_scores(self, features: torch.Tensor) -> torch.Tensor:
        """W_attn · Cat(F_1..F_M) + b_attn per sample: [B, M], the logits of the vote weights (eq. 2)."""
        return self.attention(features.flatten(1)).float()

    def vote_weights(self, features: torch.Tensor) -> torch.Tensor:
        """w = softmax(W_attn · Cat(F_1..F_M) + b_attn) per sample: [B, M] (eq. 2)."""
        return torch.softmax(self.vote_scores(features), dim=-1)

    def _vote(self, model: nn.Module, batch: Batch, logits: torch.Tensor, trunk_output: torch.Tensor) -> StepResult:
        scores = self.vote_scores(self.virtual_features(model, batch, logits, trunk_output))
        weights = torch.softmax(scores, dim=-1)
        refined, valid = weighted_vote(scores, batch.targets, batch.mask)
        binarised = torch.sigmoid(self.options.k * (refined - self.options.threshold))
        loss = masked_bce(logits, binarised, valid, mean_count(valid))
        return StepResult(loss=loss, logits=logits.detach(), refined=with_missing(refined, valid),
                          binarised=with_missing(binarised, valid), weights=weights.detach())

    def _virtual_steps(self, logits: torch.Tensor, params: list[nn.Parameter],
                       batch: Batch) -> Iterator[list[torch.Tensor]]:
        """α ∇θ L(ŷ, y_m) for each label set m in turn, from the graph of the forward that gave ``logits``.

        One vector-Jacobian product per label set; the cotangent already holds
        α / n_m, with n_m the rank-averaged label count, so after averaging over
        ranks each step is exactly the full-batch one (eq. 1). Yielded one at a
        time, so only one parameter-sized set of gradients is alive at once.
        """
        cotangents = self._cotangents(logits, batch)
        for m in range(self.n_label_sets):
            grads = torch.autograd.grad(logits, params, cotangents[:, m], retain_graph=True, materialize_grads=True)
            yield all_reduce_mean(list(grads))

    def _cotangents(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """α ∂L(ŷ, y_m)/∂ŷ for every label set m: [B, M, C], mask_m (p − y_m) α / n_m."""
        probs = torch.sigmoid(logits.detach().float())
        scale = self.options.alpha / mean_count(batch.mask, dims=(0, 2))
        return ((probs[:, None] - batch.targets) * batch.mask * scale[:, None]).to(logits.dtype)

    def _scope(self, net: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
        """The parameters the virtual step updates: all of them, or layer4 + FC for ``last``."""
        named = net.last_scope_parameters() if self.options.meta_scope == "last" else list(net.named_parameters())
        named = [(name, param) for name, param in named if param.requires_grad]
        return [name for name, _ in named], [param for _, param in named]


def weighted_vote(scores: torch.Tensor, targets: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ȳ = Σ_m w_m y_m per (sample, class), w = softmax(scores) renormalised over the label sets that have a label.

    ``scores`` [B, M] are the vote's logits, ``targets``/``mask`` [B, M, C];
    returns ȳ [B, C] and whether any label set labels the entry (elsewhere ȳ
    is 0 and meaningless). The renormalised weights are a softmax of the
    scores over the labelled sets, taken in log space: a vote that has
    collapsed onto one set gives the others weights of 1e-40 and less, and
    dividing by their sum (where that set has no label, as for most entries
    of a sparse crowd) would overflow the gradient.
    """
    mask = mask.bool()
    valid = mask.any(dim=1)
    logits = scores[:, :, None].expand_as(targets).masked_fill(~mask, float("-inf"))
    logits = logits.masked_fill(~valid[:, None, :], 0.0)  # no label anywhere: any finite weights, result unused
    shares = torch.softmax(logits, dim=1)
    return (shares * targets).sum(dim=1), valid


class _Bound(nn.Module):
    """``net.<method>`` as a module's forward, so :func:`functional_call` can run a stage other than forward."""

    def __init__(self, net: nn.Module, method: str):
        super().__init__()
        self.net = net
        self.method = method

    def forward(self, *args: torch.Tensor | None) -> torch.Tensor:
        return getattr(self.net, self.method)(*args)


def _call(net: nn.Module, method: str, tensors: dict[str, torch.Tensor], *args: torch.Tensor | None) -> torch.Tensor:
    """``net.<method>(*args)`` with the named parameters/buffers in ``tensors`` standing in for the module's own."""
    return functional_call(_Bound(net, method), {f"net.{name}": t for name, t in tensors.items()}, args)
