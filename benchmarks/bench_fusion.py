"""ltv's fusion methods beside crowd-kit's and cleanlab's aggregators, on one dataset, in one run.

Every row trains the same classifier with the same loop, options and seed
(ltv's Python API: ``TrainConfig`` + ``train``, what ``ltv train`` runs), so
rows differ only in the labels the classifier learns from. Per seed:

* **peers** (``--peers``; the optional extra ``pip install -e ".[peers]"``):
  crowd-kit's MV, DS, GLAD, MACE and cleanlab's CROWDLAB aggregate the
  training split's label sets (``fusion_peers.py``). Their labels become label
  sets of a label layer over the dataset (``peer_DS``, ...) and the classifier
  is trained on each with ``method single, label_set peer_DS``. A peer whose
  library is not installed is skipped with one line saying so.
* **ltv's methods** (``--methods``; default: every method and vote of ltv's
  fusion registry, read at run time, so a newly registered vote is one more
  row with no change here): ``mv``, ``cm``, ``single:dawid_skene``,
  ``ltv:<vote>``. A row may add method options: ``ltv:reliability:model_evidence=1``.
* **the clean-label ceiling** (``--no-ceiling`` leaves it out): ``single`` on
  the ground truth of the training rows.

Columns: *label accuracy* is the accuracy, against the ground truth of the
training rows, of the labels ``ltv export-labels`` writes for the run
(``ltvcli.train.export.refined_labels``, best checkpoint; for a peer, its own
labels); *in training* is what the same run's training reported for its best
epoch (``refined_accuracy`` in metrics.jsonl), which export should reproduce;
*test* is the best checkpoint's accuracy (multi-label: macro ROC AUC) on the
test split, the statistic ``ltv evaluate`` reports.

CROWDLAB weighs a classifier against each annotator and needs the classifier's
out-of-fold probabilities of the training images. They come from the same
classifier and loop: the training rows are split into ``--folds`` folds, and
per fold a run of ``single`` learns ltv's Dawid-Skene labels with that fold's
labels masked out (label set ``cv_fold<k>`` of a second layer), then scores
the fold. That is ``--folds`` extra trainings per seed.

Examples (one thread per process; docs/results.md has the measured tables)::

    python benchmarks/bench_fusion.py DATASET --seeds 0 1 2 --epochs 15 --arch tiny --lr 1e-3 \\
        --markdown fusion.md --json fusion.json
    python benchmarks/bench_fusion.py DATASET --methods mv ltv:paper ltv:reliability:model_evidence=1 \\
        --peers DS CROWDLAB
    python benchmarks/bench_fusion.py DATASET --smoke      # every path at toy size: 1 epoch, 2 folds, seed 0

Training options other than the ones below go through ``--set NAME=VALUE``
(any ``TrainConfig`` field, e.g. ``--set workers=0``); an unknown name or a
bad value stops the benchmark with one line before anything is trained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import fusion_peers
from ltvcli import __version__
from ltvcli.atomic import write_json, write_text
from ltvcli.console import set_verbosity, verbosity
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet
from ltvcli.dataset.layers import build_layer
from ltvcli.errors import LtvError
from ltvcli.fusion import registry
from ltvcli.runs.config import TrainConfig

#: The labeller recorded for the label sets this benchmark writes into its layers.
LABELLER = "bench_fusion"
#: TrainConfig fields each row sets itself (``--set`` may not).
PER_RUN = ("dataset", "out", "method", "vote", "seed", "resume")
#: The ceiling's label set: the ground truth of the training rows.
CLEAN_SET = "clean"


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One line of the table: the labels it trains on (a method, or a label set of the peers' layer)."""

    name: str
    kind: str  # "peer", "ltv" or "ceiling"
    method: str
    vote: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The run's folder name in the work folder."""
        return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.name)


def default_methods() -> list[str]:
    """One row per entry of ltv's fusion registry (``single`` on its Dawid-Skene aggregator)."""
    rows = []
    for spec in registry.METHODS:
        if spec.vote:
            rows.append(f"{spec.method}:{spec.vote}")
        elif spec.method == "single":
            rows.append("single:dawid_skene")
        else:
            rows.append(spec.method)
    return rows


def ltv_row(text: str) -> Row:
    """``METHOD[:VOTE or LABEL_SET][:OPTION=VALUE...]`` as a row; the registry checks the names and values."""
    method, *rest = text.split(":")
    named = [part for part in rest if "=" not in part]
    options = dict(_option(part) for part in rest if "=" in part)
    registry.method_spec(method)  # an unknown method fails here, naming the known ones
    has_votes = any(entry.vote for entry in registry.METHODS if entry.method == method)
    if len(named) > 1 or (named and not has_votes and method != "single"):
        raise LtvError(f"--methods {text!r}: expected METHOD, ltv:VOTE, single:LABEL_SET, each optionally "
                       "followed by :OPTION=VALUE")
    vote = None
    if has_votes:
        vote = registry.method_spec(method, named[0] if named else None).vote
    elif named:
        options["label_set"] = named[0]
    registry.method_spec(method, vote).options.from_mapping(options)  # a bad option fails now, not mid-run
    return Row(text, "ltv", method, vote, options)


def checked_row(text: str) -> Row:
    """:func:`ltv_row`, its error naming the row it comes from."""
    try:
        return ltv_row(text)
    except LtvError as exc:
        message = str(exc)
        raise LtvError(message if message.startswith("--methods") else f"--methods {text!r}: {message}") from None


def _option(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def peer_rows(peers: list[str]) -> list[Row]:
    return [Row(f"{fusion_peers.PACKAGES[p]} {p}", "peer", "single", options={"label_set": f"peer_{p}"})
            for p in peers]


CEILING = Row("clean labels (ceiling)", "ceiling", "single", options={"label_set": CLEAN_SET})


# ----------------------------------------------------------------------------- training and measuring
@dataclass
class Settings:
    """What every training of the benchmark shares: ``TrainConfig`` fields by name."""

    train: dict
    folds: int
    device: str

    def config(self, dataset: Path, out: Path, row: Row, seed: int) -> TrainConfig:
        vote = {"vote": row.vote} if row.vote else {}
        return TrainConfig(dataset=str(dataset), out=str(out), method=row.method, seed=seed,
                           method_options=dict(row.options), **vote, **self.train)


def train_row(settings: Settings, dataset: Dataset, out: Path, row: Row, seed: int) -> float:
    """Train ``row`` on ``dataset`` into ``out``; returns the seconds it took."""
    from ltvcli.train import train

    start = time.perf_counter()
    train(settings.config(dataset.path, out, row, seed))
    return time.perf_counter() - start


def measure(run: Path, dataset: Dataset, device: str) -> dict:
    """Label accuracy of the exported labels and of training's best epoch, test score, best epoch."""
    from ltvcli.metrics import validation_score
    from ltvcli.runs.folder import RunFolder
    from ltvcli.runs.predict import predict_probabilities
    from ltvcli.train.export import refined_labels

    truth, truth_mask = dataset.ground_truth_targets()
    train_rows, test_rows = dataset.indices("train"), dataset.indices("test")
    table = refined_labels(run, dataset, ("train",), device=device)
    shape = (len(train_rows), len(dataset.classes))
    label = label_accuracy(table["refined"].to_numpy().reshape(shape), table["binarised"].to_numpy().reshape(shape),
                           truth[train_rows], truth_mask[train_rows], dataset.is_multilabel)
    best = next(r for r in reversed(RunFolder(run).read_metrics()) if r["best"])
    _, probs = predict_probabilities(run, dataset, "test", device=device)
    test = validation_score(probs, truth[test_rows], truth_mask[test_rows], dataset.is_multilabel)
    return {"label_export": label, "label_training": best.get("refined_accuracy"), "test": test,
            "best_epoch": best["epoch"]}


def label_accuracy(refined: np.ndarray, binarised: np.ndarray, truth: np.ndarray, truth_mask: np.ndarray,
                   multilabel: bool) -> float | None:
    """Accuracy of exported labels [n, C] against the truth, counted as training counts it.

    The binarised label where the method gives one, else the refined one;
    multi-class: its arg max per image; multi-label: >= 0.5 per (image,
    finding). Only images (entries) with a label and a truth count.
    """
    values = np.where(np.isfinite(binarised), binarised, refined)
    if multilabel:
        valid = truth_mask & np.isfinite(values)
        correct = ((values >= 0.5) == (truth >= 0.5)) & valid
    else:
        valid = truth_mask.any(1) & np.isfinite(values).all(1)
        correct = (np.nan_to_num(values, nan=-1.0).argmax(1) == truth.argmax(1)) & valid
    return float(correct.sum() / valid.sum()) if valid.any() else None


# ----------------------------------------------------------------------------- the peers' labels
def write_layer(base: Dataset, out: Path, extra: dict[str, np.ndarray]) -> Dataset:
    """``base`` with the label sets ``extra`` (stored layout, all rows) appended, as a label layer at ``out``."""
    clash = sorted(set(extra) & set(base.label_set_names))
    if clash:
        raise LtvError(f"{base.path}: already has label set(s) {', '.join(clash)}, which the benchmark writes")
    added = np.stack([values.astype(base.labels.dtype) for values in extra.values()], axis=1)
    spec = DatasetSpec(task=base.task, classes=base.classes, manifest=base.manifest,
                       label_sets=base.label_sets + [LabelSet(name, LABELLER) for name in extra],
                       labels=np.concatenate([np.asarray(base.labels), added], axis=1),
                       ground_truth=base.ground_truth, source={"name": LABELLER, "from": str(base.path)})
    return build_layer(spec, out, over=base)


def on_train_rows(dataset: Dataset, values: np.ndarray) -> np.ndarray:
    """A label set for all rows: ``values`` on the training rows, missing (-1) elsewhere."""
    out = np.full((len(dataset),) + values.shape[1:], -1, dtype=np.int64)
    out[dataset.indices("train")] = values
    return out


def dawid_skene_labels(dataset: Dataset) -> np.ndarray:
    """ltv's Dawid-Skene labels of the training rows, hard, in the stored layout (-1 where nothing labelled)."""
    from ltvcli.fusion.aggregators import DawidSkene

    rows = dataset.indices("train")
    targets, mask = dataset.targets()
    soft, valid = DawidSkene(dataset.is_multilabel).fit_predict_proba(targets[rows], mask[rows])
    soft, valid = soft.numpy(), valid.numpy()
    if dataset.is_multilabel:
        return np.where(valid, soft >= 0.5, -1).astype(np.int64)
    return np.where(valid.any(1), soft.argmax(1), -1)


def out_of_fold(dataset: Dataset, work: Path, settings: Settings, seed: int) -> np.ndarray:
    """Class probabilities [n_train, C] of the training rows, each from a run that did not learn its label."""
    from sklearn.model_selection import KFold

    from ltvcli.runs.predict import predict_probabilities

    n_train = len(dataset.indices("train"))
    folds = list(KFold(settings.folds, shuffle=True, random_state=seed).split(np.arange(n_train)))
    hard = dawid_skene_labels(dataset)
    masked = {}
    for k, (_, held) in enumerate(folds):
        fold_labels = hard.copy()
        fold_labels[held] = -1
        masked[f"cv_fold{k}"] = on_train_rows(dataset, fold_labels)
    layer = write_layer(dataset, work / "folds", masked)
    probs = np.zeros((n_train, len(dataset.classes)))
    for k, (_, held) in enumerate(folds):
        run = work / "fold_runs" / f"fold{k}"
        train_row(settings, layer, run, Row(f"fold {k}", "fold", "single", options={"label_set": f"cv_fold{k}"}),
                  seed)
        probs[held] = predict_probabilities(run, layer, "train", device=settings.device)[1][held]
    return probs


def peer_labels(dataset: Dataset, peers: list[str], work: Path, settings: Settings, seed: int) -> dict[str, np.ndarray]:
    """Each peer's label set (stored layout, all rows; -1 outside the training split)."""
    rows = dataset.indices("train")
    tasks = fusion_peers.problems(np.asarray(dataset.labels)[rows], dataset.is_multilabel, len(dataset.classes))
    labels = {}
    for peer in peers:
        if peer == "CROWDLAB":
            probs = out_of_fold(dataset, work, settings, seed)
            per_task = [fusion_peers.crowdlab_labels(answers, _problem_probs(probs, t, dataset.is_multilabel))
                        for t, (answers, _) in enumerate(tasks)]
        else:
            per_task = [fusion_peers.crowdkit_labels(peer, answers, seed) for answers, _ in tasks]
        labels[f"peer_{peer}"] = on_train_rows(dataset, fusion_peers.as_label_set(per_task, dataset.is_multilabel))
    return labels


def _problem_probs(probs: np.ndarray, task: int, multilabel: bool) -> np.ndarray:
    """The classifier's probabilities for one peer problem: all classes, or [1 - p, p] of one finding."""
    return np.stack([1 - probs[:, task], probs[:, task]], axis=1) if multilabel else probs


# ----------------------------------------------------------------------------- one seed, the whole run
@dataclass
class Results:
    """Per row, per seed: the measured values (lists in seed order)."""

    rows: dict[str, dict] = field(default_factory=dict)

    def add(self, row: Row, seed: int, values: dict) -> None:
        entry = self.rows.setdefault(row.name, {"kind": row.kind, "seeds": []})
        entry["seeds"].append(seed)
        for key, value in values.items():
            entry.setdefault(key, []).append(value)

    def seeds(self) -> list[int]:
        """The seeds every row has finished."""
        done = [set(entry["seeds"]) for entry in self.rows.values()]
        return sorted(set.intersection(*done)) if done else []


def run_seed(dataset: Dataset, rows: list[Row], peers: list[str], ceiling: bool, work: Path, settings: Settings,
             seed: int, results: Results) -> None:
    """Every row on ``dataset`` with ``seed``: the peers' and the ceiling's labels first, then all trainings."""
    extra = peer_labels(dataset, peers, work, settings, seed)
    if ceiling:
        extra[CLEAN_SET] = on_train_rows(dataset, np.asarray(dataset.ground_truth)[dataset.indices("train")])
    layer = write_layer(dataset, work / "peers", extra) if extra else None
    plan = peer_rows(peers) + rows + ([CEILING] if ceiling else [])
    for row in plan:
        data = dataset if row.kind == "ltv" else layer
        run = work / "runs" / row.folder
        seconds = train_row(settings, data, run, row, seed)
        values = measure(run, data, settings.device) | {"seconds": seconds}
        results.add(row, seed, values)
        training = "-" if values["label_training"] is None else f"{values['label_training']:.3f}"
        print(f"seed {seed} {row.name}: labels {_number(values['label_export'])} (in training {training}), "
              f"test {values['test']:.3f}, best epoch {values['best_epoch']} ({seconds:.0f} s)", flush=True)


def check_dataset(dataset: Dataset) -> None:
    """The benchmark needs label sets, and ground truth on the train and test splits to score against."""
    if not dataset.label_set_names:
        raise LtvError(f"{dataset.path}: has no label sets to fuse")
    if not dataset.has_ground_truth:
        raise LtvError(f"{dataset.path}: has no ground truth; the benchmark needs it on the train split (label "
                       "accuracy) and the test split (test accuracy)")
    _, mask = dataset.ground_truth_targets()
    for split in ("train", "test"):
        if not mask[dataset.indices(split)].any():
            raise LtvError(f"{dataset.path}: no ground truth on the {split} split; the benchmark needs it on the "
                           "train split (label accuracy) and the test split (test accuracy)")


# ----------------------------------------------------------------------------- table
def mean_sd(values: list[float | None]) -> str:
    """mean ± sd over seeds (sample sd); '-' without values."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(results: Results, multilabel: bool) -> str:
    test = "test ROC AUC" if multilabel else "test accuracy"
    lines = [f"| labels | label accuracy (export) | in training (best epoch) | {test} | best epoch |",
             "|---|---|---|---|---|"]
    for name, entry in results.rows.items():
        lines.append(f"| {name} | {mean_sd(entry['label_export'])} | {mean_sd(entry['label_training'])} "
                     f"| {mean_sd(entry['test'])} | {statistics.mean(entry['best_epoch']):.1f} |")
    return "\n".join(lines)


def heading(dataset: Dataset, seeds: list[int], settings: Settings, versions: dict[str, str]) -> str:
    train = ", ".join(f"{k} {v}" for k, v in settings.train.items())
    libraries = ", ".join(f"{k} {v}" for k, v in {"ltv": __version__, **versions}.items())
    return (f"{dataset.path.name}: {len(dataset.indices('train'))} training images, "
            f"{len(dataset.label_set_names)} label sets, {len(dataset.classes)} classes; seeds "
            f"{' '.join(map(str, seeds))}; {train}; CROWDLAB folds {settings.folds}; {libraries}")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="An ltv dataset folder with ground truth on train and test")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"ltv rows (default: the registry's, now {' '.join(default_methods())})")
    parser.add_argument("--peers", nargs="*", default=list(fusion_peers.PEERS), choices=fusion_peers.PEERS,
                        help="crowd-kit / cleanlab rows (default all; none: --peers with no name)")
    parser.add_argument("--no-ceiling", action="store_true", help="Leave out the clean-label row")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="Seeds (default 0 1 2; --smoke: 0)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--arch", default="tiny", help="Backbone of runs on images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="`ltv train --device`")
    parser.add_argument("--workers", type=int, default=1, help="`ltv train --workers`")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="NAME=VALUE",
                        help="Any other TrainConfig option for every training (repeatable)")
    parser.add_argument("--folds", type=int, default=5, help="Folds of CROWDLAB's out-of-fold probabilities")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    parser.add_argument("--work", type=Path, default=None,
                        help="Keep layers and runs in this new (or empty) folder (default: a temporary one)")
    parser.add_argument("--markdown", type=Path, help="Also write the heading and table to this file")
    parser.add_argument("--json", type=Path, help="Also write every value per seed to this file")
    parser.add_argument("--smoke", action="store_true",
                        help="Toy sizes for a quick check: 1 epoch, 2 folds, batch 8, seed 0 unless given")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.folds, args.batch_size = 1, 2, 8
    args.seeds = args.seeds or ([0] if args.smoke else [0, 1, 2])
    if args.folds < 2:
        parser.error("--folds: at least 2")
    return args


def train_options(args: argparse.Namespace, has_images: bool) -> dict:
    """The ``TrainConfig`` fields every training shares, ``--set`` values typed by their declaration.

    ``has_images``: the dataset has pixels, so ``--arch`` applies unless ``--set input=features``.
    """
    options = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "device": args.device,
               "workers": args.workers}
    declared = {item.name: item for item in TrainConfig.declared() if item.name not in PER_RUN}
    for text in args.options:
        name, _, value = text.partition("=")
        if name not in declared:
            raise LtvError(f"--set {text!r}: expected NAME=VALUE with NAME a training option "
                           f"({', '.join(declared)})")
        options[name] = _typed(declared[name].kind, value, text)
    if has_images and options.get("input") != "features":  # the backbone: only a run on pixels has one
        options["arch"] = args.arch
    TrainConfig(dataset=".", out=".", **options)  # a bad value fails now, before any training
    return options


def _typed(kind: type, value: str, text: str):
    if kind is bool:
        if value.lower() not in ("true", "false"):
            raise LtvError(f"--set {text!r}: expected true or false")
        return value.lower() == "true"
    try:
        return kind(value)
    except ValueError:
        raise LtvError(f"--set {text!r}: expected {kind.__name__}") from None


def work_folder(path: Path | None) -> tuple[Path, bool]:
    """The folder for layers and runs, and whether to remove it at the end (a temporary one)."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="bench_fusion_")), True
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise LtvError(f"{path}: --work must be a new or empty folder")
    path.mkdir(parents=True, exist_ok=True)
    return path, False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    threads, level = torch.get_num_threads(), verbosity()
    torch.set_num_threads(args.threads)
    set_verbosity(0)  # ltv's epoch lines off: the benchmark prints one line per training
    temporary = False
    try:
        dataset = Dataset.open(args.dataset)
        check_dataset(dataset)
        rows = [checked_row(text) for text in (args.methods or default_methods())]
        settings = Settings(train_options(args, dataset.has_images), args.folds, args.device)
        missing = fusion_peers.missing_packages(args.peers)
        if missing:
            skipped = [p for p in args.peers if fusion_peers.PACKAGES[p] in missing]
            print(f"peers skipped: {' '.join(skipped)} ({' and '.join(missing)} not installed; "
                  f"pip install -e \".[peers]\")", flush=True)
        peers = [p for p in args.peers if fusion_peers.PACKAGES[p] not in missing]
        versions = fusion_peers.package_versions(peers) if peers else {}
        work, temporary = work_folder(args.work)
        results = Results()
        for seed in args.seeds:
            run_seed(dataset, rows, peers, not args.no_ceiling, work / f"seed{seed}", settings, seed, results)
            text = write_outputs(args, dataset, settings, versions, results)  # after each seed: a long run
    except LtvError as exc:                                                    # keeps what it finished
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # as they were: main() may run inside a test session or a notebook
        set_verbosity(level)
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + text)
    return 0


def write_outputs(args: argparse.Namespace, dataset: Dataset, settings: Settings, versions: dict[str, str],
                  results: Results) -> str:
    """The heading and table of the seeds done so far, written to ``--markdown`` / ``--json`` if given."""
    done = results.seeds()
    text = f"{heading(dataset, done, settings, versions)}\n\n{table(results, dataset.is_multilabel)}\n"
    if args.markdown:
        write_text(args.markdown, text)
    if args.json:
        write_json(args.json, {"dataset": str(dataset.path), "seeds": done, "train": settings.train,
                               "folds": settings.folds, "versions": {"ltv": __version__, **versions},
                               "rows": results.rows})
    return text


if __name__ == "__main__":
    sys.exit(main())
