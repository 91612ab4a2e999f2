"""Label layers: ``ltv simulate`` and ``ltv ingest relabels`` write labels over another dataset's image cache.

No pixel is copied, every command reads a layer like any dataset, and a base
that moved or changed is a one-line error naming it -- never the wrong pixels.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import make_dataset
from helpers_train import TRAIN_FAST
from ltvcli.dataset import Dataset

REFINE_FAST = ("--arch", "tiny", "--epochs", "2", "--warmup", "1", "--vog-epochs", "2", "--batch-size", "16",
               "--workers", "0", "--device", "cpu")


def simulate(cli, base: Path, out: Path, *extra: str) -> Dataset:
    cli("simulate", base, "--out", out, "--annotators", "HS,SF,OC", "--noise", "0.2", *extra)
    return Dataset.open(out)


def one_line_error(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_simulate_writes_labels_over_the_base_cache(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    layer = simulate(cli, base.path, tmp_path / "layer")
    assert not (layer.path / "images.npy").exists()
    assert layer.meta["image_cache"]["dataset"] == "../base"
    assert np.array_equal(layer.images, base.images) and layer.cache_folder == base.path.resolve()
    assert layer.label_set_names == ["HS", "SF", "OC"] and np.array_equal(layer.ground_truth, base.ground_truth)


def test_every_command_works_on_a_layer(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    layer = simulate(cli, base.path, tmp_path / "layer")
    run = tmp_path / "run"
    cli("train", layer.path, "--out", run, "--method", "ltv", "--epochs", "1", *TRAIN_FAST)
    cli("export-labels", run, layer.path, "--out", tmp_path / "labels.csv", "--device", "cpu")
    cli("predict", run, layer.path, "--out", tmp_path / "probs.csv", "--device", "cpu")
    cli("evaluate", run, "--dataset", layer.path, "--bootstrap", "10", "--device", "cpu")
    cli("refine", layer.path, "--budget", "3", "--out", tmp_path / "queue.csv", *REFINE_FAST)
    labels, queue = pd.read_csv(tmp_path / "labels.csv"), pd.read_csv(tmp_path / "queue.csv")
    assert labels["image_id"].nunique() == len(layer.indices("train")) and len(queue) == 3
    assert (tmp_path / "queue.html").read_text().count("data:image/png;base64,") == 3  # thumbnails: the pixels


def test_a_layer_of_a_layer_uses_the_original_cache(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    first = simulate(cli, base.path, tmp_path / "first")
    second = simulate(cli, first.path, tmp_path / "deeper" / "second", "--seed", "1")
    assert second.meta["image_cache"]["dataset"] == "../../base"
    assert np.array_equal(second.images, base.images)


def answered_queue(cli, dataset: Dataset, tmp_path: Path) -> Path:
    cli("refine", dataset.path, "--budget", "3", "--out", tmp_path / "queue.csv", "--no-sheet", *REFINE_FAST)
    queue = pd.read_csv(tmp_path / "queue.csv", dtype=str, keep_default_na=False)
    queue["expert"] = "1"
    queue.to_csv(tmp_path / "answered.csv", index=False)
    return tmp_path / "answered.csv"


def test_relabels_to_a_new_folder_is_a_layer_and_in_place_keeps_the_cache_file(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    answers = answered_queue(cli, base, tmp_path)
    cli("ingest", "relabels", base.path, answers, "--out", tmp_path / "relabelled")
    relabelled = Dataset.open(tmp_path / "relabelled")
    assert relabelled.meta["image_cache"]["dataset"] == "../base" and "expert" in relabelled.label_set_names

    inode = os.stat(base.path / "images.npy").st_ino
    pixels = np.array(base.images)
    cli("ingest", "relabels", base.path, answers)
    in_place = Dataset.open(base.path)
    assert "image_cache" not in in_place.meta and os.stat(base.path / "images.npy").st_ino == inode
    assert np.array_equal(in_place.images, pixels) and "expert" in in_place.label_set_names
    assert np.array_equal(relabelled.images, pixels)  # the layer made before still finds its pixels


def test_a_moved_or_changed_base_is_a_one_line_error(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    layer = simulate(cli, base.path, tmp_path / "layer")
    train = ("train", layer.path, "--out", tmp_path / "run", "--epochs", "1", *TRAIN_FAST)
    shutil.move(base.path, tmp_path / "elsewhere")
    line = one_line_error(cli(*train, ok=False))
    assert str(base.path.resolve()) in line and "which is missing" in line
    assert not (tmp_path / "run").exists()

    make_dataset(tmp_path / "base", n=40, seed=5)  # another dataset where the base was: other pixels
    line = one_line_error(cli(*train, ok=False))
    assert str(base.path.resolve()) in line and "not the one this dataset was made over" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_moving_base_and_layer_together_keeps_the_layer_working(cli, tmp_path):
    base = make_dataset(tmp_path / "work" / "base", n=40)
    pixels = np.array(base.images)
    simulate(cli, base.path, tmp_path / "work" / "layer")
    shutil.move(tmp_path / "work", tmp_path / "moved")
    assert np.array_equal(Dataset.open(tmp_path / "moved" / "layer").images, pixels)


def test_simulate_cannot_write_over_its_own_base(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    line = one_line_error(cli("simulate", base.path, "--out", base.path, ok=False))
    assert line.startswith(f"error: --out {base.path}") and "choose another folder" in line
    assert json.loads((base.path / "dataset.json").read_text())["label_sets"][0]["name"] == "set0"


def test_a_layer_is_written_under_the_output_rules(cli, tmp_path):
    base = make_dataset(tmp_path / "base", n=40)
    out = tmp_path / "layer"
    first = simulate(cli, base.path, out).labels.copy()
    line = one_line_error(cli("simulate", base.path, "--out", out, "--seed", "1", ok=False))
    assert "--force" in line and np.array_equal(Dataset.open(out).labels, first)
    second = simulate(cli, base.path, out, "--seed", "1", "--force")
    assert not np.array_equal(second.labels, first) and sorted(p.name for p in tmp_path.iterdir()) == ["base", "layer"]

    line = one_line_error(cli("simulate", out, "--out", base.path, "--force", ok=False))  # a layer's base is an input
    assert line.startswith(f"error: --out {base.path}") and "which this command reads" in line
    assert np.array_equal(Dataset.open(base.path).labels, base.labels)

    interrupted = tmp_path / "other.partial"  # left by an interrupted layer write: made again
    interrupted.mkdir()
    (interrupted / "plan.json").write_text('{"fingerprint": null}')
    (interrupted / "labels.npy").write_bytes(b"half")
    simulate(cli, base.path, tmp_path / "other")
    assert not interrupted.exists()

    mine = tmp_path / "third.partial"  # not ltv's: refused, never deleted
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    line = one_line_error(cli("simulate", base.path, "--out", tmp_path / "third", ok=False))
    assert "third.partial" in line and "not left by an ltv ingest" in line
    assert (mine / "notes.txt").read_text() == "mine" and not (tmp_path / "third").exists()
