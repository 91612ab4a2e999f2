"""The generated MIMIC example: layouts and ids as in FORMATS.md, realistic label noise, visible findings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from ltvcli.demo.cohort import FINDINGS, HEDGED, NEGATED, POSITIVE, StudyTruth, draw_cohort
from ltvcli.demo.encode import DicomHeader, write_dicom, write_jpeg
from ltvcli.demo.radiograph import draw_radiograph
from ltvcli.demo.reports import write_report
from ltvcli.demo.synth import DemoFiles, generate_mimic_example, study_folder
from ltvcli.errors import LtvError
from ltvcli.ingest.images import load_image

SMALL = dict(n_subjects=30, seed=3, source_size=(128, 112))
METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
                    "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
LABEL_COLUMNS = ["subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                 "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding",
                 "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices"]
DICOM_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> DemoFiles:
    return generate_mimic_example(tmp_path_factory.mktemp("demo") / "source", **SMALL)


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- determinism
def test_same_seed_gives_identical_files_and_pixels(example, tmp_path):
    again = generate_mimic_example(tmp_path / "again", **SMALL)
    first, second = all_files(example.root), all_files(again.root)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    some_dicom = next(example.images.rglob("*.dcm"))
    twin = again.images / some_dicom.relative_to(example.images)
    np.testing.assert_array_equal(pydicom.dcmread(some_dicom).pixel_array, pydicom.dcmread(twin).pixel_array)

    other = generate_mimic_example(tmp_path / "other", **(SMALL | {"seed": 4}))
    assert other.negbio.read_bytes() != example.negbio.read_bytes()


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(LtvError, match="not a generated example"):
        generate_mimic_example(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- layouts and ids (FORMATS.md)
def test_csvs_have_the_official_columns_ids_and_values(example):
    metadata, split = read(example.metadata), read(example.split)
    negbio, chexpert = read(example.negbio), read(example.chexpert)
    assert list(metadata.columns) == METADATA_COLUMNS
    assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
    assert list(negbio.columns) == list(chexpert.columns) == LABEL_COLUMNS
    assert all(path.name.endswith(".csv.gz") for path in (example.metadata, example.split, example.negbio,
                                                          example.chexpert))

    assert metadata["subject_id"].str.fullmatch(r"1\d{7}").all()
    assert metadata["study_id"].str.fullmatch(r"5\d{7}").all()
    assert metadata["dicom_id"].map(lambda d: bool(DICOM_ID.match(d)) and len(d) == 44).all()
    assert metadata["dicom_id"].is_unique
    assert sorted(split["dicom_id"]) == sorted(metadata["dicom_id"])
    assert set(split["split"]) == {"train", "validate", "test"}
    assert split.groupby("subject_id")["split"].nunique().max() == 1  # the split is by patient
    assert metadata["StudyDate"].str.fullmatch(r"2[12]\d{6}").all()  # date-shifted like MIMIC
    assert metadata["StudyTime"].str.fullmatch(r"\d{1,6}\.\d{3}").all()
    assert set(metadata["ViewPosition"]) <= {"PA", "AP", "LATERAL", "LL"}
    assert {"PA", "AP", "LATERAL"} <= set(metadata["ViewPosition"])
    assert (metadata["Rows"] == "128").all() and (metadata["Columns"] == "112").all()
    assert set(metadata["PerformedProcedureStepDescription"]) <= {"CHEST (PA AND LAT)", "CHEST (PORTABLE AP)"}

    studies = metadata[["subject_id", "study_id"]].drop_duplicates()
    for labels in (negbio, chexpert):
        assert len(labels) == len(studies) and not labels.duplicated(["subject_id", "study_id"]).any()
        assert set(map(tuple, labels[["subject_id", "study_id"]].values)) == set(map(tuple, studies.values))
        values = set(labels[LABEL_COLUMNS[2:]].values.ravel())
        assert values == {"1.0", "0.0", "-1.0", ""}
        assert set(labels["No Finding"]) == {"1.0", ""}


def test_images_and_reports_sit_in_the_mimic_tree(example):
    metadata = read(example.metadata)
    suffixes = []
    for row in metadata.itertuples():
        folder = example.images / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}" / f"s{row.study_id}"
        assert folder == study_folder(example.images, row.subject_id, row.study_id)
        found = [s for s in (".dcm", ".jpg") if (folder / f"{row.dicom_id}{s}").is_file()]
        assert len(found) == 1, row.dicom_id
        suffixes.append(found[0])
        report = (example.reports / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}"
                  / f"s{row.study_id}.txt").read_text()
        assert "FINDINGS:" in report and "IMPRESSION:" in report
    assert 0.3 < suffixes.count(".dcm") / len(suffixes) < 0.7
    per_study = metadata.groupby("study_id").size()
    assert per_study.min() >= 1 and per_study.max() <= 3


def test_ground_truth_covers_the_frontal_test_images(example):
    metadata, split = read(example.metadata), read(example.split)
    truth = read(example.ground_truth)
    assert list(truth.columns) == ["dicom_id", *FINDINGS]
    tested = metadata.merge(split[["dicom_id", "split"]], on="dicom_id")
    expected = tested[(tested["split"] == "test") & tested["ViewPosition"].isin(["PA", "AP"])]["dicom_id"]
    assert sorted(truth["dicom_id"]) == sorted(expected)
    values = truth[list(FINDINGS)].astype(int)
    assert set(values.values.ravel()) == {0, 1}
    others = values.drop(columns=["No Finding", "Support Devices"])
    np.testing.assert_array_equal(values["No Finding"], (others.sum(axis=1) == 0).astype(int))


# ---------------------------------------------------------------- label noise
def test_labellers_disagree_realistically_and_hedge_like_the_paper():
    cohort = draw_cohort(6000, np.random.default_rng(0))
    negbio, chexpert = cohort.codes["negbio"], cohort.codes["chexpert"]
    same = (negbio == chexpert) | (np.isnan(negbio) & np.isnan(chexpert))
    disagreement = 1 - same.mean(axis=0)
    assert (disagreement > 0.02).all() and (disagreement < 0.2).all()  # correlated, not identical

    def up_ratio(finding: str) -> float:
        c = FINDINGS.index(finding)
        codes = np.concatenate([negbio[:, c], chexpert[:, c]])
        return (codes == -1).sum() / (codes == 1).sum()

    assert 0.8 < up_ratio("Pneumonia") < 1.6  # the paper's Table 1: 1.13-1.18
    assert 0.3 < up_ratio("Edema") < 0.65  # 0.47-0.49
    assert 0.12 < up_ratio("Atelectasis") < 0.35  # 0.22-0.23
    assert up_ratio("Pneumonia") > up_ratio("Edema") > up_ratio("Atelectasis")

    pneumonia = FINDINGS.index("Pneumonia")
    uncertain = chexpert[:, pneumonia] == -1
    assert cohort.present[uncertain, pneumonia].mean() > 0.6  # hedged pneumonia is mostly real
    positive_present = cohort.present[:, pneumonia] & (chexpert[:, pneumonia] == 1)
    hedged_present = cohort.present[:, pneumonia] & uncertain
    assert cohort.severity[hedged_present, pneumonia].mean() < cohort.severity[positive_present, pneumonia].mean()

    for codes in (negbio, chexpert):  # each labeller misses some positives and invents a few
        missed = cohort.present & np.isnan(codes)
        invented = ~cohort.present & (codes == 1)
        assert 0.01 < missed[:, [FINDINGS.index(f) for f in ("Edema", "Pleural Effusion")]].mean() < 0.15
        assert 0.001 < invented.mean() < 0.05


def test_correlated_findings():
    cohort = draw_cohort(6000, np.random.default_rng(1))

    def corr(a: str, b: str) -> float:
        return np.corrcoef(cohort.present[:, FINDINGS.index(a)], cohort.present[:, FINDINGS.index(b)])[0, 1]

    assert corr("Cardiomegaly", "Edema") > 0.15 and corr("Pneumonia", "Consolidation") > 0.2
    assert abs(corr("Cardiomegaly", "Pneumonia")) < 0.1
    devices = cohort.present[:, FINDINGS.index("Support Devices")]
    assert devices[cohort.portable].mean() > 2 * devices[~cohort.portable].mean()  # ICU films carry tubes


def test_written_labels_match_the_reports(example):
    """The report is where both labellers read from: a finding both call positive is written in it."""
    negbio, chexpert = read(example.negbio), read(example.chexpert)
    nouns = {"Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax", "Cardiomegaly": "heart"}
    checked = 0
    for i in range(len(negbio)):
        row = negbio.iloc[i]
        report = (study_folder(example.reports, row.subject_id, row.study_id).with_suffix(".txt")).read_text().lower()
        for finding, noun in nouns.items():
            if row[finding] == "1.0" and chexpert.iloc[i][finding] == "1.0":
                assert noun in report, (finding, report)
                checked += 1
    assert checked >= 3


def test_report_text_follows_the_report_states():
    study = StudyTruth(severity={"Pleural Effusion": 0.9, "Pneumonia": 0.4}, side={"Pleural Effusion": "left",
                                                                                 "Pneumonia": "right"},
                       states={"Pleural Effusion": POSITIVE, "Pneumonia": HEDGED, "Pneumothorax": NEGATED},
                       devices=(), portable=False)
    text = write_report(study, "CHEST (PA AND LAT)", np.random.default_rng(0))
    findings = text.split("FINDINGS:")[1].split("IMPRESSION:")[0]
    assert "Large left pleural effusion." in findings
    assert re.search(r"(Possible|Cannot exclude|may represent|Equivocal) pneumonia", findings)
    assert re.search(r"No (evidence of )?pneumothorax|There is no pneumothorax", findings)
    assert "INDICATION:  ___ with" in text  # de-identified span, as in MIMIC reports
    normal = StudyTruth({}, {}, {"Pneumothorax": NEGATED}, (), False)
    assert "No acute cardiopulmonary process." in write_report(normal, "CHEST (PA AND LAT)", np.random.default_rng(0))


# ---------------------------------------------------------------- images
def test_dicoms_are_valid_decode_and_carry_no_person_data(example):
    metadata = read(example.metadata).set_index("dicom_id")
    photometric = set()
    for path in sorted(example.images.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        row = metadata.loc[path.stem]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID in ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1")
        assert (ds.BitsStored, ds.Rows, ds.Columns) == (12, 128, 112)
        assert "RescaleSlope" in ds and "WindowCenter" in ds
        assert ds.ViewPosition == row.ViewPosition and ds.StudyDate == row.StudyDate
        assert str(ds.PatientName) == "DEMO^ANON" and ds.PatientID == row.subject_id
        assert ds.PatientBirthDate == "" and ds.PatientSex == "" and ds.PatientIdentityRemoved == "YES"
        names = [str(e.value) for e in ds.iterall() if e.VR == "PN" and e.value not in (None, "")]
        assert names == ["DEMO^ANON"]
        photometric.add(ds.PhotometricInterpretation)
        pixels = load_image(str(path), 64, 1)
        assert pixels.shape == (64, 64) and pixels.std() > 20
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}


def _region(image: np.ndarray, u: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    """Pixels of a 64x64 image in normalised coordinates (u -1..1 left to right, v 0..1 top to bottom)."""
    size = image.shape[0]
    cols = slice(int((u[0] + 1) / 2 * size), int((u[1] + 1) / 2 * size))
    return image[int(v[0] * size):int(v[1] * size), cols].astype(float)


# finding, side, region (u, v), +1 brighter / -1 darker; the patient's right is the image's left
VISIBLE = [
    ("Cardiomegaly", None, (0.3, 0.5), (0.62, 0.8), 1),
    ("Enlarged Cardiomediastinum", None, (0.12, 0.22), (0.2, 0.5), 1),
    ("Pleural Effusion", "right", (-0.6, -0.25), (0.66, 0.78), 1),
    ("Pneumothorax", "left", (0.45, 0.65), (0.2, 0.4), -1),
    ("Consolidation", "right", (-0.5, -0.25), (0.56, 0.7), 1),
    ("Pneumonia", "right", (-0.6, -0.2), (0.45, 0.72), 1),
    ("Lung Opacity", "right", (-0.6, -0.2), (0.35, 0.55), 1),
    ("Edema", None, (-0.4, -0.12), (0.4, 0.6), 1),
    ("Atelectasis", "left", (0.3, 0.6), (0.7, 0.8), 1),
    ("Lung Lesion", "right", (-0.65, -0.15), (0.15, 0.75), 1),
    ("Pleural Other", "left", (0.55, 0.72), (0.2, 0.6), 1),
    ("Fracture", "right", (-0.8, -0.35), (0.3, 0.85), 1),
    ("Support Devices", None, (-0.06, 0.06), (0.02, 0.25), 1),
]


@pytest.mark.parametrize("finding, side, u, v, sign", VISIBLE, ids=[row[0] for row in VISIBLE])
def test_findings_are_visible_after_encoding_and_decoding(tmp_path, finding, side, u, v, sign):
    """Same patient and exposure with and without the finding; it shows where it should at 64 px."""
    devices = ("endotracheal tube",) if finding == "Support Devices" else ()
    with_it = StudyTruth({finding: 0.8}, {finding: side} if side else {}, {}, devices, False)
    without = StudyTruth({}, {}, {}, (), False)
    decoded = []
    for n, truth in enumerate((with_it, without)):
        pixels = draw_radiograph(truth, True, (256, 224), study_seed=[5], image_seed=[6])
        if finding in ("Pneumothorax", "Fracture", "Edema"):  # a few through JPEG, the rest through DICOM
            path = tmp_path / f"{n}.jpg"
            write_jpeg(path, pixels)
        else:
            path = tmp_path / f"{n}.dcm"
            header = DicomHeader("a", "10000001", "50000001", "21500101", "120000.000", "PA", "CHEST (PA AND LAT)",
                                 "CR", "MONOCHROME1" if n == 0 else "MONOCHROME2", 1)
            write_dicom(path, pixels, header, seed=0, rng=np.random.default_rng(0))
        decoded.append(load_image(str(path), 64, 1))
    difference = _region(decoded[0], u, v) - _region(decoded[1], u, v)
    assert sign * difference.mean() > 1.0
    assert (sign * difference).max() > 20


def test_effusion_labels_go_with_bright_lung_bases(example):
    """Across the generated example, images the labellers call effusion-positive have brighter bases."""
    metadata, labels = read(example.metadata), read(example.chexpert)
    frontal = metadata[metadata["ViewPosition"].isin(["PA", "AP"])].merge(labels, on=["subject_id", "study_id"])
    bases = []
    for row in frontal.itertuples():
        folder = study_folder(example.images, row.subject_id, row.study_id)
        path = next(folder.glob(f"{row.dicom_id}.*"))
        image = load_image(str(path), 64, 1)
        right, left = _region(image, (-0.6, -0.25), (0.66, 0.78)), _region(image, (0.25, 0.6), (0.66, 0.78))
        bases.append(right.mean() + left.mean())
    bases = np.array(bases)
    positive = (frontal["Pleural Effusion"] == "1.0").to_numpy()
    negative = (frontal["Pleural Effusion"].isin(["0.0", ""])).to_numpy()
    assert positive.sum() >= 3
    assert bases[positive].mean() > bases[negative].mean() + 10
