"""The demo's training runs: which ones, trained side by side, and what learning-to-vote's vote did.

A small CNN on a few hundred 64 px images is too small a job for several
threads: PyTorch's, OpenMP's and BLAS's threads mostly wait on each other,
and on a busy machine they spin (on the shared 2-core development machine a
run with two threads took five times the CPU time of a run with one, and the
demo's report SVD took twenty times as long). So the demo works :func:`single_threaded`
and instead runs as many trainings at once as there are CPU cores, in worker
processes started with ``spawn`` (a forked child of a process whose OpenMP
threads are running can hang). Each run's own messages (its epoch lines,
warnings) go to ``RUN/train.log``; the terminal gets one line when a run
starts and one when it ends, and the vote's story (:class:`VoteSummary`)
comes with the results.
"""

from __future__ import annotations

import os
import queue
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ltvcli.console import console_to

if TYPE_CHECKING:  # torch comes with them; the workers import them, `ltv --help` must not
    from ltvcli.train.config import TrainConfig
    from ltvcli.train.loop import TrainResult

#: What the demo trains: the paper's R50 baseline on one label set (NegBio, uncertain -> 1), the
#: majority vote, the confusion-matrix method and learning-to-vote. "single" trains on BASELINE_SET.
DEMO_METHODS = ("single", "mv", "cm", "ltv")
BASELINE_SET = "negbio_u1"
#: Methods trained a second time with the report embeddings (``ltv train --text``), as run ``<method>+text``:
#: the paper's image+text setting next to the image-only one.
TEXT_METHODS = ("single", "ltv")
TEXT_SUFFIX = "+text"
#: What each method trains on, for the line that announces its run.
WHAT = {"single": f"one label set ({BASELINE_SET})", "mv": "the majority vote of the label sets",
        "cm": "the label sets through learned confusion matrices", "ltv": "learning to vote over the label sets"}


@dataclass(frozen=True)
class PlannedRun:
    """One training of the demo: its name (run folder and evaluation column), method and whether it reads text."""

    name: str
    method: str
    text: bool

    def describe(self) -> str:
        """``ltv+text: learning to vote over the label sets, with the report text``."""
        return f"{self.name}: {WHAT.get(self.method, self.method)}" + (", with the report text" if self.text else "")


def planned_runs(methods: Sequence[str], text: bool) -> list[PlannedRun]:
    """The runs in the evaluation's column order: each image+text run right after its image-only twin."""
    runs = []
    for method in methods:
        runs.append(PlannedRun(method, method, False))
        if text and method in TEXT_METHODS:
            runs.append(PlannedRun(method + TEXT_SUFFIX, method, True))
    return runs


@contextmanager
def single_threaded() -> Iterator[None]:
    """One thread for PyTorch, BLAS and OpenMP while inside; the previous settings afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(saved)


def default_jobs() -> int:
    """Trainings at once: one per CPU core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_side_by_side(configs: dict[str, TrainConfig], jobs: int, started: Callable[[str], None],
                       finished: Callable[[str, TrainResult], None]) -> dict[str, TrainResult]:
    """Train every ``TrainConfig`` of ``configs`` (name -> config), ``jobs`` at a time, each on one thread.

    Runs start in the order given (put the long ones first); ``started`` and
    ``finished`` are called in this process as each run starts and ends.
    Returns name -> ``TrainResult``. A failing run (an ``LtvError`` in its
    worker) is raised here; on any exception or Ctrl-C the workers are
    stopped at once, not left to finish their runs. With one job (or run) the runs
    train one after the other in this process (no worker to start).
    """
    results = {}
    if jobs == 1 or len(configs) <= 1:
        for name, config in configs.items():
            started(name)
            results[name] = _train_logged(config)
            finished(name, results[name])
        return results
    waiting = list(configs.items())
    done: queue.SimpleQueue = queue.SimpleQueue()
    with get_context("spawn").Pool(min(jobs, len(waiting)), initializer=_worker_setup) as pool:
        running = 0
        while waiting or running:
            while waiting and running < jobs:
                name, config = waiting.pop(0)
                started(name)
                pool.apply_async(_train_logged, (config,), callback=lambda r, n=name: done.put((n, r, None)),
                                 error_callback=lambda e, n=name: done.put((n, None, e)))
                running += 1
            name, result, error = _next(done)
            running -= 1
            if error is not None:
                raise error
            results[name] = result
            finished(name, result)
    return results


def _next(done: queue.SimpleQueue) -> tuple:
    """The next finished run; waits in short slices so that Ctrl-C reaches this process at once."""
    while True:
        try:
            return done.get(timeout=0.5)
        except queue.Empty:
            continue


def _worker_setup() -> None:
    """A training worker leaves Ctrl-C to the parent, which stops the workers (no traceback from each)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _train_logged(config: TrainConfig) -> TrainResult:
    """``ltv train`` with ``config`` on one thread, its messages written to RUN/train.log; returns the TrainResult."""
    from ltvcli.train.loop import train

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w", encoding="utf-8") as handle, console_to(handle), single_threaded():
        return train(config)


@dataclass
class VoteSummary:
    """What learning-to-vote's vote did in one run: its weights at the best epoch, and where it degenerated.

    A vote has *collapsed* when one label set takes a mean weight above 0.9
    (training then follows that label set alone) and stayed *uniform* when
    it weighs every set alike (a majority vote); ``ltv train`` flags both per
    epoch (``vote_warning`` in metrics.jsonl).
    """

    run: str
    epochs: int
    best_epoch: int
    weights: dict[str, float]  # label set -> mean weight at the best epoch
    collapsed: dict[str, list[int]] = field(default_factory=dict)  # label set -> epochs collapsed onto it
    uniform: list[int] = field(default_factory=list)  # epochs with a uniform vote

    def notes(self) -> list[str]:
        """One line per degenerate behaviour, e.g. ``the vote collapsed onto negbio_u0 in epochs 2-10 of 10``."""
        lines = [f"the vote collapsed onto {name} in {_epochs(epochs)} of {self.epochs}"
                 for name, epochs in self.collapsed.items()]
        if self.uniform:
            lines.append(f"the vote stayed uniform in {_epochs(self.uniform)} of {self.epochs}")
        return lines


#: What the words of :meth:`VoteSummary.notes` mean, for a reader who has not met them.
COLLAPSED = "collapsed = one label set's mean weight above 0.9: training follows it alone"
UNIFORM = "uniform = every label set weighed alike: the vote is a majority vote"


def vote_summary(run: Path, label_sets: Sequence[str]) -> VoteSummary:
    """Read a learning-to-vote run's metrics.jsonl into a :class:`VoteSummary`."""
    from ltvcli.train.run import RunFolder

    records = [r for r in RunFolder(run).read_metrics() if not r["partial"]]
    best = [r for r in records if r["best"]][-1]
    summary = VoteSummary(run.name, records[-1]["epoch"], best["epoch"],
                          {name: best[f"weight_{name}"] for name in label_sets})
    for record in records:
        warning = record.get("vote_warning") or ""
        if warning.startswith("collapse"):
            top = max(label_sets, key=lambda name: record[f"weight_{name}"])
            summary.collapsed.setdefault(top, []).append(record["epoch"])
        elif warning.startswith("uniform"):
            summary.uniform.append(record["epoch"])
    return summary


def _epochs(numbers: list[int]) -> str:
    """``epoch 4``, ``epochs 2-10``, ``epochs 1, 3-5``."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    text = ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in spans)
    return ("epoch " if len(numbers) == 1 else "epochs ") + text
