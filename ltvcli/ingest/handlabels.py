"""Hand-labelled finding CSVs: the trusted test labels (MIMIC-CXR 1K test, OpenI).

Such a file has one id column and one column per finding, named as in
:data:`ltvcli.findings.FINDINGS` or by an alias (``E-cardio``, ``Effusion``).
Rows are keyed either by image (every row labels one image) or by a group
of images (a MIMIC study, an OpenI report), whose label every image of the
group then gets. Values are ``1`` / ``0``; a blank cell means "not labelled"
and stays missing, so a partly labelled finding never counts as negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ltvcli.console import log
from ltvcli.dataset.format import MISSING
from ltvcli.dataset.labelsets import parse_label_cell
from ltvcli.errors import LtvError
from ltvcli.findings import FINDINGS, canonical, is_finding
from ltvcli.ingest import csvio


@dataclass(frozen=True)
class HandLabels:
    """The rows of a hand-labelled CSV: ids and int8 values [rows, 14] (1 / 0 / MISSING)."""

    path: Path
    key: str  # the id column the rows are keyed by
    per_image: bool  # keyed by image id (True) or by a group id such as study_id (False)
    ids: list[str]
    values: np.ndarray


def parse_binary(text: str) -> int | None:
    """One hand-label cell: '1'/'1.0' -> 1, '0'/'0.0' -> 0, blank -> MISSING, anything else -> None."""
    return parse_label_cell(text, {1.0: 1, 0.0: 0}, MISSING)


def read_hand_labels(path: str | Path, *, image_keys: Sequence[str], group_keys: Sequence[str]) -> HandLabels:
    """Read a hand-labelled CSV keyed by the first present of ``image_keys`` or else ``group_keys``."""
    path = Path(path)
    frame = csvio.read_table(path, what="ground-truth CSV")
    key = csvio.first_present(frame, [*image_keys, *group_keys], path, "id")
    csvio.require_nonblank(frame, key, path)
    csvio.require_unique(frame, key, path)
    columns = _finding_columns(frame, key, path)
    values = np.full((len(frame), len(FINDINGS)), MISSING, dtype=np.int8)
    parsed = csvio.parse_cells(frame, list(columns.values()), parse_binary, "1, 0 or blank", path)
    for j, finding in enumerate(columns):
        values[:, FINDINGS.index(finding)] = parsed[:, j]
    return HandLabels(path=path, key=key, per_image=key in image_keys, ids=frame[key].str.strip().tolist(),
                      values=values)


def _finding_columns(frame: pd.DataFrame, key: str, path: Path) -> dict[str, str]:
    """Canonical finding -> column name, in FINDINGS order; other columns are ignored with a note."""
    columns: dict[str, str] = {}
    ignored = []
    for column in frame.columns:
        if column == key:
            continue
        if not is_finding(column):
            ignored.append(column)
            continue
        finding = canonical(column)
        if finding in columns:
            raise LtvError(f"{path}: columns {columns[finding]!r} and {column!r} both name the finding {finding!r}")
        columns[finding] = column
    if not columns:
        raise LtvError(f"{path}: no finding columns; expected columns named as in: {', '.join(FINDINGS)}")
    if ignored:
        log(f"{path.name}: ignoring column(s) that are not findings: {', '.join(map(repr, ignored))}")
    return {finding: columns[finding] for finding in FINDINGS if finding in columns}


def align(labels: HandLabels, image_ids: Sequence[str], group_ids: Sequence[str],
          known_ids: set[str], normalize: Callable[[str], str] | None = None) -> np.ndarray:
    """Ground truth [N, 14] for the ingested images (MISSING where a row has none).

    ``known_ids`` are all ids of the key's kind in the source (including images
    the view filter dropped): an id outside it is a mistake (wrong file, wrong
    column) and is an error; a known id whose images were not ingested is only
    counted. ``normalize`` maps the file's ids to the spelling of
    ``image_ids`` / ``group_ids`` / ``known_ids`` (OpenI spells an image two
    ways); messages show the file's own spelling.
    """
    ids = [normalize(i) for i in labels.ids] if normalize else list(labels.ids)
    unknown = [original for original, i in zip(labels.ids, ids) if i not in known_ids]
    if unknown:
        raise LtvError(f"{labels.path}: {len(unknown)} {labels.key} value(s) are not in the source dataset "
                       f"(first: {unknown[0]!r}); check that the file belongs to these images")
    wanted = list(image_ids if labels.per_image else group_ids)
    rows = pd.Index(ids).get_indexer(wanted)
    truth = np.full((len(wanted), len(FINDINGS)), MISSING, dtype=np.int8)
    truth[rows >= 0] = labels.values[rows[rows >= 0]]
    unused = len(set(ids) - set(wanted))
    log(f"ground truth: {int((truth != MISSING).any(axis=1).sum())} image(s) labelled from {labels.path.name}"
        + (f"; {unused} row(s) belong to images that were not ingested (view filter)" if unused else ""))
    return truth
