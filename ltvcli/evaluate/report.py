"""Rendering an :class:`~ltvcli.evaluate.evaluate.EvaluationResult`: terminal, CSV, JSON, Markdown, ROC PNGs.

The terminal table and the Markdown table are the same grid (rows:
findings and the average, columns: label sets, fused labels, then models,
cells ``AUC [lo, hi]``), built once by :func:`grid`, so what a user sees and
what they paste into a paper agree; so are the per-finding tables of
accuracy, sensitivity and specificity (:func:`binary_rows`). CSV and JSON
carry the full-precision numbers. Every file goes through :mod:`ltvcli.atomic`.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ltvcli.atomic import atomic_path, replace_dir, write_csv, write_json, write_text, writing
from ltvcli.console import log
from ltvcli.dataset.format import MISSING
from ltvcli.evaluate.binary import RATES
from ltvcli.evaluate.evaluate import ACCURACY, AVERAGE, EvaluationResult
from ltvcli.findings import short_name
from ltvcli.outputs import EVALUATION, check_output

NOT_COMPUTABLE = "n/a"
#: How each kind of column is named under its name in a table header.
KIND_NAMES = {"labeller": "label set", "fused": "fused", "model": "model"}
#: With more label sets than this, the accuracy tables show their minimum, median and maximum (binary.csv has each).
SUMMARISED_LABEL_SETS = 8


# ----------------------------------------------------------------------------- the grid
def format_cell(value: float, lo: float, hi: float) -> str:
    """``0.914 [0.890, 0.936]``; the interval is left out without resamples, ``n/a`` when not computable."""
    if not _finite(value):
        return NOT_COMPUTABLE
    if not (_finite(lo) and _finite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _finite(value) -> bool:
    return value is not None and not pd.isna(value) and math.isfinite(float(value))


def _row_label(result: EvaluationResult, row: pd.Series) -> str:
    if result.task == "multilabel":
        return AVERAGE if row.finding == AVERAGE else short_name(row.finding)
    return "Accuracy" if row.metric == ACCURACY else f"Recall {row['class']}"


def grid(result: EvaluationResult, intervals: bool = True) -> pd.DataFrame:
    """Formatted cells: index = row labels (findings, then Average; or Accuracy, recalls), columns = columns.

    ``intervals=False`` leaves the confidence intervals out (a narrow terminal).
    """
    value = "auc" if result.task == "multilabel" else "value"
    nan = float("nan")
    frame = result.scores.assign(row=[_row_label(result, r) for _, r in result.scores.iterrows()],
                                 cell=[format_cell(r[value], r.lo, r.hi) if intervals else format_cell(r[value], nan, nan)
                                       for _, r in result.scores.iterrows()])
    order = list(dict.fromkeys(frame.row))
    names = [c.name for c in result.data.columns]
    return frame.pivot(index="row", columns="model", values="cell").loc[order, names]


def _comparison_rows(result: EvaluationResult) -> list[list[str]]:
    rows = []
    for _, r in result.comparison.iterrows():
        label = short_name(r.row) if result.task == "multilabel" and r.row != AVERAGE else r.row
        p = NOT_COMPUTABLE if not _finite(r.p_value) else ("<0.001" if r.p_value < 0.001 else f"{r.p_value:.3f}")
        a, b = (f"{v:.3f}" if _finite(v) else NOT_COMPUTABLE for v in (r.value_a, r.value_b))
        rows.append([label, a, b, _signed(format_cell(r.difference, r.lo, r.hi), r.difference), p])
    return rows


def _signed(text: str, difference: float) -> str:
    return f"+{text}" if _finite(difference) and difference >= 0 else text


def _notes(result: EvaluationResult) -> list[str]:
    """Footnotes (why a cell is empty, what was left out), one per note and set of columns, naming the rows
    (findings) and the columns it concerns."""
    by_note: dict[tuple[str, str], list[str]] = {}
    for _, r in result.scores.iterrows():
        if r.note:
            by_note.setdefault((_row_label(result, r), r.note), []).append(r.model)
    everyone = len(result.data.columns)
    by_columns: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # a sparse reader's note on every finding: one line
    for (label, note), models in by_note.items():
        by_columns.setdefault((note, tuple(models)), []).append(label)
    return [f"{', '.join(labels)}: {note}" + ("" if len(models) == everyone else f" ({', '.join(models)})")
            for (note, models), labels in by_columns.items()]


# ----------------------------------------------------------------------------- terminal
def print_result(result: EvaluationResult, console: Console | None = None) -> None:
    """The results table (and comparison, confusion matrices) on the terminal."""
    console = console or Console(soft_wrap=False)
    for table in score_tables(result, console):
        console.print(table)
    for line in _notes(result):
        console.print(f"  note: {escape(line)}", highlight=False)
    if result.comparison is not None:
        a, b = result.settings["compare"]
        test = result.comparison.test.iloc[0]
        comparison = Table(title=f"{escape(a)} vs {escape(b)}: paired difference (a - b) [{_level(result)} CI], "
                                 f"{test} p-value")
        for header in ("", a, b, "difference", "p-value"):
            comparison.add_column(escape(header), justify="left" if header == "" else "right")
        for row in _comparison_rows(result):
            comparison.add_row(*map(escape, row))
        console.print(comparison)
    for table in binary_tables(result, console):
        console.print(table)
    kinds = {c.name: c.kind for c in result.data.columns}
    for name, matrix in result.confusion.items():
        if kinds[name] == "model":
            console.print(_confusion_table(name, matrix, result.data.classes))


def score_tables(result: EvaluationResult, console: Console) -> list[Table]:
    """The grid as tables that fit ``console.width`` without truncating a cell.

    One table with the confidence intervals when it fits; otherwise the
    values alone, and where even those are too wide, one table for the
    label sets and one for the models, each cut into as many tables as it
    takes (a cell cut to "0.8…" tells nothing; ``--out`` keeps everything).
    """
    metric = "AUC" if result.task == "multilabel" else "accuracy / recall"
    about = f"{result.settings['n_images']} images: {result.settings['source']}"
    with_intervals = _score_table(result, grid(result), f"{metric} [{_level(result)} CI], {about}")
    if _natural_width(console, with_intervals) <= console.width:
        return [with_intervals]
    cells = grid(result, intervals=False)
    title = f"{metric} (intervals: widen the terminal or see --out files), {about}"
    whole = _score_table(result, cells, title)
    if _natural_width(console, whole) <= console.width:
        return [whole]

    def fits(names: list[str]) -> bool:
        return _natural_width(console, _score_table(result, cells[names], "")) <= console.width

    kinds = {c.name: c.kind for c in result.data.columns}
    tables = []
    for kind, label in (("labeller", "label sets"), ("fused", "fused labels"), ("model", "models")):
        for part in _runs_that_fit([name for name in cells.columns if kinds[name] == kind], fits):
            tables.append(_score_table(result, cells[part], f"{title}; {label}" if not tables else label))
    return tables


def _runs_that_fit(names: list[str], fits) -> list[list[str]]:
    """``names`` cut into consecutive runs, each as long as ``fits(run)`` allows (at least one name)."""
    runs: list[list[str]] = []
    for name in names:
        if runs and fits(runs[-1] + [name]):
            runs[-1].append(name)
        else:
            runs.append([name])
    return runs


def _natural_width(console: Console, table: Table) -> int:
    """The width ``table`` takes with no cell wrapped or cut (rich clamps its own measure to the console)."""
    return console.measure(table, options=console.options.update_width(1 << 16)).maximum


def _score_table(result: EvaluationResult, cells: pd.DataFrame, title: str) -> Table:
    """One rich table of ``cells`` (rows: findings and the average; columns: label sets and models)."""
    kinds = {c.name: c.kind for c in result.data.columns}
    table = Table(title=title)
    table.add_column("finding" if result.task == "multilabel" else "metric")
    for name in cells.columns:
        table.add_column(f"{escape(name)}\n[dim]{KIND_NAMES[kinds[name]]}[/dim]", justify="right")
    for label, row in cells.iterrows():
        if label == AVERAGE:
            table.add_section()
        table.add_row(escape(label), *row.tolist())
    return table


def binary_tables(result: EvaluationResult, console: Console) -> list[Table]:
    """Accuracy, sensitivity and specificity of the label sets and fused labels, one table per finding.

    With their intervals when every table fits ``console.width``, else the values alone (``--out`` keeps them).
    """
    if result.binary is None or result.binary.empty:
        return []
    for intervals in (True, False):
        tables = [_binary_table(result, finding, intervals) for finding in dict.fromkeys(result.binary.finding)]
        if not intervals or all(_natural_width(console, t) <= console.width for t in tables):
            break
    ci = f"[{_level(result)} CI]" if intervals else "(intervals: widen the terminal or see --out files)"
    tables[0].title = (f"Labels against the ground truth: accuracy, sensitivity, specificity {ci}, "
                       f"{result.settings['n_images']} images: {result.settings['source']}\n{tables[0].title}")
    return tables


def _binary_table(result: EvaluationResult, finding: str, intervals: bool) -> Table:
    title, rows = binary_rows(result, finding, intervals)
    table = Table(title=escape(title))
    for header in ("", *BINARY_HEADERS):
        table.add_column(header, justify="left" if header == "" else "right")
    for row in rows:
        if row is SECTION:
            table.add_section()
        else:
            table.add_row(*map(escape, row))
    return table


#: Headers of the accuracy tables, after the column name; and the separator between label sets and fused labels.
BINARY_HEADERS = ("n", "accuracy", "sensitivity", "specificity")
SECTION = ["---"]


def binary_rows(result: EvaluationResult, finding: str, intervals: bool = True) -> tuple[str, list[list[str]]]:
    """The title and rows of one finding's accuracy table: each label set (or, past
    :data:`SUMMARISED_LABEL_SETS`, their min, median and max), then each fused labels file.

    A row is the column's name, the images it labels and the three rates; :data:`SECTION` separates the groups.
    """
    frame = result.binary[result.binary.finding == finding]
    j = result.data.classes.index(finding)
    truth = result.data.truth[:, j]
    title = f"{short_name(finding)}: {int((truth == 1).sum())} positive, {int((truth == 0).sum())} negative images"
    nan = float("nan")

    def cells(row: pd.Series) -> list[str]:
        return [str(row.n), *(format_cell(row[rate], row[f"{rate}_lo"] if intervals else nan,
                                          row[f"{rate}_hi"] if intervals else nan) for rate in RATES)]

    sets, fused = frame[frame.kind == "labeller"], frame[frame.kind != "labeller"]
    rows: list[list[str]] = []
    if len(sets) > SUMMARISED_LABEL_SETS:
        scored = sets[sets.n > 0]
        for label, statistic in (("min", np.nanmin), ("median", np.nanmedian), ("max", np.nanmax)):
            values = [f"{statistic(scored[rate]):.3f}" if scored[rate].notna().any() else NOT_COMPUTABLE
                      for rate in RATES]
            name = f"{label} of {len(scored)} label sets" if label == "min" else f"{label}"
            rows.append([name, f"{statistic(scored.n):.0f}" if len(scored) else "0", *values])
    else:
        rows += [[row.model, *cells(row)] for _, row in sets.iterrows()]
    if rows and len(fused):
        rows.append(SECTION)
    rows += [[row.model, *cells(row)] for _, row in fused.iterrows()]
    return title, rows


def _confusion_table(name: str, matrix: np.ndarray, classes: list[str]) -> Table:
    table = Table(title=f"{escape(name)}: confusion matrix (rows: true class, columns: predicted)")
    table.add_column("")
    for cls in classes:
        table.add_column(escape(cls), justify="right")
    for cls, row in zip(classes, matrix):
        table.add_row(escape(cls), *map(str, row))
    return table


def _level(result: EvaluationResult) -> str:
    return f"{result.settings['level']:.0%}" if result.settings["n_boot"] else "no"


# ----------------------------------------------------------------------------- files
def write_outputs(result: EvaluationResult, out: str | Path, *, force: bool = False) -> list[Path]:
    """Write the CSV, JSON, Markdown (and ROC PNGs / confusion CSVs) into the folder ``out``; return the paths.

    The files are written into a temporary folder next to ``out`` that then
    replaces it in one rename, so ``out`` never holds a mix of two
    evaluations. An earlier evaluation at ``out`` is replaced only with
    ``force``; any other folder never is (:func:`ltvcli.outputs.check_output`).
    """
    out = check_output(out, EVALUATION, force=force)
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        written = _write_files(result, staging)
        replace_dir(staging, out, EVALUATION.marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"wrote {len(written)} files to {out}")
    return [out / path.relative_to(staging) for path in written]


def _write_files(result: EvaluationResult, folder: Path) -> list[Path]:
    stem = "auc" if result.task == "multilabel" else "accuracy"
    written = [folder / f"{stem}.csv", folder / "table.md", folder / EVALUATION.marker]
    write_csv(written[0], _export(result.scores))
    write_text(written[1], to_markdown(result))
    if result.comparison is not None:
        written.append(folder / "comparison.csv")
        write_csv(written[-1], result.comparison)
    if result.binary is not None:
        written.append(folder / "binary.csv")
        write_csv(written[-1], result.binary)
    for name, matrix in result.confusion.items():
        written.append(folder / f"confusion_{slug(name)}.csv")
        write_csv(written[-1], pd.DataFrame(matrix, index=result.data.classes, columns=result.data.classes)
                  .rename_axis("true class").reset_index())
    if result.task == "multilabel":
        written += write_roc_curves(result, folder / "roc")
    write_json(written[2], to_json(result))  # last: the file that marks a finished evaluation folder
    return written


def _export(scores: pd.DataFrame) -> pd.DataFrame:
    """Counts as integers with blanks (not 12.0 / NaN) in the CSV."""
    return scores.astype({c: "Int64" for c in ("n_pos", "n_neg", "n") if c in scores})


def slug(name: str) -> str:
    """A file-name-safe form of a finding or column name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "column"


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts at full precision: NaN / NA become null, NumPy scalars Python numbers."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{key: value.item() if isinstance(value, np.generic) else value for key, value in row.items()}
            for row in rows]


def to_json(result: EvaluationResult) -> dict:
    """The whole result as one JSON document."""
    return {
        "task": result.task,
        "settings": result.settings,
        "classes": result.data.classes,
        "columns": [{"name": c.name, "kind": c.kind} for c in result.data.columns],
        "scores": _records(_export(result.scores)),
        "comparison": None if result.comparison is None else _records(result.comparison),
        "binary": None if result.binary is None else _records(result.binary),
        "confusion": {name: matrix.tolist() for name, matrix in result.confusion.items()},
    }


def to_markdown(result: EvaluationResult) -> str:
    """A paste-ready Markdown table like the paper's Table 4, plus the comparison and notes."""
    cells = grid(result)
    kinds = {c.name: c.kind for c in result.data.columns}
    corner = "AUC" if result.task == "multilabel" else "Metric"
    settings = result.settings
    cells_are = (f"value [{_level(result)} bootstrap CI, {settings['n_boot']} stratified resamples, seed "
                 f"{settings['seed']}]" if settings["n_boot"] else "value (no bootstrap intervals)")
    lines = [f"Evaluated on {settings['n_images']} images: {settings['source']}. Cells: {cells_are}.", ""]
    groups = {"labeller": "label sets", "fused": "fused labels", "model": "models"}
    lines += [f"{title.capitalize()}: {', '.join(n for n in cells.columns if kinds[n] == kind)}."
              for kind, title in groups.items() if kind in kinds.values()] + [""]
    lines += _md_table([corner, *cells.columns], [[label, *row.tolist()] for label, row in cells.iterrows()],
                       bold_row=AVERAGE)
    if result.comparison is not None:
        a, b = result.settings["compare"]
        test = result.comparison.test.iloc[0]
        lines += ["", f"Paired comparison, {a} - {b} ({test} p-value):", ""]
        lines += _md_table(["", a, b, "difference", "p-value"], _comparison_rows(result), bold_row=AVERAGE)
    notes = _notes(result)
    if notes:
        lines += ["", *(f"- {line}" for line in notes)]
    if result.binary is not None and not result.binary.empty:
        lines += ["", f"Labels against the ground truth: accuracy, sensitivity and specificity ({cells_are}); n = "
                      "the images a column labels."]
        for finding in dict.fromkeys(result.binary.finding):
            title, rows = binary_rows(result, finding)
            lines += ["", f"{title}:", ""]
            lines += _md_table(["", *BINARY_HEADERS], [row for row in rows if row is not SECTION], bold_row="")
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]], bold_row: str) -> list[str]:
    lines = ["| " + " | ".join(map(_md_escape, header)) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        label = f"**{row[0]}**" if row[0] == bold_row else row[0]
        lines.append("| " + " | ".join(map(_md_escape, [label, *row[1:]])) + " |")
    return lines


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


# ----------------------------------------------------------------------------- ROC curves
def write_roc_curves(result: EvaluationResult, folder: Path) -> list[Path]:
    """One PNG per computable finding: a ROC curve per model, each label set as its single operating point."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, renders with Agg
    from sklearn.metrics import roc_curve

    data = result.data
    written = []
    for j, cls in enumerate(data.classes):
        labelled = data.truth[:, j] != MISSING
        y = data.truth[labelled, j]
        if y.size == 0 or y.min() == y.max():  # no trusted label (NIH's expert sets cover 4 findings) or one class
            continue
        figure = Figure(figsize=(5, 5), dpi=100)
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        for column in data.columns:
            scores = column.scores[labelled, j]
            valid = ~np.isnan(scores)
            if np.unique(y[valid]).size < 2:
                continue
            auc = result.value(column.name, cls)
            if column.kind != "labeller":
                fpr, tpr, _ = roc_curve(y[valid], scores[valid])
                what = "fused labels, " if column.kind == "fused" else ""
                axes.plot(fpr, tpr, label=f"{column.name} ({what}AUC {auc:.3f})")
            else:
                positive = scores[valid] >= 0.5
                fpr = float(positive[y[valid] == 0].mean())
                tpr = float(positive[y[valid] == 1].mean())
                axes.plot([fpr], [tpr], marker="o", linestyle="none", clip_on=False,
                          label=f"{column.name} (label set, AUC {auc:.3f})")
        axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
                 title=f"{short_name(cls)}: {int((y == 1).sum())} positives, {int((y == 0).sum())} negatives")
        if axes.get_legend_handles_labels()[0]:  # no line when no column scores this finding
            axes.legend(loc="lower right", fontsize="small")
        target = folder / f"roc_{slug(cls)}.png"
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format="png")
        written.append(target)
    return written
