"""Classifiers on precomputed image features: a linear or one-hidden-layer MLP head (``ltv train --input features``).

A :class:`FeatureNet` has the interface of :class:`ltvcli.models.LtvNet`, so
every fusion method, the training loop, export, prediction and refinement use
it unchanged:

* ``trunk(x)``          standardisation of the input, (x − mean) / sd with the training split's statistics
                        (kept as buffers, so a checkpoint scores new data the same way); no parameters;
* ``last_stage(h)``     the learnt representation F: the hidden layer (Linear, ReLU) of ``mlp``, or h itself
                        for ``linear``; with report text, Cat(F, text MLP(e)) as in LtvNet;
* ``head(f)``           dropout (if any), then the final fully connected layer;
* ``vote_stage(h)``     what learning-to-vote sees of the model, F_m (below).

**F_m for a head.** The paper's F_m is the GAP feature of the virtually
updated network: the layer before the classifier. For ``mlp`` that is the
hidden layer's activation under θ̂_m. A ``linear`` head has no learnt
representation before its classifier -- the layer before it is the input,
identical for every label set -- so its F_m is the virtually updated *logits*,
W_m x + b_m: the one thing about the model that label set m's virtual step
changes. Dropout never touches F_m, so the M feature forwards agree with the
real one.

The trunk has no parameters, so ``--meta-scope last`` and ``all`` update the
same parameters.

**All M virtual steps at once.** A head is small enough that its virtual
steps have a closed form (:meth:`FeatureNet.virtual_vote_features`). With h
the standardised input, c_m = α ∂L_m/∂logits [B, C] and K = h hᵀ + 1 (the
bias contributes the 1):

* linear: the updated logits are z − K c_m;
* mlp: with δ_m = (c_m W₂) ⊙ 1[pre > 0] the backpropagated step into the
  hidden layer, the updated activation is relu(pre − K δ_m).

That is the same arithmetic as a vector-Jacobian product and a forward per
label set, batched over the label sets into two matrix products, so a crowd
of 59 workers costs two products instead of 59 backward and forward passes.
It applies when nothing else moves F_m (no text branch, no dropout active)
and on one process (DDP averages each step over the ranks' batches); the
general path of :mod:`ltvcli.fusion.ltv` handles the rest.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ltvcli.backbones import HEADS
from ltvcli.errors import OptionError
from ltvcli.models import TEXT_FEATURES, with_text

#: Standard deviations below this are taken as this (a constant feature is left at 0, not blown up).
MIN_SD = 1e-6


class FeatureNet(nn.Module):
    """Standardise -> (hidden layer) (+ text MLP) -> dropout -> FC, on a [B, D] feature vector per image."""

    def __init__(self, in_dim: int, n_classes: int, head: str = "linear", width: int = 512, dropout: float = 0.0,
                 text_dim: int | None = None):
        super().__init__()
        if head not in HEADS:
            raise OptionError("head", f"{head!r}: expected one of {', '.join(HEADS)}")
        self.head_kind = head
        self.in_dim = in_dim
        self.text_dim = text_dim
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))  # 1 / sd
        self.body = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU()) if head == "mlp" else nn.Identity()
        self.text_mlp = None if text_dim is None else nn.Sequential(
            nn.Linear(text_dim, TEXT_FEATURES), nn.ReLU(), nn.Linear(TEXT_FEATURES, TEXT_FEATURES), nn.ReLU())
        self.feature_dim = (width if head == "mlp" else in_dim) + (0 if text_dim is None else TEXT_FEATURES)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, n_classes)

    @torch.no_grad()
    def standardise_with(self, features: np.ndarray, rows: np.ndarray, chunk: int = 65_536) -> None:
        """Set the input statistics from ``features[rows]`` (the training split), read a chunk at a time.

        Values are shifted by the first chunk's mean (so a large mean costs no precision), each chunk is summed
        in float32 (torch's cascade summation) and the chunk sums are added in float64.
        """
        rows = np.sort(rows)
        shift = total = squares = None
        for start in range(0, len(rows), chunk):
            part = torch.from_numpy(np.ascontiguousarray(features[rows[start:start + chunk]], dtype=np.float32))
            if shift is None:
                shift = part.mean(0)
                total = torch.zeros(self.in_dim, dtype=torch.float64)
                squares = torch.zeros(self.in_dim, dtype=torch.float64)
            part -= shift
            total += part.sum(0).double()
            squares += part.square().sum(0).double()
        if shift is None:  # no rows: leave the identity standardisation
            return
        offset = total / len(rows)
        sd = (squares / len(rows) - offset * offset).clamp_min(0).sqrt().clamp_min(MIN_SD)
        self.mean.copy_((shift.double() + offset).float())
        self.scale.copy_((1 / sd).float())

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.scale

    def last_stage(self, h: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """F: the hidden layer's activation (mlp) or the standardised input (linear), with the text MLP's output."""
        return with_text(self.body(h), text, self.text_mlp, self.text_dim, "head")

    def features(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.last_stage(self.trunk(x), text)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(f))

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None, return_parts: bool = False):
        """Logits; with ``return_parts`` also the trunk output h and the feature F (as LtvNet)."""
        h = self.trunk(x)
        f = self.last_stage(h, text)
        logits = self.head(f)
        return (logits, h, f) if return_parts else logits

    def vote_stage(self, h: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """F_m of learning-to-vote from the trunk output: the hidden activation (mlp), the logits (linear)."""
        f = self.last_stage(h, text)
        return self.fc(f) if self.head_kind == "linear" else f

    def vote_features(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.vote_stage(self.trunk(x), text)

    @property
    def closed_form_vote(self) -> bool:
        """Whether :meth:`virtual_vote_features` gives F_m: no text branch, and no dropout active in this mode."""
        return self.text_mlp is None and not (self.training and self.dropout.p > 0)

    def virtual_vote_features(self, h: torch.Tensor, cotangents: torch.Tensor) -> torch.Tensor:
        """F_m of every label set [B, M, ·] under θ − Jᵀc_m, where ``cotangents`` [B, M, C] holds c_m = α ∂L_m/∂z.

        ``h`` is the trunk output of the batch; computed in float32 without
        autograd (F_m is detached). Only valid where :attr:`closed_form_vote`.
        """
        with torch.no_grad():
            h, c = h.float(), cotangents.float()
            if self.head_kind == "linear":
                logits = nn.functional.linear(h, self.fc.weight.float(), self.fc.bias.float())
                return logits[:, None] - _kernel_times(h, c)
            hidden = self.body[0]
            pre = nn.functional.linear(h, hidden.weight.float(), hidden.bias.float())
            delta = (c @ self.fc.weight.float()) * (pre > 0)[:, None]
            return torch.relu(pre[:, None] - _kernel_times(h, delta))

    def last_scope_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Every parameter: the trunk has none, so ``--meta-scope last`` is ``all``."""
        return list(self.named_parameters())


def _kernel_times(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(h hᵀ + 1) v_m for every m: ``h`` [B, D], ``v`` [B, M, K] -> [B, M, K].

    Two orders give the same product; the cheaper one depends on the shapes: through the [B, B] Gram matrix
    (a large D, a small batch, many label sets), or through the per-label-set [K, D] steps vᵀh (a large batch).
    """
    batch, sets, width = v.shape
    flat = v.reshape(batch, sets * width)
    if batch * (h.shape[1] + sets * width) <= 2 * sets * width * h.shape[1]:
        out = (h @ h.T + 1) @ flat
    else:
        out = h @ (flat.T @ h).T + flat.sum(0)
    return out.reshape(batch, sets, width)


def build_head(head: str, in_dim: int, n_classes: int, *, width: int = 512, dropout: float = 0.0,
               text_dim: int | None = None) -> FeatureNet:
    """A :class:`FeatureNet` for ``in_dim``-dim features (its statistics unset: see ``standardise_with``)."""
    return FeatureNet(in_dim, n_classes, head, width, dropout, text_dim)
