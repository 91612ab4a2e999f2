"""Does the VoG mix keep the clean labels of the rare class? Phase 1 with and without it.

For each mix ratio and seed, runs the selection phase of ``ltv refine`` on a
dataset with ground truth on its training split and reports, per class of
the ground truth, the share of *correct* training labels that co-teaching
kept (the paper's concern: small-loss selection throws out clean labels of
under-represented classes), and the share of the suspects that are really
wrong. Writes OUT/<name>_vog.csv and OUT/<name>_vog.md.

Usage::

    python examples/refine_vog_ablation.py --dataset /tmp/refine-data/pneumonia-noisy --name pneumonia \
        --out /tmp/refine-results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.atomic import write_csv, write_text
from ltvcli.dataset import Dataset
from ltvcli.refine import CoteachConfig, select
from ltvcli.refine.targets import entry_labels


def selection_quality(data: Dataset, config: CoteachConfig) -> dict:
    """Kept share of the correct labels per true class, and the share of suspects that are wrong."""
    selection = select(data, config)
    truth = data.ground_truth[selection.rows].reshape(len(selection.rows), -1)
    correct = (entry_labels(selection.targets, data.is_multilabel) == truth) & selection.valid & (truth >= 0)
    record = {"mix_ratio": config.mix_ratio, "seed": config.seed,
              "suspects": int(selection.suspects.sum()),
              "suspects_wrong": float((~correct[selection.suspects]).mean()),
              "kept_correct": float(correct[selection.kept & selection.valid].mean())}
    for g in range(truth.shape[1]):
        for value in np.unique(truth[:, g][truth[:, g] >= 0]):
            name = f"{data.classes[g]}={value}" if data.is_multilabel else data.classes[value]
            of_class = correct[:, g] & (truth[:, g] == value)
            record[f"clean_kept[{name}]"] = float(selection.kept[of_class, g].mean())
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mix", default="0,0.2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    data = Dataset.open(args.dataset)
    records = [selection_quality(data, CoteachConfig(arch="tiny", epochs=args.epochs, warmup=10, vog_epochs=5,
                                                     mix_ratio=float(mix), seed=int(seed), device="cpu", workers=1))
               for mix in args.mix.split(",") for seed in args.seeds.split(",")]
    frame = pd.DataFrame.from_records(records)
    write_csv(args.out / f"{args.name}_vog.csv", frame)
    summary = frame.drop(columns="seed").groupby("mix_ratio").agg(["mean", "std"])
    lines = ["| mix ratio | " + " | ".join(c for c in frame.columns if c not in ("mix_ratio", "seed")) + " |"]
    lines.append("|" + "---|" * (len(frame.columns) - 1))
    for mix, row in summary.iterrows():
        cells = [f"{row[(c, 'mean')]:.3f} ± {row[(c, 'std')]:.3f}" for c in frame.columns
                 if c not in ("mix_ratio", "seed")]
        lines.append(f"| {mix:g} | " + " | ".join(cells) + " |")
    write_text(args.out / f"{args.name}_vog.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
