"""The refinement pass: the one procedure that defines a run's refined labels, in training and in export.

:meth:`FusionMethod.refine` over a split in fixed, ordered batches of the
run's batch size, under :func:`~ltvcli.fusion.base.batch_statistics`. Training
runs it at epoch ends (its accuracy is ``refined_accuracy`` in metrics.jsonl,
and an EM vote re-estimates its labels from it); ``ltv export-labels`` runs
it on the checkpoint, with the same batches, so both see the same labels.

Under torchrun every rank refines its shard of each batch, as in training,
and the ranks' rows are summed into one table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ltvcli.fusion.base import Batch, FusionMethod, batch_statistics
from ltvcli.runtime import distributed
from ltvcli.runtime.device import autocast
from ltvcli.runtime.loader import MIN_SHARD, ordered_batches
from ltvcli.train.diagnostics import refined_hits


@dataclass
class Refinement:
    """The refined labels of ``rows``: soft ȳ and binarised ỹ [N, C] (NaN where nothing is labelled), and each
    label set's vote weight [N, M, C] (NaN for a method without a vote)."""

    rows: torch.Tensor
    refined: torch.Tensor
    binarised: torch.Tensor
    weights: torch.Tensor


def refinement_pass(model: nn.Module, method: FusionMethod, batches: Iterable[Batch], n_rows: int,
                    device: torch.device) -> Refinement:
    """Refine ``batches`` (which hold ``n_rows`` rows in all, in order; under torchrun this rank's shards).

    Rows come back in the batches' order; on several ranks the shards are
    gathered, so every rank holds the whole table.
    """
    n_sets, n_classes = method.n_label_sets, method.n_classes
    rows = torch.zeros(n_rows, dtype=torch.long, device=device)
    values = torch.zeros(n_rows, n_classes, 2 + n_sets, device=device)  # refined, binarised, weights per class
    with batch_statistics(model):
        for batch, position in _positions(batches):
            with autocast(device):
                result = method.refine(model, batch)
            rows[position] = batch.index
            values[position] = torch.cat((_per_class(result.refined, batch, n_classes)[..., None],
                                          _per_class(result.binarised, batch, n_classes)[..., None],
                                          _weights(result.weights, batch, n_sets, n_classes)), dim=-1)
    return _gathered(rows, values)


def accuracy(refinement: Refinement, truth: torch.Tensor, truth_mask: torch.Tensor, multilabel: bool) -> float | None:
    """Accuracy of the binarised refined labels against ``truth`` [N, C] of the same rows (None: nothing to score);
    scored as training scores its steps' labels (:func:`~ltvcli.train.diagnostics.refined_hits`)."""
    correct, valid = refined_hits(refinement.binarised, truth, truth_mask, multilabel)
    count = int(valid.sum())
    return float(correct.sum()) / count if count else None


def _positions(batches: Iterable[Batch]) -> Iterator[tuple[Batch, torch.Tensor]]:
    """Each batch with the positions of its rows in the pass's table (this rank's shard of each global batch)."""
    offset = 0
    for batch in batches:
        size = len(batch.index)
        sizes = torch.tensor([float(size)], device=batch.index.device)
        before = _rank_offset(sizes)
        yield batch, torch.arange(offset + before, offset + before + size, device=batch.index.device)
        offset += int(distributed.all_reduce_sum(sizes.clone()).item())


def _rank_offset(size: torch.Tensor) -> int:
    """How many rows of this global batch the lower ranks hold (0 in one process)."""
    if not distributed.is_distributed():
        return 0
    sizes = torch.zeros(distributed.world_size(), device=size.device)
    sizes[distributed.rank()] = size
    distributed.all_reduce_sum(sizes)
    return int(sizes[:distributed.rank()].sum().item())


def _gathered(rows: torch.Tensor, values: torch.Tensor) -> Refinement:
    """Sum the ranks' disjoint parts into the whole table: a rank holds zeros at the rows of the others
    (a NaN of the rank that holds a row survives the sum). A no-op in one process."""
    rows = distributed.all_reduce_sum(rows)
    values = distributed.all_reduce_sum(values)
    return Refinement(rows=rows, refined=values[..., 0], binarised=values[..., 1],
                      weights=values[..., 2:].transpose(1, 2))


def _per_class(values: torch.Tensor | None, batch: Batch, n_classes: int) -> torch.Tensor:
    """[B, C] float; NaN where the method gives no value."""
    if values is None:
        return torch.full((len(batch.index), n_classes), float("nan"), device=batch.index.device)
    return values.detach().float()


def _weights(weights: torch.Tensor | None, batch: Batch, n_sets: int, n_classes: int) -> torch.Tensor:
    """Vote weights as [B, C, M]: per-sample weights repeated over classes, NaN without a vote."""
    if weights is None:
        return torch.full((len(batch.index), n_classes, n_sets), float("nan"), device=batch.index.device)
    w = weights.detach().float()
    return w[:, None, :].expand(-1, n_classes, -1) if w.ndim == 2 else w.transpose(1, 2)


def pass_batches(rows: np.ndarray, batch_size: int, world_size: int = 1) -> list[np.ndarray]:
    """The pass's batches of one split: ``rows`` in order, ``batch_size`` at a time, a last batch too small to give
    every rank ``MIN_SHARD`` rows joined to the one before (BatchNorm needs more than one value to normalise).

    Export refines each split on its own, so the train split's batches are
    the same whichever splits it is asked for.
    """
    batches = ordered_batches(rows, batch_size)
    if len(batches) > 1 and len(batches[-1]) < MIN_SHARD * world_size:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches
