"""Training a run: the loop and what it is made of; ``train(TrainConfig(...))`` is the entry point.

* :mod:`~ltvcli.train.trainer`      the loop: setup, epochs, steps, the run record, ``train`` and ``train_step``
* :mod:`~ltvcli.train.validation`   the validation split's score after each epoch (the best checkpoint)
* :mod:`~ltvcli.train.diagnostics`  the epoch's loss and vote diagnostics; the degenerate-vote warning
* :mod:`~ltvcli.train.progress`     the live progress bar
* :mod:`~ltvcli.train.checkpoint`   what a checkpoint holds, and the checks for an exact resume
* :mod:`~ltvcli.train.data`         the run's labels, resident on the device
* :mod:`~ltvcli.train.method`       the run's fusion method, built from the registry and fitted
* :mod:`~ltvcli.train.export`       ``ltv export-labels``: the refined labels of a trained run

The options (:class:`~ltvcli.runs.config.TrainConfig`), the run folder and
prediction live in :mod:`ltvcli.runs`, which evaluation and refinement read
without importing this package.
"""

from ltvcli.train.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
