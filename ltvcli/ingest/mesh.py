"""OpenI's MeSH codes -> ltv's 14 findings: OpenI's hand-labelled ground truth.

NLM's indexers coded every OpenI report by hand with MeSH terms, one entry
per abnormality: ``Term/qualifier/qualifier``, e.g.
``Opacity/lung/base/left/mild`` or ``Cardiomegaly/borderline`` (``normal``
for a report without findings, ``No Indexing`` for one they did not code).
The mapping table ``ltvcli/ingest/data/openi_mesh.csv`` -- readable, and
replaceable with ``--mesh-map`` -- says which term means which finding:

* a row ``term, qualifier, finding, label`` applies to an entry with that
  term (any case) and, if the row names a qualifier, that qualifier among
  the entry's; rows naming a qualifier overrule the term's plain rows for
  the same finding (``Opacity/ribs`` is not a lung opacity), and among them
  ``uncertain`` beats ``absent`` beats ``present``;
* ``present`` makes the finding positive, ``uncertain`` leaves it unlabelled
  (ground truth has no "uncertain"), ``absent`` keeps the entry from it;
* a finding no entry of a coded report names is negative: the indexers coded
  every abnormality they read;
* ``No Finding`` is positive when every entry is ``normal``, ``neutral``
  (a normal variant, the film's quality) or only a support device -- as
  CheXpert's labeller sets it -- and negative otherwise: an entry the table
  does not map (``Calcified Granuloma``, ``Scoliosis``) is still an
  abnormality;
* a ``not indexed`` report (``No Indexing``, or no MeSH at all) is unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np

from ltvcli.dataset.format import MISSING
from ltvcli.errors import LtvError
from ltvcli.findings import FINDINGS, canonical, is_finding
from ltvcli.ingest import csvio

FINDING_LABELS = ("present", "uncertain", "absent")  # rows that name a finding
REPORT_LABELS = ("normal", "neutral", "not indexed")  # rows about the whole report (no finding)
COLUMNS = ("mesh_term", "qualifier", "finding", "label")
_RANK = {"present": 0, "absent": 1, "uncertain": 2}  # among rules naming a qualifier, the higher one wins
NO_FINDING, DEVICES = FINDINGS.index("No Finding"), FINDINGS.index("Support Devices")


def default_table() -> Path:
    """The mapping table shipped with ltv (documented, with its reasons, in docs/ingest.md)."""
    return Path(str(resources.files("ltvcli.ingest").joinpath("data", "openi_mesh.csv")))


@dataclass(frozen=True)
class Rule:
    qualifier: str  # lower case; "" = any entry of the term
    finding: str | None
    label: str


class MeshMap:
    """The mapping table, indexed by term; :meth:`truth` labels one report."""

    def __init__(self, rules: dict[str, list[Rule]], path: Path):
        self.rules = rules
        self.path = path

    @classmethod
    def read(cls, path: str | Path | None = None) -> "MeshMap":
        """Read and check a mapping table (default: the one shipped with ltv)."""
        path = Path(path) if path is not None else default_table()
        frame = csvio.read_table(path, required=COLUMNS, what="MeSH mapping table")
        rules: dict[str, list[Rule]] = {}
        seen = set()
        for position, (term, qualifier, finding, label) in enumerate(frame[list(COLUMNS)].itertuples(index=False)):
            term, qualifier, finding, label = (term.strip(), qualifier.strip().lower(), finding.strip(),
                                               label.strip().lower())
            where = csvio.where(path, frame, position)
            if not term:
                raise LtvError(f"{where}: empty mesh_term")
            if label in FINDING_LABELS:
                if not is_finding(finding):
                    raise LtvError(f"{where}: finding {finding!r} is not one of {', '.join(FINDINGS)}")
                finding = canonical(finding)
            elif label in REPORT_LABELS:
                if finding:
                    raise LtvError(f"{where}: a {label!r} row names no finding; found {finding!r}")
                finding = None
            else:
                raise LtvError(f"{where}: label {label!r} is not one of {', '.join(FINDING_LABELS + REPORT_LABELS)}")
            key = (term.lower(), qualifier, finding)
            if key in seen:
                raise LtvError(f"{where}: a second row for {term!r}, qualifier {qualifier!r}, finding {finding!r}")
            seen.add(key)
            rules.setdefault(term.lower(), []).append(Rule(qualifier, finding, label))
        return cls(rules, path)

    def truth(self, entries: Iterable[str]) -> np.ndarray:
        """One report's MeSH entries -> int8 [14]: 1 / 0, MISSING where unlabelled (see the module notes)."""
        entries = [entry.strip() for entry in entries if entry.strip()]
        out = np.zeros(len(FINDINGS), dtype=np.int8)
        uncertain = np.zeros(len(FINDINGS), dtype=bool)
        if not entries:
            return np.full(len(FINDINGS), MISSING, dtype=np.int8)
        abnormal = False
        for entry in entries:
            term, *qualifiers = [part.strip() for part in entry.split("/")]
            rules = self.rules.get(term.lower())
            if rules is None:  # a term the table does not map: an abnormality without an ltv finding
                abnormal = True
                continue
            kinds = {rule.label for rule in rules if rule.finding is None}
            if "not indexed" in kinds:
                return np.full(len(FINDINGS), MISSING, dtype=np.int8)
            if kinds & {"normal", "neutral"}:
                continue
            said = self._entry(rules, {q.lower() for q in qualifiers})
            for finding, label in said.items():
                j = FINDINGS.index(finding)
                if label == "present":
                    out[j] = 1
                elif label == "uncertain":
                    uncertain[j] = True
            if set(said.values()) != {"present"} or set(said) != {"Support Devices"}:
                abnormal = True
        out = np.where(uncertain & (out == 0), MISSING, out).astype(np.int8)
        out[NO_FINDING] = 0 if abnormal else 1
        return out

    @staticmethod
    def _entry(rules: list[Rule], qualifiers: set[str]) -> dict[str, str]:
        """finding -> label for one entry: rules naming one of its qualifiers overrule the term's plain rules."""
        chosen: dict[str, str] = {}
        specific: dict[str, str] = {}
        for rule in rules:
            if rule.finding is None:
                continue
            if not rule.qualifier:
                chosen.setdefault(rule.finding, rule.label)
            elif rule.qualifier in qualifiers:
                best = specific.get(rule.finding)
                if best is None or _RANK[rule.label] > _RANK[best]:
                    specific[rule.finding] = rule.label
        chosen.update(specific)
        return chosen
