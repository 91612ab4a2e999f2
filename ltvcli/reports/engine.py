"""One report -> one raw code per finding, with medspaCy's ConText on a blank spaCy pipeline.

The pipeline is ``spacy.blank("en")`` (no model download) with spaCy's rule
sentencizer (sentence ends and line breaks), medspaCy's TargetMatcher for the
mention phrases and medspaCy's ConText (its own rules plus ltv's radiology
rules) for negated / uncertain / historical / hypothetical / family mentions.

A mention's state: negated -> negative; uncertain or a hedged phrase
("blunting") -> uncertain; hypothetical ("if there is concern for
fracture, ...") or family -> ignored; otherwise positive; when a negation
and a hedge both reach a mention, the nearer one decides
(historical mentions count: an old fracture is still on the film). A
finding's state over its mentions: positive if any mention is positive, else
uncertain if any is, else negative if any is, else not mentioned -- the
CheXpert labeller's aggregation. No Finding is positive when no other finding
(but those the rules exempt, Support Devices) is positive or uncertain and no
``abnormal`` phrase is positive, and not mentioned otherwise.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np

from ltvcli.dataset.format import RAW_BLANK, RAW_NEGATIVE, RAW_POSITIVE, RAW_UNCERTAIN
from ltvcli.errors import LtvError
from ltvcli.reports.rules import NO_FINDING, Rules, check_classes, phrase_pattern

#: How to install what label-reports needs (docs/label-reports.md says why in two steps).
INSTALL = ('pip install "ltv[reports]" && pip install --no-deps medspacy==1.3.1 PyRuSH==1.0.13 '
           "medspacy_quickumls==3.2")
ABNORMAL = "_abnormal"  # target category of the rules' other abnormalities
SEPARATOR = "|"  # between the findings of a target that names several
_CATEGORY = {"negated": "NEGATED_EXISTENCE", "uncertain": "POSSIBLE_EXISTENCE", "historical": "HISTORICAL",
             "hypothetical": "HYPOTHETICAL", "family": "FAMILY", "pseudo": "PSEUDO", "terminate": "TERMINATE"}
_ASSERTIONS = {"NEGATED_EXISTENCE": RAW_NEGATIVE, "POSSIBLE_EXISTENCE": RAW_UNCERTAIN, "HYPOTHETICAL": None}
_RANK = {RAW_BLANK: 0, RAW_NEGATIVE: 1, RAW_UNCERTAIN: 2, RAW_POSITIVE: 3}  # which mention state wins


def import_medspacy():
    """Import spaCy and medspaCy with medspaCy's (loguru) debug logging silenced; a one-line error if absent."""
    try:
        from loguru import logger
    except ImportError:
        logger = None
    # spaCy warns (W036) about a matcher without patterns: ltv's rules may leave medspaCy's token matcher empty.
    warnings.filterwarnings("ignore", message=r"\[W036\]", category=UserWarning)
    if logger is not None:  # PyRuSH and medspaCy log every rule load at DEBUG through loguru
        for name in ("PyRuSH", "medspacy", "quickumls", "PyFastNER"):
            logger.disable(name)
    try:
        import medspacy  # noqa: F401  (registers the pipeline factories)
        import spacy
        from medspacy.context import ConTextRule
        from medspacy.target_matcher import TargetRule
    except ImportError as exc:
        raise LtvError(f"label-reports needs medspaCy ({exc.name or exc} is not installed): {INSTALL}") from None
    return spacy, ConTextRule, TargetRule


def versions() -> dict[str, str]:
    """Versions of the NLP stack, recorded with the labels."""
    spacy, _, _ = import_medspacy()
    import medspacy
    return {"spacy": spacy.__version__, "medspacy": medspacy.__version__}


class ReportLabeller:
    """Labels report texts for ``classes`` (a dataset's class names, canonical findings)."""

    def __init__(self, rules: Rules, classes: list[str]):
        spacy, ConTextRule, TargetRule = import_medspacy()
        from spacy.language import Language
        self.classes = list(classes)
        check_classes(rules, self.classes)
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer", config={"punct_chars": [".", "!", "?", ";", "\n", "\n\n"]})
        # Overlapping matches keep the longest ("pericardial effusion" over "effusion"); a phrase that
        # names several findings ("hydropneumothorax") is one target whose label lists them.
        targets = nlp.add_pipe("medspacy_target_matcher", config={"result_type": "group", "prune": True})
        tokenize = lambda word: [t.lower_ for t in nlp.make_doc(word)]  # noqa: E731
        # Plain phrases go to spaCy's PhraseMatcher (on lower-cased tokens), several times faster than
        # token patterns; only phrases with a "*" gap need the token Matcher.
        pattern = lambda phrase: phrase_pattern(phrase, tokenize) if "*" in phrase.split() else None  # noqa: E731
        wanted = set(self.classes)
        grouped: dict[tuple[str, bool], list[str]] = {}
        for m in rules.mentions:
            if m.finding in wanted and m.finding not in grouped.setdefault((m.phrase, m.hedged), []):
                grouped[(m.phrase, m.hedged)].append(m.finding)
        if NO_FINDING in wanted:
            for phrase in rules.abnormal:
                grouped.setdefault((phrase, False), []).append(ABNORMAL)
        targets.add([TargetRule(phrase, SEPARATOR.join(findings), pattern=pattern(phrase),
                                metadata={"hedged": hedged})
                     for (phrase, hedged), findings in grouped.items()])
        context = nlp.add_pipe("medspacy_context", config={"rules": None, "input_span_type": "group"})
        dropped = set(rules.dropped)
        defaults = [r for r in ConTextRule.from_json(context.DEFAULT_RULES_FILEPATH) if r.literal.lower() not in dropped]
        context.add(defaults + [ConTextRule(m.phrase, _CATEGORY[m.kind], pattern=pattern(m.phrase),
                                            direction=m.direction.upper(), max_scope=m.max_scope)
                                for m in rules.modifiers])
        # Last step: the codes, then the spans and ConText objects dropped, so a Doc carries only its codes back
        # from spaCy's worker processes (nlp.pipe(n_process=...)); ConText's objects do not serialise.
        self.codes_pipe = f"ltv_report_codes_{id(self)}"
        Language.component(self.codes_pipe, func=self._annotate)
        nlp.add_pipe(self.codes_pipe)
        self.nlp = nlp
        self.column = {name: j for j, name in enumerate(self.classes)}
        ignored = set(rules.no_finding_ignores)
        self.blocks_no_finding = np.array([c != NO_FINDING and c not in ignored for c in self.classes])
        self.no_finding = self.column.get(NO_FINDING)

    def label(self, texts: Iterable[str], batch_size: int = 256, n_process: int = 1) -> np.ndarray:
        """Raw codes (RAW_*) [len(texts), len(classes)] int8 of the given texts."""
        rows = [np.array(doc.user_data["ltv_codes"], dtype=np.int8)
                for doc in self.nlp.pipe(texts, batch_size=batch_size, n_process=n_process)]
        return np.stack(rows) if rows else np.zeros((0, len(self.classes)), dtype=np.int8)

    def _annotate(self, doc):
        codes = self._codes(doc)
        doc.spans.clear()
        doc.user_data.clear()
        doc.user_data["ltv_codes"] = codes.tolist()
        return doc

    def _codes(self, doc) -> np.ndarray:
        codes = np.full(len(self.classes), RAW_BLANK, dtype=np.int8)
        abnormal = False
        for span in doc.spans["medspacy_spans"]:
            state = mention_state(span)
            if state is None:
                continue
            for label in span.label_.split(SEPARATOR):
                if label == ABNORMAL:
                    abnormal = abnormal or state == RAW_POSITIVE
                    continue
                j = self.column[label]
                if _RANK[state] > _RANK[int(codes[j])]:
                    codes[j] = state
        if self.no_finding is not None:
            found = np.isin(codes, (RAW_POSITIVE, RAW_UNCERTAIN)) & self.blocks_no_finding
            codes[self.no_finding] = RAW_BLANK if found.any() or abnormal else RAW_POSITIVE
        return codes


def mention_state(span) -> int | None:
    """One mention's raw code from its ConText modifiers (None: ignored, a family member's or hypothetical).

    When both a negation and a hedge reach a mention, the one nearer to it
    decides ("probable cardiomegaly, without evidence of failure": failure
    negated; "no effusion, possible pneumonia": pneumonia uncertain).
    """
    if span._.is_family:
        return None
    nearest, distance = None, None
    for modifier in span._.modifiers:
        if modifier.category not in _ASSERTIONS:
            continue
        start, end = modifier.modifier_span
        gap = start - span.end if start >= span.end else span.start - end
        if distance is None or gap < distance:
            nearest, distance = modifier.category, gap
    if nearest is not None:
        return _ASSERTIONS[nearest]  # a hypothetical mention ("if there is concern for fracture") says nothing
    return RAW_UNCERTAIN if (span._.target_rule.metadata or {}).get("hedged") else RAW_POSITIVE
