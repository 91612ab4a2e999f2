"""What an epoch of training says besides its loss: the method's diagnostics, summed on the device.

Per step :class:`EpochStats` adds the loss and, for methods with a vote, the
vote weights and their entropy; where the training split has ground truth,
also the accuracy of the labels the steps trained on (``step_refined_accuracy``:
each from the model of its own step) and the weight on correct vs wrong
labels (the paper's Tables 2 and 3). The run's refined labels are those of
the epoch-end pass (:mod:`ltvcli.train.refinement`). Sums stay on the device (no sync per
step) and are reduced over ranks once per epoch. :func:`vote_warning` says
when a vote has stopped choosing between label sets.
"""

from __future__ import annotations

import math

import torch

from ltvcli.fusion.base import Batch, StepResult
from ltvcli.runtime import distributed
from ltvcli.train.data import DeviceLabels


class EpochStats:
    """Running sums of one epoch's loss and method diagnostics, kept on the device (no sync per step)."""

    def __init__(self, multilabel: bool):
        self.multilabel = multilabel
        self.sums: dict[str, torch.Tensor] = {}
        self.seconds = 0.0

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()

    def add(self, result: StepResult, batch: Batch, labels: DeviceLabels, with_truth: bool) -> None:
        n = torch.tensor(float(len(batch.index)), device=batch.index.device)
        self._add("samples", n)
        self._add("loss", result.loss * n)
        if result.weights is not None:
            self._add_weights(result.weights.float(), batch, labels, with_truth)
        refined = result.binarised if result.binarised is not None else result.refined
        if with_truth and refined is not None:
            self._add_refined_accuracy(refined.float(), labels.truth[batch.index], labels.truth_mask[batch.index])

    def _add_weights(self, weights: torch.Tensor, batch: Batch, labels: DeviceLabels, with_truth: bool) -> None:
        per_sample = weights.mean(-1) if weights.ndim == 3 else weights
        self._add("weight", per_sample.sum(0))
        entropy = -(weights * weights.clamp_min(1e-12).log()).sum(1)
        self._add("entropy", (entropy.mean(-1) if entropy.ndim == 2 else entropy).sum())
        if not with_truth:
            return
        truth, truth_mask = labels.truth[batch.index], labels.truth_mask[batch.index]
        full = weights if weights.ndim == 3 else weights[:, :, None].expand_as(batch.targets)
        correct = batch.targets == truth[:, None, :]
        if not self.multilabel:
            correct = correct.all(-1, keepdim=True).expand_as(batch.targets)
        valid = batch.mask & truth_mask[:, None, :]
        for key, chosen in (("correct", correct & valid), ("wrong", ~correct & valid)):
            self._add(f"w_{key}", (full * chosen).sum((0, 2)))
            self._add(f"n_{key}", chosen.sum((0, 2)))

    def _add_refined_accuracy(self, refined: torch.Tensor, truth: torch.Tensor, truth_mask: torch.Tensor) -> None:
        correct, valid = refined_hits(refined, truth, truth_mask, self.multilabel)
        self._add("refined_correct", correct.sum())
        self._add("refined_count", valid.sum())

    def running_loss(self) -> float:
        return (self.sums["loss"] / self.sums["samples"]).item() if self.sums else math.nan

    def summary(self, label_set_names: list[str]) -> dict:
        """The epoch's metrics over all ranks (one all-reduce, one device-to-host copy)."""
        keys = sorted(self.sums)
        flat = torch.cat([self.sums[k].reshape(-1) for k in keys]) if keys else torch.zeros(0)
        flat = distributed.all_reduce_sum(flat).cpu().numpy()
        sums, offset = {}, 0
        for key in keys:
            size = self.sums[key].numel()
            sums[key] = flat[offset:offset + size] if self.sums[key].ndim else flat[offset]
            offset += size
        samples = float(sums.get("samples", 0.0))
        out: dict = {"loss": ratio(sums.get("loss", 0.0), samples), "samples": int(samples)}
        if "weight" in sums:
            for name, value in zip(label_set_names, sums["weight"]):
                out[f"weight_{name}"] = ratio(value, samples)
            out["vote_entropy"] = ratio(sums["entropy"], samples)
            if samples > 0:
                means = {name: out[f"weight_{name}"] for name in label_set_names}
                out["vote_warning"] = vote_warning(means, out["vote_entropy"])
        if "refined_count" in sums:
            out["step_refined_accuracy"] = ratio(sums["refined_correct"], sums["refined_count"])
        if "n_correct" in sums:
            for key in ("correct", "wrong"):
                out[f"weight_{key}"] = ratio(sums[f"w_{key}"].sum(), sums[f"n_{key}"].sum())
                for name, w, n in zip(label_set_names, sums[f"w_{key}"], sums[f"n_{key}"]):
                    out[f"weight_{key}_{name}"] = ratio(w, n)
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.seconds = dict(state["sums"]), float(state["seconds"])


def refined_hits(refined: torch.Tensor, truth: torch.Tensor, truth_mask: torch.Tensor,
                 multilabel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Which binarised refined labels [N, C] agree with ``truth``, and which can be scored (both as bool masks).

    Multi-label: per (image, class) entry, at 0.5; multi-class: per image, the arg max. NaN (nothing labelled)
    is not scored.
    """
    if multilabel:
        valid = truth_mask & refined.isfinite()
        return ((refined >= 0.5) == (truth >= 0.5)) & valid, valid
    valid = truth_mask.any(1) & refined.isfinite().all(1)
    return (refined.nan_to_num(-1.0).argmax(1) == truth.argmax(1)) & valid, valid


#: A vote has collapsed when one label set's mean weight exceeds this.
COLLAPSE_WEIGHT = 0.9
#: A vote is uniform when its entropy exceeds this fraction of log M and every mean weight is this close to 1/M.
UNIFORM_ENTROPY, UNIFORM_SPREAD = 0.98, 0.02


def vote_warning(mean_weights: dict[str, float], entropy: float) -> str | None:
    """Why an epoch's vote is degenerate -- collapsed onto one label set, or uniform -- or None.

    Either way the vote has stopped choosing between label sets per sample:
    a collapsed vote is training on one label set, a uniform one on their
    mean (with the binarisation, a majority vote). ``mean_weights`` are the
    mean weight of each label set by name, ``entropy`` the mean per-sample
    vote entropy.
    """
    n_sets = len(mean_weights)
    if n_sets < 2:
        return None
    top = max(mean_weights, key=mean_weights.__getitem__)
    if mean_weights[top] > COLLAPSE_WEIGHT:
        return f"collapse: label set {top} has mean weight {mean_weights[top]:.3f} > {COLLAPSE_WEIGHT}"
    if entropy > UNIFORM_ENTROPY * math.log(n_sets) and all(
            abs(w - 1 / n_sets) < UNIFORM_SPREAD for w in mean_weights.values()):
        return (f"uniform: vote entropy {entropy:.3f} is near log {n_sets} = {math.log(n_sets):.3f} and every "
                f"mean weight is within {UNIFORM_SPREAD} of 1/{n_sets} (the vote is a majority vote)")
    return None


def ratio(numerator, denominator) -> float | None:
    """numerator / denominator as a JSON-friendly float; None where undefined."""
    return float(numerator) / float(denominator) if float(denominator) > 0 else None
