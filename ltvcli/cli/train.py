"""``ltv train``, ``ltv export-labels`` and ``ltv predict``: thin wrappers over ``ltvcli.train`` and ``ltvcli.runs``.

``ltv train``'s options are not listed here: they are the fields of
:class:`~ltvcli.runs.config.TrainConfig` (the run's) and of each fusion
method's options dataclass (:mod:`ltvcli.fusion.registry`), turned into flags
by :mod:`ltvcli.cli.options`. The method options come last, each introduced
by the methods that take it; the command hands the
core only the ones the user gave, and warns about those the chosen method
does not take. Torch is imported inside the commands, so ``ltv --help``
stays fast.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import CHECKPOINTS, DEVICES, SPLITS, UNCERTAIN_POLICIES, choice
from ltvcli.cli.options import flag, parameter, with_options
from ltvcli.console import log, warn
from ltvcli.errors import LtvError
from ltvcli.fusion.registry import LABEL_ONLY_FUSIONS, METHODS, MethodSpec, declaring, method_spec, split_options
from ltvcli.outputs import PREDICTIONS, check_output
from ltvcli.runs.config import TrainConfig

_CHECKPOINT_HELP = "Which checkpoint: best (best validation score) or last."
#: Options given as paths on the command line (completion), strings in TrainConfig.
_PATHS = ("dataset", "out", "pretrained")


def _method_phrase(spec: MethodSpec) -> str:
    """How the CLI names a method: ``--method ltv --vote reliability``."""
    return f"{flag('method')} {spec.method}" + (f" {flag('vote')} {spec.vote}" if spec.vote else "")


def _scope(specs: list[MethodSpec], method_flag: str = "") -> str:
    """The methods ``specs``, for a help text or a warning: ``ltv`` when every vote is there, else each vote."""
    parts = []
    for method in dict.fromkeys(spec.method for spec in specs):
        variants = [spec for spec in METHODS if spec.method == method]
        mine = [spec for spec in specs if spec.method == method]
        parts += [f"{method_flag}{method}"] if len(mine) == len(variants) else \
            [f"{method_flag}{m.method} {flag('vote')} {m.vote}" for m in mine]
    return ", ".join(parts)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user set option ``name`` (by name: Typer may bring its own copy of click's enum)."""
    return ctx.get_parameter_source(name).name != "DEFAULT"


def _train_parameters() -> list[inspect.Parameter]:
    """``ltv train``'s parameters: the run's options, then every fusion method's (those not shared with the run)."""
    run = [parameter(item, argument=item.name == "dataset", path=item.name in _PATHS)
           for item in TrainConfig.declared()]
    declared = {item.name: item for spec in METHODS for item in spec.options.declared()}
    methods = [parameter(item, help=f"{_scope(declaring(name))}: {item.rule.help}.")
               for name, item in declared.items() if name not in TrainConfig.names()]
    return run + methods


@command(app, "train")
@with_options(_train_parameters())
def train(ctx: typer.Context, **options) -> None:
    """Train a classifier on a dataset's label sets with one fusion method; writes a run folder."""
    from ltvcli.train import train as train_run  # imports torch

    run = {name: options.pop(name) for name in TrainConfig.names()}
    method_options = _method_options(ctx, method_spec(run["method"], run["vote"]), options)
    result = train_run(TrainConfig(**run, method_options=method_options))
    if result.best_metric is not None:
        log(f"best validation {result.metric} {result.best_metric:.4f} at epoch {result.best_epoch}; "
            f"run folder {result.run}")
    else:
        log(f"trained {result.epochs} epoch(s), {result.steps} steps; run folder {result.run}")


def _method_options(ctx: typer.Context, spec: MethodSpec, options: dict) -> dict:
    """The method options the user gave that ``spec`` takes; a warning for each given one it does not take."""
    given = {name: value for name, value in options.items() if _given(ctx, name)}
    own, ignored = split_options(spec, given)
    if spec.vote is None and _given(ctx, "vote"):
        ignored = {"vote": None, **ignored}
    for name in ignored:
        takers = [s for s in METHODS if s.vote] if name == "vote" else declaring(name)
        warn(f"{flag(name)} applies to {_scope(takers, flag('method') + ' ')} only; ignored by {_method_phrase(spec)}")
    return own


#: export-labels options that only one way of exporting takes: option -> the aggregators that take it (None: every
#: aggregator); and the options of a run's export.
_FUSION_OPTIONS = {"label_sets": None, "policy": None, "seed": ("majority",), "k": ("reliability",),
                   "threshold": ("reliability",)}
_RUN_EXPORT_OPTIONS = ("checkpoint", "device")


@command(app, "export-labels")
def export_labels_command(
    ctx: typer.Context,
    first: Optional[Path] = typer.Argument(
        None, metavar="RUN", help="A run folder written by `ltv train`; left out with --aggregator (label-only "
                                  "fusion: no run, no images)."),
    second: Optional[Path] = typer.Argument(
        None, metavar="DATASET", help="The dataset to refine (same classes and label sets as the run's), or to fuse "
                                      "with --aggregator."),
    out: Path = typer.Option(..., "--out", help="Output table, .csv or .parquet."),
    splits: Optional[list[str]] = typer.Option(
        None, "--split", metavar=choice(SPLITS + ("all",)),
        help="Split(s) to export (repeatable), or all. Default: train for a run; every split with --aggregator."),
    aggregator: Optional[str] = typer.Option(
        None, "--aggregator", metavar=choice(LABEL_ONLY_FUSIONS),
        help="Fuse the dataset's label sets without a run: the majority vote, the soft mean, Dawid-Skene, or "
             "reliability (ltv's reliability vote without images: the Dawid-Skene posterior, binarised with --k "
             "and --threshold, and each label set's vote weight). Fitted on the exported images' label sets."),
    label_sets: Optional[str] = typer.Option(
        None, "--label-sets", metavar="NAMES", help="--aggregator: the label sets to fuse, comma-separated names "
                                                    "or patterns (reader*); default: all."),
    policy: Optional[str] = typer.Option(
        None, "--policy", metavar=choice(UNCERTAIN_POLICIES),
        help="--aggregator: one label set per labeller, the one of this uncertainty policy where a labeller has "
             "several (default: all of them, as training does)."),
    seed: int = typer.Option(0, "--seed", help="--aggregator majority: seed of the tie-breaking."),
    k: float = typer.Option(50.0, "--k", help="--aggregator reliability: sharpness of the binarisation."),
    threshold: float = typer.Option(0.5, "--threshold",
                                    help="--aggregator reliability: threshold T of the binarisation."),
    checkpoint: str = typer.Option("best", metavar=choice(CHECKPOINTS), help=_CHECKPOINT_HELP + " A run only."),
    device: str = typer.Option("auto", metavar=choice(DEVICES), help="auto, cuda or cpu. A run only."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export at --out."),
) -> None:
    """Write the refined label, its binarisation and each label set's vote weight, per image and class.

    From a trained run (RUN DATASET), or from the dataset's label sets alone (DATASET --aggregator NAME).
    """
    from ltvcli.atomic import check_table_path
    from ltvcli.dataset import Dataset
    from ltvcli.train.export import EXPORT_SPLITS

    check_table_path(out)
    folders = [path for path in (first, second) if path is not None]
    _export_mode(ctx, folders, aggregator)
    chosen = EXPORT_SPLITS if splits and "all" in splits else tuple(dict.fromkeys(splits or ()))
    if aggregator is None:
        from ltvcli.train.export import export_labels

        run, dataset = folders
        frame = export_labels(run, Dataset.open(dataset), out, chosen or ("train",), checkpoint, device, force=force)
    else:
        from ltvcli.fusion.labelonly import export_fused_labels

        frame = export_fused_labels(Dataset.open(folders[0]), out, aggregator, splits=chosen or EXPORT_SPLITS,
                                    label_sets=label_sets, policy=policy, seed=seed, k=k, threshold=threshold,
                                    force=force)
    log(f"wrote {out}: {frame['image_id'].nunique()} images x {frame['finding'].nunique()} classes")


def _export_mode(ctx: typer.Context, folders: list[Path], aggregator: str | None) -> None:
    """Check that the folders fit the way of exporting; warn about given options that way does not take."""
    if aggregator is None and len(folders) != 2:
        raise LtvError("export-labels takes a run folder and a dataset (RUN DATASET), or a dataset alone with "
                       "--aggregator to fuse its label sets without a run")
    if aggregator is not None and len(folders) != 1:
        raise LtvError("--aggregator fuses a dataset's label sets without a run: give the dataset alone, or leave "
                       "--aggregator out to export a run's refined labels")
    if aggregator is None:
        for name in _FUSION_OPTIONS:
            if _given(ctx, name):
                warn(f"{flag(name)} applies to --aggregator only (label-only fusion, no run); ignored")
        return
    for name in _RUN_EXPORT_OPTIONS:
        if _given(ctx, name):
            warn(f"{flag(name)} applies to a run's export only (RUN DATASET); ignored")
    for name, takers in _FUSION_OPTIONS.items():
        if takers and aggregator not in takers and _given(ctx, name):
            warn(f"{flag(name)} applies to --aggregator {' and '.join(takers)} only; ignored")


@command(app, "predict")
def predict_command(
    run: Path = typer.Argument(..., help="A run folder written by `ltv train`."),
    dataset: Path = typer.Argument(..., help="The dataset to score (same classes as the run's)."),
    out: Path = typer.Option(..., "--out", help="Output table, .csv or .parquet."),
    split: str = typer.Option("test", metavar=choice(SPLITS + ("all",)), help="train, validate, test, or all."),
    checkpoint: str = typer.Option("best", metavar=choice(CHECKPOINTS), help=_CHECKPOINT_HELP),
    device: str = typer.Option("auto", metavar=choice(DEVICES), help="auto, cuda or cpu."),
    force: bool = typer.Option(False, "--force", help="Replace earlier predictions at --out."),
) -> None:
    """Write per-image class probabilities (sigmoid for multi-label, softmax for multi-class)."""
    from ltvcli.dataset import Dataset
    from ltvcli.runs.predict import predict_probabilities, predictions_table
    from ltvcli.atomic import check_table_path, write_table

    check_table_path(out)
    check_output(out, PREDICTIONS, inputs=[run, dataset], force=force)
    data = Dataset.open(dataset)
    image_ids, probs = predict_probabilities(run, data, None if split == "all" else split, checkpoint, device)
    write_table(predictions_table(image_ids, probs, data.classes), out)
    log(f"wrote {out}: {len(image_ids)} images x {len(data.classes)} classes")
