"""``ltv ingest mimic`` on generated sources in the real MIMIC-CXR layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ltvcli.dataset.build as build
import ltvcli.ingest.images as images
import ltvcli.ingest.mimic as mimic
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.findings import FINDINGS
from ltvcli.ingest.images import load_image

from helpers_ingest import DEFAULT_IMAGES, error_line, pattern, read_csv, write_csv, write_mimic

FRONTAL = [0, 2, 3, 5, 6]  # rows of DEFAULT_IMAGES with view PA or AP
F = {name: FINDINGS.index(name) for name in FINDINGS}

# Hand-computed from DEFAULT_LABELS: study -> label set -> finding values that are not 0 by the default blank
# policy or that come from an explicit cell; every finding not listed is blank in both CSVs, hence 0.
EXPECTED = {
    "50000001": {"negbio_u0": {"Atelectasis": 1}, "negbio_u1": {"Atelectasis": 1, "Edema": 1},
                 "chexpert_u0": {"Edema": 1}, "chexpert_u1": {"Atelectasis": 1, "Edema": 1}},
    "50000002": {"negbio_u0": {"Support Devices": 1}, "negbio_u1": {"Pneumonia": 1, "Support Devices": 1},
                 "chexpert_u0": {"Pneumonia": 1}, "chexpert_u1": {"Pneumonia": 1}},
    "50000003": {"negbio_u0": {"No Finding": 1}, "negbio_u1": {"No Finding": 1},
                 "chexpert_u0": {"No Finding": 1}, "chexpert_u1": {"No Finding": 1}},
    "50000004": {"negbio_u0": {"Pleural Effusion": 1}, "negbio_u1": {"Pleural Effusion": 1, "Atelectasis": 1},
                 "chexpert_u0": {}, "chexpert_u1": {"Pleural Effusion": 1}},
}
SETS = ["negbio_u0", "negbio_u1", "chexpert_u0", "chexpert_u1"]


@pytest.fixture
def source(tmp_path: Path):
    return write_mimic(tmp_path / "src")


def ingest(cli, source, out: Path, *extra: str, ok: bool = True):
    return cli("ingest", "mimic", *source.args(), "--out", out, "--size", "16", "--workers", "0", *extra, ok=ok)


def expected_labels(studies: list[str]) -> np.ndarray:
    out = np.zeros((len(studies), len(SETS), len(FINDINGS)), dtype=np.int8)
    for i, study in enumerate(studies):
        for m, name in enumerate(SETS):
            for finding, value in EXPECTED[study][name].items():
                out[i, m, F[finding]] = value
    return out


# ----------------------------------------------------------------------------- labels, views, split


def test_default_label_sets_views_split_and_pixels(cli, source, tmp_path):
    ingest(cli, source, tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    rows = [DEFAULT_IMAGES[i] for i in FRONTAL]
    assert ds.label_set_names == SETS
    assert ds.classes == list(FINDINGS)
    assert ds.image_ids.tolist() == [r.dicom_id for r in rows]
    assert ds.manifest["view"].tolist() == ["PA", "AP", "PA", "AP", "PA"]
    assert ds.manifest["split"].tolist() == [r.split for r in rows]
    assert ds.manifest["study_id"].tolist() == [r.study for r in rows]
    np.testing.assert_array_equal(ds.labels, expected_labels([r.study for r in rows]))
    # every image of a study carries the study's labels (rows 2 and 3 are study 50000003)
    np.testing.assert_array_equal(ds.labels[2], ds.labels[3])
    # image i of the source is pattern(i): the cache rows follow the manifest
    means = ds.images.reshape(len(ds), -1).mean(axis=1)
    np.testing.assert_allclose(means, [pattern(i).mean() for i in FRONTAL], atol=2)
    assert ds.images.shape == (5, 16, 16) and ds.images.dtype == np.uint8
    assert not ds.has_ground_truth


def test_raw_codes_are_kept_and_info_counts_uncertain(cli, source, tmp_path):
    ingest(cli, source, tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.labellers == ["negbio", "chexpert"]
    # study 50000001 (row 0): negbio Atelectasis 1.0, Edema -1.0, Cardiomegaly 0.0, the rest blank (-2)
    row = ds.raw_labels[0, 0]
    assert (row[F["Atelectasis"]], row[F["Edema"]], row[F["Cardiomegaly"]], row[F["Fracture"]]) == (1, -1, 0, -2)
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    train = info["labellers"]["negbio"]["train"]
    assert train["Edema"]["uncertain"] == 1 and train["Pneumonia"]["uncertain"] == 1
    assert info["labellers"]["chexpert"]["test"]["Pleural Effusion"]["uncertain"] == 1


def test_ignore_policies_make_missing_and_blank_one(cli, source, tmp_path):
    ingest(cli, source, tmp_path / "ign", "--uncertain", "ignore", "--blank", "ignore")
    ds = Dataset.open(tmp_path / "ign")
    assert ds.label_set_names == ["negbio_ignore", "chexpert_ignore"]
    negbio, chexpert = ds.labels[0, 0], ds.labels[0, 1]  # study 50000001
    assert (negbio[F["Atelectasis"]], negbio[F["Edema"]], negbio[F["Cardiomegaly"]]) == (1, -1, 0)
    assert (chexpert[F["Atelectasis"]], chexpert[F["Edema"]]) == (-1, 1)
    assert (negbio == -1).sum() == 12 and (chexpert == -1).sum() == 13  # 11 / 12 blanks + 1 uncertain each

    ingest(cli, source, tmp_path / "b1", "--uncertain", "u0", "--blank", "1")
    ds = Dataset.open(tmp_path / "b1")
    chexpert = ds.labels[2, 1]  # study 50000003: No Finding 1.0, Fracture 0.0, the rest blank -> 1
    assert chexpert[F["Fracture"]] == 0 and chexpert.sum() == 13


def test_view_filter_is_configurable(cli, source, tmp_path):
    ingest(cli, source, tmp_path / "lat", "--views", "lateral,LL")
    assert Dataset.open(tmp_path / "lat").manifest["view"].tolist() == ["LATERAL", "LL"]
    ingest(cli, source, tmp_path / "all", "--views", "all")
    ds = Dataset.open(tmp_path / "all")
    assert len(ds) == 8
    np.testing.assert_array_equal(ds.labels[0], ds.labels[1])  # PA and LATERAL of one study
    result = ingest(cli, source, tmp_path / "none", "--views", "SWIMMERS", ok=False)
    assert "no image has ViewPosition SWIMMERS" in error_line(result)


def test_plain_csv_gives_the_same_dataset_as_gz(cli, tmp_path):
    gz = write_mimic(tmp_path / "gz", gz=True)
    plain = write_mimic(tmp_path / "plain", gz=False)
    assert plain.metadata.suffix == ".csv" and gz.metadata.name.endswith(".csv.gz")
    ingest(cli, gz, tmp_path / "a")
    ingest(cli, plain, tmp_path / "b")
    a, b = Dataset.open(tmp_path / "a"), Dataset.open(tmp_path / "b")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.images, b.images)


def test_columns_are_selected_by_name(cli, source, tmp_path):
    """Reordered columns and extra ones change nothing."""
    for path in (source.metadata, source.negbio):
        frame = read_csv(path)
        frame = frame[list(reversed(frame.columns))]
        frame["AcquisitionDeviceProcessingDescription"] = "CHEST"
        write_csv(path, frame)
    ingest(cli, source, tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    np.testing.assert_array_equal(ds.labels, expected_labels([DEFAULT_IMAGES[i].study for i in FRONTAL]))


# ----------------------------------------------------------------------------- images and reports


def test_image_format_auto_picks_jpg_or_dcm(cli, tmp_path):
    source = write_mimic(tmp_path / "src", image_format="mixed")
    ingest(cli, source, tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    assert [Path(s).suffix for s in ds.manifest["source"]] == [".jpg", ".jpg", ".dcm", ".dcm", ".jpg"]
    means = ds.images.reshape(len(ds), -1).mean(axis=1)
    np.testing.assert_allclose(means, [pattern(i).mean() for i in FRONTAL], atol=2)

    result = ingest(cli, source, tmp_path / "jpg", "--image-format", "jpg")
    assert "2 image(s) could not be read" in result.output
    ds = Dataset.open(tmp_path / "jpg")
    assert len(ds) == 3
    skipped = pd.read_csv(tmp_path / "jpg" / "skipped.csv", dtype=str)
    assert skipped["image_id"].tolist() == [DEFAULT_IMAGES[3].dicom_id, DEFAULT_IMAGES[5].dicom_id]
    assert skipped["reason"].str.contains("file not found").all()


def test_reports_column_points_at_existing_report_files(cli, source, tmp_path):
    ingest(cli, source, tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    texts = ds.report_texts()
    assert texts[0].startswith("FINDINGS: study 50000001.")
    assert texts[4].startswith("FINDINGS: study 50000004.")

    elsewhere = tmp_path / "reports" / "files" / "p10" / "p10000001"
    elsewhere.mkdir(parents=True)
    (elsewhere / "s50000001.txt").write_text("moved report")
    ingest(cli, source, tmp_path / "moved", "--reports", tmp_path / "reports")
    ds = Dataset.open(tmp_path / "moved")
    assert ds.report_texts() == ["moved report", None, None, None, None]
    assert ds.manifest["report"].tolist()[1:] == ["", "", "", ""]


def test_unreadable_image_is_skipped_or_fatal_with_strict(cli, source, tmp_path):
    bad = Path(read_source_path(source, 2))
    bad.write_bytes(b"not a jpeg")
    result = ingest(cli, source, tmp_path / "ds")
    assert "1 image(s) could not be read" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert DEFAULT_IMAGES[2].dicom_id not in ds.image_ids and len(ds) == 4
    skipped = pd.read_csv(tmp_path / "ds" / "skipped.csv", dtype=str)
    assert skipped["image_id"].tolist() == [DEFAULT_IMAGES[2].dicom_id]
    assert skipped["source"].tolist() == [str(bad)]
    # labels stay aligned with their images after the skipped row is removed
    np.testing.assert_array_equal(ds.labels, expected_labels([DEFAULT_IMAGES[i].study for i in (0, 3, 5, 6)]))

    result = ingest(cli, source, tmp_path / "strict", "--strict", ok=False)
    line = error_line(result)
    assert str(bad) in line and "--strict" in line
    assert not (tmp_path / "strict").exists()


def read_source_path(source, index: int) -> str:
    row = DEFAULT_IMAGES[index]
    return str(source.images / "files" / f"p{row.subject[:2]}" / f"p{row.subject}" / f"s{row.study}"
               / f"{row.dicom_id}.jpg")


def test_result_does_not_depend_on_the_number_of_workers(cli, tmp_path):
    source = write_mimic(tmp_path / "src", image_format="mixed", size=(40, 36))
    ingest(cli, source, tmp_path / "w0")
    cli("ingest", "mimic", *source.args(), "--out", tmp_path / "w2", "--size", "16", "--workers", "2")
    a = np.load(tmp_path / "w0" / "images.npy")
    b = np.load(tmp_path / "w2" / "images.npy")
    assert a.shape == (5, 16, 16)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- ground truth


def test_ground_truth_by_dicom_id_with_aliases(cli, source, tmp_path):
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({
        "dicom_id": [DEFAULT_IMAGES[6].dicom_id, DEFAULT_IMAGES[3].dicom_id, DEFAULT_IMAGES[1].dicom_id],
        "Effusion": ["1", "0", "1"], "Atelectasis": ["0.0", "", "1"], "E-cardio": ["", "1", "0"],
        "notes": ["x", "y", "z"],
    }))
    ingest(cli, source, tmp_path / "ds", "--ground-truth", truth)
    ds = Dataset.open(tmp_path / "ds")
    gt = ds.ground_truth
    assert gt.shape == (5, 14) and ds.has_ground_truth
    test_row, val_row = 4, 2
    assert (gt[test_row, F["Pleural Effusion"]], gt[test_row, F["Atelectasis"]]) == (1, 0)
    assert gt[test_row, F["Enlarged Cardiomediastinum"]] == -1  # blank = not labelled
    assert (gt[val_row, F["Pleural Effusion"]], gt[val_row, F["Enlarged Cardiomediastinum"]]) == (0, 1)
    assert (gt[[0, 1, 3]] == -1).all()  # images without a row
    assert (gt[:, F["Edema"]] == -1).all()  # a finding without a column
    info = json.loads(cli("info", tmp_path / "ds", "--json").output)
    assert info["ground_truth"] == {"train": 0, "validate": 1, "test": 1}


def test_ground_truth_by_study_labels_every_image_of_the_study(cli, source, tmp_path):
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"study_id": ["50000003"], "Pneumothorax": ["1"]}))
    ingest(cli, source, tmp_path / "ds", "--ground-truth", truth)
    gt = Dataset.open(tmp_path / "ds").ground_truth
    assert gt[2, F["Pneumothorax"]] == 1 and gt[3, F["Pneumothorax"]] == 1
    assert (np.delete(gt, [2, 3], axis=0) == -1).all()


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"dicom_id": ["ffffffff-0-0-0-0"], "Edema": ["1"]}),
     "1 dicom_id value(s) are not in the source dataset (first: 'ffffffff-0-0-0-0')"),
    (pd.DataFrame({"dicom_id": [DEFAULT_IMAGES[0].dicom_id], "Edema": ["yes"]}),
     "gt.csv, line 2, column 'Edema': value 'yes' is not 1, 0 or blank"),
    (pd.DataFrame({"image_name": ["x"], "Edema": ["1"]}), "no id column; expected one of 'dicom_id', 'image'"),
    (pd.DataFrame({"dicom_id": ["x"], "Edemaa": ["1"]}), "no finding columns"),
])
def test_bad_ground_truth_is_refused(cli, source, tmp_path, frame, message):
    truth = write_csv(tmp_path / "gt.csv", frame)
    assert message in error_line(ingest(cli, source, tmp_path / "ds", "--ground-truth", truth, ok=False))
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


# ----------------------------------------------------------------------------- bad inputs


def drop_column(column):
    def edit(source):
        path = source.negbio if column == "Edema" else source.metadata
        write_csv(path, read_csv(path).drop(columns=[column]))
    return edit


def set_cell(which, row, column, value):
    def edit(source):
        path = getattr(source, which)
        frame = read_csv(path)
        frame.loc[row, column] = value
        write_csv(path, frame)
    return edit


def drop_row(which, row):
    def edit(source):
        path = getattr(source, which)
        write_csv(path, read_csv(path).drop(index=row))
    return edit


BAD_INPUTS = {
    "metadata without ViewPosition": (drop_column("ViewPosition"),
                                      "metadata.csv.gz: missing required column(s) 'ViewPosition'"),
    "label CSV without a finding": (drop_column("Edema"), "negbio.csv.gz: missing required column(s) 'Edema'"),
    "label value outside the codes": (set_cell("chexpert", 2, "Edema", "2.0"),
                                      "chexpert.csv.gz, line 4, column 'Edema': value '2.0' is not one of 1, 0, -1 "
                                      "or blank"),
    "image without a split row": (drop_row("split", 3), f"no row for 1 image(s) of mimic-cxr-2.0.0-metadata.csv.gz "
                                                        f"(first: dicom_id '{DEFAULT_IMAGES[3].dicom_id}')"),
    "split row without an image": (drop_row("metadata", 7), f"1 row(s) with a dicom_id that is not in "
                                                            f"mimic-cxr-2.0.0-metadata.csv.gz (first: "
                                                            f"'{DEFAULT_IMAGES[7].dicom_id}')"),
    "study without labels": (drop_row("negbio", 1), "negbio.csv.gz: no negbio labels for 1 study/studies of the "
                                                    "selected images (first: study_id '50000002')"),
    "unknown split value": (set_cell("split", 0, "split", "training"),
                            "split.csv.gz, line 2, column 'split': value 'training' is not one of train, validate, "
                            "test"),
    "duplicate dicom_id": (set_cell("metadata", 1, "dicom_id", DEFAULT_IMAGES[0].dicom_id),
                           "metadata.csv.gz, line 3: duplicate row for dicom_id="),
    "blank study_id": (set_cell("metadata", 4, "study_id", ""),
                       "metadata.csv.gz, line 6, column 'study_id': empty value"),
    "corrupt gzip": (lambda source: source.split.write_bytes(b"\x1f\x8b\x08garbage"),
                     "split.csv.gz: cannot read the split CSV"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_error_and_leaves_old_output_untouched(cli, source, tmp_path, case):
    out = tmp_path / "ds"
    ingest(cli, source, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    edit, message = BAD_INPUTS[case]
    edit(source)
    line = error_line(ingest(cli, source, out, ok=False))
    assert message in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not Path(str(out) + ".partial").exists()


def test_missing_labels_skip_drops_the_study_with_a_warning(cli, source, tmp_path):
    drop_row("chexpert", 1)(source)
    result = ingest(cli, source, tmp_path / "ds", "--missing-labels", "skip")
    assert "no chexpert labels for 1 study/studies (1 images); they are left out" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert DEFAULT_IMAGES[2].dicom_id not in ds.image_ids and len(ds) == 4


@pytest.mark.parametrize("options, message", [
    (["--uncertain", "u2"], "unknown uncertainty policy 'u2'"),
    (["--blank", "maybe"], "unknown blank policy 'maybe'"),
    (["--image-format", "png"], "--image-format must be one of auto, jpg, dcm; got 'png'"),
    (["--missing-labels", "drop"], "--missing-labels must be one of error, skip; got 'drop'"),
    (["--workers", "-1"], "--workers must be 0"),
])
def test_bad_options(cli, source, tmp_path, options, message):
    assert message in error_line(ingest(cli, source, tmp_path / "ds", *options, ok=False))
    assert not (tmp_path / "ds").exists()


def test_missing_file_is_named(cli, source, tmp_path):
    source.chexpert.unlink()
    assert f"{source.chexpert}: no such label CSV file" in error_line(ingest(cli, source, tmp_path / "ds", ok=False))


# ----------------------------------------------------------------------------- resume


def test_interrupted_ingest_resumes_without_redoing_finished_images(cli, source, tmp_path, monkeypatch):
    out, partial = tmp_path / "ds", tmp_path / "ds.partial"
    monkeypatch.setattr(build, "CHUNK", 2)
    calls: list[str] = []

    def interrupted_at_3(path, size, channels):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(path)
        return load_image(path, size, channels)

    monkeypatch.setattr(images, "load_image", interrupted_at_3)
    result = ingest(cli, source, out, ok=False)
    assert result.exit_code == 130 and "re-run the command to resume" in result.output
    assert not out.exists() and partial.is_dir()
    with pytest.raises(LtvError, match="no such dataset folder"):
        Dataset.open(out)
    with pytest.raises(LtvError, match="dataset.json is missing"):
        Dataset.open(partial)

    calls.clear()

    def counting(path, size, channels):
        calls.append(path)
        return load_image(path, size, channels)

    monkeypatch.setattr(images, "load_image", counting)
    result = ingest(cli, source, out)
    assert "resuming the interrupted ingest" in result.output and "2 of 5 images already decoded" in result.output
    assert len(calls) == 3  # the first chunk of 2 was not decoded again
    assert not partial.exists()
    ingest(cli, source, tmp_path / "clean")
    np.testing.assert_array_equal(Dataset.open(out).images, Dataset.open(tmp_path / "clean").images)


def test_python_api_signature_used_by_the_demo(source, tmp_path):
    ds = mimic.ingest_mimic(**source.kwargs(), out=tmp_path / "api", size=16, views=("PA", "AP"),
                            uncertain=("u0", "u1"), blank="0", ground_truth=None, reports=None,
                            image_format="auto", workers=0, strict=False)
    assert isinstance(ds, Dataset) and ds.label_set_names == SETS and len(ds) == 5


def test_no_images_keeps_labels_reports_and_truth_of_the_image_ingest(cli, source, tmp_path):
    truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"dicom_id": [DEFAULT_IMAGES[0].dicom_id], "Edema": ["1"]}))
    ingest(cli, source, tmp_path / "full", "--ground-truth", truth)
    args = [a for a in source.args() if a not in ("--images", str(source.images))]
    cli("ingest", "mimic", *args, "--no-images", "--reports", source.images, "--ground-truth", truth, "--out",
        tmp_path / "lo")
    full, lo = Dataset.open(tmp_path / "full"), Dataset.open(tmp_path / "lo")
    assert not lo.has_images and not (tmp_path / "lo" / "images.npy").exists()
    assert lo.image_ids.tolist() == full.image_ids.tolist() and lo.label_set_names == full.label_set_names
    np.testing.assert_array_equal(lo.labels, full.labels)
    np.testing.assert_array_equal(lo.raw_labels, full.raw_labels)
    np.testing.assert_array_equal(lo.ground_truth, full.ground_truth)
    assert lo.report_texts() == full.report_texts() and lo.manifest["source"].eq("").all()
