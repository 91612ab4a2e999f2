"""A training run: its options, its folder and record, and what a finished run does.

* :mod:`~ltvcli.runs.config`   :class:`TrainConfig`, every option of ``ltv train`` (declared once; no torch)
* :mod:`~ltvcli.runs.record`   ``config.json``: a typed, versioned record, read by every command through one function
* :mod:`~ltvcli.runs.folder`   the run folder: record, checkpoints (and their format versions), metrics
* :mod:`~ltvcli.runs.predict`  the trained model of a run and its class probabilities on any compatible dataset

Training (:mod:`ltvcli.train`) writes runs; prediction, export, evaluation
and refinement read them through this package, which sits below all of them.
"""
