"""``ltv ingest npz`` on generated MedMNIST-style arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltvcli.dataset import Dataset

from helpers_ingest import error_line


def write_arrays(path, *, splits=(("train", 30), ("val", 10), ("test", 8)), rgb=True, n_classes=4,
                 multilabel_columns=0, **extra) -> dict[str, np.ndarray]:
    """A .npz in the MedMNIST layout; ``multilabel_columns`` > 0 writes 0/1 finding columns."""
    rng = np.random.default_rng(0)
    arrays = {}
    for key, n in splits:
        shape = (n, 8, 8, 3) if rgb else (n, 8, 8)
        arrays[f"{key}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{key}_labels"] = (rng.integers(0, 2, (n, multilabel_columns)) if multilabel_columns
                                   else rng.integers(0, n_classes, (n, 1)))
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


def test_arrays_become_a_dataset_with_ground_truth(cli, tmp_path):
    arrays = write_arrays(tmp_path / "a.npz", class_names=np.array(["a", "b", "c", "d"]),
                          train_index=np.arange(100, 130))
    cli("ingest", "npz", tmp_path / "a.npz", "--out", tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multiclass" and ds.classes == ["a", "b", "c", "d"]
    assert ds.image_size == 8 and ds.channels == 3 and len(ds) == 48 and ds.label_set_names == []
    assert ds.image_ids[0] == "train-100" and ds.image_ids[30] == "val-0" and ds.image_ids[40] == "test-0"
    assert ds.manifest["split"].tolist() == ["train"] * 30 + ["validate"] * 10 + ["test"] * 8  # the file's split
    np.testing.assert_array_equal(ds.images[:30], arrays["train_images"])
    np.testing.assert_array_equal(ds.ground_truth, np.concatenate(
        [arrays[f"{key}_labels"][:, 0] for key in ("train", "val", "test")]))


def test_val_fraction_pools_train_and_val_and_is_seeded(cli, tmp_path):
    write_arrays(tmp_path / "a.npz")
    for name, seed in (("x", "0"), ("y", "0"), ("z", "1")):
        cli("ingest", "npz", tmp_path / "a.npz", "--out", tmp_path / name, "--val-fraction", "0.25", "--seed", seed)
    splits = {name: Dataset.open(tmp_path / name).manifest["split"].tolist() for name in "xyz"}
    assert splits["x"].count("validate") == 10 and splits["x"].count("train") == 30  # 25 % of 40
    assert splits["x"][40:] == ["test"] * 8
    assert splits["x"] == splits["y"] and splits["x"] != splits["z"]


def test_binary_grey_images_as_one_finding_with_simulated_annotators(cli, tmp_path):
    """PneumoniaMNIST's layout: [N, 28, 28] grey, labels [N, 1] 0/1; no val split -> 20 % of train."""
    write_arrays(tmp_path / "p.npz", splits=(("train", 50), ("test", 10)), rgb=False, n_classes=2)
    cli("ingest", "npz", tmp_path / "p.npz", "--out", tmp_path / "ds", "--task", "multilabel",
        "--classes", "Pneumonia")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multilabel" and ds.classes == ["Pneumonia"] and ds.channels == 1
    assert ds.ground_truth.shape == (60, 1)
    assert json.loads(cli("info", tmp_path / "ds", "--json").output)["splits"] == \
        {"train": 40, "validate": 10, "test": 10}
    cli("simulate", tmp_path / "ds", "--out", tmp_path / "noisy", "--annotators", "HS:0.2,SF:0.4")
    assert Dataset.open(tmp_path / "noisy").label_set_names == ["HS", "SF"]


def test_several_finding_columns_are_multilabel(cli, tmp_path):
    write_arrays(tmp_path / "m.npz", multilabel_columns=3)
    cli("ingest", "npz", tmp_path / "m.npz", "--out", tmp_path / "ds", "--limit", "5")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multilabel" and ds.classes == ["class_0", "class_1", "class_2"] and len(ds) == 15


@pytest.mark.parametrize("arrays,options,message", [
    ({"test_images": np.zeros((2, 4, 4), np.uint8), "test_labels": np.zeros(2, int)}, [], "no train_images"),
    ({"train_images": np.zeros((2, 4, 4), np.uint8)}, [], "train_images has no train_labels"),
    ({"train_images": np.zeros((2, 4, 4), np.float32), "train_labels": np.zeros(2, int)}, [],
     "train_images must be uint8"),
    ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(3, int)}, [],
     "one row per image of train_images (2)"),
    ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.array([0, 5]),
      "class_names": np.array(["a", "b"])}, [], "2 class names for labels that need at least 6"),
    ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.array([[0, 2], [1, 0]])}, [],
     "multi-label labels must be 0 or 1"),
    ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(2, int),
      "test_images": np.zeros((2, 5, 5), np.uint8), "test_labels": np.zeros(2, int)}, [], "differ in shape"),
    ({"train_images": np.zeros((2, 4, 4), np.uint8), "train_labels": np.zeros(2, int)}, ["--val-fraction", "1"],
     "--val-fraction must be in [0, 1)"),
])
def test_bad_arrays_get_one_line_errors(cli, tmp_path, arrays, options, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    result = cli("ingest", "npz", tmp_path / "bad.npz", "--out", tmp_path / "ds", *options, ok=False)
    line = error_line(result)
    assert message in line and ("bad.npz" in line or options), line
    assert not (tmp_path / "ds").exists()


def test_not_an_npz_and_pickled_objects_are_refused(cli, tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    assert "not a readable .npz" in error_line(cli("ingest", "npz", tmp_path / "text.npz", "--out", tmp_path / "d",
                                                   ok=False))
    np.savez(tmp_path / "obj.npz", train_images=np.array([object()], dtype=object), train_labels=np.zeros(1))
    assert "not a readable .npz" in error_line(cli("ingest", "npz", tmp_path / "obj.npz", "--out", tmp_path / "d",
                                                   ok=False))
    assert "no such file" in error_line(cli("ingest", "npz", tmp_path / "none.npz", "--out", tmp_path / "d", ok=False))


def test_no_images_keeps_labels_and_splits(cli, tmp_path):
    arrays = write_arrays(tmp_path / "a.npz")
    cli("ingest", "npz", tmp_path / "a.npz", "--out", tmp_path / "ds", "--no-images")
    ds = Dataset.open(tmp_path / "ds")
    assert not ds.has_images and not (tmp_path / "ds" / "images.npy").exists() and len(ds) == 48
    np.testing.assert_array_equal(ds.ground_truth[:30], arrays["train_labels"][:, 0])
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert info["image_size"] is None and info["splits"] == {"train": 30, "validate": 10, "test": 8}
