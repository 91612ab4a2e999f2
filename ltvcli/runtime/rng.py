"""The global random generators (torch, CUDA, NumPy, Python): seeding them, and saving and restoring their state.

A resumed run must draw exactly the numbers the uninterrupted run would have drawn, so the checkpoint
keeps every generator's state (:func:`rng_state`) and a resume puts it back (:func:`set_rng_state`).
The states are tensors and plain values, which a ``weights_only`` checkpoint load accepts.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy and Python's ``random`` with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state() -> dict:
    """Global RNG states (torch, CUDA, NumPy, Python), as tensors and plain values a weights-only load accepts."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`rng_state` (CUDA only on a machine with as many GPUs)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(value):
    """random.setstate needs tuples where a checkpoint round-trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
