"""The dataset folder contract: building, opening, refusing incomplete folders, targets, info."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_dataset
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.format import as_targets
from ltvcli.dataset.labelsets import apply_policy, label_sets_from_raw, parse_raw_value
from ltvcli.errors import LtvError, OptionError


def test_built_folder_round_trips(tmp_path):
    ds = make_dataset(tmp_path / "d", n=20, n_classes=2, label_sets=2, size=12)
    again = Dataset.open(tmp_path / "d")
    assert len(again) == 20
    assert again.images.shape == (20, 12, 12)
    assert again.labels.shape == (20, 2, 2)
    np.testing.assert_array_equal(again.labels, ds.labels)
    assert again.meta["splits"] == {"train": 12, "validate": 4, "test": 4}
    assert not (tmp_path / "d.partial").exists()


def test_folder_without_metadata_is_refused_with_hint(tmp_path):
    (tmp_path / "d.partial").mkdir()
    (tmp_path / "d").mkdir()
    with pytest.raises(LtvError, match="dataset.json is missing.*d.partial"):
        Dataset.open(tmp_path / "d")


def test_other_format_version_is_refused(tmp_path):
    make_dataset(tmp_path / "d", n=10)
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "d" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(LtvError, match="format_version 99"):
        Dataset.open(tmp_path / "d")


def test_rebuild_replaces_old_folder_whole_only_with_force(tmp_path):
    make_dataset(tmp_path / "d", n=10, seed=1)
    with pytest.raises(OptionError, match="force is needed to replace .*d, which already holds an ltv dataset"):
        make_dataset(tmp_path / "d", n=30, seed=2)
    assert len(Dataset.open(tmp_path / "d")) == 10
    ds = make_dataset(tmp_path / "d", n=30, seed=2, force=True)
    assert len(Dataset.open(tmp_path / "d")) == 30 == len(ds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_multiclass_targets_are_one_hot_with_missing_masked():
    labels = np.array([[2, -1], [0, 1]], dtype=np.int16)
    targets, mask = as_targets(labels, multilabel=False, n_classes=3)
    np.testing.assert_array_equal(targets[0, 0], [0, 0, 1])
    np.testing.assert_array_equal(targets[0, 1], [0, 0, 0])
    assert not mask[0, 1].any() and mask[0, 0].all()


def test_uncertainty_and_blank_policies():
    raw = np.array([1, 0, -1, -2], dtype=np.int8)
    assert apply_policy(raw, "u0").tolist() == [1, 0, 0, 0]
    assert apply_policy(raw, "u1").tolist() == [1, 0, 1, 0]
    assert apply_policy(raw, "ignore", blank="ignore").tolist() == [1, 0, -1, -1]
    assert apply_policy(raw, "u1", blank="1").tolist() == [1, 0, 1, 1]
    sets, values = label_sets_from_raw(["negbio", "chexpert"], np.stack([raw, raw])[None].transpose(0, 1, 2),
                                       ["u0", "u1"])
    assert [s.name for s in sets] == ["negbio_u0", "negbio_u1", "chexpert_u0", "chexpert_u1"]
    assert values.shape == (1, 4, 4)
    assert [parse_raw_value(v) for v in ("1.0", "0", "-1.0", "", "2", "yes")] == [1, 0, -1, -2, None, None]


def test_duplicate_ids_and_unknown_split_are_rejected(tmp_path):
    manifest = pd.DataFrame({"image_id": ["a", "a"], "split": ["train", "train"], "source": ["", ""]})
    spec = DatasetSpec(task="multilabel", classes=["x"], manifest=manifest,
                       label_sets=[LabelSet("s", "s")], labels=np.zeros((2, 1, 1), np.int8),
                       pixels=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(LtvError, match="'a' appears more than once"):
        build_dataset(spec, tmp_path / "d", size=8, channels=1)
    spec.manifest = pd.DataFrame({"image_id": ["a", "b"], "split": ["train", "valid"], "source": ["", ""]})
    with pytest.raises(LtvError, match="unknown split"):
        build_dataset(spec, tmp_path / "d", size=8, channels=1)
    assert not (tmp_path / "d").exists()


def test_info_json_counts_match_labels(cli, tmp_path):
    ds = make_dataset(tmp_path / "d", n=40, n_classes=2, label_sets=2)
    result = cli("info", tmp_path / "d", "--json")
    summary = json.loads(result.stdout)
    train = ds.indices("train")
    expected_pos = int((ds.labels[train, 1, 0] == 1).sum())
    counts = summary["label_counts"]["train"]["set1"]["class0"]
    assert counts["positive"] == expected_pos
    assert counts["positive"] + counts["negative"] + counts["missing"] == len(train)
    disagree = np.mean(ds.labels[train, 0, 1] != ds.labels[train, 1, 1])
    assert summary["disagreement"]["train"]["class1"] == pytest.approx(disagree, abs=1e-4)


def test_info_table_and_bad_path(cli, tmp_path):
    make_dataset(tmp_path / "d", n=20)
    result = cli("info", tmp_path / "d")
    assert "label sets, train split" in result.stdout and "set2" in result.stdout
    bad = cli("info", tmp_path / "nope", ok=False)
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such dataset folder"]
