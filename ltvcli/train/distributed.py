"""Several GPUs through ``torchrun``: the few collective operations ltv needs.

Everything here is a no-op in a single process, so methods call it
unconditionally. Learning-to-vote needs :func:`all_reduce_mean` for its
virtual gradients: each rank sees a shard of the batch, and averaging the
per-rank gradients of a mean loss over equal shards gives exactly the
gradient of the whole batch, so the virtual step is the same as on one GPU.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DistributedDataParallel (or compiled) wrapper."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def all_reduce_mean(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Average each tensor over ranks (in place); returns the same list."""
    if is_distributed():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(world_size())
    return tensors
