"""How instant the CLI feels: start-up time of light commands against importing typer, rich and pandas.

Every command runs in a fresh interpreter, as a user types it (``python -m
ltvcli ...`` on this checkout), and so does the baseline, ``python -c
"import typer, rich, pandas"``: the least any ltv command that reads a dataset
must import. The runs are interleaved round-robin (baseline, command 1,
command 2, ..., then again), so a change in the machine's load hits them
all alike, and the table gives each one's median wall time and its ratio to
the baseline's median. The target is a ratio of at most 2. ``import torch``
is timed beside them for scale: what every command paid before the command
modules stopped importing it. A last column says whether a command imported
torch (from ``python -X importtime``, in a separate, untimed run).

    python benchmarks/bench_cli.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ltvcli.console import set_verbosity  # noqa: E402
from ltvcli.dataset import DatasetSpec, LabelSet, build_dataset  # noqa: E402

BASELINE = ("import typer, rich, pandas", ["-c", "import typer, rich, pandas"])
TORCH = ("import torch", ["-c", "import torch"])


def commands(dataset: Path) -> list[tuple[str, list[str]]]:
    """(label, interpreter arguments) of the commands timed; DATASET is a small generated dataset."""
    return [(label, ["-m", "ltvcli", *args]) for label, args in [
        ("ltv --help", ["--help"]),
        ("ltv info DATASET", ["info", str(dataset)]),
        ("ltv ingest --help", ["ingest", "--help"]),
        ("ltv ingest mimic --help", ["ingest", "mimic", "--help"]),
        ("ltv train --help", ["train", "--help"]),
        ("ltv evaluate --help", ["evaluate", "--help"]),
        ("ltv demo --help", ["demo", "--help"]),
    ]]


def small_dataset(out: Path) -> Path:
    """A 40-image, 3-class dataset with two label sets: enough for `ltv info` to print every table."""
    rng = np.random.default_rng(0)
    n = 40
    labels = rng.integers(0, 2, (n, 2, 3)).astype(np.int8)
    manifest = pd.DataFrame({"image_id": [f"img{i:03d}" for i in range(n)], "view": "PA", "source": "",
                             "split": ["train"] * 24 + ["validate"] * 8 + ["test"] * 8})
    spec = DatasetSpec(task="multilabel", classes=["a", "b", "c"], manifest=manifest,
                       label_sets=[LabelSet(name=f"set{m}", labeller=f"set{m}") for m in range(2)], labels=labels,
                       ground_truth=labels[:, 0], pixels=rng.integers(0, 255, (n, 16, 16), dtype=np.uint8),
                       source={"name": "bench_cli"})
    return build_dataset(spec, out, size=16, channels=1).path


def run(args: list[str], env: dict) -> float:
    """Wall seconds of one ``python ARGS`` (which must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def imports_torch(args: list[str], env: dict) -> bool:
    report = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, cwd=ROOT, check=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in report.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command (median reported)")
    options = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    set_verbosity(0)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [BASELINE, *commands(small_dataset(Path(tmp) / "ds")), TORCH]
        for _, args in cases:  # warm the file cache and the bytecode caches first
            run(args, env)
        times = {label: [] for label, _ in cases}
        for _ in range(options.repeats):
            for label, args in cases:
                times[label].append(run(args, env))
        torch_used = {label: imports_torch(args, env) for label, args in cases}
    base = statistics.median(times[BASELINE[0]])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"median of {options.repeats} interleaved runs; load average at the end {load:.2f}")
    print(f"{'command':<28} {'median s':>9} {'x baseline':>11} {'imports torch':>14}")
    for label, _ in cases:
        median = statistics.median(times[label])
        print(f"{label:<28} {median:>9.3f} {median / base:>11.2f} {'yes' if torch_used[label] else 'no':>14}")


if __name__ == "__main__":
    main()
