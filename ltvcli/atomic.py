"""Atomic writes: a reader sees the old file or the new one, never half of either.

Every output ltv writes (dataset metadata, checkpoints, exported labels,
evaluation tables) goes through these helpers: the bytes land in a temporary
file next to the target and are moved into place with :func:`os.replace`,
which is atomic on POSIX file systems.

A write that the file system refuses (read-only, no permission, disk full)
is reported as a one-line :class:`~ltvcli.errors.LtvError` naming the path,
not as a traceback: it is the user's environment, not a bug.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ltvcli.errors import LtvError


@contextmanager
def writing(target: str | os.PathLike) -> Iterator[None]:
    """Turn an :class:`OSError` raised while writing ``target`` into a one-line :class:`LtvError`."""
    try:
        yield
    except OSError as exc:
        raise LtvError(f"{target}: cannot write ({exc.strerror or type(exc).__name__})") from None


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it onto ``target`` if the block succeeds.

    An OSError in the block (the caller writing the temporary file) or in the
    move becomes a one-line error naming ``target``; the temporary file is
    removed either way.
    """
    target = Path(target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with writing(target):
            yield tmp_path
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(target: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV (no index) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)


#: The table formats :func:`write_table` writes, chosen by the file's extension.
TABLE_SUFFIXES = (".csv", ".parquet")


def check_table_path(out: Path) -> None:
    """Reject an extension :func:`write_table` cannot write, before any work is done."""
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise LtvError(f"{out}: unknown table format {out.suffix or '(no extension)'!r}; expected .csv or .parquet")


def write_table(frame, out: Path) -> None:
    """Write the DataFrame ``frame`` atomically as CSV or Parquet, chosen by the file's extension."""
    check_table_path(out)
    if out.suffix.lower() == ".csv":
        write_csv(out, frame)
        return
    try:
        import pyarrow  # noqa: F401  (pandas needs it for Parquet)
    except ImportError:
        raise LtvError(f"{out}: writing Parquet needs pyarrow (pip install 'ltv[parquet]'); or write .csv") from None
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)


def write_npy(target: str | os.PathLike, array) -> None:
    """Write a NumPy array in ``.npy`` format to ``target`` atomically."""
    import numpy as np

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def replace_dir(staging: Path, target: Path, marker: str) -> None:
    """Move a finished ``staging`` folder onto ``target``, replacing any old one.

    The old folder stays whole until the new one is complete: it is renamed
    aside, the new one renamed in, then the old one deleted. This is the one
    place ltv deletes a folder, so it checks once more (commands have checked
    with :func:`ltvcli.outputs.check_output` before their work) that the old
    folder is empty or holds ``marker``, the file ltv writes into every folder
    of this kind: a folder ltv did not write is never deleted.
    """
    old = None
    if target.exists():
        if not (target / marker).is_file() and any(target.iterdir()):
            raise LtvError(f"{target}: not replaced, it holds files but no {marker} (ltv did not write it); "
                           "nothing was changed")
        old = target.with_name(f".{target.name}.old")
    with writing(target):
        if old is not None:
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old)
