"""What a checkpoint holds, and the checks that let a run continue from one exactly.

``last.pt`` and ``best.pt`` hold the model, method and optimizer state, the
:class:`Position` (epoch, batch inside it, step, best score), the epoch's
running sums and every RNG state. The batch order is a function of
``(seed, epoch)``, so a run resumed from a checkpoint ends with the weights
and metrics of one that was never interrupted (bit-identical on CPU).

It must also be the same run: :func:`check_resume` compares the options, the
dataset's fingerprint and the report embeddings with the run's record, and
:func:`check_folder` refuses to overwrite a run or to resume nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ltvcli import __version__
from ltvcli.dataset import Dataset
from ltvcli.dataset.fingerprint import dataset_fingerprint
from ltvcli.errors import LtvError, OptionError
from ltvcli.fusion.base import FusionMethod
from ltvcli.runs.config import TrainConfig
from ltvcli.runs.folder import CHECKPOINT_FORMAT, RunFolder
from ltvcli.runs.record import FeatureInfo, RunRecord, TextInfo
from ltvcli.runtime.rng import rng_state, set_rng_state
from ltvcli.train.diagnostics import EpochStats


@dataclass
class Position:
    """Where a run is: completed epochs, batches done in the current one, steps in total, the best score so far."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None


def checkpoint_state(model: nn.Module, method: FusionMethod, optimizer: torch.optim.Optimizer,
                     position: Position, stats: EpochStats) -> dict:
    """Everything a resumed run needs, as tensors and plain values (a ``weights_only`` load reads it)."""
    return {"format": CHECKPOINT_FORMAT, "ltv_version": __version__, "model": model.state_dict(),
            "method": method.state_dict(), "optimizer": optimizer.state_dict(), **asdict(position),
            "epoch_stats": stats.state_dict() if position.batch_in_epoch else None, "rng": rng_state()}


def restore(state: dict, model: nn.Module, method: FusionMethod, optimizer: torch.optim.Optimizer,
            stats: EpochStats) -> Position:
    """Load a checkpoint into the run's objects and generators; returns where the run stood."""
    model.load_state_dict(state["model"])
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    if state["epoch_stats"] is not None:
        stats.load_state_dict(state["epoch_stats"])
    set_rng_state(state["rng"])
    return Position(**{name: state[name] for name in Position.__dataclass_fields__})


def check_folder(config: TrainConfig, folder: RunFolder) -> None:
    """A new run never overwrites another; ``resume`` needs a last.pt to continue from."""
    if config.resume and not folder.checkpoint_path("last").is_file():
        raise OptionError("resume", f"is set, but {folder.path} holds nothing to resume (no last.pt); drop it to "
                                    "start the run")
    if not config.resume and folder.has_checkpoints():
        raise LtvError(f"{folder.path}: already holds a training run (best.pt/last.pt); add `resume` to continue "
                       "it, or choose another `out`")


def check_resume(config: TrainConfig, record: RunRecord, dataset: Dataset, text: TextInfo | None,
                 folder: RunFolder, features: FeatureInfo | None = None) -> None:
    """The resumed run is the recorded one: same options (but for RESUMABLE_CHANGES), data, embeddings, features."""
    changed = config.differences(record.config)
    if changed:
        before, now = record.config.to_json(), config.to_json()
        others = "".join(f", `{name}` {before.get(name)!r} -> {now[name]!r}" for name in changed[1:])
        raise OptionError(changed[0], f"{before.get(changed[0])!r} -> {now[changed[0]]!r}{others}: the run in "
                                      f"{folder.path} cannot change on `resume`; use another `out` for a new run")
    if record.dataset.fingerprint != dataset_fingerprint(dataset):
        raise LtvError(f"{dataset.path}: not the dataset this run was trained on (its metadata, manifest "
                       f"or labels differ from the fingerprint in {folder.config_path})")
    if record.text != text:
        raise LtvError(f"{dataset.path}: its report embeddings ({_describe(text)}) are not the ones this run was "
                       f"trained on ({_describe(record.text)}); restore them or use another `out` for a new run")
    if record.features != features:
        raise LtvError(f"{dataset.path}: its image features ({_describe(features)}) are not the ones this run was "
                       f"trained on ({_describe(record.features)}); restore them or use another `out` for a new run")


def _describe(vectors: TextInfo | FeatureInfo | None) -> str:
    return "none" if vectors is None else vectors.describe()
