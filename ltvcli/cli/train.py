"""``ltv train``, ``ltv export-labels`` and ``ltv predict``: thin wrappers over ``ltvcli.train``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import CHECKPOINTS, DEVICES, SPLITS, choice
from ltvcli.console import log

_CHECKPOINT_HELP = "Which checkpoint: best (best validation score) or last."


@command(app, "train")
def train(
    dataset: Path = typer.Argument(..., help="A dataset folder written by `ltv ingest`."),
    out: Path = typer.Option(..., "--out", help="The run folder to create (or continue with --resume)."),
    method: str = typer.Option("ltv", help="Fusion method: ltv, single, mv or cm."),
    epochs: int = typer.Option(10, help="Epochs to train (with --resume: the new total)."),
    arch: str = typer.Option("resnet50", help="Backbone: tiny, resnet18, resnet34 or resnet50."),
    pretrained: Optional[Path] = typer.Option(None, help="A local torchvision state dict for the backbone."),
    seed: int = typer.Option(0, help="Seed for initialisation, shuffling and tie-breaking."),
    batch_size: int = typer.Option(32, "--batch-size", help="Global batch size (split across GPUs)."),
    lr: float = typer.Option(1e-4, help="Adam learning rate (the paper's beta)."),
    label_set: Optional[str] = typer.Option(None, "--label-set",
                                            help="single: a label set name, or soft_mean / dawid_skene / majority."),
    alpha: float = typer.Option(0.2, help="ltv: learning rate of the virtual (meta) step."),
    k: float = typer.Option(50.0, "--k", help="ltv: sharpness of the differentiable binarisation."),
    threshold: float = typer.Option(0.5, help="ltv: threshold T of the differentiable binarisation."),
    meta_scope: str = typer.Option("all", "--meta-scope",
                                   help="ltv: parameters the virtual step updates: all (the paper) or last."),
    vote: str = typer.Option("paper", help="ltv: paper (the paper's attention vote) or reliability (a "
                                           "Dawid-Skene prior corrected per sample, trained to seek the truth)."),
    trusted: Optional[str] = typer.Option(None, help="ltv --vote reliability: a label set to treat as the truth "
                                                     "where it has labels (default: expert, if present)."),
    model_evidence: float = typer.Option(0.0, "--model-evidence",
                                         help="ltv --vote reliability: weight (0-1) of the model's own prediction "
                                              "in the posterior of the truth (0: the labels alone; 1: the model "
                                              "replaces the class prior, Raykar et al. 2010)."),
    cm_trace: float = typer.Option(0.01, "--cm-trace", help="cm: weight of the confusion-matrix trace term."),
    text: bool = typer.Option(False, "--text", help="Also feed each image's report embedding (from `ltv "
                                                    "embed-reports`) through two 512-wide layers into the "
                                                    "classifier, for every method."),
    device: str = typer.Option("auto", help="auto, cuda or cpu."),
    workers: int = typer.Option(2, help="Threads reading images ahead of the GPU (0: read in the main thread)."),
    compile_model: bool = typer.Option(False, "--compile", help="Compile the model with torch.compile."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps",
                                            help="Stop after this many steps in total (resumable)."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every",
                                         help="Also save last.pt every N steps inside an epoch (0: only at epoch ends)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt."),
) -> None:
    """Train a classifier on a dataset's label sets with one fusion method; writes a run folder."""
    from ltvcli.train.config import TrainConfig
    from ltvcli.train.loop import train as train_run

    config = TrainConfig(
        dataset=str(dataset), out=str(out), method=method, epochs=epochs, arch=arch,
        pretrained=None if pretrained is None else str(pretrained), seed=seed, batch_size=batch_size, lr=lr,
        label_set=label_set, alpha=alpha, k=k, threshold=threshold, meta_scope=meta_scope, vote=vote,
        trusted=trusted, model_evidence=model_evidence, cm_trace=cm_trace,
        text=text, device=device, workers=workers, compile=compile_model, max_steps=max_steps,
        checkpoint_every=checkpoint_every, resume=resume)
    result = train_run(config)
    if result.best_metric is not None:
        log(f"best validation {result.metric} {result.best_metric:.4f} at epoch {result.best_epoch}; "
            f"run folder {result.run}")
    else:
        log(f"trained {result.epochs} epoch(s), {result.steps} steps; run folder {result.run}")


@command(app, "export-labels")
def export_labels_command(
    run: Path = typer.Argument(..., help="A run folder written by `ltv train`."),
    dataset: Path = typer.Argument(..., help="The dataset to refine (same classes and label sets as the run's)."),
    out: Path = typer.Option(..., "--out", help="Output table, .csv or .parquet."),
    split: list[str] = typer.Option(["train"], "--split", metavar=choice(SPLITS + ("all",)),
                                    help="Split(s) to export (repeatable), or all."),
    checkpoint: str = typer.Option("best", metavar=choice(CHECKPOINTS), help=_CHECKPOINT_HELP),
    device: str = typer.Option("auto", metavar=choice(DEVICES), help="auto, cuda or cpu."),
) -> None:
    """Write the refined label, its binarisation and each label set's vote weight, per image and class."""
    from ltvcli.dataset import Dataset
    from ltvcli.train.export import EXPORT_SPLITS, check_table_path, export_labels

    check_table_path(out)
    splits = EXPORT_SPLITS if "all" in split else tuple(dict.fromkeys(split))
    frame = export_labels(run, Dataset.open(dataset), out, splits, checkpoint, device)
    log(f"wrote {out}: {frame['image_id'].nunique()} images x {frame['finding'].nunique()} classes")


@command(app, "predict")
def predict_command(
    run: Path = typer.Argument(..., help="A run folder written by `ltv train`."),
    dataset: Path = typer.Argument(..., help="The dataset to score (same classes as the run's)."),
    out: Path = typer.Option(..., "--out", help="Output table, .csv or .parquet."),
    split: str = typer.Option("test", metavar=choice(SPLITS + ("all",)), help="train, validate, test, or all."),
    checkpoint: str = typer.Option("best", metavar=choice(CHECKPOINTS), help=_CHECKPOINT_HELP),
    device: str = typer.Option("auto", metavar=choice(DEVICES), help="auto, cuda or cpu."),
) -> None:
    """Write per-image class probabilities (sigmoid for multi-label, softmax for multi-class)."""
    from ltvcli.dataset import Dataset
    from ltvcli.train.export import check_table_path, write_table
    from ltvcli.train.predict import predict_probabilities, predictions_table

    check_table_path(out)
    data = Dataset.open(dataset)
    image_ids, probs = predict_probabilities(run, data, None if split == "all" else split, checkpoint, device)
    write_table(predictions_table(image_ids, probs, data.classes), out)
    log(f"wrote {out}: {len(image_ids)} images x {len(data.classes)} classes")
