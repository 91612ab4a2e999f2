"""Does the vote learn whom to believe? The votes against the label-only baselines (docs/results.md, issue 8).

For each seed (annotators drawn and model initialised with that seed) and
noise level, trains with ``ltv`` commands (``ltv_runs.py``): ``mv``, ``single``
on the soft mean and on Dawid-Skene labels, ``cm``, ``ltv --vote paper``,
``ltv --vote reliability`` and the same with ``--model-evidence 1``, plus a
clean-label ceiling. Prints per noise level the test score (accuracy, or ROC
AUC for PneumoniaMNIST), the accuracy of the refined training labels, the
adversary's (AD) mean vote weight where there is one and the mean weight on
correct vs wrong labels, as mean ± standard deviation over the seeds.

Usage::

    python examples/vote_comparison.py --source cifar --noise 0.3 0.5 --work /tmp/ltv-experiments
    python examples/vote_comparison.py --source pneumonia --annotators HS:0.15,HS:0.3,SF:0.5 --noise 0
    python examples/vote_comparison.py --source cifar --annotators HS,OC,SF,AVG --hardness 4

Noise levels run in the order given (the clean ceilings first), so under
``--budget`` the first levels are the ones that finish; a level's table
averages the seeds whose runs all finished and says which. ``--tables FILE``
also writes the tables (Markdown, with their settings) to FILE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltv_runs import CLEAN, METHODS, Plan, add_training_arguments, mean_sd, run_plan

from ltvcli.atomic import write_text

DEFAULT_ANNOTATORS = {"cifar": "HS,AD,OC,SF,AVG", "pneumonia": "HS:0.15,HS:0.3,SF:0.5"}


def make_plan(source: str, annotators: str, levels: list[float], seeds: list[int], hardness: float,
              methods: list[str]) -> Plan:
    """The clean ceilings, then one wave per noise level: each of ``methods`` on every seed's annotators."""
    plan = Plan()
    for seed in seeds:
        plan.add_clean_ceiling(seed, source)
    for wave, level in enumerate(levels):
        for seed in seeds:
            data = plan.dataset(annotators, level, seed, source, hardness)
            for name in methods:
                plan.add(data, name, METHODS[name], seed, wave)
    return plan


def finished_seeds(plan: Plan, results: dict, source: str, annotators: str, level: float, seeds: list[int],
                   hardness: float) -> list[int]:
    """The seeds whose runs at ``level`` and clean ceiling all finished (and were evaluated)."""
    return [s for s in seeds if plan.dataset(annotators, level, s, source, hardness) in results["test"]
            and plan.dataset(CLEAN, 0.0, s, source) in results["test"]]


def table(plan: Plan, results: dict, source: str, annotators: str, level: float, seeds: list[int],
          hardness: float, methods: list[str]) -> str:
    datasets = [plan.dataset(annotators, level, s, source, hardness) for s in seeds]
    records = {name: [results["records"][f"{d}__{name}"] for d in datasets] for name in methods}
    metric = "test accuracy" if source == "cifar" else "test ROC AUC"
    lines = [f"| method | {metric} | refined-label accuracy | AD mean weight | weight on correct / wrong labels |",
             "|---|---|---|---|---|"]
    for name, rows in records.items():
        weights = f"{mean_sd([r.get('weight_correct') for r in rows])} / {mean_sd([r.get('weight_wrong') for r in rows])}" \
            if rows[0].get("weight_correct") is not None else "-"
        lines.append(f"| {name} | {mean_sd([results['test'][d][name] for d in datasets])} | "
                     f"{mean_sd([r.get('refined_accuracy') for r in rows])} | "
                     f"{mean_sd([r.get('weight_AD') for r in rows])} | {weights} |")
    clean = [results["test"][plan.dataset(CLEAN, 0.0, s, source)]["clean"] for s in seeds]
    lines.append(f"| clean labels (ceiling) | {mean_sd(clean)} | 1 | - | - |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_arguments(parser)
    parser.add_argument("--tables", type=Path, help="Also write the tables (Markdown) to this file")
    parser.add_argument("--source", choices=sorted(DEFAULT_ANNOTATORS), default="cifar")
    parser.add_argument("--annotators", default=None, help="`ltv simulate --annotators` (default per source)")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--hardness", type=float, default=0.0,
                        help="`ltv simulate --hardness`: > 0 gathers the errors on the hard images")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"Methods to compare, comma-separated (default all: {','.join(METHODS)})")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if unknown := [m for m in methods if m not in METHODS]:
        parser.error(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
    annotators = args.annotators or DEFAULT_ANNOTATORS[args.source]
    plan = make_plan(args.source, annotators, args.noise, args.seeds, args.hardness, methods)
    results = run_plan(plan, args, f"vote_comparison_{args.source}", labellers=False)
    sections = []
    for level in args.noise:
        seeds = finished_seeds(plan, results, args.source, annotators, level, args.seeds, args.hardness)
        heading = (f"{args.source}, annotators {annotators}, noise {level:g}, hardness {args.hardness:g}, "
                   f"seeds {' '.join(map(str, seeds)) or 'none'}")
        if seeds != args.seeds:
            heading += f" (of {' '.join(map(str, args.seeds))}: the others did not finish within --budget)"
        heading += (f", {args.epochs} epochs, arch {args.arch}, batch {args.batch_size}, lr {args.lr:g}, "
                    f"device {args.device}, {args.jobs} trainings at a time")
        sections.append(heading + ("\n\n" + table(plan, results, args.source, annotators, level, seeds,
                                                   args.hardness, methods) if seeds else ""))
    text = "\n\n".join(sections) + "\n"
    print("\n" + text)
    if args.tables:
        write_text(args.tables, text)


if __name__ == "__main__":
    main()
