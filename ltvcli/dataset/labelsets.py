"""From a labeller's raw codes to label sets: the uncertainty and blank policies.

NLP labellers (NegBio, CheXpert) mark each finding positive (1), negative
(0), uncertain (-1) or leave it blank (not mentioned). A label set is what a
model trains on: every entry 1, 0 or missing. The paper forms four label sets
from two labellers by mapping uncertain to 0 (``u0``) or 1 (``u1``); ltv also
offers ``ignore`` (uncertain becomes missing and is masked out of every loss).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Sequence

import numpy as np

from ltvcli.dataset.format import (MISSING, RAW_BLANK, RAW_MISSING, RAW_NEGATIVE, RAW_POSITIVE, RAW_UNCERTAIN, Dataset,
                                   LabelSet)
from ltvcli.errors import LtvError, OptionError

UNCERTAIN_POLICIES = ("u0", "u1", "ignore")
BLANK_POLICIES = ("0", "1", "ignore")
#: The names the CheXpert paper gives the policies ("U-Zeros", "U-Ones", "U-Ignore"), any case.
POLICY_ALIASES = {"u-zeros": "u0", "u-ones": "u1", "u-ignore": "ignore"}

_TARGET = {"u0": 0, "u1": 1, "0": 0, "1": 1, "ignore": MISSING}


def uncertainty_policies(names: Sequence[str]) -> list[str]:
    """The policy names with the CheXpert paper's aliases (U-Zeros, U-Ones, U-Ignore) made canonical."""
    policies = [POLICY_ALIASES.get(name.strip().lower(), name.strip()) for name in names]
    check_policies(policies, "0")
    return policies


def check_policies(uncertain: list[str], blank: str) -> None:
    """Raise a clear error for an unknown policy name."""
    for policy in uncertain:
        if policy not in UNCERTAIN_POLICIES:
            raise OptionError("uncertain", f"names an unknown uncertainty policy {policy!r}; expected "
                                           f"{', '.join(UNCERTAIN_POLICIES)} (or U-Zeros, U-Ones, U-Ignore)")
    if blank not in BLANK_POLICIES:
        raise OptionError("blank", f"names an unknown blank policy {blank!r}; expected one of "
                                   f"{', '.join(BLANK_POLICIES)}")


def apply_policy(raw: np.ndarray, uncertain: str, blank: str = "0") -> np.ndarray:
    """Map raw codes ([..., C] int8) to label-set values 1 / 0 / MISSING (RAW_MISSING is always MISSING)."""
    check_policies([uncertain], blank)
    out = np.full(raw.shape, MISSING, dtype=np.int8)
    out[raw == RAW_POSITIVE] = 1
    out[raw == RAW_NEGATIVE] = 0
    out[raw == RAW_UNCERTAIN] = _TARGET[uncertain]
    out[raw == RAW_BLANK] = _TARGET[blank]
    return out


def label_sets_from_raw(
    labellers: list[str], raw: np.ndarray, uncertain: list[str], blank: str = "0", *,
    collapse_certain: bool = False,
) -> tuple[list[LabelSet], np.ndarray]:
    """Every (labeller, policy) pair as a label set named ``<labeller>_<policy>``.

    ``raw`` is [N, L, C]; the result is the list of label sets and their
    values [N, L * len(uncertain), C], labeller-major (negbio_u0, negbio_u1,
    chexpert_u0, chexpert_u1 by default). With ``collapse_certain`` a
    labeller that never said "uncertain" gives one label set named after it
    (policy None): its policies would be identical copies, and a copy is an
    extra vote for majority and Dawid-Skene.
    """
    check_policies(uncertain, blank)
    sets, arrays = [], []
    for j, labeller in enumerate(labellers):
        if collapse_certain and not (raw[:, j] == RAW_UNCERTAIN).any():
            sets.append(LabelSet(name=labeller, labeller=labeller, policy=None))
            arrays.append(apply_policy(raw[:, j], "ignore", blank))
            continue
        for policy in uncertain:
            sets.append(LabelSet(name=f"{labeller}_{policy}", labeller=labeller, policy=policy))
            arrays.append(apply_policy(raw[:, j], policy, blank))
    if not arrays:
        return [], np.zeros(raw.shape[:1] + (0,) + raw.shape[2:], dtype=np.int8)
    return sets, np.stack(arrays, axis=1)


def parse_label_cell(text: str, codes: dict[float, int], blank: int) -> int | None:
    """Parse one numeric label cell ('1.0', '0', '') to a code: ``codes[value]``, ``blank`` if empty, None if invalid."""
    text = text.strip()
    if text == "":
        return blank
    try:
        return codes.get(float(text))
    except ValueError:
        return None


def parse_binary(text: str) -> int | None:
    """One trusted-label cell (hand labels): '1'/'1.0' -> 1, '0'/'0.0' -> 0, blank -> MISSING, anything else -> None.

    Shared by ingest (ground truth of a source) and evaluate (a hand-labelled file).
    """
    return parse_label_cell(text, {1.0: 1, 0.0: 0}, MISSING)


def parse_raw_value(text: str) -> int | None:
    """Parse one MIMIC-style labeller cell ('1.0', '0', '-1.0', '') to a raw code; None if invalid."""
    return parse_label_cell(text, {1.0: RAW_POSITIVE, 0.0: RAW_NEGATIVE, -1.0: RAW_UNCERTAIN}, RAW_BLANK)


#: Words a human reader's cell may hold, any case (Google's NIH reads say YES / NO / HEDGE).
READER_WORDS = {"yes": RAW_POSITIVE, "no": RAW_NEGATIVE, "hedge": RAW_UNCERTAIN, "uncertain": RAW_UNCERTAIN}
READER_VALUES = "1, 0, -1, yes, no, hedge, uncertain or blank"


def parse_reader_value(text: str) -> int | None:
    """A reader's cell: 1 / 0 / -1 (``.0`` or not) or yes / no / hedge / uncertain (any case); blank = not labelled.

    Unlike an NLP labeller's blank ("not mentioned", which a blank policy may
    read as negative), a reader's blank cell means the finding was not read:
    RAW_MISSING.
    """
    word = READER_WORDS.get(text.strip().lower())
    if word is not None:
        return word
    return parse_label_cell(text, {1.0: RAW_POSITIVE, 0.0: RAW_NEGATIVE, -1.0: RAW_UNCERTAIN}, RAW_MISSING)


TRUTH_VALUES = "1, 0, yes, no or blank"


def parse_truth_code(text: str) -> int | None:
    """A trusted label cell (1 / 0 / yes / no, any case, or blank) as a raw code; uncertain is refused (None).

    Ground truth cannot be uncertain: an image nobody could decide is simply
    not labelled (blank, RAW_MISSING). :func:`raw_to_truth` turns the codes
    into ground-truth values.
    """
    code = parse_reader_value(text)
    return None if code == RAW_UNCERTAIN else code


def raw_to_truth(raw: np.ndarray) -> np.ndarray:
    """Raw codes without uncertain ones -> ground-truth values 1 / 0 / MISSING."""
    return apply_policy(raw, "ignore", "ignore")


# ----------------------------------------------------------------------------- choosing label sets
#: Label set names a message shows before "and N more" (an expert-read set can have dozens of readers).
NAMES_SHOWN = 8


def select_label_sets(dataset: Dataset, label_sets: str | Sequence[str] | None = None,
                      policy: str | None = None) -> list[int]:
    """Positions of the label sets to fuse (``ltv export-labels``) or score (``ltv evaluate``), in the dataset's order.

    ``label_sets``: names or shell-style patterns (``reader*``), a list or one
    comma-separated string; each must match a label set. None: every label
    set. ``policy`` (``u0``, ``u1``, ``ignore``, or the CheXpert paper's
    ``U-Zeros``, ``U-Ones``, ``U-Ignore``) keeps one label set per
    labeller: of a labeller with a label set per uncertainty policy, the one
    of that policy (a labeller that never said "uncertain" has a single set,
    which stays). Without it, a labeller's policies are fused side by side,
    as ``ltv train`` does: where the labeller was certain they are the same
    label twice, an extra vote for the majority and two "independent"
    labellers that always agree for Dawid-Skene.
    """
    names = dataset.label_set_names
    if not names:
        raise LtvError(f"{dataset.path}: the dataset has no label sets")
    chosen = list(range(len(names)))
    if label_sets is not None:
        patterns = [p.strip() for p in (label_sets.split(",") if isinstance(label_sets, str) else label_sets)]
        patterns = [p for p in patterns if p]
        if not patterns:
            raise OptionError("label_sets", "is empty; expected label set names or patterns (reader*)")
        for pattern in patterns:
            if not any(fnmatchcase(name, pattern) for name in names):
                raise OptionError("label_sets", f"{pattern!r} matches no label set; the dataset has {listing(names)}")
        chosen = [m for m, name in enumerate(names) if any(fnmatchcase(name, p) for p in patterns)]
    if policy is not None:
        chosen = _one_per_labeller(dataset, chosen, policy)
    return chosen


def _one_per_labeller(dataset: Dataset, chosen: list[int], policy: str) -> list[int]:
    """``chosen`` with only the ``policy`` set of each labeller that has sets of several policies."""
    policy = POLICY_ALIASES.get(policy.strip().lower(), policy.strip())
    if policy not in UNCERTAIN_POLICIES:
        raise OptionError("policy", f"{policy!r}: expected one of {', '.join(UNCERTAIN_POLICIES)} (or U-Zeros, "
                                    "U-Ones, U-Ignore)")
    sets = dataset.label_sets
    kept = []
    for labeller in dict.fromkeys(sets[m].labeller for m in chosen):
        own = [m for m in chosen if sets[m].labeller == labeller]
        if len(own) == 1 and sets[own[0]].policy is None:
            kept += own  # never uncertain: one label set, whatever the policy
            continue
        match = [m for m in own if sets[m].policy == policy]
        if not match:
            raise OptionError("policy", f"{policy}: labeller {labeller!r} has no {policy} label set (it has "
                                        f"{', '.join(sets[m].name for m in own)})")
        kept += match
    return sorted(kept)


def listing(names: Sequence[str]) -> str:
    """``a, b, c`` for a message; past :data:`NAMES_SHOWN` names, ``... and N more``."""
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")
