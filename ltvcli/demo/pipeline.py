"""``ltv demo``: generate the synthetic MIMIC example, then run the pipeline on it.

The pipeline is a list of named steps (:data:`STEPS`), each a function that
reads and fills one :class:`DemoResult` and returns a one-line outcome. Later
stages of ltv (train, export-labels, evaluate) join the demo by appending a
:class:`DemoStep`; :func:`run_demo` numbers, times and logs whatever is there.

Output folder layout::

    OUT/ltv-demo.json   marks OUT as a demo folder (written first; ltvcli.outputs.DEMO)
    OUT/source/         the generated MIMIC-layout example (ltvcli.demo.synth)
    OUT/dataset/        the ingested ltv dataset (with report embeddings, unless --no-text)
    OUT/report-embeddings.npz  the reports' TF-IDF + SVD vectors, a stand-in for BioBERT (ltvcli.demo.embeddings)
    OUT/runs/<method>/  one training run per method (ltv train), and <method>+text for TEXT_METHODS
    OUT/ltv-labels.csv  learning-to-vote's refined labels and vote weights (ltv export-labels)
    OUT/evaluation/     AUCs of every run and label set on the hand-labelled test split (ltv evaluate)

Re-running on the same OUT reuses ``source/`` when it was generated with the
same seed, example size and ltv version (generation is deterministic, so
regenerating would write the same bytes), and regenerates it otherwise. Every
later step runs again.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ltvcli import atomic
from ltvcli.console import log
from ltvcli.dataset import Dataset, summarize
from ltvcli.demo.synth import (DEFAULT_SUBJECTS, SOURCE_SIZE, DemoFiles, check_example_options, existing_example,
                               generate_mimic_example)
from ltvcli.outputs import DEMO, check_output

#: What the demo trains: the paper's R50 baseline on one label set (NegBio, uncertain -> 1), the
#: majority vote, the confusion-matrix method and learning-to-vote. "single" trains on BASELINE_SET.
DEMO_METHODS = ("single", "mv", "cm", "ltv")
BASELINE_SET = "negbio_u1"
#: Methods trained a second time with the report embeddings (``ltv train --text``), as run ``<method>+text``:
#: the paper's image+text setting next to the image-only one.
TEXT_METHODS = ("single", "ltv")
TEXT_SUFFIX = "+text"


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 0
    size: int = 64  # side of the ingested images
    workers: int | None = 0  # decoding processes; 0: decode in this process (see run_demo)
    n_subjects: int = DEFAULT_SUBJECTS
    source_size: tuple[int, int] = SOURCE_SIZE
    epochs: int = 10
    arch: str = "tiny"  # a small CNN: the paper's ResNet-50 would take hours on a laptop CPU
    lr: float = 1e-3  # the paper's 1e-4 suits a pretrained ResNet-50; a small CNN from scratch needs more
    methods: tuple[str, ...] = DEMO_METHODS
    text: bool = True  # embed the reports and add the image+text runs


@dataclass
class DemoResult:
    """What the steps have produced so far; each step reads earlier fields and fills its own."""

    out: Path
    options: DemoOptions
    files: DemoFiles | None = None
    dataset: Dataset | None = None
    summary: dict | None = None  # ltvcli.dataset.summarize of the dataset (what `ltv info --json` prints)
    runs: dict[str, Path] = field(default_factory=dict)  # method -> run folder
    evaluation: object | None = None  # ltvcli.evaluate.EvaluationResult
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step

    @property
    def source_dir(self) -> Path:
        return self.out / "source"

    @property
    def dataset_dir(self) -> Path:
        return self.out / "dataset"


@dataclass(frozen=True)
class DemoStep:
    name: str
    description: str
    run: Callable[[DemoResult], str]  # returns one line saying what the step did


def generate(result: DemoResult) -> str:
    """Write the synthetic MIMIC example into OUT/source, or reuse an identical one."""
    o = result.options
    params = dict(n_subjects=o.n_subjects, seed=o.seed, source_size=o.source_size)
    result.files = existing_example(result.source_dir, **params)
    if result.files is not None:
        return f"reused {result.source_dir} (same seed and size)"
    result.files = generate_mimic_example(result.source_dir, **params)
    return f"wrote {result.source_dir}"


def ingest(result: DemoResult) -> str:
    """``ltv ingest mimic`` on the example: frontal views, four label sets, hand-labelled test ground truth."""
    from ltvcli.ingest.mimic import ingest_mimic

    f = result.files
    result.dataset = ingest_mimic(metadata=f.metadata, split=f.split, negbio=f.negbio, chexpert=f.chexpert,
                                  images=f.images, out=result.dataset_dir, size=result.options.size,
                                  ground_truth=f.ground_truth, reports=f.reports, workers=result.options.workers,
                                  force=True)  # the demo owns OUT/dataset: a re-run rebuilds it
    return f"wrote {result.dataset_dir}: {len(result.dataset)} images, label sets " \
           f"{', '.join(result.dataset.label_set_names)}"


def summary(result: DemoResult) -> str:
    """The counts `ltv info` shows: splits, views, labeller positives / uncertains, disagreement."""
    result.summary = summarize(result.dataset)
    splits = ", ".join(f"{name} {count}" for name, count in result.summary["splits"].items())
    return f"{splits}; ground truth on {result.summary.get('ground_truth', {}).get('test', 0)} test images"


def embed(result: DemoResult) -> str:
    """Report embeddings for the image+text runs: TF-IDF + SVD of the reports, imported like BioBERT vectors."""
    from ltvcli.demo.embeddings import embed_demo_reports

    if not result.options.text:
        return "skipped (--no-text)"
    out = result.out / "report-embeddings.npz"
    meta = embed_demo_reports(result.dataset, out, seed=result.options.seed)
    return f"wrote {out} and imported it: {meta['dim']}-dim vectors, {meta['missing']} image(s) without one"


def planned_runs(options: DemoOptions) -> list[tuple[str, str, bool]]:
    """(run name, method, with text) in training order: each image+text run right after its image-only twin."""
    runs = []
    for method in options.methods:
        runs.append((method, method, False))
        if options.text and method in TEXT_METHODS:
            runs.append((method + TEXT_SUFFIX, method, True))
    return runs


def train_runs(result: DemoResult) -> str:
    """``ltv train`` once per method (and with ``--text`` for TEXT_METHODS): same data, architecture and seed."""
    from ltvcli.runs.config import TrainConfig
    from ltvcli.train import train

    o = result.options
    scores = []
    for name, method, text in planned_runs(o):
        run = result.out / "runs" / name
        shutil.rmtree(run, ignore_errors=True)  # the demo owns OUT/runs: a re-run trains afresh
        config = TrainConfig(dataset=str(result.dataset_dir), out=str(run), method=method, epochs=o.epochs,
                             arch=o.arch, lr=o.lr, seed=o.seed, workers=0, text=text,
                             method_options={"label_set": BASELINE_SET} if method == "single" else {})
        outcome = train(config)
        result.runs[name] = run
        best = "n/a" if outcome.best_metric is None else f"{outcome.best_metric:.3f}"
        scores.append(f"{name} {best}")
    return f"best validation {outcome.metric}: " + ", ".join(scores)


def export(result: DemoResult) -> str:
    """``ltv export-labels`` of the learning-to-vote run: refined labels and vote weights per image."""
    from ltvcli.train.export import export_labels

    if "ltv" not in result.runs:
        return "skipped (no ltv run)"
    out = result.out / "ltv-labels.csv"
    frame = export_labels(result.runs["ltv"], result.dataset, out, force=True)
    return f"wrote {out} ({frame['image_id'].nunique()} training images)"


def evaluate(result: DemoResult) -> str:
    """``ltv evaluate``: every run and every label set against the hand-labelled test split."""
    from ltvcli.evaluate import evaluate as score_runs, write_outputs

    runs = [f"{method}={run}" for method, run in result.runs.items()]
    compare = ("ltv", "single") if {"ltv", "single"} <= result.runs.keys() else None
    result.evaluation = score_runs(runs, dataset=result.dataset, seed=result.options.seed, compare=compare)
    out = result.out / "evaluation"
    write_outputs(result.evaluation, out, force=True)
    return f"wrote {out} (table.md, auc.csv, ROC curves)" + _text_gains(result)


def _text_gains(result: DemoResult) -> str:
    """'; average AUC image -> image+text: ltv 0.610 -> 0.720, ...' for the methods trained both ways."""
    from ltvcli.evaluate.evaluate import AVERAGE

    pairs = [(name[:-len(TEXT_SUFFIX)], name) for name in result.runs if name.endswith(TEXT_SUFFIX)]
    if not pairs or result.evaluation.task != "multilabel":
        return ""
    average = result.evaluation.value
    gains = [f"{image} {average(image, AVERAGE):.3f} -> {average(text, AVERAGE):.3f}" for image, text in pairs]
    return "; average AUC image -> image+text: " + ", ".join(gains)


STEPS: list[DemoStep] = [
    DemoStep("generate", "generating a synthetic MIMIC-CXR example", generate),
    DemoStep("ingest", "ingesting it (ltv ingest mimic)", ingest),
    DemoStep("summary", "counting labels (ltv info)", summary),
    DemoStep("embed", "embedding the reports (TF-IDF + SVD, imported with ltv embed-reports --embeddings)", embed),
    DemoStep("train", "training each method (ltv train)", train_runs),
    DemoStep("export", "exporting learning-to-vote's refined labels (ltv export-labels)", export),
    DemoStep("evaluate", "scoring runs and labellers on the hand-labelled test (ltv evaluate)", evaluate),
]


def run_demo(out: Path, *, seed: int = 0, size: int = 64, workers: int | None = 0,
             n_subjects: int = DEFAULT_SUBJECTS, source_size: tuple[int, int] = SOURCE_SIZE,
             epochs: int = 10, arch: str = "tiny", lr: float = 1e-3, methods: Sequence[str] = DEMO_METHODS,
             text: bool = True, steps: Sequence[DemoStep] | None = None) -> DemoResult:
    """Run the demo into ``out`` (created if needed) and return what every step produced.

    ``workers`` defaults to 0 because the example's small images decode in a
    few milliseconds each, far less than worker processes take to start
    (``None`` gives the ingest's own default).
    """
    out = Path(out)
    check_example_options(n_subjects, source_size)
    _claim(out)
    result = DemoResult(out, DemoOptions(seed=seed, size=size, workers=workers, n_subjects=n_subjects,
                                         source_size=tuple(source_size), epochs=epochs, arch=arch, lr=lr,
                                         methods=tuple(methods), text=text))
    steps = STEPS if steps is None else steps
    with atomic.writing(out):  # the demo reads nothing of the user's: a file-system error is about OUT
        for number, step in enumerate(steps, 1):
            log(f"[{number}/{len(steps)}] {step.description}")
            start = time.perf_counter()
            outcome = step.run(result)
            result.seconds[step.name] = time.perf_counter() - start
            log(f"      {outcome} ({result.seconds[step.name]:.1f} s)")
    return result


def _claim(out: Path) -> None:
    """Refuse a non-empty folder that is not a demo folder (the demo replaces its subfolders), then mark it."""
    check_output(out, DEMO, reuse=True)
    atomic.write_json(out / DEMO.marker, {"written_by": "ltv demo"})
