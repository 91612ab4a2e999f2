"""``ltv demo``: generate the synthetic MIMIC example, then run the pipeline on it.

The pipeline is a list of named steps (:data:`STEPS`), each a function that
reads and fills one :class:`DemoResult` and returns a one-line outcome;
:func:`run_demo` numbers, times and logs them, and hands the result to an
optional ``after_step`` callback (the CLI prints the ``ltv info`` tables right
after the ingest that way). The trainings run side by side
(:mod:`ltvcli.demo.runs`).

Output folder layout::

    OUT/ltv-demo.json   marks OUT as a demo folder (written first; ltvcli.outputs.DEMO)
    OUT/source/         the generated MIMIC-layout example (ltvcli.demo.synth)
    OUT/dataset/        the ingested ltv dataset (with report embeddings, unless --no-text)
    OUT/report-embeddings.npz  the reports' TF-IDF + SVD vectors, a stand-in for BioBERT (ltvcli.demo.embeddings)
    OUT/runs/<method>/  one training run per method (ltv train), and <method>+text for TEXT_METHODS
    OUT/runs/<method>.log  that run's own messages (its command, epoch lines, warnings)
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
from ltvcli.demo.runs import (DEMO_METHODS, TEXT_SUFFIX, VoteSummary, default_jobs, planned_runs, run_outcome,
                              single_threaded, train_side_by_side, vote_summary)
from ltvcli.demo.synth import (DEFAULT_SUBJECTS, SOURCE_SIZE, DemoFiles, check_example_options, existing_example,
                               generate_mimic_example)
from ltvcli.errors import OptionError
from ltvcli.outputs import DEMO, check_output


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
    jobs: int | None = None  # trainings at once, one thread each; None: one per CPU core


@dataclass
class DemoResult:
    """What the steps have produced so far; each step reads earlier fields and fills its own."""

    out: Path
    options: DemoOptions
    files: DemoFiles | None = None
    dataset: Dataset | None = None
    summary: dict | None = None  # ltvcli.dataset.summarize of the dataset (what `ltv info --json` prints)
    runs: dict[str, Path] = field(default_factory=dict)  # run name -> run folder, in the evaluation's order
    votes: list[VoteSummary] = field(default_factory=list)  # what the vote did in each learning-to-vote run
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
    """``ltv ingest mimic`` on the example (frontal views, four label sets, hand-labelled test ground truth),
    then the counts ``ltv info`` shows."""
    from ltvcli.ingest.mimic import ingest_mimic

    f = result.files
    result.dataset = ingest_mimic(metadata=f.metadata, split=f.split, negbio=f.negbio, chexpert=f.chexpert,
                                  images=f.images, out=result.dataset_dir, size=result.options.size,
                                  ground_truth=f.ground_truth, reports=f.reports, workers=result.options.workers,
                                  force=True)  # the demo owns OUT/dataset: a re-run rebuilds it
    result.summary = summarize(result.dataset)
    splits = ", ".join(f"{name} {count}" for name, count in result.summary["splits"].items())
    return f"wrote {result.dataset_dir}: {len(result.dataset)} images ({splits}), label sets " \
           f"{', '.join(result.dataset.label_set_names)}, ground truth on " \
           f"{result.summary.get('ground_truth', {}).get('test', 0)} test images"


def embed(result: DemoResult) -> str:
    """Report embeddings for the image+text runs: TF-IDF + SVD of the reports, imported like BioBERT vectors."""
    from ltvcli.demo.embeddings import embed_demo_reports

    if not result.options.text:
        return "skipped (--no-text)"
    out = result.out / "report-embeddings.npz"
    meta = embed_demo_reports(result.dataset, out, seed=result.options.seed)
    return f"wrote {out} and imported it: {meta['dim']}-dim vectors, {meta['missing']} image(s) without one"


def train_runs(result: DemoResult) -> str:
    """``ltv train`` once per method (and with ``--text`` for TEXT_METHODS), side by side: same data, network, seed.

    The learning-to-vote runs start first (they take several times longer),
    so that the short ones fill the other cores around them.
    """
    o = result.options
    plans = planned_runs(o.methods, o.text)
    if not plans:
        return "skipped (no --methods)"
    runs = {}
    for plan in sorted(plans, key=lambda plan: plan.method != "ltv"):
        run = result.out / "runs" / plan.name
        shutil.rmtree(run, ignore_errors=True)  # the demo owns OUT/runs: a re-run trains afresh (and rewrites its log)
        runs[plan.name] = (str(result.dataset_dir), run,
                           plan.train_options(epochs=o.epochs, arch=o.arch, lr=o.lr, seed=o.seed))
    jobs = default_jobs() if o.jobs is None else o.jobs
    described = {plan.name: plan.describe() for plan in plans}
    log(f"      {len(plans)} runs, {min(jobs, len(plans))} at a time; each run's messages go to "
        f"{result.out / 'runs'}/NAME.log")
    train_side_by_side(runs, jobs, started=lambda name: log(f"      training {described[name]}"),
                       finished=lambda name: log(f"      trained {name}: best validation "
                                                 f"{run_outcome(runs[name][1])}"))
    for plan in plans:
        result.runs[plan.name] = runs[plan.name][1]
        if plan.method == "ltv":
            result.votes.append(vote_summary(result.runs[plan.name], result.dataset.label_set_names))
    outcomes = {name: run_outcome(run) for name, run in result.runs.items()}
    metric = next(iter(outcomes.values())).metric
    return f"best validation {metric}: " + ", ".join(f"{name} {o.score}" for name, o in outcomes.items())


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
    DemoStep("ingest", "ingesting it and counting its labels (ltv ingest mimic, ltv info)", ingest),
    DemoStep("embed", "embedding the reports (TF-IDF + SVD, imported with ltv embed-reports --embeddings)", embed),
    DemoStep("train", "training each method (ltv train)", train_runs),
    DemoStep("export", "exporting learning-to-vote's refined labels (ltv export-labels)", export),
    DemoStep("evaluate", "scoring runs and labellers on the hand-labelled test (ltv evaluate)", evaluate),
]


def run_demo(out: Path, *, seed: int = 0, size: int = 64, workers: int | None = 0,
             n_subjects: int = DEFAULT_SUBJECTS, source_size: tuple[int, int] = SOURCE_SIZE,
             epochs: int = 10, arch: str = "tiny", lr: float = 1e-3, methods: Sequence[str] = DEMO_METHODS,
             text: bool = True, jobs: int | None = None, steps: Sequence[DemoStep] | None = None,
             after_step: Callable[[DemoStep, DemoResult], None] | None = None) -> DemoResult:
    """Run the demo into ``out`` (created if needed) and return what every step produced.

    ``workers`` defaults to 0 because the example's small images decode in a
    few milliseconds each, far less than worker processes take to start
    (``None`` gives the ingest's own default). ``jobs`` trainings run at once
    (default: one per CPU core). ``after_step(step, result)`` is called after
    each step, e.g. to show what it produced.
    """
    out = Path(out)
    check_example_options(n_subjects, source_size)
    if jobs is not None and jobs < 1:
        raise OptionError("jobs", f"{jobs}: expected at least 1 training at a time")
    _claim(out)
    result = DemoResult(out, DemoOptions(seed=seed, size=size, workers=workers, n_subjects=n_subjects,
                                         source_size=tuple(source_size), epochs=epochs, arch=arch, lr=lr,
                                         methods=tuple(methods), text=text, jobs=jobs))
    steps = STEPS if steps is None else steps
    # One thread: the demo's jobs are too small to share out (ltvcli.demo.runs). The demo reads nothing of the
    # user's, so a file-system error is about OUT.
    with single_threaded(), atomic.writing(out):
        for number, step in enumerate(steps, 1):
            log(f"[{number}/{len(steps)}] {step.description}")
            start = time.perf_counter()
            outcome = step.run(result)
            result.seconds[step.name] = time.perf_counter() - start
            log(f"      {outcome} ({result.seconds[step.name]:.1f} s)")
            if after_step is not None:
                after_step(step, result)
    return result


def _claim(out: Path) -> None:
    """Refuse a non-empty folder that is not a demo folder (the demo replaces its subfolders), then mark it."""
    check_output(out, DEMO, reuse=True)
    atomic.write_json(out / DEMO.marker, {"written_by": "ltv demo"})
