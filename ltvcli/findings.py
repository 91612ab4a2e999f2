"""The 14 chest X-ray findings, defined once.

Names are the MIMIC-CXR / CheXpert CSV column names; aliases are the short names
the learning-to-vote paper uses in its tables (E-cardio, Lesion, Opacity, ...)
plus a few spellings users type. Everything else in ltv refers to findings
through this module, so a CSV header, a CLI option and a table row always agree.
"""

from __future__ import annotations

from ltvcli.errors import LtvError

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)

#: Short names from the paper's Table 4, keyed by the canonical name.
SHORT_NAMES: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Enlarged Cardiomediastinum": "E-cardio",
    "Fracture": "Fracture",
    "Lung Lesion": "Lesion",
    "Lung Opacity": "Opacity",
    "No Finding": "No-finding",
    "Pleural Effusion": "Effusion",
    "Pleural Other": "Pleural-other",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Support Devices": "Devices",
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_ALIASES: dict[str, str] = {}
for _name in FINDINGS:
    _ALIASES[_key(_name)] = _name
    _ALIASES[_key(SHORT_NAMES[_name])] = _name
_ALIASES.update({_key("Pneumo-x"): "Pneumothorax", _key("pneum-x"): "Pneumothorax",
                 _key("Enlarged Cardiom."): "Enlarged Cardiomediastinum"})


def canonical(name: str) -> str:
    """Map a finding name or alias (any case, spaces/dashes ignored) to its canonical name."""
    try:
        return _ALIASES[_key(name)]
    except KeyError:
        raise LtvError(
            f"unknown finding {name!r}; expected one of: {', '.join(FINDINGS)} (or a short name such as E-cardio)"
        ) from None


def short_name(name: str) -> str:
    """The paper's short name for a canonical finding name (unchanged for other class names)."""
    return SHORT_NAMES.get(name, name)


def is_finding(name: str) -> bool:
    """Whether ``name`` is one of the 14 findings or an alias of one."""
    return _key(name) in _ALIASES
