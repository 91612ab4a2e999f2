"""Training throughput, side by side: plain step, LTV (all / last), the naive LTV loop, the cross-fitted vote, and a
whole epoch.

Rows 1-6 are the loop's own ``train_step`` (autocast, backward, the method's
gradient averaging, Adam) on one batch already on the device, so they
measure the model-side cost of each method:

* ``plain``     the model + masked BCE on one label set (``--method single``);
* ``ltv-all``   learning-to-vote, ``--meta-scope all`` (exact, the paper);
* ``ltv-last``  learning-to-vote, ``--meta-scope last`` (layer4 + FC only);
* ``naive``     the same vote and loss, but the M virtual models built the
                obvious way: a deepcopy per label set with its own forward,
                backward and SGD step, then its feature forward;
* ``crossfit``  the cross-fitted vote (the default), its heads on the frozen
                network as built (``initial``: one more forward, no backward)
                or on the classifier's feature (``trained``).

Row 7 trains real epochs of ``--method single`` with :class:`Trainer` on a
generated dataset folder (memory-mapped uint8 cache, prefetch thread, device
labels, diagnostics) and compares its img/s with the ``plain`` step: a ratio
near 1.0 means the data path is hidden behind the compute.

Every row is timed ``--repeats`` times, the rows interleaved, and the best
round is kept: on a shared machine that is the round least disturbed by others.
``peak GiB`` is the most CUDA memory a row's own tensors held during a round
(torch's allocated bytes: model, optimizer state, batch and activations; the
epoch row's Trainer with its device labels), the other rows' models left
out, so each row reads as if it ran alone; ``--json FILE`` also writes the table as
JSON (the GPU suite, ``benchmarks/gpu_suite.py``, reads it).

Example (report ratios; absolute numbers only from the machine that ran them)::

    python benchmarks/bench_train.py --arch resnet50 --size 256 --batch 32 --label-sets 4 --device cuda
    python benchmarks/bench_train.py --arch tiny --size 32 --batch 32 --label-sets 4 --device cpu --steps 20
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ltvcli.atomic import write_json
from ltvcli.console import set_verbosity
from ltvcli.dataset import DatasetSpec, LabelSet, build_dataset
from ltvcli.fusion import LtvOptions, make_method
from ltvcli.fusion.base import Batch, FusionMethod, masked_bce
from ltvcli.fusion.ltv import LearningToVote
from ltvcli.models import build_model
from ltvcli.runs.config import TrainConfig
from ltvcli.runtime.determinism import deterministic
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.runtime.distributed import unwrap
from ltvcli.train.trainer import Trainer, train_step

N_CLASSES = 14


class NaiveVote(LearningToVote):
    """Learning-to-vote with the virtual models built literally: M deep copies, M extra forward+backward passes."""

    def virtual_features(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                         trunk_output: torch.Tensor) -> torch.Tensor:
        features = []
        for m in range(self.n_label_sets):
            twin = copy.deepcopy(unwrap(model))
            loss = masked_bce(twin(batch.images), batch.targets[:, m], batch.mask[:, m])
            grads = torch.autograd.grad(loss, list(twin.parameters()))
            with torch.no_grad():
                torch._foreach_sub_(list(twin.parameters()), grads, alpha=self.options.alpha)
                features.append(twin.features(batch.images))
        return torch.stack(features, dim=1)


def label_set_names(m: int) -> list[str]:
    return [f"set{i}" for i in range(m)]


def make_methods(n_sets: int, batch: int) -> dict[str, FusionMethod]:
    shape = {"n_label_sets": n_sets, "n_classes": N_CLASSES, "multilabel": True, "label_set_names": label_set_names(n_sets)}

    def crossfit(evidence: str) -> FusionMethod:
        """The cross-fitted vote, its table fitted on random labels of the batch's rows (0..batch-1)."""
        method = make_method("ltv", **shape, options={"vote": "crossfit", "evidence": evidence})
        said = (np.random.default_rng(0).random((batch, n_sets, N_CLASSES)) < 0.3).astype(np.float32)
        method.fit_labels(said, np.ones_like(said, dtype=bool))
        return method

    return {
        "plain": make_method("single", **shape, options={"label_set": "set0"}),
        "ltv-all": make_method("ltv", **shape, options={"meta_scope": "all"}),
        "ltv-last": make_method("ltv", **shape, options={"meta_scope": "last"}),
        "naive": NaiveVote(n_sets, N_CLASSES, True, LtvOptions(meta_scope="all"), label_set_names(n_sets)),
        "crossfit (initial)": crossfit("initial"),
        "crossfit (trained)": crossfit("trained"),
    }


class Row:
    """A table row: img/s of each timed round, and the peak CUDA memory (GiB)."""

    def __init__(self) -> None:
        self.speeds: list[float] = []
        self.peak = float("nan")

    @property
    def speed(self) -> float:
        """The best round: the least disturbed by anything else running on the machine."""
        return max(self.speeds)


class StepRow(Row):
    """One method's model, optimizer and fixed device batch, timed in rounds interleaved with the other rows."""

    def __init__(self, method: FusionMethod, args: argparse.Namespace, device: torch.device):
        super().__init__()
        torch.manual_seed(0)
        self.args, self.device = args, device
        before = _allocated(device)
        model = build_model(args.arch, N_CLASSES, in_channels=1, image_size=args.size).to(device)
        self.model = model.to(memory_format=torch.channels_last) if device.type == "cuda" else model
        method.attach(self.model)  # the cross-fitted vote keeps a frozen copy of the network as built
        self.method = method.to(device)
        images = torch.rand(args.batch, 1, args.size, args.size, device=device)
        targets = (torch.rand(args.batch, args.label_sets, N_CLASSES, device=device) < 0.3).float()
        mask = torch.rand(args.batch, args.label_sets, N_CLASSES, device=device) > 0.1
        self.batch = Batch(images, targets, mask, torch.arange(args.batch, device=device))
        self.optimizer = torch.optim.Adam([*self.model.parameters(), *self.method.trainable_parameters()], lr=1e-4)
        self.steps(args.warmup)
        self.resident = _allocated(device) - before  # model, optimizer state and batch, kept between steps

    def steps(self, n: int) -> None:
        for _ in range(n):
            train_step(self.model, self.method, self.optimizer, self.batch, self.device)
        _sync(self.device)

    def time_round(self) -> None:
        """Time ``--steps`` steps; keep img/s and the peak CUDA memory (GiB) of this row's own tensors."""
        base = _reset_peak(self.device)
        start = time.perf_counter()
        self.steps(self.args.steps)
        self.speeds.append(self.args.batch * self.args.steps / (time.perf_counter() - start))
        if self.device.type == "cuda":
            self.peak = (torch.cuda.max_memory_allocated() - base + self.resident) / 2**30


class EpochRow(Row):
    """Real training epochs of ``--method single`` from a generated dataset folder's image cache.

    Each round trains one epoch with a fresh :class:`Trainer` (memory-mapped
    uint8 cache, reader thread, device labels, diagnostics) and keeps its
    img/s, which counts training time only (not validation or checkpoints).
    """

    def __init__(self, args: argparse.Namespace, device: torch.device, folder: Path):
        super().__init__()
        rng = np.random.default_rng(0)
        n_train = args.batch * args.steps
        n = n_train + args.batch
        spec = DatasetSpec(
            task="multilabel", classes=[f"class{c}" for c in range(N_CLASSES)],
            manifest=pd.DataFrame({"image_id": [f"img{i:06d}" for i in range(n)], "source": "",
                                   "split": ["train"] * n_train + ["validate"] * args.batch}),
            label_sets=[LabelSet(name, name) for name in label_set_names(args.label_sets)],
            labels=(rng.random((n, args.label_sets, N_CLASSES)) < 0.3).astype(np.int8),
            pixels=rng.integers(0, 256, (n, args.size, args.size), dtype=np.uint8),
        )
        self.dataset = build_dataset(spec, folder / "ds", size=args.size, channels=1)
        self.args, self.device, self.folder = args, device, folder

    def time_round(self) -> None:
        run = self.folder / f"run{len(self.speeds)}"
        config = TrainConfig(dataset=str(self.dataset.path), out=str(run), method="single", epochs=1,
                             arch=self.args.arch, batch_size=self.args.batch, device=self.device.type,
                             workers=self.args.workers, checkpoint_every=0, method_options={"label_set": "set0"})
        base = _reset_peak(self.device)
        Trainer(config, self.device).fit()
        self.speeds.append(json.loads((run / "metrics.jsonl").read_text())["img_per_s"])
        if self.device.type == "cuda":  # the Trainer builds its own model, optimizer and device labels
            self.peak = (torch.cuda.max_memory_allocated() - base) / 2**30


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _allocated(device: torch.device) -> int:
    """Bytes held by live CUDA tensors (0 off CUDA)."""
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def _reset_peak(device: torch.device) -> int:
    """Start a new CUDA peak count; returns the bytes already held, which belong to the other rows."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return _allocated(device)


def precision(device: torch.device) -> str:
    """The precision the loop's steps run at on ``device``: its autocast dtype (bf16 on recent GPUs), else fp32."""
    context = autocast(device)
    dtype = context.fast_dtype if isinstance(context, torch.autocast) else torch.float32
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def table(rows: dict[str, Row]) -> list[dict]:
    """The printed table as records: img/s, the ratios to the plain step and the naive loop, peak GiB (NaN: None)."""
    plain, naive = rows["plain"].speed, rows["naive"].speed
    return [{"row": name, "img_per_s": row.speed, "x_plain": row.speed / plain, "x_naive": row.speed / naive,
             "peak_gib": None if np.isnan(row.peak) else row.peak} for name, row in rows.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--label-sets", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row (and epoch length)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per row (interleaved); best kept")
    parser.add_argument("--workers", type=int, default=2, help="reader threads of the epoch row")
    parser.add_argument("--json", type=Path, help="also write the table, with the settings, to this JSON file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    set_verbosity(0)

    with deterministic(), tempfile.TemporaryDirectory() as tmp:
        rows: dict[str, Row] = {
            name: StepRow(method, args, device) for name, method in make_methods(args.label_sets, args.batch).items()}
        rows["epoch from cache (single)"] = EpochRow(args, device, Path(tmp))
        for _ in range(args.repeats):  # interleaved, so every row sees the same moments of a shared machine
            for row in rows.values():
                row.time_round()

    records = table(rows)
    print(f"{args.arch} {args.size}px, batch {args.batch}, M={args.label_sets}, C={N_CLASSES}, {device}, "
          f"{precision(device)}, best of {args.repeats} x {args.steps} steps")
    print(f"{'row':28s} {'img/s':>9s} {'x plain':>8s} {'x naive':>8s} {'peak GiB':>9s}")
    for record in records:
        peak = float("nan") if record["peak_gib"] is None else record["peak_gib"]
        print(f"{record['row']:28s} {record['img_per_s']:9.1f} {record['x_plain']:8.2f} {record['x_naive']:8.2f} "
              f"{peak:9.2f}")
    print("epoch from cache near 1.00 x plain: data loading is hidden behind the compute")
    if args.json:
        settings = {key: getattr(args, key) for key in ("arch", "size", "batch", "label_sets", "steps", "warmup",
                                                        "repeats", "workers")}
        write_json(args.json, {**settings, "device": str(device), "precision": precision(device),
                               "n_classes": N_CLASSES, "rows": records})


if __name__ == "__main__":
    main()
