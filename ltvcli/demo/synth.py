"""A small synthetic MIMIC-CXR in the real files' layouts, for the demo and for tests.

:func:`generate_mimic_example` writes what a PhysioNet download of
MIMIC-CXR(-JPG) holds, at toy scale: the four gzipped CSVs with their official
column lists, the ``files/pXX/pSUBJECT/sSTUDY/<dicom_id>.{dcm,jpg}`` image
tree (about half DICOM, half JPG), one report per study, plus a hand-labelled
test CSV (the analogue of the paper's MIMIC-CXR 1K hand-labelled test set).
Nothing is copied from MIMIC: patients, images, reports and labels are
simulated (:mod:`~ltvcli.demo.cohort`, :mod:`~ltvcli.demo.radiograph`,
:mod:`~ltvcli.demo.reports`).

The output is a pure function of the parameters: the same seed gives the
same bytes in every file (gzip headers carry no time stamp, DICOM UIDs are
derived from the seed). The example is written into ``ROOT.partial`` and
renamed onto ``ROOT`` at the end, with ``demo.json`` recording the
parameters, so a half-written example is never taken for a whole one.
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli import __version__, atomic
from ltvcli.console import log, track
from ltvcli.demo.cohort import Cohort, draw_cohort
from ltvcli.demo.encode import DicomHeader, write_dicom, write_jpeg
from ltvcli.demo.radiograph import draw_radiograph
from ltvcli.demo.reports import write_report
from ltvcli.errors import LtvError
from ltvcli.findings import FINDINGS

DEFAULT_SUBJECTS = 160  # about 240 studies and 270 frontal images
SOURCE_SIZE = (384, 320)  # rows, columns: portrait like a real chest film, small so the demo is fast
SPLIT_SHARES = (("train", 0.65), ("validate", 0.10), ("test", 0.25))  # by subject, as the official split

METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning")
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
LABEL_COLUMNS = ("subject_id", "study_id", *FINDINGS)
VIEW_MEANINGS = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral"}
FRONTAL_VIEWS = ("PA", "AP")
MARKER = "demo.json"


@dataclass(frozen=True)
class DemoFiles:
    """Where the generated example's inputs are (the arguments of ``ltv ingest mimic``)."""

    root: Path
    metadata: Path
    split: Path
    negbio: Path
    chexpert: Path
    images: Path  # the folder that holds files/pXX/...
    ground_truth: Path
    reports: Path  # the folder that holds files/pXX/pSUBJECT/sSTUDY.txt (the same tree as the images)

    @classmethod
    def under(cls, root: Path) -> "DemoFiles":
        """The fixed layout of an example at ``root``."""
        root = Path(root)
        return cls(root=root, metadata=root / "mimic-cxr-2.0.0-metadata.csv.gz",
                   split=root / "mimic-cxr-2.0.0-split.csv.gz", negbio=root / "mimic-cxr-2.0.0-negbio.csv.gz",
                   chexpert=root / "mimic-cxr-2.0.0-chexpert.csv.gz", images=root,
                   ground_truth=root / "mimic-cxr-test-hand-labels.csv", reports=root)


def generate_mimic_example(root: Path, *, n_subjects: int = DEFAULT_SUBJECTS, seed: int = 0,
                           source_size: tuple[int, int] = SOURCE_SIZE) -> DemoFiles:
    """Write a synthetic MIMIC-CXR example of ``n_subjects`` patients at ``root``, replacing an old one."""
    root = Path(root)
    check_example_options(n_subjects, source_size)
    if root.exists() and not (root / MARKER).is_file() and any(root.iterdir()):
        raise LtvError(f"{root} exists and is not a generated example; choose an empty or new folder")
    staging = root.with_name(root.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)  # generation is cheap and deterministic: start over rather than resume
    files = DemoFiles.under(staging)
    studies, images, cohort = _plan(n_subjects, seed)
    _write_images(files, studies, images, cohort, seed, source_size)
    _write_reports(files, studies, cohort, seed)
    _write_tables(files, studies, images, cohort, source_size)
    atomic.write_json(staging / MARKER, _parameters(n_subjects, seed, source_size) | {
        "counts": {"subjects": n_subjects, "studies": len(studies), "images": len(images),
                   "frontal_images": int(images["ViewPosition"].isin(FRONTAL_VIEWS).sum())}})
    atomic.replace_dir(staging, root, MARKER)
    log(f"generated a synthetic MIMIC-CXR example in {root}: {n_subjects} subjects, {len(studies)} studies, "
        f"{len(images)} images")
    return DemoFiles.under(root)


def check_example_options(n_subjects: int, source_size: tuple[int, int]) -> None:
    """Raise a clear error for an example too small to split or to draw."""
    if n_subjects < 4:
        raise LtvError(f"the example needs at least 4 subjects (one per split and more), got {n_subjects}")
    if min(source_size) < 32:
        raise LtvError(f"source images must be at least 32 pixels on each side, got {tuple(source_size)}")


def existing_example(root: Path, *, n_subjects: int = DEFAULT_SUBJECTS, seed: int = 0,
                     source_size: tuple[int, int] = SOURCE_SIZE) -> DemoFiles | None:
    """The example at ``root`` if it was generated with these parameters (and this ltv version), else None."""
    try:
        recorded = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    wanted = _parameters(n_subjects, seed, source_size)
    return DemoFiles.under(root) if {k: recorded.get(k) for k in wanted} == wanted else None


def _parameters(n_subjects: int, seed: int, source_size: tuple[int, int]) -> dict:
    return {"generator": "ltv demo", "ltv_version": __version__, "seed": seed, "n_subjects": n_subjects,
            "source_size": list(source_size)}


# ---------------------------------------------------------------- planning (ids, studies, images)
def _plan(n_subjects: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, Cohort]:
    """Subjects, their studies and images, with ids and metadata; the cohort holds each study's truth."""
    layout, truth = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    subjects = [str(10_000_000 + i) for i in layout.choice(9_000_000, n_subjects, replace=False)]
    split = _split_subjects(n_subjects, layout)
    n_studies = layout.choice([1, 2, 3], size=n_subjects, p=[0.6, 0.3, 0.1])
    study_rows = []
    for subject, subject_split, count in zip(subjects, split, n_studies):
        first = np.datetime64("2110-01-01") + int(layout.integers(0, 80 * 365))
        for day in np.sort(layout.integers(0, 900, count)):
            study_rows.append({"subject_id": subject, "split": subject_split,
                               "date": str(first + int(day)).replace("-", ""), "time": _study_time(layout)})
    studies = pd.DataFrame(study_rows)
    studies.insert(1, "study_id", [str(50_000_000 + i) for i in layout.choice(10_000_000, len(studies), replace=False)])
    cohort = draw_cohort(len(studies), truth)
    studies["procedure"] = np.where(cohort.portable, "CHEST (PORTABLE AP)", "CHEST (PA AND LAT)")
    studies["orientation"] = np.where(cohort.portable & (layout.random(len(studies)) < 0.6), "Recumbent", "Erect")
    images = _plan_images(studies, cohort, layout)
    return studies, images, cohort


def _split_subjects(n: int, rng: np.random.Generator) -> np.ndarray:
    """Official-style split by subject: every split gets at least one subject."""
    counts = [max(1, round(n * share)) for _, share in SPLIT_SHARES[1:]]
    labels = ["validate"] * counts[0] + ["test"] * counts[1]
    labels += ["train"] * (n - len(labels))
    return rng.permutation(np.array(labels))


def _study_time(rng: np.random.Generator) -> str:
    """A DICOM time, HHMMSS.fff."""
    hhmmss = int(rng.integers(0, 24)) * 10000 + int(rng.integers(0, 60)) * 100 + int(rng.integers(0, 60))
    return f"{hhmmss:06d}.{int(rng.integers(0, 1000)):03d}"


def _plan_images(studies: pd.DataFrame, cohort: Cohort, rng: np.random.Generator) -> pd.DataFrame:
    """1-3 images per study: the frontal (PA, or AP for portable films), sometimes a repeat, often a lateral."""
    rows = []
    for i, study in enumerate(studies.itertuples()):
        frontal = "AP" if cohort.portable[i] else "PA"
        views = [frontal] * (1 + int(rng.random() < 0.12))
        if rng.random() < (0.1 if cohort.portable[i] else 0.75):
            views.append("LATERAL" if rng.random() < 0.8 else "LL")
        for view in views:
            rows.append({
                "dicom_id": "-".join(f"{x:08x}" for x in rng.integers(0, 2**32, 5)),
                "subject_id": study.subject_id, "study_id": study.study_id, "study": i, "ViewPosition": view,
                "format": "dcm" if rng.random() < 0.5 else "jpg",
                "modality": "DX" if rng.random() < 0.5 else "CR",
                "photometric": "MONOCHROME1" if rng.random() < 0.15 else "MONOCHROME2",
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- writing
def study_folder(images_root: Path, subject_id: str, study_id: str) -> Path:
    """``files/p{first two digits}/p{subject}/s{study}`` under the images root."""
    return images_root / "files" / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"


def _write_images(files: DemoFiles, studies: pd.DataFrame, images: pd.DataFrame, cohort: Cohort, seed: int,
                  source_size: tuple[int, int]) -> None:
    with track(len(images), "drawing radiographs") as advance:
        for n, image in enumerate(images.itertuples()):
            study = studies.iloc[image.study]
            rng = np.random.default_rng([seed, 2, n])
            pixels = draw_radiograph(cohort.study(image.study), image.ViewPosition in FRONTAL_VIEWS, source_size,
                                     study_seed=[seed, 1, image.study], image_seed=[seed, 3, n])
            path = study_folder(files.images, image.subject_id, image.study_id) / f"{image.dicom_id}.{image.format}"
            if image.format == "jpg":
                write_jpeg(path, pixels)
            else:
                header = DicomHeader(image.dicom_id, image.subject_id, image.study_id, study["date"],
                                     study["time"], image.ViewPosition, study["procedure"], image.modality,
                                     image.photometric, instance=n + 1)
                write_dicom(path, pixels, header, seed, rng)
            advance(1)


def _write_reports(files: DemoFiles, studies: pd.DataFrame, cohort: Cohort, seed: int) -> None:
    rng = np.random.default_rng([seed, 4])
    for i, study in enumerate(studies.itertuples()):
        folder = study_folder(files.reports, study.subject_id, study.study_id)
        atomic.write_text(folder.with_suffix(".txt"), write_report(cohort.study(i), study.procedure, rng))


def _write_tables(files: DemoFiles, studies: pd.DataFrame, images: pd.DataFrame, cohort: Cohort,
                  source_size: tuple[int, int]) -> None:
    """The four MIMIC CSVs (gzipped) and the hand-labelled test CSV."""
    study = studies.iloc[images["study"]].reset_index(drop=True)
    metadata = pd.DataFrame({
        "dicom_id": images["dicom_id"], "subject_id": images["subject_id"], "study_id": images["study_id"],
        "PerformedProcedureStepDescription": study["procedure"], "ViewPosition": images["ViewPosition"],
        "Rows": source_size[0], "Columns": source_size[1], "StudyDate": study["date"],
        "StudyTime": study["time"].map(lambda t: f"{float(t):.3f}"),  # MIMIC's CSV reads it as a float
        "ProcedureCodeSequence_CodeMeaning": study["procedure"],
        "ViewCodeSequence_CodeMeaning": images["ViewPosition"].map(VIEW_MEANINGS),
        "PatientOrientationCodeSequence_CodeMeaning": study["orientation"],
    })
    _write_gzip_csv(files.metadata, metadata[list(METADATA_COLUMNS)])
    split = images[["dicom_id", "study_id", "subject_id"]].assign(split=study["split"].to_numpy())
    _write_gzip_csv(files.split, split[list(SPLIT_COLUMNS)])
    order = np.lexsort((studies["study_id"], studies["subject_id"]))
    for path, labeller in ((files.negbio, "negbio"), (files.chexpert, "chexpert")):
        labels = pd.DataFrame(cohort.codes[labeller], columns=list(FINDINGS))
        labels.insert(0, "study_id", studies["study_id"])
        labels.insert(0, "subject_id", studies["subject_id"])
        _write_gzip_csv(path, labels.iloc[order][list(LABEL_COLUMNS)])
    tested = (study["split"] == "test").to_numpy() & images["ViewPosition"].isin(FRONTAL_VIEWS).to_numpy()
    truth = pd.DataFrame(cohort.present[images["study"].to_numpy()[tested]].astype(int), columns=list(FINDINGS))
    truth.insert(0, "dicom_id", images["dicom_id"][tested].to_numpy())
    atomic.write_csv(files.ground_truth, truth)


def _write_gzip_csv(path: Path, frame: pd.DataFrame) -> None:
    """Gzip without file name or time stamp in the header, so equal tables give equal bytes."""
    data = gzip.compress(frame.to_csv(index=False).encode("utf-8"), mtime=0)
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(data)
