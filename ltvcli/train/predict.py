"""Class probabilities of a trained run on any compatible dataset (``ltv predict``).

The same :func:`probabilities` scores the validation split during training,
so what ``ltv predict`` writes is exactly what chose the best checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ltvcli.dataset import Dataset
from ltvcli.models import LtvNet, build_model
from ltvcli.train.data import ImageLoader, autocast, images_to_device, ordered_batches, resolve_device
from ltvcli.train.run import RunFolder, check_compatible


def load_run(run: Path, checkpoint: str = "best", device: str = "cpu") -> tuple[LtvNet, dict]:
    """The trained model of ``run`` (in eval mode, on ``device``) and the run's config.json content."""
    model, config, _ = open_run(run, checkpoint, device)
    return model, config


def open_run(run: Path, checkpoint: str = "best", device: str | torch.device = "cpu",
             ) -> tuple[LtvNet, dict, dict]:
    """Like :func:`load_run`, plus the whole checkpoint (method state, epoch, ...) for callers that need it."""
    folder = RunFolder(run)
    config = folder.read_config()
    target = resolve_device(device) if isinstance(device, str) else device
    state = folder.load_checkpoint(checkpoint, map_location=target)
    options, data = config["options"], config["dataset"]
    model = build_model(options["arch"], len(config["classes"]), in_channels=data["channels"],
                        image_size=data["image_size"])
    model.load_state_dict(state["model"])
    return model.to(target).eval(), config, state


@torch.no_grad()
def probabilities(model: nn.Module, dataset: Dataset, rows: np.ndarray, device: torch.device, *,
                  batch_size: int = 64, workers: int = 2) -> np.ndarray:
    """Sigmoid (multi-label) or softmax (multi-class) outputs [len(rows), C] of ``model`` in eval mode.

    The caller's train/eval mode is restored afterwards, so the training loop
    can validate in the middle of an epoch.
    """
    was_training = model.training
    model.eval()
    loader = ImageLoader(dataset.images, ordered_batches(rows, batch_size), pin_memory=device.type == "cuda",
                         workers=workers)
    out = []
    for _, images in loader:
        with autocast(device):
            logits = model(images_to_device(images, device)).float()
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
    model, config = load_run(run, checkpoint, device)
    check_compatible(config, dataset)
    rows = split_rows(dataset, split)
    probs = probabilities(model, dataset, rows, next(model.parameters()).device)
    return dataset.image_ids[rows], probs


def predictions_table(image_ids: np.ndarray, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Column ``image`` then one probability column per class."""
    frame = pd.DataFrame(probs, columns=classes)
    frame.insert(0, "image", image_ids)
    return frame
