"""Simulated annotators: matrices as documented, draws that follow them, seeds, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.simulate import check_matrix, confusion_matrix, draw_labels, flip_matrix


@pytest.mark.parametrize("kind", ["HS", "SF", "OC", "AD", "AVG"])
def test_matrices_are_row_stochastic_with_the_stated_noise(kind):
    m = confusion_matrix(kind, 10, 0.4)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    expected_noise = {"HS": 0.4, "SF": 0.4, "OC": 0.4, "AD": 1.0, "AVG": 0.4}[kind]
    assert 1 - np.trace(m) / 10 == pytest.approx(expected_noise)


def test_matrix_shapes_follow_the_definitions():
    sf = confusion_matrix("SF", 4, 0.3)
    assert sf[0, 1] == pytest.approx(0.3) and sf[3, 0] == pytest.approx(0.3)
    oc = confusion_matrix("OC", 4, 0.3)
    assert oc[0, 1] == pytest.approx(0.3) and oc[1, 0] == oc[1, 2] == pytest.approx(0.15) and oc[0, 3] == 0
    ad = confusion_matrix("AD", 10, 0.9)
    assert ad[2, 7] == 1.0 and np.trace(ad) == 0
    np.testing.assert_allclose(flip_matrix("SF", 0.2), [[1, 0], [0.2, 0.8]])


def test_empirical_confusion_converges_to_the_requested_matrix():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 200_000)
    matrix = confusion_matrix("AVG", 5, 0.5)
    drawn = draw_labels(truth, matrix, np.random.default_rng(1))
    empirical = np.zeros((5, 5))
    np.add.at(empirical, (truth, drawn), 1)
    empirical /= empirical.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(empirical, matrix, atol=0.01)


def test_unknown_truth_stays_missing():
    drawn = draw_labels(np.array([0, -1, 1]), flip_matrix("HS", 0.0), np.random.default_rng(0))
    assert drawn.tolist() == [0, -1, 1]


@pytest.mark.parametrize("matrix,message", [
    ([[0.5, 0.4], [0, 1]], "row 0 sums to 0.9"),
    ([[1, 0, 0], [0, 1, 0]], r"shape \(2, 3\), expected \(2, 2\)"),
    ([[1.5, -0.5], [0, 1]], "negative entries"),
])
def test_bad_matrices_are_rejected(matrix, message):
    with pytest.raises(LtvError, match=message):
        check_matrix(np.array(matrix), 2, "mine")


def test_simulate_cli_writes_reproducible_label_sets(cli, tmp_path):
    make_dataset(tmp_path / "clean", task="multiclass", n=400, n_classes=4, label_sets=1)
    cli("simulate", tmp_path / "clean", "--out", tmp_path / "a", "--annotators", "HS,HS,AD", "--noise", "0.3")
    cli("simulate", tmp_path / "clean", "--out", tmp_path / "b", "--annotators", "HS,HS,AD", "--noise", "0.3")
    a, b = Dataset.open(tmp_path / "a"), Dataset.open(tmp_path / "b")
    assert a.label_set_names == ["HS", "HS_2", "AD"]
    np.testing.assert_array_equal(a.labels, b.labels)
    truth = a.ground_truth
    assert np.mean(a.labels[:, 0] == truth) == pytest.approx(0.7, abs=0.08)
    assert np.mean(a.labels[:, 2] == truth) == 0.0
    assert not np.array_equal(a.labels[:, 0], a.labels[:, 1])
    np.testing.assert_array_equal(a.images[:], Dataset.open(tmp_path / "clean").images[:])
    cli("simulate", tmp_path / "clean", "--out", tmp_path / "c", "--annotators", "HS,HS,AD", "--seed", "1")
    assert not np.array_equal(Dataset.open(tmp_path / "c").labels, a.labels)


def test_simulate_multilabel_and_user_matrices(cli, tmp_path):
    make_dataset(tmp_path / "clean", n=300, n_classes=3, label_sets=1)
    (tmp_path / "m.json").write_text(json.dumps({"shy": [[1, 0], [0.5, 0.5]]}))
    cli("simulate", tmp_path / "clean", "--out", tmp_path / "s", "--annotators", "OC",
        "--matrices", tmp_path / "m.json", "--noise", "0.2")
    ds = Dataset.open(tmp_path / "s")
    assert ds.label_set_names == ["OC", "shy"]
    truth = ds.ground_truth
    shy = ds.labels[:, 1]
    assert (shy[truth == 0] == 0).all()  # never a false positive
    assert np.mean(shy[truth == 1]) == pytest.approx(0.5, abs=0.1)


def test_simulate_errors(cli, tmp_path):
    make_dataset(tmp_path / "clean", task="multiclass", n=40, n_classes=3)
    bad = cli("simulate", tmp_path / "clean", "--out", tmp_path / "x", "--annotators", "XX", ok=False)
    assert bad.exit_code == 2 and "unknown annotator type 'XX'" in bad.output
    (tmp_path / "m.json").write_text(json.dumps({"a": [[1, 0], [0, 1]]}))
    bad = cli("simulate", tmp_path / "clean", "--out", tmp_path / "x", "--matrices", tmp_path / "m.json", ok=False)
    assert "shape (2, 2), expected (3, 3)" in bad.output
    bad = cli("simulate", tmp_path / "clean", "--out", tmp_path / "x", "--noise", "30", ok=False)
    assert "between 0 and 1" in bad.output
    for entry, message in [("AD:0.5", "AD is always wrong"), ("HS:high", "must be a number"),
                           ("SF:1.5", "noise level must be between 0 and 1")]:
        bad = cli("simulate", tmp_path / "clean", "--out", tmp_path / "x", "--annotators", entry, ok=False)
        assert bad.exit_code == 2 and message in bad.output, bad.output
    assert not (tmp_path / "x").exists()


def test_each_annotator_can_carry_its_own_noise_level(cli, tmp_path):
    """The paper's Table 2 mixes levels: HS 30 %, SF 40 %, OC 50 %, AVG 45 %."""
    make_dataset(tmp_path / "clean", task="multiclass", n=4000, n_classes=10, label_sets=1)
    cli("simulate", tmp_path / "clean", "--out", tmp_path / "t2", "--annotators", "HS:0.3,SF:0.4,OC:0.5,AD,AVG:0.45",
        "--noise", "0.1")
    ds = Dataset.open(tmp_path / "t2")
    assert ds.label_set_names == ["HS", "SF", "OC", "AD", "AVG"]
    noise = [np.mean(ds.labels[:, j] != ds.ground_truth) for j in range(5)]
    np.testing.assert_allclose(noise, [0.3, 0.4, 0.5, 1.0, 0.45], atol=0.03)


def _faint_and_bright(path, n: int = 600, n_classes: int = 3, multilabel: bool = False) -> np.ndarray:
    """A .npz whose class c is a band in region c: strong on even rows, barely above the noise on odd rows.

    Returns which images are faint; a classifier on the pixels is unsure exactly there.
    """
    rng = np.random.default_rng(0)
    truth = (rng.random((n, n_classes)) < 0.5).astype(np.uint8) if multilabel else rng.integers(0, n_classes, n)
    images = rng.integers(0, 60, (n, 12, 12), dtype=np.uint8)
    faint = np.arange(n) % 2 == 1
    for i in range(n):
        for c in (np.flatnonzero(truth[i]) if multilabel else [truth[i]]):
            images[i, c * 4:(c + 1) * 4] += np.uint8(12 if faint[i] else 150)
    labels = truth if multilabel else truth[:, None]
    np.savez(path, train_images=images, train_labels=labels)
    return faint


@pytest.mark.parametrize("multilabel", [False, True])
def test_hardness_gathers_the_errors_on_the_hard_images(cli, tmp_path, multilabel):
    """Same error count per class as at hardness 0, but on the faint images; reproducible per seed."""
    faint = _faint_and_bright(tmp_path / "f.npz", multilabel=multilabel)
    cli("ingest", "npz", tmp_path / "f.npz", "--out", tmp_path / "clean",
        *(["--task", "multilabel"] if multilabel else []))
    for name, hardness in (("hard", "4"), ("hard_again", "4"), ("random", "0")):
        cli("simulate", tmp_path / "clean", "--out", tmp_path / name, "--annotators", "HS,HS", "--noise", "0.3",
            "--hardness", hardness)
    hard, random = Dataset.open(tmp_path / "hard"), Dataset.open(tmp_path / "random")
    np.testing.assert_array_equal(hard.labels, Dataset.open(tmp_path / "hard_again").labels)
    truth = hard.ground_truth
    for ds, faint_share in ((hard, (0.8, 1.0)), (random, (0.4, 0.6))):
        for j in range(2):
            wrong = ds.labels[:, j] != truth
            errors_per_entry = wrong if multilabel else wrong[:, None]
            assert errors_per_entry[faint].sum() / errors_per_entry.sum() == pytest.approx(
                np.mean(faint_share), abs=np.ptp(faint_share) / 2)
    columns = truth if multilabel else truth[:, None]
    for c in range(columns.shape[1]):  # each class (and state) keeps its error count exactly: round(0.3 n)
        for state in np.unique(columns[:, c]):
            where = columns[:, c] == state
            for j in range(2):
                said = hard.labels[:, j] if multilabel else hard.labels[:, j][:, None]
                assert (said[where, c] != state).sum() == round(0.3 * where.sum())
    assert json.loads((tmp_path / "hard" / "dataset.json").read_text())["source"]["hardness"] == 4
    bad = cli("simulate", tmp_path / "clean", "--out", tmp_path / "x", "--hardness", "-1", ok=False)
    assert bad.exit_code == 2 and "--hardness must be 0" in bad.output and not (tmp_path / "x").exists()


def test_hardness_example_shows_label_only_aggregators_losing_ground(cli, tmp_path):
    """examples/hardness_labels.py: errors gathered on the faint images leave more images with no right label."""
    _faint_and_bright(tmp_path / "f.npz")
    cli("ingest", "npz", tmp_path / "f.npz", "--out", tmp_path / "clean", "--val-fraction", "0.2")
    script = Path(__file__).parents[1] / "examples" / "hardness_labels.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "clean"), "--annotators", "HS,HS,HS",
                           "--noise", "0.4", "--hardness", "0", "8"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.strip("|").split("|") for line in proc.stdout.splitlines() if line.startswith("| 0.4 |")]
    nobody = {float(r[1]): float(r[4]) for r in rows}
    majority = {float(r[1]): float(r[2]) for r in rows}
    assert set(nobody) == {0.0, 8.0}
    assert nobody[8.0] > 2 * nobody[0.0] and majority[8.0] < majority[0.0]
