"""Worker processes that die with the process that started them.

``ltv ingest`` decodes images, and ``ltv label-reports`` labels reports, in a pool of processes. The pool stops its
workers when the parent exits or raises, but not when the parent is killed
(``kill -9``, the out-of-memory killer, a batch scheduler's SIGKILL): the
workers are orphaned, adopted by PID 1, and each keeps its memory (hundreds
of MB with the decoders loaded) until someone finds them.

So every worker ties its life to its parent's as it starts:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill it the
  moment its parent dies;
* everywhere, a daemon thread checks once a second that its parent is still
  its parent and ends the worker otherwise (this also covers a parent that
  died before the ``prctl`` call, and systems without it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from typing import Any, Callable

#: linux/prctl.h: deliver a signal to this process when its parent dies.
PR_SET_PDEATHSIG = 1
#: How often the watch thread looks at the parent, in seconds.
WATCH_SECONDS = 1.0


def worker_pool(workers: int, initializer: Callable[..., Any] | None = None,
                initargs: tuple = ()) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes that end when this process ends, however it ends.

    ``initializer(*initargs)`` runs in each worker after it has tied its life
    to this process (a worker's own set-up, such as loading an NLP pipeline).
    """
    # fork where the platform has it: a spawned worker re-imports the CLI (and torch) before its
    # first job, which costs seconds per worker; nothing before the pool has started threads.
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(workers, mp_context=get_context(method), initializer=die_with_parent,
                               initargs=(os.getpid(), initializer, initargs))


def die_with_parent(parent: int, then: Callable[..., Any] | None = None, args: tuple = ()) -> None:
    """Worker initializer: end this process when ``parent`` (the pid that made the pool) is gone; then ``then(*args)``."""
    if sys.platform.startswith("linux"):
        _ask_kernel_for_death_signal()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="ltv-watch-parent", daemon=True).start()
    if then is not None:
        then(*args)


def _ask_kernel_for_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no usable libc: the watch thread alone ends the worker
        pass


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)
