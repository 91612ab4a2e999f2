"""Build the two datasets of the active-label-refinement results (docs/results.md).

Reads the shared .npz files at run time (never copy them into the repository)
and writes, under OUT:

* ``pneumonia``        PneumoniaMNIST (MedMNIST v2, Yang et al. 2023, CC BY 4.0) as a multi-label
                       dataset with one finding, Pneumonia; its clean labels are the ground truth.
                       This copy's training split is imbalanced the other way round from most CXR
                       findings: 388 normal vs 3,494 pneumonia images.
* ``pneumonia-noisy``  the same with three simulated annotators (``ltv simulate``).
* ``cifar``            the CIFAR-10 subset (Krizhevsky 2009), multi-class: its first ``--cifar-train``
                       images of each split (2,500 by default, to keep the CPU runs short: all 1,017 test
                       images; 0 = all 5,170 training ones) with 10 % of the training ones held out
                       (seeded) as the validate split.
* ``cifar-noisy``      the same with simulated annotators.

Usage::

    python examples/refine_datasets.py --data ../shared/data --out /tmp/refine-data
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltvcli.ingest.npz import ingest_npz
from ltvcli.simulate import simulate_dataset

PNEUMONIA_ANNOTATORS = ["HS", "SF", "OC"]
CIFAR_ANNOTATORS = ["HS", "SF", "OC"]


def build_pneumonia(data: Path, out: Path) -> Path:
    """PneumoniaMNIST with its own train / val / test splits, one finding (``ltv ingest npz``)."""
    ingest_npz(path=data / "pneumoniamnist.npz", out=out, task="multilabel", classes=["Pneumonia"])
    return out


def build_cifar(data: Path, out: Path, n_train: int, seed: int = 0) -> Path:
    """The first ``n_train`` images of each split (0 = all), 10 % of the training ones held out (seeded)."""
    ingest_npz(path=data / "cifar10_subset.npz", out=out, val_fraction=0.1, seed=seed, limit=n_train or None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--cifar-train", type=int, default=2500)
    args = parser.parse_args()
    simulate_dataset(build_pneumonia(args.data, args.out / "pneumonia"), args.out / "pneumonia-noisy",
                     annotators=PNEUMONIA_ANNOTATORS, noise=args.noise, seed=0)
    simulate_dataset(build_cifar(args.data, args.out / "cifar", args.cifar_train), args.out / "cifar-noisy",
                     annotators=CIFAR_ANNOTATORS, noise=args.noise, seed=0)


if __name__ == "__main__":
    main()
