"""From a labeller's raw codes to label sets: the uncertainty and blank policies.

NLP labellers (NegBio, CheXpert) mark each finding positive (1), negative
(0), uncertain (-1) or leave it blank (not mentioned). A label set is what a
model trains on: every entry 1, 0 or missing. The paper forms four label sets
from two labellers by mapping uncertain to 0 (``u0``) or 1 (``u1``); ltv also
offers ``ignore`` (uncertain becomes missing and is masked out of every loss).
"""

from __future__ import annotations

import numpy as np

from ltvcli.dataset.format import MISSING, RAW_BLANK, RAW_NEGATIVE, RAW_POSITIVE, RAW_UNCERTAIN, LabelSet
from ltvcli.errors import LtvError

UNCERTAIN_POLICIES = ("u0", "u1", "ignore")
BLANK_POLICIES = ("0", "1", "ignore")

_TARGET = {"u0": 0, "u1": 1, "0": 0, "1": 1, "ignore": MISSING}


def check_policies(uncertain: list[str], blank: str) -> None:
    """Raise a clear error for an unknown policy name."""
    for policy in uncertain:
        if policy not in UNCERTAIN_POLICIES:
            raise LtvError(f"unknown uncertainty policy {policy!r}; expected one of {', '.join(UNCERTAIN_POLICIES)}")
    if blank not in BLANK_POLICIES:
        raise LtvError(f"unknown blank policy {blank!r}; expected one of {', '.join(BLANK_POLICIES)}")


def apply_policy(raw: np.ndarray, uncertain: str, blank: str = "0") -> np.ndarray:
    """Map raw codes ([..., C] int8) to label-set values 1 / 0 / MISSING."""
    check_policies([uncertain], blank)
    out = np.full(raw.shape, MISSING, dtype=np.int8)
    out[raw == RAW_POSITIVE] = 1
    out[raw == RAW_NEGATIVE] = 0
    out[raw == RAW_UNCERTAIN] = _TARGET[uncertain]
    out[raw == RAW_BLANK] = _TARGET[blank]
    return out


def label_sets_from_raw(
    labellers: list[str], raw: np.ndarray, uncertain: list[str], blank: str = "0"
) -> tuple[list[LabelSet], np.ndarray]:
    """Every (labeller, policy) pair as a label set named ``<labeller>_<policy>``.

    ``raw`` is [N, L, C]; the result is the list of label sets and their
    values [N, L * len(uncertain), C], labeller-major (negbio_u0, negbio_u1,
    chexpert_u0, chexpert_u1 by default).
    """
    check_policies(uncertain, blank)
    sets, arrays = [], []
    for j, labeller in enumerate(labellers):
        for policy in uncertain:
            sets.append(LabelSet(name=f"{labeller}_{policy}", labeller=labeller, policy=policy))
            arrays.append(apply_policy(raw[:, j], policy, blank))
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
