"""The fusion method of a run, built from the registry for a dataset and fitted on its training split."""

from __future__ import annotations

from torch import nn

from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.fusion.base import FusionMethod
from ltvcli.fusion.registry import make_method
from ltvcli.runs.config import TrainConfig


def build_method(config: TrainConfig, dataset: Dataset, model: nn.Module) -> FusionMethod:
    """The fusion method ``config`` names, for ``dataset``, its label-only statistics fitted on the training split,
    attached to ``model`` (the classifier as built: a method may keep a frozen copy of it).

    ``Batch.index`` holds dataset rows; methods compute a batch's labels from
    the batch itself, so the fitted method refines any split at export.
    """
    n_sets = len(dataset.label_set_names)
    if n_sets == 0:
        raise LtvError(f"{dataset.path}: the dataset has no label sets; there is nothing to train on")
    fusion = make_method(config.method, n_label_sets=n_sets, n_classes=len(dataset.classes),
                         multilabel=dataset.is_multilabel, label_set_names=dataset.label_set_names,
                         options=config.method_options)
    targets, mask = dataset.targets()
    train = dataset.indices("train")
    fusion.fit_labels(targets[train], mask[train], train)
    fusion.attach(model)
    return fusion
