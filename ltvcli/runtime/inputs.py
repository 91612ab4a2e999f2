"""What a model reads for each dataset row, delivered on the device: images from the cache, or feature vectors.

Training, validation, prediction, export and refinement iterate batches of
dataset rows and hand the model one tensor per batch. :func:`model_inputs`
gives them that tensor for either input (``INPUTS``):

* ``images``   uint8 pixels read ahead from the memory-mapped cache in
  background threads, converted to floats on the device
  (:class:`~ltvcli.runtime.loader.ImageLoader`);
* ``features`` the dataset's float32 [N, D] feature matrix, resident on the
  device for the whole run (on the CPU the memory map itself, no copy; on a
  GPU one copy when the run starts), so a batch is one ``index_select`` on
  the device: no per-batch host copy and no loader threads. A 300,000 x 1,376
  matrix is 1.65 GB.

Each batch comes as ``(rows, index, x)``: the dataset rows (NumPy), the same
rows as a device tensor (for gathering the labels that stay on the device),
and the model's input.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ltvcli.dataset import Dataset
from ltvcli.errors import OptionError
from ltvcli.runtime import INPUTS
from ltvcli.runtime.loader import ImageLoader, host_tensor, images_to_device

Batches = Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]


class ImageInputs:
    """Images of a dataset, read ahead from its cache and converted on ``device``."""

    kind = "images"
    #: Rows per forward pass when scoring (no gradients): what a GPU holds comfortably at 256 px.
    scoring_batch = 64

    def __init__(self, dataset: Dataset, device: torch.device):
        self.dataset = dataset
        self.device = device
        self.images = dataset.images  # memory-mapped; a label layer's base is checked now

    def batches(self, row_batches: Sequence[np.ndarray], *, workers: int = 2) -> Batches:
        loader = ImageLoader(self.images, row_batches, pin_memory=self.device.type == "cuda", workers=workers)
        for rows, images in loader:
            index = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)).to(self.device, non_blocking=True)
            yield rows, index, images_to_device(images, self.device)


class FeatureInputs:
    """The feature matrix of a dataset, resident on ``device``; each batch is gathered there."""

    kind = "features"
    #: Rows per forward pass when scoring: a head's forward on a vector is cheap, the per-call overhead is not.
    scoring_batch = 4096

    def __init__(self, dataset: Dataset, device: torch.device):
        self.dataset = dataset
        self.device = device
        self.features = host_tensor(dataset.features).to(device)  # the memory map itself on the CPU

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def batches(self, row_batches: Sequence[np.ndarray], *, workers: int = 2) -> Batches:
        """``workers`` is not used: there is nothing to read ahead. The rows travel to the device once."""
        if not len(row_batches):
            return
        order = torch.from_numpy(np.concatenate(row_batches).astype(np.int64)).to(self.device)
        for rows, index in zip(row_batches, order.split([len(rows) for rows in row_batches])):
            yield rows, index, self.features.index_select(0, index)


ModelInputs = ImageInputs | FeatureInputs


def resolve_input(kind: str | None, dataset: Dataset) -> str:
    """The input a run reads: ``kind``, or (None) images where the dataset has them, else its features.

    The choice is checked against the dataset: asking for what it lacks is a
    one-line error saying how to get it.
    """
    if kind is not None and kind not in INPUTS:
        raise OptionError("input", f"{kind!r}: expected one of {', '.join(INPUTS)}")
    if kind is None:
        kind = "images" if dataset.has_images or not dataset.has_features else "features"
    if kind == "features":
        dataset.feature_meta  # noqa: B018  (raises, saying how to add features, when there are none)
    else:
        dataset.require_images()
    return kind


def model_inputs(dataset: Dataset, kind: str, device: torch.device) -> ModelInputs:
    """The :class:`ImageInputs` or :class:`FeatureInputs` of ``dataset`` on ``device``."""
    return FeatureInputs(dataset, device) if kind == "features" else ImageInputs(dataset, device)
