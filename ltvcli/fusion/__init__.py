"""Fusion methods: how M label sets become one training signal.

The training loop builds a method with :func:`make_method` and drives it
through the :class:`~ltvcli.fusion.base.FusionMethod` interface only.

* ``ltv``    learning-to-vote: the paper's vote (``vote="paper"``) -- :mod:`ltvcli.fusion.ltv` -- or the
             reliability vote (``vote="reliability"``) -- :mod:`ltvcli.fusion.vote`
* ``single`` one label set, or one aggregator's labels -- :mod:`ltvcli.fusion.aggregators`
* ``mv``     the per-sample majority vote -- :mod:`ltvcli.fusion.aggregators`
* ``cm``     annotator confusion matrices (Tanno et al.) -- :mod:`ltvcli.fusion.cm`
"""

from __future__ import annotations

import math
from typing import Any

from ltvcli.console import warn
from ltvcli.errors import LtvError
from ltvcli.fusion.aggregators import (
    AGGREGATOR_NAMES,
    Aggregator,
    DawidSkene,
    MajorityVote,
    OneLabelSet,
    SoftMean,
    dawid_skene,
    majority_vote,
    soft_mean,
)
from ltvcli.fusion.base import Batch, FusionMethod, StepResult
from ltvcli.fusion.cm import ConfusionMatrices
from ltvcli.fusion.single import MajorityLabels, SingleLabelSet
from ltvcli.fusion.ltv import SCOPES, LearningToVote
from ltvcli.fusion.vote import VOTES, ReliabilityVote

METHOD_NAMES = ("ltv", "single", "mv", "cm")

#: Every option a method may receive (the ``ltv train`` flags), with its default.
OPTION_DEFAULTS: dict[str, Any] = {
    "label_set": None,
    "alpha": 0.2,
    "k": 50.0,
    "threshold": 0.5,
    "meta_scope": "all",
    "cm_trace": 0.01,
    "seed": 0,
    "vote": "paper",
    "trusted": None,
    "model_evidence": 0.0,
}

#: The label set a reliability vote trusts by default when the dataset has it (``ltv ingest relabels``).
DEFAULT_TRUSTED = "expert"


__all__ = [
    "AGGREGATOR_NAMES", "METHOD_NAMES", "OPTION_DEFAULTS", "Aggregator", "Batch", "ConfusionMatrices", "DawidSkene",
    "FusionMethod", "LearningToVote", "MajorityLabels", "MajorityVote", "OneLabelSet", "ReliabilityVote",
    "SingleLabelSet", "SoftMean", "StepResult", "dawid_skene", "majority_vote", "make_method", "soft_mean",
]


def make_method(name: str, *, n_label_sets: int, n_classes: int, multilabel: bool, label_set_names: list[str],
                options: dict) -> FusionMethod:
    """Build the fusion method ``name`` for a dataset, validating its options (LtvError on a bad value).

    ``options`` holds any of :data:`OPTION_DEFAULTS` (missing or None ones
    take the default); options of other methods are accepted and ignored,
    so the CLI can pass all its flags.
    """
    if name not in METHOD_NAMES:
        raise LtvError(f"unknown --method {name!r}; expected one of {', '.join(METHOD_NAMES)}")
    opts = _options(options)
    shape = {"n_label_sets": n_label_sets, "n_classes": n_classes, "multilabel": multilabel}
    if name == "ltv":
        method: FusionMethod = _learning_to_vote(shape, opts, label_set_names)
    elif name == "single":
        method = SingleLabelSet(**shape, label_set=_source(opts["label_set"], label_set_names),
                                label_set_names=label_set_names, seed=opts["seed"])
    elif name == "mv":
        method = MajorityLabels(**shape, seed=opts["seed"])
    else:
        method = ConfusionMatrices(**shape, trace_weight=opts["cm_trace"])
    if name != "single" and opts["label_set"] is not None:
        warn(f"--label-set applies to --method single only; ignored by --method {name}")
    if opts["trusted"] is not None and (name != "ltv" or opts["vote"] != "reliability"):
        warn("--trusted applies to --method ltv --vote reliability only; ignored here")
    if opts["model_evidence"] and (name != "ltv" or opts["vote"] != "reliability"):
        warn("--model-evidence applies to --method ltv --vote reliability only; ignored here")
    if n_label_sets < method.min_label_sets:
        raise LtvError(f"--method {name} needs at least {method.min_label_sets} label sets; "
                       f"the dataset has {n_label_sets}")
    return method


def _learning_to_vote(shape: dict, opts: dict, label_set_names: list[str]) -> LearningToVote:
    """The paper's vote, or the reliability vote with its trusted label set (``--trusted``, else ``expert``)."""
    common = {"alpha": opts["alpha"], "k": opts["k"], "threshold": opts["threshold"],
              "meta_scope": opts["meta_scope"]}
    if opts["vote"] == "paper":
        return LearningToVote(**shape, **common)
    trusted = opts["trusted"]
    if trusted is not None and trusted not in label_set_names:
        raise LtvError(f"unknown --trusted {trusted!r}; expected a label set ({', '.join(label_set_names)})")
    if trusted is None and DEFAULT_TRUSTED in label_set_names:
        trusted = DEFAULT_TRUSTED
    return ReliabilityVote(**shape, **common, trusted=None if trusted is None else label_set_names.index(trusted),
                           model_evidence=opts["model_evidence"])


def _options(options: dict) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise LtvError(f"unknown method option(s) {', '.join(unknown)}; expected {', '.join(OPTION_DEFAULTS)}")
    opts = {key: default if options.get(key) is None else options[key] for key, default in OPTION_DEFAULTS.items()}
    opts["alpha"] = _number(opts["alpha"], "alpha", low=0.0)
    opts["k"] = _number(opts["k"], "k", low=0.0)
    opts["threshold"] = _number(opts["threshold"], "threshold", low=0.0, high=1.0)
    opts["cm_trace"] = _number(opts["cm_trace"], "cm_trace", low=0.0, allow_low=True)
    opts["model_evidence"] = _number(opts["model_evidence"], "model_evidence", low=0.0, high=1.0, allow_low=True,
                                     allow_high=True)
    if opts["meta_scope"] not in SCOPES:
        raise LtvError(f"--meta-scope must be one of {', '.join(SCOPES)}, got {opts['meta_scope']!r}")
    if opts["vote"] not in VOTES:
        raise LtvError(f"--vote must be one of {', '.join(VOTES)}, got {opts['vote']!r}")
    if isinstance(opts["seed"], bool) or not isinstance(opts["seed"], int):
        raise LtvError(f"--seed must be an integer, got {opts['seed']!r}")
    return opts


def _number(value: Any, key: str, *, low: float, high: float | None = None, allow_low: bool = False,
            allow_high: bool = False) -> float:
    """``value`` as a finite float in (low, high) -- closed at an end with ``allow_low`` / ``allow_high``."""
    flag = "--" + key.replace("_", "-")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LtvError(f"{flag} must be a number, got {value!r}") from None
    above = number >= low if allow_low else number > low
    below = high is None or (number <= high if allow_high else number < high)
    if not (math.isfinite(number) and above and below):
        bounds = f"{'>=' if allow_low else '>'} {low:g}" + \
            (f" and {'<=' if allow_high else '<'} {high:g}" if high is not None else "")
        raise LtvError(f"{flag} must be {bounds}, got {value!r}")
    return number


def _source(label_set: str | None, label_set_names: list[str]) -> str:
    """``label_set``, checked: a label set name or an aggregator name."""
    if label_set is None:
        raise LtvError("--method single needs --label-set: one of the label sets "
                       f"({', '.join(label_set_names)}) or an aggregator ({', '.join(AGGREGATOR_NAMES)})")
    if label_set in label_set_names or label_set in AGGREGATOR_NAMES:
        return label_set
    raise LtvError(f"unknown --label-set {label_set!r}; expected a label set ({', '.join(label_set_names)}) "
                   f"or an aggregator ({', '.join(AGGREGATOR_NAMES)})")
