"""Image features in a dataset folder: `ltv add-features`, `ltv ingest ... --features`, `ltv ingest answers`,
and the readers' checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_dataset
from helpers_features import features_of, write_crowd, write_npz, write_table
from helpers_ingest import error_line, pattern, write_csv, write_raster
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    return make_dataset(tmp_path / "ds", n=20)


def shuffled(dataset: Dataset, seed: int = 1) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The dataset's ids and features in another order, plus vectors for two ids it does not have."""
    vectors = features_of(dataset)
    order = np.random.default_rng(seed).permutation(len(dataset))
    ids = [str(dataset.image_ids[i]) for i in order] + ["lateral-1", "lateral-2"]
    return ids, np.concatenate([vectors[order], np.ones((2, vectors.shape[1]), np.float32)]), vectors


@pytest.mark.parametrize("layout", ["npz", "csv", "parquet", "npy+csv", "npy+txt"])
def test_add_features_matches_rows_to_images_whatever_the_file_order(cli, dataset, tmp_path, layout):
    ids, vectors, expected = shuffled(dataset)
    ids_file = None
    if layout == "npz":
        file = write_npz(tmp_path / "f.npz", ids, vectors)
    elif layout in ("csv", "parquet"):
        file = write_table(tmp_path / f"f.{layout}", ids, vectors)
    else:
        file = tmp_path / "f.npy"
        np.save(file, vectors)
        ids_file = tmp_path / ("ids.csv" if layout == "npy+csv" else "ids.txt")
        if layout == "npy+csv":
            pd.DataFrame({"image_id": ids}).to_csv(ids_file, index=False)
        else:
            ids_file.write_text("\n".join(ids) + "\n")
    result = cli("add-features", dataset.path, file, *(["--ids", ids_file] if ids_file else []))
    assert "2 of its 22 vectors are for images not in" in result.output
    stored = Dataset.open(dataset.path)
    np.testing.assert_allclose(stored.features, expected, rtol=1e-6)
    assert stored.features.dtype == np.float32 and isinstance(stored.features, np.memmap)
    assert stored.feature_meta["dim"] == 8 and stored.feature_meta["model"] == file.name
    info = json.loads(cli("info", dataset.path, "--json").output)
    assert info["features"] == {"dim": 8, "source": "file", "model": file.name}


def test_rows_in_the_datasets_own_order_take_its_images_csv_as_ids(cli, dataset, tmp_path):
    vectors = features_of(dataset)
    np.save(tmp_path / "f.npy", vectors)
    cli("add-features", dataset.path, tmp_path / "f.npy", "--ids", dataset.path / "images.csv")
    np.testing.assert_array_equal(Dataset.open(dataset.path).features, vectors)


def _bad(dataset: Dataset, d: Path, case: str) -> tuple[list, str]:
    ids, vectors, _ = shuffled(dataset)
    npy = d / "f.npy"
    if case == "missing id":
        return [write_npz(d / "f.npz", ids[1:], vectors[1:])], f"1 of the 20 images of {dataset.path} have no " \
                                                               f"feature vector (first: {ids[0]!r})"
    if case == "duplicate id":
        return [write_npz(d / "f.npz", ids + ids[:1], np.concatenate([vectors, vectors[:1]]))], \
            f"id {ids[0]!r} appears 2 times"
    if case == "NaN":
        vectors[3, 2] = np.nan
        return [write_npz(d / "f.npz", ids, vectors)], f"f.npz, row 4 (id {ids[3]!r}): the feature vector has a NaN"
    if case == "infinity in a CSV":
        vectors[0, 1] = np.inf
        return [write_table(d / "f.csv", ids, vectors)], "f.csv, line 2, column 'f1': 'inf' is not a finite number"
    if case == ".npy without ids":
        np.save(npy, vectors)
        return [npy], "FILE"
    if case == "ids and rows differ":
        np.save(npy, vectors[:-1])
        (d / "ids.txt").write_text("\n".join(ids))
        return [npy, "--ids", d / "ids.txt"], "21 rows but 22 ids"
    if case == "not [K, D]":
        np.save(npy, vectors[:, 0])
        (d / "ids.txt").write_text("\n".join(ids))
        return [npy, "--ids", d / "ids.txt"], "expected a real [K, D] array"
    if case == "another dataset's ids":
        return [write_npz(d / "f.npz", [f"x{i}" for i in range(5)], vectors[:5])], \
            "none of its 5 image_id values is an image of"
    if case == "no id column":
        frame = pd.DataFrame(vectors, columns=[f"f{j}" for j in range(8)])
        return [write_csv(d / "f.csv", frame.astype(str))], "no id column"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "missing id", "duplicate id", "NaN", "infinity in a CSV", ".npy without ids", "ids and rows differ", "not [K, D]",
    "another dataset's ids", "no id column"])
def test_bad_feature_files_are_one_line_errors_and_write_nothing(cli, dataset, tmp_path, case):
    args, expect = _bad(dataset, tmp_path, case)
    line = error_line(cli("add-features", dataset.path, *args, ok=False))
    assert expect in line
    assert not (dataset.path / "features.npy").exists() and not (dataset.path / "features.json").exists()


def test_features_are_replaced_only_with_force(cli, dataset, tmp_path):
    ids, vectors, expected = shuffled(dataset)
    file = write_npz(tmp_path / "f.npz", ids, vectors)
    cli("add-features", dataset.path, file)
    line = error_line(cli("add-features", dataset.path, write_npz(tmp_path / "g.npz", ids, vectors * 2), ok=False))
    assert "already has image features (8 dims from f.npz); add --force to replace them" in line
    cli("add-features", dataset.path, tmp_path / "g.npz", "--force")
    np.testing.assert_allclose(Dataset.open(dataset.path).features, expected * 2, rtol=1e-6)


def test_readers_check_the_array_against_its_json_and_the_image_count(cli, dataset, tmp_path):
    ids, vectors, _ = shuffled(dataset)
    cli("add-features", dataset.path, write_npz(tmp_path / "f.npz", ids, vectors))
    meta = json.loads((dataset.path / "features.json").read_text())
    (dataset.path / "features.json").write_text(json.dumps({**meta, "dim": 9}))
    with pytest.raises(LtvError, match=r"does not match 20 images x 9 dims"):
        Dataset.open(dataset.path).features
    np.save(dataset.path / "features.npy", np.zeros((19, 8), np.float32))
    with pytest.raises(LtvError, match=r"features.npy: shape \[19, 8\], expected \[20, D\]"):
        Dataset.open(dataset.path)


def table_source(root: Path, n: int = 12, broken: int | None = None) -> tuple[Path, Path]:
    """A long label table of two readers over n PNGs (image ``broken`` is not a PNG), and its folder."""
    for i in range(n):
        path = root / "images" / f"img{i}.png"
        if i == broken:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not a png")
        else:
            write_raster(path, pattern(i))
    frame = pd.DataFrame({"image": [f"img{i}.png" for i in range(n)] * 2,
                          "labeller": ["r1"] * n + ["r2"] * n,
                          "label": ["a", "b"] * n})
    return write_csv(root / "labels.csv", frame), root / "images"


def test_ingest_with_features_drops_the_vectors_of_unreadable_images(cli, tmp_path):
    labels, images = table_source(tmp_path / "src", broken=3)
    ids = [f"img{i}.png" for i in range(12)]
    vectors = np.arange(12 * 4, dtype=np.float32).reshape(12, 4)
    file = write_npz(tmp_path / "f.npz", ids[::-1], vectors[::-1])
    cli("ingest", "table", labels, "--images", images, "--out", tmp_path / "ds", "--size", "8", "--workers", "0",
        "--features", file)
    ds = Dataset.open(tmp_path / "ds")
    assert len(ds) == 11 and "img3.png" not in set(ds.image_ids) and ds.has_images
    np.testing.assert_array_equal(ds.features, vectors[[ids.index(i) for i in ds.image_ids]])


def test_no_images_with_features_is_a_dataset_of_features(cli, tmp_path):
    labels, _ = table_source(tmp_path / "src")
    ids = [f"img{i}.png" for i in range(12)]
    np.save(tmp_path / "f.npy", np.ones((12, 3), np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    result = cli("ingest", "table", labels, "--no-images", "--out", tmp_path / "ds", "--features", tmp_path / "f.npy",
                 "--feature-ids", tmp_path / "ids.txt")
    assert "3-dim features, no images" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert not ds.has_images and ds.has_features and ds.features.shape == (12, 3)
    assert "no images, 3-dim features (f.npy)" in " ".join(cli("info", tmp_path / "ds").output.split())
    line = error_line(cli("simulate", tmp_path / "ds", "--out", tmp_path / "sim", ok=False))
    assert "a dataset of image features (ingested without images) has no image cache" in line
    assert "train on its features with --input features" in line


def test_a_missing_feature_stops_the_ingest_before_any_image_is_read(cli, tmp_path):
    labels, images = table_source(tmp_path / "src")
    file = write_npz(tmp_path / "f.npz", [f"img{i}.png" for i in range(11)], np.ones((11, 2), np.float32))
    line = error_line(cli("ingest", "table", labels, "--images", images, "--out", tmp_path / "ds", "--workers", "0",
                          "--features", file, ok=False))
    assert "1 of the 12 images of this ingest have no feature vector (first: 'img11.png')" in line
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_a_label_layer_reads_the_features_of_the_dataset_it_stands_on(cli, dataset, tmp_path):
    ids, vectors, expected = shuffled(dataset)
    cli("add-features", dataset.path, write_npz(tmp_path / "f.npz", ids, vectors))
    cli("simulate", dataset.path, "--out", tmp_path / "sim", "--annotators", "HS,HS")
    layer = Dataset.open(tmp_path / "sim")
    assert not (tmp_path / "sim" / "features.npy").exists()
    np.testing.assert_allclose(layer.features, expected, rtol=1e-6)


# ----------------------------------------------------------------------------- ltv ingest answers
def test_answers_matrix_becomes_one_label_set_per_worker(cli, tmp_path):
    crowd = write_crowd(tmp_path / "crowd", answered=0.6)
    result = cli("ingest", "answers", *crowd.args(), "--out", tmp_path / "ds", "--classes", "a,b,c")
    assert "60 train, 20 validate, 20 test items; 3 workers" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multiclass" and ds.classes == ["a", "b", "c"] and not ds.has_images
    assert ds.label_set_names == ["worker_01", "worker_02", "worker_03"]
    train, test = ds.indices("train"), ds.indices("test")
    np.testing.assert_array_equal(ds.labels[train], crowd.answers)
    assert (ds.labels[test] == -1).all()  # answers on train only: every worker is missing on test
    np.testing.assert_array_equal(ds.ground_truth[test], crowd.truth["test"])
    assert ds.image_ids[test][0] == "test-0" and ds.features.shape == (100, 6)
    np.testing.assert_array_equal(ds.features[test], np.load(crowd.root / "features_test.npy"))


@pytest.mark.parametrize("case, expect", [
    ("ragged line", "answers.txt, line 3: 2 values, line 1 has 3"),
    ("not a class id", "answers.txt, line 2, column 1: 'x' is not a class id"),
    ("rows differ", "rows, but"),
    ("dims differ", "the features files have different dimensions D"),
    ("unknown split", "--truth 'later=x.txt': unknown split 'later'"),
    ("features for some splits", "--features given for train, validate but not for test"),
    ("too few class names", "--classes names 2 classes, but the files use class ids up to 2"),
    ("labellers", "--labellers names 2 labellers"),
])
def test_bad_answer_files_are_one_line_errors(cli, tmp_path, case, expect):
    crowd = write_crowd(tmp_path / "crowd")
    args, extra = crowd.args(), []
    answers = crowd.root / "answers.txt"
    lines = answers.read_text().splitlines()
    if case == "ragged line":
        lines[2] = "1 2"
        answers.write_text("\n".join(lines))
    elif case == "not a class id":
        lines[1] = "x " + lines[1].split(" ", 1)[1]
        answers.write_text("\n".join(lines))
    elif case == "rows differ":
        np.savetxt(crowd.root / "truth_train.txt", crowd.truth["train"][:-1], fmt="%d")
    elif case == "dims differ":
        np.save(crowd.root / "features_test.npy", np.ones((20, 5), np.float32))
    elif case == "unknown split":
        extra = ["--truth", "later=x.txt"]
    elif case == "features for some splits":
        args = crowd.args(features=False) + ["--features", f"train={crowd.root / 'features_train.npy'}",
                                             "--features", f"valid={crowd.root / 'features_validate.npy'}"]
    elif case == "too few class names":
        extra = ["--classes", "a,b"]
    elif case == "labellers":
        extra = ["--labellers", "x,y"]
    line = error_line(cli("ingest", "answers", *args, *extra, "--out", tmp_path / "ds", ok=False))
    assert expect in line
    assert not (tmp_path / "ds").exists()
