"""Reproduce the paper's CIFAR-10 proof of concept (seed 001: Tables 2-3, Figures 4-6) with `ltv` commands.

Every step is an ``ltv`` command run as a subprocess (``ltv_runs.py``: ``ltv ingest npz``,
``ltv simulate``, ``ltv train``, ``ltv evaluate``), so the numbers are what a
user gets from the CLI; rerun after an interruption and it goes on where it
stopped. This script says what to run and turns the outputs into tables and plots:

* Table 2, on the CIFAR-10 subset and on PneumoniaMNIST (``--table-sources``; one finding, so its
  label and test scores are ROC AUCs): per annotator its label accuracy (training split) and the test
  accuracy of a model trained on it; AVG, MV, CM and LTV (paper vote) models, LTV's refined-label accuracy; beside them the
  clean-label ceiling, the soft mean, Dawid-Skene labels and ``--vote reliability`` (without and with
  ``--model-evidence 1``). Seeds ``--seeds``
  (each seed draws its own annotators and initialises its own model); mean +- standard deviation.
* Table 3: LTV's mean vote weight on each annotator's correct vs wrong labels.
* Figure 4: test accuracy over the noise level (``--levels``), AVG / MV / CM / LTV, five annotators.
* Figure 5: 2-5 annotators (HS+AD, +OC, +SF, +AVG) at ``--fig5-levels``, MV / CM / LTV.
* Figure 6: all five annotators vs without AD over ``--levels``, MV / CM / LTV.
  Figures use the first seed only (one run per point).

Usage (CPU, about an hour on 2 cores with the defaults)::

    python examples/poc_reproduction.py --data ../shared/data --work /tmp/poc --figures docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltv_runs import CLEAN, METHODS, Plan, add_training_arguments, mean_sd, run_plan, single

ANNOTATORS = ["HS", "SF", "OC", "AD", "AVG"]
TABLE2_ANNOTATORS = "HS:0.3,SF:0.4,OC:0.5,AD,AVG:0.45"  # the paper's Table 2 noise levels
FIG5_GROUPS = {2: "HS,AD", 3: "HS,AD,OC", 4: "HS,AD,OC,SF", 5: "HS,AD,OC,SF,AVG"}
NO_AD = "HS,SF,OC,AVG"
FUSION = {name: METHODS[name] for name in ("mv", "cm", "ltv")}  # the paper's figures compare these
TABLE2_EXTRA = {name: METHODS[name] for name in ("soft_mean", "dawid_skene", "ltv_reliability",
                                                 "ltv_reliability_model")}


def make_plan(seeds: list[int], levels: list[float], fig5_levels: list[float], table_sources: list[str]) -> Plan:
    plan = Plan()
    for source in table_sources:  # Tables 2 and 3
        for seed in seeds:
            data = plan.dataset(TABLE2_ANNOTATORS, 0.0, seed, source)
            for annotator in ANNOTATORS:
                plan.add(data, f"single_{annotator}", single(annotator), seed)
            for name, options in {**FUSION, **TABLE2_EXTRA}.items():
                plan.add(data, name, options, seed)
            plan.add_clean_ceiling(seed, source)
    seed = seeds[0]
    for level in levels:  # Figure 4 (AVG and the fusions on all five) and Figure 6 (without AD)
        five = plan.dataset(FIG5_GROUPS[5], level, seed)
        plan.add(five, "single_AVG", single("AVG"), seed)
        for name, options in FUSION.items():
            plan.add(five, name, options, seed)
            plan.add(plan.dataset(NO_AD, level, seed), name, options, seed)
    for level in fig5_levels:  # Figure 5
        for group in FIG5_GROUPS.values():
            for name, options in FUSION.items():
                plan.add(plan.dataset(group, level, seed), name, options, seed)
    return plan


# --------------------------------------------------------------------------- tables and figures
def table2(plan: Plan, results: dict, seeds: list[int], source: str) -> str:
    """Label quality (train) and test score per annotator and fusion; multi-label sources score ROC AUC."""
    noisy = [plan.dataset(TABLE2_ANNOTATORS, 0.0, s, source) for s in seeds]
    clean = [plan.dataset(CLEAN, 0.0, s, source) for s in seeds]
    label, test = ("accuracy", "accuracy") if source == "cifar" else ("ROC AUC", "ROC AUC")
    lines = [f"| labels | label {label} (train; refined-label accuracy for fusions) | test {test} |", "|---|---|---|"]
    for annotator in ANNOTATORS:
        lines.append(f"| {annotator} | {mean_sd([results['labels'][d][annotator] for d in noisy])} | "
                     f"{mean_sd([results['test'][d]['single_' + annotator] for d in noisy])} |")
    for name in ["mv", "cm", "ltv", *TABLE2_EXTRA]:
        refined = [results["records"][f"{d}__{name}"].get("refined_accuracy") for d in noisy]
        lines.append(f"| {name} | {mean_sd(refined)} | {mean_sd([results['test'][d][name] for d in noisy])} |")
    lines.append(f"| clean (ceiling) | 1 | {mean_sd([results['test'][d]['clean'] for d in clean])} |")
    return "\n".join(lines)


def table3(plan: Plan, results: dict, seeds: list[int], source: str, name: str = "ltv") -> str:
    records = [results["records"][f"{plan.dataset(TABLE2_ANNOTATORS, 0.0, s, source)}__{name}"] for s in seeds]
    lines = ["| weight | " + " | ".join(ANNOTATORS) + " |", "|---|" + "---|" * len(ANNOTATORS)]
    for label, prefix in (("mean", "weight_"), ("on wrong labels", "weight_wrong_"),
                          ("on correct labels", "weight_correct_")):
        lines.append(f"| {label} | " + " | ".join(mean_sd([r.get(prefix + a) for r in records])
                                                 for a in ANNOTATORS) + " |")
    return "\n".join(lines)


def figures(plan: Plan, results: dict, seed: int, levels: list[float], fig5_levels: list[float],
            out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def accuracy(annotators: str, level: float, name: str) -> float:
        return results["test"][plan.dataset(annotators, level, seed)][name]

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "poc-fig4-noise.png", out / "poc-fig5-annotators.png", out / "poc-fig6-without-ad.png"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, label in (("single_AVG", "AVG"), ("mv", "MV"), ("cm", "CM"), ("ltv", "LTV")):
        ax.plot(levels, [accuracy(FIG5_GROUPS[5], lv, name) for lv in levels], marker="o", label=label)
    ax.set(xlabel="noise level", ylabel="test accuracy", title="Figure 4: noise level (5 annotators)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    fig, axes = plt.subplots(1, len(fig5_levels), figsize=(4 * len(fig5_levels), 3.5), sharey=True, squeeze=False)
    for ax, level in zip(axes[0], fig5_levels):
        for name, label in (("mv", "MV"), ("cm", "CM"), ("ltv", "LTV")):
            ax.plot(list(FIG5_GROUPS), [accuracy(g, level, name) for g in FIG5_GROUPS.values()], marker="o",
                    label=label)
        ax.set(xlabel="annotators (HS, AD, +OC, +SF, +AVG)", title=f"noise {level:.0%}", xticks=list(FIG5_GROUPS))
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].legend()
    fig.suptitle("Figure 5: number of annotators")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for (name, label), colour in zip((("mv", "MV"), ("cm", "CM"), ("ltv", "LTV")), ("C1", "C2", "C3")):
        ax.plot(levels, [accuracy(FIG5_GROUPS[5], lv, name) for lv in levels], marker="o", color=colour,
                label=f"{label}, all five")
        ax.plot(levels, [accuracy(NO_AD, lv, name) for lv in levels], marker="s", linestyle="--", color=colour,
                label=f"{label}, without AD")
    ax.set(xlabel="noise level", ylabel="test accuracy", title="Figure 6: with and without AD")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close("all")
    return paths


def sweep_table(plan: Plan, results: dict, seed: int, levels: list[float], fig5_levels: list[float]) -> str:
    """The numbers behind the figures, one row per point."""
    lines = ["| figure | annotators | noise | AVG | MV | CM | LTV |", "|---|---|---|---|---|---|---|"]
    rows = [("4/6", FIG5_GROUPS[5], lv) for lv in levels] + [("6", NO_AD, lv) for lv in levels]
    rows += [("5", g, lv) for lv in fig5_levels for g in list(FIG5_GROUPS.values())[:-1]]
    for figure, group, level in rows:
        test = results["test"][plan.dataset(group, level, seed)]
        cells = [f"{test[n]:.3f}" if n in test else "-" for n in ("single_AVG", "mv", "cm", "ltv")]
        lines.append(f"| {figure} | {group} | {level:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_arguments(parser)
    parser.add_argument("--figures", type=Path, default=None, help="Where the PNGs go (default: WORK/figures)")
    parser.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.8])
    parser.add_argument("--fig5-levels", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--table-sources", nargs="+", default=["cifar", "pneumonia"],
                        help="Datasets for Tables 2-3 (the figures use CIFAR-10)")
    args = parser.parse_args()
    plan = make_plan(args.seeds, args.levels, args.fig5_levels, args.table_sources)
    results = run_plan(plan, args, "poc_reproduction")
    paths = figures(plan, results, args.seeds[0], args.levels, args.fig5_levels, args.figures or args.work / "figures")
    for source in args.table_sources:
        seeds = ", ".join(map(str, args.seeds))
        print(f"\nTable 2, {source} (mean ± sd over seeds {seeds})\n\n{table2(plan, results, args.seeds, source)}")
        for name in ("ltv", "ltv_reliability", "ltv_reliability_model"):
            print(f"\nTable 3, {source}, {name}\n\n{table3(plan, results, args.seeds, source, name)}")
    print(f"\nFigures 4-6 (seed {args.seeds[0]})\n\n"
          f"{sweep_table(plan, results, args.seeds[0], args.levels, args.fig5_levels)}")
    print("\nwrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
