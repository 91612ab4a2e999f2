"""Refined labels of a trained run (``ltv export-labels RUN DATASET``): what the method would train each image on.

For every image of the chosen splits and every class: the refined soft label
ȳ, its binarisation ỹ and the vote weight of each label set, computed by
``method.refine(model, batch)`` with the run's best (or last) checkpoint.
The model is in eval mode, so an image's refined label does not depend on
which other images share its batch. The table's layout is
:mod:`ltvcli.fusion.table` (one row per image and class); weights given per
sample ([B, M]) are repeated for each class, and methods with no vote (CM,
single, mv) have NaN weights. Label-only fusion, without a run, is
:mod:`ltvcli.fusion.labelonly`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ltvcli.atomic import check_table_path, write_table
from ltvcli.console import track
from ltvcli.dataset import Dataset
from ltvcli.fusion.table import refined_table
from ltvcli.outputs import REFINED_LABELS, check_output
from ltvcli.runs.predict import open_run, run_text_embeddings
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.runtime.loader import ImageLoader, ordered_batches
from ltvcli.train.data import DeviceLabels
from ltvcli.train.method import build_method

EXPORT_SPLITS = ("train", "validate", "test")


def refined_labels(run: Path, dataset: Dataset, splits: tuple[str, ...] = ("train",), checkpoint: str = "best",
                   device: str = "auto", batch_size: int = 64) -> pd.DataFrame:
    """The refined labels of ``run`` on ``dataset`` (long layout, see the module docstring)."""
    target = resolve_device(device)
    model, record, state = open_run(run, checkpoint, target)
    record.check_fits(dataset, label_sets=True)
    method = build_method(record.config, dataset).to(target)
    method.load_state_dict(state["method"])
    method.eval()
    rows = np.concatenate([dataset.indices(split) for split in splits])
    labels = DeviceLabels(dataset, target, run_text_embeddings(record, dataset, rows))
    loader = ImageLoader(dataset.images, ordered_batches(rows, batch_size), pin_memory=target.type == "cuda")
    refined, binarised, weights = [], [], []
    n_sets, n_classes = len(dataset.label_set_names), len(dataset.classes)
    with track(len(loader), "refining labels") as advance:
        for batch_rows, images in loader:
            batch = labels.batch(batch_rows, images)
            with autocast(target):
                result = method.refine(model, batch)
            size = len(batch_rows)
            refined.append(_per_class(result.refined, size, n_classes))
            binarised.append(_per_class(result.binarised, size, n_classes))
            weights.append(_weights(result.weights, size, n_sets, n_classes))
            advance(1)
    return refined_table(dataset.image_ids[rows], dataset.classes, np.concatenate(refined), np.concatenate(binarised),
                         np.concatenate(weights), dataset.label_set_names)


def export_labels(run: Path, dataset: Dataset, out: Path, splits: tuple[str, ...] = ("train",),
                  checkpoint: str = "best", device: str = "auto", *, force: bool = False) -> pd.DataFrame:
    """Compute :func:`refined_labels` and write them to ``out`` (.csv or .parquet), atomically.

    ``force`` replaces an earlier export at ``out``.
    """
    check_table_path(out)
    check_output(out, REFINED_LABELS, inputs=[run, dataset.path], force=force)
    frame = refined_labels(run, dataset, splits, checkpoint, device)
    write_table(frame, out)
    return frame


def _per_class(values: torch.Tensor | None, size: int, n_classes: int) -> np.ndarray:
    """[B, C] float array; NaN where the method gives no value."""
    if values is None:
        return np.full((size, n_classes), np.nan, dtype=np.float32)
    return values.detach().float().cpu().numpy()


def _weights(weights: torch.Tensor | None, size: int, n_sets: int, n_classes: int) -> np.ndarray:
    """Vote weights as [B, M, C]: per-sample weights repeated over classes, NaN without a vote."""
    if weights is None:
        return np.full((size, n_sets, n_classes), np.nan, dtype=np.float32)
    w = weights.detach().float().cpu().numpy()
    return np.repeat(w[:, :, None], n_classes, axis=2) if w.ndim == 2 else w
