"""Image features from a local vision model (``ltv embed-images DATASET --model PATH``): the twin of embed-reports.

Two kinds of model, both read from disk (nothing is downloaded):

* a **torchvision state dict** (a file, ``torch.save(model.state_dict())``)
  of a ResNet (``arch``: resnet18, resnet34, resnet50): the feature is the
  global-average-pooled output of layer4 (512 or 2,048 dims), the layer
  before its classifier, whose weights are not needed;
* a **Hugging Face image model** saved with ``save_pretrained`` (a folder with
  ``config.json`` and the weights: ViT, DINOv2, a ResNet or ConvNeXt, a chest
  X-ray foundation model): the feature is its ``pooler_output`` where it has
  one (and the folder holds the pooler's weights), else the mean of
  ``last_hidden_state`` over its tokens (or positions).

Images come from the dataset's cache in batches (the image loader reads ahead),
become floats in [0, 1] on the device, a grey image is repeated to the
model's three channels, and each is normalised with ImageNet's mean and
standard deviation -- or, for a Hugging Face model, with the ``image_mean`` /
``image_std`` of its ``preprocessor_config.json`` and resized to its
``image_size`` when its config has one. The models run in float32 in eval mode
(on the GPU when there is one), with a progress bar. The vectors become the
dataset's features (:func:`ltvcli.dataset.features.write_features`, atomic)
only when every image is done; features the dataset has are replaced only with
``force``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ltvcli.backbones import RESNETS
from ltvcli.console import log, track
from ltvcli.dataset import Dataset
from ltvcli.dataset.features import describe, write_features
from ltvcli.errors import LtvError, OptionError
from ltvcli.features.add import check_replace
from ltvcli.models import load_pretrained
from ltvcli.outputs import DATASET, check_output
from ltvcli.runtime.device import resolve_device
from ltvcli.runtime.hub import offline, quiet_loading
from ltvcli.runtime.inputs import ImageInputs
from ltvcli.runtime.loader import ordered_batches

#: ImageNet's channel statistics, which torchvision's ResNets were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageEncoder:
    """A vision model and how to feed it: [B, C, S, S] floats in [0, 1] -> [B, D] features."""

    model: nn.Module
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (model, normalised images) -> [B, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    size: int | None  # resize to size x size first (None: as cached)
    meta: dict  # what features.json records about the model

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                          align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return self.features(self.model, (x - mean) / std).float().flatten(1)


def load_image_encoder(model: str | Path, arch: str = "resnet50", device: torch.device | str = "cpu"
                       ) -> ImageEncoder:
    """The encoder of ``model``: a torchvision state dict file of ``arch``, or a Hugging Face model folder."""
    path = Path(model)
    target = resolve_device(device) if isinstance(device, str) else device
    if path.is_dir():
        encoder = _huggingface(path)
    elif path.is_file():
        encoder = _torchvision(path, arch)
    else:
        raise OptionError("model", f"{path}: no such file or folder; expected a torchvision state dict file or a "
                                   "Hugging Face model folder saved on disk (nothing is downloaded)")
    encoder.model = encoder.model.to(device=target, dtype=torch.float32).eval()
    return encoder


def _torchvision(path: Path, arch: str) -> ImageEncoder:
    if arch not in RESNETS:
        raise OptionError("arch", f"{arch!r}: expected one of {', '.join(RESNETS)}")
    import torchvision

    resnet = getattr(torchvision.models, arch)(weights=None)
    load_pretrained(resnet, path, parameter="model")
    resnet.fc = nn.Identity()  # the pooled layer4 output is the feature
    return ImageEncoder(resnet, _forward, IMAGENET_MEAN, IMAGENET_STD, channels=3, size=None,
                        meta={"kind": "torchvision", "arch": arch, "pooling": "gap"})


def _huggingface(folder: Path) -> ImageEncoder:
    with offline():
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError:
            raise LtvError("embedding images with a Hugging Face model needs transformers: "
                           "pip install 'ltv[text]'") from None
        try:
            with quiet_loading():
                config = AutoConfig.from_pretrained(folder, local_files_only=True)
                model, loading = AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
        except (OSError, ValueError, KeyError) as exc:
            raise OptionError("model", f"{folder}: cannot load a Hugging Face model from this folder "
                                       f"({str(exc).strip().splitlines()[0]})") from None
    mean, std = _normalisation(folder)
    size = getattr(config, "image_size", None)
    size = size[0] if isinstance(size, (list, tuple)) else size
    channels = getattr(config, "num_channels", 3)
    # A pooler the folder has no weights for (a ViT saved without one) would be random: use the tokens' mean.
    untrained = any(key.startswith("pooler") for key in loading.get("missing_keys", []))
    pooling = "mean" if untrained or not _gives_pooled_output(model, channels, size) else "pooler"
    return ImageEncoder(model, _pooled if pooling == "pooler" else _mean_hidden, mean, std, channels=channels,
                        size=size, meta={"kind": "huggingface", "arch": config.model_type, "pooling": pooling})


@torch.no_grad()
def _gives_pooled_output(model: nn.Module, channels: int, size: int | None) -> bool:
    """Whether the model's output has a ``pooler_output`` (ViT, DINOv2, a ResNet) -- one blank image tells."""
    side = size or 224
    out = model.eval()(pixel_values=torch.zeros(1, channels, side, side))
    return getattr(out, "pooler_output", None) is not None


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own pooled output (ViT: its pooler on the [CLS] token; a CNN: its global pooling)."""
    return model(pixel_values=x).pooler_output


def _mean_hidden(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of the last hidden state over its tokens [B, T, D] or its positions [B, D, H, W]."""
    hidden = model(pixel_values=x).last_hidden_state
    return hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)


def _normalisation(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``image_mean`` / ``image_std`` of the folder's preprocessor_config.json, else ImageNet's."""
    file = folder / "preprocessor_config.json"
    if not file.is_file():
        return IMAGENET_MEAN, IMAGENET_STD
    try:
        config = json.loads(file.read_text())
        return tuple(config.get("image_mean", IMAGENET_MEAN)), tuple(config.get("image_std", IMAGENET_STD))
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
        raise LtvError(f"{file}: not a preprocessor config (JSON with image_mean and image_std)") from None


def embed_images(dataset: Dataset | str | Path, model: str | Path, *, arch: str = "resnet50", batch_size: int = 64,
                 device: str = "auto", workers: int = 2, force: bool = False) -> dict:
    """Run ``model`` over every cached image of ``dataset`` and store the vectors as its features; return
    features.json's contents. ``force`` replaces features the dataset already has."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    check_output(ds.path, DATASET, inputs=[model], reuse=True, parameter="dataset")
    check_replace(ds, force)
    if batch_size < 1:
        raise OptionError("batch_size", f"{batch_size}: expected a positive number of images")
    if not ds.has_images:
        raise LtvError(f"{ds.path}: has no images to embed (it was ingested without them); add features made "
                       "elsewhere with `ltv add-features`")
    target = resolve_device(device)
    images = ImageInputs(ds, target)
    encoder = load_image_encoder(model, arch, target)
    batches = ordered_batches(np.arange(len(ds)), batch_size)
    vectors: np.ndarray | None = None
    with track(len(batches), "embedding images") as advance:
        for rows, _, x in images.batches(batches, workers=workers):
            out = encoder.encode(x).cpu().numpy()
            if vectors is None:
                vectors = np.empty((len(ds), out.shape[1]), dtype=np.float32)
            vectors[rows] = out
            advance(1)
    if vectors is None or not np.isfinite(vectors).all():
        bad = 0 if vectors is None else int((~np.isfinite(vectors)).any(axis=1).argmax())
        raise LtvError(f"{model}: the model gave a feature that is not a finite number (image "
                       f"{ds.image_ids[bad]!r}); nothing was written")
    meta = write_features(ds.path, vectors, {"source": "model", "model": Path(model).name, **encoder.meta,
                                             "image_size": encoder.size or ds.image_size})
    log(f"{ds.path}: image features of {len(ds)} images, {describe(meta)}")
    return meta
