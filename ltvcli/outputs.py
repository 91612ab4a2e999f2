"""What a command may write over: the one check every output path goes through.

ltv is pointed at hospital folders, so an output path is checked before any
work starts (a typo in ``--out`` must not cost an hour of decoding, nor a
folder of source images). :func:`check_output` applies four rules:

1. An output never is, contains, or lies inside a file or folder the same
   command reads: ``--out`` equal to ``--images`` would otherwise replace the
   source images with a dataset.
2. An existing path is replaced only when ltv wrote it, as the same kind of
   output (a dataset folder for ``ingest``, a run folder for ``train``, ...),
   recognised by the file ltv always writes into it (``dataset.json``,
   ``config.json``, ...) or by the columns it writes in a table; and only
   with ``force``. An empty folder may always be used. Commands that
   continue an output instead of replacing it (``train --resume``, a dataset
   updated in place) pass ``reuse``.
3. A symbolic link is never an output: replacing it would leave the folder it
   points to behind, or delete through it.
4. The nearest existing folder must be writable, so that a read-only file
   system fails now, in one line, and not after the work.

The problem is raised as an :class:`~ltvcli.errors.OptionError` naming the
parameter that set the path (``out`` by default), so the command line says
``--out`` and a notebook says ``out``; a missing ``force`` names ``force``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ltvcli.errors import OptionError

#: Bytes read from the start of an existing file to recognise it.
_HEAD_BYTES = 4096


@dataclass(frozen=True)
class OutputKind:
    """One kind of output ltv writes, and how to recognise one that ltv wrote earlier.

    A folder kind is recognised by its ``marker`` JSON file holding all of
    ``keys``; a table kind (CSV or Parquet) by its first ``columns``; any
    other file kind by a ``signature`` in its first bytes.
    """

    name: str
    folder: bool
    marker: str = ""
    keys: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    signature: bytes = b""

    def holds(self, path: Path) -> bool:
        """Whether the existing ``path`` is an output of this kind (written by ltv)."""
        if self.folder:
            return path.is_dir() and _json_has_keys(path / self.marker, self.keys)
        if not path.is_file():
            return False
        if self.columns:
            return tuple(_table_columns(path)[:len(self.columns)]) == self.columns
        return self.signature in _head(path)


DATASET = OutputKind("an ltv dataset", folder=True, marker="dataset.json", keys=("format_version", "ltv_version"))
RUN = OutputKind("an ltv training run", folder=True, marker="config.json", keys=("ltv_version", "method_options"))
REFINE_RUN = OutputKind("an `ltv refine` selection run", folder=True, marker="config.json",
                        keys=("ltv_version", "fingerprint"))
EVALUATION = OutputKind("an ltv evaluation", folder=True, marker="evaluation.json", keys=("settings", "scores"))
DEMO = OutputKind("an `ltv demo` folder", folder=True, marker="ltv-demo.json", keys=("written_by",))
REFINED_LABELS = OutputKind("an ltv refined-labels table", folder=False,
                            columns=("image_id", "finding", "refined", "binarised"))
PREDICTIONS = OutputKind("an ltv predictions table", folder=False, columns=("image",))
QUEUE = OutputKind("an ltv relabel queue", folder=False, columns=("rank", "image_id", "finding", "label"))
QUEUE_SHEET = OutputKind("an ltv relabel sheet", folder=False, signature=b"<title>ltv relabel queue</title>")
REFINE_RESULTS = OutputKind("an `ltv refine-sim` results table", folder=False,
                            columns=("seed", "strategy", "round", "budget"))
REFINE_SUMMARY = OutputKind("an `ltv refine-sim` summary table", folder=False,
                            columns=("strategy", "round", "budget", "corrected"))


def check_output(path: str | os.PathLike, kind: OutputKind, *, inputs: Iterable[str | os.PathLike | None] = (),
                 force: bool = False, reuse: bool = False, parameter: str = "out") -> Path:
    """Raise unless ``path`` may receive an output of ``kind`` (the module docstring's rules); return it.

    ``inputs`` are the files and folders the command reads (None entries are
    skipped). ``force`` allows replacing an existing output of the same kind;
    ``reuse`` accepts one without ``force`` because the command continues it.
    Nothing is created or changed.
    """
    path = Path(path)
    try:
        if path.is_symlink():
            raise OptionError(parameter, f"{path}: is a symbolic link; give the path it points to, or a new path")
        _check_inputs(path, inputs, kind, parameter)
        if path.exists():
            _check_existing(path, kind, force, reuse, parameter)
        _check_writable(path, reuse, parameter)
    except OSError as exc:  # a folder on the way that cannot even be looked into
        raise OptionError(parameter, f"{path}: {exc.strerror or type(exc).__name__}") from None
    return path


def _check_inputs(path: Path, inputs: Iterable[str | os.PathLike | None], kind: OutputKind, parameter: str) -> None:
    target = _real(path)
    another = "another folder" if kind.folder else "another path"
    for item in inputs:
        if item is None or str(item) == "":
            continue
        source = _real(Path(item))
        if target == source:
            raise OptionError(parameter, f"{path}: is {item}, which this command reads; choose {another}")
        if source.is_relative_to(target):
            raise OptionError(parameter, f"{path}: contains {item}, which this command reads; choose a path "
                                         "outside the inputs")
        if target.is_relative_to(source):
            raise OptionError(parameter, f"{path}: lies inside {item}, which this command reads; choose a path "
                                         "outside the inputs")


def _real(path: Path) -> Path:
    """``path`` with links followed where they can be (a link loop stays as written)."""
    try:
        return path.resolve()
    except RuntimeError:
        return path.absolute()


def _check_existing(path: Path, kind: OutputKind, force: bool, reuse: bool, parameter: str) -> None:
    if kind.folder and not path.is_dir():
        raise OptionError(parameter, f"{path}: is a file, and {kind.name} is a folder; choose another path")
    if not kind.folder and path.is_dir():
        raise OptionError(parameter, f"{path}: is a folder; choose a file name")
    if kind.folder and _is_empty(path):
        return  # an empty folder holds nothing to lose
    if not kind.holds(path):
        what = "holds files that are not" if kind.folder else "exists and is not"
        raise OptionError(parameter, f"{path}: {what} {kind.name}; ltv never replaces what it did not write, "
                                     "so choose a new path" + (" or an empty folder" if kind.folder else ""))
    if not (force or reuse):
        raise OptionError("force", f"is needed to replace {path}, which already holds {kind.name}")


def _check_writable(path: Path, reuse: bool, parameter: str) -> None:
    """The folder the output is written into (or the nearest existing one above it) must be writable."""
    folder = path if reuse and path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OptionError(parameter, f"{path}: {folder} is a file, not a folder")
    if os.access(folder, os.W_OK | os.X_OK):
        return
    if _read_only(folder):
        raise OptionError(parameter, f"{path}: {folder} is on a read-only file system")
    raise OptionError(parameter, f"{path}: no permission to write in {folder}")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # statvfs is POSIX-only
        return False


# ----------------------------------------------------------------------------- recognising ltv's own files


def _is_empty(folder: Path) -> bool:
    try:
        return not any(folder.iterdir())
    except OSError:  # unreadable: treat it as holding something
        return False


def _json_has_keys(path: Path, keys: tuple[str, ...]) -> bool:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and all(key in content for key in keys)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(_HEAD_BYTES)
    except OSError:
        return b""


def _table_columns(path: Path) -> list[str]:
    """The column names of a CSV (its first line) or a Parquet file (its schema); [] if unreadable."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        except (ImportError, OSError, ValueError):  # no pyarrow, or not Parquet (ArrowInvalid is a ValueError)
            return []
    first_line = _head(path).split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return [name.strip() for name in first_line.decode("utf-8").split(",")]
    except UnicodeDecodeError:
        return []
