"""Fixture writers for the ingest tests: sources in their real layouts, tiny.

* :func:`write_mimic` writes the four MIMIC CSVs (gzipped or plain, with the
  official column lists plus extras) and a ``files/pXX/pSUBJECT/sSTUDY`` tree
  of JPG or DICOM images and report texts;
* :func:`write_dicom` writes one DICOM file with pydicom in a chosen transfer
  syntax, photometric interpretation, bit depth, rescale and window;
* :func:`write_openi_xml` / :func:`write_openi_kaggle` write both OpenI layouts;
* :func:`write_cifar10` writes CIFAR-10 python batches.

Every image of a source carries its index in its brightness (``10 + 20 * i``
as the mean), so a test can tell which file ended in which row.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from ltvcli.findings import FINDINGS

# ----------------------------------------------------------------------------- images


def error_line(result) -> str:
    """The single ``error: ...`` line of a failed command (exit status 2, no traceback)."""
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def pattern(index: int, shape: tuple[int, int] = (24, 20)) -> np.ndarray:
    """A uint8 test image whose mean brightness (10 + 20 * index, mod 230) identifies it."""
    base = 10 + (20 * index) % 230
    ramp = np.linspace(-8, 8, shape[1])[None, :].repeat(shape[0], axis=0)
    return np.clip(base + ramp, 0, 255).astype(np.uint8)


def radiograph(shape=(600, 500), seed: int = 0) -> np.ndarray:
    """A smooth body shape with film noise: compresses and resamples like a chest film."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    body = 60 + 150 * np.exp(-((xx / shape[1] - 0.5) ** 2 / 0.08 + (yy / shape[0] - 0.5) ** 2 / 0.2))
    return np.clip(body + rng.normal(0, 6, shape), 0, 255).astype(np.uint8)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in grey levels."""
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def write_raster(path: Path, pixels: np.ndarray, **save_options) -> Path:
    """Write a PNG or JPG (by suffix) with Pillow; 16-bit arrays become 16-bit PNGs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save_options)
    return path


def write_dicom(path: Path, pixels: np.ndarray, *, bits_stored: int | None = None, photometric: str = "MONOCHROME2",
                syntax: str = "explicit", slope: float | None = None, intercept: float | None = None,
                window: tuple[float, float] | None = None, voi_lut: np.ndarray | None = None,
                frames: np.ndarray | None = None, pixel_data: bool = True) -> Path:
    """Write ``pixels`` (uint8/uint16/int16 [H, W]) as a CR DICOM file.

    ``syntax``: explicit | implicit | rle | jpeg (8-bit baseline, frames
    encoded with Pillow) | j2k (lossless JPEG 2000 via Pillow).
    ``frames`` ([F, H, W]) writes a multi-frame file instead of ``pixels``.
    No real person data: the patient fields are fixed dummies.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit,
                             RLELossless, generate_uid)

    stack = frames if frames is not None else pixels[None]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if syntax == "implicit" else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality, ds.ViewPosition = "TEST^ANON", "TEST0000", "CR", "PA"
    ds.Rows, ds.Columns = stack.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = stack.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(np.issubdtype(stack.dtype, np.signedinteger))
    if frames is not None:
        ds.NumberOfFrames = len(frames)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept or 0, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 8]
        item.add_new(0x00283006, "US", [int(v) for v in voi_lut])  # LUT Data, as 16-bit values
        ds.VOILUTSequence = [item]
    if pixel_data:
        ds.PixelData = stack.tobytes()
        if syntax == "rle":
            ds.compress(RLELossless, stack if frames is not None else pixels)
        elif syntax in ("jpeg", "j2k"):
            fmt, options = ("JPEG", {"quality": 95}) if syntax == "jpeg" else ("JPEG2000", {"irreversible": False,
                                                                                              "no_jp2": True})
            encoded = []
            for frame in stack:
                buffer = io.BytesIO()
                Image.fromarray(frame).save(buffer, fmt, **options)
                encoded.append(buffer.getvalue())
            ds.PixelData = encapsulate(encoded)
            ds["PixelData"].VR = "OB"
            meta.TransferSyntaxUID = JPEGBaseline8Bit if syntax == "jpeg" else JPEG2000Lossless
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def encode_dicom(path: Path, syntax: str, **options) -> Path:
    """Re-encode the uncompressed DICOM at ``path`` in place into the transfer syntax ``syntax`` (a UID).

    pydicom's encoders do RLE (its own), JPEG-LS (pyjpegls) and JPEG 2000
    (pylibjpeg-openjpeg), with ``options`` such as ``jls_error`` or
    ``j2k_psnr``; JPEG Lossless (process 14), which pydicom cannot encode, is
    transcoded by GDCM.
    """
    import pydicom
    from pydicom import uid

    if syntax in (uid.JPEGLossless, uid.JPEGLosslessSV1):
        import gdcm

        target = {uid.JPEGLossless: gdcm.TransferSyntax.JPEGLosslessProcess14,
                  uid.JPEGLosslessSV1: gdcm.TransferSyntax.JPEGLosslessProcess14_1}[syntax]
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read(), path
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(target))
        change.SetInput(reader.GetImage())
        assert change.Change(), syntax
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write(), path
    else:
        ds = pydicom.dcmread(path)
        ds.compress(syntax, **options)
        ds.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------- MIMIC


@dataclass
class MimicImage:
    dicom_id: str
    subject: str
    study: str
    view: str
    split: str


@dataclass
class MimicFiles:
    root: Path
    metadata: Path
    split: Path
    negbio: Path
    chexpert: Path
    images: Path
    rows: list[MimicImage] = field(default_factory=list)

    def args(self) -> list[str]:
        """The source options of ``ltv ingest mimic`` for these files."""
        return ["--metadata", str(self.metadata), "--split", str(self.split), "--negbio", str(self.negbio),
                "--chexpert", str(self.chexpert), "--images", str(self.images)]

    def kwargs(self) -> dict:
        """The same, as keyword arguments of ``ingest_mimic``."""
        return {"metadata": self.metadata, "split": self.split, "negbio": self.negbio, "chexpert": self.chexpert,
                "images": self.images}


def dicom_id(index: int) -> str:
    """A MIMIC-style dicom_id: five dash-separated hex groups."""
    return f"{index:08x}-{index * 7919:08x}-0badc0de-{index * 31:08x}-5eed{index:04x}"


#: The default source: 3 subjects, 4 studies, 8 images (5 frontal), official-like splits.
DEFAULT_IMAGES = [
    MimicImage(dicom_id(0), "10000001", "50000001", "PA", "train"),
    MimicImage(dicom_id(1), "10000001", "50000001", "LATERAL", "train"),
    MimicImage(dicom_id(2), "10000001", "50000002", "AP", "train"),
    MimicImage(dicom_id(3), "10000002", "50000003", "PA", "validate"),
    MimicImage(dicom_id(4), "10000002", "50000003", "LL", "validate"),
    MimicImage(dicom_id(5), "10000002", "50000003", "AP", "validate"),
    MimicImage(dicom_id(6), "11000003", "50000004", "PA", "test"),
    MimicImage(dicom_id(7), "11000003", "50000004", "", "test"),
]

#: Label cells per labeller and study (finding -> cell text); everything else is blank.
DEFAULT_LABELS = {
    "negbio": {
        "50000001": {"Atelectasis": "1.0", "Edema": "-1.0", "Cardiomegaly": "0.0"},
        "50000002": {"Pneumonia": "-1.0", "Support Devices": "1.0"},
        "50000003": {"No Finding": "1.0"},
        "50000004": {"Pleural Effusion": "1.0", "Atelectasis": "-1.0"},
    },
    "chexpert": {
        "50000001": {"Atelectasis": "-1.0", "Edema": "1.0"},
        "50000002": {"Pneumonia": "1.0", "Support Devices": "0.0"},
        "50000003": {"No Finding": "1.0", "Fracture": "0.0"},
        "50000004": {"Pleural Effusion": "-1.0", "Atelectasis": "0.0"},
    },
}


def write_mimic(root: Path, *, images: list[MimicImage] | None = None, labels: dict | None = None,
                gz: bool = True, image_format: str = "jpg", reports: bool = True, size: tuple[int, int] = (24, 20),
                extra_label_studies: int = 1, pixels: Callable[[int, tuple[int, int]], np.ndarray] | None = None
                ) -> MimicFiles:
    """Write a MIMIC-CXR(-JPG) source under ``root``; image ``i`` is ``pixels(i, size)`` (default ``pattern``).

    ``image_format``: jpg, dcm (12-bit DICOM), or mixed (even rows .jpg, odd
    rows .dcm). ``extra_label_studies`` adds label rows for studies that have
    no image (as in the real files).
    """
    images = list(DEFAULT_IMAGES if images is None else images)
    labels = DEFAULT_LABELS if labels is None else labels
    pixels = pixels or pattern
    suffix = ".csv.gz" if gz else ".csv"
    files = MimicFiles(root=root, metadata=root / f"mimic-cxr-2.0.0-metadata{suffix}",
                       split=root / f"mimic-cxr-2.0.0-split{suffix}", negbio=root / f"mimic-cxr-2.0.0-negbio{suffix}",
                       chexpert=root / f"mimic-cxr-2.0.0-chexpert{suffix}", images=root / "mimic", rows=images)
    root.mkdir(parents=True, exist_ok=True)
    metadata = pd.DataFrame({
        "dicom_id": [r.dicom_id for r in images], "subject_id": [r.subject for r in images],
        "study_id": [r.study for r in images],
        "PerformedProcedureStepDescription": ["CHEST (PA AND LAT)"] * len(images),
        "ViewPosition": [r.view for r in images], "Rows": [size[0]] * len(images), "Columns": [size[1]] * len(images),
        "StudyDate": ["21800101"] * len(images), "StudyTime": ["101010.5"] * len(images),
        "ProcedureCodeSequence_CodeMeaning": ["CHEST (PA AND LAT)"] * len(images),
        "ViewCodeSequence_CodeMeaning": ["postero-anterior"] * len(images),
        "PatientOrientationCodeSequence_CodeMeaning": ["Erect"] * len(images),
    })
    write_csv(files.metadata, metadata)
    write_csv(files.split, pd.DataFrame({"dicom_id": [r.dicom_id for r in images],
                                         "study_id": [r.study for r in images],
                                         "subject_id": [r.subject for r in images],
                                         "split": [r.split for r in images]}))
    studies = dict.fromkeys((r.subject, r.study) for r in images)
    for labeller, path in (("negbio", files.negbio), ("chexpert", files.chexpert)):
        write_csv(path, label_frame(list(studies), labels.get(labeller, {}), extra_label_studies))
    for i, row in enumerate(images):
        folder = files.images / "files" / f"p{row.subject[:2]}" / f"p{row.subject}" / f"s{row.study}"
        fmt = image_format if image_format != "mixed" else ("jpg" if i % 2 == 0 else "dcm")
        if fmt == "dcm":
            # 12-bit, windowed over the full range: decodes to (nearly) the same brightness as the JPG would
            write_dicom(folder / f"{row.dicom_id}.dcm", pixels(i, size).astype(np.uint16) * 16, bits_stored=12,
                        window=(2048, 4096))
        else:
            write_raster(folder / f"{row.dicom_id}.jpg", pixels(i, size), quality=95)
        if reports:
            (folder.parent / f"s{row.study}.txt").write_text(f"FINDINGS: study {row.study}.\nIMPRESSION: none.\n")
    return files


def label_frame(studies: list[tuple[str, str]], cells: dict, extra_studies: int = 0) -> pd.DataFrame:
    """A NegBio/CheXpert-style frame: subject_id, study_id, then the 14 findings in MIMIC order."""
    rows = [{"subject_id": subject, "study_id": study, **{f: cells.get(study, {}).get(f, "") for f in FINDINGS}}
            for subject, study in studies]
    rows += [{"subject_id": "19999999", "study_id": f"5999999{k}", **{f: "1.0" for f in FINDINGS}}
             for k in range(extra_studies)]
    return pd.DataFrame(rows, columns=["subject_id", "study_id", *FINDINGS])


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write a frame as CSV, gzipped when the name ends in .gz (the MIMIC distribution format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.to_csv(index=False).encode()
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def read_csv(path: Path) -> pd.DataFrame:
    """Read back a fixture CSV (gz or plain) as text, blanks kept."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ----------------------------------------------------------------------------- OpenI


OPENI_REPORTS = {
    # uid: (findings text, impression text, [(image id, view)], MeSH major codes)
    "1": ("The heart is normal in size.", "Normal chest.", [("IM-0001-3001", "PA"), ("IM-0001-4001", "LATERAL")],
          "normal"),
    "2": ("Small left pleural effusion.", "Effusion.", [("IM-0002-1001", "AP"), ("IM-0002-2001", "LL")],
          "Pleural Effusion/left/small;Cardiomegaly/borderline;Catheters, Indwelling/right"),
    "3": ("Cardiomegaly.", "Enlarged heart.", [("IM-0003-1001", "PA")],
          "Cardiomegaly/mild;Opacity/ribs/right;Calcified Granuloma/lung"),
}
#: with ``empty_report``: a report without text that the indexers did not code
OPENI_EMPTY = {"4": ("", "", [("IM-0004-1001", "PA")], "No Indexing")}


def openi_reports(empty_report: bool) -> dict:
    return {**OPENI_REPORTS, **(OPENI_EMPTY if empty_report else {})}


def write_openi_xml(root: Path, *, empty_report: bool = False) -> tuple[Path, Path, Path]:
    """NLM layout: ecgen-radiology/<n>.xml, NLMCXR_reports.tgz of it, NLMCXR_png/<parentImage id>.png, a view table.

    Returns (reports folder, images folder, view table). Image ``i`` in
    OPENI_REPORTS order is ``pattern(i)``. The tgz is ``root / "NLMCXR_reports.tgz"``.
    """
    xml_dir, png_dir = root / "ecgen-radiology", root / "NLMCXR_png"
    xml_dir.mkdir(parents=True, exist_ok=True)
    views, index = [], 0
    for uid, (findings, impression, images, mesh) in openi_reports(empty_report).items():
        parents = []
        for k, (name, view) in enumerate(images):
            image_id = f"CXR{uid}_{k + 1}_{name}"
            write_raster(png_dir / f"{image_id}.png", pattern(index))
            views.append({"ImageID": image_id, "ViewPosition": view})
            parents.append(f'<parentImage id="{image_id}"><figureId>F{k + 1}</figureId></parentImage>')
            index += 1
        majors = "".join(f"<major>{term}</major>" for term in mesh.split(";"))
        (xml_dir / f"{uid}.xml").write_text(
            f'<?xml version="1.0" encoding="utf-8"?><eCitation><meta type="rr"/><uId id="CXR{uid}"/>'
            f'<MedlineCitation><Article><Abstract>'
            f'<AbstractText Label="COMPARISON">None.</AbstractText>'
            f'<AbstractText Label="INDICATION">Cough.</AbstractText>'
            f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
            f'<AbstractText Label="IMPRESSION">{impression}</AbstractText>'
            f'</Abstract></Article></MedlineCitation><MeSH>{majors}<automatic>lung</automatic></MeSH>'
            f'{"".join(parents)}</eCitation>', encoding="utf-8")
    with tarfile.open(root / "NLMCXR_reports.tgz", "w:gz") as archive:
        archive.add(xml_dir, arcname="ecgen-radiology")
    view_table = write_csv(root / "views.csv", pd.DataFrame(views))
    return xml_dir, png_dir, view_table


def write_dicom_metadata(path: Path, *, empty_report: bool = False) -> Path:
    """A view table as torchxrayvision ships it (nlmcxr_dicom_metadata.csv.gz): ``imageid`` (XML ids), ``View Position``."""
    rows = [{"imageid": f"CXR{uid}_{k + 1}_{name}", "Modality": "CR", "View Position": view,
             "PatientOrientation": ""}
            for uid, (_, _, images, _) in openi_reports(empty_report).items() for k, (name, view) in enumerate(images)]
    return write_csv(path, pd.DataFrame(rows))


def write_openi_kaggle(root: Path, *, empty_report: bool = False) -> tuple[Path, Path, Path]:
    """Kaggle layout: indiana_reports.csv, indiana_projections.csv, images/images_normalized/*.dcm.png."""
    image_dir = root / "images" / "images_normalized"
    reports, projections, index = [], [], 0
    for uid, (findings, impression, images, mesh) in openi_reports(empty_report).items():
        for name, view in images:
            filename = f"{uid}_{name}.dcm.png"
            write_raster(image_dir / filename, pattern(index))
            projections.append({"uid": uid, "filename": filename,
                                "projection": "Frontal" if view in ("PA", "AP") else "Lateral"})
            index += 1
        problems = ";".join(entry.split("/")[0] for entry in mesh.split(";"))
        reports.append({"uid": uid, "MeSH": mesh, "Problems": problems, "image": "Xray Chest PA and Lateral",
                        "indication": "Cough.", "comparison": "None.", "findings": findings,
                        "impression": impression})
    return (write_csv(root / "indiana_reports.csv", pd.DataFrame(reports)),
            write_csv(root / "indiana_projections.csv", pd.DataFrame(projections)), image_dir)


# ----------------------------------------------------------------------------- CIFAR-10


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, *, per_batch: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-10 python batches (pickled dicts, bytes keys) with ``per_batch`` images each.

    Returns the images [N, 32, 32, 3] and labels per part ("train", "test")
    in file order, for the tests to compare against.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list] = {"train": [], "test": []}
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(root / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"img{k}.png".encode() for k in range(per_batch)]}, handle, protocol=2)
        parts["test" if name == "test_batch" else "train"].append((data, labels))
    with open(root / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": per_batch,
                     b"num_vis": 3072}, handle, protocol=2)
    out = {}
    for part, batches in parts.items():
        out[part] = np.concatenate([d for d, _ in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        out[part + "_labels"] = np.concatenate([np.asarray(lab) for _, lab in batches])
    return out


# ----------------------------------------------------------------------------- NIH ChestX-ray14 + Google


NIH_ENTRY_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
#: image -> (NIH Finding Labels, patient, view, official list)
NIH_IMAGES = {
    "00000001_000.png": ("Effusion|Infiltration|Mass|Nodule|Emphysema", "1", "PA", "train_val"),
    "00000001_001.png": ("No Finding", "1", "AP", "train_val"),
    "00000002_000.png": ("Pneumothorax", "2", "PA", "test"),
    "00000003_000.png": ("Pleural_Thickening|Hernia", "3", "AP", "train_val"),
    "00000003_001.png": ("Atelectasis", "3", "AP", "train_val"),
    "00000004_000.png": ("No Finding", "4", "PA", "test"),
    "00000005_000.png": ("Edema|Consolidation|Pneumonia", "5", "PA", "train_val"),
    "00000006_000.png": ("Cardiomegaly", "6", "PA", "train_val"),
    "00000007_000.png": ("Fibrosis", "7", "PA", "test"),
}
#: Google's four-findings reads: (image, reader, fracture, pneumothorax, airspace opacity, nodule/mass, set)
NIH_READS = [
    ("00000002_000.png", "111", "NO", "YES", "NO", "NO", "test"),
    ("00000002_000.png", "222", "NO", "HEDGE", "NO", "NO", "test"),
    ("00000002_000.png", "444", "NO", "YES", "YES", "NO", "test"),
    ("00000003_000.png", "111", "YES", "NO", "YES", "HEDGE", "val"),
    ("00000003_000.png", "333", "YES", "NO", "NO", "NO", "val"),
    ("00000003_000.png", "444", "NO", "NO", "YES", "YES", "val"),
    ("00000006_000.png", "222", "NO", "NO", "NO", "YES", "test"),
    ("00000006_000.png", "333", "NO", "NO", "NO", "NO", "test"),
    ("00000006_000.png", "333", "NO", "NO", "YES", "NO", "test"),  # read twice, opacity differs
    ("00000006_000.png", "444", "NO", "NO", "NO", "YES", "test"),
    ("00000007_000.png", "111", "NO", "NO", "YES", "NO", "test"),
    ("00000007_000.png", "222", "NO", "NO", "YES", "NO", "test"),
    ("00000007_000.png", "333", "NO", "YES", "YES", "NO", "test"),
]
#: adjudicated four findings: image -> (fracture, pneumothorax, airspace opacity, nodule or mass)
NIH_ADJUDICATED = {"00000002_000.png": ("NO", "YES", "NO", "NO"), "00000003_000.png": ("YES", "NO", "YES", "NO"),
                   "00000006_000.png": ("NO", "NO", "NO", "YES"), "00000007_000.png": ("NO", "NO", "YES", "NO")}
NIH_ALL = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
           "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural Thickening", "Hernia"]
#: the all-findings set: image -> {reader: (abnormal 0/1, findings marked YES)}, and the reference
NIH_ALL_READS = {"00000002_000.png": {"901": ("1", {"Pneumothorax"}), "902": ("1", {"Pneumothorax", "Mass"}),
                                     "903": ("0", set())},
                 "00000007_000.png": {"901": ("1", {"Fibrosis", "Nodule"}), "902": ("0", set()),
                                      "903": ("1", {"Effusion"})}}
NIH_ALL_TRUTH = {"00000002_000.png": ("YES", {"Pneumothorax", "Mass"}), "00000007_000.png": ("YES", {"Fibrosis"})}


@dataclass
class NihFiles:
    data_entry: Path
    train_val_list: Path
    test_list: Path
    readers: Path
    test_labels: Path
    validation_labels: Path
    all_readers: Path
    all_labels: Path
    images: Path


def _entry_row(image: str) -> list[str]:
    labels, patient, view, _ = NIH_IMAGES[image]
    return [image, labels, "0", patient, "58", "M", view, "2500", "2048", "0.168", "0.168"]


def write_nih(root: Path, *, trailing_comma: bool = False) -> NihFiles:
    """NIH ChestX-ray14 files and Google's expert labels in their distributed layouts, images in images_00X/images/.

    ``trailing_comma`` writes Data_Entry_2017.csv as first released (each line ends in a comma); otherwise
    the v2020 file. Image ``i`` of NIH_IMAGES is ``pattern(i)``.
    """
    root.mkdir(parents=True, exist_ok=True)
    end = "," if trailing_comma else ""
    entry = root / ("Data_Entry_2017.csv" if trailing_comma else "Data_Entry_2017_v2020.csv")
    entry.write_text("\n".join([NIH_ENTRY_HEADER + end] + [",".join(_entry_row(i)) + end for i in NIH_IMAGES]) + "\n")
    lists = {name: root / f"{name}_list.txt" for name in ("train_val", "test")}
    for name, path in lists.items():
        path.write_text("".join(f"{i}\n" for i, row in NIH_IMAGES.items() if row[3] == name))
    for k, image in enumerate(NIH_IMAGES):
        write_raster(root / "images" / f"images_00{1 + k // 5}" / "images" / image, pattern(k))
    four, every = root / "four_findings", root / "all_findings"
    write_csv(four / "individual_readers.csv", pd.DataFrame(
        [(NIH_IMAGES[r[0]][1], *r) for r in NIH_READS],
        columns=["Patient ID", "Image ID", "Reader ID", "Fracture", "Pneumothorax", "Airspace opacity", "Nodule/mass",
                 "Set ID"]))
    header = NIH_ENTRY_HEADER.split(",") + ["Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass", "Set Id"]
    for name, split in (("test_labels.csv", "test"), ("validation_labels.csv", "val")):
        rows = [_entry_row(i) + list(labels) + [split] for i, labels in NIH_ADJUDICATED.items()
                if (i == "00000003_000.png") == (split == "val")]
        (four / name).write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    reads = [{"Image ID": i, "Patient ID": NIH_IMAGES[i][1], "Reader ID": reader, "Abnormal": abnormal,
              **{f: "YES" if f in found else "NO" for f in NIH_ALL}, "Other": "NO"}
             for i, per_reader in NIH_ALL_READS.items() for reader, (abnormal, found) in per_reader.items()]
    write_csv(every / "test_individual_readers.csv", pd.DataFrame(reads))
    truth = [{"Image ID": i, "Patient ID": NIH_IMAGES[i][1], "Abnormal": abnormal,
              **{f: "YES" if f in found else "NO" for f in NIH_ALL}, "Other": "NO"}
             for i, (abnormal, found) in NIH_ALL_TRUTH.items()]
    write_csv(every / "test_labels.csv", pd.DataFrame(truth))
    return NihFiles(data_entry=entry, train_val_list=lists["train_val"], test_list=lists["test"],
                    readers=four / "individual_readers.csv", test_labels=four / "test_labels.csv",
                    validation_labels=four / "validation_labels.csv", all_readers=every / "test_individual_readers.csv",
                    all_labels=every / "test_labels.csv", images=root / "images")


# ----------------------------------------------------------------------------- CheXpert


CHEXPERT_ORDER = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                  "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                  "Fracture", "Support Devices"]
CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_ORDER]


def chexpert_rows(part: str, images: list[tuple[str, str, str, dict]], root: str = "CheXpert-v1.0-small") -> list:
    """Rows in CheXpert's layout: (patient/study/view file, Frontal/Lateral, AP/PA, {finding: cell})."""
    return [[f"{root}/{part}/{name}", "Female", "61", frontal, ap_pa, *[cells.get(f, "") for f in CHEXPERT_ORDER]]
            for name, frontal, ap_pa, cells in images]


def write_chexpert_csv(path: Path, rows: list, header: list[str] = CHEXPERT_HEADER) -> Path:
    return write_csv(path, pd.DataFrame(rows, columns=header))
