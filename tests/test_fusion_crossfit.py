"""The cross-fitted vote (``--vote crossfit``): out-of-fold heads, the E-step, EM at epoch ends, resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_dataset
from helpers_train import TRAIN_FAST, checkpoint_tensors
from ltvcli.fusion import make_method
from ltvcli.fusion.aggregators import DawidSkene
from ltvcli.fusion.base import Batch
from ltvcli.models import build_model
from ltvcli.runtime.rng import seed_everything

CROSSFIT = ("--method", "ltv", "--vote", "crossfit")


def _method(multilabel: bool, n: int = 40, n_classes: int = 3, **options):
    rng = np.random.default_rng(0)
    if multilabel:
        targets = rng.integers(0, 2, (n, 3, n_classes)).astype(np.float32)
    else:
        targets = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, (n, 3))]
    mask = np.ones_like(targets, dtype=bool)
    mask[0, 1] = False  # one missing label
    method = make_method("ltv", n_label_sets=3, n_classes=n_classes, multilabel=multilabel,
                         label_set_names=["a", "b", "c"], options={"vote": "crossfit", **options})
    rows = np.arange(100, 100 + n)  # dataset rows, not positions
    method.fit_labels(targets, mask, rows)
    return method, torch.from_numpy(targets), torch.from_numpy(mask), torch.from_numpy(rows)


def _batch(targets, mask, rows, picked) -> Batch:
    images = torch.rand(len(picked), 1, 16, 16, generator=torch.Generator().manual_seed(1))
    return Batch(images=images, targets=targets[picked], mask=mask[picked], index=rows[picked])


@pytest.mark.parametrize("multilabel", [True, False])
def test_a_head_never_learns_from_the_rows_of_its_own_fold(multilabel):
    method, targets, mask, rows = _method(multilabel, head_decay=0.0)
    model = build_model("tiny", 3, in_channels=1, image_size=16)
    folds = method.fold(rows)
    assert set(folds.tolist()) == set(range(10)), "40 rows cover all 10 folds"
    for i in (0, 7):
        batch = _batch(targets, mask, rows, torch.tensor([i, i]))
        method.zero_grad()
        method.step(model, batch).loss.backward()
        grad = method.heads.weight.grad.view(10, 3, -1)  # [H, C, D]
        own = int(folds[i])
        assert torch.count_nonzero(grad[own]) == 0
        assert all(torch.count_nonzero(grad[h]) > 0 for h in range(10) if h != own)


def test_the_table_starts_at_dawid_skene_and_refine_is_the_e_step():
    method, targets, mask, rows = _method(False, evidence="trained")
    fitted = DawidSkene(False).fit(targets, mask)
    torch.testing.assert_close(method.table, fitted.predict_proba(targets, mask)[0].float())
    model = build_model("tiny", 3, in_channels=1, image_size=16)
    method.attach(model)
    assert method.initial is None  # evidence "trained": nothing of the untrained network is kept
    batch = _batch(targets, mask, rows, torch.arange(8))
    method.step(model, batch)  # materialises the heads
    with torch.no_grad():
        method.heads.weight.normal_(0, 0.05)
        method.log_temperature.fill_(0.1)  # T = e, but T divides the frozen network's heads only
    model.eval()
    result = method.refine(model, batch)
    with torch.no_grad():
        _, trunk_output, features = model(batch.images, return_parts=True)
        heads = method.head_logits(features)  # evidence "trained": the heads read the classifier's feature F
        own = heads[torch.arange(8), method.fold(batch.index)]
        said = torch.einsum("bmj,mkj->bk", batch.targets * batch.mask, method.log_confusion[0])
        expected = torch.softmax(torch.log_softmax(own, dim=1) + said, dim=1)
    torch.testing.assert_close(result.refined, expected)
    assert np.allclose(result.weights.sum(dim=1).numpy(), 1.0, atol=1e-5)


def test_with_initial_evidence_the_heads_read_the_frozen_untrained_network_standardised():
    method, targets, mask, rows = _method(True)
    model = build_model("tiny", 3, in_channels=1, image_size=16)
    untrained = {name: value.clone() for name, value in model.state_dict().items()}
    method.attach(model)
    with torch.no_grad():  # the classifier trains on; the frozen copy must not follow
        for parameter in model.parameters():
            parameter.add_(1.0)
    method.train()
    assert not method.initial.net.training  # BatchNorm on its stored statistics, whatever mode the method is in
    assert all(not p.requires_grad for p in method.initial.net.parameters())
    batch = _batch(targets, mask, rows, torch.arange(16))
    features = method.representation(batch, torch.zeros(16, 64), update=True)
    assert features.shape == (16, 64 * 4 * 4)  # the 64-channel last stage on a 4 x 4 grid: 1,024 numbers
    # one batch seen: its features are standardised by its own statistics
    assert torch.allclose(features.mean(0), torch.zeros(1024), atol=1e-4)
    spread = features.std(0, unbiased=False)  # at most 1: the 1e-6 under the root only shrinks tiny variances
    assert float(spread.max()) <= 1 + 1e-4 and float((spread > 0.9).float().mean()) > 0.5
    copy = build_model("tiny", 3, in_channels=1, image_size=16)
    copy.load_state_dict(untrained)
    copy.eval()
    with torch.no_grad():
        raw = torch.nn.functional.adaptive_avg_pool2d(copy.last(copy.trunk(batch.images)), 4).flatten(1)
    expected = (raw - raw.mean(0)) / (raw.var(0, unbiased=False) + 1e-6).sqrt()
    torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4)
    again = method.representation(batch, torch.zeros(16, 64), update=False)  # the E-step adds nothing
    torch.testing.assert_close(again, features)
    assert float(method.initial.count) == 16
    # the E-step divides these heads' out-of-fold logits by T
    method.step(model, batch)  # materialises the heads on the 1,024 features
    with torch.no_grad():
        method.heads.weight.normal_(0, 0.05)
        method.log_temperature.fill_(0.1)  # T = exp(10 x 0.1) = e
    result = method.refine(model, batch)
    with torch.no_grad():
        heads = method.head_logits(method.representation(batch, torch.zeros(16, 64), update=False))
        own = heads[torch.arange(16), method.fold(batch.index)] / np.e
        said = torch.einsum("bmj,mkj->bk", torch.stack((1 - batch.targets, batch.targets), -1)[..., 0, :]
                            * batch.mask[..., :1], method.log_confusion[0])
        expected = torch.softmax(torch.stack((torch.nn.functional.logsigmoid(-own[:, 0]),
                                              torch.nn.functional.logsigmoid(own[:, 0])), -1) + said, dim=-1)
    torch.testing.assert_close(result.refined[:, 0], expected[:, 1])


def test_the_temperature_learns_to_distrust_over_confident_heads_and_only_it_learns_from_that_term():
    method, targets, mask, rows = _method(False, n=200, evidence="trained")
    features = torch.randn(200, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        method.heads.initialize_parameters(features)
        method.heads.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(4))  # loud, and random
    own = method.own(method.head_logits(features), torch.as_tensor(method.rows))
    labelled = torch.ones(200, 1, dtype=torch.bool)
    loss = method.calibration_loss(own.detach(), method.table, labelled)
    loss.backward()
    assert method.heads.weight.grad is None and method.log_temperature.grad is not None
    optimiser = torch.optim.Adam([method.log_temperature], lr=0.01)
    for _ in range(200):
        optimiser.zero_grad()
        method.calibration_loss(own.detach(), method.table, labelled).backward()
        optimiser.step()
    temperature = float(torch.exp(method.options.head_lr_scale * method.log_temperature.detach()))
    assert temperature > 3  # random confident logits say nothing of q: they are shrunk towards uniform


def test_a_checkpoint_from_before_the_temperature_loads_with_t_equal_to_one():
    method, *_ = _method(False)
    state = method.state_dict()
    del state["log_temperature"]
    with torch.no_grad():
        method.log_temperature.fill_(1.0)
    method.load_state_dict(state)
    assert float(method.log_temperature.detach()) == 0.0


def test_the_m_step_refits_the_confusions_to_the_table():
    method, targets, mask, rows = _method(True)
    before = method.log_confusion.clone()
    method.after_refinement(rows, targets[:, 0])  # q := what label set a said
    method.before_refinement()
    confusion = method.log_confusion.exp()
    assert not torch.allclose(confusion, before.exp())
    assert bool((confusion[:, 0, 0, 0] > 0.99).all() and (confusion[:, 0, 1, 1] > 0.99).all())  # a is now perfect
    with pytest.raises(RuntimeError, match="training split"):
        method.positions(torch.tensor([5]))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("crossfit") / "ds", n=48, size=16, noise=(0.3, 0.3, 0.3), seed=2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> Path:
    from conftest import Cli
    run = tmp_path_factory.mktemp("crossfit_ref") / "run"
    Cli()("train", data.path, "--out", run, *CROSSFIT, "--epochs", "2", *TRAIN_FAST)
    return run


def test_crossfit_trains_and_records_its_options(data, reference):
    config = json.loads((reference / "config.json").read_text())
    assert config["method_options"] == {"vote": "crossfit", "folds": 10, "evidence": "initial",
                                        "head_lr_scale": 10.0, "head_decay": 0.01, "seed": 0}
    metrics = pd.read_csv(reference / "metrics.csv")
    assert metrics["refined_accuracy"].between(0, 1).all() and metrics["step_refined_accuracy"].between(0, 1).all()
    weights = metrics[[f"weight_set{m}" for m in range(3)]].sum(axis=1)
    assert np.allclose(weights, 1.0, atol=1e-5)
    method = torch.load(reference / "last.pt", weights_only=True)["method"]
    assert method["heads.weight"].shape == (10 * 3, 64 * 4 * 4)  # 10 heads of 3 classes on the frozen network
    seed_everything(0)  # what `ltv train` does before it builds the classifier
    untrained = build_model("tiny", 3, in_channels=1, image_size=16).state_dict()
    for name, value in untrained.items():  # the frozen network is the classifier as it was built
        assert torch.equal(method[f"initial.net.{name}"], value), name
    model = torch.load(reference / "last.pt", weights_only=True)["model"]
    assert not torch.equal(model["fc.weight"], untrained["fc.weight"])  # ... not as it was trained
    assert method["initial.count"] > 0 and float(method["log_temperature"]) != 0.0


def test_crossfit_trained_evidence_reads_the_classifier_feature(cli, tmp_path, data):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, *CROSSFIT, "--evidence", "trained", "--epochs", "1", *TRAIN_FAST)
    method = torch.load(run / "last.pt", weights_only=True)["method"]
    assert method["heads.weight"].shape == (10 * 3, 64) and not any(k.startswith("initial.") for k in method)
    result = cli("train", data.path, "--out", tmp_path / "other", *CROSSFIT, "--evidence", "pixels", *TRAIN_FAST,
                 ok=False)
    assert result.exit_code == 2 and "--evidence" in result.output


def test_crossfit_resumes_bit_identically_after_a_partial_epoch(cli, tmp_path, data, reference):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, *CROSSFIT, "--epochs", "2", "--max-steps", "5", *TRAIN_FAST)
    cli("train", data.path, "--out", run, *CROSSFIT, "--epochs", "2", "--resume", *TRAIN_FAST)
    got, want = checkpoint_tensors(run), checkpoint_tensors(reference)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    ours = pd.read_csv(run / "metrics.csv")
    theirs = pd.read_csv(reference / "metrics.csv")
    complete = ours[~ours["partial"]].reset_index(drop=True)
    assert complete["refined_accuracy"].tolist() == theirs["refined_accuracy"].tolist()


def test_crossfit_options_are_checked(cli, tmp_path, data):
    result = cli("train", data.path, "--out", tmp_path / "run", *CROSSFIT, "--folds", "1", *TRAIN_FAST, ok=False)
    assert result.exit_code == 2 and "--folds 1: expected an integer of at least 2" in result.output

