"""`ltv train --input features`: every method on a head over image features, and the commands that read its runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_dataset
from helpers_features import features_of, write_crowd, write_npz
from helpers_ingest import error_line
from ltvcli.dataset import Dataset
from ltvcli.fusion import make_method
from ltvcli.fusion.base import Batch, masked_bce
from ltvcli.heads import build_head

FAST = ("--batch-size", "16", "--lr", "1e-2", "--device", "cpu")


@pytest.fixture(scope="module")
def crowd_dataset(tmp_path_factory, cli_module) -> Path:
    """A features-only multi-class dataset from a crowd: one careful worker and three careless ones, answering all.

    (With fewer careless workers than this, or worse ones, their majority is noise and nothing can tell which
    worker is the careful one: see the reliability vote's limits in docs/methods.md.)
    """
    root = tmp_path_factory.mktemp("crowd")
    crowd = write_crowd(root / "files", items=(200, 60, 60), accuracy=(0.95, 0.6, 0.55, 0.5), dim=6, seed=1)
    cli_module("ingest", "answers", *crowd.args(), "--out", root / "ds", "--labellers", "clean,noisy1,noisy2,noisy3")
    return root / "ds"


@pytest.fixture(scope="module")
def both(tmp_path_factory, cli_module) -> Dataset:
    """A multi-label dataset with images *and* features that carry its ground truth."""
    ds = make_dataset(tmp_path_factory.mktemp("both") / "ds", n=40)
    file = write_npz(ds.path.parent / "f.npz", ds.image_ids, features_of(ds))
    cli_module("add-features", ds.path, file)
    return Dataset.open(ds.path)


@pytest.fixture(scope="module")
def cli_module():
    from conftest import Cli

    return Cli()


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("vote", ["paper", "reliability"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_the_clean_label_set_wins_the_vote(cli, crowd_dataset, tmp_path, vote, head):
    """Known answer: worker 'clean' is right 95 % of the time, the others 50-60 %; the vote must trust it."""
    run = tmp_path / "run"
    cli("train", crowd_dataset, "--out", run, "--method", "ltv", "--vote", vote, "--head", head,
        "--epochs", "3", *FAST)
    ds = Dataset.open(crowd_dataset)
    train = ds.indices("train")
    answers, truth = ds.labels[train], ds.ground_truth[train]
    majority = (np.array([np.bincount(row, minlength=3).argmax() for row in answers]) == truth).mean()
    last = metrics(run)[-1]
    assert last["refined_accuracy"] > max(0.85, majority + 0.05)
    assert last["weight_clean"] > max(last[f"weight_noisy{j}"] for j in (1, 2, 3)) + 0.1
    labels = tmp_path / "labels.csv"
    cli("export-labels", run, crowd_dataset, "--out", labels)
    weights = pd.read_csv(labels).groupby("image_id", sort=False)[
        ["weight_clean", "weight_noisy1", "weight_noisy2", "weight_noisy3"]].sum().to_numpy()
    alone = (answers[:, 1:] != answers[:, :1]).all(axis=1)  # the clean worker against all the others
    assert alone.sum() > 10 and (weights[alone].argmax(axis=1) == 0).mean() > 0.6


@pytest.mark.parametrize("method", [("single", "--label-set", "set0"), ("single", "--label-set", "dawid_skene"),
                                    ("mv",), ("cm",), ("ltv",), ("ltv", "--vote", "reliability", "--model-evidence",
                                                                  "1"), ("ltv", "--meta-scope", "last")],
                         ids=lambda m: "-".join(m))
def test_every_method_trains_on_features_and_its_run_exports_predicts_evaluates(cli, both, tmp_path, method):
    run = tmp_path / "run"
    cli("train", both.path, "--out", run, "--input", "features", "--method", *method, "--epochs", "2", *FAST)
    record = json.loads((run / "config.json").read_text())
    assert record["version"] == 4 and record["options"]["input"] == "features"
    assert record["features"]["dim"] == 8 and record["features"]["model"] == "f.npz"
    state = torch.load(run / "best.pt", weights_only=True)["model"]
    assert set(state) == {"mean", "scale", "fc.weight", "fc.bias"}  # a linear head, not a CNN
    cli("export-labels", run, both.path, "--out", tmp_path / "labels.csv", "--split", "all")
    assert len(pd.read_csv(tmp_path / "labels.csv")) == 40 * 3
    cli("predict", run, both.path, "--out", tmp_path / "p.csv", "--split", "all")
    probs = pd.read_csv(tmp_path / "p.csv")
    assert probs.shape == (40, 4) and probs.iloc[:, 1:].stack().between(0, 1).all()
    cli("evaluate", run, "--dataset", both.path, "--bootstrap", "10", "--out", tmp_path / "ev")
    auc = pd.read_csv(tmp_path / "ev" / "auc.csv")
    assert auc.loc[auc["kind"] == "model", "auc"].notna().any()


def test_features_carry_the_signal_a_linear_head_learns(cli, both, tmp_path):
    cli("train", both.path, "--out", tmp_path / "run", "--input", "features", "--method", "single", "--label-set",
        "set0", "--epochs", "15", *FAST)
    assert metrics(tmp_path / "run")[-1]["val_auc"] > 0.9


def test_text_and_an_mlp_head_on_features(cli, both, tmp_path):
    reports = write_npz(tmp_path / "r.npz", both.image_ids, np.random.default_rng(0).normal(size=(40, 5)),
                        key="embeddings")
    cli("embed-reports", both.path, "--embeddings", reports)
    run = tmp_path / "run"
    cli("train", both.path, "--out", run, "--input", "features", "--head", "mlp", "--head-width", "16",
        "--head-dropout", "0.2", "--text", "--method", "ltv", "--epochs", "1", *FAST)
    state = torch.load(run / "best.pt", weights_only=True)["model"]
    assert state["body.0.weight"].shape == (16, 8) and state["fc.weight"].shape == (3, 16 + 512)
    cli("predict", run, both.path, "--out", tmp_path / "p.csv")


def test_the_input_defaults_to_images_where_there_are_images_and_says_so_otherwise(cli, both, crowd_dataset,
                                                                                     tmp_path):
    cli("train", both.path, "--out", tmp_path / "img", "--arch", "tiny", "--method", "mv", "--epochs", "1",
        "--max-steps", "1", *FAST)
    assert json.loads((tmp_path / "img" / "config.json").read_text())["options"]["input"] == "images"
    result = cli("train", crowd_dataset, "--out", tmp_path / "feat", "--method", "mv", "--epochs", "1",
                 "--head", "mlp", "--arch", "tiny", *FAST)
    assert "training a mlp head on the image features of" in result.output and "it has no images" in result.output
    assert "arch applies to a run on images only; ignored (this run reads features)" in result.output


@pytest.mark.parametrize("case, expect", [
    ("features the dataset lacks", "this dataset has no image features (features.npy); add them with `ltv "
                                   "add-features DATASET FILE`"),
    ("images of a dataset of features", "a dataset of image features (ingested without images) has no image cache"),
    ("pretrained weights for a head", "--pretrained is a backbone's weights, and --input features trains a head"),
])
def test_inputs_a_dataset_cannot_serve_are_one_line_errors(cli, crowd_dataset, tmp_path, case, expect):
    plain = make_dataset(tmp_path / "plain", n=12)
    weights = tmp_path / "w.pt"
    torch.save({}, weights)
    args = {"features the dataset lacks": (plain.path, "--input", "features"),
            "images of a dataset of features": (crowd_dataset, "--input", "images"),
            "pretrained weights for a head": (crowd_dataset, "--arch", "resnet18", "--pretrained", weights)}[case]
    line = error_line(cli("train", *args, "--out", tmp_path / "run", "--epochs", "1", *FAST, ok=False))
    assert expect in line and not (tmp_path / "run").exists()


def test_a_run_on_features_scores_only_features_of_its_size(cli, both, tmp_path):
    run = tmp_path / "run"
    cli("train", both.path, "--out", run, "--input", "features", "--method", "mv", "--epochs", "1", *FAST)
    other = make_dataset(tmp_path / "other", n=12)
    line = error_line(cli("predict", run, other.path, "--out", tmp_path / "p.csv", ok=False))
    assert "this dataset has no image features" in line
    cli("add-features", other.path, write_npz(tmp_path / "g.npz", other.image_ids, np.ones((12, 5), np.float32)))
    line = error_line(cli("predict", run, other.path, "--out", tmp_path / "p.csv", ok=False))
    assert "its image features have 5 dims, the run was trained on 8 dims from f.npz" in line


def test_a_run_on_features_resumes_exactly_and_refuses_replaced_features(cli, crowd_dataset, tmp_path):
    common = ("--method", "ltv", "--head", "mlp", "--head-width", "8", *FAST)
    reference, run = tmp_path / "reference", tmp_path / "run"
    cli("train", crowd_dataset, "--out", reference, "--epochs", "2", *common)
    cli("train", crowd_dataset, "--out", run, "--epochs", "2", "--max-steps", "15", *common)  # inside epoch 2
    cli("train", crowd_dataset, "--out", run, "--epochs", "2", "--resume", *common)
    mine, theirs = (torch.load(folder / "last.pt", weights_only=True) for folder in (run, reference))
    assert all(torch.equal(mine["model"][k], v) for k, v in theirs["model"].items())
    assert all(torch.equal(mine["method"][k], v) for k, v in theirs["method"].items())

    copy_ = tmp_path / "copy"
    import shutil

    shutil.copytree(crowd_dataset, copy_)
    features = np.load(copy_ / "features.npy")
    np.save(copy_ / "features.npy", features[::-1].copy())
    line = error_line(cli("train", copy_, "--out", run, "--epochs", "3", "--resume", *common, ok=False))
    assert "its image features (6 dims from" in line and "are not the ones this run was trained on" in line


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_refine_ranks_the_labels_of_a_dataset_of_features(cli, crowd_dataset, tmp_path, head):
    """Co-teaching with two heads on the features: the queue favours labels that disagree with the truth."""
    queue = tmp_path / "queue.csv"
    common = ("--budget", "30", "--out", queue, "--head", head, "--epochs", "4", "--warmup", "2", "--vog-epochs",
              "2", "--lr", "1e-2", "--workers", "0", "--device", "cpu")
    line = error_line(cli("refine", crowd_dataset, *common, ok=False))
    assert "--sheet/--no-sheet is on, but" in line and "has no images to show in it" in line
    assert not queue.exists()
    cli("refine", crowd_dataset, *common, "--no-sheet", "--labels", "noisy3")
    picked = pd.read_csv(queue)
    assert len(picked) == 30 and not queue.with_suffix(".html").exists()
    ds = Dataset.open(crowd_dataset)
    row = {image: k for k, image in enumerate(ds.image_ids)}
    rows = picked["image_id"].map(row).to_numpy()
    noisy3 = ds.label_set_names.index("noisy3")
    wrong_in_queue = (ds.labels[rows, noisy3] != ds.ground_truth[rows]).mean()
    train = ds.indices("train")
    assert wrong_in_queue > (ds.labels[train, noisy3] != ds.ground_truth[train]).mean() + 0.1


@pytest.mark.parametrize("head", ["linear", "mlp"])
@pytest.mark.parametrize("multilabel", [True, False])
@pytest.mark.parametrize("text", [False, True], ids=["closed-form", "with-text"])
def test_virtual_features_of_a_head_equal_a_literal_step_per_label_set(head, multilabel, text):
    """F_m of a head is its vote stage under θ − α∇L(ŷ, y_m): the logits (linear) or the hidden layer (mlp).

    Without text the head computes all M at once (FeatureNet.virtual_vote_features); with a text branch the
    general path of ltvcli.fusion.ltv does, one vector-Jacobian product per label set.
    """
    torch.manual_seed(0)
    net = build_head(head, 5, 3, width=7, text_dim=4 if text else None).train()
    assert net.closed_form_vote is not text
    with torch.no_grad():
        net.mean.fill_(0.5)
        net.scale.fill_(2.0)
    x = torch.randn(6, 5)
    reports = torch.randn(6, 4) if text else None
    if multilabel:
        targets = (torch.rand(6, 2, 3) < 0.5).float()
        mask = torch.rand(6, 2, 3) > 0.2
    else:
        targets = torch.nn.functional.one_hot(torch.randint(0, 3, (6, 2)), 3).float()
        mask = torch.ones(6, 2, 3, dtype=torch.bool)
    batch = Batch(images=x, targets=targets, mask=mask, index=torch.arange(6), text=reports)
    method = make_method("ltv", n_label_sets=2, n_classes=3, multilabel=multilabel, label_set_names=["a", "b"],
                         options={"alpha": 0.3})
    logits, h, _ = net(x, text=reports, return_parts=True)
    fast = method.virtual_features(net, batch, logits, h)
    for m in range(2):
        twin = copy.deepcopy(net)
        masked_bce(twin(x, text=reports), targets[:, m], mask[:, m]).backward()
        with torch.no_grad():
            for param in twin.parameters():
                param -= 0.3 * param.grad
            expected = twin.vote_features(x, reports)
        assert torch.allclose(fast[:, m], expected, atol=1e-5)
    assert fast.shape[-1] == (3 if head == "linear" else 7 + (512 if text else 0))
    assert not torch.allclose(fast[:, 0], fast[:, 1])


@pytest.mark.parametrize("batch, sets, width, dim", [(4, 3, 2, 50), (50, 3, 2, 4)], ids=["gram", "step"])
def test_both_orders_of_the_closed_form_product_agree(batch, sets, width, dim):
    from ltvcli.heads import _kernel_times

    h, v = torch.randn(batch, dim, dtype=torch.float64), torch.randn(batch, sets, width, dtype=torch.float64)
    expected = torch.einsum("ij,jmk->imk", h @ h.T + 1, v)
    assert torch.allclose(_kernel_times(h, v), expected)


def test_a_head_standardises_with_the_training_rows_statistics_in_chunks():
    """Chunked float32 sums, shifted by the first chunk's mean, match NumPy's float64 mean and sd."""
    rng = np.random.default_rng(0)
    features = (1000 + 0.01 * rng.standard_normal((500, 3))).astype(np.float32)
    rows = rng.permutation(500)[:300]
    net = build_head("linear", 3, 2)
    net.standardise_with(features, rows, chunk=64)
    part = features[rows].astype(np.float64)
    assert np.allclose(net.mean.numpy(), part.mean(0), rtol=0, atol=1e-4)
    assert np.allclose(1 / net.scale.numpy(), part.std(0), rtol=1e-3)


def test_evaluate_names_a_crowds_unlabelled_workers_in_one_warning(cli, crowd_dataset, tmp_path):
    """The workers answered training items only: on the test split each is a column without labels."""
    run = tmp_path / "run"
    cli("train", crowd_dataset, "--out", run, "--method", "mv", "--epochs", "1", *FAST)
    result = cli("evaluate", run, "--dataset", crowd_dataset, "--bootstrap", "0", "--out", tmp_path / "ev")
    warnings = [line for line in result.output.splitlines()
                if line.startswith("warning:") and "no labels on this split" in line]
    assert len(warnings) == 1
    assert "4 label sets ('clean', 'noisy1', 'noisy2' and 1 more)" in warnings[0]
