"""``ltv refine``, ``ltv refine-sim`` and ``ltv ingest relabels``: thin wrappers over ``ltvcli.refine``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ltvcli.atomic import write_csv
from ltvcli.cli import choices
from ltvcli.cli.app import app, command, ingest_app
from ltvcli.console import log
from ltvcli.errors import OptionError
from ltvcli.outputs import REFINE_RESULTS, REFINE_SUMMARY, check_output

if TYPE_CHECKING:  # torch comes with it: `ltv --help` imports this module
    from ltvcli.refine import CoteachConfig

LABELS = typer.Option("majority", "--labels", help="Training label per entry: a label set name, or an aggregator "
                                                   "(majority, soft_mean, dawid_skene).")
ARCH = typer.Option("resnet18", "--arch", metavar=choices.choice(choices.ARCHS),
                    help="Backbone of both networks: tiny, resnet18, resnet34 or resnet50.")
EPOCHS = typer.Option(20, "--epochs", help="Co-teaching epochs.")
WARMUP = typer.Option(10, "--warmup", help="Epochs over which the forget rate ramps up; the VoG mix starts after.")
VOG_EPOCHS = typer.Option(5, "--vog-epochs", help="VoG = std of the final-layer gradient over this many last epochs.")
MIX = typer.Option(0.2, "--mix-ratio", help="Share of the kept entries taken by lowest VoG instead of smallest loss.")
FORGET = typer.Option(None, "--forget-rate", help="Share of each finding's labels to forget (default: estimated "
                                                  "from label-set disagreement).")
BATCH = typer.Option(64, "--batch-size", help="Batch size.")
LR = typer.Option(1e-3, "--lr", help="Adam learning rate.")
DEVICE = typer.Option("auto", "--device", metavar=choices.choice(choices.DEVICES),
                      help="Where to train: auto (CUDA if present), cuda or cpu.")
WORKERS = typer.Option(2, "--workers", help="Threads reading images ahead (0: read in the main thread).")
INPUT = typer.Option(None, "--input", metavar=choices.choice(choices.INPUTS),
                     help="What the networks read: images (through --arch) or the dataset's image features (through "
                          "--head); default: images where the dataset has them, else features.")
HEAD = typer.Option("linear", "--head", metavar=choices.choice(choices.HEADS),
                    help="With --input features: both networks are this head on the features, linear or mlp.")
CANDIDATES = typer.Option("suspected", "--candidates", metavar=choices.choice(choices.CANDIDATES),
                         help="Pool to pick from: suspected (labels co-teaching dropped) or all (every label "
                              "not answered yet).")


def _config(labels: str, arch: str, input: Optional[str], head: str, epochs: int, warmup: int,  # noqa: A002
            vog_epochs: int, mix_ratio: float, forget_rate: Optional[float], batch_size: int, lr: float, seed: int,
            device: str, workers: int) -> CoteachConfig:
    from ltvcli.refine import CoteachConfig  # imports torch

    return CoteachConfig(labels=labels, arch=arch, input=input, head=head, epochs=epochs, warmup=warmup,
                         vog_epochs=vog_epochs, mix_ratio=mix_ratio, forget_rate=forget_rate, batch_size=batch_size,
                         lr=lr, seed=seed, device=device, workers=workers)


@command(app, "refine")
def refine_command(
    dataset: Path = typer.Argument(..., help="A dataset folder with label sets."),
    budget: int = typer.Option(..., "--budget", help="At most this many labels in the queue."),
    out: Path = typer.Option(..., "--out", help="The queue, QUEUE.csv (the sheet goes to QUEUE.html)."),
    strategy: str = typer.Option("entropy", "--strategy", metavar="STRATEGY",
                                 help=f"Active-learning score: {' | '.join(choices.STRATEGIES)}."),
    candidates: str = CANDIDATES,
    run: Optional[Path] = typer.Option(None, "--run", help="Folder to save the selection phase in, or to reuse it "
                                                           "from when it is already there."),
    sheet: bool = typer.Option(True, "--sheet/--no-sheet", help="Also write the HTML thumbnail sheet."),
    labels: str = LABELS, arch: str = ARCH, input: Optional[str] = INPUT, head: str = HEAD,  # noqa: A002
    epochs: int = EPOCHS, warmup: int = WARMUP, vog_epochs: int = VOG_EPOCHS,
    mix_ratio: float = MIX, forget_rate: Optional[float] = FORGET, batch_size: int = BATCH, lr: float = LR,
    seed: int = typer.Option(0, "--seed", help="Seed of the networks, the batch order and random picks."),
    device: str = DEVICE, workers: int = WORKERS,
    force: bool = typer.Option(False, "--force", help="Replace an earlier queue (and sheet) at --out."),
) -> None:
    """Rank the training labels an expert should re-read (co-teaching + VoG, then an active-learning score)."""
    from ltvcli.refine import refine

    config = _config(labels, arch, input, head, epochs, warmup, vog_epochs, mix_ratio, forget_rate, batch_size, lr,
                     seed, device, workers)
    queue = refine(dataset, out, budget=budget, config=config, strategy=strategy, candidates=candidates, run=run,
                   sheet=sheet, force=force)
    sheet_note = f" and {out.with_suffix('.html')}" if sheet else ""
    log(f"wrote {out}{sheet_note}: {len(queue)} label(s) to re-read; fill the expert column, then run "
        f"`ltv ingest relabels {dataset} {out} --out NEW_DATASET`")


@command(app, "refine-sim")
def refine_sim_command(
    dataset: Path = typer.Argument(..., help="A dataset with ground truth on the train and test splits."),
    budget: int = typer.Option(..., "--budget", help="Labels the simulated expert re-reads per round."),
    out: Path = typer.Option(..., "--out", help="Per-seed results, RESULTS.csv (the summary: RESULTS_summary.csv)."),
    rounds: int = typer.Option(3, "--rounds", help="Relabelling rounds."),
    strategies: str = typer.Option("entropy,random", "--strategies",
                                   help="Comma-separated: entropy, least_confidence, margin, bald, coreset, loss, "
                                        "random, none (recalibrate without relabelling)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds; each trains phase 1 anew."),
    recal_epochs: int = typer.Option(5, "--recal-epochs", help="Epochs of recalibration after each round."),
    candidates: str = CANDIDATES,
    labels: str = LABELS, arch: str = ARCH, input: Optional[str] = INPUT, head: str = HEAD,  # noqa: A002
    epochs: int = EPOCHS, warmup: int = WARMUP, vog_epochs: int = VOG_EPOCHS,
    mix_ratio: float = MIX, forget_rate: Optional[float] = FORGET, batch_size: int = BATCH, lr: float = LR,
    device: str = DEVICE, workers: int = WORKERS,
    force: bool = typer.Option(False, "--force", help="Replace earlier results at --out."),
) -> None:
    """Simulate the expert with the ground truth: label accuracy and test AUC/accuracy per round, vs random."""
    from ltvcli.refine import simulate_refinement, summarize

    if out.suffix.lower() != ".csv":
        raise OptionError("out", f"{out}: results are written as CSV; give a path ending in .csv")
    summary_path = out.with_name(out.stem + "_summary.csv")
    check_output(out, REFINE_RESULTS, inputs=[dataset], force=force)
    check_output(summary_path, REFINE_SUMMARY, inputs=[dataset], force=force)
    config = _config(labels, arch, input, head, epochs, warmup, vog_epochs, mix_ratio, forget_rate, batch_size, lr,
                     0, device, workers)
    results = simulate_refinement(dataset, config, budget=budget, rounds=rounds, strategies=_names(strategies),
                                  seeds=_seeds(seeds), recal_epochs=recal_epochs, candidates=candidates)
    summary = summarize(results)
    write_csv(out, results)
    write_csv(summary_path, summary)
    Console().print(summary_table(summary))


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise OptionError("seeds", f"{text!r}: expected comma-separated integers such as 0,1,2") from None


def summary_table(summary: pd.DataFrame) -> Table:
    """The summary as a rich table: mean ± sd over seeds, and the paired difference to random."""
    table = Table(title="Simulated refinement (mean ± sd over seeds)")
    vs_random = "test_auc_vs_random" in summary.columns
    columns = ["strategy", "round", "labels re-read", "errors fixed", "label accuracy", "test AUC", "test accuracy"]
    for name in columns + (["AUC vs random (wins)"] if vs_random else []):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for _, row in summary.iterrows():
        cells = [row["strategy"], str(row["round"]), f"{row['budget']:.0f}", f"{row['corrected']:.1f}",
                 _pm(row, "label_accuracy"), _pm(row, "test_auc"), _pm(row, "test_accuracy")]
        if vs_random:
            cells.append(f"{row['test_auc_vs_random']:+.3f} ({row['test_auc_wins']}/{row['seeds']})")
        table.add_row(*cells)
    return table


def _pm(row: pd.Series, metric: str) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_std"]
    return f"{mean:.3f}" if not math.isfinite(sd) else f"{mean:.3f} ± {sd:.3f}"


@command(ingest_app, "relabels")
def relabels_command(
    dataset: Path = typer.Argument(..., help="The dataset the queue was made from."),
    queue: Path = typer.Argument(..., help="The queue CSV with the expert column filled in (1/0, or a class name)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a new dataset folder here and leave DATASET as "
                                                           "it was (default: update DATASET in place, atomically)."),
    force: bool = typer.Option(False, "--force", help="Replace the ltv dataset already at --out."),
) -> None:
    """Import an expert's answers as trusted labels: every label set carries them, label set 'expert' records them."""
    from ltvcli.refine import import_relabels

    result = import_relabels(dataset, queue, out, force=force)
    log(f"train on them with `ltv train {result.path} ...`")
