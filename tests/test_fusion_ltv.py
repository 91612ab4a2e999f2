"""Learning-to-vote: the fast virtual step against the paper's direct computation, BN hygiene, the vote."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_dataset
from helpers_train import TRAIN_FAST
from ltvcli.fusion import make_method
from ltvcli.fusion.base import Batch, masked_bce
from ltvcli.fusion.ltv import LearningToVote, weighted_vote
from ltvcli.models import build_model

N_SETS, N_CLASSES = 3, 4
TEXT_DIM = 10


def make_batch(multilabel: bool = True, size: int = 6, seed: int = 0, text: bool = False) -> Batch:
    """A random batch with about a quarter of the labels missing (and a whole label set missing for one sample).

    With ``text``, each sample also has a random TEXT_DIM report embedding.
    """
    g = torch.Generator().manual_seed(seed)
    reports = torch.randn(size, TEXT_DIM, generator=g) if text else None
    images = torch.rand(size, 1, 16, 16, generator=g)
    if multilabel:
        targets = (torch.rand(size, N_SETS, N_CLASSES, generator=g) < 0.4).float()
        mask = torch.rand(size, N_SETS, N_CLASSES, generator=g) > 0.25
    else:
        ids = torch.randint(0, N_CLASSES, (size, N_SETS), generator=g)
        targets = torch.nn.functional.one_hot(ids, N_CLASSES).float()
        mask = (torch.rand(size, N_SETS, 1, generator=g) > 0.25).expand(-1, -1, N_CLASSES).clone()
    mask[0, 1] = False
    return Batch(images=images, targets=targets, mask=mask, index=torch.arange(size), text=reports)


def make_net(seed: int = 0, text: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("tiny", N_CLASSES, in_channels=1, text_dim=TEXT_DIM if text else None).train()


def ltv(scope: str = "all", multilabel: bool = True, **options) -> LearningToVote:
    return make_method("ltv", n_label_sets=N_SETS, n_classes=N_CLASSES, multilabel=multilabel,
                       label_set_names=["a", "b", "c"], options={"meta_scope": scope, **options})


def direct_features(net: torch.nn.Module, batch: Batch, m: int, alpha: float, scope: str) -> torch.Tensor:
    """The paper's eq. 1 done literally: a copy of θ, one SGD step on label set m alone, then F(x)."""
    twin = copy.deepcopy(net)
    loss = masked_bce(twin(batch.images, text=batch.text), batch.targets[:, m], batch.mask[:, m])
    loss.backward()
    scope_names = {name for name, _ in twin.last_scope_parameters()} if scope == "last" else None
    with torch.no_grad():
        for name, param in twin.named_parameters():
            if scope_names is None or name in scope_names:
                param -= alpha * param.grad
        return twin.features(batch.images, text=batch.text)


@pytest.mark.parametrize("text", [False, True], ids=["image", "image+text"])
@pytest.mark.parametrize("multilabel", [True, False], ids=["multilabel", "multiclass"])
@pytest.mark.parametrize("scope", ["all", "last"])
def test_fast_virtual_features_equal_the_direct_per_label_set_step(scope, multilabel, text):
    net, batch = make_net(text=text), make_batch(multilabel, text=text)
    reference = torch.stack([direct_features(net, batch, m, 0.2, scope) for m in range(N_SETS)], dim=1)
    method = ltv(scope, multilabel, alpha=0.2)
    logits, trunk_output, plain_features = net(batch.images, text=batch.text, return_parts=True)
    fast = method.virtual_features(net, batch, logits, trunk_output)

    assert fast.shape == (len(batch.images), N_SETS, net.feature_dim)
    error = (fast - reference).norm() / reference.norm()
    assert error <= 1e-4, f"relative error {error:.2e}"
    # not vacuous: each virtual step moved the features, and differently per label set
    for m in range(N_SETS):
        assert (fast[:, m] - plain_features).norm() > 1e-3 * plain_features.norm()
    assert (fast[:, 0] - fast[:, 2]).norm() > 1e-4 * fast.norm()
    if text:  # the text half of F is there, and the virtual step moved it too (the text MLP is in both scopes)
        image_dim = net.image_dim
        assert net.feature_dim == image_dim + 512
        text_part = fast[:, :, image_dim:]
        assert (text_part - plain_features[:, None, image_dim:]).norm() > 1e-3 * plain_features[:, image_dim:].norm()


@pytest.mark.parametrize("scope", ["all", "last"])
def test_bn_running_statistics_see_only_the_real_forward(scope):
    net, batch = make_net(), make_batch()
    plain = copy.deepcopy(net)
    plain(batch.images)  # one plain forward in train mode
    ltv(scope).step(net, batch).loss.backward()

    for (name, ours), (_, theirs) in zip(net.named_buffers(), plain.named_buffers()):
        assert torch.equal(ours, theirs), name


@pytest.mark.parametrize("scope", ["all", "last"])
def test_refine_changes_nothing(scope):
    net, batch, method = make_net(), make_batch(), ltv(scope)
    method.step(net, batch)  # materialise the attention
    model_before = copy.deepcopy(net.state_dict())
    method_before = copy.deepcopy(method.state_dict())
    with torch.no_grad():  # export runs under no_grad; refine needs its own autograd
        result = method.refine(net, batch)

    assert all(torch.equal(model_before[k], v) for k, v in net.state_dict().items())
    assert all(torch.equal(method_before[k], v) for k, v in method.state_dict().items())
    assert all(p.grad is None for p in [*net.parameters(), *method.parameters()])
    assert result.weights.shape == (len(batch.images), N_SETS)
    assert not result.loss.requires_grad


def test_gradients_reach_the_attention_through_the_binarised_label():
    net, batch = make_net(), make_batch()
    method = ltv(k=5.0)  # a softer cliff than k=50 so the gradient is visibly non-zero everywhere
    result = method.step(net, batch)
    result.loss.backward()

    assert method.attention.weight.grad.abs().sum() > 0
    assert method.attention.bias.grad.abs().sum() > 0
    assert method.attention.weight.shape == (N_SETS, N_SETS * net.feature_dim)
    assert torch.allclose(result.weights.sum(dim=1), torch.ones(len(batch.images)))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_optimizer_built_before_the_first_step_trains_the_lazy_attention():
    net, batch, method = make_net(), make_batch(), ltv(k=5.0)
    optimizer = torch.optim.Adam([*net.parameters(), *method.parameters()], lr=1e-2)
    method.step(net, batch).loss.backward()
    before = method.attention.weight.detach().clone()
    optimizer.step()
    optimizer.zero_grad()
    method.step(net, batch).loss.backward()
    optimizer.step()

    assert not torch.equal(before, method.attention.weight)


def test_vote_renormalises_over_the_label_sets_that_have_a_label():
    weights = torch.tensor([[0.5, 0.3, 0.2]])
    targets = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]])  # [1, M=3, C=3]
    mask = torch.tensor([[[False, True, False], [True, True, False], [True, True, False]]])
    refined, valid = weighted_vote(weights.log(), targets, mask)

    # class 0: set 0 missing -> (0.3*0 + 0.2*1) / 0.5; class 1: all three; class 2: nobody -> invalid
    assert torch.allclose(refined[0, :2], torch.tensor([0.4, 0.5 + 0.3]))
    assert valid.tolist() == [[True, True, False]]


def test_a_collapsed_vote_over_sparse_labels_keeps_finite_gradients():
    """One set takes all the weight and has no label where others do (a sparse crowd): no 0/0, no overflow."""
    scores = torch.tensor([[200.0, 0.0, -50.0]], requires_grad=True)  # softmax: 1, ~1e-87, ~1e-109
    targets = torch.tensor([[[1.0], [0.0], [1.0]]])
    mask = torch.tensor([[[False], [True], [True]]])
    refined, valid = weighted_vote(scores, targets, mask)
    refined.sum().backward()
    # renormalised over sets 1 and 2: exp(0) / (exp(0) + exp(-50)) on set 1 (label 0), the rest on set 2 (label 1)
    assert valid.item() and torch.allclose(refined, torch.tensor([[math.exp(-50)]]), atol=1e-12)
    assert torch.isfinite(scores.grad).all()


def test_missing_labels_leave_the_loss_and_show_as_nan():
    net, batch, method = make_net(), make_batch(), ltv()
    batch.mask[2, :, 1] = False  # nobody labels (sample 2, class 1)
    result = method.step(net, batch)
    assert torch.isnan(result.refined[2, 1]) and torch.isnan(result.binarised[2, 1])
    assert torch.isfinite(result.refined[~torch.isnan(result.refined)]).all()

    valid = ~torch.isnan(result.binarised)
    expected = masked_bce(result.logits, result.binarised.nan_to_num(), valid)
    assert torch.allclose(result.loss, expected)

    # a value hidden by the mask changes nothing, in the virtual steps or the vote
    again = copy.deepcopy(batch)
    again.targets[~again.mask] = 1 - again.targets[~again.mask]
    original, flipped = method.step(make_net(), batch), method.step(make_net(), again)
    assert torch.equal(original.weights, flipped.weights)
    assert torch.equal(original.loss, flipped.loss)


def test_exported_labels_follow_the_vote_equations(cli, tmp_path):
    """Through the CLI: ȳ = Σ w_m y_m, weights summing to 1, and ỹ = sigmoid(k (ȳ − T)) for the given k, T."""
    data = make_dataset(tmp_path / "ds", n=24)
    run, table = tmp_path / "run", tmp_path / "labels.csv"
    cli("train", data.path, "--out", run, "--method", "ltv", "--vote", "paper", "--meta-scope", "last", "--k", "10", "--threshold",
        "0.4", "--epochs", "1", "--max-steps", "2", *TRAIN_FAST)
    cli("export-labels", run, data.path, "--out", table, "--checkpoint", "last", "--device", "cpu")
    frame = pd.read_csv(table)

    rows = data.indices("train")
    assert frame["image_id"].tolist() == np.repeat(data.image_ids[rows], len(data.classes)).tolist()
    weights = frame[[f"weight_{name}" for name in data.label_set_names]].to_numpy()
    labels = data.labels[rows].transpose(0, 2, 1).reshape(-1, len(data.label_set_names))  # [image x class, M]
    assert np.allclose(weights.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(frame["refined"], (weights * labels).sum(axis=1), atol=1e-5)
    assert np.allclose(frame["binarised"], 1 / (1 + np.exp(-10 * (frame["refined"] - 0.4))), atol=1e-5)
    assert weights.std(axis=0).max() > 0  # the weights are per image, not a constant
