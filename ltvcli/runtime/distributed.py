"""Several GPUs through ``torchrun``: the few collective operations ltv needs.

Everything here is a no-op in a single process, so methods call it
unconditionally. Learning-to-vote needs :func:`all_reduce_mean` for its
virtual gradients: each rank sees a shard of the batch, and averaging the
per-rank gradients of a mean loss over equal shards gives exactly the
gradient of the whole batch, so the virtual step is the same as on one GPU.
"""

from __future__ import annotations

import gc
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


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the torchrun process group if launched by torchrun; returns this rank's device.

    NCCL on CUDA (each rank on GPU ``LOCAL_RANK``), gloo on CPU. In a plain
    process this does nothing and returns ``device`` unchanged.
    """
    if not launched_by_torchrun():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    """Leave the process group, after freeing every DistributedDataParallel wrapper.

    A DDP wrapper sits in reference cycles, so it outlives the trainer until
    the garbage collector runs; if it still holds the process group when the
    group is destroyed, the process aborts at exit ("terminate called without
    an active exception") and torchrun reports a failed run that in fact
    finished. Collecting first frees it.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` when running on several ranks; the model itself otherwise.

    On CUDA, BatchNorm becomes SyncBatchNorm so batch statistics are those of
    the whole global batch and a sharded step equals the single-process step.
    PyTorch's SyncBatchNorm is CUDA-only: on CPU (gloo) each rank normalises
    with its own shard's statistics.
    """
    if not is_distributed():
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks (in place); returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if is_distributed():
        dist.barrier()
