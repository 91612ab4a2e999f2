"""Reading user tables (CSV, gzipped CSV, Parquet): ingest sources, hand labels, predictions, embeddings.

Shared by ingest, evaluate and text, so it sits below all three.

All cells are read as text with blanks kept as ``""``: label files use the
blank cell as a value of its own ("not mentioned"), and ids such as
``study_id`` must not turn into floats. Columns are found by name, so extra
or reordered columns are fine, and every problem becomes a one-line
:class:`~ltvcli.errors.LtvError` naming the file, the line (header = line 1)
and the column.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ltvcli.errors import LtvError

PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path, *, required: Sequence[str] = (), what: str = "table") -> pd.DataFrame:
    """Read ``path`` with every cell as a string; raise if a ``required`` column is missing.

    ``what`` names the file's role in messages ("metadata CSV", "label CSV").
    Header names are stripped of surrounding spaces.
    """
    path = Path(path)
    if not path.is_file():
        raise LtvError(f"{path}: no such {what} file")
    try:
        frame = _read(path)
    except pd.errors.ParserError as exc:
        raise LtvError(f"{path}: not a valid CSV file ({_first_line(exc)})") from None
    except pd.errors.EmptyDataError:
        raise LtvError(f"{path}: the {what} file is empty; expected a header row") from None
    except UnicodeDecodeError:
        raise LtvError(f"{_undecodable(path)}: not UTF-8 text; save the {what} as UTF-8 CSV") from None
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise LtvError(f"{path}: cannot read the {what} ({_first_line(exc)})") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the cells beyond the header for an index
        raise LtvError(f"{path}, line 2: {len(frame.columns) + frame.index.nlevels} cells under a header of "
                       f"{len(frame.columns)} columns; every row needs one cell per column (a comma inside a cell "
                       "must be quoted)")
    frame.columns = [str(c).strip() for c in frame.columns]
    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise LtvError(f"{path}: column {repeated[0]!r} appears more than once in the header")
    require_columns(frame, required, path)
    if frame.empty:
        raise LtvError(f"{path}: the {what} file has a header ({_found(frame)}) but no rows")
    return frame


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = pd.read_parquet(path).reset_index(drop=True)
        return frame.astype("string").fillna("").astype(str)
    return pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")


_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _undecodable(path: Path) -> str:
    """``file, line N, column 'X'`` of the first byte that is not UTF-8 (just the file if it cannot be found).

    pandas reports a byte offset inside one of its read buffers, which means
    nothing to a person; the line and the column's header name do.
    """
    try:
        with _OPENERS.get(path.suffix.lower(), open)(path, "rb") as handle:
            raw = handle.read()
        raw.decode("utf-8")
        return str(path)
    except UnicodeDecodeError as exc:
        start = exc.start
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return str(path)
    line = raw.count(b"\n", 0, start) + 1
    if line == 1:
        return f"{path}, line 1 (the header)"
    line_start = raw.rfind(b"\n", 0, start) + 1
    before = raw[line_start:start].decode("utf-8", errors="replace")
    column = max(len(next(csv.reader([before]), [])) - 1, 0)  # cells begun on the line before the bad byte
    header = next(csv.reader([raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")]), [])
    name = repr(header[column].strip()) if column < len(header) else f"number {column + 1}"
    return f"{path}, line {line}, column {name}"


def _found(frame: pd.DataFrame) -> str:
    """The columns a file was found to have, for messages; hints at a separator other than the comma."""
    found = ", ".join(map(repr, frame.columns[:20])) + (" ..." if len(frame.columns) > 20 else "")
    if len(frame.columns) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if separator in frame.columns[0]:
                return f"{found}: one column; the file looks separated by {name}, and ltv reads comma-separated CSV"
    return found


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def require_columns(frame: pd.DataFrame, required: Iterable[str], path: Path) -> None:
    """Raise naming every required column that ``frame`` lacks and the columns it has."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise LtvError(f"{path}: missing required column(s) {', '.join(map(repr, missing))}; found {_found(frame)}")


def first_present(frame: pd.DataFrame, candidates: Sequence[str], path: Path, what: str) -> str:
    """The first of ``candidates`` that is a column of ``frame`` (e.g. an id column with several usual names)."""
    for name in candidates:
        if name in frame.columns:
            return name
    raise LtvError(f"{path}: no {what} column; expected one of {', '.join(map(repr, candidates))}; found "
                   f"{_found(frame)}")


def line_of(frame: pd.DataFrame, position: int) -> int:
    """File line of the ``position``-th row of ``frame`` (1-based, the header is line 1).

    Frames from :func:`read_table` are indexed 0..n-1 by file row, and a
    filtered or grouped part of one keeps those labels, so its messages
    still name the right line.
    """
    return int(frame.index[position]) + 2


def where(path: Path, frame: pd.DataFrame, position: int, column: str | None = None) -> str:
    """``file, line N, column 'X'`` for messages about one cell or row."""
    text = f"{path}, line {line_of(frame, position)}"
    return f"{text}, column {column!r}" if column else text


def require_unique(frame: pd.DataFrame, columns: str | Sequence[str], path: Path) -> None:
    """Raise at the first row whose key (``columns``) repeats an earlier row's key."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    duplicated = frame.duplicated(subset=columns).to_numpy()
    if duplicated.any():
        position = int(duplicated.argmax())
        key = ", ".join(f"{c}={frame[c].iloc[position]!r}" for c in columns)
        raise LtvError(f"{where(path, frame, position)}: duplicate row for {key}; each must appear once")


def require_nonblank(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Raise at the first row whose ``column`` is blank (an id column, for instance)."""
    blank = (frame[column].str.strip() == "").to_numpy()
    if blank.any():
        raise LtvError(f"{where(path, frame, int(blank.argmax()), column)}: empty value; every row needs one")


def require_values(frame: pd.DataFrame, column: str, allowed: Iterable[str], path: Path) -> None:
    """Raise at the first cell of ``column`` whose text is not one of ``allowed``."""
    allowed = list(allowed)
    bad = (~frame[column].isin(allowed)).to_numpy()
    if bad.any():
        position = int(bad.argmax())
        raise LtvError(f"{where(path, frame, position, column)}: value {frame[column].iloc[position]!r} "
                       f"is not one of {', '.join(allowed)}")


def missing_ids(wanted: Iterable[str], present: Iterable[str]) -> tuple[int, str | None]:
    """How many of ``wanted`` are not in ``present``, and the first of them (in ``wanted``'s order)."""
    present = set(present)
    absent = [key for key in wanted if key not in present]
    return len(absent), (absent[0] if absent else None)


def parse_cells(frame: pd.DataFrame, columns: Sequence[str], parse: Callable[[str], int | None], expected: str,
                path: Path, dtype=np.int8) -> np.ndarray:
    """Parse each cell of ``columns`` with ``parse`` into an [rows, columns] array.

    ``parse`` returns None for a value it does not accept; the first such cell
    is reported with its line and column and ``expected`` (e.g. "1, 0, -1 or
    blank"). Each distinct text is parsed once, so million-row files are fast.
    """
    out = np.empty((len(frame), len(columns)), dtype=dtype)
    for j, column in enumerate(columns):
        cells = frame[column]
        codes = cells.map({text: parse(text) for text in cells.unique()})
        bad = codes.isna().to_numpy()
        if bad.any():
            position = int(bad.argmax())
            raise LtvError(f"{where(path, frame, position, column)}: value {cells.iloc[position]!r} is not "
                           f"{expected}")
        out[:, j] = codes.to_numpy()
    return out
