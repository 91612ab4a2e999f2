"""The training loop: any fusion method, one run folder, resumable, on one device or under torchrun.

Per batch the loop only calls :meth:`FusionMethod.step` and backpropagates the
loss into the model *and* the method's own parameters with one Adam (the
paper's beta). Everything method-specific lives in ``ltvcli.fusion``. With
``--text`` the model gets a text branch and every batch carries its images'
report embeddings (``Batch.text``), which the methods pass to the model.

Per epoch it scores the validation split (macro ROC AUC for multi-label,
accuracy for multi-class) against its ground truth, or against the label
sets' majority vote where there is none, keeps the best checkpoint, and
records the method's diagnostics (vote weights, entropy, and where the
training split has ground truth the accuracy of the refined labels and the
weight on correct vs wrong labels: the paper's Tables 2 and 3).

Resuming is exact: the batch order is a function of (seed, epoch), and
``last.pt`` holds the model, method, optimizer, RNG states, the position
inside the epoch and the epoch's running sums.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from ltvcli import __version__
from ltvcli.console import console, log, progress_bars, set_verbosity, warn
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.fusion import make_method, majority_vote
from ltvcli.fusion.base import Batch, FusionMethod, StepResult
from ltvcli.models import build_model
from ltvcli.text import load_text_embeddings, read_text_embedding_meta
from ltvcli.train import distributed
from ltvcli.train.config import TrainConfig
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.train.data import MIN_SHARD, DeviceLabels, ImageLoader, epoch_batches, shard
from ltvcli.train.predict import probabilities
from ltvcli.train.run import RunFolder, dataset_fingerprint

CHECKPOINT_FORMAT = 1
#: What a run's config.json records about the report embeddings it was trained with (``--text``).
TEXT_META_KEYS = ("dim", "source", "model", "pooling", "max_length")


@dataclass
class TrainResult:
    """Where a run ended: its folder, progress and best validation score."""

    run: Path
    epochs: int
    steps: int
    metric: str
    best_metric: float | None
    best_epoch: int | None


# --------------------------------------------------------------------------- public API
def train(config: TrainConfig) -> TrainResult:
    """Train (or with ``config.resume`` continue) a run; under torchrun every rank calls this."""
    device = resolve_device(config.device)
    launched = distributed.launched_by_torchrun()
    device = distributed.setup(device)
    if not distributed.is_main():
        set_verbosity(0)
    try:
        with deterministic():
            return Trainer(config, device).fit()
    finally:
        if launched:
            distributed.teardown()


def build_method(method: str, options: dict, dataset: Dataset) -> FusionMethod:
    """The fusion method for ``dataset``, its label-only statistics fitted on the training split.

    ``Batch.index`` holds dataset rows; methods compute a batch's labels from
    the batch itself, so the fitted method refines any split at export.
    """
    n_sets = len(dataset.label_set_names)
    if n_sets == 0:
        raise LtvError(f"{dataset.path}: the dataset has no label sets; there is nothing to train on")
    fusion = make_method(method, n_label_sets=n_sets, n_classes=len(dataset.classes),
                         multilabel=dataset.is_multilabel, label_set_names=dataset.label_set_names, options=options)
    targets, mask = dataset.targets()
    train = dataset.indices("train")
    fusion.fit_labels(targets[train], mask[train])
    return fusion


def train_step(model: nn.Module, method: FusionMethod, optimizer: torch.optim.Optimizer, batch: Batch,
               device: torch.device) -> StepResult:
    """One optimisation step of model and method on ``batch`` (this rank's shard under DDP).

    DDP averages the model's gradients over ranks; the method's own
    parameters (vote attention, confusion matrices) are outside DDP, so
    their gradients are averaged here.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(device):
        result = method.step(model, batch)
    result.loss.backward()
    distributed.all_reduce_mean([p.grad for p in method.parameters() if p.grad is not None])
    optimizer.step()
    return result


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Ask for deterministic kernels for the duration of a run, then restore the previous settings.

    ``warn_only``: kernels with no deterministic version (on CUDA, e.g. the
    backward of adaptive average pooling) still run, with a warning.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


# --------------------------------------------------------------------------- validation
class Validator:
    """Scores the validation split against its ground truth, or the label sets' majority vote without one."""

    def __init__(self, dataset: Dataset, seed: int, text: np.ndarray | None = None):
        self.dataset = dataset
        self.text = text
        self.rows = dataset.indices("validate")
        self.metric = "auc" if dataset.is_multilabel else "accuracy"
        self.reference: str | None = None
        self.targets = np.zeros((0, len(dataset.classes)), dtype=np.float32)
        self.mask = np.zeros_like(self.targets, dtype=bool)
        if len(self.rows) == 0:
            return
        if dataset.has_ground_truth:
            truth, truth_mask = dataset.ground_truth_targets()
            if truth_mask[self.rows].any():
                self.reference = "ground_truth"
                self.targets, self.mask = truth[self.rows], truth_mask[self.rows]
                return
        self.reference = "majority_vote"
        self.targets, self.mask = _majority_reference(dataset, self.rows, seed)

    @property
    def scorable(self) -> bool:
        """Whether any class can be scored (AUC needs both outcomes in a column)."""
        if self.dataset.is_multilabel:
            return any(_two_outcomes(self.targets[:, c], self.mask[:, c]) for c in range(self.targets.shape[1]))
        return bool(self.mask.any())

    def score(self, model: nn.Module, device: torch.device, workers: int) -> float:
        probs = probabilities(model, self.dataset, self.rows, device, workers=workers, text=self.text)
        return validation_score(probs, self.targets, self.mask, self.dataset.is_multilabel)


def validation_score(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, multilabel: bool) -> float:
    """Macro ROC AUC over the classes with both outcomes (multi-label) or accuracy (multi-class); NaN if none."""
    from sklearn.metrics import accuracy_score, roc_auc_score  # imported here: it costs seconds at CLI start

    if not np.isfinite(probs).all():
        return math.nan
    if multilabel:
        aucs = [roc_auc_score(targets[m, c], probs[m, c])
                for c in range(targets.shape[1]) if _two_outcomes(targets[:, c], m := mask[:, c])]
        return float(np.mean(aucs)) if aucs else math.nan
    labelled = mask.any(axis=1)
    if not labelled.any():
        return math.nan
    return float(accuracy_score(targets[labelled].argmax(1), probs[labelled].argmax(1)))


def _two_outcomes(column: np.ndarray, mask: np.ndarray) -> bool:
    return len(np.unique(column[mask])) == 2


def _majority_reference(dataset: Dataset, rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    targets, mask = dataset.targets()
    labels, valid = majority_vote(targets[rows], mask[rows], seed, multilabel=dataset.is_multilabel, rows=rows)
    return labels.numpy().astype(np.float32), valid.numpy()


# --------------------------------------------------------------------------- diagnostics
class EpochStats:
    """Running sums of one epoch's loss and method diagnostics, kept on the device (no sync per step)."""

    def __init__(self, multilabel: bool):
        self.multilabel = multilabel
        self.sums: dict[str, torch.Tensor] = {}
        self.seconds = 0.0

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()

    def add(self, result: StepResult, batch: Batch, labels: DeviceLabels, with_truth: bool) -> None:
        n = torch.tensor(float(len(batch.index)), device=batch.index.device)
        self._add("samples", n)
        self._add("loss", result.loss * n)
        if result.weights is not None:
            self._add_weights(result.weights.float(), batch, labels, with_truth)
        refined = result.binarised if result.binarised is not None else result.refined
        if with_truth and refined is not None:
            self._add_refined_accuracy(refined.float(), labels.truth[batch.index], labels.truth_mask[batch.index])

    def _add_weights(self, weights: torch.Tensor, batch: Batch, labels: DeviceLabels, with_truth: bool) -> None:
        per_sample = weights.mean(-1) if weights.ndim == 3 else weights
        self._add("weight", per_sample.sum(0))
        entropy = -(weights * weights.clamp_min(1e-12).log()).sum(1)
        self._add("entropy", (entropy.mean(-1) if entropy.ndim == 2 else entropy).sum())
        if not with_truth:
            return
        truth, truth_mask = labels.truth[batch.index], labels.truth_mask[batch.index]
        full = weights if weights.ndim == 3 else weights[:, :, None].expand_as(batch.targets)
        correct = batch.targets == truth[:, None, :]
        if not self.multilabel:
            correct = correct.all(-1, keepdim=True).expand_as(batch.targets)
        valid = batch.mask & truth_mask[:, None, :]
        for key, chosen in (("correct", correct & valid), ("wrong", ~correct & valid)):
            self._add(f"w_{key}", (full * chosen).sum((0, 2)))
            self._add(f"n_{key}", chosen.sum((0, 2)))

    def _add_refined_accuracy(self, refined: torch.Tensor, truth: torch.Tensor, truth_mask: torch.Tensor) -> None:
        if self.multilabel:
            valid = truth_mask & refined.isfinite()
            correct = ((refined >= 0.5) == (truth >= 0.5)) & valid
        else:
            valid = truth_mask.any(1) & refined.isfinite().all(1)
            correct = (refined.argmax(1) == truth.argmax(1)) & valid
        self._add("refined_correct", correct.sum())
        self._add("refined_count", valid.sum())

    def running_loss(self) -> float:
        return (self.sums["loss"] / self.sums["samples"]).item() if self.sums else math.nan

    def summary(self, label_set_names: list[str]) -> dict:
        """The epoch's metrics over all ranks (one all-reduce, one device-to-host copy)."""
        keys = sorted(self.sums)
        flat = torch.cat([self.sums[k].reshape(-1) for k in keys]) if keys else torch.zeros(0)
        flat = distributed.all_reduce_sum(flat).cpu().numpy()
        sums, offset = {}, 0
        for key in keys:
            size = self.sums[key].numel()
            sums[key] = flat[offset:offset + size] if self.sums[key].ndim else flat[offset]
            offset += size
        samples = float(sums.get("samples", 0.0))
        out: dict = {"loss": _ratio(sums.get("loss", 0.0), samples), "samples": int(samples)}
        if "weight" in sums:
            for name, value in zip(label_set_names, sums["weight"]):
                out[f"weight_{name}"] = _ratio(value, samples)
            out["vote_entropy"] = _ratio(sums["entropy"], samples)
            if samples > 0:
                means = {name: out[f"weight_{name}"] for name in label_set_names}
                out["vote_warning"] = vote_warning(means, out["vote_entropy"])
        if "refined_count" in sums:
            out["refined_accuracy"] = _ratio(sums["refined_correct"], sums["refined_count"])
        if "n_correct" in sums:
            for key in ("correct", "wrong"):
                out[f"weight_{key}"] = _ratio(sums[f"w_{key}"].sum(), sums[f"n_{key}"].sum())
                for name, w, n in zip(label_set_names, sums[f"w_{key}"], sums[f"n_{key}"]):
                    out[f"weight_{key}_{name}"] = _ratio(w, n)
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.seconds = dict(state["sums"]), float(state["seconds"])


#: A vote has collapsed when one label set's mean weight exceeds this.
COLLAPSE_WEIGHT = 0.9
#: A vote is uniform when its entropy exceeds this fraction of log M and every mean weight is this close to 1/M.
UNIFORM_ENTROPY, UNIFORM_SPREAD = 0.98, 0.02


def vote_warning(mean_weights: dict[str, float], entropy: float) -> str | None:
    """Why an epoch's vote is degenerate -- collapsed onto one label set, or uniform -- or None.

    Either way the vote has stopped choosing between label sets per sample:
    a collapsed vote is training on one label set, a uniform one on their
    mean (with the binarisation, a majority vote). ``mean_weights`` are the
    mean weight of each label set by name, ``entropy`` the mean per-sample
    vote entropy.
    """
    n_sets = len(mean_weights)
    if n_sets < 2:
        return None
    top = max(mean_weights, key=mean_weights.__getitem__)
    if mean_weights[top] > COLLAPSE_WEIGHT:
        return f"collapse: label set {top} has mean weight {mean_weights[top]:.3f} > {COLLAPSE_WEIGHT}"
    if entropy > UNIFORM_ENTROPY * math.log(n_sets) and all(
            abs(w - 1 / n_sets) < UNIFORM_SPREAD for w in mean_weights.values()):
        return (f"uniform: vote entropy {entropy:.3f} is near log {n_sets} = {math.log(n_sets):.3f} and every "
                f"mean weight is within {UNIFORM_SPREAD} of 1/{n_sets} (the vote is a majority vote)")
    return None


def _ratio(numerator, denominator) -> float | None:
    """numerator / denominator as a JSON-friendly float; None where undefined."""
    return float(numerator) / float(denominator) if float(denominator) > 0 else None


# --------------------------------------------------------------------------- live view
class LiveView:
    """One progress bar per epoch with the running loss and img/s; drawn by rank 0 unless --quiet."""

    REFRESH_SECONDS = 1.0

    def __init__(self):
        self.enabled = progress_bars() and distributed.is_main()
        self.progress: Progress | None = None
        self.task = None
        self.last_refresh = 0.0

    def __enter__(self) -> "LiveView":
        if self.enabled:
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} img/s"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=total, completed=done,
                                               loss="-", speed="-")

    def wants_refresh(self) -> bool:
        """Whether it is time to pull the running loss from the device (a sync) for the display."""
        return self.enabled and time.monotonic() - self.last_refresh >= self.REFRESH_SECONDS

    def update(self, done: int, loss: float | None = None, speed: float | None = None) -> None:
        if self.progress is None:
            return
        fields = {}
        if loss is not None:
            fields = {"loss": f"{loss:.4f}", "speed": f"{speed:.0f}" if speed else "-"}
            self.last_refresh = time.monotonic()
        self.progress.update(self.task, completed=done, **fields)


# --------------------------------------------------------------------------- the trainer
class Trainer:
    """Holds the state of one run: model, method, optimizer, position, best score, records."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        self.dataset = Dataset.open(config.dataset)
        self.folder = RunFolder(config.out)
        self.train_rows = self.dataset.indices("train")
        needed = MIN_SHARD * distributed.world_size()
        if len(self.train_rows) < needed:
            raise LtvError(f"{self.dataset.path}: the train split has {len(self.train_rows)} image(s); "
                           f"training needs at least {needed}")
        if config.resume and not self.folder.checkpoint_path("last").is_file():
            raise LtvError(f"{self.folder.path}: nothing to resume (no last.pt); drop --resume to start the run")
        if not config.resume and self.folder.has_checkpoints():
            raise LtvError(f"{self.folder.path}: already holds a training run (best.pt/last.pt); "
                           "add --resume to continue it, or choose another --out")
        self.text, self.text_meta = self._text_embeddings() if config.text else (None, None)
        _seed_everything(config.seed)
        model = build_model(config.arch, len(self.dataset.classes), in_channels=self.dataset.channels,
                            image_size=self.dataset.image_size,
                            pretrained=None if config.resume else config.pretrained,
                            text_dim=None if self.text is None else self.text.shape[1])
        self.model = model.to(device, memory_format=torch.channels_last) if device.type == "cuda" else model.to(device)
        self.method = build_method(config.method, config.method_options(), self.dataset).to(device)
        self.optimizer = torch.optim.Adam(list(self.model.parameters()) + list(self.method.parameters()),
                                          lr=config.lr)
        self.labels = DeviceLabels(self.dataset, device, self.text)
        self.with_truth = self.labels.truth_mask is not None and bool(
            self.labels.truth_mask[torch.from_numpy(self.train_rows).to(device)].any())
        self.validator = Validator(self.dataset, config.seed, self.text)
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.stats = EpochStats(self.dataset.is_multilabel)
        self.records: list[dict] = []
        if config.resume:
            self._restore()
        else:
            self._start()
        self.net = self._wrap(self.model)

    # ------------------------------------------------------------ setup
    def _text_embeddings(self) -> tuple[np.ndarray, dict]:
        """The report embedding of every image (``--text``), and what config.json records about them.

        Every image needs one, test included: ``ltv evaluate`` of a text run
        reads them there, so a gap is reported now rather than after training.
        """
        try:
            vectors = load_text_embeddings(self.dataset, require_all=True)
        except LtvError as exc:
            raise LtvError(f"--text: {exc}") from None
        meta = read_text_embedding_meta(self.dataset)
        return vectors, {key: meta.get(key) for key in TEXT_META_KEYS}

    def _wrap(self, model: nn.Module) -> nn.Module:
        net = distributed.wrap_model(model, self.device)
        return torch.compile(net) if self.config.compile else net

    def _run_config(self) -> dict:
        ds = self.dataset
        return {
            "ltv_version": __version__,
            "task": ds.task,
            "classes": ds.classes,
            "label_sets": ds.label_set_names,
            "method": self.config.method,
            "options": self.config.to_json(),
            "method_options": self.config.method_options(),
            "dataset": {"path": str(ds.path.resolve()), "fingerprint": dataset_fingerprint(ds),
                        "image_size": ds.image_size, "channels": ds.channels, "n_images": len(ds),
                        "n_train": int(len(self.train_rows)), "n_validate": int(len(self.validator.rows))},
            "text": self.text_meta,
            "validation": {"metric": self.validator.metric, "reference": self.validator.reference},
            "world_size": distributed.world_size(),
            "device": self.device.type,
        }

    def _start(self) -> None:
        if distributed.is_main():
            if self.validator.reference is None:
                warn(f"{self.dataset.path}: no validate split; best.pt will be the last epoch")
            elif self.validator.reference == "majority_vote":
                log("validation is scored against the label sets' majority vote (the validate split has no "
                    "ground truth)")
            self.folder.path.mkdir(parents=True, exist_ok=True)
            self.folder.write_config(self._run_config())
        distributed.barrier()

    def _restore(self) -> None:
        stored = self.folder.read_config()
        previous = TrainConfig.from_json(stored["options"])
        changed = self.config.differences(previous)
        if changed:
            detail = ", ".join(f"--{name.replace('_', '-')} {getattr(previous, name)!r} -> "
                               f"{getattr(self.config, name)!r}" for name in changed)
            raise LtvError(f"{self.folder.path}: --resume cannot change {detail}; use another --out for a new run")
        if stored["dataset"]["fingerprint"] != dataset_fingerprint(self.dataset):
            raise LtvError(f"{self.dataset.path}: not the dataset this run was trained on (its metadata, manifest "
                           f"or labels differ from the fingerprint in {self.folder.config_path})")
        if stored.get("text") != self.text_meta:
            raise LtvError(f"{self.dataset.path}: its report embeddings ({_describe_text(self.text_meta)}) are not the "
                           f"ones this run was trained on ({_describe_text(stored.get('text'))}); restore them or "
                           "use another --out for a new run")
        state = self.folder.load_checkpoint("last", map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.best_metric, self.best_epoch = state["best_metric"], state["best_epoch"]
        if state["epoch_stats"] is not None:
            self.stats.load_state_dict(state["epoch_stats"])
        _set_rng_state(state["rng"])
        self.records = [r for r in self.folder.read_metrics() if r["step"] <= self.step]
        if distributed.is_main():
            self.folder.write_config(self._run_config())
        log(f"resuming {self.folder.path} at epoch {self.epoch + 1}, step {self.step}")

    # ------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        with LiveView() as view:
            while self.epoch < self.config.epochs and not self._step_limit_reached():
                self._run_epoch(view)
        if self._step_limit_reached() and self.epoch < self.config.epochs:
            log(f"stopped at --max-steps {self.config.max_steps}; add --resume (and a larger --max-steps, or "
                "none) to continue")
        return TrainResult(self.folder.path, self.epoch, self.step, self.validator.metric, self.best_metric,
                           self.best_epoch)

    def _step_limit_reached(self) -> bool:
        return self.config.max_steps is not None and self.step >= self.config.max_steps

    def _run_epoch(self, view: LiveView) -> None:
        cfg, world = self.config, distributed.world_size()
        batches = epoch_batches(self.train_rows, cfg.batch_size, cfg.seed, self.epoch, world)
        mine = [shard(b, distributed.rank(), world) for b in batches[self.batch_in_epoch:]]
        loader = ImageLoader(self.dataset.images, mine, pin_memory=self.device.type == "cuda", workers=cfg.workers)
        view.start_epoch(self.epoch, cfg.epochs, len(batches), self.batch_in_epoch)
        self.net.train()
        self.method.train()
        mark = time.perf_counter()
        for rows, images in loader:
            batch = self.labels.batch(rows, images)
            result = train_step(self.net, self.method, self.optimizer, batch, self.device)
            self.stats.add(result, batch, self.labels, self.with_truth)
            self.batch_in_epoch += 1
            self.step += 1
            if view.wants_refresh():
                self._check_finite()
                seconds = self.stats.seconds + time.perf_counter() - mark
                view.update(self.batch_in_epoch, self.stats.running_loss(),
                            self.stats.sums["samples"].item() * world / seconds)
            else:
                view.update(self.batch_in_epoch)
            if self._step_limit_reached():
                break
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.batch_in_epoch < len(batches):
                self.stats.seconds, mark = self._elapsed(mark)
                self._save("last")
        self.stats.seconds, mark = self._elapsed(mark)
        self._check_finite()
        self._end_of_epoch(complete=self.batch_in_epoch == len(batches))

    def _elapsed(self, mark: float) -> tuple[float, float]:
        """The epoch's training seconds so far (after the device has finished its queued work)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        return self.stats.seconds + now - mark, now

    def _check_finite(self) -> None:
        loss = self.stats.running_loss()
        if not math.isfinite(loss):
            raise LtvError(f"the training loss became {loss} at epoch {self.epoch + 1}, step {self.step}; "
                           "try a smaller --lr (or --alpha for ltv)")

    def _end_of_epoch(self, complete: bool) -> None:
        """Validate, record, keep the best checkpoint, and move to the next epoch if this one is complete."""
        summary = self.stats.summary(self.dataset.label_set_names)
        metric = self.validator.score(self.model, self.device, self.config.workers) if self.validator.scorable \
            else math.nan
        improved = (not self.validator.scorable) or (
            math.isfinite(metric) and (self.best_metric is None or metric > self.best_metric))
        if improved:
            self.best_metric = metric if math.isfinite(metric) else None
            self.best_epoch = self.epoch + 1
        record = {"epoch": self.epoch + 1, "step": self.step, "partial": not complete,
                  "loss": summary.pop("loss"),
                  f"val_{self.validator.metric}": metric if math.isfinite(metric) else None,
                  "val_reference": self.validator.reference,
                  "img_per_s": _ratio(summary.pop("samples"), self.stats.seconds),
                  "best": improved, **summary}
        self.records.append(record)
        self._log_epoch(record)
        if record.get("vote_warning"):
            warn(f"epoch {record['epoch']}: the vote is degenerate ({record['vote_warning']})")
        if complete:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self.stats = EpochStats(self.dataset.is_multilabel)
        if distributed.is_main():
            self.folder.write_metrics(self.records)
        if improved:
            self._save("best")
        self._save("last")

    def _log_epoch(self, record: dict) -> None:
        metric = record[f"val_{self.validator.metric}"]
        score = f"validation {self.validator.metric} {metric:.4f} ({record['val_reference']})" \
            if metric is not None else "no validation score"
        speed = f"{record['img_per_s']:.0f} img/s" if record["img_per_s"] else ""
        best = " [best]" if record["best"] else ""
        part = " (partial)" if record["partial"] else ""
        log(f"epoch {record['epoch']}{part}: loss {record['loss']:.4f}, {score}, {speed}{best}")

    def _save(self, which: str) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "ltv_version": __version__,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "epoch_stats": self.stats.state_dict() if self.batch_in_epoch else None,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "rng": _rng_state(),
        }
        if distributed.is_main():
            self.folder.save_checkpoint(which, state)


def _describe_text(meta: dict | None) -> str:
    return "none" if not meta else f"{meta['dim']} dims from {meta['model']}"


# --------------------------------------------------------------------------- RNG state
def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _rng_state() -> dict:
    """Global RNG states (torch, CUDA, NumPy, Python), as tensors and plain values a weights-only load accepts."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(value):
    """random.setstate needs tuples where a checkpoint round-trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
