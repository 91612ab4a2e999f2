"""The reliability vote (``--vote reliability``) and the degenerate-vote warning, on data with a known answer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_dataset
from helpers_train import TRAIN_FAST
from ltvcli.fusion import make_method
from ltvcli.fusion.aggregators import dawid_skene, majority_vote
from ltvcli.fusion.base import Batch
from ltvcli.fusion.vote import ReliabilityVote
from ltvcli.models import build_model
from ltvcli.runs.config import TrainConfig
from ltvcli.train.diagnostics import vote_warning

NAMES = ["clean", "noisy", "adversary"]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def reliability(multilabel: bool, n_classes: int = 3, **options) -> ReliabilityVote:
    return make_method("ltv", n_label_sets=3, n_classes=n_classes, multilabel=multilabel, label_set_names=NAMES,
                       options={"vote": "reliability", **options})


def disagreeing_batch(multilabel: bool, n: int = 24, seed: int = 0) -> Batch:
    """Random labels from three label sets, which disagree on most (sample, class) entries."""
    g = torch.Generator().manual_seed(seed)
    if multilabel:
        targets = (torch.rand(n, 3, 3, generator=g) < 0.5).float()
    else:
        targets = torch.nn.functional.one_hot(torch.randint(0, 3, (n, 3), generator=g), 3).float()
    return Batch(images=torch.rand(n, 1, 16, 16, generator=g), targets=targets,
                 mask=torch.ones_like(targets, dtype=torch.bool), index=torch.arange(n))


@pytest.mark.parametrize("task,evidence", [("multilabel", "0"), ("multiclass", "0"), ("multiclass", "1")])
def test_reliability_vote_believes_the_clean_set_and_ignores_the_adversary(cli, tmp_path, task, evidence):
    # label set 0 is clean, 1 and 2 flip 30 % of their labels, 3 flips 90 % (an adversary)
    data = make_dataset(tmp_path / "ds", task=task, n=60, label_sets=4, noise=(0.0, 0.3, 0.3, 0.9), seed=1)
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--method", "ltv", "--vote", "reliability", "--model-evidence", evidence,
        "--epochs", "2", *TRAIN_FAST)
    last = metrics(run)[-1]

    weights = [last[f"weight_set{m}"] for m in range(4)]
    assert weights[0] == max(weights) and weights[0] > 0.35
    assert weights[3] <= 0.05
    assert last["weight_correct"] > 5 * last["weight_wrong"]
    # refined labels better than the majority vote of the same training labels
    train = data.indices("train")
    targets, mask = data.targets()
    mv, _ = majority_vote(targets[train], mask[train], multilabel=data.is_multilabel)
    truth, _ = data.ground_truth_targets()
    truth = torch.as_tensor(truth[train])
    mv_accuracy = float((mv == truth).float().mean()) if data.is_multilabel else \
        float((mv.argmax(1) == truth.argmax(1)).float().mean())
    assert last["refined_accuracy"] >= 0.9 and last["refined_accuracy"] > mv_accuracy + 0.05
    assert last["vote_warning"] is None


def test_crossfit_is_the_default_vote_and_an_old_record_stays_the_paper(cli, tmp_path):
    data = make_dataset(tmp_path / "ds", n=40)
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--epochs", "1", "--max-steps", "1", *TRAIN_FAST)
    config = json.loads((run / "config.json").read_text())
    assert config["method_options"]["vote"] == "crossfit" and config["options"]["vote"] == "crossfit"
    # a record written before there were votes names none: it was the paper's
    options = {name: value for name, value in config["options"].items() if name not in ("vote", "folds",
                                                                                          "head_lr_scale",
                                                                                          "head_decay")}
    assert TrainConfig.from_json(options).vote == "paper"


def test_identical_label_sets_trigger_the_uniform_warning(cli, tmp_path):
    # three identical label sets: nothing to choose between, every weight is exactly 1/3
    data = make_dataset(tmp_path / "ds", n=40, noise=(0.0, 0.0, 0.0))
    run = tmp_path / "run"
    result = cli("train", data.path, "--out", run, "--vote", "reliability", "--epochs", "1", *TRAIN_FAST)
    last = metrics(run)[-1]
    assert last["vote_warning"].startswith("uniform")
    assert "the vote is degenerate (uniform" in result.output
    assert last["vote_entropy"] == pytest.approx(math.log(3), abs=1e-4)


def test_vote_warning_rule():
    assert vote_warning({"a": 0.95, "b": 0.03, "c": 0.02}, 0.2).startswith("collapse: label set a")
    assert vote_warning({"a": 0.34, "b": 0.33, "c": 0.33}, 0.99 * math.log(3)).startswith("uniform")
    # near-uniform means but confident per-sample votes: the vote does choose, per sample
    assert vote_warning({"a": 0.34, "b": 0.33, "c": 0.33}, 0.5) is None
    assert vote_warning({"a": 0.6, "b": 0.3, "c": 0.1}, 0.9) is None
    assert vote_warning({"a": 1.0}, 0.0) is None


@pytest.mark.parametrize("multilabel", [True, False], ids=["multilabel", "multiclass"])
def test_weights_sum_to_one_and_reproduce_the_refined_label(multilabel):
    batch = disagreeing_batch(multilabel)
    method = reliability(multilabel)
    method.fit_labels(batch.targets.numpy(), batch.mask.numpy())
    torch.manual_seed(0)
    net = build_model("tiny", 3, in_channels=1).train()
    result = method.step(net, batch)

    assert result.weights.shape == (len(batch.images), 3, 3)
    assert torch.allclose(result.weights.sum(1), torch.ones(len(batch.images), 3), atol=1e-5)
    said = batch.targets.sum(1)  # how many sets said each (sample, class)
    if multilabel:  # where both states were said, ȳ = Σ_m w_m y_m exactly
        disagree = (said > 0) & (said < 3)
        expected = result.refined
    else:  # the posterior over the classes some set said, renormalised
        disagree = (said.max(1).values < 3)[:, None].expand_as(said)
        restricted = result.refined * (said > 0)
        expected = restricted / restricted.sum(1, keepdim=True)
    assert disagree.float().mean() > 0.5
    weighted = (result.weights * batch.targets).sum(1)
    assert torch.allclose(weighted[disagree], expected[disagree], atol=1e-5)


def test_vote_starts_at_dawid_skene_and_its_gradient_reaches_only_the_attention():
    batch = disagreeing_batch(True)
    method = reliability(True)
    method.fit_labels(batch.targets.numpy(), batch.mask.numpy())
    expected, _ = dawid_skene(batch.targets, batch.mask, multilabel=True)
    torch.manual_seed(0)
    net = build_model("tiny", 3, in_channels=1).train()
    result = method.step(net, batch)
    assert torch.allclose(result.refined, expected.float(), atol=1e-4)  # zero scores: λ = 1, plain Dawid-Skene
    result.loss.backward()
    assert method.attention.weight.grad.abs().sum() > 0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("multilabel", [True, False])
def test_model_evidence_moves_the_posterior_towards_the_model(multilabel):
    """γ = 1 replaces the class prior by the model's prediction: each refined label moves towards the model."""
    batch = disagreeing_batch(multilabel)
    results, bases = [], []
    for evidence in (0.0, 1.0):
        method = reliability(multilabel, model_evidence=evidence)
        method.fit_labels(batch.targets.numpy(), batch.mask.numpy())
        torch.manual_seed(0)
        net = build_model("tiny", 3, in_channels=1).train()
        with torch.no_grad():
            net.fc.bias.copy_(torch.tensor([2.0, -2.0, 0.0]))  # a model with an opinion
        results.append(method.step(net, batch))
        bases.append(method.base_log_prior(results[-1].logits))
    plain, informed = results
    if multilabel:
        model = torch.sigmoid(plain.logits)
        expected = torch.stack((torch.log1p(-model), model.log()), dim=-1)
        assert torch.allclose(bases[1], expected, atol=1e-5)
        prior = torch.sigmoid(bases[0][..., 1] - bases[0][..., 0])
        moved = informed.refined - plain.refined
        open_ = (plain.refined > 0.02) & (plain.refined < 0.98)
        assert open_.float().mean() > 0.3
        assert (torch.sign(moved[open_]) == torch.sign(model - prior)[open_]).all()
    else:
        assert torch.allclose(bases[1][:, 0], torch.log_softmax(plain.logits, dim=-1), atol=1e-5)
        assert (informed.refined[:, 0] > plain.refined[:, 0]).float().mean() > 0.9  # class 0 favoured by the model
    assert torch.allclose(informed.weights.sum(1), torch.ones_like(informed.weights[:, 0]), atol=1e-5)


def test_trusted_label_set_adds_its_term_and_expert_is_trusted_by_default():
    batch = disagreeing_batch(True)
    plain, trusted = reliability(True), reliability(True, trusted="clean")
    assert plain.trusted is None and trusted.trusted == 0
    expert = make_method("ltv", n_label_sets=3, n_classes=3, multilabel=True, label_set_names=["a", "expert", "b"],
                         options={"vote": "reliability"})
    assert expert.trusted == 1
    losses = []
    for method in (plain, trusted):
        method.fit_labels(batch.targets.numpy(), batch.mask.numpy())
        torch.manual_seed(0)
        net = build_model("tiny", 3, in_channels=1).train()
        losses.append(method.step(net, batch).loss.item())
    assert losses[1] > losses[0] + 0.1


def test_export_labels_of_a_reliability_run_gives_per_class_weights(cli, tmp_path):
    data = make_dataset(tmp_path / "ds", n=40, label_sets=4, noise=(0.0, 0.3, 0.3, 0.9))
    run, out = tmp_path / "run", tmp_path / "labels.csv"
    cli("train", data.path, "--out", run, "--vote", "reliability", "--epochs", "1", *TRAIN_FAST)
    cli("export-labels", run, data.path, "--out", out)
    table = pd.read_csv(out)
    weights = table[[f"weight_set{m}" for m in range(4)]].to_numpy()
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert weights[:, 3].mean() < 0.05 < 0.3 < weights[:, 0].mean()


@pytest.mark.parametrize("args, message", [
    (("--vote", "best"), "--vote 'best': expected one of paper, reliability"),
    (("--vote", "reliability", "--trusted", "oracle"), "unknown --trusted 'oracle'"),
    (("--vote", "reliability", "--model-evidence", "1.5"), "--model-evidence 1.5: expected a number between 0 and 1"),
])
def test_bad_vote_options_are_one_line_errors(cli, tmp_path, tiny_dataset, args, message):
    result = cli("train", tiny_dataset.path, "--out", tmp_path / "run", "--epochs", "1", *args, *TRAIN_FAST,
                 ok=False)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "run" / "last.pt").exists()
