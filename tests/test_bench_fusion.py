"""benchmarks/bench_fusion.py: ltv's methods beside crowd-kit and cleanlab, in smoke mode on tiny generated data.

Without the ``peers`` extra the benchmark skips the peers in one line and
still trains and scores ltv's rows; with crowd-kit and cleanlab importable
(``pip install -e ".[peers]"``) the peer rows run too, CROWDLAB with its
out-of-fold trainings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset
from ltvcli.dataset import Dataset
from ltvcli.fusion import registry
from ltvcli.fusion.registry import MethodSpec, ReliabilityOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_fusion  # noqa: E402


def noisy_dataset(path: Path, task: str) -> Dataset:
    """Label sets with 0 %, 20 % and 40 % noise, so the rows' label accuracies differ."""
    return make_dataset(path, task=task, n=40, n_classes=3, size=8, noise=(0.0, 0.2, 0.4), seed=1)


def train_accuracy(dataset: Dataset, label_set: str) -> float:
    """Accuracy of one label set against the ground truth on the training rows, computed here independently."""
    rows = dataset.indices("train")
    labels = dataset.labels[rows, dataset.label_set_index(label_set)]
    return float(np.mean(labels == dataset.ground_truth[rows]))


def run(capsys, *args) -> tuple[int, str, str]:
    """bench_fusion's exit code, stdout and stderr (what was printed before it is dropped)."""
    capsys.readouterr()
    code = bench_fusion.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_smoke_without_peers(tmp_path, capsys, monkeypatch, task):
    for module in ("crowdkit", "cleanlab"):  # as if the extra were not installed
        monkeypatch.setitem(sys.modules, module, None)
    dataset = noisy_dataset(tmp_path / "data", task)
    code, out, err = run(capsys, dataset.path, "--smoke", "--methods", "single:set2", "mv",
                         "--json", tmp_path / "fusion.json", "--markdown", tmp_path / "fusion.md",
                         "--work", tmp_path / "work")
    assert code == 0, err
    assert 'peers skipped: MV DS GLAD MACE CROWDLAB (crowd-kit and cleanlab not installed; pip install -e ".[peers]")' \
        in out
    result = json.loads((tmp_path / "fusion.json").read_text())
    assert list(result["rows"]) == ["single:set2", "mv", "clean labels (ceiling)"]
    assert result["seeds"] == [0] and result["train"]["epochs"] == 1 and result["folds"] == 2
    single, ceiling_row = result["rows"]["single:set2"], result["rows"]["clean labels (ceiling)"]
    if task == "multiclass":  # one label set's exported labels are that label set: its accuracy, counted here
        assert single["label_export"] == [pytest.approx(train_accuracy(dataset, "set2"))]
    assert single["label_export"] == pytest.approx(single["label_training"])  # single exports what it trained on
    assert ceiling_row["label_export"] == [1.0]
    for entry in result["rows"].values():
        assert entry["kind"] in ("ltv", "ceiling") and entry["seeds"] == [0]
        assert 0.0 <= entry["test"][0] <= 1.0 and entry["best_epoch"] == [1]
    table = (tmp_path / "fusion.md").read_text()
    metric = "test ROC AUC" if task == "multilabel" else "test accuracy"
    assert f"| labels | label accuracy (export) | in training (best epoch) | {metric} | best epoch |" in table
    assert "| single:set2 | " in table and "| clean labels (ceiling) | 1.000 ± 0.000 |" in table
    assert table in out  # the same table is printed
    assert sorted(p.name for p in (tmp_path / "work" / "seed0" / "runs").iterdir()) == [
        "clean_labels__ceiling_", "mv", "single_set2"]


def test_default_rows_come_from_the_fusion_registry(monkeypatch):
    assert bench_fusion.default_methods() == [
        *(f"ltv:{vote}" for vote in registry.VOTES), "single:dawid_skene", "mv", "cm"]
    new_vote = MethodSpec("ltv", "newvote", ReliabilityOptions, "ltvcli.fusion.vote:ReliabilityVote", 2, "a new vote")
    monkeypatch.setattr(registry, "METHODS", registry.METHODS + (new_vote,))
    assert "ltv:newvote" in bench_fusion.default_methods()
    assert bench_fusion.ltv_row("ltv:newvote:model_evidence=1") == bench_fusion.Row(
        "ltv:newvote:model_evidence=1", "ltv", "ltv", "newvote", {"model_evidence": 1})


@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "ltv:nosuchvote"], "error: --methods 'ltv:nosuchvote': vote 'nosuchvote': expected one of"),
    (["--methods", "ltv:reliability:model_evidence=3"], "model_evidence 3.0: expected a number between 0 and 1"),
    (["--methods", "mv:x"], "error: --methods 'mv:x': expected METHOD, ltv:VOTE, single:LABEL_SET"),
    (["--set", "colour=red"], "error: --set 'colour=red': expected NAME=VALUE with NAME a training option"),
    (["--set", "workers=many"], "error: --set 'workers=many': expected int"),
])
def test_bad_options_stop_before_training(tmp_path, capsys, args, message):
    dataset = noisy_dataset(tmp_path / "data", "multiclass")
    code, out, err = run(capsys, dataset.path, "--smoke", "--work", tmp_path / "work", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "work").exists()


def test_a_dataset_without_ground_truth_is_refused(tmp_path, capsys):
    from helpers_train import rebuild

    dataset = rebuild(noisy_dataset(tmp_path / "data", "multiclass"), tmp_path / "no-truth")
    code, _, err = run(capsys, dataset.path, "--smoke")
    assert code == 2 and err.strip() == (f"error: {dataset.path}: has no ground truth; the benchmark needs it on "
                                         "the train split (label accuracy) and the test split (test accuracy)")


def test_smoke_with_peers(tmp_path, capsys):
    pytest.importorskip("crowdkit")
    pytest.importorskip("cleanlab")
    dataset = noisy_dataset(tmp_path / "data", "multiclass")
    code, out, err = run(capsys, dataset.path, "--smoke", "--methods", "mv", "--no-ceiling",
                         "--json", tmp_path / "fusion.json", "--work", tmp_path / "work")
    assert code == 0, err
    assert "peers skipped" not in out
    result = json.loads((tmp_path / "fusion.json").read_text())
    peers = ["crowd-kit MV", "crowd-kit DS", "crowd-kit GLAD", "crowd-kit MACE", "cleanlab CROWDLAB"]
    assert list(result["rows"]) == [*peers, "mv"]
    assert set(result["versions"]) == {"ltv", "crowd-kit", "cleanlab"}
    for name in peers:
        entry = result["rows"][name]
        assert entry["kind"] == "peer" and 0.0 < entry["label_export"][0] <= 1.0
        assert entry["label_export"] == pytest.approx(entry["label_training"])
    layer = Dataset.open(tmp_path / "work" / "seed0" / "peers")  # the peers' labels, as label sets of a layer
    assert layer.label_set_names == ["set0", "set1", "set2"] + [f"peer_{p}" for p in
                                                               ("MV", "DS", "GLAD", "MACE", "CROWDLAB")]
    outside = np.setdiff1d(np.arange(len(layer)), layer.indices("train"))
    assert (layer.labels[outside, 3:] == -1).all() and (layer.labels[layer.indices("train"), 3:] >= 0).all()
    assert sorted(p.name for p in (tmp_path / "work" / "seed0" / "fold_runs").iterdir()) == ["fold0", "fold1"]
