"""Refined labels of a trained run (``ltv export-labels``): what the method would train each image on.

For every image of the chosen splits and every class: the refined soft label
ȳ, its binarisation ỹ and the vote weight of each label set, computed by
``method.refine(model, batch)`` with the run's best (or last) checkpoint.
The model is in eval mode, so an image's refined label does not depend on
which other images share its batch. Long layout, one row per (image, class)::

    image_id, finding, refined, binarised, weight_<label set>, ...

Weights given per sample ([B, M]) are repeated for each class; methods with
no vote (CM, single, mv) have NaN weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ltvcli.atomic import atomic_path, write_csv
from ltvcli.console import track
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.outputs import REFINED_LABELS, check_output
from ltvcli.runs.predict import open_run, run_text_embeddings
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.runtime.inputs import model_inputs
from ltvcli.runtime.loader import ordered_batches
from ltvcli.train.data import DeviceLabels
from ltvcli.train.method import build_method

TABLE_SUFFIXES = (".csv", ".parquet")
EXPORT_SPLITS = ("train", "validate", "test")


def write_table(frame: pd.DataFrame, out: Path) -> None:
    """Write ``frame`` atomically as CSV or Parquet, chosen by the file's extension."""
    suffix = out.suffix.lower()
    if suffix == ".csv":
        write_csv(out, frame)
    elif suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401  (pandas needs it for Parquet)
        except ImportError:
            raise LtvError(f"{out}: writing Parquet needs pyarrow (pip install 'ltv[parquet]'); "
                           "or write .csv") from None
        with atomic_path(out) as tmp:
            frame.to_parquet(tmp, index=False)
    else:
        raise LtvError(f"{out}: unknown table format {suffix or '(no extension)'!r}; expected .csv or .parquet")


def check_table_path(out: Path) -> None:
    """Reject an unknown extension before any work is done."""
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise LtvError(f"{out}: unknown table format {out.suffix or '(no extension)'!r}; expected .csv or .parquet")


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
    batches = ordered_batches(rows, batch_size)
    refined, binarised, weights = [], [], []
    n_sets, n_classes = len(dataset.label_set_names), len(dataset.classes)
    with track(len(batches), "refining labels") as advance:
        for batch_rows, index, inputs in model_inputs(dataset, record.config.input, target).batches(batches):
            batch = labels.batch(index, inputs)
            with autocast(target):
                result = method.refine(model, batch)
            size = len(batch_rows)
            refined.append(_per_class(result.refined, size, n_classes))
            binarised.append(_per_class(result.binarised, size, n_classes))
            weights.append(_weights(result.weights, size, n_sets, n_classes))
            advance(1)
    return _long_table(dataset, rows, np.concatenate(refined), np.concatenate(binarised), np.concatenate(weights))


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
    """Vote weights as [B, C, M]: per-sample weights repeated over classes, NaN without a vote."""
    if weights is None:
        return np.full((size, n_classes, n_sets), np.nan, dtype=np.float32)
    w = weights.detach().float().cpu().numpy()
    return np.repeat(w[:, None, :], n_classes, axis=1) if w.ndim == 2 else w.transpose(0, 2, 1)


def _long_table(dataset: Dataset, rows: np.ndarray, refined: np.ndarray, binarised: np.ndarray,
                weights: np.ndarray) -> pd.DataFrame:
    n_classes = len(dataset.classes)
    frame = pd.DataFrame({
        "image_id": np.repeat(dataset.image_ids[rows], n_classes),
        "finding": np.tile(np.asarray(dataset.classes, dtype=object), len(rows)),
        "refined": refined.reshape(-1),
        "binarised": binarised.reshape(-1),
    })
    for m, name in enumerate(dataset.label_set_names):
        frame[f"weight_{name}"] = weights[:, :, m].reshape(-1)
    return frame
