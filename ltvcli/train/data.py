"""The labels of a training run, resident on the device: a batch gathers its rows there.

All label sets, masks, ground truth and report embeddings are small next to the
images, so they are copied to the device once per run; the model's input of a
batch (images from the cache, or features) comes from :mod:`ltvcli.runtime.inputs`.
"""

from __future__ import annotations

import numpy as np
import torch

from ltvcli.dataset import Dataset
from ltvcli.fusion.base import Batch


class DeviceLabels:
    """All label sets (and ground truth, and report embeddings, when present) of a dataset, resident on the device.

    ``targets``/``mask`` are [N, M, C] (one-hot for multi-class); a batch
    gathers its rows with one indexing op instead of a host copy per step.
    ``text`` ([N, D] report embeddings, for a model with a text branch) is
    small next to the images too (3 KB per image at D = 768), so it stays on
    the device the same way.
    """

    def __init__(self, dataset: Dataset, device: torch.device, text: np.ndarray | None = None):
        targets, mask = dataset.targets()
        self.device = device
        self.targets = torch.from_numpy(targets).to(device)
        self.mask = torch.from_numpy(mask).to(device)
        self.text = None if text is None else torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)).to(device)
        self.truth: torch.Tensor | None = None
        self.truth_mask: torch.Tensor | None = None
        if dataset.has_ground_truth:
            truth, truth_mask = dataset.ground_truth_targets()
            self.truth = torch.from_numpy(truth).to(device)
            self.truth_mask = torch.from_numpy(truth_mask).to(device)

    def batch(self, index: torch.Tensor, inputs: torch.Tensor) -> Batch:
        """The method's :class:`Batch` for the model ``inputs`` of the dataset rows ``index``, both on the device."""
        return Batch(images=inputs, targets=self.targets[index], mask=self.mask[index], index=index,
                     text=None if self.text is None else self.text[index])
