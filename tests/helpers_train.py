"""Helpers for the training tests: variants of a toy dataset, and a run folder's saved tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ltvcli.dataset import Dataset, DatasetSpec, build_dataset

TRAIN_FAST = ("--arch", "tiny", "--batch-size", "8", "--lr", "1e-3", "--device", "cpu")


def rebuild(source: Dataset, out: Path, *, ground_truth: np.ndarray | None = None, label_sets: list[int] | None = None,
            classes: list[str] | None = None) -> Dataset:
    """A copy of ``source`` (same images, ids and splits) with other ground truth, label sets or class names."""
    keep = list(range(len(source.label_sets))) if label_sets is None else label_sets
    spec = DatasetSpec(
        task=source.task,
        classes=classes or source.classes,
        manifest=source.manifest.copy(),
        label_sets=[source.label_sets[m] for m in keep],
        labels=np.ascontiguousarray(source.labels[:, keep]),
        ground_truth=ground_truth,
        pixels=np.asarray(source.images),
        source={"name": "rebuilt"},
    )
    return build_dataset(spec, out, size=source.image_size, channels=source.channels)


def checkpoint_tensors(run: Path, which: str = "last") -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint's model, method and optimizer state, by a flat name."""
    state = torch.load(run / f"{which}.pt", weights_only=True)
    flat: dict[str, torch.Tensor] = {}
    for part in ("model", "method"):
        flat.update({f"{part}.{k}": v for k, v in state[part].items()})
    for pid, slots in state["optimizer"]["state"].items():
        flat.update({f"adam.{pid}.{k}": v for k, v in slots.items() if torch.is_tensor(v)})
    return flat

