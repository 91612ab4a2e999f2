"""crowd-kit's and cleanlab's aggregators on an ltv dataset's label sets: the peers of ``bench_fusion.py``.

Both libraries are the optional extra ``peers`` (``pip install -e ".[peers]"``);
ltv itself never imports them, and this module imports them only inside the
functions that use them, so the benchmark runs (without these rows) where
they are missing.

The peers see what a crowd-kit user sees: per classification problem, a
[items, workers] matrix of class ids with -1 where a label set gave no label.
A multi-class dataset is one problem; a multi-label dataset is one binary
problem per finding (0 = negative, 1 = positive). Every aggregator returns one
hard label per item, -1 where no label set labelled it.

* ``MV``, ``DS``, ``GLAD``, ``MACE``: crowd-kit's majority vote, Dawid-Skene
  (100 EM iterations), GLAD (100 iterations) and MACE, from the labels alone.
* ``CROWDLAB``: cleanlab's multi-annotator consensus
  (``get_label_quality_multiannotator``). It weighs a classifier against each
  annotator, so it needs the classifier's *out-of-fold* class probabilities of
  the training items; ``bench_fusion.py`` computes them with ltv's own model and
  loop and hands them in.
"""

from __future__ import annotations

import importlib
import warnings
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd

#: The label-only aggregators of crowd-kit, by the name their rows carry.
CROWDKIT_PEERS = ("MV", "DS", "GLAD", "MACE")
#: Every peer, in table order.
PEERS = CROWDKIT_PEERS + ("CROWDLAB",)
#: The distribution each peer needs, and the module it is imported as.
PACKAGES = {**{name: "crowd-kit" for name in CROWDKIT_PEERS}, "CROWDLAB": "cleanlab"}
MODULES = {"crowd-kit": "crowdkit", "cleanlab": "cleanlab"}
#: EM iterations of crowd-kit's Dawid-Skene and GLAD (their defaults stop earlier on large crowds).
EM_ITERATIONS = 100


def missing_packages(peers: list[str]) -> list[str]:
    """The distributions ``peers`` need that cannot be imported here, in a stable order."""
    missing = []
    for package in dict.fromkeys(PACKAGES[peer] for peer in peers):
        try:
            importlib.import_module(MODULES[package])
        except ImportError:
            missing.append(package)
    return missing


def package_versions(peers: list[str]) -> dict[str, str]:
    """Installed version of each distribution ``peers`` use (recorded beside the results)."""
    versions = {}
    for package in dict.fromkeys(PACKAGES[peer] for peer in peers):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def problems(labels: np.ndarray, multilabel: bool, n_classes: int) -> list[tuple[np.ndarray, int]]:
    """The classification problems in stored labels: ``(answers [n, M], number of classes)`` each.

    ``labels`` is a dataset's ``labels.npy`` (rows already chosen):
    [n, M] class ids for multi-class, [n, M, C] 0/1 for multi-label (one
    binary problem per finding); -1 is missing either way.
    """
    if multilabel:
        return [(labels[:, :, c].astype(np.int64), 2) for c in range(labels.shape[2])]
    return [(labels.astype(np.int64), n_classes)]


def as_label_set(per_problem: list[np.ndarray], multilabel: bool) -> np.ndarray:
    """Hard labels per problem back into one label set's stored layout: [n] (multi-class) or [n, C]."""
    return np.stack(per_problem, axis=1) if multilabel else per_problem[0]


def crowdkit_labels(name: str, answers: np.ndarray, seed: int) -> np.ndarray:
    """crowd-kit aggregator ``name``'s label per item of ``answers`` [n, M] (-1: the item has no label)."""
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote

    frame = long_format(answers)
    if name == "MV":
        np.random.seed(seed)  # crowd-kit breaks majority ties with numpy's global generator
        aggregator = MajorityVote()
    elif name == "DS":
        aggregator = DawidSkene(n_iter=EM_ITERATIONS)
    elif name == "GLAD":
        aggregator = GLAD(n_iter=EM_ITERATIONS)
    elif name == "MACE":
        aggregator = MACE(random_state=seed)
    else:
        raise ValueError(f"not a crowd-kit peer: {name}")
    with pandas_deprecations_hidden():
        return per_item(aggregator.fit_predict(frame), len(answers))


def crowdlab_labels(answers: np.ndarray, out_of_fold: np.ndarray) -> np.ndarray:
    """cleanlab's CROWDLAB consensus per item of ``answers`` [n, M], given out-of-fold probabilities [n, K].

    Items nobody labelled, and label sets that labelled none of the items,
    are left out (cleanlab refuses them); such items get -1.
    """
    from cleanlab.multiannotator import get_label_quality_multiannotator

    answered = (answers >= 0).any(axis=1)
    labels = np.where(answers >= 0, answers, np.nan)[answered]
    frame = pd.DataFrame(labels[:, ~np.isnan(labels).all(axis=0)])
    with pandas_deprecations_hidden():
        result = get_label_quality_multiannotator(frame, out_of_fold[answered], verbose=False,
                                                  return_detailed_quality=False, return_annotator_stats=False)
    out = np.full(len(answers), -1, dtype=np.int64)
    out[answered] = result["label_quality"]["consensus_label"].to_numpy().astype(np.int64)
    return out


@contextmanager
def pandas_deprecations_hidden():
    """Hide pandas 3's deprecation warnings while a peer runs.

    crowd-kit 1.4.2 and cleanlab 2.9.0 call pandas with ``inplace=`` and
    ``copy=``, which pandas 3 deprecates: hundreds of warnings per fit, about
    their code, none about the benchmark's.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=getattr(pd.errors, "Pandas4Warning", DeprecationWarning))
        yield


def long_format(answers: np.ndarray) -> pd.DataFrame:
    """crowd-kit's input: one row per (task, worker, label) that was given."""
    task, worker = np.nonzero(answers >= 0)
    return pd.DataFrame({"task": task, "worker": worker, "label": answers[task, worker]})


def per_item(labels: pd.Series, n: int) -> np.ndarray:
    """crowd-kit's labels (indexed by task) as an [n] array, -1 for tasks it did not label."""
    out = np.full(n, -1, dtype=np.int64)
    out[labels.index.to_numpy(dtype=np.int64)] = labels.to_numpy().astype(np.int64)
    return out
