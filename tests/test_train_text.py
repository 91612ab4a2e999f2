"""`ltv train --text`: image + report embedding for every method, and the errors when embeddings are missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import Cli, make_dataset
from helpers_train import TRAIN_FAST, rebuild
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset
from ltvcli.models import TEXT_FEATURES, build_model

TEXT_DIM = 6
# 40 images: 24 train (3 steps of 8), 8 validate, 8 test
N_IMAGES = 40


def write_embeddings(data: Dataset, path: Path, *, skip: tuple[int, ...] = (), dim: int = TEXT_DIM,
                     seed: int = 0) -> Path:
    """A CSV of report vectors keyed by image_id: the ground truth (±1) plus noise, leaving out rows ``skip``.

    Real report embeddings say what the report says; these say the truth, so
    a model that reads them learns faster than from the image alone.
    """
    rng = np.random.default_rng(seed)
    truth = data.ground_truth.astype(np.float32) * 2 - 1
    vectors = rng.normal(0, 0.3, (len(data), dim)).astype(np.float32)
    vectors[:, :truth.shape[1]] += truth
    keep = np.setdiff1d(np.arange(len(data)), skip)
    frame = pd.DataFrame(vectors[keep], columns=[f"d{j}" for j in range(dim)])
    frame.insert(0, "image_id", data.image_ids[keep])
    frame.to_csv(path, index=False)
    return path


def with_embeddings(cli: Cli, data: Dataset, folder: Path, **options) -> Dataset:
    """Import ``write_embeddings`` vectors into ``data`` through `ltv embed-reports --embeddings`."""
    cli("embed-reports", data.path, "--embeddings", write_embeddings(data, folder / "vectors.csv", **options))
    return data


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Dataset:
    folder = tmp_path_factory.mktemp("text")
    return with_embeddings(Cli(), make_dataset(folder / "ds", n=N_IMAGES, noise=(0.0, 0.2, 0.3)), folder)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, data) -> Path:
    """A two-epoch learning-to-vote run with text, shared by the tests that only read or score it."""
    run = tmp_path_factory.mktemp("run") / "ltv"
    Cli()("train", data.path, "--out", run, "--method", "ltv", "--text", "--epochs", "2", *TRAIN_FAST)
    return run


def _one_line_error(result) -> str:
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


# ----------------------------------------------------------------------------- the model
def test_the_text_branch_widens_the_feature_and_the_image_path_is_unchanged():
    torch.manual_seed(0)
    image_only = build_model("tiny", 3)
    torch.manual_seed(0)
    with_text = build_model("tiny", 3, text_dim=TEXT_DIM)
    x, e = torch.rand(4, 1, 16, 16), torch.randn(4, TEXT_DIM)

    assert with_text.feature_dim == image_only.feature_dim + TEXT_FEATURES
    assert with_text.features(x, text=e).shape == (4, image_only.feature_dim + TEXT_FEATURES)
    assert torch.equal(with_text.features(x, text=e)[:, :image_only.feature_dim], image_only.features(x))
    assert not torch.equal(with_text(x, text=e), with_text(x, text=e + 1))  # the logits read the text
    assert {n for n, _ in with_text.last_scope_parameters()} >= {n for n, _ in with_text.named_parameters()
                                                                  if n.startswith("text_mlp.")}
    with pytest.raises(ValueError, match="text is missing"):
        with_text(x)
    with pytest.raises(ValueError, match="no text branch"):
        image_only(x, text=e)


# ----------------------------------------------------------------------------- every method
@pytest.mark.parametrize("method", [
    ("ltv", "--vote", "paper", "--meta-scope", "all"),
    ("ltv", "--vote", "paper", "--meta-scope", "last"),
    ("ltv", "--vote", "crossfit"),
    ("single", "--label-set", "set0"),
    ("mv",),
    ("cm",),
], ids=["ltv-all", "ltv-last", "crossfit", "single", "mv", "cm"])
def test_every_method_trains_with_text_and_its_loss_falls(method, data, tmp_path, cli):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--method", *method, "--text", "--epochs", "3", *TRAIN_FAST)

    config = json.loads((run / "config.json").read_text())
    assert config["options"]["text"] is True
    assert config["text"]["dim"] == TEXT_DIM and config["text"]["source"] == "file"
    weights = torch.load(run / "last.pt", weights_only=True)["model"]
    assert weights["text_mlp.0.weight"].shape == (TEXT_FEATURES, TEXT_DIM)
    assert weights["fc.weight"].shape == (len(data.classes), 64 + TEXT_FEATURES)
    losses = pd.read_csv(run / "metrics.csv")["loss"].to_numpy()
    assert len(losses) == 3 and losses[-1] < losses[0]
    if "paper" in method:  # the vote reads Cat(F_1..F_M) of image+text features
        attention = torch.load(run / "last.pt", weights_only=True)["method"]["attention.weight"]
        assert attention.shape == (3, 3 * (64 + TEXT_FEATURES))


def test_text_lets_a_model_learn_what_the_images_do_not_show(tmp_path, cli):
    """Blank images, informative reports: only the text run gets above chance on the validation split."""
    source = make_dataset(tmp_path / "src", n=N_IMAGES, noise=(0.0, 0.0, 0.0), seed=1)
    blank = build_dataset(DatasetSpec(task=source.task, classes=source.classes, manifest=source.manifest.copy(),
                                      label_sets=source.label_sets, labels=np.asarray(source.labels),
                                      ground_truth=source.ground_truth, source={"name": "blank"},
                                      pixels=np.zeros_like(np.asarray(source.images))), tmp_path / "blank", size=16,
                          channels=1)
    with_embeddings(cli, blank, tmp_path)
    scores = {}
    for name, flags in (("image", ()), ("text", ("--text",))):
        run = tmp_path / name
        cli("train", blank.path, "--out", run, "--method", "mv", "--epochs", "4", *flags, *TRAIN_FAST)
        scores[name] = pd.read_csv(run / "metrics.csv")["val_auc"].max()
    assert scores["image"] <= 0.6 < 0.9 <= scores["text"], scores


# ----------------------------------------------------------------------------- predict, evaluate, export
def test_predict_evaluate_and_export_read_the_embeddings(text_run, data, tmp_path, cli):
    predictions = tmp_path / "pred.csv"
    cli("predict", text_run, data.path, "--out", predictions, "--split", "all", "--device", "cpu")
    probs = pd.read_csv(predictions)
    assert probs["image"].tolist() == data.image_ids.tolist()

    # the same images with other report vectors get other probabilities: the text reaches the prediction
    other = rebuild(data, tmp_path / "other", ground_truth=data.ground_truth)
    with_embeddings(cli, other, tmp_path, seed=7)
    cli("predict", text_run, other.path, "--out", tmp_path / "other.csv", "--split", "all", "--device", "cpu")
    changed = pd.read_csv(tmp_path / "other.csv")[data.classes].to_numpy()
    assert np.abs(changed - probs[data.classes].to_numpy()).max() > 1e-4

    result = cli("evaluate", f"text={text_run}", "--dataset", data.path, "--bootstrap", "0", "--device", "cpu",
                 "--out", tmp_path / "eval")
    auc = pd.read_csv(tmp_path / "eval" / "auc.csv")
    assert "text" in result.output and "text" in auc.to_csv()

    table = tmp_path / "labels.csv"
    cli("export-labels", text_run, data.path, "--out", table, "--split", "all", "--device", "cpu")
    frame = pd.read_csv(table)
    assert len(frame) == len(data) * len(data.classes)
    assert np.allclose(frame[[f"weight_{n}" for n in data.label_set_names]].sum(axis=1), 1, atol=1e-5)


# ----------------------------------------------------------------------------- errors
def test_a_dataset_without_embeddings_is_refused_before_anything_is_written(tmp_path, cli):
    plain = make_dataset(tmp_path / "plain", n=N_IMAGES)
    run = tmp_path / "run"
    line = _one_line_error(cli("train", plain.path, "--out", run, "--text", *TRAIN_FAST, ok=False))
    assert "--text" in line and str(plain.path) in line and "no report embeddings" in line
    assert "ltv embed-reports" in line
    assert not run.exists()


def test_missing_embeddings_are_counted_per_split(tmp_path, cli):
    partial = make_dataset(tmp_path / "partial", n=N_IMAGES)
    with_embeddings(cli, partial, tmp_path, skip=(0, 5, 39))  # two train images, one test image
    run = tmp_path / "run"
    line = _one_line_error(cli("train", partial.path, "--out", run, "--text", *TRAIN_FAST, ok=False))
    assert "2 of 24 images of split train" in line and "1 of 8 images of split test" in line
    assert "validate" not in line
    assert not run.exists()


def test_a_text_run_needs_embeddings_where_it_predicts_and_exports(text_run, data, tmp_path, cli):
    plain = rebuild(data, tmp_path / "plain", ground_truth=data.ground_truth)
    for command in (("predict", text_run, plain.path, "--out", tmp_path / "p.csv"),
                    ("export-labels", text_run, plain.path, "--out", tmp_path / "e.csv")):
        line = _one_line_error(cli(*command, "--device", "cpu", ok=False))
        assert "trained with --text" in line and "no report embeddings" in line and "ltv embed-reports" in line
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "e.csv").exists()

    with_embeddings(cli, plain, tmp_path, skip=(34, 36))  # two of the 8 test images
    line = _one_line_error(cli("predict", text_run, plain.path, "--out", tmp_path / "p.csv", "--device", "cpu",
                               ok=False))
    assert "2 of the 8 images to score have no report embedding" in line
    cli("predict", text_run, plain.path, "--out", tmp_path / "p.csv", "--split", "train", "--device", "cpu")

    with_embeddings(cli, plain, tmp_path, dim=TEXT_DIM + 2)
    line = _one_line_error(cli("predict", text_run, plain.path, "--out", tmp_path / "p.csv", "--device", "cpu",
                               "--force", ok=False))
    assert f"{TEXT_DIM + 2} dims" in line and f"{TEXT_DIM}-dim" in line


def test_resume_refuses_replaced_embeddings(data, tmp_path, cli):
    copy = rebuild(data, tmp_path / "copy", ground_truth=data.ground_truth)
    with_embeddings(cli, copy, tmp_path)
    run = tmp_path / "run"
    cli("train", copy.path, "--out", run, "--method", "mv", "--text", "--epochs", "1", *TRAIN_FAST)
    with_embeddings(cli, copy, tmp_path, dim=TEXT_DIM + 2)
    line = _one_line_error(cli("train", copy.path, "--out", run, "--method", "mv", "--text", "--epochs", "2",
                               "--resume", *TRAIN_FAST, ok=False))
    assert "report embeddings" in line and f"{TEXT_DIM + 2} dims" in line and f"{TEXT_DIM} dims" in line
