"""OpenI (Indiana University chest X-rays): a hand-labelled test set, in either of its two layouts.

* NLM original: ``ecgen-radiology/<n>.xml`` reports (``uId``, ``AbstractText``
  sections, one ``parentImage`` per image) and ``NLMCXR_png/<image id>.png``.
  The XML does not say which images are frontal, so a view table is needed:
  any CSV with an image id and a ``projection`` / ``view`` / ``ViewPosition``
  column (for instance exported from the DICOM headers).
* Kaggle re-upload: ``indiana_reports.csv`` (``uid``, ``findings``,
  ``impression``) and ``indiana_projections.csv`` (``uid``, ``filename``,
  ``projection``), images in ``images_normalized/``.

Only frontal images are kept, every image is in the ``test`` split, the
report text (findings + impression) is stored inline for the image+text work,
and labels come from the user's hand-labelled CSV, stored as ground truth.
There are no label sets (M = 0): OpenI is used to evaluate, not to train.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path, PurePath
from typing import Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log, warn
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset
from ltvcli.errors import LtvError
from ltvcli.findings import FINDINGS
from ltvcli.ingest import handlabels
from ltvcli.ingest.images import default_workers, load_image

FRONTAL_VIEWS = ("PA", "AP", "Frontal")
IMAGE_ID_COLUMNS = ("image_id", "image", "filename", "ImageID", "dicom_id")
VIEW_COLUMNS = ("projection", "view", "ViewPosition")
REPORT_ID_COLUMNS = ("uid", "report_id", "report")
REPORT_SECTIONS = ("FINDINGS", "IMPRESSION")


def ingest_openi(*, reports: Path, images: Path, out: Path, projections: Path | None = None,
                 views: Sequence[str] = FRONTAL_VIEWS, ground_truth: Path | None = None, size: int = 256,
                 workers: int | None = None, strict: bool = False) -> Dataset:
    """Ingest OpenI into ``out``: frontal images, split ``test``, inline report text, hand labels as ground truth.

    ``reports`` is the folder of NLM XML reports or the Kaggle
    ``indiana_reports.csv``; ``projections`` is the Kaggle
    ``indiana_projections.csv`` or, for the XML layout, a view table.
    ``views=("all",)`` keeps every image (then the XML layout needs no view table).
    """
    spec = openi_spec(reports=reports, images=images, projections=projections, views=views,
                      ground_truth=ground_truth)
    return build_dataset(spec, out, size=size, channels=1, decode=load_image, workers=default_workers(workers),
                         strict=strict)


def openi_spec(*, reports: Path, images: Path, projections: Path | None = None,
               views: Sequence[str] = FRONTAL_VIEWS, ground_truth: Path | None = None) -> DatasetSpec:
    """Parse either layout into a :class:`DatasetSpec` (no image is read)."""
    reports, images = Path(reports), Path(images)
    views = [v.strip().upper() for v in views if v.strip()]
    if not images.is_dir():
        raise LtvError(f"{images}: no such image folder")
    if reports.is_dir():
        all_images, texts = _xml_layout(reports, images)
        layout = "nlm-xml"
        frame = _attach_views(all_images, Path(projections)) if projections is not None else all_images
    elif reports.is_file():
        if projections is None:
            raise LtvError(f"{reports}: the Kaggle layout needs --projections indiana_projections.csv")
        all_images, texts = _kaggle_layout(reports, Path(projections), images)
        layout = "kaggle-csv"
        frame = all_images
    else:
        raise LtvError(f"{reports}: no such reports folder (NLM XML) or reports CSV (Kaggle)")
    frame = _select_views(frame, views, reports)
    truth = _ground_truth(Path(ground_truth), frame, all_images) if ground_truth is not None else None
    manifest = pd.DataFrame({"image_id": frame["image_id"], "study_id": frame["report_id"], "subject_id": "",
                             "split": "test", "view": frame["view"], "source": frame["source"], "report": ""})
    return DatasetSpec(
        task="multilabel", classes=list(FINDINGS), manifest=manifest, label_sets=[],
        labels=np.zeros((len(frame), 0, len(FINDINGS)), dtype=np.int8), ground_truth=truth,
        reports=pd.DataFrame({"image_id": frame["image_id"], "text": frame["report_id"].map(texts)}),
        source={"name": "openi", "layout": layout, "reports": str(reports), "images": str(images),
                "projections": str(projections) if projections else None,
                "ground_truth": str(ground_truth) if ground_truth else None, "views": views},
    )


def image_key(name: str) -> str:
    """An image id from a file name or id: folder and ``.png`` / ``.dcm`` suffixes removed.

    ``1_IM-0001-4001.dcm.png`` -> ``1_IM-0001-4001``; ``CXR1_1_IM-0001-3001`` stays.
    """
    name = PurePath(name.strip()).name
    for suffix in (".png", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def report_key(uid: str) -> str:
    """A report id without the NLM ``CXR`` prefix, so ``CXR12`` (XML) and ``12`` (Kaggle) agree."""
    uid = uid.strip()
    return uid[3:] if uid.upper().startswith("CXR") else uid


# ----------------------------------------------------------------------------- layouts


def _xml_layout(folder: Path, images: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per parentImage of every report XML; report text per report id."""
    files = sorted(folder.glob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise LtvError(f"{folder}: no .xml report files")
    rows, texts = [], {}
    for path in files:
        uid, sections, image_ids = _parse_report_xml(path)
        texts[uid] = _report_text(sections)
        rows += [{"image_id": image_id, "report_id": uid, "view": "", "source": str(images / f"{image_id}.png")}
                 for image_id in image_ids]
    if not rows:
        raise LtvError(f"{folder}: the report files list no parentImage")
    frame = pd.DataFrame(rows)
    csvio.require_unique(frame, "image_id", folder)
    log(f"{len(files)} reports, {len(frame)} images in {folder}")
    return frame, texts


def _parse_report_xml(path: Path) -> tuple[str, dict[str, str], list[str]]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise LtvError(f"{path}: not valid XML ({exc})") from None
    uid = root.find(".//uId")
    if uid is None or not uid.get("id"):
        raise LtvError(f"{path}: no <uId id=...> element; expected an NLM OpenI report")
    sections = {(node.get("Label") or "").upper(): (node.text or "").strip() for node in root.iter("AbstractText")}
    image_ids = [node.get("id", "").strip() for node in root.iter("parentImage") if node.get("id")]
    return report_key(uid.get("id")), sections, image_ids


def _report_text(sections: dict[str, str]) -> str:
    return "\n".join(f"{name}: {sections[name]}" for name in REPORT_SECTIONS if sections.get(name))


def _kaggle_layout(reports: Path, projections: Path, images: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    table = csvio.read_table(reports, required=("uid", "findings", "impression"), what="reports CSV")
    csvio.require_nonblank(table, "uid", reports)
    csvio.require_unique(table, "uid", reports)
    texts = {report_key(uid): _report_text({"FINDINGS": f.strip(), "IMPRESSION": i.strip()})
             for uid, f, i in zip(table["uid"], table["findings"], table["impression"])}
    views = csvio.read_table(projections, required=("uid", "filename", "projection"), what="projections CSV")
    csvio.require_nonblank(views, "filename", projections)
    csvio.require_unique(views, "filename", projections)
    report_ids = views["uid"].map(report_key)
    count, first = csvio.missing_ids(report_ids, texts)
    if count:
        raise LtvError(f"{projections}: {count} row(s) with a uid that is not in {reports.name} (first: {first!r})")
    frame = pd.DataFrame({"image_id": views["filename"].map(image_key), "report_id": report_ids,
                          "view": views["projection"].str.strip(),
                          "source": [str(images / name.strip()) for name in views["filename"]]})
    csvio.require_unique(frame, "image_id", projections)
    return frame, texts


def _attach_views(frame: pd.DataFrame, table_path: Path) -> pd.DataFrame:
    """Add each image's view from a view table (image id + projection/view/ViewPosition column)."""
    table = csvio.read_table(table_path, what="view table")
    id_column = csvio.first_present(table, IMAGE_ID_COLUMNS, table_path, "image id")
    view_column = csvio.first_present(table, VIEW_COLUMNS, table_path, "view")
    keys = table[id_column].map(image_key)
    views = dict(zip(keys, table[view_column].str.strip()))
    frame = frame.assign(view=frame["image_id"].map(views))
    unknown = frame["view"].isna()
    if unknown.all():
        raise LtvError(f"{table_path}: no image id in column {id_column!r} matches the report images "
                       f"(first report image: {frame['image_id'].iloc[0]!r})")
    if unknown.any():
        warn(f"{table_path.name}: no view for {int(unknown.sum())} image(s); they are left out")
    return frame[~unknown].reset_index(drop=True)


def _select_views(frame: pd.DataFrame, views: list[str], reports: Path) -> pd.DataFrame:
    if "ALL" in views:
        return frame.reset_index(drop=True)
    if (frame["view"] == "").all():
        raise LtvError(f"{reports}: the NLM XML reports do not say which images are frontal; give --projections "
                       "(a CSV with an image id and a projection/view/ViewPosition column) or --views all")
    kept = frame[frame["view"].str.upper().isin(views)].reset_index(drop=True)
    log(f"{len(kept)} of {len(frame)} images have view {'/'.join(views)}")
    return kept


def _ground_truth(path: Path, frame: pd.DataFrame, all_images: pd.DataFrame) -> np.ndarray:
    """Hand labels keyed by image id or report id (either layout's spelling) aligned to the kept images."""
    hand = handlabels.read_hand_labels(path, image_keys=IMAGE_ID_COLUMNS, group_keys=REPORT_ID_COLUMNS)
    normalize = image_key if hand.per_image else report_key
    hand = dataclasses.replace(hand, ids=[normalize(i) for i in hand.ids])
    known = set(all_images["image_id"] if hand.per_image else all_images["report_id"])
    return handlabels.align(hand, frame["image_id"].tolist(), frame["report_id"].tolist(), known)
