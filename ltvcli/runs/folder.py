"""The run folder: everything one ``ltv train`` writes.

Layout::

    RUN/config.json     the run's record (:class:`~ltvcli.runs.record.RunRecord`): options, dataset, ltv version
    RUN/metrics.jsonl   one JSON record per validation (normally once per epoch)
    RUN/metrics.csv     the same records as a table
    RUN/last.pt         the latest state: model, method, optimizer, position, RNG, best metric
    RUN/best.pt         the state with the best validation metric so far

Every file is written atomically, so a run killed at any moment leaves the
previous complete ``last.pt`` behind and a resumed run continues from it.
Checkpoints carry a format version; :func:`upgrade_checkpoint` reads older ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from ltvcli.atomic import atomic_path, write_csv, write_text
from ltvcli.errors import LtvError, OptionError
from ltvcli.runs.record import RunRecord, read_record, write_record

CHECKPOINTS = ("best", "last")
#: Checkpoint layout version. 2: the fitted Dawid-Skene matrices of ``single`` are the extra state of its
#: aggregator (``aggregator._extra_state``); 1 (ltv 0.1.0) kept them as ``ds_confusion``/``ds_prior``.
CHECKPOINT_FORMAT = 2


class RunFolder:
    """Reads and writes the files of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def checkpoint_path(self, which: str) -> Path:
        if which not in CHECKPOINTS:
            raise OptionError("checkpoint", f"{which!r}: expected one of {', '.join(CHECKPOINTS)}")
        return self.path / f"{which}.pt"

    def has_checkpoints(self) -> bool:
        return any(self.checkpoint_path(which).exists() for which in CHECKPOINTS)

    # ------------------------------------------------------------ record
    def read_record(self) -> RunRecord:
        return read_record(self.path, RunRecord)

    def write_record(self, record: RunRecord) -> None:
        write_record(self.path, record)

    # ------------------------------------------------------- checkpoints
    def save_checkpoint(self, which: str, state: dict) -> None:
        with atomic_path(self.checkpoint_path(which)) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self, which: str, map_location: str | torch.device = "cpu") -> dict:
        path = self.checkpoint_path(which)
        if not path.is_file():
            raise LtvError(f"{path}: no such checkpoint (has this run finished an epoch?)")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # a truncated or foreign file: the user can fix it, it is not a bug
            raise LtvError(f"{path}: not a readable ltv checkpoint ({type(exc).__name__})") from None
        return upgrade_checkpoint(state, path)

    # ----------------------------------------------------------- metrics
    def read_metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl and metrics.csv from all records (small: one per epoch)."""
        write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        write_csv(self.path / "metrics.csv", pd.DataFrame(records))


def upgrade_checkpoint(state: dict, path: Path) -> dict:
    """A checkpoint in today's layout; an older one is converted, a newer one refused (naming its format)."""
    version = state.get("format")
    if version not in (1, CHECKPOINT_FORMAT):
        raise LtvError(f"{path}: checkpoint format {version!r} is not supported (this ltv reads formats 1 and "
                       f"{CHECKPOINT_FORMAT}); use the ltv version that wrote it")
    method = state["method"]
    if version == 1 and "ds_confusion" in method:
        method["aggregator._extra_state"] = {"confusion_": method.pop("ds_confusion"),
                                             "prior_": method.pop("ds_prior")}
    state["format"] = CHECKPOINT_FORMAT
    return state
