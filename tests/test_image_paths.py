"""Image paths named by the data never lead outside the image folder, the same way for every source.

Each test puts a valid image *outside* the image folder and names it from the
source's own files (``..`` or an absolute path): were it followed, it would
decode fine and end in the dataset. It must instead be left out, with the
reason in skipped.csv, while the other images are ingested.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers_ingest import (NIH_IMAGES, OPENI_REPORTS, chexpert_rows, pattern, write_chexpert_csv,
                            write_csv, write_mimic, write_nih, write_openi_kaggle, write_openi_xml, write_raster)
from ltvcli.dataset import Dataset
from ltvcli.ingest.paths import image_sources, outside_reason

CLIMBS = "climbs out of the image folder with '..'"


@pytest.fixture
def secret(tmp_path) -> Path:
    return write_raster(tmp_path / "outside" / "secret.png", pattern(7))


def skipped(dataset_path: Path) -> pd.DataFrame:
    return pd.read_csv(dataset_path / "skipped.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("name, reason", [
    ("a.png", None), ("sub/a.png", None), ("./a.png", None), ("a..b.png", None),
    ("../a.png", CLIMBS), ("sub/../../a.png", CLIMBS), ("sub/../a.png", CLIMBS),
    ("/etc/hostname", "its path is absolute"), ("a\0b", "NUL"),
])
def test_which_names_stay_inside(name, reason):
    found = outside_reason(name)
    assert (found is None) if reason is None else (reason in found)
    sources, refused = image_sources(Path("/data/images"), ["ok.png", name])
    assert sources[0] == "/data/images/ok.png" and (1 in refused) == (reason is not None)


def test_table_paths_with_dots_or_absolute_are_skipped(cli, tmp_path, secret):
    images = tmp_path / "images"
    write_raster(images / "a.png", pattern(0))
    write_raster(images / "b.png", pattern(1))
    labels = write_csv(tmp_path / "labels.csv", pd.DataFrame({
        "image": ["a.png", "../outside/secret.png", str(secret), "b.png"], "labeller": "r1",
        "label": ["x", "y", "x", "y"]}))
    result = cli("ingest", "table", labels, "--images", images, "--out", tmp_path / "ds", "--size", "8",
                 "--workers", "0")
    assert "2 image(s) could not be read" in result.output
    ds = Dataset.open(tmp_path / "ds")
    assert list(ds.image_ids) == ["a.png", "b.png"]
    left_out = skipped(ds.path)
    assert left_out["image_id"].tolist() == ["../outside/secret.png", str(secret)]
    assert CLIMBS in left_out["reason"].iloc[0] and "its path is absolute" in left_out["reason"].iloc[1]


def test_a_link_inside_the_image_folder_is_followed(cli, tmp_path, secret):
    """Only names from the data are distrusted; a link someone put into the image folder is theirs to make."""
    images = tmp_path / "images"
    write_raster(images / "a.png", pattern(0))
    (images / "linked.png").symlink_to(secret)
    labels = write_csv(tmp_path / "labels.csv", pd.DataFrame({"image": ["a.png", "linked.png"], "labeller": "r1",
                                                               "label": ["x", "y"]}))
    cli("ingest", "table", labels, "--images", images, "--out", tmp_path / "ds", "--size", "8", "--workers", "0")
    assert list(Dataset.open(tmp_path / "ds").image_ids) == ["a.png", "linked.png"]


def test_mimic_ids_with_dots_are_skipped(cli, tmp_path):
    files = write_mimic(tmp_path / "src")
    secret = write_raster(tmp_path / "outside" / "secret.jpg", pattern(7))
    bad = "../../../../../../outside/secret"  # images/files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg -> the secret
    assert (files.images / "files" / "p10" / "p10000001" / "s50000001" / f"{bad}.jpg").resolve() == secret
    for path in (files.metadata, files.split):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.loc[0, "dicom_id"] = bad
        write_csv(path, frame)
    cli("ingest", "mimic", *files.args(), "--out", tmp_path / "ds", "--size", "8", "--workers", "0",
        "--image-format", "jpg")
    ds = Dataset.open(tmp_path / "ds")
    assert bad not in set(ds.image_ids) and len(ds) == 4
    left_out = skipped(ds.path)
    assert left_out["image_id"].tolist() == [bad] and CLIMBS in left_out["reason"].iloc[0]


def test_openi_names_with_dots_are_skipped_in_both_layouts(cli, tmp_path, secret):
    reports, projections, images = write_openi_kaggle(tmp_path / "kaggle")
    frame = pd.read_csv(projections, dtype=str)
    frame.loc[0, "filename"] = "../../../outside/secret.png"
    write_csv(projections, frame)
    cli("ingest", "openi", "--reports", reports, "--projections", projections, "--images", images, "--out",
        tmp_path / "kaggle-ds", "--size", "8", "--workers", "0")
    assert "secret" not in set(Dataset.open(tmp_path / "kaggle-ds").image_ids)
    assert skipped(tmp_path / "kaggle-ds")["image_id"].tolist() == ["secret"]

    xml, png, _ = write_openi_xml(tmp_path / "xml")
    report = xml / "3.xml"
    report.write_text(report.read_text().replace('parentImage id="CXR3_1_IM-0003-1001"',
                                                 'parentImage id="../../outside/secret"'))
    cli("ingest", "openi", "--reports", xml, "--images", png, "--views", "all", "--out", tmp_path / "xml-ds",
        "--size", "8", "--workers", "0")
    assert skipped(tmp_path / "xml-ds")["image_id"].tolist() == ["../../outside/secret"]
    images_listed = sum(len(images) for _, _, images, _ in OPENI_REPORTS.values())  # (text, text, images, MeSH)
    assert len(Dataset.open(tmp_path / "xml-ds")) == images_listed - 1


def test_nih_image_names_with_dots_or_absolute_are_skipped(cli, tmp_path, secret):
    files = write_nih(tmp_path / "nih")
    assert (files.images / "../../outside/secret.png").resolve() == secret
    entry = pd.read_csv(files.data_entry, dtype=str, keep_default_na=False)
    entry.loc[0, "Image Index"] = "../../outside/secret.png"
    entry.loc[1, "Image Index"] = str(secret)
    write_csv(files.data_entry, entry)
    cli("ingest", "nih", "--data-entry", files.data_entry, "--images", files.images, "--out", tmp_path / "ds",
        "--size", "8", "--workers", "0")
    ds = Dataset.open(tmp_path / "ds")
    assert len(ds) == len(NIH_IMAGES) - 2 and not {"../../outside/secret.png", str(secret)} & set(ds.image_ids)
    left_out = skipped(ds.path)
    assert left_out["image_id"].tolist() == ["../../outside/secret.png", str(secret)]
    assert CLIMBS in left_out["reason"].iloc[0] and "its path is absolute" in left_out["reason"].iloc[1]


def test_chexpert_paths_with_dots_are_skipped(cli, tmp_path, secret):
    root = tmp_path / "chexpert"
    names = ["patient00001/study1/view1_frontal.jpg", "patient00002/study1/view1_frontal.jpg"]
    for k, name in enumerate(names):
        write_raster(root / "CheXpert-v1.0-small" / "train" / name, pattern(k))
    rows = chexpert_rows("train", [(name, "Frontal", "PA", {"Edema": "1.0"}) for name in names])
    rows[0][0] = "CheXpert-v1.0-small/../../outside/secret.png"
    assert (root / rows[0][0]).resolve() == secret
    train = write_chexpert_csv(tmp_path / "train.csv", rows)
    cli("ingest", "chexpert", "--train", train, "--images", root, "--out", tmp_path / "ds", "--size", "8",
        "--workers", "0", "--val-fraction", "0")
    ds = Dataset.open(tmp_path / "ds")
    assert list(ds.image_ids) == ["train/" + names[1]]
    left_out = skipped(ds.path)
    assert left_out["image_id"].tolist() == ["../../outside/secret.png"] and CLIMBS in left_out["reason"].iloc[0]
