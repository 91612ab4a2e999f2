"""`ltv train`: every method end to end, the run folder, exact resume, and the errors a user can hit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import Cli, make_dataset
from helpers_train import TRAIN_FAST, checkpoint_tensors, rebuild
from ltvcli.dataset import Dataset
from ltvcli.dataset.fingerprint import dataset_fingerprint
from ltvcli.train import trainer as loop

# 40 images: 24 train (3 steps of 8 per epoch), 8 validate, 8 test
N_IMAGES, STEPS_PER_EPOCH = 40, 3

#: These tests were written for the paper's vote (its options, its diagnostics); the default vote is crossfit.
PAPER = ("--method", "ltv", "--vote", "paper")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("data") / "ds", n=N_IMAGES, size=16, noise=(0.0, 0.2, 0.3))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> Path:
    """An uninterrupted two-epoch LTV run: what every resumed run must reproduce exactly."""
    run = tmp_path_factory.mktemp("ref") / "run"
    Cli()("train", data.path, "--out", run, *PAPER, "--epochs", "2", *TRAIN_FAST)
    return run


def _metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv")


def _assert_same_state(run: Path, reference: Path, ignore: tuple[str, ...] = ()) -> None:
    """Bit-identical final model, method and optimizer state, and the same per-epoch records."""
    mine, ref = checkpoint_tensors(run), checkpoint_tensors(reference)
    assert mine.keys() == ref.keys()
    for name in ref:
        assert torch.equal(mine[name], ref[name]), f"{name} differs from the uninterrupted run"
    drop = ["img_per_s", *ignore]
    full = _metrics(run)
    full = full[~full["partial"]].drop(columns=drop).reset_index(drop=True)
    pd.testing.assert_frame_equal(full, _metrics(reference).drop(columns=drop))


# ----------------------------------------------------------------------------- the run folder
def test_run_folder_records_options_dataset_and_ltv_diagnostics(reference, data, tmp_path):
    config = json.loads((reference / "config.json").read_text())
    assert config["classes"] == data.classes and config["label_sets"] == ["set0", "set1", "set2"]
    assert config["dataset"]["fingerprint"] == dataset_fingerprint(data) != dataset_fingerprint(
        rebuild(data, tmp_path / "relabelled", label_sets=[1, 0, 2], ground_truth=data.ground_truth))
    assert config["dataset"]["path"] == str(data.path.resolve())
    assert config["options"]["alpha"] == 0.2 and config["options"]["k"] == 50 and config["options"]["lr"] == 1e-3
    assert config["method_options"]["meta_scope"] == "all"
    assert config["validation"] == {"metric": "auc", "reference": "ground_truth"}
    assert (reference / "best.pt").is_file() and (reference / "last.pt").is_file()

    metrics = _metrics(reference)
    jsonl = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in jsonl] == list(metrics["epoch"]) == [1, 2]
    assert list(metrics["step"]) == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert (metrics["loss"] > 0).all() and metrics["val_auc"].between(0, 1).all() and (metrics["img_per_s"] > 0).all()
    weights = metrics[["weight_set0", "weight_set1", "weight_set2"]]
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert ((metrics["vote_entropy"] > 0) & (metrics["vote_entropy"] <= math.log(3) + 1e-6)).all()
    assert metrics["refined_accuracy"].between(0, 1).all()
    # set0 is noise-free, so no weight ever lands on a wrong set0 label
    assert metrics["weight_wrong_set0"].isna().all() and metrics["weight_correct_set0"].notna().all()
    assert metrics["best"].iloc[0]
    best = torch.load(reference / "best.pt", weights_only=True)
    assert best["best_metric"] == metrics.loc[metrics["best"], "val_auc"].iloc[-1]


@pytest.mark.parametrize("method, extra", [
    ("ltv", ("--meta-scope", "last")),
    ("single", ("--label-set", "set2")),
    ("single", ("--label-set", "dawid_skene")),
    ("mv", ()),
    ("cm", ()),
])
def test_every_method_trains_through_the_cli(cli, tmp_path, data, method, extra):
    cli("train", data.path, "--out", tmp_path / "run", "--method", method, *extra, "--epochs", "1", *TRAIN_FAST)
    metrics = _metrics(tmp_path / "run")
    assert len(metrics) == 1 and metrics["loss"].iloc[0] > 0 and 0 <= metrics["val_auc"].iloc[0] <= 1
    assert ("weight_set0" in metrics) == (method == "ltv")
    if extra == ("--label-set", "set2"):
        # the refined label of `single` is label set 2 itself: its accuracy is set 2's agreement with the truth
        rows = data.indices("train")
        agree = (data.labels[rows, 2] == data.ground_truth[rows]).mean()
        assert metrics["refined_accuracy"].iloc[0] == pytest.approx(agree)


def test_ltv_learns_to_trust_the_clean_label_set(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", n=64, size=16, noise=(0.0, 0.4, 0.4), seed=3)
    cli("train", ds.path, "--out", tmp_path / "run", *PAPER, "--meta-scope", "last", "--epochs", "4",
        *TRAIN_FAST)
    last = _metrics(tmp_path / "run").iloc[-1]
    assert last["val_auc"] > 0.9
    assert last["weight_set0"] > max(last["weight_set1"], last["weight_set2"])
    assert last["weight_correct"] > last["weight_wrong"]


def test_multiclass_is_scored_by_accuracy(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", task="multiclass", n=40, n_classes=4, size=16)
    cli("train", ds.path, "--out", tmp_path / "run", *PAPER, "--epochs", "1", *TRAIN_FAST)
    metrics = _metrics(tmp_path / "run")
    assert "val_accuracy" in metrics and metrics["val_accuracy"].between(0, 1).all()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "multiclass" and config["validation"]["metric"] == "accuracy"


def test_without_validation_truth_the_majority_vote_is_the_reference(cli, tmp_path, data):
    truth = data.ground_truth.copy()
    truth[data.indices("validate")] = -1
    ds = rebuild(data, tmp_path / "ds", ground_truth=truth)
    cli("train", ds.path, "--out", tmp_path / "run", "--method", "mv", "--epochs", "1", *TRAIN_FAST)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["validation"]["reference"] == "majority_vote"
    metrics = _metrics(tmp_path / "run")
    assert metrics["val_reference"].iloc[0] == "majority_vote" and 0 <= metrics["val_auc"].iloc[0] <= 1


def test_without_a_validate_split_best_follows_last(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", n=32, size=16, splits=(0.75, 0.0))
    result = cli("train", ds.path, "--out", tmp_path / "run", "--method", "mv", "--epochs", "2", *TRAIN_FAST)
    assert "no validate split" in result.output
    metrics = _metrics(tmp_path / "run")
    assert metrics["best"].all() and metrics["val_auc"].isna().all()
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["epoch"] == 2


# ----------------------------------------------------------------------------- resume
def test_resume_after_an_epoch_reproduces_the_uninterrupted_run(cli, tmp_path, data, reference):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, *PAPER, "--epochs", "1", *TRAIN_FAST)
    result = cli("train", data.path, "--out", run, *PAPER, "--epochs", "2", "--resume", *TRAIN_FAST)
    assert "resuming" in result.output
    _assert_same_state(run, reference)


def test_resume_after_a_kill_mid_epoch_reproduces_the_uninterrupted_run(cli, tmp_path, data, reference,
                                                                         monkeypatch):
    run = tmp_path / "run"
    real_step, calls = loop.train_step, []

    def killed_at_fifth_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", killed_at_fifth_step)
    result = cli("train", data.path, "--out", run, *PAPER, "--epochs", "2", "--checkpoint-every", "2",
                 *TRAIN_FAST, ok=False)
    assert result.exit_code == 130
    state = torch.load(run / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 1, 4)  # saved at step 4, mid-epoch 2
    monkeypatch.setattr(loop, "train_step", real_step)
    cli("train", data.path, "--out", run, *PAPER, "--epochs", "2", "--resume", *TRAIN_FAST)
    _assert_same_state(run, reference)


def test_max_steps_stops_resumably_with_a_partial_validation(cli, tmp_path, data, reference):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, *PAPER, "--epochs", "2", "--max-steps", "2", *TRAIN_FAST)
    metrics = _metrics(run)
    assert list(metrics["step"]) == [2] and metrics["partial"].all() and (run / "best.pt").is_file()
    cli("train", data.path, "--out", run, *PAPER, "--epochs", "2", "--resume", *TRAIN_FAST)
    _assert_same_state(run, reference, ignore=("best",))  # the partial validation competed for best


# ----------------------------------------------------------------------------- errors
def _fails(cli, *args) -> str:
    result = cli(*args, ok=False)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_an_existing_run_needs_resume_and_resume_needs_a_run(cli, tmp_path, data, reference):
    message = _fails(cli, "train", data.path, "--out", reference, *TRAIN_FAST)
    assert "--resume" in message and "--out" in message
    message = _fails(cli, "train", data.path, "--out", tmp_path / "new", "--resume", *TRAIN_FAST)
    assert "nothing to resume" in message and not (tmp_path / "new" / "last.pt").exists()


def test_resume_refuses_changed_options_and_another_dataset(cli, tmp_path, data, reference):
    message = _fails(cli, "train", data.path, "--out", reference, *PAPER, "--resume", *TRAIN_FAST[:-4], "--lr",
                     "0.01", "--device", "cpu")
    assert "--lr 0.001 -> 0.01" in message
    other = make_dataset(tmp_path / "other", n=N_IMAGES, size=16, seed=9)
    message = _fails(cli, "train", other.path, "--out", reference, *PAPER, "--resume", *TRAIN_FAST)
    assert "not the dataset this run was trained on" in message


@pytest.mark.parametrize("args, expected", [
    (("--alpha", "0", "--vote", "paper"), "--alpha 0.0: expected a positive number"),
    (("--alpha", "-1", "--vote", "paper"), "--alpha -1.0: expected a positive number"),
    (("--threshold", "1.5", "--vote", "paper"), "--threshold 1.5: expected a number strictly between 0 and 1"),
    (("--batch-size", "0"), "--batch-size 0: expected a positive number"),
    (("--lr", "nan"), "--lr nan: expected a positive number"),
    (("--method", "vote"), "--method 'vote': expected one of ltv, single, mv, cm"),
    (("--arch", "vgg"), "--arch 'vgg': expected one of tiny"),
    (("--meta-scope", "first", "--vote", "paper"), "--meta-scope 'first': expected one of all, last"),
    (("--method", "single"), "--method single needs --label-set"),
    (("--method", "single", "--label-set", "nlp"), "unknown --label-set 'nlp'"),
    (("--pretrained", "weights.pt"), "--pretrained needs a ResNet --arch"),
])
def test_bad_options_fail_in_one_line_before_anything_is_written(cli, tmp_path, data, args, expected):
    message = _fails(cli, "train", data.path, "--out", tmp_path / "run", *TRAIN_FAST, *args)
    assert expected in message
    assert not (tmp_path / "run" / "last.pt").exists()


def test_cuda_without_a_gpu_is_an_error(cli, tmp_path, data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = _fails(cli, "train", data.path, "--out", tmp_path / "run", *TRAIN_FAST, "--device", "cuda")
    assert "--device cuda: no CUDA device" in message


def test_methods_that_fuse_need_two_label_sets(cli, tmp_path, data):
    one = rebuild(data, tmp_path / "one", label_sets=[0], ground_truth=data.ground_truth)
    for method in ("ltv", "mv", "cm"):
        assert "needs at least 2 label sets" in _fails(cli, "train", one.path, "--out", tmp_path / "run",
                                                       "--method", method, *TRAIN_FAST)
    none = rebuild(data, tmp_path / "none", label_sets=[], ground_truth=data.ground_truth)
    assert "has no label sets" in _fails(cli, "train", none.path, "--out", tmp_path / "run", "--method", "single",
                                         "--label-set", "soft_mean", *TRAIN_FAST)


def test_compile_wraps_the_training_model_only(cli, tmp_path, data, monkeypatch):
    """--compile hands the training module to torch.compile (stubbed here: compiling takes a minute on CPU)."""
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    cli("train", data.path, "--out", tmp_path / "run", "--method", "mv", "--epochs", "1", "--compile", *TRAIN_FAST)
    assert len(compiled) == 1 and type(compiled[0]).__name__ == "LtvNet"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["options"]["compile"] is True


def test_pretrained_weights_initialise_the_backbone(cli, tmp_path, data):
    import torchvision

    weights = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(weights, tmp_path / "r18.pt")
    args = ("train", data.path, "--method", "mv", "--epochs", "1", "--arch", "resnet18", "--batch-size", "8",
            "--device", "cpu", "--lr", "1e-12", "--max-steps", "1")
    cli(*args, "--out", tmp_path / "run", "--pretrained", tmp_path / "r18.pt")
    model = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    # the stem is conv1, bn1, relu, (no max-pool at 16 px), layer1..3: layer1 is its fifth module
    assert torch.allclose(model["stem.4.0.conv1.weight"], weights["layer1.0.conv1.weight"], atol=1e-6)
    assert torch.allclose(model["last.1.conv2.weight"], weights["layer4.1.conv2.weight"], atol=1e-6)
    message = _fails(cli, *args, "--out", tmp_path / "run2", "--pretrained", tmp_path / "missing.pt")
    assert "missing.pt: --pretrained file not found" in message


def test_a_python_parameter_error_is_shown_as_its_flag(cli, tmp_path, data, monkeypatch):
    """The core names the parameter (``device``); the CLI prints the flag that sets it (``--device``)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = cli("train", data.path, "--out", tmp_path / "run", *TRAIN_FAST[:-1], "cuda", ok=False)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: --device cuda: no CUDA device is available here "
                                                  "(use cpu or auto)"]
    assert not (tmp_path / "run").exists()
