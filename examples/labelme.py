"""The votes on a real crowd, through the CLI: LabelMe (59 Mechanical Turk workers, 8 classes; issue 16).

LabelMe (Rodrigues & Pereira, AAAI 2018): 1,000 training images labelled by
59 workers (2.5 labels per image), true labels for train, valid and test, and
each image as a 512-d VGG-16 feature vector. This script runs what a user
runs -- ``ltv ingest answers``, ``ltv train --input features`` per method and
seed, ``ltv export-labels``, ``ltv evaluate`` -- and prints per method, as
mean ± standard deviation over the seeds:

* the refined-label accuracy training reported for the best epoch
  (``refined_accuracy`` in metrics.jsonl);
* the accuracy of the labels ``ltv export-labels`` writes from the best
  checkpoint (the same number: docs/methods.md, "Refined labels");
* the test accuracy of the best checkpoint (``ltv evaluate``, 1,188 images).

The classifier is Rodrigues & Pereira's: one hidden layer of 128 with dropout
0.5 on the features; Adam 1e-3, batch 32, 40 epochs, best epoch on the clean
validation split.

Usage::

    python examples/labelme.py --data ../shared/data/labelme --work /tmp/ltv-labelme --seeds 0 1 2 3 4

Everything lands in ``--work`` and is skipped when already there, so an
interrupted run continues; ``--table-only`` prints the table of the runs that
finished (several invocations with different ``--methods`` may train into one
work folder at once). ``--tables FILE`` also writes the table to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from ltv_runs import best_record, ltv, mean_sd, overall_scores

from ltvcli.atomic import write_text
from ltvcli.dataset import Dataset

#: The methods compared, by name: their ``ltv train`` options.
METHODS = {
    "mv": ["--method", "mv"],
    "dawid_skene": ["--method", "single", "--label-set", "dawid_skene"],
    "ltv paper": ["--method", "ltv", "--vote", "paper"],
    "ltv reliability": ["--method", "ltv", "--vote", "reliability"],
    "ltv reliability model-evidence 1": ["--method", "ltv", "--vote", "reliability", "--model-evidence", "1"],
    "ltv crossfit": ["--method", "ltv", "--vote", "crossfit"],
}
#: The classifier on the VGG features (Rodrigues & Pereira's LabelMe head).
HEAD = ["--input", "features", "--head", "mlp", "--head-width", "128", "--head-dropout", "0.5"]
SPLITS = {"train": "train", "validate": "valid", "test": "test"}


def ingest(data: Path, out: Path) -> None:
    """``ltv ingest answers``: one label set per worker, the features and the truth of every split."""
    if out.exists():
        return
    files = []
    for split, name in SPLITS.items():
        files += ["--features", f"{split}={data / f'LabelMe_VGG_avg_{name}.npy'}",
                  "--truth", f"{split}={data / f'LabelMe_Z_{name}.txt'}"]
    ltv("ingest", "answers", "--out", out, "--answers", f"train={data / 'answers.txt'}", *files)


def run_name(method: str, seed: int) -> str:
    return f"{method.replace(' ', '_').replace(',', '')}__s{seed}"


def train_all(dataset: Path, work: Path, methods: list[str], seeds: list[int], common: list[str], jobs: int) -> None:
    """Every (method, seed) not yet trained, ``jobs`` at a time, one thread each; slow votes first."""
    todo = [(m, s) for m in methods for s in seeds if not (work / "runs" / f"{run_name(m, s)}.done").exists()]

    def train(job: tuple[str, int]) -> None:
        method, seed = job
        folder = work / "runs" / run_name(method, seed)
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted run starts again
        ltv("train", dataset, *METHODS[method], *common, "--seed", seed, "--out", folder, threads=1)
        (work / "runs" / f"{run_name(method, seed)}.done").touch()
        print(f"trained {method}, seed {seed}", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(train, sorted(todo, key=lambda job: ("paper" not in job[0] and "reliability" not in job[0]))))


def exported_accuracy(run: Path, dataset: Dataset, out: Path) -> float:
    """``ltv export-labels`` of the best checkpoint, scored against the train split's truth."""
    if not out.exists():
        ltv("export-labels", run, dataset.path, "--out", out, "--device", "cpu", threads=1)
    frame = pd.read_csv(out)
    rows = dataset.indices("train")
    labels = frame["binarised"].to_numpy().reshape(len(rows), len(dataset.classes))
    truth = dataset.ground_truth_targets()[0][rows]
    return float(np.mean(labels.argmax(1) == truth.argmax(1)))


def test_accuracies(dataset: Path, work: Path, runs: dict[str, Path]) -> dict[str, float]:
    """``ltv evaluate`` of every run on the test split: accuracy by run name."""
    out = work / "eval"
    names = sorted(f"{name}={path}" for name, path in runs.items())
    if not (out / "runs.json").exists() or json.loads((out / "runs.json").read_text()) != names:
        shutil.rmtree(out, ignore_errors=True)
        ltv("evaluate", *names, "-d", dataset, "--bootstrap", "0", "-o", out, threads=1)
        (out / "runs.json").write_text(json.dumps(names))
    return overall_scores(out, "model")


def table(work: Path, dataset: Dataset, methods: list[str], seeds: list[int]) -> str:
    """One row per method over the seeds whose run finished (the seeds column says which)."""
    done = {m: [s for s in seeds if (work / "runs" / f"{run_name(m, s)}.done").exists()] for m in methods}
    runs = {run_name(m, s): work / "runs" / run_name(m, s) for m in methods for s in done[m]}
    test = test_accuracies(dataset.path, work, runs)
    (work / "labels").mkdir(exist_ok=True)
    lines = ["| method | seeds | refined labels (training, best epoch) | same, from `ltv export-labels` | test accuracy |",
             "|---|---|---|---|---|"]
    for method in methods:
        names = [run_name(method, s) for s in done[method]]
        reported = [best_record(runs[n]).get("refined_accuracy") for n in names]
        exported = [exported_accuracy(runs[n], dataset, work / "labels" / f"{n}.csv") for n in names]
        lines.append(f"| {method} | {' '.join(map(str, done[method])) or '-'} | {mean_sd(reported)} | "
                     f"{mean_sd(exported)} | {mean_sd([test[n] for n in names])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/labelme"), help="The LabelMe folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ltv-labelme"), help="Dataset, runs, evaluations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1) // 2), help="Trainings at a time")
    parser.add_argument("--methods", default=",".join(METHODS), help="Comma-separated, of: " + ", ".join(METHODS))
    parser.add_argument("--tables", type=Path, help="Also write the table (Markdown) to this file")
    parser.add_argument("--table-only", action="store_true", help="Train nothing: the table of the runs that finished")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if unknown := [m for m in methods if m not in METHODS]:
        parser.error(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
    work = args.work.resolve()
    ingest(args.data.resolve(), work / "labelme")
    common = [*HEAD, "--epochs", args.epochs, "--lr", args.lr, "--batch-size", args.batch_size, "--device", "cpu",
              "--workers", "0"]
    if not args.table_only:
        train_all(work / "labelme", work, methods, args.seeds, list(map(str, common)), args.jobs)
    text = (f"LabelMe, seeds {' '.join(map(str, args.seeds))}, {args.epochs} epochs, Adam {args.lr:g}, batch "
            f"{args.batch_size}, MLP head (128, dropout 0.5) on the VGG-16 features\n\n"
            + table(work, Dataset.open(work / "labelme"), methods, args.seeds) + "\n")
    print("\n" + text)
    if args.tables:
        write_text(args.tables, text)


if __name__ == "__main__":
    main()
