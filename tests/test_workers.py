"""Decoding workers end with the ingest that started them, even when it is killed with SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ltvcli
from helpers_ingest import write_csv, write_raster
from ltvcli.workers import die_with_parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the workers")


def children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(child) for child in (task / "children").read_text().split()}
        except OSError:
            pass
    return {child for child in found if alive(child)}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for PID 1 to reap it is dead: it holds no memory)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_workers_die_when_the_ingest_is_killed(tmp_path):
    # one large noisy PNG behind many names (links inside the image folder are followed), so decoding lasts
    # seconds while the image folder takes milliseconds to write
    images = tmp_path / "images"
    noise = np.random.default_rng(0).integers(0, 256, (900, 900), dtype=np.uint8)
    write_raster(images / "real.png", noise)
    names = [f"link{i}.png" for i in range(800)]
    for name in names:
        (images / name).symlink_to(images / "real.png")
    labels = write_csv(tmp_path / "labels.csv", pd.DataFrame({"image": names, "labeller": "r1",
                                                               "label": ["a", "b"] * 400}))
    env = dict(os.environ, PYTHONPATH=str(Path(ltvcli.__file__).parents[1]))
    workers: set[int] = set()
    ingest = subprocess.Popen([sys.executable, "-m", "ltvcli", "ingest", "table", str(labels), "--images", str(images),
                               "--out", str(tmp_path / "out"), "--workers", "2", "--size", "16"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(workers := children(ingest.pid)) < 2:
            assert ingest.poll() is None, "the ingest ended before its workers were seen"
            assert time.monotonic() < deadline, "no decoding workers appeared"
            time.sleep(0.05)
        time.sleep(0.3)  # mid-decode
        assert ingest.poll() is None, "decoding finished before the kill; make it longer"
        ingest.send_signal(signal.SIGKILL)
        ingest.wait()
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if alive(pid)], "decoding workers outlived the killed ingest"
    finally:
        if ingest.poll() is None:
            ingest.kill()
        for pid in workers:  # a failed run must not leave its orphans behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / "out").exists()  # killed mid-way: no dataset, only the resumable .partial


def _orphan_check(parent: int) -> None:
    die_with_parent(parent)
    time.sleep(5)  # not reached: the initializer ends a worker whose parent is already gone


def test_a_worker_whose_parent_is_already_gone_ends_at_once():
    """The parent died before the worker armed its death signal: the initializer sees another parent and exits."""
    context = multiprocessing.get_context("fork")
    worker = context.Process(target=_orphan_check, args=(os.getpid() + 10_000_000,))  # a pid that is not its parent
    start = time.monotonic()
    worker.start()
    worker.join(10)
    assert worker.exitcode == 1 and time.monotonic() - start < 4
