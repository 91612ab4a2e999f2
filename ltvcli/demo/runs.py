"""The demo's training runs: which ones, trained side by side, and what learning-to-vote's vote did.

A small CNN on a few hundred 64 px images is too small a job for several
threads: PyTorch's, OpenMP's and BLAS's threads mostly wait on each other,
and on a busy machine they spin (on the shared 2-core development machine a
run with two threads took five times the CPU time of a run with one, and the
demo's report SVD took twenty times as long). So the demo works
:func:`single_threaded` and instead runs as many trainings at once as there
are CPU cores: each one is the ``ltv train`` command a user would type, run
as a child process on one thread, its output (epoch lines, warnings) written
to ``RUN.log`` beside the run folder (``ltv train`` refuses a non-empty
folder that is not a run, so not inside it). The terminal gets one line when a run starts and one
when it ends, and the vote's story (:class:`VoteSummary`) comes with the
results. With one job the runs train one after the other in this process,
through the same options.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import ltvcli
from ltvcli.console import console_to
from ltvcli.errors import LtvError

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
#: One thread in a training child process, for every library that reads these at start-up.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


@dataclass(frozen=True)
class PlannedRun:
    """One training of the demo: its name (run folder and evaluation column), method and whether it reads text."""

    name: str
    method: str
    text: bool

    def describe(self) -> str:
        """``ltv+text: learning to vote over the label sets, with the report text``."""
        return f"{self.name}: {WHAT.get(self.method, self.method)}" + (", with the report text" if self.text else "")

    def train_options(self, *, epochs: int, arch: str, lr: float, seed: int) -> dict:
        """This run's ``ltv train`` options by Python parameter name: ``TrainConfig``'s fields and the method's
        options (``label_set``) alike, as the flags of ``ltv train`` are named after both."""
        options = dict(method=self.method, epochs=epochs, arch=arch, lr=lr, seed=seed, workers=0, text=self.text)
        if self.method == "single":
            options["label_set"] = BASELINE_SET
        return options


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


def train_side_by_side(runs: dict[str, tuple[str, Path, dict]], jobs: int, started: Callable[[str], None],
                       finished: Callable[[str], None]) -> None:
    """Train every run (name -> (dataset, run folder, options)), ``jobs`` at a time, each on one thread.

    Runs start in the order given (put the long ones first); ``started`` and
    ``finished`` are called as each run starts and ends. A run that fails
    stops the others and raises :class:`LtvError` with its error line; Ctrl-C
    stops them too.
    """
    if jobs == 1 or len(runs) <= 1:
        for name, (dataset, run, options) in runs.items():
            started(name)
            _train_here(dataset, run, options)
            finished(name)
        return
    waiting, running = list(runs.items()), {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                name, (dataset, run, options) = waiting.pop(0)
                started(name)
                running[name] = _start_training(dataset, run, options)
            done = [name for name, process in running.items() if process.poll() is not None]
            if not done:
                time.sleep(0.2)
            for name in done:
                _check_exit(name, running.pop(name), runs[name][1])
                finished(name)
    finally:
        for process in running.values():  # a failure or Ctrl-C: stop the others, do not leave them running
            process.terminate()
            process.wait()


def log_path(run: Path) -> Path:
    """Where a run's messages go: ``OUT/runs/ltv.log`` beside ``OUT/runs/ltv/``."""
    return run.parent / f"{run.name}.log"


def _train_here(dataset: str, run: Path, options: dict) -> None:
    """``ltv train`` in this process, on one thread, its messages written to RUN.log."""
    from ltvcli.runs.config import TrainConfig
    from ltvcli.train import train

    config = {name: value for name, value in options.items() if name in TrainConfig.names()}
    method_options = {name: value for name, value in options.items() if name not in config}
    run.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path(run), "w", encoding="utf-8") as log, console_to(log), single_threaded():
        train(TrainConfig(dataset=dataset, out=str(run), **config, method_options=method_options))


def train_command(dataset: str, run: Path, options: dict) -> list[str]:
    """``ltv train DATASET --out RUN --method ltv ...`` for ``options`` (flags named after the parameters)."""
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False:
            flags += [flag, str(value)]
    return ["ltv", "train", dataset, "--out", str(run), *flags]


def _start_training(dataset: str, run: Path, options: dict) -> subprocess.Popen:
    """``ltv train`` as a child process on one thread, with this process's ltv, its output in RUN.log."""
    run.parent.mkdir(parents=True, exist_ok=True)
    command = train_command(dataset, run, options)
    package_root = str(Path(ltvcli.__file__).resolve().parents[1])
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": os.pathsep.join(filter(None, (package_root,
                                                                                  os.environ.get("PYTHONPATH"))))}
    with open(log_path(run), "w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        return subprocess.Popen([sys.executable, "-m", "ltvcli", *command[1:]], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)


def _check_exit(name: str, process: subprocess.Popen, run: Path) -> None:
    """Raise the run's own error line (``error: ...``) if its ``ltv train`` failed."""
    if process.returncode == 0:
        return
    lines = log_path(run).read_text(encoding="utf-8").splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    said = errors[-1][len("error: "):] if errors else f"ltv train exited with status {process.returncode}"
    raise LtvError(f"training {name} failed: {said} (see {log_path(run)})")


@dataclass(frozen=True)
class RunOutcome:
    """A finished run's best validation score, from its run folder."""

    metric: str  # auc or accuracy
    best: float | None
    best_epoch: int | None

    @property
    def score(self) -> str:
        """``0.665``, or ``n/a`` where no epoch could be scored."""
        return "n/a" if self.best is None else f"{self.best:.3f}"

    def __str__(self) -> str:
        """``auc 0.665 at epoch 10``."""
        return f"{self.metric} {self.score}" + ("" if self.best is None else f" at epoch {self.best_epoch}")


def run_outcome(run: Path) -> RunOutcome:
    """Read the best validation score of the run in ``run`` (config.json and metrics.jsonl)."""
    from ltvcli.runs.folder import RunFolder

    folder = RunFolder(run)
    metric = folder.read_record().validation.metric
    best = [record for record in folder.read_metrics() if record["best"]]
    if not best or best[-1].get(f"val_{metric}") is None:
        return RunOutcome(metric, None, None)
    return RunOutcome(metric, best[-1][f"val_{metric}"], best[-1]["epoch"])


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
    from ltvcli.runs.folder import RunFolder

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
