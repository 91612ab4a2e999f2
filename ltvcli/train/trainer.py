"""The training loop: any fusion method, one run folder, resumable, on one device or under torchrun.

Per batch the loop only calls :meth:`FusionMethod.step` and backpropagates the
loss into the model *and* the method's own parameters with one Adam (the
paper's beta). Everything method-specific lives in ``ltvcli.fusion``. With
``text`` the model gets a text branch and every batch carries its images'
report embeddings (``Batch.text``), which the methods pass to the model. With
``input`` features the model is a head on the dataset's feature vectors
(:mod:`ltvcli.heads`), which stay on the device for the whole run.

Per epoch it runs the refinement pass over the training split where the
split has ground truth or the method needs it (:mod:`ltvcli.train.refinement`;
its accuracy is the ``refined_accuracy`` that export reproduces), scores the
validation split (:mod:`ltvcli.train.validation`), keeps the best checkpoint
(:mod:`ltvcli.train.checkpoint`), records the method's diagnostics
(:mod:`ltvcli.train.diagnostics`) and shows its progress (:mod:`ltvcli.train.progress`). The run
folder's record is written before the first step (:class:`~ltvcli.runs.record.RunRecord`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltvcli import __version__
from ltvcli.console import log, set_verbosity, warn
from ltvcli.dataset import Dataset
from ltvcli.dataset.cache import image_cache_fingerprint
from ltvcli.dataset.fingerprint import dataset_fingerprint
from ltvcli.errors import LtvError, OptionError
from ltvcli.fusion.base import Batch, FusionMethod, StepResult
from ltvcli.outputs import RUN, check_output
from ltvcli.runs.config import TrainConfig
from ltvcli.runs.folder import RunFolder
from ltvcli.runs.predict import build_network
from ltvcli.runs.record import DatasetInfo, FeatureInfo, RunRecord, TextInfo, ValidationInfo
from ltvcli.runtime import distributed
from ltvcli.runtime.determinism import deterministic
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.runtime.inputs import model_inputs, resolve_input
from ltvcli.runtime.loader import MIN_SHARD, epoch_batches, shard
from ltvcli.runtime.rng import seed_everything
from ltvcli.text import load_text_embeddings, read_text_embedding_meta
from ltvcli.train.checkpoint import Position, check_folder, check_resume, checkpoint_state, restore
from ltvcli.train.data import DeviceLabels
from ltvcli.train.diagnostics import EpochStats, ratio
from ltvcli.train.method import build_method
from ltvcli.train.progress import LiveView
from ltvcli.train.refinement import accuracy, pass_batches, refinement_pass
from ltvcli.train.validation import Validator


@dataclass
class TrainResult:
    """Where a run ended: its folder, progress and best validation score."""

    run: Path
    epochs: int
    steps: int
    metric: str
    best_metric: float | None
    best_epoch: int | None


def train(config: TrainConfig) -> TrainResult:
    """Train (or with ``config.resume`` continue) a run; under torchrun every rank calls this."""
    check_output(config.out, RUN, inputs=[config.dataset, config.pretrained], reuse=True)
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


class Trainer:
    """Holds the state of one run: model, method, optimizer, position, best score, records."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        self.dataset = Dataset.open(config.dataset)
        self._choose_input()
        self.folder = RunFolder(config.out)
        self.train_rows = self.dataset.indices("train")
        needed = MIN_SHARD * distributed.world_size()
        if len(self.train_rows) < needed:
            raise LtvError(f"{self.dataset.path}: the train split has {len(self.train_rows)} image(s); "
                           f"training needs at least {needed}")
        check_folder(config, self.folder)
        self.text, self.text_info = self._text_embeddings() if config.text else (None, None)
        self.inputs = model_inputs(self.dataset, config.input, device)  # a label layer's base is checked now
        self.feature_info = self._feature_info() if self.inputs.kind == "features" else None
        seed_everything(config.seed)
        self.model = self._model()
        self.method = build_method(config, self.dataset, self.model).to(device)
        self.optimizer = torch.optim.Adam(list(self.model.parameters()) + self.method.trainable_parameters(),
                                          lr=config.lr)
        self.labels = DeviceLabels(self.dataset, device, self.text)
        self.with_truth = self.labels.truth_mask is not None and bool(
            self.labels.truth_mask[torch.from_numpy(self.train_rows).to(device)].any())
        self.validator = Validator(self.dataset, config.seed, self.text)
        self.position = Position()
        self.stats = EpochStats(self.dataset.is_multilabel)
        self.records: list[dict] = []
        if config.resume:
            self._resume()
        else:
            self._start()
        self.net = self._wrap(self.model)

    # ------------------------------------------------------------ setup
    def _choose_input(self) -> None:
        """Settle ``input`` (images where the dataset has them, else features), say so, and warn about options
        of the other input."""
        config, chosen = self.config, resolve_input(self.config.input, self.dataset)
        if config.input is None and chosen == "features":
            log(f"training a {config.head} head on the image features of {self.dataset.path} "
                f"({self.dataset.feature_meta['dim']} dims): it has no images")
        config.input = chosen
        defaults = {item.name: item.default for item in TrainConfig.declared()}
        unused = ("arch",) if chosen == "features" else ("head", "head_width", "head_dropout")
        for name in unused:
            if getattr(config, name) != defaults[name]:
                warn(f"{name} applies to a run on {'images' if chosen == 'features' else 'features'} only; "
                     f"ignored (this run reads {chosen})")
        if chosen == "features" and config.pretrained is not None:
            raise OptionError("pretrained", "is a backbone's weights, and `input` features trains a head on the "
                                            "features; leave it out")

    def _feature_info(self) -> FeatureInfo:
        """What the run's record says about the features it trains on (their fingerprint tells a resume)."""
        meta = self.dataset.feature_meta
        return FeatureInfo(dim=meta["dim"], source=meta.get("source"), model=meta.get("model"),
                           fingerprint=image_cache_fingerprint(self.dataset.image_ids, self.dataset.features))

    def _text_embeddings(self) -> tuple[np.ndarray, TextInfo]:
        """The report embedding of every image (``text``), and what the run's record says about them.

        Every image needs one, test included: ``ltv evaluate`` of a text run
        reads them there, so a gap is reported now rather than after training.
        """
        try:
            vectors = load_text_embeddings(self.dataset, require_all=True)
        except LtvError as exc:
            raise LtvError(f"`text`: {exc}") from None
        meta = read_text_embedding_meta(self.dataset)
        return vectors, TextInfo(**{field.name: meta.get(field.name) for field in fields(TextInfo)})

    def _model(self) -> nn.Module:
        ds, config = self.dataset, self.config
        on_features = self.inputs.kind == "features"
        model = build_network(config, len(ds.classes), channels=None if on_features else ds.channels,
                              image_size=None if on_features else ds.image_size,
                              feature_dim=self.inputs.dim if on_features else None,
                              text_dim=None if self.text is None else self.text.shape[1],
                              pretrained=None if config.resume else config.pretrained)
        if on_features:
            model.standardise_with(ds.features, self.train_rows)  # a resume loads the same statistics back
            return model.to(self.device)
        if self.device.type == "cuda":
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def _wrap(self, model: nn.Module) -> nn.Module:
        net = distributed.wrap_model(model, self.device)
        return torch.compile(net) if self.config.compile else net

    def _record(self) -> RunRecord:
        ds = self.dataset
        info = DatasetInfo(path=str(ds.path.resolve()), fingerprint=dataset_fingerprint(ds),
                           image_size=ds.meta.get("image_size"), channels=ds.meta.get("channels"), n_images=len(ds),
                           n_train=int(len(self.train_rows)), n_validate=int(len(self.validator.rows)))
        return RunRecord(ltv_version=__version__, task=ds.task, classes=ds.classes, label_sets=ds.label_set_names,
                         config=self.config, dataset=info,
                         validation=ValidationInfo(self.validator.metric, self.validator.reference),
                         text=self.text_info, world_size=distributed.world_size(), device=self.device.type,
                         features=self.feature_info)

    def _start(self) -> None:
        if distributed.is_main():
            if self.validator.reference is None:
                warn(f"{self.dataset.path}: no validate split; best.pt will be the last epoch")
            elif self.validator.reference == "majority_vote":
                log("validation is scored against the label sets' majority vote (the validate split has no "
                    "ground truth)")
            self.folder.write_record(self._record())  # creates the folder (a refused write: one line)
        distributed.barrier()

    def _resume(self) -> None:
        check_resume(self.config, self.folder.read_record(), self.dataset, self.text_info, self.folder,
                     self.feature_info)
        state = self.folder.load_checkpoint("last", map_location=self.device)
        self.position = restore(state, self.model, self.method, self.optimizer, self.stats)
        self.records = [r for r in self.folder.read_metrics() if r["step"] <= self.position.step]
        if distributed.is_main():
            self.folder.write_record(self._record())
        log(f"resuming {self.folder.path} at epoch {self.position.epoch + 1}, step {self.position.step}")

    # ------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        with LiveView() as view:
            while self.position.epoch < self.config.epochs and not self._step_limit_reached():
                self._run_epoch(view)
        if self._step_limit_reached() and self.position.epoch < self.config.epochs:
            log(f"stopped at the step limit ({self.config.max_steps} steps); resume the run with a larger limit, "
                "or none, to continue")
        pos = self.position
        return TrainResult(self.folder.path, pos.epoch, pos.step, self.validator.metric, pos.best_metric,
                           pos.best_epoch)

    def _step_limit_reached(self) -> bool:
        return self.config.max_steps is not None and self.position.step >= self.config.max_steps

    def _run_epoch(self, view: LiveView) -> None:
        cfg, pos, world = self.config, self.position, distributed.world_size()
        batches = epoch_batches(self.train_rows, cfg.batch_size, cfg.seed, pos.epoch, world)
        mine = [shard(b, distributed.rank(), world) for b in batches[pos.batch_in_epoch:]]
        view.start_epoch(pos.epoch, cfg.epochs, len(batches), pos.batch_in_epoch)
        self.net.train()
        self.method.train()
        mark = time.perf_counter()
        for _, index, inputs in self.inputs.batches(mine, workers=cfg.workers):
            batch = self.labels.batch(index, inputs)
            result = train_step(self.net, self.method, self.optimizer, batch, self.device)
            self.stats.add(result, batch, self.labels, self.with_truth)
            pos.batch_in_epoch += 1
            pos.step += 1
            self._show(view, mark, world)
            if self._step_limit_reached():
                break
            if cfg.checkpoint_every and pos.step % cfg.checkpoint_every == 0 and pos.batch_in_epoch < len(batches):
                self.stats.seconds, mark = self._elapsed(mark)
                self._save("last")
        self.stats.seconds, mark = self._elapsed(mark)
        self._check_finite()
        self._end_of_epoch(complete=pos.batch_in_epoch == len(batches))

    def _show(self, view: LiveView, mark: float, world: int) -> None:
        """Advance the progress bar; pull the running loss from the device (a sync) only when it is redrawn."""
        if not view.wants_refresh():
            view.update(self.position.batch_in_epoch)
            return
        self._check_finite()
        seconds = self.stats.seconds + time.perf_counter() - mark
        view.update(self.position.batch_in_epoch, self.stats.running_loss(),
                    self.stats.sums["samples"].item() * world / seconds)

    def _elapsed(self, mark: float) -> tuple[float, float]:
        """The epoch's training seconds so far (after the device has finished its queued work)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        return self.stats.seconds + now - mark, now

    def _check_finite(self) -> None:
        loss = self.stats.running_loss()
        if not math.isfinite(loss):
            raise LtvError(f"the training loss became {loss} at epoch {self.position.epoch + 1}, step "
                           f"{self.position.step}; try a smaller `lr` (or `alpha` for ltv)")

    def _end_of_epoch(self, complete: bool) -> None:
        """Validate, record, keep the best checkpoint, and move to the next epoch if this one is complete."""
        pos = self.position
        summary = self.stats.summary(self.dataset.label_set_names)
        refined = self._refine(complete)
        if refined is not None:
            summary["refined_accuracy"] = refined
        metric = self.validator.score(self.model, self.inputs, self.config.workers) if self.validator.scorable \
            else math.nan
        improved = (not self.validator.scorable) or (
            math.isfinite(metric) and (pos.best_metric is None or metric > pos.best_metric))
        if improved:
            pos.best_metric = metric if math.isfinite(metric) else None
            pos.best_epoch = pos.epoch + 1
        record = {"epoch": pos.epoch + 1, "step": pos.step, "partial": not complete,
                  "loss": summary.pop("loss"),
                  f"val_{self.validator.metric}": metric if math.isfinite(metric) else None,
                  "val_reference": self.validator.reference,
                  "img_per_s": ratio(summary.pop("samples"), self.stats.seconds),
                  "best": improved, **summary}
        self.records.append(record)
        self._log_epoch(record)
        if record.get("vote_warning"):
            warn(f"epoch {record['epoch']}: the vote is degenerate ({record['vote_warning']})")
        if complete:
            pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
            self.stats = EpochStats(self.dataset.is_multilabel)
        if distributed.is_main():
            self.folder.write_metrics(self.records)
        if improved:
            self._save("best")
        self._save("last")

    def _refine(self, complete: bool) -> float | None:
        """The epoch-end refinement pass over the training split; its labels' accuracy (None where unmeasured).

        It runs where the split has ground truth or the method re-estimates its
        labels each epoch. At the end of a complete epoch the method updates
        itself around it (an EM's M- and E-step); a partial epoch (a step
        limit) only measures, so a resumed run continues exactly as one that
        never stopped.
        """
        if not (self.with_truth or self.method.refines_each_epoch):
            return None
        if complete:
            self.method.before_refinement()
        world = distributed.world_size()
        batches = [shard(b, distributed.rank(), world)
                   for b in pass_batches(self.train_rows, self.config.batch_size, world)]
        inputs = self.inputs.batches(batches, workers=self.config.workers)
        result = refinement_pass(self.model, self.method, (self.labels.batch(index, x) for _, index, x in inputs),
                                 len(self.train_rows), self.device)
        if complete:
            self.method.after_refinement(result.rows, result.refined)
        if not self.with_truth:
            return None
        return accuracy(result, self.labels.truth[result.rows], self.labels.truth_mask[result.rows],
                        self.dataset.is_multilabel)

    def _log_epoch(self, record: dict) -> None:
        metric = record[f"val_{self.validator.metric}"]
        score = f"validation {self.validator.metric} {metric:.4f} ({record['val_reference']})" \
            if metric is not None else "no validation score"
        speed = f"{record['img_per_s']:.0f} img/s" if record["img_per_s"] else ""
        best = " [best]" if record["best"] else ""
        part = " (partial)" if record["partial"] else ""
        log(f"epoch {record['epoch']}{part}: loss {record['loss']:.4f}, {score}, {speed}{best}")

    def _save(self, which: str) -> None:
        state = checkpoint_state(self.model, self.method, self.optimizer, self.position, self.stats)
        if distributed.is_main():
            self.folder.save_checkpoint(which, state)
