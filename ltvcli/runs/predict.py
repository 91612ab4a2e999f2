"""Class probabilities of a trained run on any compatible dataset (``ltv predict``).

The same :func:`probabilities` scores the validation split during training,
so what ``ltv predict`` writes is exactly what chose the best checkpoint.
A run trained with ``text`` reads each image's report embedding as well:
:func:`run_text_embeddings` takes them from the scored dataset and refuses
one that lacks them or whose vectors have another size. A run on image
features (``input`` features) reads the scored dataset's features, which
must have the size it was trained on (:meth:`RunRecord.check_fits`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.heads import FeatureNet, build_head
from ltvcli.models import LtvNet, build_model
from ltvcli.runs.config import TrainConfig
from ltvcli.runs.folder import RunFolder
from ltvcli.runs.record import RunRecord
from ltvcli.runtime.device import autocast, resolve_device
from ltvcli.runtime.inputs import ModelInputs, model_inputs
from ltvcli.runtime.loader import ordered_batches
from ltvcli.text import load_text_embeddings


def build_network(config: TrainConfig, n_classes: int, *, channels: int | None, image_size: int | None,
                  feature_dim: int | None, text_dim: int | None, pretrained: str | None = None) -> LtvNet | FeatureNet:
    """The network a run trains: a CNN on images (``arch``), or a head on ``feature_dim``-dim features (``head``)."""
    if config.input == "features":
        return build_head(config.head, feature_dim, n_classes, width=config.head_width, dropout=config.head_dropout,
                          text_dim=text_dim)
    return build_model(config.arch, n_classes, in_channels=channels, image_size=image_size, pretrained=pretrained,
                       text_dim=text_dim)


def load_run(run: Path, checkpoint: str = "best", device: str = "cpu") -> tuple[LtvNet | FeatureNet, RunRecord]:
    """The trained model of ``run`` (in eval mode, on ``device``) and the run's record (its config.json)."""
    model, record, _ = open_run(run, checkpoint, device)
    return model, record


def open_run(run: Path, checkpoint: str = "best", device: str | torch.device = "cpu",
             ) -> tuple[LtvNet | FeatureNet, RunRecord, dict]:
    """Like :func:`load_run`, plus the whole checkpoint (method state, epoch, ...) for callers that need it."""
    folder = RunFolder(run)
    record = folder.read_record()
    target = resolve_device(device) if isinstance(device, str) else device
    state = folder.load_checkpoint(checkpoint, map_location=target)
    model = build_network(record.config, len(record.classes), channels=record.dataset.channels,
                          image_size=record.dataset.image_size,
                          feature_dim=None if record.features is None else record.features.dim,
                          text_dim=None if record.text is None else record.text.dim)
    model.load_state_dict(state["model"])
    return model.to(target).eval(), record, state


def run_text_embeddings(record: RunRecord, dataset: Dataset, rows: np.ndarray) -> np.ndarray | None:
    """``dataset``'s report embeddings [N, D] for a run trained with ``text`` (None for an image-only run).

    Every row in ``rows`` (the images to score or refine) needs one, of the
    size the run was trained on; otherwise a one-line error says how many
    are missing.
    """
    if record.text is None:
        return None
    try:
        vectors = load_text_embeddings(dataset, require_all=False)
    except LtvError as exc:
        raise LtvError(f"the run was trained with `text` and needs report embeddings: {exc}") from None
    if vectors.shape[1] != record.text.dim:
        raise LtvError(f"{dataset.path}: its report embeddings have {vectors.shape[1]} dims, the run was trained on "
                       f"{record.text.dim}-dim embeddings ({record.text.model}); embed the reports the same way")
    missing = int(np.isnan(vectors[rows]).any(axis=1).sum())
    if missing:
        raise LtvError(f"{dataset.path}: {missing} of the {len(rows)} images to score have no report embedding, "
                       "and the run was trained with `text`; run `ltv embed-reports` so that every image has one")
    return vectors


@torch.no_grad()
def probabilities(model: nn.Module, inputs: ModelInputs, rows: np.ndarray, *, batch_size: int | None = None,
                  workers: int = 2, text: np.ndarray | None = None) -> np.ndarray:
    """Sigmoid (multi-label) or softmax (multi-class) outputs [len(rows), C] of ``model`` in eval mode.

    ``inputs`` are the dataset's images or features on the model's device
    (``batch_size`` None: the rows per forward they suit); ``text`` is the dataset's [N, D] report embeddings for a model with a
    text branch. The caller's train/eval mode is restored afterwards, so the
    training loop can validate in the middle of an epoch.
    """
    dataset, device = inputs.dataset, inputs.device
    was_training = model.training
    model.eval()
    out = []
    batches = ordered_batches(rows, batch_size or inputs.scoring_batch)
    for batch_rows, _, x in inputs.batches(batches, workers=workers):
        reports = None if text is None else torch.from_numpy(text[batch_rows]).to(device)
        with autocast(device):
            logits = model(x, text=reports).float()
        out.append(torch.sigmoid(logits) if dataset.is_multilabel else torch.softmax(logits, dim=1))
    model.train(was_training)
    if not out:
        return np.zeros((0, len(dataset.classes)), dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def split_rows(dataset: Dataset, split: str | None) -> np.ndarray:
    """Rows of one split, or of every image when ``split`` is None."""
    return np.arange(len(dataset)) if split is None else dataset.indices(split)


def predict_probabilities(run: Path, dataset: Dataset, split: str | None = "test", checkpoint: str = "best",
                          device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(image_ids, probabilities [n, C]) of ``run``'s model on one split of ``dataset`` (None = all images)."""
    model, record = load_run(run, checkpoint, device)
    record.check_fits(dataset)
    rows = split_rows(dataset, split)
    text = run_text_embeddings(record, dataset, rows)
    inputs = model_inputs(dataset, record.config.input, next(model.parameters()).device)
    probs = probabilities(model, inputs, rows, text=text)
    return dataset.image_ids[rows], probs


def predictions_table(image_ids: np.ndarray, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Column ``image`` then one probability column per class."""
    frame = pd.DataFrame(probs, columns=classes)
    frame.insert(0, "image", image_ids)
    return frame
