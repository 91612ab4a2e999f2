"""``ltv refine`` end to end: the selection phase (trained, or reused from a run folder) and the queue.

A refine run folder keeps phase 1 so that another strategy or budget costs
seconds instead of a training run::

    RUN/networks.pt     the two co-teaching networks (state dicts)
    RUN/selection.npz   per training entry: label, kept, loss, VoG; probabilities, MC-dropout samples, features
    RUN/config.json     the run's record (:class:`SelectionRecord`): options and the dataset's fingerprint;
                        written last (a run without it is unfinished)

A run is reused only for the dataset and the options it was made with
(device and worker count aside); anything else is an error, not a silent
retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ltvcli import __version__
from ltvcli.atomic import atomic_path
from ltvcli.console import log
from ltvcli.dataset import Dataset
from ltvcli.dataset.fingerprint import dataset_fingerprint
from ltvcli.errors import LtvError, OptionError
from ltvcli.outputs import QUEUE, QUEUE_SHEET, REFINE_RUN, check_output
from ltvcli.refine.coteach import CoTeaching, CoteachConfig, ModelOutputs, Selection
from ltvcli.refine.queue import build_queue, check_queue_path, write_queue, write_sheet
from ltvcli.refine.scores import check_strategy
from ltvcli.refine.targets import entry_labels
from ltvcli.runs.record import RECORD_FILE, read_record, write_record
from ltvcli.runtime.determinism import deterministic
from ltvcli.runtime.inputs import resolve_input

_SELECTION_FIELDS = ("rows", "targets", "valid", "trusted", "kept", "forget_rate")


@dataclass(frozen=True)
class SelectionRecord:
    """config.json of a refine run folder: which dataset the selection was made on, and with which options.

    Read through :func:`ltvcli.runs.record.read_record`; version 1 (ltv 0.1.0)
    had no ``kind`` or ``version`` key and reads the same way.
    """

    KIND = "refine"
    VERSION = 2
    WHAT = "an `ltv refine` run folder"
    FOLDER = "`ltv refine` run folder"
    KEYS = ("ltv_version", "dataset", "fingerprint", "label_sets", "options")

    ltv_version: str
    dataset: str
    fingerprint: str
    label_sets: list[str]
    options: CoteachConfig

    @classmethod
    def from_json(cls, data: dict, version: int) -> SelectionRecord:
        known = {f.name for f in fields(CoteachConfig)}
        options = CoteachConfig(**{k: v for k, v in data["options"].items() if k in known})
        return cls(data["ltv_version"], data["dataset"], data["fingerprint"], list(data["label_sets"]), options)

    def to_json(self) -> dict:
        return {"ltv_version": self.ltv_version, "dataset": self.dataset, "fingerprint": self.fingerprint,
                "label_sets": self.label_sets, "options": self.options.to_json()}


def refine(dataset: str | Path, out: str | Path, *, budget: int, config: CoteachConfig, strategy: str = "entropy",
           candidates: str = "suspected", run: str | Path | None = None, sheet: bool = True,
           force: bool = False) -> pd.DataFrame:
    """Write the relabel queue ``out`` (CSV) and, with ``sheet``, its thumbnail page (same name, .html).

    ``force`` replaces an earlier queue (and sheet) at ``out``.
    """
    out = Path(out)
    check_queue_path(out)
    check_output(out, QUEUE, inputs=[dataset, run], force=force)
    if sheet:
        check_output(out.with_suffix(".html"), QUEUE_SHEET, inputs=[dataset, run], force=force)
    if run is not None:
        check_output(run, REFINE_RUN, inputs=[dataset], reuse=True, parameter="run")
    check_strategy(strategy)
    if budget < 1:
        raise OptionError("budget", f"{budget}: expected a positive number of labels")
    data = Dataset.open(dataset)
    resolve_input(config.input, data)  # no images and no features: refused first, saying what the dataset lacks
    if sheet and not data.has_images:
        raise OptionError("sheet", f"is on, but {data.path} has no images to show in it; turn the sheet off")
    selection = select(data, config, None if run is None else Path(run))
    _report_selection(data, selection)
    queue = build_queue(data, selection, strategy, budget, candidates=candidates, seed=config.seed)
    write_queue(queue, out)
    if sheet:
        write_sheet(data, queue, out.with_suffix(".html"))
    return queue


def select(data: Dataset, config: CoteachConfig, run: Path | None = None) -> Selection:
    """Phase 1 on ``data``: loaded from ``run`` when it holds this very selection, else trained (and saved there)."""
    if run is not None and (run / RECORD_FILE).is_file():
        return load_selection(run, data, config)
    with deterministic():
        teacher = CoTeaching(data, config)
        selection = teacher.fit()
    if run is not None:
        save_selection(run, data, config, selection, teacher.state())
    return selection


def _record(data: Dataset, config: CoteachConfig) -> SelectionRecord:
    return SelectionRecord(__version__, str(data.path.resolve()), dataset_fingerprint(data), data.label_set_names,
                           config)


def save_selection(run: Path, data: Dataset, config: CoteachConfig, selection: Selection,
                   networks: list[dict]) -> None:
    """Write the run folder; config.json last, so an interrupted save is never mistaken for a run."""
    with atomic_path(run / "networks.pt") as tmp:  # creates the folder (a refused write: one line)
        torch.save(networks, tmp)
    arrays = {name: getattr(selection, name) for name in _SELECTION_FIELDS}
    arrays.update({f"outputs_{f.name}": getattr(selection.outputs, f.name) for f in fields(ModelOutputs)})
    with atomic_path(run / "selection.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    write_record(run, _record(data, config))
    log(f"saved the selection phase in {run}; give it as the run folder again to reuse it")


def load_selection(run: Path, data: Dataset, config: CoteachConfig) -> Selection:
    """The saved selection of ``run``, after checking it was made on ``data`` with ``config``'s options."""
    stored = read_record(run, SelectionRecord)
    if stored.fingerprint != dataset_fingerprint(data):
        raise OptionError("run", f"{run}: made on another dataset ({stored.dataset}); use another `run` folder")
    previous = stored.options.result_options()
    changed = [k for k, v in config.result_options().items() if previous.get(k) != v]
    if changed:
        others = "".join(f", `{k}` {previous[k]!r} -> {getattr(config, k)!r}" for k in changed[1:])
        raise OptionError(changed[0], f"{previous[changed[0]]!r} -> {getattr(config, changed[0])!r}{others}: the "
                                      f"selection saved in {run} was made with other options; use another `run` "
                                      "folder")
    try:
        with np.load(run / "selection.npz") as arrays:
            outputs = ModelOutputs(**{f.name: arrays[f"outputs_{f.name}"] for f in fields(ModelOutputs)})
            selection = Selection(**{name: arrays[name] for name in _SELECTION_FIELDS}, outputs=outputs)
    except (OSError, KeyError, ValueError) as exc:
        raise LtvError(f"{run / 'selection.npz'}: missing or unreadable ({type(exc).__name__}); "
                       "delete the run folder to train again") from None
    log(f"reusing the selection phase saved in {run}")
    return selection


def _report_selection(data: Dataset, selection: Selection) -> None:
    """How many entries are suspects; with ground truth on the training split, how right the split is."""
    suspects = selection.suspects
    labelled = selection.valid & ~selection.trusted
    log(f"co-teaching kept {int((selection.kept & labelled).sum())} of {int(labelled.sum())} labels as probably "
        f"clean; {int(suspects.sum())} are suspects")
    truth = data.ground_truth
    if truth is None:
        return
    truth = truth[selection.rows].reshape(len(selection.rows), -1)
    known = truth >= 0
    wrong = entry_labels(selection.targets, data.is_multilabel) != truth
    for name, part in (("kept", labelled & ~suspects), ("suspect", suspects)):
        if (part & known).any():
            log(f"ground truth: {wrong[part & known].mean():.1%} of the {name} labels are wrong", level=2)
