"""How good are label-only aggregators when the annotators err on the hard images? (docs/annotators.md)

For each noise level and ``ltv simulate --hardness`` value, simulates the
annotators on a multi-class dataset (e.g. the CIFAR-10 subset from ``ltv
ingest npz``) through the Python API, and prints the accuracy of the majority
vote and of Dawid-Skene labels on the training split, and how often the true
class is said by no annotator (which no aggregator of labels alone can fix).
No training: seconds.

Usage::

    ltv ingest npz ../shared/data/cifar10_subset.npz --out /tmp/cifar --val-fraction 0.2
    python examples/hardness_labels.py /tmp/cifar --annotators HS,SF,OC,AVG --noise 0.3 0.5 --hardness 0 4
"""

from __future__ import annotations

import argparse

import numpy as np

from ltvcli.dataset import Dataset
from ltvcli.dataset.format import as_targets
from ltvcli.fusion.aggregators import dawid_skene, majority_vote
from ltvcli.simulate import annotator_matrices, draw_labels, image_difficulty


def label_accuracies(dataset: Dataset, annotators: list[str], noise: float, error_weight: np.ndarray | None,
                     seed: int) -> tuple[float, float, float]:
    """(majority vote, Dawid-Skene, true class said by nobody) on the training split."""
    rng = np.random.default_rng(seed)
    truth = dataset.ground_truth.astype(np.int64)
    n_classes = len(dataset.classes)
    matrices = annotator_matrices(annotators, dataset, noise).values()
    train = dataset.indices("train")
    labels = np.stack([draw_labels(truth, m, rng, error_weight) for m in matrices], axis=1)[train]
    targets, mask = as_targets(labels, False, n_classes)
    mv = majority_vote(targets, mask, multilabel=False)[0].argmax(dim=1).numpy()
    ds = dawid_skene(targets, mask, multilabel=False)[0].argmax(dim=1).numpy()
    nobody = (labels != truth[train, None]).all(axis=1)
    return float(np.mean(mv == truth[train])), float(np.mean(ds == truth[train])), float(np.mean(nobody))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="A multi-class dataset folder with ground truth")
    parser.add_argument("--annotators", default="HS,SF,OC,AVG")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--hardness", type=float, nargs="+", default=[0, 4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = Dataset.open(args.dataset)
    if dataset.is_multilabel or not dataset.has_ground_truth:
        raise SystemExit(f"{args.dataset}: expected a multi-class dataset with ground truth")
    difficulty = image_difficulty(dataset)
    print(f"annotators {args.annotators}, seed {args.seed}, training split\n")
    print("| noise | hardness | majority vote | Dawid-Skene | true class said by no annotator |")
    print("|---|---|---|---|---|")
    for noise in args.noise:
        for hardness in args.hardness:
            weights = difficulty ** hardness if hardness > 0 else None
            mv, ds, nobody = label_accuracies(dataset, args.annotators.split(","), noise, weights, args.seed)
            print(f"| {noise:g} | {hardness:g} | {mv:.3f} | {ds:.3f} | {nobody:.3f} |")


if __name__ == "__main__":
    main()
