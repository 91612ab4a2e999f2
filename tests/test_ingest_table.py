"""``ltv ingest table``: wide and long label tables (CSV and Parquet) of a user's own labellers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltvcli.dataset import Dataset

from helpers_ingest import error_line, pattern, write_csv, write_raster

N = 6
IMAGES = [f"sub/img{i}.png" if i % 2 else f"img{i}.jpg" for i in range(N)]


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "images"
    for i, name in enumerate(IMAGES):
        write_raster(root / name, pattern(i), **({"quality": 95} if name.endswith(".jpg") else {}))
    return root


def ingest(cli, labels, images, out, *extra, ok: bool = True):
    return cli("ingest", "table", labels, "--images", images, "--out", out, "--size", "16", "--workers", "0",
               *extra, ok=ok)


DECLARE = ("--labeller", "annot1", "--labeller", "annot2")
WIDE_MULTICLASS = pd.DataFrame({
    "image": IMAGES,
    "annot1": ["cat", "dog", "", "bird", "cat", "dog"],
    "annot2": ["cat", "cat", "dog", "bird", "", "dog"],
    "split": ["train", "train", "train", "validate", "test", "test"],
})


def test_wide_multiclass_with_names_split_and_ground_truth(cli, images, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", WIDE_MULTICLASS)
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image": IMAGES[3:], "label": ["bird", "cat", "dog"]}))
    ingest(cli, labels, images, tmp_path / "ds", "--ground-truth", truth, *DECLARE)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multiclass" and ds.classes == ["bird", "cat", "dog"]
    assert ds.label_set_names == ["annot1", "annot2"]
    assert ds.image_ids.tolist() == IMAGES
    np.testing.assert_array_equal(ds.labels, [[1, 1], [2, 1], [-1, 2], [0, 0], [1, -1], [2, 2]])
    assert ds.labels.dtype == np.int16
    np.testing.assert_array_equal(ds.ground_truth, [-1, -1, -1, 0, 1, 2])
    assert ds.manifest["split"].tolist() == WIDE_MULTICLASS["split"].tolist()
    np.testing.assert_allclose(ds.images.reshape(N, -1).mean(axis=1), [pattern(i).mean() for i in range(N)], atol=2)
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert info["label_counts"]["train"]["annot2"]["cat"] == {"positive": 2, "negative": 1, "missing": 0}
    truth_counts = info["ground_truth_counts"]
    assert list(truth_counts) == ["validate", "test"]  # train has no ground truth
    assert truth_counts["validate"]["bird"] == {"positive": 1, "negative": 0, "missing": 0}
    assert truth_counts["test"]["cat"] == {"positive": 1, "negative": 1, "missing": 0}
    assert truth_counts["test"]["bird"] == {"positive": 0, "negative": 2, "missing": 0}
    text = cli("info", tmp_path / "ds").output
    assert "ground truth per split" in text and re.search(r"cat\s*│\s*0/1\s*│\s*1/1\s*│", text)


def test_wide_multiclass_with_integer_ids_and_given_classes(cli, images, tmp_path):
    frame = pd.DataFrame({"image": IMAGES, "a": ["0", "3", "1", "", "3", "0"], "b": ["1", "1", "1", "2", "0", "0"]})
    labels = write_csv(tmp_path / "ids.csv", frame)
    ingest(cli, labels, images, tmp_path / "ids", "--labeller", "a", "--labeller", "b")
    ds = Dataset.open(tmp_path / "ids")
    assert ds.classes == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(ds.labels[:, 0], [0, 3, 1, -1, 3, 0])
    ingest(cli, labels, images, tmp_path / "named", "--classes", "plane,car,bird,cat,deer", "--labeller", "a",
           "--labeller", "b")
    ds = Dataset.open(tmp_path / "named")
    assert ds.classes == ["plane", "car", "bird", "cat", "deer"]
    np.testing.assert_array_equal(ds.labels[:, 0], [0, 3, 1, -1, 3, 0])


def test_wide_multilabel_set_class_columns_with_finding_aliases(cli, images, tmp_path):
    labels = write_csv(tmp_path / "wide.csv", pd.DataFrame({
        "image": IMAGES, "rad1:Effusion": ["1", "0", "", "1", "0", "1"], "rad1:Edema": ["0", "0", "1", "1", "", "0"],
        "rad2:Pleural Effusion": ["1", "1", "0", "1", "0", ""], "rad2:Edema": ["0", "1", "1", "0", "0", "0"]}))
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image": [IMAGES[0], IMAGES[2]], "Edema": ["0", "1"],
                                                         "pleural effusion": ["1", ""]}))
    ingest(cli, labels, images, tmp_path / "ds", "--ground-truth", truth)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multilabel" and ds.classes == ["Edema", "Pleural Effusion"]
    assert ds.label_set_names == ["rad1", "rad2"]
    np.testing.assert_array_equal(ds.labels[:, 0], [[0, 1], [0, 0], [1, -1], [1, 1], [-1, 0], [0, 1]])
    np.testing.assert_array_equal(ds.labels[:, 1], [[0, 1], [1, 1], [1, 0], [0, 1], [0, 0], [0, -1]])
    np.testing.assert_array_equal(ds.ground_truth, [[0, 1], [-1, -1], [1, -1], [-1, -1], [-1, -1], [-1, -1]])


def test_long_multiclass_like_a_crowdsourcing_export(cli, images, tmp_path):
    rows = [(IMAGES[0], "w1", "b"), (IMAGES[0], "w2", "a"), (IMAGES[1], "w1", "a"), (IMAGES[2], "w3", "c"),
            (IMAGES[3], "w2", "b"), (IMAGES[4], "w1", "c"), (IMAGES[5], "w3", "a"), (IMAGES[5], "w1", "")]
    labels = write_csv(tmp_path / "long.csv", pd.DataFrame(rows, columns=["image", "labeller", "label"]))
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image": [IMAGES[0], IMAGES[5]], "label": ["b", "a"]}))
    ingest(cli, labels, images, tmp_path / "ds", "--ground-truth", truth)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.label_set_names == ["w1", "w2", "w3"] and ds.classes == ["a", "b", "c"]
    np.testing.assert_array_equal(ds.labels, [[1, 0, -1], [0, -1, -1], [-1, -1, 2], [-1, 1, -1], [2, -1, -1],
                                              [-1, -1, 0]])
    np.testing.assert_array_equal(ds.ground_truth, [1, -1, -1, -1, -1, 0])


def test_long_multilabel_and_parquet_give_the_same_dataset(cli, images, tmp_path):
    rows = [(IMAGES[i], labeller, finding, value) for i in range(N) for labeller, finding, value in
            (("nlp", "Edema", str(i % 2)), ("nlp", "Cardiomegaly", "1"), ("rad", "Edema", str((i + 1) % 2)))]
    frame = pd.DataFrame(rows, columns=["image", "labeller", "finding", "value"])
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image": [IMAGES[1]], "finding": ["E-cardio"],
                                                         "value": ["1"]}))
    ingest(cli, write_csv(tmp_path / "long.csv", frame), images, tmp_path / "csv", "--ground-truth", truth)
    frame.to_parquet(tmp_path / "long.parquet")
    ingest(cli, tmp_path / "long.parquet", images, tmp_path / "pq", "--ground-truth", truth)
    a, b = Dataset.open(tmp_path / "csv"), Dataset.open(tmp_path / "pq")
    assert a.classes == ["Cardiomegaly", "Edema", "Enlarged Cardiomediastinum"]
    np.testing.assert_array_equal(a.labels[:, 0, 1], [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(a.labels[:, 1, 0], [-1] * N)  # rad never labelled Cardiomegaly
    assert a.ground_truth[1].tolist() == [-1, -1, 1]
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.ground_truth, b.ground_truth)
    np.testing.assert_array_equal(a.images, b.images)


def test_random_split_is_seeded_and_rgb_channels(cli, images, tmp_path):
    labels = write_csv(tmp_path / "l.csv", WIDE_MULTICLASS.drop(columns=["split"]))
    args = ("--val-fraction", "0.34", "--test-fraction", "0.17", "--channels", "3", *DECLARE)
    ingest(cli, labels, images, tmp_path / "a", *args)
    ingest(cli, labels, images, tmp_path / "b", *args)
    ingest(cli, labels, images, tmp_path / "c", *args, "--seed", "5")
    a, b, c = (Dataset.open(tmp_path / n).manifest["split"].tolist() for n in "abc")
    assert (a.count("validate"), a.count("test"), a.count("train")) == (2, 1, 3)
    assert a == b and sorted(a) == sorted(c)
    ds = Dataset.open(tmp_path / "a")
    assert ds.images.shape == (N, 16, 16, 3) and ds.channels == 3


@pytest.mark.parametrize("case, message", [
    ("no image column", "labels.csv: missing required column(s) 'image'"),
    ("plain column in multilabel", "--labeller does not declare the column(s) 'b' of labels.csv"),
    ("bad multilabel value", "labels.csv, line 4, column 'a:x': value '2' is not 1, 0, -1, yes, no, hedge, "
                             "uncertain or blank"),
    ("unknown class", "labels.csv, line 3, column 'annot1': value 'zebra' is not a class of cat, dog, bird or blank"),
    ("duplicate long row", "labels.csv, line 3: duplicate row for image="),
    ("conflicting split", "labels.csv: image 'img0.jpg' has more than one split value"),
    ("bad split", "labels.csv, line 2, column 'split': value 'dev' is not one of train, validate, test"),
    ("task mismatch", "are those of a multilabel table, not multiclass"),
    ("long without label", "a long labels table needs columns image, labeller and either label"),
    ("ground truth image not in labels", "gt.csv: 1 image(s) that are not in labels.csv (first: 'other.png')"),
    ("bad fractions", "--val-fraction must be in [0, 1), as must the test fraction"),
])
def test_bad_tables(cli, images, tmp_path, case, message):
    extra: list = list(DECLARE)
    frame = WIDE_MULTICLASS.drop(columns=["split"])
    if case == "no image column":
        frame = frame.rename(columns={"image": "file"})
    elif case == "plain column in multilabel":
        frame, extra = pd.DataFrame({"image": IMAGES, "a:x": "1", "b": "0"}), []
    elif case == "bad multilabel value":
        frame, extra = pd.DataFrame({"image": IMAGES, "a:x": ["1", "0", "2", "1", "1", "1"]}), []
    elif case == "unknown class":
        frame.loc[1, "annot1"] = "zebra"
        extra += ["--classes", "cat,dog,bird"]
    elif case in ("duplicate long row", "conflicting split", "long without label"):
        frame, extra = pd.DataFrame({"image": [IMAGES[0], IMAGES[0]], "labeller": ["w1", "w1" if "dup" in case
                                                                                    else "w2"],
                                     "label": ["cat", "dog"], "split": ["train", "test"]}), []
        if case == "long without label":
            frame = frame.drop(columns=["label"])
    elif case == "bad split":
        frame["split"] = "dev"
    elif case == "task mismatch":
        extra = ["--task", "multiclass"]
        frame = pd.DataFrame({"image": IMAGES, "labeller": "w1", "finding": "Edema", "value": "1"})
    elif case == "ground truth image not in labels":
        truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image": ["other.png"], "label": ["cat"]}))
        extra += ["--ground-truth", truth]
    elif case == "bad fractions":
        extra += ["--val-fraction", "0.6", "--test-fraction", "0.5"]
    labels = write_csv(tmp_path / "labels.csv", frame)
    assert message in error_line(ingest(cli, labels, images, tmp_path / "ds", *extra, ok=False))
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_missing_image_file_is_listed_in_skipped(cli, images, tmp_path):
    (images / IMAGES[2]).unlink()
    result = ingest(cli, write_csv(tmp_path / "l.csv", WIDE_MULTICLASS), images, tmp_path / "ds", *DECLARE)
    assert "1 image(s) could not be read" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert IMAGES[2] not in ds.image_ids.tolist() and len(ds) == N - 1
    skipped = pd.read_csv(tmp_path / "ds" / "skipped.csv", dtype=str)
    assert skipped["image_id"].tolist() == [IMAGES[2]]
    np.testing.assert_array_equal(ds.labels[:, 0], [1, 2, 0, 1, 2])  # rows still match their images


# ----------------------------------------------------------------------------- strict columns


NIH_STYLE = pd.DataFrame({  # the layout of NIH's Data_Entry_2017.csv, with an image column
    "image": IMAGES,
    "Finding Labels": ["Effusion|Infiltration", "No Finding", "Infiltration", "", "Effusion", "Effusion|Mass"],
    "Follow-up #": ["0", "1", "0", "0", "1", "2"],
    "Patient ID": ["p7", "p7", "p8", "p9", "p9", "p9"],
    "Patient Age": ["101", "101", "102", "103", "103", "103"],
    "Patient Gender": ["M", "M", "F", "F", "F", "F"],
})
NIH_IGNORE = ("--ignore", "Follow-up #", "--ignore", "Patient Age", "--ignore", "Patient Gender")


def test_undeclared_columns_are_one_error_naming_them(cli, images, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", NIH_STYLE)
    line = error_line(ingest(cli, labels, images, tmp_path / "ds", "--labeller", "Finding Labels", ok=False))
    assert line == ("error: --labeller does not declare the column(s) 'Follow-up #', 'Patient ID', 'Patient Age', "
                    "'Patient Gender' of labels.csv; declare each label column (COLUMN or COLUMN=NAME), or leave it "
                    "out with ignore")
    for extra, message in [(("--labeller", "Findings"), "--labeller names 'Findings', which is neither a column"),
                           (("--ignore", "Age"), "--ignore names column(s) 'Age' that labels.csv does not have"),
                           (("--group", "patient"), "--group names column 'patient', which labels.csv does not "
                                                    "have")]:
        assert message in error_line(ingest(cli, labels, images, tmp_path / "ds", *extra, ok=False))
    assert not (tmp_path / "ds").exists()


def test_pipe_joined_findings_become_one_multilabel_set_grouped_by_patient(cli, images, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", NIH_STYLE)
    ingest(cli, labels, images, tmp_path / "ds", "--labeller", "Finding Labels=nih", *NIH_IGNORE,
           "--group", "Patient ID", "--val-fraction", "0.34", "--test-fraction", "0.34")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.task == "multilabel" and ds.label_set_names == ["nih"]
    assert ds.classes == ["Effusion", "Infiltration", "No Finding", "Mass"]  # not all findings: as named
    np.testing.assert_array_equal(ds.labels[:, 0], [[1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [-1, -1, -1, -1],
                                                    [1, 0, 0, 0], [1, 0, 0, 1]])
    splits = ds.manifest["split"].tolist()
    assert splits[0] == splits[1] and splits[3] == splits[4] == splits[5]  # one split per patient
    assert sorted(set(splits)) == ["test", "train", "validate"]  # three patients, one per split
    assert list(ds.manifest.columns) == ["image_id", "study_id", "subject_id", "split", "view", "source", "report"]
    assert ds.manifest["subject_id"].eq("").all()
    stored = "".join(p.read_text(errors="replace") for p in (tmp_path / "ds").glob("*.*") if p.suffix != ".npy")
    for secret in ("Patient", "p7", "101", "Follow-up"):
        assert secret not in stored


def test_judgement_words_hedges_and_policies(cli, images, tmp_path):
    labels = write_csv(tmp_path / "labels.csv", pd.DataFrame({
        "image": IMAGES, "rad1:Pneumothorax": ["YES", "no", "Hedge", "", "uncertain", "-1"],
        "rad1:Fracture": ["1", "0", "yes", "NO", "0", "1.0"],
        "rad2:Pneumothorax": ["no", "no", "yes", "yes", "", "no"], "site": "A"}))
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image": IMAGES[:3], "Pneumothorax": ["YES", "no", "1"],
                                                         "Edema": ["0", "1", ""], "site": "A"}))
    result = ingest(cli, labels, images, tmp_path / "ds", "--ground-truth", truth, "--labeller", "rad2=second",
                    "--ignore", "site")
    assert "ground-truth class(es) 'Edema' are in no label set" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.classes == ["Edema", "Fracture", "Pneumothorax"]
    assert ds.label_set_names == ["rad1_u0", "rad1_u1", "second"]  # second never hedged: one set
    pneumo = ds.class_index("Pneumothorax")
    np.testing.assert_array_equal(ds.labels[:, :, pneumo].T, [[1, 0, 0, -1, 0, 0], [1, 0, 1, -1, 1, 1],
                                                              [0, 0, 1, 1, -1, 0]])
    np.testing.assert_array_equal(ds.labels[:, 0, ds.class_index("Fracture")], [1, 0, 1, 0, 0, 1])
    assert ds.labels[:, :, ds.class_index("Edema")].max() == -1
    np.testing.assert_array_equal(ds.ground_truth[:3], [[0, -1, 1], [1, -1, 0], [-1, -1, 1]])
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert sum(per_split["Pneumothorax"]["uncertain"] for per_split in info["labellers"]["rad1"].values()) == 3
    bad = write_csv(tmp_path / "bad.csv", pd.DataFrame({"image": IMAGES[:1], "Pneumothorax": ["hedge"]}))
    line = error_line(ingest(cli, labels, images, tmp_path / "x", "--ground-truth", bad, "--ignore", "site",
                             ok=False))
    assert "bad.csv, line 2, column 'Pneumothorax': value 'hedge' is not 1, 0, yes, no or blank" in line
