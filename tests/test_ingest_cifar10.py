"""``ltv ingest cifar10`` on generated python batches."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from ltvcli.dataset import Dataset

from helpers_ingest import CIFAR_CLASSES, error_line, write_cifar10


def test_batches_become_a_multiclass_dataset_with_ground_truth(cli, tmp_path):
    expected = write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=10)
    cli("ingest", "cifar10", "--root", tmp_path, "--out", tmp_path / "ds")  # the archive's parent folder works
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multiclass" and ds.classes == CIFAR_CLASSES
    assert ds.image_size == 32 and ds.channels == 3 and len(ds) == 60
    assert ds.image_ids[:2].tolist() == ["train-0", "train-1"] and ds.image_ids[50] == "test-0"
    assert ds.labels.shape == (60, 0) and ds.label_set_names == []
    np.testing.assert_array_equal(ds.images[:50], expected["train"])
    np.testing.assert_array_equal(ds.images[50:], expected["test"])
    np.testing.assert_array_equal(ds.ground_truth, np.concatenate([expected["train_labels"],
                                                                   expected["test_labels"]]))
    splits = ds.manifest["split"].tolist()
    assert splits[50:] == ["test"] * 10 and splits[:50].count("validate") == 10  # 20% of 50
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert info["splits"] == {"train": 40, "validate": 10, "test": 10} and info["ground_truth"]["test"] == 10


def test_rgb_planes_are_unpacked_in_the_right_order(cli, tmp_path):
    """Row = 1024 red, 1024 green, 1024 blue bytes, each plane row-major."""
    write_cifar10(tmp_path, per_batch=1)
    with open(tmp_path / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    row = np.zeros(3072, dtype=np.uint8)
    row[0], row[1024 + 1], row[2048 + 32] = 200, 150, 100  # red at (0,0), green at (0,1), blue at (1,0)
    batch[b"data"] = row[None]
    with open(tmp_path / "test_batch", "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    cli("ingest", "cifar10", "--root", tmp_path, "--out", tmp_path / "ds")
    image = Dataset.open(tmp_path / "ds").images[-1]
    assert (image[0, 0, 0], image[0, 1, 1], image[1, 0, 2]) == (200, 150, 100)
    assert image.sum() == 450


def test_limit_val_fraction_and_seed(cli, tmp_path):
    write_cifar10(tmp_path, per_batch=20)
    cli("ingest", "cifar10", "--root", tmp_path, "--out", tmp_path / "a", "--limit", "4", "--val-fraction", "0.5")
    cli("ingest", "cifar10", "--root", tmp_path, "--out", tmp_path / "b", "--limit", "4", "--val-fraction", "0.5",
        "--seed", "1")
    a, b = Dataset.open(tmp_path / "a"), Dataset.open(tmp_path / "b")
    assert len(a) == 24 and a.manifest["split"].tolist().count("validate") == 10
    assert a.manifest["split"].tolist() != b.manifest["split"].tolist()
    np.testing.assert_array_equal(a.images, b.images)


def test_malicious_pickle_is_refused(cli, tmp_path):
    write_cifar10(tmp_path, per_batch=2)

    class Exploit:
        def __reduce__(self):
            return os.system, ("touch " + str(tmp_path / "pwned"),)

    with open(tmp_path / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": Exploit()}, handle)
    line = error_line(cli("ingest", "cifar10", "--root", tmp_path, "--out", tmp_path / "ds", ok=False))
    assert "data_batch_3: not a CIFAR-10 python batch (refusing to load" in line
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("case, message", [
    ("missing batch", "data_batch_5: missing; expected the CIFAR-10 python batches"),
    ("wrong shape", "data_batch_2: expected data of shape [N, 3072] and N labels"),
    ("bad label", "test_batch: labels must be 0-9"),
    ("not a pickle", "batches.meta: not a CIFAR-10 python batch"),
])
def test_bad_batches(cli, tmp_path, case, message):
    write_cifar10(tmp_path, per_batch=2)
    if case == "missing batch":
        (tmp_path / "data_batch_5").unlink()
    elif case == "not a pickle":
        (tmp_path / "batches.meta").write_text("hello")
    else:
        name = "data_batch_2" if case == "wrong shape" else "test_batch"
        with open(tmp_path / name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        if case == "wrong shape":
            batch[b"data"] = batch[b"data"][:, :100]
        else:
            batch[b"labels"] = [3, 10]
        with open(tmp_path / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    assert message in error_line(cli("ingest", "cifar10", "--root", tmp_path, "--out", tmp_path / "ds", ok=False))
    assert not (tmp_path / "ds").exists()


def test_no_images_keeps_the_clean_labels_only(cli, tmp_path):
    write_cifar10(tmp_path / "batches", per_batch=4)
    cli("ingest", "cifar10", "--root", tmp_path / "batches", "--out", tmp_path / "ds", "--no-images")
    ds = Dataset.open(tmp_path / "ds")
    assert not ds.has_images and len(ds) == 24 and ds.ground_truth.shape == (24,)
    assert not (tmp_path / "ds" / "images.npy").exists()
