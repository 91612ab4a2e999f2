"""What ltv may write over (ltvcli.outputs): the rules one by one, and --force through the CLI."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import make_dataset
from ltvcli import outputs
from ltvcli.atomic import replace_dir
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import DATASET, EVALUATION, PREDICTIONS, QUEUE, REFINED_LABELS, check_output

from helpers_ingest import error_line


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    return make_dataset(tmp_path / "ds", n=20, size=8)


def refused(parameter: str, match: str, *args, **kwargs) -> None:
    with pytest.raises(OptionError, match=match) as caught:
        check_output(*args, **kwargs)
    assert caught.value.parameter == parameter


def test_new_or_empty_paths_are_fine_and_nothing_is_created(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "new", tmp_path / "a" / "b" / "c", tmp_path / "empty"):
        assert check_output(path, DATASET) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_earlier_output_of_the_same_kind_needs_force(dataset, tmp_path):
    refused("force", "is needed to replace .*ds, which already holds an ltv dataset", dataset.path, DATASET)
    assert check_output(dataset.path, DATASET, force=True) == dataset.path
    assert check_output(dataset.path, DATASET, reuse=True) == dataset.path  # a command that continues it
    refused("out", "holds files that are not an ltv evaluation", dataset.path, EVALUATION, force=True)


def test_what_ltv_did_not_write_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "dataset.json").write_text('{"name": "my own format"}')  # the name alone is not enough
    refused("out", "holds files that are not an ltv dataset; ltv never replaces", tmp_path / "mine", DATASET,
            force=True)
    (tmp_path / "notes.csv").write_text("name,phone\nme,123\n")
    refused("out", "exists and is not an ltv predictions table", tmp_path / "notes.csv", PREDICTIONS, force=True)
    refused("out", "is a file, and an ltv dataset is a folder", tmp_path / "notes.csv", DATASET, force=True)
    refused("out", "is a folder; choose a file name", tmp_path / "mine", QUEUE, force=True)
    assert (tmp_path / "notes.csv").read_text() == "name,phone\nme,123\n"


def test_tables_are_recognised_by_their_columns_in_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"image_id": ["a"], "finding": ["Edema"], "refined": [0.5], "binarised": [1.0]})
    frame.to_csv(tmp_path / "labels.csv", index=False)
    frame.to_parquet(tmp_path / "labels.parquet", index=False)
    for name in ("labels.csv", "labels.parquet"):
        assert check_output(tmp_path / name, REFINED_LABELS, force=True)
        refused("out", "is not an ltv relabel queue", tmp_path / name, QUEUE, force=True)
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 not really")
    refused("out", "is not an ltv refined-labels table", tmp_path / "fake.parquet", REFINED_LABELS, force=True)


def test_an_output_never_is_contains_or_lies_inside_an_input(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    refused("out", "is .*images, which this command reads", images, DATASET, inputs=[images])
    refused("out", "contains .*images, which this command reads", tmp_path, DATASET, inputs=[images])
    refused("out", "lies inside .*images", images / "ds", DATASET, inputs=[images])
    refused("out", "is .*labels.csv", tmp_path / "x" / ".." / "labels.csv", QUEUE, inputs=[tmp_path / "labels.csv"])
    assert check_output(tmp_path / "ds", DATASET, inputs=[images, None, ""]) == tmp_path / "ds"


def test_a_symbolic_link_is_never_an_output(dataset, tmp_path):
    (tmp_path / "link").symlink_to(dataset.path)
    refused("out", "is a symbolic link", tmp_path / "link", DATASET, force=True)


def test_an_unwritable_folder_is_refused_before_the_work(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False if str(path) == str(tmp_path) else
                        real_access(path, mode))
    monkeypatch.setattr(outputs, "_read_only", lambda folder: True)
    refused("out", f"deeper: {tmp_path} is on a read-only file system", tmp_path / "new" / "deeper", DATASET)
    monkeypatch.setattr(outputs, "_read_only", lambda folder: False)
    refused("out", f"no permission to write in {tmp_path}", tmp_path / "new", DATASET)


def test_replace_dir_never_deletes_a_folder_without_the_marker(tmp_path):
    staging, target = tmp_path / "staging", tmp_path / "target"
    staging.mkdir()
    (staging / "dataset.json").write_text("{}")
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(LtvError, match="not replaced, it holds files but no dataset.json"):
        replace_dir(staging, target, "dataset.json")
    assert (target / "precious.txt").read_text() == "keep me" and (staging / "dataset.json").exists()


# ----------------------------------------------------------------------------- through the CLI


def npz(path, n: int):
    rng = np.random.default_rng(n)
    np.savez(path, train_images=rng.integers(0, 255, (n, 8, 8), dtype=np.uint8), train_labels=rng.integers(0, 2, n))
    return path


def test_force_replaces_an_earlier_dataset_whole_and_nothing_else(cli, tmp_path):
    out = tmp_path / "ds"
    cli("ingest", "npz", npz(tmp_path / "a.npz", 10), "--out", out)
    line = error_line(cli("ingest", "npz", npz(tmp_path / "b.npz", 14), "--out", out, ok=False))
    assert line == f"error: --force is needed to replace {out}, which already holds an ltv dataset"
    assert len(Dataset.open(out)) == 10
    cli("ingest", "npz", tmp_path / "b.npz", "--out", out, "--force")
    assert len(Dataset.open(out)) == 14
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "ds"]  # no .old or .partial left

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scan.dcm").write_bytes(b"patient data")
    line = error_line(cli("ingest", "npz", tmp_path / "b.npz", "--out", tmp_path / "mine", "--force", ok=False))
    assert "--out" in line and "never replaces" in line
    assert (tmp_path / "mine" / "scan.dcm").read_bytes() == b"patient data"


def test_an_evaluation_folder_is_replaced_whole_with_force(cli, dataset, tmp_path):
    out = tmp_path / "ev"
    cli("evaluate", "-d", dataset.path, "--bootstrap", "0", "--out", out)
    (out / "stale.png").write_bytes(b"from an earlier evaluation")
    line = error_line(cli("evaluate", "-d", dataset.path, "--bootstrap", "0", "--out", out, ok=False))
    assert "--force is needed" in line and (out / "stale.png").exists()
    cli("evaluate", "-d", dataset.path, "--bootstrap", "0", "--out", out, "--force")
    assert not (out / "stale.png").exists() and (out / "evaluation.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "ev"]  # the staging folder is gone


def test_train_continues_only_its_own_run(cli, dataset, tmp_path):
    fast = ("--method", "mv", "--epochs", "1", "--arch", "tiny", "--batch-size", "8", "--device", "cpu",
            "--workers", "0")
    cli("train", dataset.path, "--out", tmp_path / "run", *fast)
    line = error_line(cli("train", dataset.path, "--out", tmp_path / "run", *fast, ok=False))
    assert "already holds a training run" in line and "--resume" in line
    line = error_line(cli("train", dataset.path, "--out", dataset.path.parent, *fast, ok=False))
    assert "--out" in line and "contains" in line  # the folder holding the dataset
