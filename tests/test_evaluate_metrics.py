"""The statistics of ltv evaluate, checked against scikit-learn, brute force and a published reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ltvcli import metrics

# pROC's aSAH data (Turck et al. 2010, Intensive Care Medicine 36:107-115; 113 patients, shipped with R pROC):
# outcome Poor = 1, the s100b biomarker and the WFNS grade (5 levels, so many ties).
ASAH_POOR = np.array([
    0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0,
    1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0,
    0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0])
ASAH_S100B = np.array([
    0.13, 0.14, 0.1, 0.04, 0.13, 0.1, 0.47, 0.16, 0.18, 0.1, 0.12, 0.1, 0.44, 0.71, 0.04, 0.08, 0.49, 0.04, 0.07,
    0.33, 0.09, 0.09, 0.07, 0.11, 0.07, 0.17, 0.07, 0.11, 0.13, 0.19, 0.05, 0.16, 0.41, 0.14, 0.34, 0.35, 0.48,
    0.09, 0.96, 0.25, 0.5, 0.46, 0.16, 0.07, 0.43, 0.45, 0.11, 0.08, 0.09, 0.86, 0.52, 0.08, 0.06, 0.13, 2.07,
    0.1, 0.14, 0.15, 0.07, 0.06, 0.77, 0.05, 0.09, 0.3, 0.03, 0.09, 0.04, 0.23, 0.7, 0.09, 0.27, 0.71, 0.08, 0.26,
    0.08, 0.16, 0.09, 0.13, 0.1, 0.08, 0.11, 0.33, 0.11, 0.28, 0.07, 0.1, 0.32, 0.22, 0.07, 0.05, 0.24, 0.38, 0.1,
    0.15, 0.08, 0.14, 0.1, 0.07, 0.04, 0.19, 0.56, 0.14, 0.58, 0.32, 0.82, 0.74, 0.15, 0.47, 0.17, 0.44, 0.15,
    0.5, 0.48])
ASAH_WFNS = np.array([
    1, 1, 1, 1, 3, 2, 5, 4, 1, 2, 5, 2, 5, 5, 1, 2, 5, 2, 2, 5, 2, 1, 1, 1, 1, 2, 1, 2, 1, 1, 3, 4, 2, 1, 4, 5, 4, 1,
    4, 2, 5, 5, 1, 1, 2, 4, 1, 1, 2, 5, 5, 2, 1, 2, 5, 1, 2, 2, 2, 1, 5, 1, 1, 2, 5, 2, 1, 4, 5, 2, 4, 4, 1, 4, 1, 2,
    1, 4, 2, 1, 2, 3, 2, 4, 2, 1, 4, 5, 1, 1, 5, 4, 2, 2, 1, 1, 1, 3, 1, 2, 5, 2, 2, 5, 5, 5, 2, 4, 4, 5, 1, 1, 1],
    dtype=float)


def tied_scores(seed: int, n: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth and two correlated, heavily tied score vectors."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.round(0.8 * y + rng.normal(0, 1, n), 1)
    b = np.round(0.6 * a + rng.normal(0, 0.8, n), 1)
    return y, a, b


def brute_force_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong (1988) from its definition: pairwise kernel psi = 1 / 0.5 / 0 over all positive-negative pairs."""
    v10, v01 = [], []
    for s in scores:
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    return v10.mean(axis=1), np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]


def test_weighted_auc_equals_sklearn_on_each_resample():
    y, a, _ = tied_scores(0)
    counts = next(metrics.stratified_resamples(y, 20, np.random.default_rng(3)))
    fast = metrics.weighted_auc(y, a, counts)
    for r in range(20):
        drawn = np.repeat(np.arange(len(y)), counts[r])
        assert fast[r] == pytest.approx(roc_auc_score(y[drawn], a[drawn]), abs=1e-12)
    assert metrics.weighted_auc(y, a, np.ones(len(y)))[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)


def test_resamples_keep_class_sizes_and_blocks_do_not_change_the_draws():
    y = np.array([0, 1, 1, 0, 0, 1, 0, 0])
    whole = np.concatenate(list(metrics.stratified_resamples(y, 50, np.random.default_rng(5))))
    blocked = np.concatenate(list(metrics.stratified_resamples(y, 50, np.random.default_rng(5), block_cells=24)))
    np.testing.assert_array_equal(whole, blocked)
    assert (whole[:, y == 1].sum(axis=1) == 3).all() and (whole[:, y == 0].sum(axis=1) == 5).all()


def test_resample_rng_depends_on_seed_and_finding_only():
    draw = lambda seed, key: metrics.resample_rng(seed, key).integers(0, 10**9)  # noqa: E731
    assert draw(1, "Edema") == draw(1, "Edema")
    assert draw(1, "Edema") != draw(2, "Edema") and draw(1, "Edema") != draw(1, "Fracture")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_the_pairwise_definition(seed):
    y, a, b = tied_scores(seed)
    aucs, cov = metrics.delong_covariance(y, np.vstack([a, b]))
    ref_aucs, ref_cov = brute_force_delong(y, np.vstack([a, b]))
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-16)
    assert aucs[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    test = metrics.delong_test([metrics.PairedPart(np.arange(len(y)), y, a, b)])
    assert test.se ** 2 == pytest.approx(ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1], rel=1e-10)


def test_delong_reproduces_the_proc_reference_on_asah():
    # pROC documentation, roc.test(aSAH$outcome, aSAH$s100b, aSAH$wfns): AUCs 0.7314 and 0.8237, Z = -2.209,
    # p-value = 0.02718 (DeLong's test for two correlated ROC curves).
    assert (len(ASAH_POOR), ASAH_POOR.sum()) == (113, 41)
    aucs, _ = metrics.delong_covariance(ASAH_POOR, np.vstack([ASAH_S100B, ASAH_WFNS]))
    np.testing.assert_allclose(aucs, [0.7314, 0.8237], atol=5e-5)
    test = metrics.delong_test([metrics.PairedPart(np.arange(113), ASAH_POOR, ASAH_S100B, ASAH_WFNS)])
    assert test.difference / test.se == pytest.approx(-2.209, abs=5e-4)
    assert test.p_value == pytest.approx(0.02718, abs=5e-6)


def test_delong_identical_scores_give_p_one_and_a_clear_gain_gives_p_below_005():
    y, a, _ = tied_scores(4, n=300)
    same = metrics.delong_test([metrics.PairedPart(np.arange(300), y, a, a.copy())])
    assert (same.difference, same.se, same.p_value) == (0.0, 0.0, 1.0)
    noise = np.random.default_rng(9).normal(0, 1, 300)
    better = metrics.delong_test([metrics.PairedPart(np.arange(300), y, a, noise)])
    assert better.difference > 0.1 and better.p_value < 0.05


def test_delong_mean_over_findings_counts_their_covariance():
    """A finding listed twice is one finding: the mean's standard error must not shrink by sqrt(2)."""
    y, a, b = tied_scores(6)
    part = metrics.PairedPart(np.arange(len(y)), y, a, b)
    once = metrics.delong_test([part])
    twice = metrics.delong_test([part, part])
    assert twice.difference == pytest.approx(once.difference)
    assert twice.se == pytest.approx(once.se, rel=1e-12)
    # two findings on disjoint images are independent: the variance of their mean is a quarter of the sum
    y2, a2, b2 = tied_scores(7)
    other = metrics.PairedPart(np.arange(len(y2)) + len(y), y2, a2, b2)
    apart = metrics.delong_test([part, other])
    alone = metrics.delong_test([metrics.PairedPart(np.arange(len(y2)), y2, a2, b2)])
    assert apart.se ** 2 == pytest.approx((once.se ** 2 + alone.se ** 2) / 4, rel=1e-12)


def test_delong_is_undefined_with_a_single_positive():
    y = np.array([1, 0, 0, 0])
    test = metrics.delong_test([metrics.PairedPart(np.arange(4), y, np.array([0.9, 0.1, 0.2, 0.3]),
                                                   np.array([0.2, 0.1, 0.5, 0.3]))])
    assert test.difference == pytest.approx(1.0 - 1 / 3) and np.isnan(test.p_value)


def test_mcnemar_counts_only_disagreements():
    a = np.array([True] * 20 + [False] * 5)
    assert metrics.mcnemar_p(a, a.copy()) == 1.0
    b = np.array([False] * 15 + [True] * 5 + [False] * 5)  # a alone right on 15 images, b alone on none
    assert metrics.mcnemar_p(a, b) == pytest.approx(2 * 0.5 ** 15)


def test_percentile_interval_ignores_undefined_resamples():
    values = np.r_[np.linspace(0, 1, 101), np.nan, np.nan]
    assert metrics.percentile_interval(values, 0.9) == pytest.approx((0.05, 0.95))
    assert np.isnan(metrics.percentile_interval(np.full(3, np.nan))[0])
