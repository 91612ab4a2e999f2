"""Label-only datasets (`ltv ingest ... --no-images`): readable by `ltv info`, refused by every pixel command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import Cli
from helpers_ingest import error_line, pattern, write_csv, write_raster
from helpers_train import TRAIN_FAST
from ltvcli.dataset import Dataset

N = 16


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Path]:
    """A wide multi-label table of two readers over N PNGs, and its image folder."""
    root = tmp_path_factory.mktemp("source")
    for i in range(N):
        write_raster(root / "images" / f"img{i}.png", pattern(i))
    frame = pd.DataFrame({"image": [f"img{i}.png" for i in range(N)],
                          "r1:Edema": [str(i % 2) for i in range(N)],
                          "r2:Edema": [str((i // 2) % 2) for i in range(N)],
                          "split": ["train"] * 10 + ["validate"] * 3 + ["test"] * 3})
    return write_csv(root / "labels.csv", frame), root / "images"


@pytest.fixture(scope="module")
def label_only(tmp_path_factory, source) -> Path:
    labels, _ = source
    out = tmp_path_factory.mktemp("lo") / "labels-only"
    Cli()("ingest", "table", labels, "--no-images", "--out", out)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, source) -> Path:
    """A run trained on the same table with its images (the same classes and label sets)."""
    labels, images = source
    folder = tmp_path_factory.mktemp("run")
    Cli()("ingest", "table", labels, "--images", images, "--out", folder / "ds", "--size", "16", "--workers", "0")
    Cli()("train", folder / "ds", "--out", folder / "run", "--method", "mv", "--epochs", "1", *TRAIN_FAST)
    return folder / "run"


def test_label_only_folder_has_labels_and_no_image_cache(cli, label_only):
    ds = Dataset.open(label_only)
    meta = json.loads((label_only / "dataset.json").read_text())
    assert meta["has_images"] is False and meta["image_size"] is None and meta["channels"] is None
    assert meta["format_version"] == 2
    assert not (label_only / "images.npy").exists()
    assert not ds.has_images and ds.label_set_names == ["r1", "r2"] and len(ds) == N
    assert ds.manifest["source"].eq("").all()
    assert ds.labels[:, 0, 0].tolist() == [i % 2 for i in range(N)]
    info = json.loads(cli("info", label_only, "--json").output)
    assert info["has_images"] is False and info["image_size"] is None and info["n_images"] == N
    assert info["label_counts"]["train"]["r1"]["Edema"] == {"positive": 5, "negative": 5, "missing": 0}
    assert "label-only (no images)" in cli("info", label_only).output


@pytest.mark.parametrize("command", ["train", "predict", "export-labels", "refine"])
def test_pixel_commands_refuse_a_label_only_dataset_in_one_line(cli, tmp_path, label_only, run, command):
    out = tmp_path / "out"
    args = {"train": ["train", label_only, "--out", out, "--method", "mv", *TRAIN_FAST],
            "predict": ["predict", run, label_only, "--out", out / "p.csv"],
            "export-labels": ["export-labels", run, label_only, "--out", out / "l.csv"],
            "refine": ["refine", label_only, "--budget", "2", "--out", out / "q.csv", "--arch", "tiny",
                       "--device", "cpu"]}[command]
    line = error_line(cli(*args, ok=False))
    assert f"{label_only}: a label-only dataset (ingested without images) has no image cache" in line
    assert not out.exists()


def test_images_and_no_images_are_one_choice(cli, tmp_path, source):
    labels, images = source
    line = error_line(cli("ingest", "table", labels, "--out", tmp_path / "a", ok=False))
    assert "--images DIR is required (or --no-images to ingest the labels only)" in line
    line = error_line(cli("ingest", "table", labels, "--images", images, "--no-images", "--out", tmp_path / "b",
                          ok=False))
    assert "--images and --no-images exclude each other" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_label_only_ingest_replaces_an_interrupted_image_ingest(cli, tmp_path, source):
    labels, _ = source
    stale = tmp_path / "ds.partial"
    stale.mkdir()
    (stale / "images.npy").write_bytes(b"half")
    cli("ingest", "table", labels, "--no-images", "--out", tmp_path / "ds")
    assert not stale.exists() and not (tmp_path / "ds" / "images.npy").exists()


def test_a_version_1_folder_is_read_as_it_is(cli, tiny_dataset):
    meta_path = tiny_dataset.path / "dataset.json"
    meta = json.loads(meta_path.read_text())
    del meta["has_images"]
    meta["format_version"] = 1
    meta_path.write_text(json.dumps(meta))
    ds = Dataset.open(tiny_dataset.path)
    assert ds.has_images and ds.images.shape == (48, 16, 16) and ds.image_size == 16
    assert json.loads(cli("info", tiny_dataset.path, "--json").output)["has_images"] is True
