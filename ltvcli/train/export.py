"""Refined labels of a trained run (``ltv export-labels RUN DATASET``): what the method would train each image on.

For every image of the chosen splits and every class: the refined soft label
ȳ, its binarisation ỹ and the vote weight of each label set, computed by the
refinement pass (:mod:`ltvcli.train.refinement`) with the run's best (or
last) checkpoint: the procedure training measured its ``refined_accuracy``
with, over the same batches (each split in order, the run's batch size), so
the train split's labels are the ones training reported for that epoch.
The table's layout is :mod:`ltvcli.fusion.table` (one row per image and
class); weights given per sample ([B, M]) are repeated for each class, and
methods with no vote (CM, single, mv) have NaN weights. Label-only fusion,
without a run, is :mod:`ltvcli.fusion.labelonly`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.atomic import check_table_path, write_table
from ltvcli.console import track
from ltvcli.dataset import Dataset
from ltvcli.fusion.base import Batch
from ltvcli.fusion.table import refined_table
from ltvcli.outputs import REFINED_LABELS, check_output
from ltvcli.runs.predict import open_run, run_text_embeddings
from ltvcli.runtime.device import resolve_device
from ltvcli.runtime.inputs import model_inputs
from ltvcli.train.data import DeviceLabels
from ltvcli.train.method import build_method
from ltvcli.train.refinement import pass_batches, refinement_pass

EXPORT_SPLITS = ("train", "validate", "test")


def refined_labels(run: Path, dataset: Dataset, splits: tuple[str, ...] = ("train",), checkpoint: str = "best",
                   device: str = "auto") -> pd.DataFrame:
    """The refined labels of ``run`` on ``dataset`` (long layout, see the module docstring)."""
    target = resolve_device(device)
    model, record, state = open_run(run, checkpoint, target)
    record.check_fits(dataset, label_sets=True)
    method = build_method(record.config, dataset, model).to(target)
    method.load_state_dict(state["method"])
    method.eval()
    rows = np.concatenate([dataset.indices(split) for split in splits])
    labels = DeviceLabels(dataset, target, run_text_embeddings(record, dataset, rows))
    batches = [batch for split in splits for batch in pass_batches(dataset.indices(split), record.config.batch_size)]
    inputs = model_inputs(dataset, record.config.input, target)
    with track(len(batches), "refining labels") as advance:
        result = refinement_pass(model, method, _tracked(inputs.batches(batches), labels, advance), len(rows), target)
    return refined_table(dataset.image_ids[rows], dataset.classes, result.refined.cpu().numpy(),
                         result.binarised.cpu().numpy(), result.weights.cpu().numpy(), dataset.label_set_names)


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


def _tracked(batches: Iterator, labels: DeviceLabels, advance: Callable[[int], None]) -> Iterator[Batch]:
    """The model inputs' batches, assembled on the device, each counted on the progress bar once refined."""
    for _, index, inputs in batches:
        yield labels.batch(index, inputs)
        advance(1)
