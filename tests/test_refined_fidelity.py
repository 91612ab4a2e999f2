"""The refined labels `ltv export-labels` writes are the ones training reported (issue #16, finding 1).

Training measures ``refined_accuracy`` with the epoch-end refinement pass;
export runs the same pass on the saved checkpoint. For every vote and
baseline, the exported labels' accuracy on the train split equals the
metric of the checkpoint's epoch, for the best and the last checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_dataset
from helpers_train import TRAIN_FAST
from ltvcli.dataset import Dataset

METHODS = {
    "paper": ("--method", "ltv", "--vote", "paper"),
    "reliability": ("--method", "ltv", "--vote", "reliability"),
    "reliability-model-evidence": ("--method", "ltv", "--vote", "reliability", "--model-evidence", "1"),
    "crossfit": ("--method", "ltv", "--vote", "crossfit"),
    "dawid-skene": ("--method", "single", "--label-set", "dawid_skene"),
    "mv": ("--method", "mv"),
    "cm": ("--method", "cm"),
}


@pytest.fixture(scope="module", params=["multilabel", "multiclass"])
def data(request, tmp_path_factory) -> Dataset:
    # a train split whose size is no multiple of the batch size: the pass's last batch is short
    return make_dataset(tmp_path_factory.mktemp("data") / "ds", task=request.param, n=58, size=16,
                        noise=(0.3, 0.3, 0.3), seed=5)


def exported_accuracy(frame: pd.DataFrame, data: Dataset) -> float:
    """Accuracy of the exported binarised labels of the train split against its ground truth."""
    rows = data.indices("train")
    labels = frame["binarised"].to_numpy().reshape(len(rows), len(data.classes))
    truth, _ = data.ground_truth_targets()
    if data.is_multilabel:
        return float(np.mean((labels >= 0.5) == (truth[rows] >= 0.5)))
    return float(np.mean(labels.argmax(1) == truth[rows].argmax(1)))


@pytest.mark.parametrize("name", list(METHODS))
def test_export_gives_the_refined_labels_training_reported(cli, tmp_path, data, name):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, *METHODS[name], "--epochs", "3", *TRAIN_FAST, "--batch-size", "8")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = [r for r in records if r["best"]][-1]
    for checkpoint, record in (("best", best), ("last", records[-1])):
        out = tmp_path / f"{checkpoint}.csv"
        cli("export-labels", run, data.path, "--out", out, "--checkpoint", checkpoint)
        assert exported_accuracy(pd.read_csv(out), data) == pytest.approx(record["refined_accuracy"], abs=1e-12)
    assert all("step_refined_accuracy" in r for r in records)
