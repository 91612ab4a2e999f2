"""``ltv info``: what is in a dataset folder, as tables or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import SPLITS, choice
from ltvcli.errors import OptionError
from ltvcli.findings import short_name

stdout = Console(soft_wrap=False)


@command(app, "info")
def info(
    dataset: Path = typer.Argument(..., help="A dataset folder written by `ltv ingest`."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as one JSON document."),
    split: str = typer.Option("train", metavar=choice(SPLITS), help="Split whose label counts the tables show."),
) -> None:
    """Counts per split and view, positives / uncertains per labeller, label-set disagreement."""
    from ltvcli.dataset import Dataset, summarize

    if split not in SPLITS:
        raise OptionError("split", f"{split!r}: expected one of {', '.join(SPLITS)}")
    summary = summarize(Dataset.open(dataset))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    print_summary(summary, split)


def print_summary(summary: dict, split: str = "train") -> None:
    """The tables of ``ltv info`` for a :func:`~ltvcli.dataset.summarize` dict (``ltv demo`` prints them too)."""
    _print_overview(summary)
    if "ground_truth_counts" in summary:
        _print_ground_truth(summary)
    if split in summary["label_counts"]:
        _print_label_sets(summary, split)
    if "labellers" in summary:
        _print_labellers(summary, split)


def _print_overview(summary: dict) -> None:
    pixels = (f"{summary['image_size']}px x {summary['channels']} channel(s)" if summary["has_images"]
              else "no images" if summary.get("features") else "label-only (no images)")
    if summary.get("features"):
        pixels += f", {summary['features']['dim']}-dim features ({summary['features']['model']})"
    # The heading is a line of its own: as the title of this narrow table it would wrap into a column.
    stdout.print(f"{summary['path']}: {summary['n_images']} images, {summary['task']}, {pixels}", highlight=False)
    table = Table()
    table.add_column("split")
    table.add_column("images", justify="right")
    for split, count in summary["splits"].items():
        table.add_row(split, str(count))
    for view, count in summary["views"].items():
        table.add_row(f"view {view or '(blank)'}", str(count))
    if summary["has_ground_truth"]:
        for split, count in summary["ground_truth"].items():
            table.add_row(f"ground truth, {split}", str(count))
    stdout.print(table)


def _print_ground_truth(summary: dict) -> None:
    counts = summary["ground_truth_counts"]
    table = Table(title="ground truth per split: positive / negative")
    table.add_column("class")
    for split in counts:
        table.add_column(split, justify="right")
    for cls in summary["classes"]:
        cells = [f"{counts[s][cls]['positive']}/{counts[s][cls]['negative']}" for s in counts]
        table.add_row(short_name(cls), *cells)
    stdout.print(table)


#: With more label sets (or labellers) than this, the tables turn: one row per label set, one column per class.
MAX_COLUMNS = 4


def _print_label_sets(summary: dict, split: str) -> None:
    if len(summary["label_sets"]) > MAX_COLUMNS:
        _print_label_sets_by_row(summary, split)
        return
    counts = summary["label_counts"][split]
    table = Table(title=f"label sets, {split} split: positive / negative / missing; disagreement")
    table.add_column("class")
    for name in summary["label_sets"]:
        table.add_column(name, justify="right")
    table.add_column("disagree", justify="right")
    for cls in summary["classes"]:
        cells = [f"{c['positive']}/{c['negative']}/{c['missing']}" for c in (counts[n][cls] for n in summary["label_sets"])]
        rate = summary["disagreement"][split][cls]
        table.add_row(short_name(cls), *cells, "-" if rate is None else f"{rate:.1%}")
    stdout.print(table)


def _print_label_sets_by_row(summary: dict, split: str) -> None:
    """Many label sets (each radiologist of a reader study): rows, and only the classes someone labelled."""
    counts = summary["label_counts"][split]
    labelled = {name: {cls: c["positive"] + c["negative"] for cls, c in counts[name].items()} for name in counts}
    names = [name for name in summary["label_sets"] if any(labelled[name].values())]
    if not names:
        return
    classes = [cls for cls in summary["classes"] if any(labelled[name][cls] for name in names)]
    idle = len(summary["label_sets"]) - len(names)
    table = Table(title=f"label sets, {split} split: positive / negative"
                        + (f" ({idle} label set(s) with no label here left out)" if idle else ""))
    table.add_column("label set", no_wrap=True)
    for cls in classes:
        table.add_column(short_name(cls), justify="right")
    for name in names:
        table.add_row(name, *[f"{counts[name][cls]['positive']}/{counts[name][cls]['negative']}"
                              if labelled[name][cls] else "-" for cls in classes])
    rates = summary["disagreement"][split]
    table.add_row("disagree", *["-" if rates[cls] is None else f"{rates[cls]:.1%}" for cls in classes])
    stdout.print(table)


def _print_labellers(summary: dict, split: str) -> None:
    if len(summary["labellers"]) > MAX_COLUMNS:
        _print_labellers_by_row(summary, split)
        return
    table = Table(title=f"raw labeller output, {split} split (the paper's Table 1): positive, uncertain, u/p")
    table.add_column("finding")
    for labeller in summary["labellers"]:
        for part in ("p", "u", "u/p"):  # labeller over part, two lines: the table fits 80 columns
            table.add_column(f"{labeller}\n{part}", justify="right")
    for cls in summary["classes"]:
        row = [short_name(cls)]
        for per_split in summary["labellers"].values():
            c = per_split.get(split, {}).get(cls)
            if c is None:
                row += ["-", "-", "-"]
            else:
                row += [str(c["positive"]), str(c["uncertain"]), "-" if c["u_p_ratio"] is None else f"{c['u_p_ratio']:.3f}"]
        table.add_row(*row)
    stdout.print(table)


def _print_labellers_by_row(summary: dict, split: str) -> None:
    """Many labellers: one row each, cells positive / uncertain, only labellers and classes with labels here."""
    per_labeller = {name: per_split[split] for name, per_split in summary["labellers"].items() if split in per_split}
    said = {name: {cls: c["positive"] + c["negative"] + c["uncertain"] for cls, c in counts.items()}
            for name, counts in per_labeller.items()}
    names = [name for name in per_labeller if any(said[name].values())]
    if not names:
        return
    classes = [cls for cls in summary["classes"] if any(said[name][cls] for name in names)]
    table = Table(title=f"raw labeller output, {split} split (the paper's Table 1): positive / uncertain")
    table.add_column("labeller", no_wrap=True)
    for cls in classes:
        table.add_column(short_name(cls), justify="right")
    for name in names:
        counts = per_labeller[name]
        table.add_row(name, *[f"{counts[cls]['positive']}/{counts[cls]['uncertain']}" if said[name][cls] else "-"
                              for cls in classes])
    stdout.print(table)
