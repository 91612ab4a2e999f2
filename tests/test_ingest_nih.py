"""``ltv ingest nih``: NIH's Data_Entry, official lists and Google's radiologist reads in their real layouts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ltvcli.dataset import Dataset
from ltvcli.findings import FINDINGS

from helpers_ingest import NIH_IMAGES, error_line, pattern, write_nih

IDS = list(NIH_IMAGES)


def f(name: str) -> int:
    return FINDINGS.index(name)


@pytest.fixture
def nih(tmp_path):
    return write_nih(tmp_path / "nih")


def google_args(files) -> list:
    return ["--readers", files.readers, "--readers", files.all_readers, "--ground-truth", files.test_labels,
            "--ground-truth", files.validation_labels, "--ground-truth", files.all_labels]


def ingest(cli, out, *args, ok: bool = True):
    return cli("ingest", "nih", "--out", out, *args, ok=ok)


@pytest.mark.parametrize("trailing_comma", [False, True])
def test_data_entry_lists_and_google_reads(cli, tmp_path, trailing_comma):
    files = write_nih(tmp_path / "nih", trailing_comma=trailing_comma)
    result = ingest(cli, tmp_path / "ds", "--data-entry", files.data_entry, "--train-val-list", files.train_val_list,
                    "--test-list", files.test_list, *google_args(files), "--images", files.images,
                    "--val-fraction", "0.5", "--size", "16", "--workers", "0")
    assert "1 (image, radiologist) pair(s) were read twice; the 1 finding(s) where the two reads differ" in \
        result.output
    assert "1 image(s) of expert-labelled patients follow Google's split" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.image_ids.tolist() == IDS and ds.classes == list(FINDINGS)
    assert ds.label_set_names == ["nih", "reader111_u0", "reader111_u1", "reader222_u0", "reader222_u1",
                                  "reader444", "reader333", "reader901", "reader902", "reader903"]
    assert ds.labellers == ["nih", "reader111", "reader222", "reader444", "reader333", "reader901", "reader902",
                            "reader903"]
    np.testing.assert_allclose(ds.images.reshape(len(IDS), -1).mean(axis=1),
                               [pattern(k).mean() for k in range(len(IDS))], atol=1)
    assert ds.manifest["subject_id"].tolist() == [row[1] for row in NIH_IMAGES.values()]
    assert ds.manifest["view"].tolist() == [row[2] for row in NIH_IMAGES.values()]
    # NIH's NLP labels, mapped: Effusion -> Pleural Effusion, Infiltration -> Lung Opacity, Mass/Nodule -> Lung
    # Lesion, Emphysema has no counterpart; findings NIH never labels are missing
    nih_set = ds.labels[:, 0]
    expected = np.zeros(14, dtype=np.int8)
    expected[[f("Pleural Effusion"), f("Lung Opacity"), f("Lung Lesion")]] = 1
    expected[[f("Enlarged Cardiomediastinum"), f("Fracture"), f("Support Devices")]] = -1
    np.testing.assert_array_equal(nih_set[0], expected)
    assert nih_set[1, f("No Finding")] == 1 and nih_set[3, f("Pleural Other")] == 1
    # a HEDGE is uncertain: reader222 said HEDGE to the pneumothorax of image 2
    image2 = IDS.index("00000002_000.png")
    assert ds.labels[image2, 3:5, f("Pneumothorax")].tolist() == [0, 1]
    # reader333 read image 6 twice and changed the opacity: missing there, the rest kept
    image6 = IDS.index("00000006_000.png")
    assert ds.labels[image6, 6, [f("Fracture"), f("Lung Opacity"), f("Lung Lesion")]].tolist() == [0, -1, 0]
    assert ds.labels[image6, 6, f("Atelectasis")] == -1  # the four findings only
    assert (ds.labels[IDS.index("00000001_000.png"), 1:] == -1).all()  # nobody of Google read image 1
    # all-findings readers: Abnormal is the opposite of No Finding, Mass -> Lung Lesion
    assert ds.labels[image2, 8, [f("No Finding"), f("Pneumothorax"), f("Lung Lesion"), f("Fracture")]].tolist() == \
        [0, 1, 1, -1]
    assert ds.labels[image2, 9, f("No Finding")] == 1
    # ground truth: the four-findings adjudication, then the all-findings majority where it is silent
    gt = ds.ground_truth
    assert gt[image2, [f("Pneumothorax"), f("Lung Lesion"), f("Atelectasis"), f("No Finding")]].tolist() == \
        [1, 0, 0, 0]
    assert gt[IDS.index("00000003_000.png"), [f("Fracture"), f("Lung Opacity"), f("Atelectasis")]].tolist() == \
        [1, 1, -1]
    assert (gt[IDS.index("00000004_000.png")] == -1).all()
    # one split per patient; expert-labelled patients never train
    split = dict(zip(IDS, ds.manifest["split"]))
    assert [split[i] for i in ("00000002_000.png", "00000004_000.png", "00000006_000.png", "00000007_000.png")] == \
        ["test"] * 4
    assert split["00000003_000.png"] == split["00000003_001.png"] == "validate"
    assert split["00000001_000.png"] == split["00000001_001.png"] != split["00000005_000.png"]
    assert {split["00000001_000.png"], split["00000005_000.png"]} == {"train", "validate"}
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert info["ground_truth_counts"]["test"]["Pneumothorax"] == {"positive": 1, "negative": 2, "missing": 1}
    assert info["labellers"]["reader222"]["test"]["Pneumothorax"]["uncertain"] == 1
    stored = "".join(p.read_text() for p in (tmp_path / "ds").iterdir() if p.suffix in (".csv", ".json"))
    assert "Patient Age" not in stored and "Gender" not in stored


def test_google_files_alone_label_only_and_pooled_by_read_position(cli, nih, tmp_path):
    ingest(cli, tmp_path / "ds", *google_args(nih), "--no-images", "--reader-sets", "position")
    ds = Dataset.open(tmp_path / "ds")
    assert not ds.has_images and not (tmp_path / "ds" / "images.npy").exists()
    assert ds.image_ids.tolist() == ["00000002_000.png", "00000003_000.png", "00000006_000.png", "00000007_000.png"]
    assert ds.manifest["split"].tolist() == ["test", "validate", "test", "test"]
    assert ds.label_set_names == ["nih", "read1_u0", "read1_u1", "read2_u0", "read2_u1", "read3", "reader901",
                                  "reader902", "reader903"]
    # NIH's labels come from the adjudicated files' Finding Labels column (they are Data_Entry rows)
    assert ds.labels[0, 0, f("Pneumothorax")] == 1 and ds.labels[2, 0, f("Cardiomegaly")] == 1
    # image 6 was read by 222, 333 (twice) and 444: positions 1, 2, 3
    assert ds.labels[2, [1, 3, 5], f("Lung Lesion")].tolist() == [1, 0, 1]
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert info["has_images"] is False and info["splits"] == {"train": 0, "validate": 1, "test": 3}
    text = cli("info", tmp_path / "ds", "--split", "test").output
    assert "label-only" in text and "read2_u1" in text and "reader903" in text


def test_patient_split_without_the_official_lists(cli, nih, tmp_path):
    ingest(cli, tmp_path / "ds", "--data-entry", nih.data_entry, "--readers", nih.readers, "--no-images",
           "--val-fraction", "0.25", "--test-fraction", "0.25", "--seed", "3")
    ds = Dataset.open(tmp_path / "ds")
    per_patient = ds.manifest.groupby("subject_id")["split"].nunique()
    assert (per_patient == 1).all()
    split = dict(zip(ds.manifest["subject_id"], ds.manifest["split"]))
    assert split["2"] == split["6"] == split["7"] == "test" and split["3"] == "validate"
    free = [split[p] for p in ("1", "4", "5")]  # four free patients would give 1/1/2; three give 1/1/1
    assert sorted(free) == ["test", "train", "validate"]


@pytest.mark.parametrize("case, message", [
    ("unknown image", "test_labels.csv: 1 image(s) that are not in Data_Entry_2017_v2020.csv (first: "
                      "'00000099_000.png')"),
    ("unknown nih label", "Data_Entry_2017_v2020.csv, line 3, column 'Finding Labels': value 'Cardiomegally' is "
                          "not a |-joined list of NIH's labels"),
    ("readers as ground truth", "individual_readers.csv: has a 'Reader ID' column; individual reads are readers"),
    ("hedge in ground truth", "validation_labels.csv, line 2, column 'Pneumothorax': value 'HEDGE' is not 1, 0, "
                              "yes, no or blank"),
    ("one list", "--test-list and the train_val list go together"),
    ("reader sets", "--reader-sets must be reader or position; got 'pooled'"),
    ("list misses an image", "test_list.txt and train_val_list.txt do not list 1 image(s) (first: "
                             "'00000007_000.png')"),
])
def test_errors_name_the_file_line_and_column(cli, nih, tmp_path, case, message):
    args = ["--data-entry", nih.data_entry, "--ground-truth", nih.test_labels, "--ground-truth",
            nih.validation_labels, "--no-images"]
    if case == "unknown image":
        frame = pd.read_csv(nih.test_labels, dtype=str)
        frame.loc[0, "Image Index"] = "00000099_000.png"
        frame.to_csv(nih.test_labels, index=False)
    elif case == "unknown nih label":
        text = nih.data_entry.read_text().replace("No Finding", "Cardiomegally", 1)
        nih.data_entry.write_text(text)
    elif case == "readers as ground truth":
        args += ["--ground-truth", nih.readers]
    elif case == "hedge in ground truth":
        frame = pd.read_csv(nih.validation_labels, dtype=str)
        frame.loc[0, "Pneumothorax"] = "HEDGE"
        frame.to_csv(nih.validation_labels, index=False)
    elif case == "one list":
        args += ["--test-list", nih.test_list]
    elif case == "reader sets":
        args += ["--reader-sets", "pooled"]
    else:
        nih.test_list.write_text("00000002_000.png\n00000004_000.png\n")
        args += ["--test-list", nih.test_list, "--train-val-list", nih.train_val_list]
    assert message in error_line(ingest(cli, tmp_path / "ds", *args, ok=False))
    assert not (tmp_path / "ds").exists()


def test_evaluate_scores_the_readers_where_the_experts_label_only_some_findings(cli, nih, tmp_path):
    ingest(cli, tmp_path / "ds", "--readers", nih.readers, "--ground-truth", nih.test_labels, "--no-images")
    cli("evaluate", "--dataset", tmp_path / "ds", "--bootstrap", "0", "--out", tmp_path / "eval")
    scores = pd.read_csv(tmp_path / "eval" / "auc.csv").set_index(["model", "finding"])
    assert scores.loc[("reader444", "Pneumothorax"), "n_pos"] == 1  # image 2 of the test set (image 6: negative)
    assert np.isnan(scores.loc[("reader444", "Atelectasis"), "auc"])  # the experts did not label it
