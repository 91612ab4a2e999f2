"""``ltv ingest chexpert``: train.csv (the CheXpert labeller), valid.csv (radiologists), reader CSVs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltvcli.dataset import Dataset
from ltvcli.findings import FINDINGS

from helpers_ingest import chexpert_rows, error_line, pattern, write_chexpert_csv, write_raster

TRAIN = [("patient00001/study1/view1_frontal.jpg", "Frontal", "PA", {"Edema": "1.0", "Cardiomegaly": "-1.0"}),
         ("patient00001/study1/view2_lateral.jpg", "Lateral", "", {"Edema": "1.0", "Cardiomegaly": "-1.0"}),
         ("patient00002/study1/view1_frontal.jpg", "Frontal", "AP", {"Pleural Effusion": "-1.0",
                                                                     "Support Devices": "1.0"}),
         ("patient00002/study2/view1_frontal.jpg", "Frontal", "AP", {"No Finding": "1.0"}),
         ("patient00003/study1/view1_frontal.jpg", "Frontal", "PA", {"Atelectasis": "0.0"}),
         ("patient00004/study1/view1_frontal.jpg", "Frontal", "AP", {"Pneumothorax": "1.0"})]
VALID = [("patient64541/study1/view1_frontal.jpg", "Frontal", "AP", {"Cardiomegaly": "1.0"}),
         ("patient64541/study1/view2_lateral.jpg", "Lateral", "", {"Cardiomegaly": "1.0"}),
         ("patient64542/study1/view1_frontal.jpg", "Frontal", "PA", {"Edema": "1.0"})]
FRONTAL = ["train/" + TRAIN[k][0] for k in (0, 2, 3, 4, 5)] + ["valid/" + VALID[k][0] for k in (0, 2)]


def f(name: str) -> int:
    return FINDINGS.index(name)


def all_findings(cells: dict) -> dict:
    """A radiologist's row: every finding read, 0.0 unless given."""
    return {finding: cells.get(finding, "0.0") for finding in FINDINGS}


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "chexpert"
    release = root / "CheXpert-v1.0-small"
    for k, (name, *_rest) in enumerate(TRAIN):
        write_raster(release / "train" / name, pattern(k), quality=95)
    for k, (name, *_rest) in enumerate(VALID):
        write_raster(release / "valid" / name, pattern(len(TRAIN) + k), quality=95)
    train = write_chexpert_csv(root / "train.csv", chexpert_rows("train", TRAIN))
    valid = write_chexpert_csv(root / "valid.csv", chexpert_rows(
        "valid", [(n, fl, ap, all_findings(c)) for n, fl, ap, c in VALID]))
    rad1 = write_chexpert_csv(root / "rad1.csv", chexpert_rows(
        "valid", [(n, fl, ap, all_findings({"Cardiomegaly": "1.0"})) for n, fl, ap, _ in VALID]))
    rad2 = write_chexpert_csv(root / "rad2.csv", chexpert_rows(
        "valid", [(n, fl, ap, all_findings({"Edema": "-1.0"})) for n, fl, ap, _ in VALID]))
    return root, train, valid, rad1, rad2


def ingest(cli, out, *args, ok: bool = True):
    return cli("ingest", "chexpert", "--out", out, *args, ok=ok)


def test_labeller_policies_radiologist_ground_truth_and_readers(cli, source, tmp_path):
    root, train, valid, rad1, rad2 = source
    ingest(cli, tmp_path / "ds", "--train", train, "--ground-truth", valid, "--readers", rad1, "--readers",
           f"second={rad2}", "--images", root, "--uncertain", "U-Zeros,U-Ones", "--val-fraction", "0.5",
           "--size", "16", "--workers", "0")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.image_ids.tolist() == FRONTAL  # laterals left out by default
    assert ds.label_set_names == ["chexpert_u0", "chexpert_u1", "rad1", "second_u0", "second_u1"]
    assert ds.labellers == ["chexpert", "rad1", "second"]
    assert ds.manifest["study_id"].tolist()[:3] == ["patient00001/study1", "patient00002/study1",
                                                    "patient00002/study2"]
    assert ds.manifest["subject_id"].tolist()[-1] == "patient64542"
    assert ds.manifest["view"].tolist() == ["PA", "AP", "AP", "PA", "AP", "AP", "PA"]
    np.testing.assert_allclose(ds.images.reshape(len(FRONTAL), -1).mean(axis=1),
                               [pattern(k).mean() for k in (0, 2, 3, 4, 5, 6, 8)], atol=2)
    labels = ds.labels
    assert labels[0, :2, f("Cardiomegaly")].tolist() == [0, 1]  # uncertain: U-Zeros, U-Ones
    assert labels[0, :2, f("Edema")].tolist() == [1, 1] and labels[0, 0, f("Fracture")] == 0  # blank -> 0
    assert (labels[5:, :2] == -1).all()  # the labeller never saw the radiologists' images
    assert (labels[:5, 2:] == -1).all() and labels[5, 2, f("Cardiomegaly")] == 1
    assert labels[6, 3:, f("Edema")].tolist() == [0, 1]
    np.testing.assert_array_equal(ds.ground_truth[:5], -1)
    assert ds.ground_truth[5, f("Cardiomegaly")] == 1 and ds.ground_truth[6, f("Edema")] == 1
    assert ds.ground_truth[6].sum() == 1
    split = ds.manifest["split"].tolist()
    assert split[5:] == ["test", "test"] and split[1] == split[2]  # a patient's studies stay together
    per_patient = dict(zip(ds.manifest["subject_id"][:5], split[:5]))
    assert sorted(per_patient.values()) == ["train", "train", "validate", "validate"]  # half of 4 patients
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    raw = info["labellers"]["chexpert"]
    assert sum(part["Cardiomegaly"]["uncertain"] for part in raw.values()) == 1
    assert info["ground_truth_counts"]["test"]["Cardiomegaly"] == {"positive": 1, "negative": 1, "missing": 0}
    stored = (tmp_path / "ds" / "images.csv").read_text() + (tmp_path / "ds" / "dataset.json").read_text()
    assert "Female" not in stored and "61" not in stored


def test_release_folder_as_images_label_only_and_views_all(cli, source, tmp_path):
    root, train, valid, *_ = source
    ingest(cli, tmp_path / "a", "--train", train, "--images", root / "CheXpert-v1.0-small", "--views", "all",
           "--size", "16", "--workers", "0")
    a = Dataset.open(tmp_path / "a")
    assert len(a) == len(TRAIN) and a.manifest["view"].tolist()[1] == "Lateral"
    assert not (tmp_path / "a" / "skipped.csv").exists()
    ingest(cli, tmp_path / "b", "--ground-truth", valid, "--no-images")
    b = Dataset.open(tmp_path / "b")
    assert not b.has_images and b.label_set_names == [] and b.manifest["split"].tolist() == ["test", "test"]


@pytest.mark.parametrize("case, message", [
    ("uncertain ground truth", "valid.csv, line 2, column 'Edema': value '-1.0' is not 1, 0, yes, no or blank"),
    ("reader image unknown", "rad1.csv: 1 image(s) that are in neither the train nor the ground-truth CSV (first: "
                             "'valid/patient99999/study1/view1_frontal.jpg')"),
    ("image in both", "valid.csv: 1 image(s) are also in train.csv (first: "
                      "'train/patient00001/study1/view1_frontal.jpg')"),
    ("missing finding", "train.csv: missing required column(s) 'Fracture'"),
    ("nothing", "--train is needed when no ground-truth file is given"),
    ("bad policy", "--uncertain names an unknown uncertainty policy 'U-Twos'"),
])
def test_errors(cli, source, tmp_path, case, message):
    root, train, valid, rad1, _ = source
    args = ["--train", train, "--ground-truth", valid, "--readers", rad1, "--no-images"]
    if case == "uncertain ground truth":
        write_chexpert_csv(valid, chexpert_rows("valid", [(VALID[0][0], "Frontal", "AP",
                                                           all_findings({"Edema": "-1.0"}))]))
    elif case == "reader image unknown":
        write_chexpert_csv(rad1, chexpert_rows("valid", [("patient99999/study1/view1_frontal.jpg", "Frontal", "AP",
                                                          all_findings({}))]))
    elif case == "image in both":
        write_chexpert_csv(valid, chexpert_rows("train", [(TRAIN[0][0], "Frontal", "PA", all_findings({}))]))
        args = args[:4] + ["--no-images"]
    elif case == "missing finding":
        import pandas as pd
        frame = pd.read_csv(train, dtype=str, keep_default_na=False).drop(columns=["Fracture"])
        frame.to_csv(train, index=False)
    elif case == "nothing":
        args = ["--no-images"]
    else:
        args += ["--uncertain", "U-Twos"]
    assert message in error_line(ingest(cli, tmp_path / "ds", *args, ok=False))
    assert not (tmp_path / "ds").exists()
