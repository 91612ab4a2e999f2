"""``ltv ingest openi`` on both OpenI layouts (NLM XML + PNG, Kaggle CSV pair)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltvcli.dataset import Dataset
from ltvcli.findings import FINDINGS

from helpers_ingest import error_line, pattern, write_csv, write_openi_kaggle, write_openi_xml

FRONTAL = [0, 2, 4]  # image positions (in OPENI_REPORTS order) with view PA / AP
TEXTS = ["FINDINGS: The heart is normal in size.\nIMPRESSION: Normal chest.",
         "FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion.",
         "FINDINGS: Cardiomegaly.\nIMPRESSION: Enlarged heart."]


def ingest(cli, out: Path, *args, ok: bool = True):
    return cli("ingest", "openi", *args, "--out", out, "--size", "16", "--workers", "0", ok=ok)


@pytest.fixture
def xml(tmp_path):
    return write_openi_xml(tmp_path / "nlm")


@pytest.fixture
def kaggle(tmp_path):
    return write_openi_kaggle(tmp_path / "kaggle")


def xml_args(xml) -> list:
    reports, images, views = xml
    return ["--reports", reports, "--images", images, "--projections", views]


def kaggle_args(kaggle) -> list:
    reports, projections, images = kaggle
    return ["--reports", reports, "--projections", projections, "--images", images]


def test_xml_layout_keeps_frontal_images_as_test_with_report_text(cli, xml, tmp_path):
    ingest(cli, tmp_path / "ds", *xml_args(xml))
    ds = Dataset.open(tmp_path / "ds")
    assert ds.image_ids.tolist() == ["CXR1_1_IM-0001-3001", "CXR2_1_IM-0002-1001", "CXR3_1_IM-0003-1001"]
    assert ds.manifest["study_id"].tolist() == ["1", "2", "3"]
    assert ds.manifest["view"].tolist() == ["PA", "AP", "PA"]
    assert set(ds.manifest["split"]) == {"test"}
    assert ds.report_texts() == TEXTS
    assert ds.labels.shape == (3, 0, 14) and ds.label_set_names == [] and ds.classes == list(FINDINGS)
    np.testing.assert_allclose(ds.images.reshape(3, -1).mean(axis=1), [pattern(i).mean() for i in FRONTAL],
                               atol=1)


def test_kaggle_layout_gives_the_same_images_and_texts(cli, xml, kaggle, tmp_path):
    ingest(cli, tmp_path / "x", *xml_args(xml))
    ingest(cli, tmp_path / "k", *kaggle_args(kaggle))
    x, k = Dataset.open(tmp_path / "x"), Dataset.open(tmp_path / "k")
    assert k.image_ids.tolist() == ["1_IM-0001-3001", "2_IM-0002-1001", "3_IM-0003-1001"]
    assert k.manifest["view"].tolist() == ["Frontal"] * 3
    assert k.report_texts() == TEXTS
    np.testing.assert_array_equal(k.images, x.images)


def test_view_table_from_dicom_metadata_and_views_all(cli, xml, tmp_path):
    reports, images, _ = xml
    table = write_csv(tmp_path / "dicom_meta.csv", pd.DataFrame({
        "filename": ["CXR1_1_IM-0001-3001.dcm", "CXR1_2_IM-0001-4001.dcm", "CXR2_1_IM-0002-1001.dcm",
                     "CXR2_2_IM-0002-2001.dcm", "CXR3_1_IM-0003-1001.dcm", "CXR9_1_IM-0009-1001.dcm"],
        "ViewPosition": ["PA", "LL", "LATERAL", "AP", "PA", "PA"], "Modality": "CR"}))
    ingest(cli, tmp_path / "meta", "--reports", reports, "--images", images, "--projections", table)
    assert Dataset.open(tmp_path / "meta").image_ids.tolist() == ["CXR1_1_IM-0001-3001", "CXR2_2_IM-0002-2001",
                                                                 "CXR3_1_IM-0003-1001"]
    ingest(cli, tmp_path / "all", "--reports", reports, "--images", images, "--views", "all")
    assert len(Dataset.open(tmp_path / "all")) == 5


def test_hand_labels_become_ground_truth_by_image_or_report(cli, kaggle, tmp_path):
    by_image = write_csv(tmp_path / "img.csv", pd.DataFrame({
        "filename": ["1_IM-0001-3001.dcm.png", "3_IM-0003-1001.dcm.png", "1_IM-0001-4001.dcm.png"],
        "Cardiomegaly": ["0", "1", "1"], "Effusion": ["0", "", "0"]}))
    ingest(cli, tmp_path / "a", *kaggle_args(kaggle), "--ground-truth", by_image)
    gt = Dataset.open(tmp_path / "a").ground_truth
    card, eff = FINDINGS.index("Cardiomegaly"), FINDINGS.index("Pleural Effusion")
    np.testing.assert_array_equal(gt[:, card], [0, -1, 1])
    np.testing.assert_array_equal(gt[:, eff], [0, -1, -1])

    by_report = write_csv(tmp_path / "rep.csv", pd.DataFrame({"uid": ["CXR2", "3"], "Pleural Effusion": ["1", "0"]}))
    ingest(cli, tmp_path / "b", *kaggle_args(kaggle), "--ground-truth", by_report)
    ds = Dataset.open(tmp_path / "b")
    np.testing.assert_array_equal(ds.ground_truth[:, eff], [-1, 1, 0])
    info = json.loads(cli("info", tmp_path / "b", "--json").output)
    assert info["label_sets"] == [] and info["ground_truth"]["test"] == 2 and info["splits"]["test"] == 3
    assert "ground truth, test" in cli("info", tmp_path / "b", "--split", "test").output


@pytest.mark.parametrize("case, message", [
    ("no view table", "do not say which images are frontal; give --projections"),
    ("bad xml", "2.xml: not valid XML"),
    ("view table without a view column", "no view column; expected one of 'projection', 'view', 'ViewPosition'"),
    ("unknown ground-truth image", "1 image_id value(s) are not in the source dataset (first: 'CXR7_1_IM-0007')"),
])
def test_xml_layout_errors(cli, xml, tmp_path, case, message):
    reports, images, views = xml
    args = ["--reports", reports, "--images", images, "--projections", views]
    if case == "no view table":
        args = args[:4]
    elif case == "bad xml":
        (reports / "2.xml").write_text("<eCitation><uId id='CXR2'></eCitation>")
    elif case == "view table without a view column":
        write_csv(views, pd.DataFrame({"ImageID": ["CXR1_1_IM-0001-3001"], "angle": ["PA"]}))
    else:
        truth = write_csv(tmp_path / "gt.csv", pd.DataFrame({"image_id": ["CXR7_1_IM-0007"], "Edema": ["1"]}))
        args += ["--ground-truth", truth]
    assert message in error_line(ingest(cli, tmp_path / "ds", *args, ok=False))
    assert not (tmp_path / "ds").exists()


def test_kaggle_layout_errors(cli, kaggle, tmp_path):
    reports, projections, images = kaggle
    result = ingest(cli, tmp_path / "ds", "--reports", reports, "--images", images, ok=False)
    assert "the Kaggle layout needs --projections" in error_line(result)
    frame = pd.read_csv(projections, dtype=str)
    frame.loc[4, "uid"] = "44"
    write_csv(projections, frame)
    result = ingest(cli, tmp_path / "ds", *kaggle_args(kaggle), ok=False)
    assert "indiana_projections.csv: 1 row(s) with a uid that is not in indiana_reports.csv (first: '44')" in \
        error_line(result)
    write_csv(reports, pd.read_csv(reports, dtype=str).drop(columns=["impression"]))
    assert "indiana_reports.csv: missing required column(s) 'impression'" in \
        error_line(ingest(cli, tmp_path / "ds", *kaggle_args(kaggle), ok=False))
    assert not (tmp_path / "ds").exists()


def test_missing_png_is_skipped(cli, kaggle, tmp_path):
    _, _, images = kaggle
    (images / "2_IM-0002-1001.dcm.png").unlink()
    result = ingest(cli, tmp_path / "ds", *kaggle_args(kaggle))
    assert "1 image(s) could not be read" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.image_ids.tolist() == ["1_IM-0001-3001", "3_IM-0003-1001"]
    assert ds.report_texts() == [TEXTS[0], TEXTS[2]]
