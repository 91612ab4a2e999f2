"""The simulated refinement loop behind docs/results.md (CPU-sized: tiny network, few epochs).

Runs ``ltv refine-sim``'s API on a dataset built by ``examples/refine_datasets.py``
and writes, under OUT: ``<name>.csv`` (one row per seed, strategy and round),
``<name>_summary.csv`` and ``<name>.md`` (the markdown table of the results page).
The command-line equivalent of the defaults::

    ltv refine-sim DATA/pneumonia-noisy --budget 100 --rounds 3 --strategies entropy,loss,random,none \
        --seeds 0,1,2 --arch tiny --epochs 15 --warmup 10 --vog-epochs 5 --recal-epochs 2 --out OUT/x.csv

Usage::

    python examples/refine_results.py --dataset /tmp/refine-data/pneumonia-noisy --name pneumonia \
        --budget 100 --out /tmp/refine-results
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from ltvcli.atomic import write_csv, write_text
from ltvcli.refine import CoteachConfig, simulate_refinement, summarize
from ltvcli.refine.simulate_loop import METRICS


def markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table: mean ± sd over seeds, and the paired difference to random."""
    header = ["strategy", "round", "labels re-read", "errors fixed", "label accuracy", "test AUC", "test accuracy",
              "AUC vs random (seeds better)", "label acc. vs random (seeds better)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [row["strategy"], str(row["round"]), f"{row['budget']:.0f}", f"{row['corrected']:.1f}"]
        cells += [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}" for m in METRICS]
        cells += [f"{row['test_auc_vs_random']:+.3f} ({row['test_auc_wins']}/{row['seeds']})",
                  f"{row['label_accuracy_vs_random']:+.4f} ({row['label_accuracy_wins']}/{row['seeds']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--strategies", default="entropy,loss,random,none")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--recal-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    config = CoteachConfig(arch="tiny", epochs=args.epochs, warmup=10, vog_epochs=5, mix_ratio=0.2,
                           batch_size=args.batch_size, lr=1e-3, device="cpu", workers=1)
    start = time.perf_counter()
    results = simulate_refinement(args.dataset, config, budget=args.budget, rounds=args.rounds,
                                  strategies=args.strategies.split(","), seeds=[int(s) for s in args.seeds.split(",")],
                                  recal_epochs=args.recal_epochs)
    summary = summarize(results)
    write_csv(args.out / f"{args.name}.csv", results)
    write_csv(args.out / f"{args.name}_summary.csv", summary)
    write_text(args.out / f"{args.name}.md", markdown(summary))
    print(markdown(summary))
    print(f"{args.name}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
