"""The GPU suite: one command that fills the docs' GPU tables on one lent H100/H200 in about eight minutes.

A GPU is lent to this project rarely and for about 15 minutes of device time,
start-up included, so what runs on it is prepared here, runs unattended, and
keeps what it has when a stage fails or overruns. The stages (:func:`stages`):

1. ``train-b32``, ``train-b128``: ``benchmarks/bench_train.py``, ResNet-50 at
   256 px, M = 4 label sets, bf16, batch 32 and 128 -- plain step, ltv-all,
   ltv-last, the naive loop and a real epoch from the image cache, with peak memory;
2. ``ingest``: ``benchmarks/bench_ingest.py --device cuda``, 10,000 MIMIC-size
   JPEGs decoded by nvJPEG (and, for comparison, by one CPU worker per core);
3. ``vote``: ``examples/vote_comparison.py --arch resnet18`` on the CIFAR-10
   subset (``--data``): every method and vote, three seeds, two noise levels,
   as many trainings side by side on the one GPU as there are cores to drive them;
4. ``cuda-tests``: the tests that need a CUDA device (``tests/test_cuda.py``,
   skipped everywhere else), beside the vote comparison.

Stages that time something (``timing``) run alone, one after the other, so
that nothing else on the GPU or the CPUs moves their numbers; the others then
run side by side on what is left of ``--budget``. A stage that overruns its
budget is stopped with every process it started, and the suite goes on.
After each stage it rewrites three files in ``--out``: ``tables.md`` (Markdown
to paste into docs/performance.md and docs/results.md, the goals with
PASS/MISS), ``results.json`` (every number and setting) and ``logs.tar.gz``
(each stage's log and raw output), so a run cut short keeps what it finished.
Adding a stage -- the embeddings-scale run of issue #15 when it lands -- is
one :class:`Stage` in :func:`stages` and a function turning its output into a
:class:`Section`.

It runs on the lent machine's own image (torch, torchvision, numpy, pandas,
scikit-learn, scipy, rich, typer, Pillow), never needs pydicom or the codec
packages, installs nothing, and stops with one line when no CUDA device is
visible. ``--smoke`` runs every stage at toy sizes (``--device cpu`` is
allowed only then); tests/test_gpu_suite.py does, so the suite cannot rot
while no GPU is lent. docs/performance.md ("Running the GPU suite") has the
device call.

    python benchmarks/gpu_suite.py --data .gpu-data --out "$OUT/gpu-suite"
    python benchmarks/gpu_suite.py --smoke --device cpu --data DIR --out DIR
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's ltvcli, installed or not

from ltvcli.atomic import atomic_path, write_json, write_text  # noqa: E402

CIFAR = "cifar10_subset.npz"
#: The issue's own probe on an H100 (issue 18), for reference beside the training tables.
H100_PROBE = "plain 1,304-1,487 img/s at batch 32, naive 253-293 img/s, layer4-scope (ltv-last) 802 img/s"
#: GPU memory one vote-comparison training is allowed when counting how many fit side by side: the CUDA
#: context plus ResNet-18 at 32 px, batch 32, with LTV's virtual features (an allowance, not a measurement).
GIB_PER_TRAINING = 4.0
#: No stage starts with less of the suite's budget left than this (beyond its own reserve).
MIN_START_SECONDS = 10
#: Files of a stage folder that go into logs.tar.gz (checkpoints, arrays and figures stay out), up to 1 MB each.
ARCHIVED = (".txt", ".json", ".jsonl", ".md", ".csv", ".xml")
ARCHIVED_MAX_BYTES = 2**20


@dataclass(frozen=True)
class Sizes:
    """How much work each stage does and how long it may take: the GPU run's, or toy sizes for ``--smoke``."""

    arch: str
    image: int
    batches: tuple[int, int]
    steps: int
    warmup: int
    repeats: tuple[int, int]
    train_budgets: tuple[float, float]
    ingest_images: int
    ingest_distinct: int
    film: str
    ingest_budget: float
    vote_arch: str
    vote_epochs: int
    vote_seeds: tuple[int, ...]
    vote_noise: tuple[float, ...]
    vote_methods: str | None  # None: all of vote_comparison's methods
    vote_reserve: float  # seconds kept back from the trainings for the evaluations
    budget: float  # the whole suite


GPU = Sizes(arch="resnet50", image=256, batches=(32, 128), steps=20, warmup=3, repeats=(3, 2),
            train_budgets=(120, 150), ingest_images=10_000, ingest_distinct=32, film="3000x2500", ingest_budget=150,
            vote_arch="resnet18", vote_epochs=8, vote_seeds=(0, 1, 2), vote_noise=(0.3, 0.5), vote_methods=None,
            vote_reserve=45, budget=480)
SMOKE = Sizes(arch="tiny", image=32, batches=(4, 8), steps=1, warmup=1, repeats=(1, 1), train_budgets=(300, 300),
              ingest_images=8, ingest_distinct=2, film="300x250", ingest_budget=300, vote_arch="tiny", vote_epochs=1,
              vote_seeds=(0,), vote_noise=(0.3,), vote_methods="mv,ltv_reliability", vote_reserve=120, budget=1200)


@dataclass
class Goal:
    """A ratio or speed the project aims at, measured in this run."""

    name: str
    value: float
    target: float
    unit: str  # "x" for ratios, else the unit of a speed

    @property
    def passed(self) -> bool:
        return self.value >= self.target

    def row(self) -> str:
        value, target = (f"{self.value:.2f}x", f">= {self.target:g}x") if self.unit == "x" else \
            (f"{_number(self.value)} {self.unit}", f">= {self.target:,.0f} {self.unit}")
        return f"| {self.name} | {value} | {target} | {'PASS' if self.passed else 'MISS'} |"


@dataclass
class Section:
    """What a finished stage contributes: Markdown for the docs, goals, and its raw numbers for results.json."""

    markdown: str
    goals: list[Goal] = field(default_factory=list)
    data: dict = field(default_factory=dict)


@dataclass
class Stage:
    """One command of the suite, run from the repository root; ``{out}`` in it stands for the stage's folder.

    ``title``: where its tables go. ``budget``: seconds before it is stopped
    (``None``: what is left of the suite's budget). ``timing``: it measures
    speed, so it runs alone.
    ``deadline_option``: the command's own option for the seconds it may run,
    which the suite passes (its limit less ``reserve``) so that it ends itself
    in time and reports what finished. ``render`` turns the stage folder into
    its :class:`Section`.
    """

    name: str
    title: str
    command: list[str]
    budget: float | None
    render: Callable[[Path], Section]
    timing: bool = True
    deadline_option: str | None = None
    reserve: float = 0.0


@dataclass
class Outcome:
    """How a stage went: status, wall seconds, the command as run, its section, the end of a failed log."""

    stage: Stage
    status: str = "not run"
    seconds: float = 0.0
    limit: float | None = None
    command: list[str] = field(default_factory=list)
    section: Section | None = None
    log_tail: str = ""
    gpu: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the stages
def stages(args: argparse.Namespace, sizes: Sizes, jobs: int) -> list[Stage]:
    """The suite, in running order. A new stage is one more entry here and a function rendering its output."""
    python, device = sys.executable, args.device
    plan = []
    for i, batch in enumerate(sizes.batches):  # named after the GPU run's batch sizes; --smoke's are smaller
        plan.append(Stage(
            name=f"train-b{GPU.batches[i]}",
            title="docs/performance.md, Training, GPU table",
            command=[python, "benchmarks/bench_train.py", "--arch", sizes.arch, "--size", str(sizes.image),
                     "--batch", str(batch), "--label-sets", "4", "--device", device, "--steps", str(sizes.steps),
                     "--warmup", str(sizes.warmup), "--repeats", str(sizes.repeats[i]), "--json", "{out}/rows.json"],
            budget=sizes.train_budgets[i],
            render=functools.partial(train_section, goals=i == 0)))
    plan.append(Stage(
        name="ingest",
        title="docs/performance.md, Ingest, GPU table",
        command=[python, "benchmarks/bench_ingest.py", "--device", device, "--formats", "jpg",
                 "--images", str(sizes.ingest_images), "--distinct", str(sizes.ingest_distinct), "--film", sizes.film,
                 "--workers", "0" if args.smoke else str(os.cpu_count() or 1), "--json", "{out}/rows.json"],
        budget=sizes.ingest_budget,
        render=ingest_section))
    methods = ["--methods", sizes.vote_methods] if sizes.vote_methods else []
    epochs = args.vote_epochs or sizes.vote_epochs
    plan.append(Stage(
        name="vote",
        title="docs/results.md, the vote comparison on the CIFAR-10 subset with a ResNet-18 on a GPU",
        command=[python, "examples/vote_comparison.py", "--source", "cifar", "--data", str(args.data),
                 "--work", "{out}/work", "--arch", sizes.vote_arch, "--device", device, "--epochs", str(epochs),
                 "--seeds", *map(str, sizes.vote_seeds), "--noise", *map(str, sizes.vote_noise), *methods,
                 "--jobs", str(jobs), "--tables", "{out}/vote.md"],
        budget=None,
        render=functools.partial(vote_section, epochs=epochs),
        timing=False, deadline_option="--budget", reserve=sizes.vote_reserve))
    plan.append(Stage(
        name="cuda-tests",
        title="the tests that need a CUDA device (a failure here is a bug to fix, not a table)",
        command=[python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_cuda.py",
                 "--junitxml", "{out}/junit.xml"],
        budget=120,
        render=tests_section,
        timing=False))
    # The embeddings-scale run of issue #15 (image-feature datasets, linear/MLP heads) joins here when that
    # lands: a Stage with timing=False, so that it runs beside the vote comparison on what is left of --budget.
    return plan


def train_section(folder: Path, goals: bool) -> Section:
    """bench_train's rows as docs/performance.md's GPU table; the training goals at the first batch size."""
    data = json.loads((folder / "rows.json").read_text())
    rows = {row["row"]: row for row in data["rows"]}
    title = (f"row ({data['arch']}, {data['size']} px, batch {data['batch']}, M = {data['label_sets']}, "
             f"{data['precision']})")
    lines = [f"| {title} | img/s | x plain | x naive | peak GiB |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in rows.items():
        peak = "" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        lines.append(f"| {name} | {_number(row['img_per_s'])} | {row['x_plain']:.2f} | {row['x_naive']:.2f} | "
                     f"{peak} |")
    batch = data["batch"]
    found = [
        Goal(f"ltv-last / plain, batch {batch}", rows["ltv-last"]["x_plain"], 0.8, "x"),
        Goal(f"ltv-all / naive, batch {batch}", rows["ltv-all"]["x_naive"], 2.0, "x"),
        Goal(f"epoch from cache / plain (model only), batch {batch}", rows["epoch from cache (single)"]["x_plain"],
             0.9, "x"),
    ] if goals else []
    text = (f"best of {data['repeats']} rounds x {data['steps']} steps, {data['device']}; peak GiB: the row's own "
            f"tensors (torch's allocated bytes)\n\n" + "\n".join(lines))
    return Section(text, found, data)


def ingest_section(folder: Path) -> Section:
    """bench_ingest's JPG rows as docs/performance.md's ingest GPU table; nvJPEG against its goal."""
    data = json.loads((folder / "rows.json").read_text())
    device = data["device"]
    lines = [f"| row | workers | images/s | seconds ({data['images']:,} images) | MAD |",
             "| --- | ---: | ---: | ---: | ---: |"]
    batch = None
    for row in data["rows"]:
        if row["decoding"] == "scaled (new)":
            name = "jpg scaled (new), CPU"
        elif row["decoding"] == f"batch {device}":
            name, batch = f"jpg batch {device}", row
        else:
            continue
        mad = "" if row["mad"] is None else f"{row['mad']:.2f}"
        lines.append(f"| {name} | {row['workers']} | {_number(row['images_per_s'])} | {row['seconds']:.2f} | {mad} |")
    notes = (f"{data['images']:,} JPG sources ({data['distinct']} distinct films of {data['film'][0]}x"
             f"{data['film'][1]} pixels, {data['jpg_mb']:.2f} MB each, the others hard links), cache "
             f"{data['size']} px, {data['cpus']} CPUs; the CPU row decoded by {data['scaled_decoder']}")
    if batch is not None and batch["startup_s"] is not None:
        notes += (f"; the batch decoder's one-off start-up (on a GPU: CUDA context, nvJPEG) "
                  f"{batch['startup_s']:.2f} s, not in its row")
    goals = [Goal(f"jpg batch {device} images/s", batch["images_per_s"], 1500, "images/s")] if batch else []
    return Section(notes + "\n\n" + "\n".join(lines), goals, data)


def vote_section(folder: Path, epochs: int) -> Section:
    """vote_comparison's tables as written (their headings carry seeds, epochs, arch and trainings at a time)."""
    results = folder / "work" / "vote_comparison_cifar.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    note = (f"{epochs} epochs per training instead of the 15 of docs/results.md's CPU tables (the tiny CNN), to fit "
            "the suite's budget; the trainings at a time are in each heading.")
    return Section((folder / "vote.md").read_text().strip() + "\n\n" + note, [], data)


def tests_section(folder: Path) -> Section:
    """pytest's JUnit report as a table: each test and whether it passed, failed or was skipped (and why)."""
    results = []
    for case in ElementTree.parse(folder / "junit.xml").iter("testcase"):
        verdict = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcome = "passed" if verdict is None else {"failure": "failed", "error": "error"}.get(verdict.tag, "skipped")
        message = "" if verdict is None else verdict.get("message") or ""
        reason = message.splitlines()[0][:120].replace("|", "/") if message else ""
        results.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome, "reason": reason})
    counts = {key: sum(r["outcome"] == key for r in results) for key in ("passed", "failed", "error", "skipped")}
    summary = "{passed} passed, {failed} failed, {error} errors, {skipped} skipped".format(**counts)
    lines = [summary, "", "| test | result |", "| --- | --- |"]
    lines += [f"| {r['test']} | {r['outcome']}{': ' + r['reason'] if r['reason'] else ''} |" for r in results]
    return Section("\n".join(lines), [], {"tests": results})


# --------------------------------------------------------------------------- running
def run_stages(outcomes: list[Outcome], selected: list[str], work: Path, deadline: float,
               monitor: GpuMonitor | None, on_progress: Callable[[], None]) -> None:
    """Timing stages one by one, then each run of consecutive other stages side by side; report after each."""
    groups: list[list[Outcome]] = []
    for outcome in outcomes:
        if outcome.stage.name not in selected:
            outcome.status = "not selected (--stages)"
        elif groups and not outcome.stage.timing and not groups[-1][-1].stage.timing:
            groups[-1].append(outcome)
        else:
            groups.append([outcome])
    for group in groups:
        run_group(group, work, deadline, monitor)
        on_progress()


def run_group(group: list[Outcome], work: Path, deadline: float, monitor: GpuMonitor | None) -> None:
    """Start every stage of ``group``, wait for them, stop any that overruns its limit, render what finished."""
    running: list[tuple[Outcome, subprocess.Popen, float]] = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    for outcome in group:
        stage = outcome.stage
        left = deadline - time.monotonic()
        if left - stage.reserve < MIN_START_SECONDS:
            outcome.status = "skipped: no time left in --budget"
            continue
        outcome.limit = min(stage.budget or math.inf, left)
        folder = work / stage.name
        folder.mkdir(parents=True, exist_ok=True)
        outcome.command = [arg.replace("{out}", str(folder)) for arg in stage.command]
        if stage.deadline_option:
            outcome.command += [stage.deadline_option, f"{outcome.limit - stage.reserve:.0f}"]
        print(f"[{_clock()}] {stage.name}: started (limit {outcome.limit:.0f} s)", flush=True)
        with open(folder / "log.txt", "w") as log:
            process = subprocess.Popen(outcome.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        running.append((outcome, process, time.monotonic()))
    if monitor:
        monitor.stages = [outcome.stage.name for outcome, _, _ in running]
    try:
        while running:
            time.sleep(0.5)
            for item in list(running):
                outcome, process, start = item
                overrun = time.monotonic() - start > outcome.limit
                if process.poll() is None and not overrun:
                    continue
                if process.poll() is None:
                    stop(process)
                    outcome.status = f"stopped at its limit of {outcome.limit:.0f} s"
                elif process.returncode != 0:
                    outcome.status = f"failed (exit {process.returncode})"
                else:
                    outcome.status = "ok"
                outcome.seconds = time.monotonic() - start
                running.remove(item)
                finish(outcome, work / outcome.stage.name, monitor)
    finally:  # interrupted (Ctrl-C, SIGTERM): take every stage's processes down with the suite
        for outcome, process, start in running:
            stop(process)
            outcome.status, outcome.seconds = "interrupted", time.monotonic() - start


def finish(outcome: Outcome, folder: Path, monitor: GpuMonitor | None) -> None:
    """Render a stage that ended by itself (a failed one too: pytest's report says which tests failed); keep the
    end of the log of any stage that did not end well."""
    if monitor:
        monitor.stages = [name for name in monitor.stages if name != outcome.stage.name]
        outcome.gpu = monitor.summary(outcome.stage.name)
    if outcome.status == "ok" or outcome.status.startswith("failed"):
        try:
            outcome.section = outcome.stage.render(folder)
        except (OSError, KeyError, ValueError, ElementTree.ParseError) as error:
            if outcome.status == "ok":
                outcome.status = f"failed: its output could not be read ({type(error).__name__}: {error})"
    if outcome.status != "ok":
        outcome.log_tail = "\n".join((folder / "log.txt").read_text(errors="replace").splitlines()[-20:])
    print(f"[{_clock()}] {outcome.stage.name}: {outcome.status} after {outcome.seconds:.0f} s", flush=True)


def stop(process: subprocess.Popen) -> None:
    """Stop a stage and every process it started (they share its session): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


class GpuMonitor(threading.Thread):
    """Samples nvidia-smi every 2 s: the memory in use and the utilisation while each stage runs.

    The vote stage's numbers say how many trainings the GPU could take side
    by side next time (``--jobs``).
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stages: list[str] = []
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(2.0):
            fields = nvidia_smi("memory.used,utilization.gpu")
            if fields:
                for stage in self.stages:
                    self.samples.setdefault(stage, []).append((float(fields[0]) / 1024, float(fields[1])))

    def summary(self, stage: str) -> dict:
        samples = self.samples.get(stage, [])
        if not samples:
            return {}
        return {"memory_gib_max": max(m for m, _ in samples), "utilisation_mean": sum(u for _, u in samples) /
                len(samples)}


def nvidia_smi(query: str) -> list[str] | None:
    """The first GPU's ``--query-gpu`` fields, or ``None`` without nvidia-smi or a readable answer."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        answer = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = answer.stdout.strip().splitlines()
    fields = [f.strip() for f in lines[0].split(",")] if answer.returncode == 0 and lines else []
    return fields if len(fields) == query.count(",") + 1 else None


# --------------------------------------------------------------------------- the machine
def machine(device: str) -> dict:
    """Date, GPU (nvidia-smi), library versions, CPU count and commit, for the tables' heading."""
    import torch

    gpu = nvidia_smi("name,memory.total,driver_version")
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": device,
        "gpu": gpu[0] if gpu else None,
        "gpu_memory_gib": float(gpu[1]) / 1024 if gpu else None,
        "driver": gpu[2] if gpu else None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "torchvision": metadata.version("torchvision"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "commit": git_commit(),
    }


def git_commit() -> str | None:
    """The checkout's commit; ``None`` where the copy has no .git or there is no git (the device machine)."""
    try:
        answer = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return answer.stdout.strip() if answer.returncode == 0 else None


def fail(message: str) -> None:
    """Stop the suite with one line and exit status 2, as ltv's own commands do."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_device(device: str, smoke: bool) -> None:
    """Stop with one line unless the suite can run: CUDA visible, or ``--smoke`` on the CPU."""
    if device == "cpu" and not smoke:
        fail("--device cpu is only for --smoke: the suite's numbers are GPU numbers")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        fail("no CUDA device is visible (torch.cuda.is_available() is False); the GPU suite needs one "
             "(`--smoke --device cpu` checks the suite itself on a CPU)")


def vote_jobs(args: argparse.Namespace, info: dict) -> int:
    """Trainings side by side: one per CPU core, two left for the rest, and no more than the GPU memory allows."""
    if args.jobs:
        return args.jobs
    if args.smoke:
        return 2
    jobs = max(1, (os.cpu_count() or 2) - 2)
    if info["gpu_memory_gib"]:
        jobs = min(jobs, max(1, int(info["gpu_memory_gib"] // GIB_PER_TRAINING)))
    return jobs


# --------------------------------------------------------------------------- the report
def report(outcomes: list[Outcome], info: dict, sizes: Sizes, args: argparse.Namespace, seconds: float) -> str:
    """tables.md: the heading (machine, date), how each stage went, the goals, then each stage's section."""
    gpu = info["gpu"] or "no GPU"
    lines = [f"# GPU suite{' (smoke run)' if args.smoke else ''}: {info['date']}, {gpu}", "",
             f"{gpu}" + (f" ({info['gpu_memory_gib']:.0f} GiB, driver {info['driver']})" if info["gpu"] else "") +
             f"; device {info['device']}; torch {info['torch']} (CUDA {info['cuda']}), torchvision "
             f"{info['torchvision']}, Python {info['python']}; {info['cpus']} CPUs; commit {info['commit'] or '?'}. "
             f"Suite wall time {seconds:.0f} s of a {args.budget or sizes.budget:.0f} s budget.", "",
             "| stage | status | seconds | limit | GPU memory max | GPU busy mean |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for o in outcomes:
        limit = "" if o.limit is None else f"{o.limit:.0f}"
        memory = f"{o.gpu['memory_gib_max']:.1f} GiB" if o.gpu else ""
        busy = f"{o.gpu['utilisation_mean']:.0f} %" if o.gpu else ""
        lines.append(f"| {o.stage.name} | {o.status} | {o.seconds:.0f} | {limit} | {memory} | {busy} |")
    goals = [goal for o in outcomes if o.section for goal in o.section.goals]
    lines += ["", "## Goals", "",
              "The project's GPU goals (docs/performance.md): ltv-last >= 0.8x plain, ltv-all >= 2x the naive loop, "
              "epoch from cache >= 0.9x the model-only step, all at the paper's batch 32; nvJPEG ingest >= 1,500 "
              f"images/s. Earlier H100 probe (issue 18): {H100_PROBE}.", ""]
    lines += ["| goal | measured | target | result |", "| --- | ---: | ---: | --- |", *[g.row() for g in goals]] \
        if goals else ["No goal was measured (their stages did not finish)."]
    for o in outcomes:
        if o.section is not None or o.log_tail:
            lines += ["", f"## {o.stage.name}: {o.stage.title}", "",
                      f"`{_shown(o.command)}`", ""]
            if o.section:
                lines.append(o.section.markdown)
            if o.log_tail:
                lines.append(("\n" if o.section else "") + f"{o.status}; the end of its log:\n\n```\n{o.log_tail}\n```")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, work: Path, outcomes: list[Outcome], info: dict, sizes: Sizes,
                  args: argparse.Namespace, jobs: int, seconds: float) -> str:
    """tables.md, results.json and logs.tar.gz into ``out``, each replaced whole; returns tables.md's text."""
    tables = report(outcomes, info, sizes, args, seconds)
    write_text(out / "tables.md", tables)
    write_json(out / "results.json", {
        "machine": info, "smoke": args.smoke, "budget_s": args.budget or sizes.budget, "seconds": seconds,
        "vote_jobs": jobs,
        "stages": [{"name": o.stage.name, "status": o.status, "seconds": o.seconds, "limit_s": o.limit,
                    "command": o.command, "gpu": o.gpu, "data": o.section.data if o.section else None,
                    "goals": [vars(g) | {"passed": g.passed} for g in o.section.goals] if o.section else []}
                   for o in outcomes]})
    with atomic_path(out / "logs.tar.gz") as tmp, tarfile.open(tmp, "w:gz") as archive:
        for path in sorted(work.rglob("*")):
            if path.is_file() and path.suffix in ARCHIVED and path.stat().st_size <= ARCHIVED_MAX_BYTES:
                archive.add(path, arcname=str(path.relative_to(work)))
    return tables


def _number(value: float) -> str:
    """img/s and images/s as the docs write them: thousands separated, one decimal below 100."""
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _shown(command: list[str]) -> str:
    """A command as it would be typed in the repository root."""
    return shlex.join(["python", *command[1:]]) if command else ""


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu-data",
                        help=f"folder holding {CIFAR} (default: .gpu-data in the repository, which the device "
                             "call carries)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for tables.md, results.json, logs.tar.gz (default: $OUT/gpu-suite)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the stages' work (default: a temp folder)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu only with --smoke")
    parser.add_argument("--smoke", action="store_true", help="every stage at toy sizes, to check the suite itself")
    parser.add_argument("--budget", type=float, default=0,
                        help=f"seconds for the whole suite (default {GPU.budget:.0f}; --smoke {SMOKE.budget:.0f})")
    parser.add_argument("--stages", default=None, help="comma-separated stage names to run (default: all)")
    parser.add_argument("--vote-epochs", type=int, default=0, help=f"epochs per training (default {GPU.vote_epochs})")
    parser.add_argument("--jobs", type=int, default=0,
                        help="vote trainings side by side (default: the CPU cores less two, within GPU memory)")
    args = parser.parse_args(argv)
    if args.out is None:
        if not os.environ.get("OUT"):
            fail("--out is required where $OUT is not set")
        args.out = Path(os.environ["OUT"]) / "gpu-suite"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_device(args.device, args.smoke)
    sizes = SMOKE if args.smoke else GPU
    start = time.monotonic()
    deadline = start + (args.budget or sizes.budget)
    info = machine(args.device)
    jobs = vote_jobs(args, info)
    plan = stages(args, sizes, jobs)
    names = [stage.name for stage in plan]
    selected = names if args.stages is None else args.stages.split(",")
    if unknown := sorted(set(selected) - set(names)):
        fail(f"--stages: unknown {', '.join(unknown)}; the stages are {', '.join(names)}")
    if "vote" in selected and not (args.data / CIFAR).is_file():
        fail(f"--data {args.data}: {CIFAR} not found there (copy it from the shared data folder; "
             "docs/performance.md, Running the GPU suite)")
    work = args.work or Path(tempfile.mkdtemp(prefix="ltv-gpu-suite-"))
    print(f"GPU suite: {', '.join(selected)}; {info['gpu'] or args.device}; budget "
          f"{deadline - start:.0f} s; work {work}; out {args.out}", flush=True)

    outcomes = [Outcome(stage) for stage in plan]

    def write() -> str:
        return write_outputs(args.out, work, outcomes, info, sizes, args, jobs, time.monotonic() - start)

    monitor = GpuMonitor() if info["gpu"] else None
    if monitor:
        monitor.start()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a SIGTERM stops the stages as Ctrl-C does
    try:
        run_stages(outcomes, selected, work, deadline, monitor, write)
    except KeyboardInterrupt:
        print(f"error: interrupted; {args.out} holds the stages that finished", file=sys.stderr)
        write()
        return 130
    finally:
        if monitor:
            monitor.done.set()
    print("\n" + write(), flush=True)
    return 0 if all(o.status == "ok" for o in outcomes if o.stage.name in selected) else 1


if __name__ == "__main__":
    sys.exit(main())
