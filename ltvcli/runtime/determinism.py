"""Deterministic kernels for the duration of a run: what makes two runs with the same seed agree bit for bit.

Training (``ltv train``) and the refinement phase (``ltv refine``, ``ltv refine-sim``) both run inside
:func:`deterministic`; the seeds and generator states themselves are in :mod:`ltvcli.runtime.rng`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Ask for deterministic kernels for the duration of a run, then restore the previous settings.

    ``warn_only``: kernels with no deterministic version (on CUDA, e.g. the
    backward of adaptive average pooling) still run, with a warning.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
