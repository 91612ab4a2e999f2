"""Every option of a training run in one dataclass, declared once, checked once, recorded in config.json.

The run's own options are fields here; the options of the fusion method are
declared by its registry entry (:mod:`ltvcli.fusion.registry`) and held, typed,
in ``method_options``. The CLI builds ``ltv train`` from both
(:mod:`ltvcli.cli.train`); a notebook user builds a :class:`TrainConfig`
directly. Defaults are the paper's (section 5, "Implementation details"):
ResNet-50, Adam with beta = 1e-4, batch 32, alpha = 0.2, k = 50, T = 0.5 --
but for the vote: ``crossfit``, the best one measured (docs/results.md);
``vote="paper"`` is the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltvcli.backbones import ARCHS, HEADS
from ltvcli.errors import OptionError
from ltvcli.fusion.registry import METHOD_NAMES, VOTES, MethodSpec, method_spec, resolve
from ltvcli.options import NON_NEGATIVE, POSITIVE, Options, Range, option
from ltvcli.runtime import DEVICES, INPUTS

#: The vote of the paper, the default of ltv before the cross-fitted vote (and of a record that names none).
PAPER_VOTE = "paper"

#: Options that may change when a run is resumed: they do not change what is computed. Folders may
#: move (the dataset is recognised by its fingerprint instead), and the pretrained weights only
#: initialised the model that the checkpoint now holds.
RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "device", "workers", "compile", "checkpoint_every", "resume",
                               "dataset", "out", "pretrained"})
#: A dropout rate: 0 (none) up to, not including, 1 (everything dropped).
DROPOUT = Range(0, 1, False, True, "a fraction in [0, 1)")


@dataclass
class TrainConfig(Options):
    """The options of ``ltv train``; ``docs/training.md`` explains each, ``docs/methods.md`` the methods'."""

    dataset: str = option(help="A dataset folder written by `ltv ingest`.")
    out: str = option(help="The run folder to create (or continue with `resume`).")
    method: str = option("ltv", "Fusion method.", choices=METHOD_NAMES)
    vote: str = option("crossfit", "ltv: crossfit (Dawid-Skene times out-of-fold image evidence, EM each epoch; the "
                                   "best measured), paper (the paper's attention vote) or reliability (a Dawid-Skene "
                                   "prior corrected per sample).", choices=VOTES)
    epochs: int = option(10, "Epochs to train (with `resume`: the new total).", range=POSITIVE)
    arch: str = option("resnet50", "Backbone.", choices=ARCHS)
    pretrained: str | None = option(None, "A local torchvision state dict for the backbone.")
    input: str | None = option(None, "What the model reads: images (the pixel cache, through `arch`) or features "
                                     "(the dataset's feature vectors, through `head`); default: images where the "
                                     "dataset has them, else features.", choices=INPUTS)
    head: str = option("linear", "With `input` features: the classifier on the features, linear or mlp (one hidden "
                                 "layer).", choices=HEADS)
    head_width: int = option(512, "With `head` mlp: width of the hidden layer.", range=POSITIVE)
    head_dropout: float = option(0.0, "With `input` features: dropout before the final layer.", range=DROPOUT)
    seed: int = option(0, "Seed for initialisation, shuffling and tie-breaking.")
    batch_size: int = option(32, "Global batch size (split across GPUs).", range=POSITIVE)
    lr: float = option(1e-4, "Adam learning rate (the paper's beta).", range=POSITIVE)
    text: bool = option(False, "Also feed each image's report embedding (from `ltv embed-reports`) through two "
                               "512-wide layers into the classifier, for every method.")
    device: str = option("auto", "Where to train: auto (CUDA if present), cuda or cpu.", choices=DEVICES)
    workers: int = option(2, "Threads reading images ahead of the GPU (0: read in the main thread).",
                          range=NON_NEGATIVE)
    compile: bool = option(False, "Compile the model with torch.compile.")
    max_steps: int | None = option(None, "Stop after this many steps in total (resumable).", range=POSITIVE)
    checkpoint_every: int = option(1000, "Also save last.pt every N steps inside an epoch (0: only at epoch ends).",
                                   range=NON_NEGATIVE)
    resume: bool = option(False, "Continue the run in `out` from its last.pt.")
    #: The fusion method's options: its options dataclass, or values by name (checked and typed on creation).
    method_options: Mapping[str, Any] | Options = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dataset, self.out = _absolute(self.dataset), _absolute(self.out)
        self.pretrained = None if self.pretrained is None else _absolute(self.pretrained)
        super().__post_init__()
        if self.pretrained is not None and self.arch == "tiny":
            raise OptionError("pretrained", "needs a ResNet `arch` (tiny has no torchvision weights)")
        self.method_options = self._typed_method_options()

    @property
    def spec(self) -> MethodSpec:
        """The registry entry of the run's fusion method."""
        return method_spec(self.method, self.vote)

    def _typed_method_options(self) -> Options:
        """The method's options dataclass; options it shares with the run (``seed``) take the run's value.

        Typed options name their vote themselves (``ReliabilityOptions``: the reliability vote).
        """
        if isinstance(self.method_options, Options):
            spec, typed = resolve(self.method, self.method_options)
            self.vote = spec.vote or self.vote
            return typed
        shared = {name: getattr(self, name) for name in self.spec.options.names() if name in self.names()}
        return resolve(self.method, {**self.method_options, **shared, "vote": self.vote})[1]

    def to_json(self) -> dict:
        """Every option by name, the method's next to the run's (config.json's ``options``)."""
        run = {name: getattr(self, name) for name in self.names()}
        return run | self.method_options.to_json()

    @classmethod
    def from_json(cls, options: Mapping[str, Any]) -> TrainConfig:
        """The config recorded as ``options``; entries that are no option of the run's method are left out
        (records before version 2 list every method's options)."""
        run = {name: options[name] for name in cls.names() if name in options}
        run.setdefault("vote", PAPER_VOTE)  # a record without one is older than the votes: the paper's
        names = method_spec(run.get("method", "ltv"), run.get("vote")).options.names()
        return cls(**run, method_options={name: options[name] for name in names if name in options})

    def differences(self, other: TrainConfig) -> list[str]:
        """Options that differ from ``other`` and would change the result (for ``resume``)."""
        mine, theirs = self.to_json(), other.to_json()
        return [name for name in mine if name not in RESUMABLE_CHANGES and mine[name] != theirs.get(name)]


def _absolute(path: str | Path) -> str:
    return str(Path(path).resolve())
