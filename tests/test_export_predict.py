"""`ltv export-labels` and `ltv predict`: layouts, values, checkpoints, formats and mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import Cli, make_dataset
from helpers_train import TRAIN_FAST, rebuild
from ltvcli.dataset import Dataset
from ltvcli.metrics import validation_score
from ltvcli.runs.predict import load_run, predict_probabilities

LABEL_SETS = ["set0", "set1", "set2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("data") / "ds", n=40, size=16)


@pytest.fixture(scope="module")
def ltv_run(tmp_path_factory, data) -> Path:
    run = tmp_path_factory.mktemp("ltv") / "run"
    Cli()("train", data.path, "--out", run, "--method", "ltv", "--vote", "paper", "--epochs", "3", *TRAIN_FAST)
    return run


# ----------------------------------------------------------------------------- export-labels
def test_export_writes_one_row_per_image_and_class_with_the_vote(cli, tmp_path, data, ltv_run):
    cli("export-labels", ltv_run, data.path, "--out", tmp_path / "labels.csv")
    frame = pd.read_csv(tmp_path / "labels.csv")
    assert list(frame.columns) == ["image_id", "finding", "refined", "binarised"] + [f"weight_{s}" for s in LABEL_SETS]
    rows = data.indices("train")
    assert len(frame) == len(rows) * len(data.classes)
    assert list(frame["image_id"].iloc[::3]) == list(data.image_ids[rows])
    assert list(frame["finding"].iloc[:3]) == data.classes
    weights = frame[[f"weight_{s}" for s in LABEL_SETS]]
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    # weights are per image: equal across the classes of one image
    assert (weights.groupby(frame["image_id"]).nunique() == 1).all().all()
    # no label is missing here, so ȳ is the weighted vote and ỹ its differentiable binarisation (k=50, T=0.5)
    targets, _ = data.targets()
    vote = (targets[rows] * weights.to_numpy().reshape(len(rows), 3, 3).transpose(0, 2, 1)).sum(1)
    assert np.allclose(frame["refined"], vote.reshape(-1), atol=1e-5)
    assert np.allclose(frame["binarised"], 1 / (1 + np.exp(-50 * (frame["refined"] - 0.5))), atol=1e-4)


def test_export_parquet_splits_and_checkpoints(cli, tmp_path, data, ltv_run):
    cli("export-labels", ltv_run, data.path, "--out", tmp_path / "best.parquet", "--split", "validate",
        "--split", "test")
    frame = pd.read_parquet(tmp_path / "best.parquet")
    expected = np.concatenate([data.indices("validate"), data.indices("test")])
    assert list(frame["image_id"].iloc[::3]) == list(data.image_ids[expected])
    cli("export-labels", ltv_run, data.path, "--out", tmp_path / "all.csv", "--split", "all", "--checkpoint", "last")
    assert len(pd.read_csv(tmp_path / "all.csv")) == len(data) * len(data.classes)


def test_export_of_a_method_without_a_vote_has_nan_weights(cli, tmp_path, data):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--method", "single", "--label-set", "set1", "--epochs", "1", *TRAIN_FAST)
    cli("export-labels", run, data.path, "--out", tmp_path / "labels.csv")
    frame = pd.read_csv(tmp_path / "labels.csv")
    assert frame[[f"weight_{s}" for s in LABEL_SETS]].isna().all().all()
    # `single` refines nothing: its label is label set 1 itself
    rows = data.indices("train")
    assert np.array_equal(frame["refined"].to_numpy(), data.labels[rows, 1].reshape(-1).astype(float))


def test_export_refuses_a_dataset_with_other_classes_or_label_sets(cli, tmp_path, data, ltv_run):
    renamed = rebuild(data, tmp_path / "renamed", ground_truth=data.ground_truth, classes=["a", "b", "c"])
    result = cli("export-labels", ltv_run, renamed.path, "--out", tmp_path / "x.csv", ok=False)
    assert result.exit_code == 2 and "classes ['a', 'b', 'c'] differ from the run's" in result.output
    fewer = rebuild(data, tmp_path / "fewer", ground_truth=data.ground_truth, label_sets=[0, 1])
    result = cli("export-labels", ltv_run, fewer.path, "--out", tmp_path / "x.csv", ok=False)
    assert result.exit_code == 2 and "label sets ['set0', 'set1'] differ" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_unknown_table_format_is_refused_before_any_work(cli, tmp_path, data, ltv_run):
    for command in ("export-labels", "predict"):
        result = cli(command, ltv_run, data.path, "--out", tmp_path / "out.xlsx", ok=False)
        assert result.exit_code == 2 and "expected .csv or .parquet" in result.output
    assert not list(tmp_path.iterdir())


def test_a_folder_that_is_not_a_run_is_an_error(cli, tmp_path, data):
    (tmp_path / "not-a-run").mkdir()
    result = cli("predict", tmp_path / "not-a-run", data.path, "--out", tmp_path / "p.csv", ok=False)
    assert result.exit_code == 2 and "not an ltv run folder" in result.output


# ----------------------------------------------------------------------------- predict
def test_predict_writes_probabilities_that_chose_the_best_checkpoint(cli, tmp_path, data, ltv_run):
    cli("predict", ltv_run, data.path, "--out", tmp_path / "p.csv", "--split", "validate")
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == ["image"] + data.classes
    rows = data.indices("validate")
    assert list(frame["image"]) == list(data.image_ids[rows])
    probs = frame[data.classes].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()
    truth, mask = data.ground_truth_targets()
    metrics = pd.read_csv(ltv_run / "metrics.csv")
    best_auc = metrics.loc[metrics["best"], "val_auc"].iloc[-1]
    assert validation_score(probs, truth[rows], mask[rows], multilabel=True) == pytest.approx(best_auc, abs=1e-6)


def test_predict_api_checkpoints_and_all_images(cli, tmp_path, data, ltv_run):
    ids, probs = predict_probabilities(ltv_run, data, split=None, checkpoint="last", device="cpu")
    assert list(ids) == list(data.image_ids) and probs.shape == (len(data), 3)
    model, record = load_run(ltv_run, checkpoint="last")
    assert not model.training and record.classes == data.classes
    images = torch.from_numpy(np.asarray(data.images[:4])).float().div(255).unsqueeze(1)
    with torch.no_grad():
        assert np.allclose(torch.sigmoid(model(images)).numpy(), probs[:4], atol=1e-5)
    cli("predict", ltv_run, data.path, "--out", tmp_path / "p.parquet", "--split", "all", "--checkpoint", "last")
    assert np.allclose(pd.read_parquet(tmp_path / "p.parquet")[data.classes].to_numpy(), probs, atol=1e-6)


def test_predict_multiclass_gives_softmax_rows(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", task="multiclass", n=32, n_classes=4, size=16)
    cli("train", ds.path, "--out", tmp_path / "run", "--method", "mv", "--epochs", "1", *TRAIN_FAST)
    cli("predict", tmp_path / "run", ds.path, "--out", tmp_path / "p.csv")
    frame = pd.read_csv(tmp_path / "p.csv")
    assert len(frame) == len(ds.indices("test"))
    assert np.allclose(frame[ds.classes].sum(axis=1), 1.0, atol=1e-5)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "multiclass"


def test_predict_refuses_other_classes_and_channels(cli, tmp_path, data, ltv_run):
    rgb = make_dataset(tmp_path / "rgb", n=16, size=16, channels=3)
    result = cli("predict", ltv_run, rgb.path, "--out", tmp_path / "p.csv", ok=False)
    assert result.exit_code == 2 and "3-channel images, the run was trained on 1-channel" in result.output
    other = make_dataset(tmp_path / "other", n=16, size=16, n_classes=2)
    result = cli("predict", ltv_run, other.path, "--out", tmp_path / "p.csv", ok=False)
    assert result.exit_code == 2 and "differ from the run's" in result.output
