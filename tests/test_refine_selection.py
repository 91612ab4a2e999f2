"""Phase 1 and 2 rules of active label refinement, checked on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ltvcli.dataset.format import MISSING
from ltvcli.refine.coteach import (
    ModelOutputs,
    entry_losses,
    final_layer_gradients,
    forget_schedule,
    gradient_factor,
    select_entries,
    variance_of_gradients,
)
from ltvcli.refine.scores import bald, coreset, entropy, least_confidence, margin, pick
from ltvcli.refine.targets import estimate_forget_rate, fuse


def _select(loss, vog, rate, mix, valid=None, trusted=None):
    loss = torch.tensor(loss, dtype=torch.float32).reshape(len(loss), -1)
    valid = torch.ones_like(loss, dtype=torch.bool) if valid is None else torch.tensor(valid).reshape(loss.shape)
    trusted = torch.zeros_like(valid) if trusted is None else torch.tensor(trusted).reshape(loss.shape)
    vog = None if vog is None else torch.tensor(vog, dtype=torch.float32).reshape(loss.shape)
    keep = select_entries(loss, vog, valid, trusted, torch.tensor([rate] * loss.shape[1]), mix)
    return sorted(np.flatnonzero(keep[:, 0].numpy()).tolist())


def test_small_loss_selection_keeps_the_smallest_losses():
    # 6 entries, forget 1/3: remember floor(4.000) = 4 -> the four smallest losses
    assert _select([0.1, 0.5, 0.3, 0.9, 0.2, 0.7], None, 1 / 3, 0.0) == [0, 1, 2, 4]


def test_vog_mix_takes_the_lowest_vog_among_the_rest():
    loss = [0.1, 0.5, 0.3, 0.9, 0.2, 0.7]
    vog = [0.5, 0.1, 0.4, 0.05, 0.3, 0.2]
    # remember 4; floor(4 * 0.5) = 2 by loss: entries 0 (0.1) and 4 (0.2);
    # floor(4 * 0.5) = 2 by VoG among {1, 2, 3, 5}: entries 3 (0.05) and 1 (0.1)
    assert _select(loss, vog, 1 / 3, 0.5) == [0, 1, 3, 4]


def test_default_mix_counts_floor_like_the_authors_code():
    loss = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.00]
    vog = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.01, 0.2, 0.02]
    # forget 0.2 of 10: remember 8; floor(8 * 0.8) = 6 by loss (entries 0-5), floor(8 * 0.2) = 1 by
    # VoG among 6-9: entry 7 (0.01). 7 kept in all, not 8: the authors' two floors.
    assert _select(loss, vog, 0.2, 0.2) == [0, 1, 2, 3, 4, 5, 7]


def test_trusted_entries_are_always_kept_and_not_ranked():
    loss = [5.0, 0.1, 0.2, 0.3, 0.4]
    trusted = [True, False, False, False, False]
    # trusted entry 0 is kept despite its loss; the 4 ranked ones forget 1/2 -> 2 kept
    assert _select(loss, None, 0.5, 0.0, trusted=trusted) == [0, 1, 2]
    # an unlabelled entry is never kept
    assert _select([0.1, 0.2], None, 0.0, 0.0, valid=[False, True]) == [1]


def test_selection_ranks_each_finding_separately():
    loss = torch.tensor([[0.1, 2.0], [0.2, 3.0], [0.3, 1.0], [0.4, 4.0]])
    keep = select_entries(loss, None, torch.ones(4, 2, dtype=torch.bool), torch.zeros(4, 2, dtype=torch.bool),
                          torch.tensor([0.5, 0.5]), 0.0)
    assert keep[:, 0].tolist() == [True, True, False, False]
    assert keep[:, 1].tolist() == [True, False, True, False]


def test_forget_rate_ramps_linearly_over_the_warmup():
    rate = np.array([0.3])
    assert forget_schedule(0, rate, 10)[0] == 0.0
    assert forget_schedule(3, rate, 10)[0] == pytest.approx(0.1)
    assert forget_schedule(9, rate, 10)[0] == pytest.approx(0.3)
    assert forget_schedule(15, rate, 10)[0] == pytest.approx(0.3)


def test_vog_is_the_population_std_over_epochs_averaged_over_dimensions():
    factors = torch.tensor([0.5, -0.5, 0.0]).reshape(3, 1, 1)  # a = p - y in three epochs
    features = torch.full((3, 1, 1), 2.0)                     # F = [2] every epoch
    # gradients [a, 2a]: bias (0.5, -0.5, 0) has std sqrt(1/6), weight (1, -1, 0) sqrt(2/3)
    expected = (math.sqrt(1 / 6) + math.sqrt(2 / 3)) / 2
    assert variance_of_gradients(factors, features).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("multilabel", [True, False])
def test_entry_gradient_is_the_final_layer_gradient_of_that_entry(multilabel):
    torch.manual_seed(0)
    fc = nn.Linear(4, 3)
    feature = torch.randn(1, 4)
    target = torch.tensor([[1.0, 0.0, 1.0]]) if multilabel else torch.tensor([[0.0, 1.0, 0.0]])
    logits = fc(feature)
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
    ours = final_layer_gradients(gradient_factor(probs.detach(), target, multilabel), feature)[0]  # [G, 5]
    losses = entry_losses(logits, target, multilabel)[0]
    for g, loss in enumerate(losses):
        cls = g if multilabel else 1  # the labelled class of the multi-class image
        weight, bias = torch.autograd.grad(loss, (fc.weight, fc.bias), retain_graph=True)
        assert torch.allclose(ours[g], torch.cat([bias[cls:cls + 1], weight[cls]]), atol=1e-6)


def test_uncertainty_scores_per_entry():
    assert entropy(np.array([[0.5]]), True)[0, 0] == pytest.approx(math.log(2))
    probs = np.array([[0.7, 0.2, 0.1]])
    assert least_confidence(probs, False)[0, 0] == pytest.approx(0.3)
    assert margin(probs, False)[0, 0] == pytest.approx(0.5)
    assert margin(np.array([[0.9]]), True)[0, 0] == pytest.approx(0.2)
    assert bald(np.array([[[0.3]], [[0.3]]]), True)[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert bald(np.array([[[0.0]], [[1.0]]]), True)[0, 0] == pytest.approx(math.log(2), rel=1e-6)


def test_coreset_picks_the_farthest_then_updates_distances_within_a_finding():
    features = np.array([[0.0], [1.0], [5.0], [6.0]])
    candidates = np.array([[False, True], [True, False], [True, False], [True, False]])
    covered = np.array([[True, False], [False, False], [False, False], [False, False]])
    picked, distances = coreset(features, candidates, covered, budget=4)
    # finding 1 has nothing covered: its candidate (entry 0) is infinitely far and comes first;
    # then finding 0: 6 (distance 6), then 1 and 5 both at distance 1 (the lower position first)
    assert [divmod(int(f), 2) for f in picked] == [(0, 1), (3, 0), (1, 0), (2, 0)]
    assert distances.tolist() == [math.inf, 6.0, 1.0, 1.0]


def test_pick_honours_budget_order_and_candidates():
    probs = np.array([[0.5, 0.9], [0.6, 0.1], [0.45, 0.52]])
    candidates = np.array([[True, True], [True, True], [False, True]])
    outputs = ModelOutputs(probs=probs, mc_probs=probs[None], features=probs, loss=-probs, vog=probs)
    positions, groups, scores = pick("entropy", candidates, 3, outputs, covered=~candidates, multilabel=True)
    assert list(zip(positions, groups)) == [(0, 0), (2, 1), (1, 0)]  # entry (2, 0) is not a candidate
    assert np.all(np.diff(scores) <= 0)
    positions, groups, scores = pick("loss", candidates, 2, outputs, covered=~candidates, multilabel=True)
    assert list(zip(positions, groups)) == [(1, 1), (0, 0)] and scores.tolist() == [-0.1, -0.5]


def test_fuse_majority_with_expert_answers_trusted():
    labels = np.array([[[1], [1], [0], [MISSING]],
                       [[0], [0], [1], [1]],
                       [[MISSING], [MISSING], [MISSING], [MISSING]]], dtype=np.int8)
    names = ["a", "b", "c", "expert"]
    targets = fuse(labels, names, multilabel=True, n_classes=1, source="majority", seed=0, fit_rows=np.arange(3))
    assert targets.values[:, 0].tolist() == [1.0, 1.0, 0.0]  # image 1: the expert's 1 beats the 0, 0 majority
    assert targets.trusted[:, 0].tolist() == [False, True, False]
    assert targets.valid[:, 0].tolist() == [True, True, False]


def test_forget_rate_estimate_is_the_mean_disagreement_with_the_fused_label():
    labels = np.array([[[1], [1], [0]], [[0], [0], [0]], [[1], [0], [0]], [[1], [1], [1]]], dtype=np.int8)
    hard = np.array([[1], [0], [0], [1]], dtype=np.float32)
    # disagreeing labels: 1 + 0 + 1 + 0 = 2 of 12
    rate = estimate_forget_rate(labels, ["a", "b", "c"], hard, multilabel=True, n_classes=1)
    assert rate.tolist() == pytest.approx([2 / 12])
