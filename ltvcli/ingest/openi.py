"""OpenI (Indiana University chest X-rays): a hand-labelled test set, in either of its two layouts.

* NLM original: the report XMLs (``NLMCXR_reports.tgz`` as downloaded, or its
  ``ecgen-radiology/`` folder: ``uId``, ``AbstractText`` sections, the MeSH
  ``major`` codes, one ``parentImage`` per image) and
  ``NLMCXR_png/<image id>.png``. The XML does not say which images are
  frontal, so a view table is needed.
* Kaggle re-upload: ``indiana_reports.csv`` (``uid``, ``MeSH``, ``Problems``,
  ``findings``, ``impression``) and ``indiana_projections.csv`` (``uid``,
  ``filename``, ``projection``), images in ``images_normalized/``.

Either view table works with either layout: the Kaggle projections, or a
DICOM-metadata table such as torchxrayvision's ``nlmcxr_dicom_metadata.csv.gz``
(``imageid``, ``View Position``). Image ids are spelled differently
(``CXR1_1_IM-0001-3001`` in the XML, ``1_IM-0001-3001.dcm.png`` on Kaggle);
both reduce to the same key, report number and ``IM-`` part (:func:`image_key`).

Only frontal images are kept, every image is in the ``test`` split, the
report text (findings + impression) is stored inline, and the ground truth is
the indexers' MeSH coding mapped to the 14 findings (:mod:`ltvcli.ingest.mesh`)
or the user's hand-labelled CSV. There are no label sets (M = 0).
"""

from __future__ import annotations

import os
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO, Iterator, Sequence

import numpy as np
import pandas as pd

from ltvcli import csvio
from ltvcli.console import log, warn
from ltvcli.dataset import Dataset, DatasetSpec, build_dataset
from ltvcli.dataset.format import MISSING
from ltvcli.errors import LtvError, OptionError
from ltvcli.findings import FINDINGS
from ltvcli.ingest import handlabels
from ltvcli.ingest.images import check_image_folder, image_decoding
from ltvcli.ingest.mesh import MeshMap
from ltvcli.ingest.paths import outside_reason
from ltvcli.outputs import DATASET, check_output

FRONTAL_VIEWS = ("PA", "AP", "Frontal")
IMAGE_ID_COLUMNS = ("image_id", "image", "filename", "ImageID", "imageid", "dicom_id")
VIEW_COLUMNS = ("projection", "view", "ViewPosition", "View Position")
REPORT_ID_COLUMNS = ("uid", "report_id", "report")
REPORT_SECTIONS = ("FINDINGS", "IMPRESSION")
SUFFIXES = (".png", ".dcm")


@dataclass
class Reports:
    """Every report: its text and MeSH entries by report id (without ``CXR``), and the XML's images if any."""

    path: Path
    layout: str
    texts: dict[str, str]
    mesh: dict[str, list[str] | None]  # None: the report carries no MeSH coding
    images: pd.DataFrame | None = None  # XML layout: image_id, report_id
    mesh_source: str | None = None
    empty: list[str] = field(default_factory=list)  # reports with neither FINDINGS nor IMPRESSION


def ingest_openi(*, reports: Path, images: Path | None, out: Path, projections: Path | None = None,
                 views: Sequence[str] = FRONTAL_VIEWS, ground_truth: Path | None = None, mesh_map: Path | None = None,
                 size: int = 256, workers: int | None = None, strict: bool = False,
                 device: str = "cpu", force: bool = False,
                 features: Path | None = None, feature_ids: Path | None = None) -> Dataset:
    """Ingest OpenI into ``out``: frontal images, split ``test``, inline report text, ground truth.

    ``reports`` is ``NLMCXR_reports.tgz``, its folder of XML reports, or the
    Kaggle ``indiana_reports.csv``; ``projections`` a view table
    (``indiana_projections.csv`` or a DICOM-metadata table).
    ``views=("all",)`` keeps every image (then the XML layout needs no view
    table). The ground truth is ``ground_truth`` (a hand-labelled CSV) if
    given, else the MeSH coding mapped by ``mesh_map`` (default: ltv's
    table). ``images=None`` writes a label-only dataset. ``device="cuda"``
    decodes JPEGs on the GPU (PNGs stay on the CPU). ``force`` replaces an
    existing dataset at ``out``.
    """
    check_output(out, DATASET, inputs=[reports, images, projections, ground_truth, mesh_map], force=force)
    decoding = image_decoding(device, workers)
    spec = openi_spec(reports=reports, images=images, projections=projections, views=views,
                      ground_truth=ground_truth, mesh_map=mesh_map)
    return build_dataset(spec, out, size=size, channels=1, decode=decoding.decode, decode_batch=decoding.batch,
                         workers=decoding.workers, strict=strict, force=force,
                         features=features, feature_ids=feature_ids)


def openi_spec(*, reports: Path, images: Path | None, projections: Path | None = None,
               views: Sequence[str] = FRONTAL_VIEWS, ground_truth: Path | None = None,
               mesh_map: Path | None = None) -> DatasetSpec:
    """Parse either layout into a :class:`DatasetSpec` (no image is read)."""
    reports, images = Path(reports), check_image_folder(images)
    views = [v.strip().upper() for v in views if v.strip()]
    table = _read_reports(reports)
    view_table = _read_view_table(Path(projections)) if projections is not None else None
    if table.images is not None:  # NLM XML: the reports list the images, the view table says which are frontal
        files = table.images["image_id"] + ".png"
        all_images = table.images.assign(view="", file=files, written=files)
        frame = _attach_views(all_images, view_table) if view_table is not None else all_images
    elif view_table is not None:  # Kaggle reports: the view table lists the images
        all_images = _images_of_view_table(view_table, table)
        frame = all_images
    else:
        raise OptionError("projections", f"is needed: {reports.name} (the Kaggle layout) lists no images; give "
                                         "indiana_projections.csv")
    frame = _select_views(frame, views, reports)
    truth = _ground_truth(Path(ground_truth), frame, all_images) if ground_truth is not None else \
        _mesh_truth(table, frame, mesh_map)
    _count_empty(table, frame)
    sources, refused = _image_files(images, frame)
    manifest = pd.DataFrame({"image_id": frame["image_id"], "study_id": frame["report_id"], "subject_id": "",
                             "split": "test", "view": frame["view"], "source": sources, "report": ""})
    return DatasetSpec(
        task="multilabel", classes=list(FINDINGS), manifest=manifest, label_sets=[],
        labels=np.zeros((len(frame), 0, len(FINDINGS)), dtype=np.int8), ground_truth=truth, refused=refused,
        reports=pd.DataFrame({"image_id": frame["image_id"], "text": frame["report_id"].map(table.texts)}),
        has_images=images is not None,
        source={"name": "openi", "layout": table.layout, "reports": str(reports),
                "images": str(images) if images else None,
                "projections": str(projections) if projections else None,
                "ground_truth": str(ground_truth) if ground_truth else
                (f"MeSH ({table.mesh_source}) via {Path(mesh_map).name if mesh_map else 'openi_mesh.csv'}"
                 if truth is not None else None),
                "views": views, "empty_reports": len(table.empty)},
    )


def image_key(name: str) -> str:
    """The key both layouts' spellings of an image share: report number and ``IM-`` part.

    ``CXR1_1_IM-0001-3001`` (XML), ``1_IM-0001-3001.dcm.png`` (Kaggle) ->
    ``1_IM-0001-3001``. Folders and ``.png`` / ``.dcm`` suffixes are dropped.
    """
    name = _strip_suffixes(name)
    parts = report_key(name).split("_")
    return f"{parts[0]}_{parts[-1]}" if len(parts) > 1 else name


def report_key(uid: str) -> str:
    """A report id without the NLM ``CXR`` prefix, so ``CXR12`` (XML) and ``12`` (Kaggle) agree."""
    uid = uid.strip()
    return uid[3:] if uid.upper().startswith("CXR") else uid


def _strip_suffixes(name: str) -> str:
    """A file name or id without folders and ``.png`` / ``.dcm`` suffixes (``1_IM-0001-4001.dcm.png`` -> ``1_IM-0001-4001``)."""
    name = PurePath(name.strip()).name
    while name.lower().endswith(SUFFIXES):
        name = name[:-4]
    return name


# ----------------------------------------------------------------------------- reports


def _read_reports(path: Path) -> Reports:
    if path.is_dir() or (path.is_file() and path.name.lower().endswith((".tgz", ".tar.gz", ".tar"))):
        return _xml_reports(path)
    if path.is_file():
        return _kaggle_reports(path)
    raise LtvError(f"{path}: no such reports folder or archive (NLM XML) or reports CSV (Kaggle)")


def _xml_files(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(name, stream) of each report XML in a folder or in NLMCXR_reports.tgz, in report-number order.

    The archive is read member by member; nothing is extracted to disk.
    """
    if path.is_dir():
        for file in sorted(path.glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
            with open(file, "rb") as handle:
                yield str(file), handle
        return
    try:
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.lower().endswith(".xml")]
            for member in sorted(members, key=lambda m: (len(PurePath(m.name).stem), PurePath(m.name).stem)):
                yield f"{path}:{member.name}", archive.extractfile(member)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise LtvError(f"{path}: not a readable tar archive of report XMLs ({exc})") from None


def _xml_reports(path: Path) -> Reports:
    """One row per parentImage of every report XML; report text and MeSH ``major`` codes per report."""
    rows, texts, mesh, empty, n = [], {}, {}, [], 0
    for name, stream in _xml_files(path):
        n += 1
        uid, sections, majors, image_ids = _parse_report_xml(name, stream)
        texts[uid] = _report_text(sections)
        mesh[uid] = majors
        if not texts[uid]:
            empty.append(uid)
        rows += [{"image_id": image_id, "report_id": uid} for image_id in image_ids]
    if n == 0:
        raise LtvError(f"{path}: no .xml report files")
    if not rows:
        raise LtvError(f"{path}: the report files list no parentImage")
    frame = pd.DataFrame(rows)
    csvio.require_unique(frame, "image_id", path)
    log(f"{n} reports, {len(frame)} images in {path}")
    return Reports(path=path, layout="nlm-xml", texts=texts, mesh=mesh, images=frame, mesh_source="XML major",
                   empty=empty)


def _parse_report_xml(name: str, stream: IO[bytes]) -> tuple[str, dict[str, str], list[str] | None, list[str]]:
    try:
        root = ET.parse(stream).getroot()
    except ET.ParseError as exc:
        raise LtvError(f"{name}: not valid XML ({exc})") from None
    uid = root.find(".//uId")
    if uid is None or not uid.get("id"):
        raise LtvError(f"{name}: no <uId id=...> element; expected an NLM OpenI report")
    sections = {(node.get("Label") or "").upper(): (node.text or "").strip() for node in root.iter("AbstractText")}
    coded = root.find(".//MeSH")
    majors = [(node.text or "").strip() for node in coded.iter("major")] if coded is not None else None
    image_ids = [node.get("id", "").strip() for node in root.iter("parentImage") if node.get("id")]
    return report_key(uid.get("id")), sections, majors, image_ids


def _report_text(sections: dict[str, str]) -> str:
    return "\n".join(f"{name}: {sections[name]}" for name in REPORT_SECTIONS if sections.get(name))


def _kaggle_reports(path: Path) -> Reports:
    """indiana_reports.csv: text, and the MeSH column (qualified terms; Problems, the bare terms, if MeSH is absent)."""
    table = csvio.read_table(path, required=("uid", "findings", "impression"), what="reports CSV")
    csvio.require_nonblank(table, "uid", path)
    csvio.require_unique(table, "uid", path)
    uids = table["uid"].map(report_key)
    texts = {uid: _report_text({"FINDINGS": f.strip(), "IMPRESSION": i.strip()})
             for uid, f, i in zip(uids, table["findings"], table["impression"])}
    source = next((c for c in ("MeSH", "Problems") if c in table), None)
    mesh: dict[str, list[str] | None] = dict.fromkeys(uids)
    if source is not None:
        backup = table["Problems"] if "Problems" in table and source == "MeSH" else table[source]
        for uid, coded, bare in zip(uids, table[source], backup):
            text = coded.strip() or bare.strip()
            mesh[uid] = text.split(";") if text else None
    return Reports(path=path, layout="kaggle-csv", texts=texts, mesh=mesh, mesh_source=source,
                   empty=[uid for uid, text in texts.items() if not text])


def _count_empty(table: Reports, frame: pd.DataFrame) -> None:
    """Say how many reports have no FINDINGS or IMPRESSION text (their images are kept, with empty text)."""
    if table.empty:
        kept = int(frame["report_id"].isin(set(table.empty)).sum())
        log(f"{len(table.empty)} of {len(table.texts)} reports have no FINDINGS or IMPRESSION text; their {kept} "
            "kept image(s) have an empty report")


# ----------------------------------------------------------------------------- views and images


def _read_view_table(path: Path) -> pd.DataFrame:
    """image id, its key, view and (Kaggle projections) report id of every row of a view table."""
    table = csvio.read_table(path, what="view table")
    id_column = csvio.first_present(table, IMAGE_ID_COLUMNS, path, "image id")
    view_column = csvio.first_present(table, VIEW_COLUMNS, path, "view")
    csvio.require_nonblank(table, id_column, path)
    ids = table[id_column].map(_strip_suffixes)
    frame = pd.DataFrame({"image_id": ids, "key": ids.map(image_key), "view": table[view_column].str.strip(),
                          "file": table[id_column].map(lambda name: PurePath(name.strip()).name),
                          "written": table[id_column].str.strip(),  # the name as the table gives it
                          "report_id": table["uid"].map(report_key) if "uid" in table
                          else ids.map(lambda i: image_key(i).split("_")[0])})
    frame.index = table.index  # file rows, for messages
    frame.attrs["path"] = path
    csvio.require_unique(frame, "image_id", path)
    return frame


def _images_of_view_table(view_table: pd.DataFrame, reports: Reports) -> pd.DataFrame:
    """The Kaggle layout's images: one per view-table row, whose report must be in the reports CSV."""
    path = view_table.attrs["path"]
    count, first = csvio.missing_ids(view_table["report_id"], reports.texts)
    if count:
        raise LtvError(f"{path}: {count} row(s) with a uid that is not in {reports.path.name} (first: {first!r})")
    files = view_table["file"].where(view_table["file"].str.lower().str.endswith(SUFFIXES),
                                     view_table["image_id"] + ".png")
    return view_table.assign(file=files).reset_index(drop=True)


def _attach_views(frame: pd.DataFrame, view_table: pd.DataFrame) -> pd.DataFrame:
    """Each XML image's view: the view-table row with its id, else the one with its key (either spelling)."""
    path = view_table.attrs["path"]
    by_id = dict(zip(view_table["image_id"], view_table["view"]))
    by_key = _unique_map(view_table["key"], view_table["view"])
    keys = frame["image_id"].map(image_key)
    shared = keys.duplicated(keep=False)  # two XML images with one key: only their exact ids can match
    views = [by_id.get(i, None if dup else by_key.get(k)) for i, k, dup in zip(frame["image_id"], keys, shared)]
    frame = frame.assign(view=views)
    unknown = frame["view"].isna()
    if unknown.all():
        raise LtvError(f"{path}: no image id of the view table matches the report images "
                       f"(first report image: {frame['image_id'].iloc[0]!r})")
    if unknown.any():
        warn(f"{path.name}: no view for {int(unknown.sum())} image(s); they are left out")
    return frame[~unknown].reset_index(drop=True)


def _unique_map(keys: pd.Series, values: pd.Series) -> dict[str, str]:
    """key -> value for keys that occur once (an ambiguous key matches nothing)."""
    once = ~keys.duplicated(keep=False)
    return dict(zip(keys[once], values[once]))


def _select_views(frame: pd.DataFrame, views: list[str], reports: Path) -> pd.DataFrame:
    if "ALL" in views:
        return frame.reset_index(drop=True)
    if (frame["view"] == "").all():
        raise OptionError("projections", f"is needed: the NLM XML reports in {reports} do not say which images are "
                                         "frontal; give a view table (an image id and a projection, view or "
                                         "View Position column), or keep all views")
    kept = frame[frame["view"].str.upper().isin(views)].reset_index(drop=True)
    log(f"{len(kept)} of {len(frame)} images have view {'/'.join(views)}")
    return kept


def _image_files(images: Path | None, frame: pd.DataFrame) -> tuple[list[str], dict[int, str]]:
    """Each image's PNG: the layout's own file name, else the folder's file with the same key (either spelling).

    Also the rows whose name, as the reports or view table write it, would
    leave the image folder (:mod:`ltvcli.ingest.paths`), with why: they are
    refused, never matched to a file of the folder by their last part.
    """
    if images is None:
        return [""] * len(frame), {}
    names = [entry.name for entry in os.scandir(images) if entry.is_file() and entry.name.lower().endswith(".png")]
    by_key = _unique_map(pd.Series([image_key(n) for n in names], dtype=str), pd.Series(names, dtype=str))
    present = set(names)
    sources, refused = [], {}
    for position, (file, image_id, written) in enumerate(zip(frame["file"], frame["image_id"], frame["written"])):
        reason = outside_reason(written)
        if reason is not None:
            refused[position] = reason
            sources.append(str(images / written))
        else:
            sources.append(str(images / (file if file in present else by_key.get(image_key(image_id), file))))
    return sources, refused


# ----------------------------------------------------------------------------- ground truth


def _mesh_truth(reports: Reports, frame: pd.DataFrame, mesh_map: Path | None) -> np.ndarray | None:
    """The indexers' MeSH coding of each image's report, mapped to the 14 findings."""
    if reports.mesh_source is None:
        log(f"{reports.path.name} has no MeSH coding; the dataset has no ground truth")
        return None
    table = MeshMap.read(mesh_map)
    per_report = {uid: table.truth(entries) if entries is not None else np.full(len(FINDINGS), MISSING, np.int8)
                  for uid, entries in reports.mesh.items()}
    truth = np.stack([per_report[uid] for uid in frame["report_id"]]) if len(frame) else \
        np.zeros((0, len(FINDINGS)), np.int8)
    labelled = (truth != MISSING).any(axis=1)
    log(f"ground truth: the MeSH coding ({reports.mesh_source}) of {int(labelled.sum())} of {len(frame)} images' "
        f"reports, mapped by {table.path.name}")
    return truth


def _ground_truth(path: Path, frame: pd.DataFrame, all_images: pd.DataFrame) -> np.ndarray:
    """Hand labels keyed by image id or report id (either layout's spelling) aligned to the kept images."""
    hand = handlabels.read_hand_labels(path, image_keys=IMAGE_ID_COLUMNS, group_keys=REPORT_ID_COLUMNS)
    known = set(all_images["image_id"].map(image_key) if hand.per_image else all_images["report_id"])
    return handlabels.align(hand, frame["image_id"].map(image_key).tolist(), frame["report_id"].tolist(), known,
                            normalize=image_key if hand.per_image else report_key)
