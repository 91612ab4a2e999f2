"""Build the two datasets of the active-label-refinement results (docs/results.md).

Reads the shared .npz files at run time (never copy them into the repository)
and writes, under OUT:

* ``pneumonia``        PneumoniaMNIST (MedMNIST v2, Yang et al. 2023, CC BY 4.0) as a multi-label
                       dataset with one finding, Pneumonia; its clean labels are the ground truth.
                       This copy's training split is imbalanced the other way round from most CXR
                       findings: 388 normal vs 3,494 pneumonia images.
* ``pneumonia-noisy``  the same with three simulated annotators (``ltv simulate``).
* ``cifar``            the CIFAR-10 subset (Krizhevsky 2009), multi-class: its first ``--cifar-train``
                       training images (2,500 by default, to keep the CPU runs short; 0 = all 5,170)
                       with 10 % of them held out (seeded) as the validate split, and all 1,017 test images.
* ``cifar-noisy``      the same with simulated annotators.

Usage::

    python examples/refine_datasets.py --data ../shared/data --out /tmp/refine-data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.dataset import DatasetSpec, build_dataset
from ltvcli.simulate import simulate_dataset

PNEUMONIA_ANNOTATORS = ["HS", "SF", "OC"]
CIFAR_ANNOTATORS = ["HS", "SF", "OC"]


def manifest(prefix: str, splits: list[tuple[str, int]]) -> pd.DataFrame:
    """image ids ``<prefix>-<split>-<n>`` and the split of each image, in order."""
    ids, names = [], []
    for split, count in splits:
        ids += [f"{prefix}-{split}-{i:05d}" for i in range(count)]
        names += [split] * count
    return pd.DataFrame({"image_id": ids, "split": names, "source": ""})


def build_pneumonia(data: Path, out: Path) -> Path:
    raw = np.load(data / "pneumoniamnist.npz")
    parts = [("train", "train"), ("validate", "val"), ("test", "test")]
    pixels = np.concatenate([raw[f"{key}_images"] for _, key in parts])
    truth = np.concatenate([raw[f"{key}_labels"] for _, key in parts]).astype(np.int8).reshape(-1, 1)
    frame = manifest("pmnist", [(split, len(raw[f"{key}_images"])) for split, key in parts])
    spec = DatasetSpec(task="multilabel", classes=["Pneumonia"], manifest=frame, label_sets=[],
                       labels=np.zeros((len(frame), 0, 1), dtype=np.int8), ground_truth=truth, pixels=pixels,
                       source={"name": "pneumoniamnist", "file": "pneumoniamnist.npz"})
    build_dataset(spec, out, size=28, channels=1)
    return out


def build_cifar(data: Path, out: Path, n_train: int, seed: int = 0) -> Path:
    raw = dict(np.load(data / "cifar10_subset.npz"))
    if n_train:
        for key in ("train_images", "train_labels", "train_index"):
            raw[key] = raw[key][:n_train]
    n_train, n_test = len(raw["train_labels"]), len(raw["test_labels"])
    split = np.array(["train"] * n_train + ["test"] * n_test, dtype=object)
    held_out = np.random.default_rng(seed).permutation(n_train)[: n_train // 10]
    split[held_out] = "validate"
    frame = pd.DataFrame({"image_id": [f"cifar-train-{i}" for i in raw["train_index"]]
                          + [f"cifar-test-{i}" for i in raw["test_index"]], "split": split, "source": ""})
    truth = np.concatenate([raw["train_labels"], raw["test_labels"]]).astype(np.int16)
    spec = DatasetSpec(task="multiclass", classes=[str(c) for c in raw["class_names"]], manifest=frame,
                       label_sets=[], labels=np.zeros((len(frame), 0), dtype=np.int16), ground_truth=truth,
                       pixels=np.concatenate([raw["train_images"], raw["test_images"]]),
                       source={"name": "cifar10_subset", "file": "cifar10_subset.npz"})
    build_dataset(spec, out, size=32, channels=3)
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
