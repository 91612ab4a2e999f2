"""Fusion methods: how M label sets become one training signal.

:mod:`~ltvcli.fusion.registry` declares every method and its options; the
training loop builds one with :func:`make_method` and drives it through the
:class:`~ltvcli.fusion.base.FusionMethod` interface only.

* ``ltv``    learning-to-vote: the paper's vote -- :mod:`ltvcli.fusion.ltv` --, the reliability vote --
             :mod:`ltvcli.fusion.vote` -- or the cross-fitted vote -- :mod:`ltvcli.fusion.crossfit`
* ``single`` one label set, or one aggregator's labels -- :mod:`ltvcli.fusion.single`
* ``mv``     the per-sample majority vote -- :mod:`ltvcli.fusion.single`
* ``cm``     annotator confusion matrices (Tanno et al.) -- :mod:`ltvcli.fusion.cm`

The label-only aggregators (one label set, soft mean, majority vote,
Dawid-Skene) are :mod:`ltvcli.fusion.aggregators`. This package imports only
the registry, which does not import torch, so the CLI can list the methods
and their options quickly; import the classes from their modules.
"""

from ltvcli.fusion.registry import (
    EXPERT_SET,
    METHOD_NAMES,
    METHODS,
    VOTES,
    CmOptions,
    CrossFitOptions,
    LtvOptions,
    MethodSpec,
    ReliabilityOptions,
    SingleOptions,
    TieBreakOptions,
    make_method,
    method_spec,
)

__all__ = [
    "EXPERT_SET", "METHODS", "METHOD_NAMES", "VOTES", "CmOptions", "CrossFitOptions", "LtvOptions", "MethodSpec",
    "ReliabilityOptions",
    "SingleOptions", "TieBreakOptions", "make_method", "method_spec",
]
