"""Every option of a training run in one dataclass, checked once, stored in the run's config.json.

The CLI only fills a :class:`TrainConfig`; a notebook user can build one
directly. Defaults are the paper's (section 5, "Implementation details"):
ResNet-50, Adam with beta = 1e-4, batch 32, alpha = 0.2, k = 50, T = 0.5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ltvcli.errors import LtvError
from ltvcli.models import ARCHS

METHODS = ("ltv", "single", "mv", "cm")
DEVICES = ("auto", "cuda", "cpu")
META_SCOPES = ("all", "last")
VOTES = ("paper", "reliability")

#: Options that may change when a run is resumed: they do not change what is computed. Folders may
#: move (the dataset is recognised by its fingerprint instead), and the pretrained weights only
#: initialised the model that the checkpoint now holds.
RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "device", "workers", "compile", "checkpoint_every", "resume",
                               "dataset", "out", "pretrained"})


@dataclass
class TrainConfig:
    """The options of ``ltv train``; see ``docs/training.md`` for what each one does."""

    dataset: str
    out: str
    method: str = "ltv"
    epochs: int = 10
    arch: str = "resnet50"
    pretrained: str | None = None
    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-4
    label_set: str | None = None
    alpha: float = 0.2
    k: float = 50.0
    threshold: float = 0.5
    meta_scope: str = "all"
    vote: str = "paper"
    trusted: str | None = None
    model_evidence: float = 0.0
    cm_trace: float = 0.01
    text: bool = False
    device: str = "auto"
    workers: int = 2
    compile: bool = False
    max_steps: int | None = None
    checkpoint_every: int = 1000
    resume: bool = False

    def __post_init__(self) -> None:
        self.dataset = str(Path(self.dataset).resolve())
        self.out = str(Path(self.out).resolve())
        if self.pretrained is not None:
            self.pretrained = str(Path(self.pretrained).resolve())
        self.validate()

    def validate(self) -> None:
        """Reject values no run can use, naming the option and what it accepts."""
        _choice("--method", self.method, METHODS)
        _choice("--arch", self.arch, ARCHS)
        _choice("--device", self.device, DEVICES)
        _choice("--meta-scope", self.meta_scope, META_SCOPES)
        _choice("--vote", self.vote, VOTES)
        _positive("--epochs", self.epochs)
        _positive("--batch-size", self.batch_size)
        _positive("--lr", self.lr)
        _positive("--alpha", self.alpha)
        _positive("--k", self.k)
        _positive("--checkpoint-every", self.checkpoint_every, allow_zero=True)
        _positive("--workers", self.workers, allow_zero=True)
        _positive("--cm-trace", self.cm_trace, allow_zero=True)
        if self.max_steps is not None:
            _positive("--max-steps", self.max_steps)
        if self.pretrained is not None and self.arch == "tiny":
            raise LtvError("--pretrained needs a ResNet --arch (tiny has no torchvision weights)")
        if not (0.0 < self.threshold < 1.0):
            raise LtvError(f"--threshold {self.threshold}: expected a number strictly between 0 and 1")

    def method_options(self) -> dict:
        """The ``options`` dict handed to :func:`ltvcli.fusion.make_method`."""
        return {"label_set": self.label_set, "alpha": self.alpha, "k": self.k, "threshold": self.threshold,
                "meta_scope": self.meta_scope, "vote": self.vote, "trusted": self.trusted,
                "model_evidence": self.model_evidence, "cm_trace": self.cm_trace, "seed": self.seed}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: "TrainConfig") -> list[str]:
        """Options that differ from ``other`` and would change the result (for --resume)."""
        mine, theirs = self.to_json(), other.to_json()
        return [name for name in mine if name not in RESUMABLE_CHANGES and mine[name] != theirs[name]]


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LtvError(f"{option} {value!r}: expected one of {', '.join(allowed)}")


def _positive(option: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise LtvError(f"{option} {value}: expected a {'non-negative' if allow_zero else 'positive'} number")
