"""The data path: seeded epoch order, shards, the prefetching reader, device conversion, label gathering."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from conftest import make_dataset
from helpers_features import write_npz
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.features import add_features
from ltvcli.runtime.device import resolve_device
from ltvcli.runtime.inputs import model_inputs
from ltvcli.runtime.loader import ImageLoader, epoch_batches, images_to_device, ordered_batches, shard
from ltvcli.train.data import DeviceLabels

CPU = torch.device("cpu")


def test_epoch_order_is_a_seeded_shuffle_of_sorted_batches():
    rows = np.arange(100, 150)
    first = epoch_batches(rows, 8, seed=1, epoch=0)
    assert [b.tolist() for b in first] == [b.tolist() for b in epoch_batches(rows, 8, seed=1, epoch=0)]
    assert [b.tolist() for b in first] != [b.tolist() for b in epoch_batches(rows, 8, seed=1, epoch=1)]
    assert [b.tolist() for b in first] != [b.tolist() for b in epoch_batches(rows, 8, seed=2, epoch=0)]
    assert all((np.diff(b) > 0).all() for b in first)
    assert sorted(np.concatenate(first).tolist()) == rows.tolist()  # 50 = 6 x 8 + 2: the pair is kept


def test_a_last_batch_too_small_for_every_rank_is_dropped():
    rows = np.arange(17)  # 2 x 8 + 1
    assert [len(b) for b in epoch_batches(rows, 8, seed=0, epoch=0)] == [8, 8]
    assert [len(b) for b in epoch_batches(np.arange(19), 8, seed=0, epoch=0, world_size=2)] == [8, 8]
    assert [len(b) for b in epoch_batches(np.arange(20), 8, seed=0, epoch=0, world_size=2)] == [8, 8, 4]


def test_shards_of_ranks_rebuild_the_global_batches():
    batches = epoch_batches(np.arange(30), 8, seed=0, epoch=3, world_size=2)
    for batch in batches:
        assert np.array_equal(np.concatenate([shard(batch, r, 2) for r in range(2)]), batch)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_loader_yields_the_cached_pixels_in_order(tmp_path, workers):
    ds = make_dataset(tmp_path / "ds", n=30, size=16)
    batches = epoch_batches(np.arange(30), 7, seed=0, epoch=0)
    seen = list(ImageLoader(ds.images, batches, workers=workers))
    assert [rows.tolist() for rows, _ in seen] == [b.tolist() for b in batches]
    for rows, images in seen:
        assert images.dtype == torch.uint8 and np.array_equal(images.numpy(), ds.images[rows])


def test_loader_stopped_early_leaves_no_reader_thread(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=30, size=16)
    loader = iter(ImageLoader(ds.images, ordered_batches(np.arange(30), 2), workers=2))
    next(loader)
    loader.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ltv-read")]


def test_images_become_unit_range_channels_first_floats(tmp_path):
    gray = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)
    x = images_to_device(gray, CPU)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    rgb = torch.zeros((2, 4, 4, 3), dtype=torch.uint8)
    rgb[..., 2] = 255
    y = images_to_device(rgb, CPU)
    assert y.shape == (2, 3, 4, 4) and (y[:, 2] == 1).all() and (y[:, :2] == 0).all()


def test_device_labels_gather_the_rows_of_a_batch(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=20, size=16)
    labels = DeviceLabels(ds, CPU)
    rows = np.array([3, 7, 11])
    [(batch_rows, index, images)] = list(model_inputs(ds, "images", CPU).batches([rows], workers=0))
    batch = labels.batch(index, images)
    targets, mask = ds.targets()
    assert torch.equal(batch.targets, torch.from_numpy(targets[rows]))
    assert torch.equal(batch.mask, torch.from_numpy(mask[rows]))
    assert batch_rows.tolist() == batch.index.tolist() == rows.tolist() and batch.images.shape == (3, 1, 16, 16)
    truth, _ = ds.ground_truth_targets()
    assert torch.equal(labels.truth[batch.index], torch.from_numpy(truth[rows]))


def test_feature_inputs_gather_each_batch_of_rows_from_the_resident_matrix(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=20, size=16)
    vectors = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
    add_features(ds.path, write_npz(tmp_path / "f.npz", ds.image_ids, vectors))
    inputs = model_inputs(Dataset.open(ds.path), "features", CPU)
    batches = [np.array([3, 7]), np.array([0, 19, 5])]
    got = list(inputs.batches(batches))
    assert [rows.tolist() for rows, _, _ in got] == [[3, 7], [0, 19, 5]]
    for rows, index, x in got:
        assert index.tolist() == rows.tolist() and torch.equal(x, torch.from_numpy(vectors[rows]))


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU and resolve_device("cpu") == CPU
    with pytest.raises(LtvError, match="device cuda: no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(LtvError, match="expected one of auto, cuda, cpu"):
        resolve_device("tpu")
