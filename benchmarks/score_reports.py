"""Score ltv's report labeller against per-report ground truth: sensitivity, specificity and F1 per finding.

    PYTHONPATH=. python benchmarks/score_reports.py --reports indiana_reports.csv --truth truth.csv
    PYTHONPATH=. python benchmarks/score_reports.py --reports indiana_reports.csv --mesh

``--reports`` is OpenI's ``indiana_reports.csv`` (uid, findings, impression);
each report's text is built as ``ltv ingest openi`` stores it
("FINDINGS: ...\\nIMPRESSION: ..."). ``--truth`` is a CSV with ``uid`` and
one column per finding holding 1, 0 or blank (unknown), e.g. OpenI's MeSH
coding mapped to the findings. ``--mesh`` instead maps the reports' own
``MeSH`` column (``Problems`` where it is empty) with ltv's OpenI MeSH table
(:mod:`ltvcli.ingest.mesh`, from the ``sources`` work; ``--mesh-map`` for
another table). Reports without text, and blank truth cells, are left out. The u0
label set counts uncertain as negative, u1 as positive; "not mentioned" is
negative in both. Only counts and rates are printed, never report text.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from ltvcli.dataset.labelsets import apply_policy
from ltvcli.findings import FINDINGS
from ltvcli.reports.engine import ReportLabeller, versions
from ltvcli.reports.rules import load_rules


def report_text(findings: str, impression: str) -> str:
    parts = [("FINDINGS", findings.strip()), ("IMPRESSION", impression.strip())]
    return "\n".join(f"{name}: {text}" for name, text in parts if text)


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def mesh_truth(reports: pd.DataFrame, mesh_map: str | None) -> pd.DataFrame:
    """Per-report truth from the MeSH column, as ``ltv ingest openi`` derives OpenI's ground truth."""
    from ltvcli.ingest.mesh import MeshMap  # the OpenI MeSH mapping (issue 17)

    table = MeshMap.read(mesh_map)
    rows = {}
    for uid, coded, bare in zip(reports["uid"], reports["MeSH"], reports.get("Problems", reports["MeSH"])):
        text = coded.strip() or bare.strip()
        values = table.truth(text.split(";")) if text else np.full(len(FINDINGS), -1)
        rows[uid] = ["" if v == -1 else str(int(v)) for v in values]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(FINDINGS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--truth", help="CSV: uid + one column per finding (1, 0 or blank)")
    source.add_argument("--mesh", action="store_true", help="truth from the reports' MeSH column")
    parser.add_argument("--mesh-map", help="with --mesh: a MeSH mapping table (default: ltv's)")
    parser.add_argument("--rules", action="append", default=[], help="extra rules CSV (repeatable)")
    parser.add_argument("--min-positives", type=int, default=50, help="findings in the mean F1")
    args = parser.parse_args()

    reports = pd.read_csv(args.reports, dtype=str, keep_default_na=False)
    truth = mesh_truth(reports, args.mesh_map) if args.mesh else \
        pd.read_csv(args.truth, dtype=str, keep_default_na=False).set_index("uid")
    texts = [report_text(f, i) for f, i in zip(reports["findings"], reports["impression"])]
    keep = np.array([bool(t) for t in texts]) & reports["uid"].isin(truth.index).to_numpy()
    uids = reports["uid"][keep].tolist()
    findings = [f for f in FINDINGS if f in truth.columns]
    labeller = ReportLabeller(load_rules(args.rules), findings)
    start = time.perf_counter()
    raw = labeller.label([t for t, k in zip(texts, keep) if k])
    seconds = time.perf_counter() - start
    gold = truth.loc[uids, findings].to_numpy()
    print(f"{len(uids)} reports with text and truth ({int((~keep).sum())} left out), labelled in {seconds:.1f} s; "
          + ", ".join(f"{k} {v}" for k, v in versions().items()))
    rows, means = [], {}
    for policy in ("u0", "u1"):
        pred = apply_policy(raw, policy, "0")
        for j, name in enumerate(findings):
            known = gold[:, j] != ""
            y = gold[known, j].astype(int)
            p = pred[known, j]
            tp, fp = int(((p == 1) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum())
            fn, tn = int(((p == 0) & (y == 1)).sum()), int(((p == 0) & (y == 0)).sum())
            rows.append({"finding": name, "policy": policy, "positives": int(y.sum()), "negatives": int((y == 0).sum()),
                         "sensitivity": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1),
                         "f1": f1(tp, fp, fn)})
    table = pd.DataFrame(rows)
    wide = table.pivot(index="finding", columns="policy", values=["sensitivity", "specificity", "f1"])
    counts = table[table.policy == "u0"].set_index("finding")[["positives", "negatives"]]
    print(f"\n| finding | positives | negatives | u0 sens | u0 spec | u0 F1 | u1 sens | u1 spec | u1 F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in findings:
        cells = [f"{wide.loc[name, (m, p)]:.3f}" for p in ("u0", "u1") for m in ("sensitivity", "specificity", "f1")]
        print(f"| {name} | {counts.loc[name, 'positives']} | {counts.loc[name, 'negatives']} | " + " | ".join(cells) + " |")
    common = [n for n in findings if counts.loc[n, "positives"] >= args.min_positives]
    for policy in ("u0", "u1"):
        scores = [wide.loc[n, ("f1", policy)] for n in common]
        means[policy] = (float(np.mean(scores)), float(np.min(scores)), common[int(np.argmin(scores))])
        print(f"\n{policy}: mean F1 {means[policy][0]:.3f} over the {len(common)} findings with >= "
              f"{args.min_positives} positives; lowest {means[policy][1]:.3f} ({means[policy][2]})")


if __name__ == "__main__":
    main()
