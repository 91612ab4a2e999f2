"""The data path: memory-mapped uint8 image cache -> pinned host memory -> device -> [0, 1] floats.

Design, so the GPU never waits for data:

* images stay uint8 until they are on the device (4x less to read and copy);
  normalisation to [0, 1] (the paper's only pre-processing) happens there;
* a background thread reads the *next* batches from the memory map straight
  into pinned host memory while the current one trains (``torch.index_select``
  copies without holding the GIL; ``np.take`` holds it and measurably stalls
  the training thread), and the host-to-device copy is ``non_blocking``;
* on CUDA, images are channels_last and the step runs under bf16 autocast
  where the GPU supports it.

The order is a pure function of ``(seed, epoch)``: a resumed run sees the same
batches, and under DDP every rank computes the same global batches and takes
its own contiguous shard of each, so the union over ranks is exactly the
single-process batch.

Training, prediction, export and the refinement phase all read images this way;
the labels that go with a training batch are assembled in :mod:`ltvcli.train.data`.
"""

from __future__ import annotations

import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
import torch

#: A batch needs at least this many samples on each rank: BatchNorm cannot normalise a single sample.
MIN_SHARD = 2


def epoch_batches(rows: np.ndarray, batch_size: int, seed: int, epoch: int, world_size: int = 1) -> list[np.ndarray]:
    """The global batches of one training epoch: a seeded shuffle of ``rows``, each batch sorted.

    Sorting inside a batch changes nothing for the loss (a mean over the
    batch) but turns random reads of the memory map into forward scans.
    A last batch too small to give every rank ``MIN_SHARD`` samples is dropped.
    """
    order = np.random.default_rng([seed, epoch]).permutation(rows)
    batches = [np.sort(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < MIN_SHARD * world_size:
        batches.pop()
    return batches


def ordered_batches(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches of ``rows`` in their given order, for validation, prediction and export."""
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]


def shard(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's contiguous part of a global batch (equal parts where the size allows)."""
    return np.array_split(batch, world_size)[rank]


class ImageLoader:
    """Iterates ``(rows, uint8 images)`` for a list of row batches, reading ahead in background threads.

    ``workers`` threads each read one batch at a time; up to ``max(2, workers)``
    batches are in flight. With ``workers=0`` batches are read in the calling
    thread (simplest to debug).
    """

    def __init__(self, images: np.ndarray, batches: Sequence[np.ndarray], *, pin_memory: bool = False,
                 workers: int = 2):
        self.images = host_tensor(images)
        self.batches = batches
        self.pin_memory = pin_memory
        self.workers = workers

    def __len__(self) -> int:
        return len(self.batches)

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """Copy the rows from the memory map into a fresh (pinned) uint8 tensor."""
        out = torch.empty((len(rows),) + tuple(self.images.shape[1:]), dtype=torch.uint8, pin_memory=self.pin_memory)
        return torch.index_select(self.images, 0, torch.from_numpy(np.asarray(rows, dtype=np.int64)), out=out)

    def __iter__(self) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        if self.workers == 0:
            for rows in self.batches:
                yield rows, self.read(rows)
            return
        depth = max(2, self.workers)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ltv-read") as pool:
            pending: deque[tuple[np.ndarray, Future]] = deque()
            upcoming = iter(self.batches)
            try:
                for rows in upcoming:
                    pending.append((rows, pool.submit(self.read, rows)))
                    if len(pending) >= depth:
                        break
                while pending:
                    rows, future = pending.popleft()
                    nxt = next(upcoming, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(self.read, nxt)))
                    yield rows, future.result()
            finally:
                for _, future in pending:
                    future.cancel()


def host_tensor(images: np.ndarray) -> torch.Tensor:
    """A torch view of the (read-only) memory map; nothing is copied and nothing is ever written to it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(images)


def images_to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [B, S, S] or [B, S, S, 3] on the host -> float [B, C, S, S] in [0, 1] on ``device``.

    The uint8 tensor travels (non-blocking from pinned memory); the division
    runs on the device. An RGB cache is already channels-last in memory, so
    the permute costs nothing.
    """
    x = images.to(device, non_blocking=True)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = x.float().div_(255.0)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x
