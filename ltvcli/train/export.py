"""Refined labels of a trained run (``ltv export-labels``): what the method would train each image on.

For every image of the chosen splits and every class: the refined soft label
ȳ, its binarisation ỹ and the vote weight of each label set, computed by the
refinement pass (:mod:`ltvcli.train.refinement`) with the run's best (or
last) checkpoint: the procedure training measured its ``refined_accuracy``
with, over the same batches (each split in order, the run's batch size), so
the train split's labels are the ones training reported for that epoch.
Long layout, one row per (image, class)::

    image_id, finding, refined, binarised, weight_<label set>, ...

Weights given per sample ([B, M]) are repeated for each class; methods with
no vote (CM, single, mv) have NaN weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.atomic import atomic_path, write_csv
from ltvcli.console import track
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.fusion.base import Batch
from ltvcli.outputs import REFINED_LABELS, check_output
from ltvcli.runs.predict import open_run, run_text_embeddings
from ltvcli.runtime.device import resolve_device
from ltvcli.runtime.loader import ImageLoader
from ltvcli.train.data import DeviceLabels
from ltvcli.train.method import build_method
from ltvcli.train.refinement import pass_batches, refinement_pass

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
                   device: str = "auto") -> pd.DataFrame:
    """The refined labels of ``run`` on ``dataset`` (long layout, see the module docstring)."""
    target = resolve_device(device)
    model, record, state = open_run(run, checkpoint, target)
    record.check_fits(dataset, label_sets=True)
    method = build_method(record.config, dataset).to(target)
    method.load_state_dict(state["method"])
    method.eval()
    rows = np.concatenate([dataset.indices(split) for split in splits])
    labels = DeviceLabels(dataset, target, run_text_embeddings(record, dataset, rows))
    batches = [batch for split in splits for batch in pass_batches(dataset.indices(split), record.config.batch_size)]
    loader = ImageLoader(dataset.images, batches, pin_memory=target.type == "cuda")
    with track(len(loader), "refining labels") as advance:
        result = refinement_pass(model, method, _tracked(loader, labels, advance), len(rows), target)
    return _long_table(dataset, rows, result.refined.cpu().numpy(), result.binarised.cpu().numpy(),
                       result.weights.cpu().numpy())


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


def _tracked(loader: ImageLoader, labels: DeviceLabels, advance: Callable[[int], None]) -> Iterator[Batch]:
    """The loader's batches, assembled on the device, each counted on the progress bar once refined."""
    for rows, images in loader:
        yield labels.batch(rows, images)
        advance(1)


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
