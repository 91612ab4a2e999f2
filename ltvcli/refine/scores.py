"""Phase 2: which candidate entries are worth the expert's time (active-learning scores).

Every strategy gives each entry a score, higher = re-read first, and
:func:`pick` takes the top of the candidates. The classic scores are defined
on a class distribution; per entry they become:

* multi-label entry (image, finding c): the binary distribution (1 - p_c, p_c);
* multi-class entry (image): the softmax over the C classes.

Scores (the authors' set, plus ``loss``):

* ``entropy``           H(p) = -sum p log p (nats);
* ``least_confidence``  1 - max p;
* ``margin``            1 - (p_first - p_second): a small margin scores high;
* ``bald``              mutual information H(mean p_t) - mean H(p_t) over the MC-dropout
                        samples p_t (dropout on the GAP feature, through both networks);
* ``coreset``           greedy k-center in the GAP-feature space of network 1: repeatedly the
                        candidate farthest from every covered entry *of the same finding* (covered =
                        kept by co-teaching, answered by the expert, or already picked); its score
                        is that distance at the moment it is picked;
* ``loss``              network 1's loss on the entry's training label: the labels the model most
                        confidently contradicts first (ours, not the paper's: the uncertainty scores pick
                        what would teach the *model* most, this one what is most likely *wrong*);
* ``random``            a uniform draw (seeded): the baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from ltvcli.errors import OptionError
from ltvcli.refine.coteach import ModelOutputs

STRATEGIES = ("entropy", "least_confidence", "margin", "bald", "coreset", "loss", "random")
_EPS = 1e-12
_DISTANCE_CHUNK = 4096


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise OptionError("strategy", f"{strategy!r}: expected one of {', '.join(STRATEGIES)}")
    return strategy


def distributions(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """[..., G, K] distributions per entry: (1 - p, p) per finding, or the C-class softmax as one group."""
    if multilabel:
        return np.stack([1 - probs, probs], axis=-1)
    return probs[..., None, :]


def entropy(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """Entropy of each entry's distribution, [..., G]."""
    dist = distributions(probs, multilabel)
    return -(dist * np.log(np.clip(dist, _EPS, 1.0))).sum(axis=-1)


def least_confidence(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """1 - the largest probability of each entry, [..., G]."""
    return 1.0 - distributions(probs, multilabel).max(axis=-1)


def margin(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """1 - (largest - second largest probability) of each entry, [..., G]."""
    top2 = np.sort(distributions(probs, multilabel), axis=-1)[..., -2:]
    return 1.0 - (top2[..., 1] - top2[..., 0])


def bald(mc_probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """Mutual information between the label and the model, from samples [T, n, C]: [n, G]."""
    return entropy(mc_probs.mean(axis=0), multilabel) - entropy(mc_probs, multilabel).mean(axis=0)


def coreset(features: np.ndarray, candidates: np.ndarray, covered: np.ndarray, budget: int,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center over entries, per finding: (picked entries as flat indices into [n, G], distances).

    A finding with nothing covered yet starts at infinite distance: its
    first pick is its first candidate.
    """
    n, groups = candidates.shape
    feats = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    distance = np.full((n, groups), -np.inf)
    for g in range(groups):
        cand = np.flatnonzero(candidates[:, g])
        if len(cand):
            distance[cand, g] = _nearest(feats[cand], feats[np.flatnonzero(covered[:, g])])
    picked, scores = [], []
    for _ in range(min(budget, int(candidates.sum()))):
        flat = int(np.argmax(distance))
        i, g = divmod(flat, groups)
        picked.append(flat)
        scores.append(distance[i, g])
        distance[i, g] = -np.inf
        open_ = np.flatnonzero(distance[:, g] > -np.inf)  # this finding's candidates not picked yet
        if len(open_):
            new = torch.cdist(feats[open_], feats[i:i + 1])[:, 0].numpy()
            distance[open_, g] = np.minimum(distance[open_, g], new)
    return np.array(picked, dtype=np.int64), np.array(scores, dtype=np.float64)


def _nearest(points: torch.Tensor, centers: torch.Tensor) -> np.ndarray:
    """Distance from each point to its nearest center (inf when there is none), in chunks."""
    if len(centers) == 0:
        return np.full(len(points), np.inf)
    out = []
    for start in range(0, len(points), _DISTANCE_CHUNK):
        out.append(torch.cdist(points[start:start + _DISTANCE_CHUNK], centers).min(dim=1).values)
    return torch.cat(out).numpy().astype(np.float64)


def entry_scores(strategy: str, outputs: ModelOutputs, multilabel: bool, seed: int = 0) -> np.ndarray:
    """Scores [n, G] of every entry under a per-entry strategy (all but ``coreset``)."""
    if strategy == "entropy":
        return entropy(outputs.probs, multilabel)
    if strategy == "least_confidence":
        return least_confidence(outputs.probs, multilabel)
    if strategy == "margin":
        return margin(outputs.probs, multilabel)
    if strategy == "bald":
        return bald(outputs.mc_probs, multilabel)
    if strategy == "loss":
        return outputs.loss
    if strategy == "random":
        return np.random.default_rng(seed).random(outputs.loss.shape)
    raise ValueError(f"{strategy} is not a per-entry score")


def pick(strategy: str, candidates: np.ndarray, budget: int, outputs: ModelOutputs, *, covered: np.ndarray,
         multilabel: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The at most ``budget`` candidates [n, G] to re-read, best first: (positions, groups, scores).

    Ties keep the lower position, then the lower group (a stable order), so
    the same inputs always give the same queue.
    """
    check_strategy(strategy)
    if budget < 1:
        raise OptionError("budget", f"{budget}: expected a positive number of labels")
    groups = candidates.shape[1]
    if strategy == "coreset":
        flat, scores = coreset(outputs.features, candidates, covered, budget)
    else:
        values = entry_scores(strategy, outputs, multilabel, seed)
        flat_all = np.flatnonzero(candidates.reshape(-1))
        order = np.argsort(-values.reshape(-1)[flat_all], kind="stable")[:budget]
        flat = flat_all[order]
        scores = values.reshape(-1)[flat]
    positions, group = np.divmod(flat, groups)
    return positions, group, scores
