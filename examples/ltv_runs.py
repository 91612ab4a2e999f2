"""Run many `ltv` trainings on simulated annotators, resumably, and collect their numbers.

The experiment scripts (``poc_reproduction.py``, ``vote_comparison.py``)
describe *what* to run as a :class:`Plan`; this module runs it with the CLI
only -- ``ltv ingest npz``, ``ltv simulate``, ``ltv train``, ``ltv evaluate``
as subprocesses, so every number is what a user gets -- and reads the
outputs back. Everything lands in one work folder and is skipped when already
there, so an interrupted experiment continues where it stopped and two
experiments sharing a work folder share their common runs.

With ``--budget SECONDS`` an experiment ends on time (the GPU suite,
``benchmarks/gpu_suite.py``, runs one inside a fixed slot): trainings still
running at the deadline are stopped, those not started are skipped, and only
the datasets whose runs all finished are evaluated. Runs start wave by wave
(:attr:`Run.wave`: an experiment puts what it needs first in wave 0), the
slow LTV runs first within a wave, so the first waves finish whole.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: Source datasets: the shared .npz and its `ltv ingest npz` options (20 % of the training data validates).
SOURCES = {
    "cifar": ("cifar10_subset.npz", ["--val-fraction", "0.2"]),
    "pneumonia": ("pneumoniamnist.npz", ["--val-fraction", "0.2", "--task", "multilabel", "--classes", "Pneumonia"]),
}

#: Every method the experiments train, by run name. One name, one set of options: experiments that
#: share a work folder then share their runs.
METHODS = {
    "mv": ["--method", "mv"],
    "soft_mean": ["--method", "single", "--label-set", "soft_mean"],
    "dawid_skene": ["--method", "single", "--label-set", "dawid_skene"],
    "cm": ["--method", "cm"],
    "ltv": ["--method", "ltv", "--vote", "paper"],
    "ltv_reliability": ["--method", "ltv", "--vote", "reliability"],
    "ltv_reliability_model": ["--method", "ltv", "--vote", "reliability", "--model-evidence", "1"],
    "ltv_crossfit": ["--method", "ltv", "--vote", "crossfit"],
}
CLEAN = "HS:0"  # a noise-free annotator: its model is the clean-label ceiling


def single(label_set: str) -> list[str]:
    """``ltv train`` options of a model trained on one label set."""
    return ["--method", "single", "--label-set", label_set]


@dataclass
class Run:
    """One ``ltv train`` of a simulated dataset; ``name`` is its column in ``ltv evaluate``.

    ``wave``: runs start in the order of their waves, so under a time budget
    the earlier waves are the ones that finish.
    """

    dataset: str
    name: str
    options: list[str]
    seed: int
    wave: int = 0

    @property
    def key(self) -> str:
        return f"{self.dataset}__{self.name}"

    @property
    def is_ltv(self) -> bool:
        return "ltv" in self.options


@dataclass
class Plan:
    """Simulated datasets (name -> source, annotators, noise, seed, hardness) and the runs on them."""

    datasets: dict[str, tuple[str, str, float, int, float]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    def dataset(self, annotators: str, noise: float, seed: int, source: str = "cifar", hardness: float = 0.0) -> str:
        """Register (once) and name the copy of ``source`` labelled by ``annotators`` (CIFAR names carry no prefix)."""
        prefix = "" if source == "cifar" else f"{source}_"
        suffix = f"_h{hardness:g}" if hardness else ""
        name = f"{prefix}{annotators.replace(',', '-').replace(':', '')}_n{noise:g}_s{seed}{suffix}"
        self.datasets[name] = (source, annotators, noise, seed, hardness)
        return name

    def add(self, dataset: str, name: str, options: list[str], seed: int, wave: int = 0) -> None:
        if all(r.key != f"{dataset}__{name}" for r in self.runs):
            self.runs.append(Run(dataset, name, options, seed, wave))

    def add_clean_ceiling(self, seed: int, source: str) -> str:
        """The run ``clean`` on a noise-free copy of ``source`` (wave 0); returns that dataset's name."""
        data = self.dataset(CLEAN, 0.0, seed, source)
        self.add(data, "clean", single("HS"), seed)
        return data


def ltv(*args: object, threads: int | None = None, timeout: float | None = None) -> bool:
    """Run one ``ltv`` command (this interpreter's ``-m ltvcli``, the same app as the ``ltv`` script).

    Returns False if it was stopped after ``timeout`` seconds; stops the
    script with the command's output if it fails.
    """
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    try:
        result = subprocess.run([sys.executable, "-m", "ltvcli", *map(str, args)], capture_output=True, text=True,
                                env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    if result.returncode != 0:
        raise SystemExit(f"ltv {' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return True


def prepare(plan: Plan, data: Path, work: Path, jobs: int) -> None:
    """Ingest each source the plan uses, then write every simulated copy (``jobs`` at a time)."""
    for source in sorted({source for source, *_ in plan.datasets.values()}):
        if not (work / source).exists():
            file, options = SOURCES[source]
            ltv("ingest", "npz", data / file, "--out", work / source, *options)

    def simulate(name: str) -> None:
        source, annotators, noise, seed, hardness = plan.datasets[name]
        ltv("simulate", work / source, "--out", work / "data" / name, "--annotators", annotators,
            "--noise", noise, "--seed", seed, "--hardness", hardness, threads=1)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(simulate, [name for name in plan.datasets if not (work / "data" / name).exists()]))


def is_done(work: Path, run: Run) -> bool:
    return (work / "runs" / f"{run.key}.done").exists()


def train_all(plan: Plan, work: Path, common: list[str], jobs: int, deadline: float | None = None) -> None:
    """Train every run not yet done, ``jobs`` at a time, wave by wave, the slow LTV runs first within a wave.

    ``deadline`` (a ``time.monotonic()`` value): runs still training then are
    stopped (their folders are cleared when they run again), later runs are not started.
    """
    todo = [r for r in plan.runs if not is_done(work, r)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"{len(plan.runs) - len(todo)} runs done, {len(todo)} to train ({jobs} at a time, {threads} thread(s) each)")

    def train(run: Run) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        folder = work / "runs" / run.key
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted run starts again
        if ltv("train", work / "data" / run.dataset, *run.options, *common, "--seed", run.seed, "--out", folder,
               threads=threads, timeout=remaining):
            (work / "runs" / f"{run.key}.done").touch()
            print(f"trained {run.key}", flush=True)
        else:
            print(f"stopped {run.key} at the time budget", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(train, sorted(todo, key=lambda r: (r.wave, not r.is_ltv))))
    finished = sum(is_done(work, r) for r in plan.runs)
    if finished < len(plan.runs):
        print(f"{finished} of {len(plan.runs)} runs finished within the time budget")


def evaluate_all(plan: Plan, work: Path, jobs: int = 1, labellers: bool = True) -> dict:
    """Per dataset whose runs all finished: each run's test score, the labellers' training-split score
    (``ltv evaluate``: accuracy, or the mean ROC AUC for multi-label; only with ``labellers``), and each run's
    best metrics record; ``jobs`` datasets at a time."""
    results: dict = {"test": {}, "labels": {}, "records": {}}
    complete = [d for d in plan.datasets if all(is_done(work, r) for r in plan.runs if r.dataset == d)]

    def evaluate(dataset: str) -> None:
        runs = [r for r in plan.runs if r.dataset == dataset]
        out = work / "eval" / dataset
        names = sorted(f"{r.name}={work / 'runs' / r.key}" for r in runs)
        if not (out / "runs.json").exists() or json.loads((out / "runs.json").read_text()) != names:
            shutil.rmtree(out, ignore_errors=True)
            ltv("evaluate", *names, "-d", work / "data" / dataset, "--bootstrap", "0", "-o", out, threads=1)
            (out / "runs.json").write_text(json.dumps(names))
        if labellers and not (out / "train" / "evaluation.json").exists():
            ltv("evaluate", "-d", work / "data" / dataset, "--split", "train", "--bootstrap", "0", "-o", out / "train",
                threads=1)
        results["test"][dataset] = overall_scores(out, "model")
        if labellers:
            results["labels"][dataset] = overall_scores(out / "train", "labeller")
        for run in runs:
            results["records"][run.key] = best_record(work / "runs" / run.key)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(evaluate, complete))
    return results


def overall_scores(folder: Path, kind: str) -> dict[str, float]:
    """Accuracy (multi-class) or the findings' average ROC AUC (multi-label), per model or labeller."""
    if (folder / "accuracy.csv").exists():
        table = pd.read_csv(folder / "accuracy.csv")
        rows = table[(table["kind"] == kind) & (table["metric"] == "accuracy")]
    else:
        table = pd.read_csv(folder / "auc.csv")
        rows = table[(table["kind"] == kind) & (table["finding"] == "Average")].rename(columns={"auc": "value"})
    return dict(zip(rows["model"], rows["value"]))


def best_record(run: Path) -> dict:
    """The metrics record of the best validation epoch (the checkpoint evaluated)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in reversed(records) if r["best"])


def mean_sd(values: list[float | None]) -> str:
    """mean ± standard deviation over seeds ('-' without values)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 \
        else f"{values[0]:.3f}"


def training_options(args) -> list[str]:
    """The ``ltv train`` options every run of an experiment shares."""
    return ["--arch", args.arch, "--device", args.device, "--epochs", str(args.epochs), "--lr", str(args.lr),
            "--batch-size", str(args.batch_size)]


def add_training_arguments(parser) -> None:
    """The command-line options of :func:`training_options` and of the runner, with the experiments' defaults."""
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="Folder of the shared .npz files")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ltv-experiments"),
                        help="Datasets, runs and evaluations (shared between experiments)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--device", default="cpu", help="`ltv train --device` (cpu, cuda, auto)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=2, help="Trainings at a time")
    parser.add_argument("--budget", type=float, default=0,
                        help="Seconds (from the start) after which trainings stop; only finished datasets are "
                             "evaluated (0: no limit)")


def run_plan(plan: Plan, args, name: str, labellers: bool = True) -> dict:
    """Prepare, train and evaluate everything in ``plan``; the results are also written to WORK/<name>.json.

    ``labellers``: also score each label set on the training split (``results["labels"]``).
    """
    deadline = time.monotonic() + args.budget if args.budget > 0 else None
    work = args.work.resolve()
    prepare(plan, args.data.resolve(), work, args.jobs)
    train_all(plan, work, training_options(args), args.jobs, deadline)
    results = evaluate_all(plan, work, args.jobs, labellers)
    (work / f"{name}.json").write_text(json.dumps(results, indent=1))
    return results
