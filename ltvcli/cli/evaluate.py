"""``ltv evaluate``: runs, prediction tables, fused labels and label sets scored against ground truth (Table 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import CHECKPOINTS, DEVICES, SPLITS, UNCERTAIN_POLICIES, UNKNOWN_IDS, choice
from ltvcli.outputs import EVALUATION, check_output


@command(app, "evaluate")
def evaluate_command(
    runs: Optional[list[str]] = typer.Argument(
        None, metavar="[NAME=]RUN", help="Run folders from `ltv train` (their best checkpoint); NAME=RUN names the "
                                          "column."),
    dataset: Optional[Path] = typer.Option(
        None, "--dataset", "-d", help="Dataset folder: images for the runs, its label sets, its ground truth."),
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="Hand-labelled ground truth CSV: image (or image_id/dicom_id, or study_id) and "
                               "one 1/0/blank column per finding. Replaces the dataset's ground truth."),
    predictions: Optional[list[str]] = typer.Option(
        None, "--predictions", "-p", metavar="[NAME=]FILE",
        help="A table of image id and one probability column per finding (repeatable; the column is named NAME or "
             "the file stem)."),
    fused: Optional[list[str]] = typer.Option(
        None, "--fused", metavar="[NAME=]FILE",
        help="Fused labels from `ltv export-labels` (of a run, or of the dataset with --aggregator), repeatable: "
             "refined scored by AUC, binarised by accuracy, sensitivity and specificity, beside the label sets."),
    label_sets: Optional[str] = typer.Option(
        None, "--label-sets", metavar="NAMES",
        help="The dataset's label sets to score: comma-separated names or patterns (reader*); default: all."),
    policy: Optional[str] = typer.Option(
        None, "--policy", metavar=choice(UNCERTAIN_POLICIES),
        help="Score one label set per labeller: the one of this uncertainty policy where a labeller has several."),
    compare: Optional[tuple[str, str]] = typer.Option(
        None, "--compare", metavar="NAME NAME",
        help="Two column names to compare (default: the first two models, then fused labels files)."),
    n_boot: int = typer.Option(1000, "--bootstrap", help="Stratified bootstrap resamples (0: no intervals)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the resamples."),
    unknown_ids: str = typer.Option(
        "error", "--unknown-ids", metavar=choice(UNKNOWN_IDS),
        help="Label-file ids that match no image: error, or warn (leave them out)."),
    split: str = typer.Option("test", "--split", metavar=choice(SPLITS + ("all",)),
                              help="Split scored against the dataset's own ground truth (all: every split)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder for auc.csv/accuracy.csv, binary.csv, evaluation.json, table.md, "
                                  "roc/*.png."),
    checkpoint: str = typer.Option("best", "--checkpoint", metavar=choice(CHECKPOINTS),
                                   help="Which checkpoint of each run to score."),
    device: str = typer.Option("auto", "--device", metavar=choice(DEVICES),
                               help="Device for the runs' predictions: auto (a GPU when there is one), cuda or cpu."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier evaluation folder at --out."),
) -> None:
    """ROC AUC per finding with bootstrap CIs (accuracy for multi-class), paired comparison with DeLong's test.

    Label sets and fused labels are also scored as 0/1 labels: accuracy, sensitivity and specificity per finding.
    """
    from ltvcli.evaluate import evaluate, print_result, write_outputs
    from ltvcli.evaluate.tables import split_name

    if out is not None:  # before the work: a bad --out must not cost the evaluation
        read = [split_name(spec)[1] for spec in [*(runs or ()), *(predictions or ()), *(fused or ())]] + [dataset,
                                                                                                         labels]
        check_output(out, EVALUATION, inputs=read, force=force)
    result = evaluate(runs or (), dataset=dataset, labels=labels, predictions=predictions or (), fused=fused or (),
                      label_sets=label_sets, policy=policy,
                      compare=compare if compare and compare[0] is not None else None, split=split,
                      n_boot=n_boot, seed=seed, unknown_ids=unknown_ids, checkpoint=checkpoint, device=device)
    print_result(result)
    if out is not None:
        write_outputs(result, out, force=force)
