"""The relabel queue: the entries an expert should re-read, best first, as a CSV and a thumbnail sheet.

One row per entry (an (image, finding) pair, or an image in a multi-class
dataset), at most ``budget`` rows, highest score first. The CSV carries only
the dataset's own image ids (never subject or study ids) and an empty
``expert`` column: the expert writes the answer there, and ``ltv ingest
relabels`` reads it back. The HTML sheet shows the same rows with each
image, so the expert can work through it in a browser.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ltvcli.atomic import write_csv, write_text
from ltvcli.dataset import Dataset
from ltvcli.dataset.format import MISSING
from ltvcli.errors import OptionError
from ltvcli.refine.coteach import Selection
from ltvcli.refine.scores import pick

CANDIDATES = ("suspected", "all")
ANSWER_COLUMN = "expert"
SET_PREFIX = "set:"
THUMBNAIL = 160


def candidate_entries(selection: Selection, candidates: str) -> tuple[np.ndarray, np.ndarray]:
    """(candidates, covered) [n, G]: the pool to pick from, and what counts as already settled.

    ``suspected`` (the paper): entries co-teaching dropped; settled = kept or
    answered. ``all``: every labelled entry not answered yet; settled = answered.
    """
    if candidates not in CANDIDATES:
        raise OptionError("candidates", f"{candidates!r}: expected one of {', '.join(CANDIDATES)}")
    pool = selection.suspects if candidates == "suspected" else selection.valid & ~selection.trusted
    return pool, selection.valid & ~pool


def build_queue(dataset: Dataset, selection: Selection, strategy: str, budget: int, *,
                candidates: str = "suspected", seed: int = 0) -> pd.DataFrame:
    """Score the candidates with ``strategy`` and lay out the best ``budget`` of them as queue rows."""
    pool, covered = candidate_entries(selection, candidates)
    positions, groups, scores = pick(strategy, pool, budget, selection.outputs, covered=covered,
                                     multilabel=dataset.is_multilabel, seed=seed)
    percentiles = _loss_percentiles(selection.outputs.loss, selection.valid)
    rows = [_row(dataset, selection, int(p), int(g), float(s), strategy, percentiles[p, g], int(pool.sum()))
            for p, g, s in zip(positions, groups, scores)]
    frame = pd.DataFrame(rows, columns=queue_columns(dataset))
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def queue_columns(dataset: Dataset) -> list[str]:
    """Columns after ``rank``; one ``set:<name>`` column per label set."""
    return (["image_id", "finding", "label"] + [SET_PREFIX + name for name in dataset.label_set_names]
            + ["probability", "model", "score", "strategy", "reason", ANSWER_COLUMN])


def _row(dataset: Dataset, selection: Selection, p: int, g: int, score: float, strategy: str,
         percentile: float, pool_size: int) -> list:
    row = int(selection.rows[p])
    classes, probs = dataset.classes, selection.outputs.probs[p]
    if dataset.is_multilabel:
        finding, label = classes[g], int(selection.targets[p, g] >= 0.5)
        votes = ["" if v == MISSING else int(v) for v in dataset.labels[row, :, g]]
        probability, model = float(probs[g]), int(probs[g] >= 0.5)
    else:
        cls = int(selection.targets[p].argmax())
        finding = label = classes[cls]
        votes = ["" if v == MISSING else classes[int(v)] for v in dataset.labels[row]]
        probability, model = float(probs[cls]), classes[int(probs.argmax())]
    loss = float(selection.outputs.loss[p, g])
    why = (f"{'kept' if selection.kept[p, g] else 'dropped'} by co-teaching (loss {loss:.2f}, above "
           f"{percentile:.0%} of {finding} labels); " + _strategy_reason(strategy, score, probability, finding,
                                                                          pool_size))
    return [dataset.image_ids[row], finding, label, *votes, round(probability, 4), model, round(score, 6), strategy,
            why, ""]


def _strategy_reason(strategy: str, score: float, probability: float, finding: str, pool_size: int) -> str:
    if strategy == "entropy":
        return f"entropy {score:.3f}: the model is unsure (p = {probability:.2f})"
    if strategy == "least_confidence":
        return f"least confidence {score:.3f}: its most likely answer has only {1 - score:.2f}"
    if strategy == "margin":
        return f"margin score {score:.3f}: its two most likely answers are {1 - score:.2f} apart"
    if strategy == "bald":
        return f"BALD {score:.3f}: dropout samples of the model disagree"
    if strategy == "coreset":
        return f"coreset distance {score:.2f}: unlike every settled {finding} label"
    if strategy == "loss":
        return f"loss {score:.3f}: the model contradicts this label (p = {probability:.2f})"
    return f"random pick among {pool_size} candidates (the baseline)"


def _loss_percentiles(loss: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Share of the same finding's labelled entries with a smaller loss, per entry [n, G]."""
    out = np.zeros(loss.shape)
    for g in range(loss.shape[1]):
        values = np.sort(loss[valid[:, g], g])
        out[:, g] = np.searchsorted(values, loss[:, g], side="left") / max(len(values), 1)
    return out


def check_queue_path(path: Path) -> None:
    if Path(path).suffix.lower() != ".csv":
        raise OptionError("out", f"{path}: the queue is written as CSV; give a path ending in .csv")


def write_queue(frame: pd.DataFrame, path: Path) -> None:
    """Write the queue CSV atomically."""
    write_csv(path, frame)


def write_sheet(dataset: Dataset, frame: pd.DataFrame, path: Path) -> None:
    """A self-contained HTML page: one row per queue entry with its image (PNG inlined) and the evidence."""
    set_columns = [c for c in frame.columns if c.startswith(SET_PREFIX)]
    rows_by_id = dict(zip(dataset.image_ids, range(len(dataset))))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ["#", "image", "image id", "finding", "training label"]
                   + [c[len(SET_PREFIX):] for c in set_columns] + ["model p", "score", "why"])
    body = []
    for _, item in frame.iterrows():
        image = _thumbnail(dataset, rows_by_id[item["image_id"]])
        texts = [item["image_id"], item["finding"], item["label"], *[item[c] for c in set_columns],
                 f'{item["probability"]:.3f}', f'{item["score"]:.4g}', item["reason"]]
        body.append(f"<tr>{_cell(item['rank'])}<td><img alt=\"\" src=\"data:image/png;base64,{image}\"></td>"
                    + "".join(_cell(text) for text in texts) + "</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ltv relabel queue</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px;vertical-align:middle}} img{{width:{THUMBNAIL}px;image-rendering:auto}}</style>
</head><body>
<h1>Relabel queue: {len(frame)} label(s)</h1>
<p>Write your answer in the <code>{ANSWER_COLUMN}</code> column of the queue CSV (1 or 0 for a finding,
the class name for a multi-class image; leave it blank to skip), then run
<code>ltv ingest relabels DATASET QUEUE.csv --out NEW_DATASET</code>.</p>
<table><tr>{head}</tr>
{chr(10).join(body)}
</table></body></html>
"""
    write_text(path, page)


def _cell(value) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _thumbnail(dataset: Dataset, row: int) -> str:
    """The cached image of ``row`` as a base64 PNG, THUMBNAIL pixels wide."""
    image = Image.fromarray(np.asarray(dataset.images[row]))
    image = image.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
