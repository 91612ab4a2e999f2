"""config.json of a run folder: a typed, versioned record, read by every command through :func:`read_record`.

A record says what a folder holds and how it was made. ``ltv train`` writes a
:class:`RunRecord`; ``ltv refine`` writes its own record type
(:class:`ltvcli.refine.run.SelectionRecord`). Each JSON file carries the record's
``kind`` and ``version``; :func:`read_record` is the one place that opens it,
refuses another kind of folder or a version this ltv does not know (naming it),
upgrades an older one, and returns the typed dataclass.

Record versions: 1 is what ltv 0.1.0 wrote (no ``kind`` or ``version`` key);
2 adds them, and a run's ``method_options`` holds only its method's options;
3 adds what the model read (``options.input``, the head options, and
``features`` for a run on image features), so an older ltv refuses a run on
features instead of mistaking it for an image run; 4 adds the cross-fitted
vote's ``evidence``. All read the same way (a record before 3 is a run on
images; a cross-fitted run before 4 read the classifier's feature,
``evidence`` trained).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

from ltvcli.atomic import write_json
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.runs.config import TrainConfig

RECORD_FILE = "config.json"
#: The version a record without a ``version`` key has: written by ltv 0.1.0.
FIRST_VERSION = 1


class Record(Protocol):
    """What a record type declares: its kind, its current version, how a user names its folder, and the keys
    every version of it has (checked first, so another tool's config.json is named as such)."""

    KIND: ClassVar[str]
    VERSION: ClassVar[int]
    WHAT: ClassVar[str]
    FOLDER: ClassVar[str]
    KEYS: ClassVar[tuple[str, ...]]

    @classmethod
    def from_json(cls, data: dict, version: int) -> Record: ...

    def to_json(self) -> dict: ...


R = TypeVar("R", bound=Record)


def read_record(folder: str | Path, kind: type[R]) -> R:
    """The record in ``folder``'s config.json as a ``kind``; a one-line error for anything else."""
    folder = Path(folder)
    path = folder / RECORD_FILE
    if not folder.is_dir():
        raise LtvError(f"{folder}: no such {kind.FOLDER}")
    if not path.is_file():
        raise LtvError(f"{folder}: not {kind.WHAT} ({RECORD_FILE} is missing)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LtvError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise LtvError(f"{path}: not JSON text; {folder} is not {kind.WHAT}") from None
    except OSError as exc:
        raise LtvError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("kind", kind.KIND) != kind.KIND:
        other = f"a {data['kind']} record" if isinstance(data, dict) and "kind" in data else "something else"
        raise LtvError(f"{folder}: not {kind.WHAT} (its {RECORD_FILE} is {other})")
    missing = [key for key in kind.KEYS if key not in data]
    if missing:  # another tool's config.json (a Hugging Face model's, say): name what an ltv record has
        raise LtvError(f"{path}: not the record of {kind.WHAT} (no {missing[0]!r})")
    version = data.get("version", FIRST_VERSION)
    if version not in range(FIRST_VERSION, kind.VERSION + 1):
        raise LtvError(f"{path}: record version {version!r} is not supported (this ltv reads versions "
                       f"{FIRST_VERSION} to {kind.VERSION}); use the ltv that wrote it")
    try:
        return kind.from_json(data, version)
    except (KeyError, TypeError, ValueError):
        raise LtvError(f"{folder}: not {kind.WHAT} (its {RECORD_FILE} belongs to something else)") from None


def write_record(folder: str | Path, record: Record) -> None:
    """Write ``record`` as ``folder``/config.json (atomically), with its kind and version."""
    write_json(Path(folder) / RECORD_FILE, {"kind": record.KIND, "version": record.VERSION, **record.to_json()})


# ----------------------------------------------------------------------------- the record of a training run
@dataclass(frozen=True)
class DatasetInfo:
    """The dataset a run was trained on: where it was, its fingerprint, and the shape of its images (None: it has
    none, a run on features)."""

    path: str
    fingerprint: str
    image_size: int | None
    channels: int | None
    n_images: int
    n_train: int
    n_validate: int


@dataclass(frozen=True)
class TextInfo:
    """The report embeddings a run was trained with (``text``): their size and where they came from."""

    dim: int
    source: str
    model: str | None
    pooling: str | None
    max_length: int | None

    def describe(self) -> str:
        return f"{self.dim} dims from {self.model}"


@dataclass(frozen=True)
class FeatureInfo:
    """The image features a run on features (``input`` features) was trained on: their size, origin, fingerprint.

    The fingerprint (:func:`ltvcli.dataset.cache.image_cache_fingerprint` of the feature matrix) tells a
    resumed run that the features were replaced since it started.
    """

    dim: int
    source: str | None
    model: str | None
    fingerprint: str

    def describe(self) -> str:
        return f"{self.dim} dims from {self.model}"


@dataclass(frozen=True)
class ValidationInfo:
    """How the run chose its best checkpoint: ``auc`` or ``accuracy`` against ``ground_truth`` or ``majority_vote``."""

    metric: str
    reference: str | None


@dataclass(frozen=True)
class RunRecord:
    """config.json of an ``ltv train`` run folder: what was trained, on what, how it is scored."""

    KIND: ClassVar[str] = "train"
    VERSION: ClassVar[int] = 4
    WHAT: ClassVar[str] = "an ltv run folder"
    FOLDER: ClassVar[str] = "run folder"
    KEYS: ClassVar[tuple[str, ...]] = ("classes", "label_sets", "method", "method_options", "options", "dataset")

    ltv_version: str
    task: str
    classes: list[str]
    label_sets: list[str]
    config: TrainConfig
    dataset: DatasetInfo
    validation: ValidationInfo
    text: TextInfo | None
    world_size: int
    device: str
    features: FeatureInfo | None = None

    @classmethod
    def from_json(cls, data: dict, version: int) -> RunRecord:
        text, features = data.get("text"), data.get("features")
        options = data["options"] if version >= 3 else {**data["options"], "input": "images"}
        if version < 4:  # the cross-fitted vote's heads read F before `evidence` existed (other methods ignore it)
            options = {"evidence": "trained", **options}
        return cls(ltv_version=data["ltv_version"], task=data["task"], classes=list(data["classes"]),
                   label_sets=list(data["label_sets"]), config=TrainConfig.from_json(options),
                   dataset=DatasetInfo(**data["dataset"]), validation=ValidationInfo(**data["validation"]),
                   text=TextInfo(**text) if text else None, world_size=data["world_size"], device=data["device"],
                   features=FeatureInfo(**features) if features else None)

    def to_json(self) -> dict:
        spec = self.config.spec
        return {"ltv_version": self.ltv_version, "task": self.task, "classes": self.classes,
                "label_sets": self.label_sets, "method": self.config.method, "options": self.config.to_json(),
                "method_options": spec.options_json(self.config.method_options), "dataset": asdict(self.dataset),
                "text": None if self.text is None else asdict(self.text),
                "features": None if self.features is None else asdict(self.features),
                "validation": asdict(self.validation), "world_size": self.world_size, "device": self.device}

    @property
    def on_features(self) -> bool:
        """Whether the run's model reads image features (``input`` features) rather than images."""
        return self.config.input == "features"

    def check_fits(self, dataset: Dataset, *, label_sets: bool = False) -> None:
        """A run can only score (or, with ``label_sets``, refine) a dataset with its classes and its input: images
        with its channels, or features of its size."""
        if dataset.classes != self.classes:
            raise LtvError(f"{dataset.path}: classes {dataset.classes} differ from the run's {self.classes}")
        if self.on_features:
            dim = dataset.feature_meta["dim"]  # raises, saying how to add them, if the dataset has none
            if dim != self.features.dim:
                raise LtvError(f"{dataset.path}: its image features have {dim} dims, the run was trained on "
                               f"{self.features.describe()}; give the dataset features from the same model")
        elif dataset.channels != self.dataset.channels:
            raise LtvError(f"{dataset.path}: {dataset.channels}-channel images, the run was trained on "
                           f"{self.dataset.channels}-channel images")
        if label_sets and dataset.label_set_names != self.label_sets:
            raise LtvError(f"{dataset.path}: label sets {dataset.label_set_names} differ from the run's "
                           f"{self.label_sets}")
