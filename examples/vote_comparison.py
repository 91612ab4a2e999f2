"""Compare the paper's vote with the reliability vote and the label-only baselines (docs/results.md).

Builds the CIFAR-10 subset (via ``refine_datasets.build_cifar``, reading the
shared .npz at run time), replaces its labels by the paper's five simulated
annotators (HS, SF, OC, AD, AVG) at ``--noise``, and trains each method for
each seed: mv, single soft_mean, single dawid_skene, cm, ltv --vote paper,
ltv --vote reliability. Prints one table: test accuracy, the accuracy of the
refined training labels and the adversary's (AD) mean vote weight at the best
epoch, as mean ± standard deviation over the seeds.

Usage::

    python examples/vote_comparison.py --data ../shared/data --out /tmp/vote-cmp --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ltvcli.dataset import Dataset
from ltvcli.simulate import simulate_dataset
from ltvcli.train.config import TrainConfig
from ltvcli.train.loop import train
from ltvcli.train.predict import predict_probabilities
from refine_datasets import build_cifar

ANNOTATORS = ["HS", "SF", "OC", "AD", "AVG"]
METHODS = {
    "mv": {"method": "mv"},
    "soft_mean": {"method": "single", "label_set": "soft_mean"},
    "dawid_skene": {"method": "single", "label_set": "dawid_skene"},
    "cm": {"method": "cm"},
    "ltv paper": {"method": "ltv", "vote": "paper"},
    "ltv reliability": {"method": "ltv", "vote": "reliability"},
}


def test_accuracy(run: Path, data: Dataset) -> float:
    """Accuracy of the best checkpoint on the test split against the clean labels."""
    _, probs = predict_probabilities(run, data, "test", "best", "cpu")
    truth = np.asarray(data.ground_truth)[data.indices("test")]
    return float((probs.argmax(1) == truth).mean())


def best_record(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in reversed(records) if r["best"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--cifar-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--table-only", action="store_true", help="Train nothing: tabulate the finished runs.")
    args = parser.parse_args()
    clean = args.out / "cifar"
    if not clean.exists():
        build_cifar(args.data, clean, args.cifar_train)
    noisy = args.out / f"cifar-noisy-{args.noise:g}"
    if not noisy.exists():
        simulate_dataset(clean, noisy, annotators=ANNOTATORS, noise=args.noise, seed=0)
    data = Dataset.open(noisy)
    scores: dict[str, list[tuple]] = {name: [] for name in METHODS}
    for seed in args.seeds:  # seed-major, so that an interrupted comparison still covers every method
        for name, options in METHODS.items():
            run = args.out / "runs" / f"{args.noise:g}-{name.replace(' ', '-')}-{seed}"
            if not (run / "best.pt").exists():
                if args.table_only:
                    continue
                train(TrainConfig(dataset=str(noisy), out=str(run), epochs=args.epochs, arch=args.arch, seed=seed,
                                  batch_size=64, lr=1e-3, device="cpu", workers=0, **options))
            record = best_record(run)
            scores[name].append((test_accuracy(run, data), record.get("refined_accuracy"), record.get("weight_AD")))
    print(f"noise {args.noise:g}, seeds finished per method {[len(rows) for rows in scores.values()]}, "
          f"{args.epochs} epochs, arch {args.arch}, "
          f"{len(data.indices('train'))} train images")
    print("| method | test accuracy | refined-label accuracy | AD mean weight |")
    print("|---|---|---|---|")
    for name, rows in scores.items():
        print(f"| {name} | " + " | ".join(_spread([row[i] for row in rows]) for i in range(3)) + " |")


def _spread(values: list[float | None]) -> str:
    """mean ± standard deviation over seeds, or '-' where the method has no such value."""
    if not values or any(v is None for v in values):
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


if __name__ == "__main__":
    main()
