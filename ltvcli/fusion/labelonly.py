"""Label-only fusion: a dataset's label sets fused without images or a model (``ltv export-labels DATASET``).

A label-only dataset (``ltv ingest ... --no-images``) cannot train, but its
label sets can still be fused, exported and scored. Each fusion gives, per
image and class, the table of :mod:`ltvcli.fusion.table`, as a run's export
does:

* ``majority``     the majority vote (:class:`~ltvcli.fusion.aggregators.MajorityVote`, ties broken by a
                   hash of (``seed``, image, class)); refined = binarised = 0/1;
* ``soft_mean``    the mean of the available labels; binarised at 0.5;
* ``dawid_skene``  Dawid-Skene's posterior (:class:`~ltvcli.fusion.aggregators.DawidSkene`); binarised at 0.5;
* ``reliability``  the label-only part of learning-to-vote's reliability vote
                   (:meth:`~ltvcli.fusion.vote.ReliabilityVote.label_vote`): without images every per-sample
                   multiplier is 1, so refined is the Dawid-Skene posterior; binarised is the vote's
                   sigmoid(k (ȳ − T)), and each label set gets its vote weight.

The paper's vote has no label-only part (its weights are computed from image
features) and is refused in one line. The first three have no vote weights:
their weight columns are NaN, as in the export of a ``single`` or ``mv`` run.

Dawid-Skene (and the reliability vote's prior) is fitted on the label sets of
the exported images: labels only, never the ground truth, so an expert-read
test set with no training split can be fused as it is. Which label sets are
fused: all of them (as ``ltv train`` does), or those ``label_sets`` names,
and with ``policy`` one per labeller
(:func:`~ltvcli.dataset.labelsets.select_label_sets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ltvcli.atomic import check_table_path, write_table
from ltvcli.console import log
from ltvcli.dataset.format import SPLITS, Dataset
from ltvcli.dataset.labelsets import listing, select_label_sets
from ltvcli.errors import LtvError, OptionError
from ltvcli.fusion.aggregators import make_aggregator
from ltvcli.fusion.base import as_refined
from ltvcli.fusion.registry import (LABEL_ONLY_ALIASES, LABEL_ONLY_FUSIONS, NO_LABEL_ONLY_PART,
                                    ReliabilityOptions, make_method)
from ltvcli.fusion.table import refined_table
from ltvcli.outputs import REFINED_LABELS, check_output

def fuse_labels(dataset: Dataset, aggregator: str = "dawid_skene", *, splits: Sequence[str] = SPLITS,
                label_sets: str | Sequence[str] | None = None, policy: str | None = None, seed: int = 0,
                k: float = 50.0, threshold: float = 0.5) -> pd.DataFrame:
    """The fused labels of ``dataset``'s images in ``splits`` (the table of :mod:`ltvcli.fusion.table`).

    ``aggregator`` is one of :data:`~ltvcli.fusion.registry.LABEL_ONLY_FUSIONS`, fitted on the label sets of
    those images. ``seed`` breaks the majority's ties; ``k`` and
    ``threshold`` binarise the reliability vote. Images and classes no fused label set labels get NaN.
    """
    if aggregator in ("paper", "ltv"):
        raise OptionError("aggregator", f"{aggregator}: {NO_LABEL_ONLY_PART}")
    if aggregator not in LABEL_ONLY_FUSIONS:
        raise OptionError("aggregator", f"{aggregator!r}: expected one of {', '.join(LABEL_ONLY_FUSIONS)}")
    chosen = select_label_sets(dataset, label_sets, policy)
    names = [dataset.label_set_names[m] for m in chosen]
    rows = _rows(dataset, splits)
    targets, mask = (torch.from_numpy(a[rows][:, chosen]) for a in dataset.targets())
    if aggregator == "reliability":
        if len(chosen) < 2:
            raise OptionError("aggregator", f"reliability votes over at least 2 label sets; {_fused(names)}")
        vote = make_method("ltv", n_label_sets=len(chosen), n_classes=len(dataset.classes),
                           multilabel=dataset.is_multilabel, label_set_names=names,
                           options=ReliabilityOptions(k=k, threshold=threshold))
        vote.fit_labels(targets, mask)
        with torch.no_grad():
            refined, binarised, weights = vote.label_vote(targets, mask)
        weights = weights.numpy()
    else:
        fusion = make_aggregator(LABEL_ONLY_ALIASES.get(aggregator, aggregator), names,
                                 multilabel=dataset.is_multilabel, seed=seed,
                                 parameter="aggregator")
        labels, valid = fusion.fit(targets, mask).predict_proba(targets, mask, torch.from_numpy(rows))
        refined, binarised = as_refined(labels, valid, dataset.is_multilabel)
        weights = None
    held = dict.fromkeys(dataset.manifest["split"].to_numpy()[rows])
    log(f"{aggregator}: fused {_fused(names)} on {len(rows)} images ({', '.join(held)})")
    return refined_table(dataset.image_ids[rows], dataset.classes, refined.numpy(), binarised.numpy(), weights, names)


def export_fused_labels(dataset: Dataset, out: Path, aggregator: str = "dawid_skene", *,
                        splits: Sequence[str] = SPLITS, label_sets: str | Sequence[str] | None = None,
                        policy: str | None = None, seed: int = 0, k: float = 50.0, threshold: float = 0.5,
                        force: bool = False) -> pd.DataFrame:
    """:func:`fuse_labels`, written to ``out`` (.csv or .parquet) atomically; ``force`` replaces an earlier export."""
    out = Path(out)
    check_table_path(out)
    check_output(out, REFINED_LABELS, inputs=[dataset.path], force=force)
    frame = fuse_labels(dataset, aggregator, splits=splits, label_sets=label_sets, policy=policy, seed=seed, k=k,
                        threshold=threshold)
    write_table(frame, out)
    return frame


def _rows(dataset: Dataset, splits: Sequence[str]) -> np.ndarray:
    """Dataset rows of ``splits``, in dataset order; an error if they hold no image."""
    wanted = list(dict.fromkeys(splits))
    for split in wanted:
        if split not in SPLITS:
            raise OptionError("splits", f"{split!r}: expected one of {', '.join(SPLITS)} (or all)")
    rows = np.flatnonzero(dataset.manifest["split"].isin(wanted).to_numpy())
    if not len(rows):
        raise LtvError(f"{dataset.path}: no image in the {' or '.join(wanted)} split (its splits: "
                       f"{', '.join(f'{s} {n}' for s, n in dataset.meta.get('splits', {}).items())})")
    return rows


def _fused(names: list[str]) -> str:
    return f"{len(names)} label set{'s' if len(names) != 1 else ''} ({listing(names)})"
