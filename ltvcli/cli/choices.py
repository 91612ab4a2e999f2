"""The names an option accepts, as the help pages list them: ``--arch [tiny|resnet18|resnet34|resnet50]``.

Each list belongs to the module that validates it. The backbones and the
devices are declared in modules without torch (``ltvcli.backbones``,
``ltvcli.runtime``) and imported from there; most other modules import torch,
sklearn or pandas (``ltvcli.runs.folder``, ``ltvcli.text.encode``,
``ltvcli.refine``, ...), and the command-line modules must not: every
``ltv ... --help`` imports all of them, and would take seconds. So those
names are repeated here, each beside the name of its source, and
``tests/test_cli_help.py`` checks every list against that source. The
commands still hand plain strings to the Python API, which validates them
and words the error (``error: --arch 'vgg': expected one of ...``).
"""

from __future__ import annotations

from ltvcli.backbones import ARCHS, HEADS, RESNETS
from ltvcli.runtime import DEVICES, INPUTS

SPLITS = ("train", "validate", "test")  # ltvcli.dataset.format.SPLITS
CHECKPOINTS = ("best", "last")  # ltvcli.runs.folder.CHECKPOINTS
POOLINGS = ("cls", "mean")  # ltvcli.text.encode.POOLINGS
UNKNOWN_IDS = ("error", "warn")  # ltvcli.evaluate.tables.UNKNOWN_ID_POLICIES
IMAGE_FORMATS = ("auto", "jpg", "dcm")  # ltvcli.ingest.mimic.IMAGE_FORMATS
MISSING_LABELS = ("error", "skip")  # ltvcli.ingest.mimic.MISSING_LABELS
BLANK_POLICIES = ("0", "1", "ignore")  # ltvcli.dataset.labelsets.BLANK_POLICIES
UNCERTAIN_POLICIES = ("u0", "u1", "ignore")  # ltvcli.dataset.labelsets.UNCERTAIN_POLICIES
TABLE_TASKS = ("auto", "multilabel", "multiclass")  # ltvcli.ingest.table: auto or ltvcli.dataset.format.TASKS
NPZ_TASKS = ("auto", "multiclass", "multilabel")  # ltvcli.ingest.npz.TASKS
STRATEGIES = ("entropy", "least_confidence", "margin", "bald", "coreset", "loss", "random")  # ltvcli.refine.scores
CANDIDATES = ("suspected", "all")  # ltvcli.refine.queue.CANDIDATES


__all__ = ["ARCHS", "BLANK_POLICIES", "CANDIDATES", "CHECKPOINTS", "DEVICES", "HEADS", "IMAGE_FORMATS", "INPUTS",
           "MISSING_LABELS", "NPZ_TASKS", "POOLINGS", "RESNETS", "SPLITS", "STRATEGIES", "TABLE_TASKS",
           "UNCERTAIN_POLICIES", "UNKNOWN_IDS",
           "choice"]


def choice(names: tuple[str, ...] | list[str]) -> str:
    """The metavar of an option that takes one of ``names``: ``[tiny|resnet18|resnet34|resnet50]``."""
    return "[" + "|".join(names) + "]"
