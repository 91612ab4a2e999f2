"""Every fusion method, the options it takes and the class that implements it: where a method is declared.

A method is named by ``method`` and, for learning-to-vote, its ``vote``:
``("ltv", "paper")`` is the paper's attention vote, ``("ltv", "reliability")``
the reliability vote, ``("ltv", "crossfit")`` the cross-fitted vote. Each entry (:class:`MethodSpec`) holds the method's
options dataclass -- every hyper-parameter once, with its default, help and
accepted values (:mod:`ltvcli.options`) -- and the dotted path of its class,
imported only when a method is built: ``ltv train --help`` reads the registry
without importing torch. Adding a hyper-parameter is a field here; the CLI
flag, its help, the validation, ``config.json`` and the method's ``options``
all follow from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ltvcli.console import warn
from ltvcli.errors import LtvError, OptionError
from ltvcli.options import NON_NEGATIVE, OPEN_UNIT, POSITIVE, UNIT, Options, Range, option

if TYPE_CHECKING:
    from ltvcli.fusion.base import FusionMethod

#: The label set ``ltv ingest relabels`` writes the expert's answers into; the reliability vote trusts it.
EXPERT_SET = "expert"


# ----------------------------------------------------------------------------- the options of each method
@dataclass(frozen=True)
class LtvOptions(Options):
    """Learning-to-vote with the paper's attention vote (defaults: the paper's section 5)."""

    alpha: float = option(0.2, "learning rate of the virtual (meta) step", range=POSITIVE)
    k: float = option(50.0, "sharpness of the differentiable binarisation", range=POSITIVE)
    threshold: float = option(0.5, "threshold T of the differentiable binarisation", range=OPEN_UNIT)
    meta_scope: str = option("all", "parameters the virtual step updates: all (the paper) or last (layer4 + FC)",
                             choices=("all", "last"))


@dataclass(frozen=True)
class ReliabilityOptions(LtvOptions):
    """Learning-to-vote with the reliability vote: a Dawid-Skene prior corrected per sample."""

    trusted: str | None = option(None, f"a label set to treat as the truth where it has labels (default: "
                                       f"{EXPERT_SET}, if present)")
    model_evidence: float = option(0.0, "weight (0-1) of the model's own prediction in the posterior of the truth "
                                        "(0: the labels alone; 1: the model replaces the class prior, Raykar et al. "
                                        "2010)", range=UNIT)


@dataclass(frozen=True)
class CrossFitOptions(Options):
    """The cross-fitted vote: Dawid-Skene × out-of-fold image evidence, re-estimated by EM at every epoch end.

    Defaults from the LabelMe measurements in docs/methods.md.
    """

    folds: int = option(10, "cross-fit heads (folds of the training rows); head h never trains on fold h",
                        range=Range(2, None, False, False, "an integer of at least 2"))
    evidence: str = option("initial", "what the heads read on images: initial = the network as built, frozen (its "
                                      "pretrained weights or random initialisation: features no label shaped); "
                                      "trained = the classifier's own feature F", choices=("initial", "trained"))
    head_lr_scale: float = option(10.0, "how many times faster than the classifier the heads learn (their logits' "
                                        "scale under the one Adam learning rate)", range=POSITIVE)
    head_decay: float = option(0.01, "L2 weight decay of the heads", range=NON_NEGATIVE)
    seed: int = option(0, "assignment of the training rows to folds")


@dataclass(frozen=True)
class TieBreakOptions(Options):
    """The majority vote (``mv``): ties are broken by a seeded hash of (seed, image, class)."""

    seed: int = option(0, "tie-breaking of the majority vote")


@dataclass(frozen=True)
class SingleOptions(TieBreakOptions):
    """One label set, or one aggregator's labels (``single``)."""

    label_set: str | None = option(None, "a label set name, or soft_mean / dawid_skene / majority")


@dataclass(frozen=True)
class CmOptions(Options):
    """Annotator confusion matrices (``cm``, Tanno et al. 2019)."""

    cm_trace: float = option(0.01, "weight of the confusion-matrix trace term", range=NON_NEGATIVE)


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class MethodSpec:
    """One fusion method: its name (and vote), its options, the class that implements it."""

    method: str
    vote: str | None
    options: type[Options]
    implementation: str  # "module:Class", imported by :meth:`load`
    min_label_sets: int
    summary: str

    @property
    def title(self) -> str:
        """How messages name the method: ``ltv (reliability vote)``, ``cm``."""
        return f"{self.method} ({self.vote} vote)" if self.vote else self.method

    def load(self) -> type[FusionMethod]:
        """The implementing class (this imports torch)."""
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)

    def options_json(self, options: Options) -> dict:
        """What config.json records as ``method_options``: the vote (if any) and every option's value."""
        return ({"vote": self.vote} if self.vote else {}) | options.to_json()


METHODS = (
    MethodSpec("ltv", "paper", LtvOptions, "ltvcli.fusion.ltv:LearningToVote", 2,
               "learning-to-vote (the paper): a virtual step per label set, a learned vote over their features"),
    MethodSpec("ltv", "reliability", ReliabilityOptions, "ltvcli.fusion.vote:ReliabilityVote", 2,
               "learning-to-vote with a Dawid-Skene prior corrected per sample, trained to seek the truth"),
    MethodSpec("ltv", "crossfit", CrossFitOptions, "ltvcli.fusion.crossfit:CrossFitVote", 2,
               "Dawid-Skene times out-of-fold image evidence from cross-fit heads, EM at every epoch end"),
    MethodSpec("single", None, SingleOptions, "ltvcli.fusion.single:SingleLabelSet", 1,
               "one label set, or the labels of an aggregator"),
    MethodSpec("mv", None, TieBreakOptions, "ltvcli.fusion.single:MajorityLabels", 2,
               "the per-sample majority vote of the label sets"),
    MethodSpec("cm", None, CmOptions, "ltvcli.fusion.cm:ConfusionMatrices", 2,
               "annotator confusion matrices over the model's output (Tanno et al. 2019)"),
)
METHOD_NAMES = tuple(dict.fromkeys(spec.method for spec in METHODS))
VOTES = tuple(spec.vote for spec in METHODS if spec.vote)


#: Label-only fusions (``ltv export-labels DATASET --aggregator NAME``, :mod:`ltvcli.fusion.labelonly`): the
#: aggregators, and the label-only part of the reliability vote. The paper's vote has none (its weights come
#: from image features), and :data:`NO_LABEL_ONLY_PART` says so to whoever asks for it.
LABEL_ONLY_FUSIONS = ("majority", "soft_mean", "dawid_skene", "reliability", "crossfit")
#: Votes whose label-only part is an aggregator: the cross-fitted vote without image evidence is the
#: Dawid-Skene posterior it starts every training from (its first epoch's targets).
LABEL_ONLY_ALIASES = {"crossfit": "dawid_skene"}
NO_LABEL_ONLY_PART = ("the paper's vote has no label-only part: its weights come from each label set's image "
                      "features, and without images every weight is equal, which is the soft mean binarised at T; "
                      "ltv's label-only fusion is reliability (the reliability vote's Dawid-Skene posterior), or "
                      "use soft_mean or majority")


def method_spec(method: str, vote: str | None = None) -> MethodSpec:
    """The entry for ``method`` (and ``vote``, for a method with votes; None: its first vote)."""
    entries = [spec for spec in METHODS if spec.method == method]
    if not entries:
        raise OptionError("method", f"{method!r}: expected one of {', '.join(METHOD_NAMES)}")
    if entries[0].vote is None or vote is None:
        return entries[0]
    for spec in entries:
        if spec.vote == vote:
            return spec
    raise OptionError("vote", f"{vote!r}: expected one of {', '.join(spec.vote for spec in entries)}")


def declaring(name: str) -> list[MethodSpec]:
    """The methods that take the option ``name``."""
    return [spec for spec in METHODS if name in spec.options.names()]


def split_options(spec: MethodSpec, values: Mapping[str, Any]) -> tuple[dict, dict]:
    """``values`` (by option name; None = not given) as (``spec``'s own options, other methods' options).

    A name no method takes is an error; the caller says that the others are ignored.
    """
    unknown = sorted(name for name in values if not declaring(name))
    if unknown:
        every = dict.fromkeys(name for entry in METHODS for name in entry.options.names())
        raise LtvError(f"unknown method option(s) {', '.join(unknown)}; expected {', '.join(every)}")
    own = {name: value for name, value in values.items() if name in spec.options.names()}
    return own, {name: value for name, value in values.items() if name not in own and value is not None}


def resolve(method: str, options: Mapping[str, Any] | Options) -> tuple[MethodSpec, Options]:
    """The method's entry and its typed options, from a typed instance or from values by name.

    Values may hold ``vote``, and options of other methods, which are
    ignored with a warning (a notebook may pass one dict to several methods).
    """
    if isinstance(options, Options):
        spec = next((s for s in METHODS if s.method == method and s.options is type(options)), None)
        if spec is None:
            raise OptionError("method", f"{method!r} does not take {type(options).__name__}")
        return spec, options
    values = dict(options)
    spec = method_spec(method, values.pop("vote", None))
    own, ignored = split_options(spec, values)
    if ignored:
        names = ", ".join(f"`{name}`" for name in ignored)
        warn(f"{names}: not an option of method {spec.title}; ignored")
    return spec, spec.options.from_mapping(own)


def make_method(name: str, *, n_label_sets: int, n_classes: int, multilabel: bool, label_set_names: list[str],
                options: Mapping[str, Any] | Options) -> FusionMethod:
    """Build the fusion method ``name`` for a dataset's label sets, its options checked (OptionError if bad).

    ``options`` is the method's options dataclass, or values by name (with
    ``vote`` for ``ltv``); missing or None ones take their default.
    """
    spec, typed = resolve(name, options)
    if n_label_sets < spec.min_label_sets:
        raise OptionError("method", f"{name} needs at least {spec.min_label_sets} label sets; "
                                    f"the dataset has {n_label_sets}")
    return spec.load()(n_label_sets, n_classes, multilabel, typed, list(label_set_names))
