"""``ltv ingest openi`` on both OpenI layouts (NLM XML + PNG, Kaggle CSV pair)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltvcli.dataset import Dataset
from ltvcli.findings import FINDINGS

from helpers_ingest import (error_line, pattern, read_csv, write_csv, write_dicom_metadata, write_openi_kaggle,
                            write_openi_xml)

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
    ("no view table", "--projections is needed: the NLM XML reports in"),
    ("bad xml", "2.xml: not valid XML"),
    ("view table without a view column", "no view column; expected one of 'projection', 'view', 'ViewPosition', "
                                         "'View Position'"),
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
    assert "--projections is needed: indiana_reports.csv (the Kaggle layout) lists no images" in error_line(result)
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


def test_missing_png_is_skipped_and_listed(cli, kaggle, tmp_path):
    _, _, images = kaggle
    (images / "2_IM-0002-1001.dcm.png").unlink()
    result = ingest(cli, tmp_path / "ds", *kaggle_args(kaggle))
    assert "1 image(s) could not be read" in result.output and "skipped.csv" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.image_ids.tolist() == ["1_IM-0001-3001", "3_IM-0003-1001"]
    assert ds.report_texts() == [TEXTS[0], TEXTS[2]]
    assert read_csv(tmp_path / "ds" / "skipped.csv")["image_id"].tolist() == ["2_IM-0002-1001"]


def test_no_readable_image_lists_them_all_where_the_error_says(cli, xml, tmp_path):
    reports, _, views = xml
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    line = error_line(ingest(cli, tmp_path / "ds", "--reports", reports, "--images", empty, "--projections", views,
                             ok=False))
    skipped = tmp_path / "ds.partial" / "skipped.csv"
    assert "none of the 3 image(s) could be read, so no dataset was written" in line and str(skipped) in line
    assert read_csv(skipped)["image_id"].tolist() == ["CXR1_1_IM-0001-3001", "CXR2_1_IM-0002-1001",
                                                      "CXR3_1_IM-0003-1001"]
    assert not (tmp_path / "ds").exists()


# ----------------------------------------------------------------------------- MeSH ground truth and view tables


def f(name: str) -> int:
    return FINDINGS.index(name)


#: the MeSH ground truth of the three frontal images (reports 1, 2, 3 of OPENI_REPORTS)
MESH_TRUTH = np.zeros((3, 14), dtype=np.int8)
MESH_TRUTH[0, f("No Finding")] = 1  # normal
MESH_TRUTH[1, [f("Pleural Effusion"), f("Support Devices")]] = 1  # effusion, catheter
MESH_TRUTH[1, f("Cardiomegaly")] = -1  # Cardiomegaly/borderline: undecided, not labelled
MESH_TRUTH[2, f("Cardiomegaly")] = 1  # Opacity/ribs is no lung opacity, Calcified Granuloma no ltv finding


def test_mesh_coding_is_the_ground_truth_in_both_layouts(cli, xml, kaggle, tmp_path):
    result = ingest(cli, tmp_path / "k", *kaggle_args(kaggle))
    assert "ground truth: the MeSH coding (MeSH) of 3 of 3 images' reports" in result.output
    ingest(cli, tmp_path / "x", *xml_args(xml))
    for name in ("k", "x"):
        np.testing.assert_array_equal(Dataset.open(tmp_path / name).ground_truth, MESH_TRUTH)
    info = json.loads(cli("info", tmp_path / "k", "--json").output)
    assert info["ground_truth_counts"]["test"]["Cardiomegaly"] == {"positive": 1, "negative": 1, "missing": 1}
    # Problems (the bare terms) stands in where MeSH is blank: Opacity without /ribs is a lung opacity
    reports, projections, images = kaggle
    frame = read_csv(reports)
    frame.loc[2, "MeSH"] = ""
    write_csv(reports, frame)
    ingest(cli, tmp_path / "p", *kaggle_args(kaggle))
    third = Dataset.open(tmp_path / "p").ground_truth[2]
    assert third[f("Lung Opacity")] == 1 and third[f("Cardiomegaly")] == 1


@pytest.mark.parametrize("layout", ["xml folder", "xml tgz", "kaggle"])
@pytest.mark.parametrize("table", ["projections", "dicom metadata"])
def test_each_layout_with_each_real_view_table(cli, xml, kaggle, tmp_path, layout, table):
    xml_reports, xml_images, _ = xml
    kaggle_reports, projections, kaggle_images = kaggle
    views = projections if table == "projections" else \
        write_dicom_metadata(tmp_path / "nlmcxr_dicom_metadata.csv.gz")
    reports, images = {"xml folder": (xml_reports, xml_images), "xml tgz": (xml_reports.parent / "NLMCXR_reports.tgz",
                                                                           xml_images),
                       "kaggle": (kaggle_reports, kaggle_images)}[layout]
    ingest(cli, tmp_path / "ds", "--reports", reports, "--images", images, "--projections", views)
    ds = Dataset.open(tmp_path / "ds")
    assert [i.split("_")[0].removeprefix("CXR") + "_" + i.split("_")[-1] for i in ds.image_ids] == \
        ["1_IM-0001-3001", "2_IM-0002-1001", "3_IM-0003-1001"]
    assert ds.report_texts() == TEXTS
    np.testing.assert_array_equal(ds.ground_truth, MESH_TRUTH)
    np.testing.assert_allclose(ds.images.reshape(3, -1).mean(axis=1), [pattern(i).mean() for i in FRONTAL], atol=1)


def test_xml_reports_with_kaggle_images_and_label_only(cli, xml, kaggle, tmp_path):
    reports, _, _ = xml
    _, projections, kaggle_images = kaggle
    ingest(cli, tmp_path / "ds", "--reports", reports, "--images", kaggle_images, "--projections", projections)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.image_ids.tolist() == ["CXR1_1_IM-0001-3001", "CXR2_1_IM-0002-1001", "CXR3_1_IM-0003-1001"]
    np.testing.assert_allclose(ds.images.reshape(3, -1).mean(axis=1), [pattern(i).mean() for i in FRONTAL], atol=1)
    cli("ingest", "openi", "--reports", reports, "--projections", projections, "--no-images", "--out",
        tmp_path / "lo")
    lo = Dataset.open(tmp_path / "lo")
    assert not lo.has_images and lo.report_texts() == TEXTS
    np.testing.assert_array_equal(lo.ground_truth, MESH_TRUTH)


def test_empty_reports_are_counted_and_uncoded_reports_unlabelled(cli, tmp_path):
    reports, projections, images = write_openi_kaggle(tmp_path / "kaggle", empty_report=True)
    result = ingest(cli, tmp_path / "ds", "--reports", reports, "--projections", projections, "--images", images)
    assert "1 of 4 reports have no FINDINGS or IMPRESSION text; their 1 kept image(s) have an empty report" in \
        result.output
    ds = Dataset.open(tmp_path / "ds")
    assert ds.report_texts()[-1] == "" and (ds.ground_truth[-1] == -1).all()
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["source"]["empty_reports"] == 1


def test_own_mesh_table_and_its_errors(cli, kaggle, tmp_path):
    table = write_csv(tmp_path / "mine.csv", pd.DataFrame({
        "mesh_term": ["normal", "Calcified Granuloma", "Pleural Effusion"], "qualifier": ["", "", ""],
        "finding": ["", "Lung Lesion", "Pleural Effusion"], "label": ["normal", "present", "present"]}))
    ingest(cli, tmp_path / "ds", *kaggle_args(kaggle), "--mesh-map", table)
    truth = Dataset.open(tmp_path / "ds").ground_truth
    assert truth[2, f("Lung Lesion")] == 1 and truth[2, f("Cardiomegaly")] == 0  # Cardiomegaly is unmapped here
    assert truth[1, f("Support Devices")] == 0 and truth[0, f("No Finding")] == 1
    write_csv(table, pd.DataFrame({"mesh_term": ["Nodule"], "qualifier": [""], "finding": ["Lump"],
                                   "label": ["present"]}))
    line = error_line(ingest(cli, tmp_path / "x", *kaggle_args(kaggle), "--mesh-map", table, ok=False))
    assert "mine.csv, line 2: finding 'Lump' is not one of Atelectasis" in line


def test_shipped_mesh_table_reads_and_maps_qualifiers():
    from ltvcli.ingest.mesh import MeshMap

    table = MeshMap.read()
    card = table.truth(["Cardiac Shadow/enlarged/borderline"])
    assert card[f("Cardiomegaly")] == -1 and card[f("No Finding")] == 0
    devices = table.truth(["Catheters, Indwelling/right", "Technical Quality of Image Unsatisfactory"])
    assert devices[f("Support Devices")] == 1 and devices[f("No Finding")] == 1
    scar = table.truth(["Cicatrix/pleura/apex/left"])
    assert scar[f("Pleural Other")] == 1 and scar[f("Lung Opacity")] == 0
    assert (table.truth(["No Indexing"]) == -1).all() and (table.truth([]) == -1).all()
