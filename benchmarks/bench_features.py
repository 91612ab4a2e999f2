"""Label fusion on image features at MIMIC scale: an epoch of ``ltv`` vs ``single``, and a whole ``ltv train``.

Issue 15's question: can learning-to-vote run on chest X-ray embeddings
(377,000 MIMIC images, 1,376-d) in minutes on a CPU? The benchmark generates a
dataset of features only -- ``--images`` random float32 vectors of ``--dim``
(300,000 x 1,376: 1.65 GB), ``--label-sets`` label sets of 14 findings, splits
90 / 5 / 5 % -- and then

* **epoch rows**: one training epoch of ``--method single`` and of
  ``--method ltv`` per head, each through the real loop (:class:`Trainer`:
  the feature matrix resident on the device, device labels, diagnostics),
  timed by the loop itself (training time only: ``img_per_s`` of
  metrics.jsonl), and the ratio ltv / single of the epoch times;
* **full run**: ``ltv train DATASET --input features --method ltv --epochs
  10`` as a user runs it (a child process: start-up, every epoch's
  validation and checkpoints included), its wall time against issue 15's
  target of 10 minutes.

The labels and features are random: this times the computation, not what it
learns. The load average before and after is printed, since the machine may
be shared (on a loaded 2-core machine torch's two threads wait on each
other: ``--threads 1`` may be faster; it applies to the full run too).

Example::

    python benchmarks/bench_features.py                         # 300,000 x 1,376, M = 4, linear and mlp
    python benchmarks/bench_features.py --images 20000 --full-epochs 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ltvcli.console import set_verbosity
from ltvcli.dataset import DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.vectors import VectorTable
from ltvcli.runs.config import TrainConfig
from ltvcli.runtime.device import resolve_device
from ltvcli.train.trainer import Trainer

N_CLASSES = 14
#: Rows of random vectors generated at once (the whole matrix is never held twice).
CHUNK = 50_000


def make_dataset(folder: Path, n: int, dim: int, n_sets: int, seed: int = 0) -> Path:
    """A multi-label dataset of ``n`` random feature vectors and ``n_sets`` random label sets, no images."""
    rng = np.random.default_rng(seed)
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK):
        vectors[start:start + CHUNK] = rng.standard_normal((min(CHUNK, n - start), dim), dtype=np.float32)
    ids = [f"img{i:07d}" for i in range(n)]
    n_train, n_validate = int(n * 0.9), int(n * 0.05)
    splits = ["train"] * n_train + ["validate"] * n_validate + ["test"] * (n - n_train - n_validate)
    truth = rng.random((n, N_CLASSES)) < 0.1
    flips = rng.random((n, n_sets, N_CLASSES)) < np.linspace(0.02, 0.3, n_sets)[None, :, None]
    spec = DatasetSpec(
        task="multilabel", classes=[f"finding{c}" for c in range(N_CLASSES)],
        manifest=pd.DataFrame({"image_id": ids, "split": splits, "source": ""}),
        label_sets=[LabelSet(f"set{m}", f"set{m}") for m in range(n_sets)],
        labels=(truth[:, None, :] ^ flips).astype(np.int8), ground_truth=truth.astype(np.int8), has_images=False)
    table = VectorTable(folder / "vectors.npy", "image_id", ids, np.load(folder / "vectors.npy", mmap_mode="r"))
    return build_dataset(spec, folder / "ds", size=0, channels=0, features=table).path


def epoch_seconds(dataset: Path, run: Path, method: str, head: str, batch: int, device: str) -> float:
    """Training seconds of one epoch of ``method`` with ``head``, as the loop measured them."""
    options = {"label_set": "set0"} if method == "single" else {}
    config = TrainConfig(dataset=str(dataset), out=str(run), method=method, epochs=1, input="features", head=head,
                         batch_size=batch, lr=1e-3, device=device, checkpoint_every=0, method_options=options)
    trainer = Trainer(config, resolve_device(device))
    trainer.fit()
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    return len(trainer.train_rows) / record["img_per_s"]


def full_run(dataset: Path, run: Path, head: str, batch: int, epochs: int, device: str, threads: int | None) -> float:
    """Wall seconds of ``ltv train --input features --method ltv`` in a child process, as a user would run it."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "ltvcli", "-q", "train", str(dataset), "--out", str(run), "--input", "features",
               "--head", head, "--method", "ltv", "--epochs", str(epochs), "--batch-size", str(batch), "--lr", "1e-3",
               "--device", device]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300_000)
    parser.add_argument("--dim", type=int, default=1376)
    parser.add_argument("--label-sets", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1024, help="batch size of every row and the full run")
    parser.add_argument("--heads", default="linear,mlp", help="heads of the epoch rows, comma-separated")
    parser.add_argument("--full-head", default="linear", help="head of the full run ('' to skip it)")
    parser.add_argument("--full-epochs", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_verbosity(0)
    print(f"load average before: {load()} on {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        dataset = make_dataset(folder, args.images, args.dim, args.label_sets)
        print(f"dataset: {args.images:,} x {args.dim} features, M={args.label_sets}, C={N_CLASSES} "
              f"({time.perf_counter() - start:.0f} s to generate and write)")
        rows = []
        for head in [h for h in args.heads.split(",") if h]:
            seconds = {method: epoch_seconds(dataset, folder / f"{method}-{head}", method, head, args.batch,
                                             args.device) for method in ("single", "ltv")}
            rows.append((head, seconds["single"], seconds["ltv"]))
        full = None
        if args.full_head:
            full = full_run(dataset, folder / "full", args.full_head, args.batch, args.full_epochs, args.device,
                            args.threads)

    print(f"\nbatch {args.batch}, device {args.device}; one training epoch ({int(args.images * 0.9):,} images)")
    print(f"{'head':8s} {'single s/epoch':>15s} {'ltv s/epoch':>12s} {'ltv / single':>13s}")
    for head, single, ltv in rows:
        print(f"{head:8s} {single:15.1f} {ltv:12.1f} {ltv / single:13.2f}")
    if full is not None:
        verdict = "under" if full < 600 else "over"
        print(f"\nltv train --input features --head {args.full_head} --epochs {args.full_epochs}: {full / 60:.1f} min "
              f"wall ({verdict} the 10-minute target)")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
