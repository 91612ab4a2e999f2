"""Label-only aggregators (soft mean, majority vote, Dawid-Skene), the single/mv methods, CM, make_method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_dataset
from helpers_train import TRAIN_FAST
from ltvcli.errors import LtvError
from ltvcli.fusion import make_method
from ltvcli.fusion.aggregators import DawidSkene, dawid_skene, majority_vote, soft_mean
from ltvcli.fusion.base import Batch, batch_statistics, frozen_forward
from ltvcli.fusion.cm import ConfusionMatrices
from ltvcli.models import build_model
from ltvcli.runs.predict import load_run
from ltvcli.runtime.loader import ImageLoader, images_to_device

NAMES = ["a", "b", "c"]


def annotate(truth: np.ndarray, accuracy: tuple[float, ...], n_classes: int, multilabel: bool, seed: int = 0):
    """Label sets of the given accuracies; a wrong multi-class label is the next class (a structured confusion)."""
    rng = np.random.default_rng(seed)
    sets = []
    for acc in accuracy:
        right = rng.random(truth.shape) < acc
        wrong = 1 - truth if multilabel else (truth + 1) % n_classes
        sets.append(np.where(right, truth, wrong))
    labels = np.stack(sets, axis=1)
    if multilabel:
        return labels.astype(np.float32), np.ones(labels.shape, bool)
    return np.eye(n_classes, dtype=np.float32)[labels], np.ones(labels.shape + (n_classes,), bool)


def accuracy(labels: torch.Tensor, truth: np.ndarray, multilabel: bool) -> float:
    predicted = (labels >= 0.5).numpy() if multilabel else labels.argmax(-1).numpy()
    return float((predicted == truth).mean())


def test_soft_mean_averages_the_available_labels():
    targets = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])
    mask = torch.tensor([[[True, True], [False, True], [True, False]]])
    labels, valid = soft_mean(targets, mask)
    assert torch.allclose(labels, torch.tensor([[1.0, 0.0]]))
    mask[0, :, 1] = False
    assert soft_mean(targets, mask)[1].tolist() == [[True, False]]


def test_majority_vote_ties_are_random_but_seeded():
    rng = np.random.default_rng(1)
    first = (rng.random((200, 3)) < 0.5).astype(np.float32)
    targets = np.stack([first, 1 - first], axis=1)  # two label sets that disagree everywhere: all ties
    mask = np.ones(targets.shape, bool)
    labels, _ = majority_vote(targets, mask, seed=7, multilabel=True)

    assert torch.equal(labels, majority_vote(targets, mask, seed=7, multilabel=True)[0])
    assert 0.3 < labels.mean() < 0.7  # both outcomes occur
    assert not torch.equal(labels, majority_vote(targets, mask, seed=8, multilabel=True)[0])
    # the same vote whether taken for the whole split or batch by batch (rows = dataset row ids)
    rows = np.array([5, 17, 150])
    batch_labels, _ = majority_vote(targets[rows], mask[rows], seed=7, multilabel=True, rows=rows)
    assert torch.equal(batch_labels, labels[rows])


def test_majority_vote_without_a_tie_is_the_majority():
    targets = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    labels, valid = majority_vote(targets, torch.ones_like(targets, dtype=torch.bool), multilabel=True)
    assert labels.tolist() == [[1.0, 0.0]] and valid.all()


def test_multiclass_majority_is_the_most_frequent_class_ties_among_the_tied_only():
    onehot = torch.eye(3)
    # sample 0: sets say 2, 2, 0 -> 2.  samples 1..: sets say 0, 1, (missing) -> 0 or 1, never 2
    ids = torch.tensor([[2, 2, 0]] + [[0, 1, 2]] * 100)
    mask = torch.ones(101, 3, 3, dtype=torch.bool)
    mask[1:, 2] = False
    labels, valid = majority_vote(onehot[ids], mask, seed=3, multilabel=False)
    winners = labels.argmax(-1)
    assert winners[0] == 2
    assert set(winners[1:].tolist()) == {0, 1}
    assert torch.equal(labels.sum(-1), torch.ones(101)) and valid.all()


@pytest.mark.parametrize("multilabel", [True, False], ids=["multilabel", "multiclass"])
def test_dawid_skene_trusts_the_clean_annotator(multilabel):
    rng = np.random.default_rng(0)
    n_classes = 3 if multilabel else 4
    truth = (rng.random((500, n_classes)) < 0.4).astype(int) if multilabel else rng.integers(0, n_classes, 500)
    targets, mask = annotate(truth, (0.95, 0.55, 0.55), n_classes, multilabel)
    mask[::7, 0] = False  # some labels missing

    ds, valid = dawid_skene(targets, mask, multilabel)
    mv, _ = majority_vote(targets, mask, seed=0, multilabel=multilabel)
    assert accuracy(ds, truth, multilabel) > accuracy(mv, truth, multilabel) + 0.1
    labelled_by_clean = np.arange(500) % 7 != 0
    assert accuracy(ds[labelled_by_clean], truth[labelled_by_clean], multilabel) > 0.92
    assert valid.all() and torch.all((ds >= 0) & (ds <= 1))


def tiny_batch(multilabel: bool, n: int = 24, seed: int = 0, sets: tuple[float, ...] = (0.9, 0.7, 0.7)):
    """A learnable batch: class c lights band c of a 16-px image; label sets of the given accuracies."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 3)) < 0.5).astype(int) if multilabel else rng.integers(0, 3, n)
    images = rng.random((n, 1, 16, 16)).astype(np.float32) * 0.2
    for i in range(n):
        for c in (np.flatnonzero(truth[i]) if multilabel else [truth[i]]):
            images[i, 0, c * 5:(c + 1) * 5] = 1.0
    targets, mask = annotate(truth, sets, 3, multilabel, seed)
    return Batch(torch.from_numpy(images), torch.from_numpy(targets), torch.from_numpy(mask), torch.arange(n))


def cm(multilabel: bool, trace: float = 0.01) -> ConfusionMatrices:
    return make_method("cm", n_label_sets=3, n_classes=3, multilabel=multilabel, label_set_names=NAMES,
                       options={"cm_trace": trace})


@pytest.mark.parametrize("multilabel", [True, False], ids=["multilabel", "multiclass"])
def test_cm_learns_and_keeps_row_stochastic_matrices(multilabel):
    torch.manual_seed(0)
    net, method, batch = build_model("tiny", 3), cm(multilabel), tiny_batch(multilabel)
    optimizer = torch.optim.Adam([*net.parameters(), *method.parameters()], lr=1e-2)
    losses = []
    for _ in range(25):
        result = method.step(net, batch)
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        losses.append(result.loss.item())

    assert losses[-1] < 0.8 * losses[0]
    confusion = method.confusion()
    assert torch.allclose(confusion.sum(-1), torch.ones(confusion.shape[:-1]))
    assert (confusion >= 0).all() and method.confusion_logits.grad.abs().sum() > 0
    assert result.weights is None and result.refined.shape == (24, 3)
    assert torch.allclose(result.refined.sum(-1), torch.ones(24)) or multilabel


def test_cm_loss_carries_the_trace_term():
    torch.manual_seed(0)
    net, batch = build_model("tiny", 3), tiny_batch(True)
    logits = net(batch.images)
    plain, penalised = cm(True, trace=0.0), cm(True, trace=0.5)
    with torch.no_grad():
        penalised.confusion_logits.add_(torch.randn_like(penalised.confusion_logits))
        plain.confusion_logits.copy_(penalised.confusion_logits)
    mean_trace = torch.diagonal(penalised.confusion(), dim1=-2, dim2=-1).sum(-1).mean()
    difference = penalised.loss(logits, batch) - plain.loss(logits, batch)
    assert torch.allclose(difference, 0.5 * mean_trace)
    # and the penalty pulls the diagonal down
    penalised.loss(logits, batch).backward()
    diagonal_grad = torch.diagonal(penalised.confusion_logits.grad, dim1=-2, dim2=-1)
    assert diagonal_grad.mean() > 0


def single(label_set: str, multilabel: bool = True):
    return make_method("single", n_label_sets=3, n_classes=3, multilabel=multilabel, label_set_names=NAMES,
                       options={"label_set": label_set, "seed": 4})


def test_single_trains_on_the_chosen_label_set_only():
    torch.manual_seed(0)
    net, batch = build_model("tiny", 3), tiny_batch(True)
    batch.mask[0, 1, 2] = False
    result = single("b").step(net, batch)
    expected = batch.targets[:, 1].clone()
    expected[0, 2] = float("nan")
    assert torch.allclose(result.refined, expected, equal_nan=True)
    assert torch.allclose(result.binarised, expected, equal_nan=True)


@pytest.mark.parametrize("multilabel", [True, False], ids=["multilabel", "multiclass"])
def test_single_on_dawid_skene_fits_once_and_survives_a_state_dict_round_trip(multilabel):
    torch.manual_seed(0)
    net, batch = build_model("tiny", 3), tiny_batch(multilabel, n=60, sets=(0.95, 0.6, 0.6))
    method = single("dawid_skene", multilabel)
    with pytest.raises(RuntimeError, match="fit_labels"):
        method.step(net, batch)
    method.fit_labels(batch.targets.numpy(), batch.mask.numpy())
    fitted = method.refine(net, batch)

    restored = single("dawid_skene", multilabel)
    restored.load_state_dict(method.state_dict())
    assert torch.allclose(restored.refine(net, batch).refined, fitted.refined)
    standalone, _ = dawid_skene(batch.targets, batch.mask, multilabel)
    assert torch.allclose(fitted.refined, standalone, atol=1e-6)


def test_mv_method_trains_on_the_seeded_majority():
    torch.manual_seed(0)
    net, batch = build_model("tiny", 3), tiny_batch(True)
    method = make_method("mv", n_label_sets=3, n_classes=3, multilabel=True, label_set_names=NAMES,
                         options={"seed": 4})
    expected, _ = majority_vote(batch.targets, batch.mask, seed=4, multilabel=True, rows=batch.index)
    result = method.step(net, batch)
    assert torch.equal(result.refined, expected)
    assert result.loss.requires_grad and result.weights is None


@pytest.mark.parametrize("name, options, message", [
    ("vote", {}, "method 'vote': expected one of ltv, single, mv, cm"),
    ("ltv", {"alpha": 0}, "alpha 0.0: expected a positive number"),
    ("ltv", {"alpha": "fast"}, "alpha 'fast': expected a number"),
    ("ltv", {"threshold": 1.5}, "threshold 1.5: expected a number strictly between 0 and 1"),
    ("ltv", {"meta_scope": "first"}, "meta_scope 'first': expected one of all, last"),
    ("cm", {"cm_trace": -1}, "cm_trace -1.0: expected a non-negative number"),
    ("ltv", {"momentum": 0.9}, "unknown method option"),
    ("single", {}, "`method` single needs `label_set`"),
    ("single", {"label_set": "d"}, "unknown `label_set` 'd'"),
])
def test_make_method_rejects_bad_options(name, options, message):
    with pytest.raises(LtvError, match=message.replace("(", r"\(")):
        make_method(name, n_label_sets=3, n_classes=3, multilabel=True, label_set_names=NAMES, options=options)


def test_methods_that_fuse_need_two_label_sets():
    with pytest.raises(LtvError, match="method ltv needs at least 2 label sets; the dataset has 1"):
        make_method("ltv", n_label_sets=1, n_classes=3, multilabel=True, label_set_names=["a"], options={})
    assert make_method("single", n_label_sets=1, n_classes=3, multilabel=True, label_set_names=["a"],
                       options={"label_set": "a"}).source == 0


def expected_refined(method: str, data, rows: np.ndarray, run) -> np.ndarray:
    """What each baseline's exported refined label must be, computed from the dataset with the library."""
    targets, mask = data.targets()
    multilabel = data.is_multilabel
    if method == "single:set1":
        return np.where(mask[rows, 1], targets[rows, 1], np.nan)
    if method == "single:dawid_skene":  # fitted on the training split, applied to any row
        train = data.indices("train")
        fitted = DawidSkene(multilabel).fit(targets[train], mask[train])
        return fitted.predict_proba(targets[rows], mask[rows])[0].numpy()
    if method == "mv":
        return majority_vote(targets[rows], mask[rows], seed=3, multilabel=multilabel, rows=rows)[0].numpy()
    # cm: the model's clean probability, in the refinement pass's mode (BatchNorm with the batch's statistics;
    # the validate split is one batch)
    model, _ = load_run(run, "last")
    images = images_to_device(ImageLoader(data.images, [rows]).read(rows), torch.device("cpu"))
    with torch.no_grad(), batch_statistics(model):
        logits = frozen_forward(model, images)[0]
    return (torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).numpy()


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
@pytest.mark.parametrize("method", ["single:set1", "single:dawid_skene", "mv", "cm"])
def test_exported_baseline_labels_through_the_cli(cli, tmp_path, method, task):
    data = make_dataset(tmp_path / "ds", task=task, n=30, noise=(0.05, 0.3, 0.3))
    name, _, label_set = method.partition(":")
    run, table = tmp_path / "run", tmp_path / "labels.csv"
    cli("train", data.path, "--out", run, "--method", name, *(["--label-set", label_set] if label_set else []),
        "--seed", "3", "--epochs", "1", "--max-steps", "1", *TRAIN_FAST)
    cli("export-labels", run, data.path, "--out", table, "--split", "validate", "--checkpoint", "last",
        "--device", "cpu")

    rows = data.indices("validate")
    refined = pd.read_csv(table)["refined"].to_numpy().reshape(len(rows), -1)
    assert np.allclose(refined, expected_refined(method, data, rows, run), atol=1e-5, equal_nan=True)
