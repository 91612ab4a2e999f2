"""Several ranks: a sharded learning-to-vote step equals the single-process step on the whole batch.

Two CPU ranks (gloo) each take their shard of one fixed global batch and run
the loop's own ``train_step`` under DistributedDataParallel. The updated
model and vote parameters must match one process stepping on the full batch.

PyTorch's SyncBatchNorm is CUDA-only, so on CPU each rank would normalise
with its shard's statistics; the model here uses GroupNorm (per sample), which
isolates what this test is about: the all-reduced virtual gradients, DDP's
gradient averaging, the averaging of the method's own gradients and the
sharding. (On CUDA the loop converts BatchNorm to SyncBatchNorm.)
Plain SGD is used because Adam's first step is ~lr*sign(g) and would hide a
gradient that is off by a constant factor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ltvcli.fusion import make_method
from ltvcli.fusion.base import Batch
from ltvcli.models import build_model
from ltvcli.runtime import distributed
from ltvcli.runtime.loader import shard
from ltvcli.train.trainer import train_step

WORLD = 2
N, M, C, SIZE = 8, 3, 3, 8
SCOPES = ("all", "last")


def _group_norm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a per-sample GroupNorm with the same number of channels."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, nn.GroupNorm(4, child.num_features))
        else:
            _group_norm(child)
    return model


def _fixed_batch() -> Batch:
    gen = torch.Generator().manual_seed(1)
    targets = (torch.rand(N, M, C, generator=gen) < 0.5).float()
    mask = torch.rand(N, M, C, generator=gen) < 0.8  # some labels missing
    images = torch.rand(N, 1, SIZE, SIZE, generator=gen)
    return Batch(images=images, targets=targets, mask=mask, index=torch.arange(N))


def _one_step(scope: str, rows: np.ndarray, net_wrapper=lambda m: m) -> dict[str, torch.Tensor]:
    """Seeded model + LTV method, one loop step on ``rows`` of the fixed batch; the updated parameters."""
    torch.manual_seed(0)
    model = _group_norm(build_model("tiny", C, in_channels=1, image_size=SIZE))
    method = make_method("ltv", n_label_sets=M, n_classes=C, multilabel=True,
                         label_set_names=[f"s{m}" for m in range(M)], options={"meta_scope": scope})
    full = _fixed_batch()
    index = torch.from_numpy(rows)
    batch = Batch(images=full.images[index], targets=full.targets[index], mask=full.mask[index], index=index)
    before = {f"model.{k}": v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(list(model.parameters()) + list(method.parameters()), lr=0.5)
    result = train_step(net_wrapper(model), method, optimizer, batch, torch.device("cpu"))
    params = {f"model.{k}": v.detach().clone() for k, v in model.named_parameters()}
    params.update({f"method.{k}": v.detach().clone() for k, v in method.named_parameters()})
    params["weights"] = result.weights.detach().clone()
    params["moved"] = torch.tensor(max((params[k] - v).abs().max().item() for k, v in before.items()))
    return params


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for scope in SCOPES:
            rows = shard(np.arange(N), rank, WORLD)
            params = _one_step(scope, rows, lambda m: distributed.wrap_model(m, torch.device("cpu")))
            torch.save(params, Path(out_dir) / f"{scope}_rank{rank}.pt")
    finally:
        distributed.teardown()


def test_sharded_ltv_step_matches_single_process(tmp_path: Path):
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    for scope in SCOPES:
        single = _one_step(scope, np.arange(N))
        ranks = [torch.load(tmp_path / f"{scope}_rank{r}.pt") for r in range(WORLD)]
        for name, value in single.items():
            if name == "moved":
                continue
            if name == "weights":  # each rank voted on its own shard
                sharded = torch.cat([r["weights"] for r in ranks])
            else:
                sharded = ranks[0][name]
                torch.testing.assert_close(ranks[1][name], sharded, rtol=0, atol=0)  # ranks stay identical
            torch.testing.assert_close(sharded, value, rtol=1e-5, atol=1e-5, msg=f"{scope}: {name} differs")
        assert single["moved"] > 1e-3, "the step must change the parameters for the comparison to mean anything"


@pytest.mark.parametrize("vote", ["paper", "crossfit"])
def test_train_under_torchrun_two_cpu_ranks(tmp_path: Path, vote: str):
    """`torchrun -m ltvcli train` on 2 CPU ranks: one process group, rank 0 alone writes the run.

    The cross-fitted vote's epoch-end pass gathers every rank's rows, so its table of refined labels is the
    whole training split on both ranks.
    """
    from conftest import make_dataset  # here, so that the spawned ranks above need not import the CLI

    make_dataset(tmp_path / "ds", n=40, size=16)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "-m", "ltvcli", "-q", "train", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--arch", "tiny",
           "--method", "ltv", "--vote", vote, "--epochs", "2", "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["world_size"] == WORLD
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]  # written once, by rank 0
    # 24 training images in global batches of 8: 3 steps per epoch on every rank
    assert list(metrics["step"]) == [3, 6]
    weights = metrics[[f"weight_set{m}" for m in range(3)]].sum(axis=1)
    assert np.allclose(weights, 1.0, atol=1e-5)
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "last.pt").is_file()
    assert metrics["refined_accuracy"].between(0, 1).all()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_partition_each_global_batch(world: int):
    batch = np.arange(10, 21)
    parts = [shard(batch, r, world) for r in range(world)]
    assert np.array_equal(np.concatenate(parts), batch)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
