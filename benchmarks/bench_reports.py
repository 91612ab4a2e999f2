"""How fast ltv labels reports: reports per second, one process and several.

    PYTHONPATH=. python benchmarks/bench_reports.py [--reports indiana_reports.csv] [--n 4000] [--processes 2]

With ``--reports`` (OpenI's indiana_reports.csv) the real reports are
labelled ("FINDINGS: ...\\nIMPRESSION: ...", as ingest stores them);
otherwise ``--n`` generated reports of similar length. Rows:

* ``nlp.pipe``: :class:`ReportLabeller` in this process (spaCy's nlp.pipe);
* ``nlp.pipe n_process``: spaCy's own multiprocessing (``n_process``);
* ``ltv workers``: what ``ltv label-reports --workers P`` runs (a pool of
  forked processes over chunks of reports, each chunk saved).

Pipeline set-up (medspaCy import, rule compilation) is timed apart. Only
counts and rates are printed, never report text.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.findings import FINDINGS
from ltvcli.reports import label as label_module
from ltvcli.reports.engine import ReportLabeller, import_medspacy, versions
from ltvcli.reports.rules import load_rules

SENTENCES = [
    "The heart is normal in size.", "The heart is mildly enlarged.", "The mediastinum is unremarkable.",
    "No focal consolidation, pneumothorax or large pleural effusion.", "Small right pleural effusion.",
    "Possible left lower lobe pneumonia.", "Cannot exclude a small pneumothorax.", "Bibasilar atelectasis.",
    "Degenerative changes of the thoracic spine.", "Calcified granuloma in the right upper lobe.",
    "Right chest port with tip in the SVC.", "Mild pulmonary vascular congestion.",
    "The lungs are clear without effusion.", "Stable nodular opacity in the left midlung.",
    "Healed right rib fractures.", "No acute cardiopulmonary abnormality.",
]


def generated(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        findings = " ".join(rng.choice(SENTENCES, size=rng.integers(3, 7), replace=False))
        impression = " ".join(rng.choice(SENTENCES, size=rng.integers(1, 3), replace=False))
        texts.append(f"FINDINGS: {findings}\nIMPRESSION: {impression} (report {_} of {n})")
    return texts


def real(path: str) -> list[str]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    texts = []
    for f, i in zip(table["findings"], table["impression"]):
        parts = [(name, text.strip()) for name, text in (("FINDINGS", f), ("IMPRESSION", i)) if text.strip()]
        if parts:
            texts.append("\n".join(f"{name}: {text}" for name, text in parts))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", help="OpenI indiana_reports.csv (default: generated reports)")
    parser.add_argument("--n", type=int, default=4000, help="generated reports (without --reports)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    start = time.perf_counter()
    import_medspacy()
    imported = time.perf_counter() - start
    rules, classes = load_rules(), list(FINDINGS)
    start = time.perf_counter()
    labeller = ReportLabeller(rules, classes)
    built = time.perf_counter() - start
    texts = real(args.reports) if args.reports else generated(args.n)
    words = np.mean([len(t.split()) for t in texts])
    print(f"{len(texts)} {'OpenI' if args.reports else 'generated'} reports, {words:.0f} words each on average; "
          f"{os.cpu_count()} CPUs; " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"set-up: import medspaCy {imported:.1f} s, build the pipeline {built:.2f} s\n")
    rows = []

    labeller.label(texts[:50])  # warm-up
    with timed(rows, "nlp.pipe", 1):
        reference = labeller.label(texts, batch_size=args.batch_size)
    if args.processes > 1:
        with timed(rows, "nlp.pipe n_process", args.processes):
            piped = labeller.label(texts, batch_size=args.batch_size, n_process=args.processes)
        assert (piped == reference).all()
        with tempfile.TemporaryDirectory() as tmp, timed(rows, "ltv workers", args.processes):
            pooled = label_module._label_distinct(texts, rules, classes, Path(tmp) / "out", args.processes,
                                                  args.batch_size)
        assert (pooled == reference).all()

    base = len(texts) / rows[0][2]
    print("| mode | processes | wall s | reports/s | vs one process | CPU s | reports per CPU-second |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, processes, seconds, cpu in rows:
        rate = len(texts) / seconds
        print(f"| {mode} | {processes} | {seconds:.2f} | {rate:.0f} | {rate / base:.2f}x | {cpu:.2f} | "
              f"{len(texts) / cpu:.0f} |")
    load = os.getloadavg()[0]
    print(f"\nload average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs. Reports per CPU-second "
          "(this process and its finished children, user + system) is the rate per busy core, whatever else "
          "runs; wall-clock rates and speed-ups hold only on an otherwise idle machine.")


class timed:
    """Append (mode, processes, wall seconds, CPU seconds of this process and its reaped children) to rows."""

    def __init__(self, rows: list, mode: str, processes: int):
        self.rows, self.mode, self.processes = rows, mode, processes

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.rows.append((self.mode, self.processes, time.perf_counter() - self.wall, self._cpu() - self.cpu))


if __name__ == "__main__":
    main()
