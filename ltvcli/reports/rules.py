"""The report labeller's vocabulary: which phrases mention which finding, and what modifies a mention.

The rules are one CSV table (``kind, finding, phrase, option``); ltv ships
``ltvcli/reports/data/rules.csv`` and ``--rules FILE`` adds the rows of
another table of the same shape (``docs/label-reports.md`` documents it):

* ``mention``: ``phrase`` names ``finding`` (``option`` ``uncertain``: the
  phrase itself is a hedge, e.g. "blunting" for an effusion);
* ``negated``, ``uncertain``, ``historical``, ``hypothetical``, ``family``:
  a ConText modifier phrase; ``option`` is its direction, ``forward``
  (default: it modifies the mentions after it in its sentence), ``backward``
  or ``bidirectional``, optionally with ``:N``, the number of words it reaches
  ("versus" is ``bidirectional:3``: "opacity, atelectasis versus scarring"
  hedges atelectasis, not the opacity);
* ``pseudo``: a phrase that contains a modifier but is none ("no change");
* ``terminate``: a phrase that ends a modifier's scope ("but", "however");
* ``abnormal``: an abnormality outside the findings ("granuloma"); a
  positive mention of one keeps No Finding off;
* ``no-finding-ignores``: a finding whose positive mention still allows No
  Finding (Support Devices, as in CheXpert);
* ``drop``: a phrase of medspaCy's own ConText rules not to use (its
  backward ": no" reads "FINDINGS: No effusion" as "FINDINGS" negated).

A phrase is matched on lower-cased words; ``*`` stands for up to three
words that are not a negation or punctuation ("heart * enlarged" matches
"heart is mildly enlarged", not "heart is not enlarged"). Mentions are
the medspaCy TargetMatcher's targets; the modifier rows are added to
medspaCy's own ConText rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ltvcli import csvio
from ltvcli.errors import LtvError, OptionError
from ltvcli.findings import canonical, is_finding

COLUMNS = ("kind", "finding", "phrase", "option")
MODIFIER_KINDS = ("negated", "uncertain", "historical", "hypothetical", "family")
KINDS = ("mention",) + MODIFIER_KINDS + ("pseudo", "terminate", "abnormal", "no-finding-ignores", "drop")
DIRECTIONS = ("forward", "backward", "bidirectional")
NO_FINDING = "No Finding"
GAP_WORDS = 3  # words a "*" in a phrase stands for
NEGATION_WORDS = ("no", "not", "without", "nor", "never", "n't")


@dataclass(frozen=True)
class Mention:
    finding: str
    phrase: str
    hedged: bool = False  # the phrase itself is uncertain ("blunting")


@dataclass(frozen=True)
class Modifier:
    kind: str  # one of MODIFIER_KINDS, "pseudo" or "terminate"
    phrase: str
    direction: str = "forward"
    max_scope: int | None = None  # words the modifier reaches (None: to the sentence end or a terminator)


@dataclass
class Rules:
    """The parsed rule table(s): mentions, modifiers, other abnormalities, No Finding's exceptions."""

    mentions: list[Mention] = field(default_factory=list)
    modifiers: list[Modifier] = field(default_factory=list)
    abnormal: list[str] = field(default_factory=list)
    no_finding_ignores: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # medspaCy ConText default phrases not used
    sources: list[str] = field(default_factory=list)
    digest: str = ""

    @property
    def findings(self) -> list[str]:
        """Findings with at least one mention phrase, in first-seen order."""
        return list(dict.fromkeys(m.finding for m in self.mentions))


def default_rules() -> Path:
    """The rule table shipped with ltv."""
    return Path(str(resources.files("ltvcli.reports").joinpath("data", "rules.csv")))


def finding_name(name: str) -> str:
    """A finding's name as rules and datasets compare it: canonical for the 14 findings, else stripped."""
    return canonical(name) if is_finding(name) else name.strip()


def check_classes(rules: Rules, classes: list[str]) -> None:
    """Every class but No Finding needs mention phrases."""
    missing = [c for c in classes if c != NO_FINDING and c not in rules.findings]
    if missing:
        raise LtvError(f"no mention phrases for class(es) {', '.join(missing)}: add 'mention' rows in a `rules` "
                       "file (docs/label-reports.md)")


def load_rules(extra: list[Path] | None = None, *, replace: bool = False) -> Rules:
    """Read the shipped table (unless ``replace``) and then each file of ``extra``, rows added in order."""
    paths = ([] if replace else [default_rules()]) + [Path(p) for p in (extra or [])]
    if not paths:
        raise OptionError("replace_rules", "needs at least one `rules` file (it leaves out ltv's own rules)")
    rules = Rules()
    digest = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            raise LtvError(f"{path}: no such rules file")
        digest.update(path.read_bytes())
        _add_table(rules, path)
        rules.sources.append(str(path))
    if not rules.mentions:
        raise LtvError(f"{paths[-1]}: the rules name no mention phrase (rows of kind 'mention')")
    rules.digest = digest.hexdigest()
    return rules


def _add_table(rules: Rules, path: Path) -> None:
    frame = csvio.read_table(path, required=COLUMNS, what="rules CSV")
    for position, row in enumerate(frame[list(COLUMNS)].itertuples(index=False)):
        kind, finding, phrase, option = (cell.strip() for cell in row)
        kind, option, phrase = kind.lower(), option.lower(), " ".join(phrase.lower().split())
        where = csvio.where(path, frame, position)
        if kind not in KINDS:
            raise LtvError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind == "no-finding-ignores":
            if not finding:
                raise LtvError(f"{where}: a 'no-finding-ignores' row names a finding")
            rules.no_finding_ignores.append(finding_name(finding))
            continue
        if not phrase:
            raise LtvError(f"{where}: empty phrase")
        if phrase.replace("*", "").strip() == "" or phrase.startswith("*") or phrase.endswith("*"):
            raise LtvError(f"{where}: phrase {phrase!r}: '*' stands between words, not alone or at an end")
        if kind == "mention":
            if not finding:
                raise LtvError(f"{where}: a 'mention' row names its finding")
            if finding_name(finding) == NO_FINDING:
                raise LtvError(f"{where}: No Finding has no mention phrases; it follows from the other findings")
            if option not in ("", "uncertain"):
                raise LtvError(f"{where}: option {option!r} of a mention is '' or 'uncertain'")
            rules.mentions.append(Mention(finding_name(finding), phrase, option == "uncertain"))
        elif kind == "abnormal":
            rules.abnormal.append(phrase)
        elif kind == "drop":
            rules.dropped.append(phrase)
        elif kind in ("pseudo", "terminate"):
            rules.modifiers.append(Modifier(kind, phrase, kind))
        else:
            direction, _, scope = (option or "forward").partition(":")
            if direction not in DIRECTIONS:
                raise LtvError(f"{where}: direction {option!r} is not one of {', '.join(DIRECTIONS)} "
                               "(optionally with ':WORDS', e.g. bidirectional:3)")
            if scope and not (scope.isdigit() and int(scope) > 0):
                raise LtvError(f"{where}: option {option!r}: the scope after ':' is a number of words (1 or more)")
            rules.modifiers.append(Modifier(kind, phrase, direction, int(scope) if scope else None))


def phrase_pattern(phrase: str, tokenize) -> list[dict]:
    """A spaCy Matcher pattern for ``phrase``: lower-cased words, ``*`` = up to GAP_WORDS other words.

    ``tokenize`` splits a word as the pipeline's tokenizer splits text
    ("port-a-cath" is five tokens), so a rule matches what the text holds.
    """
    pattern: list[dict] = []
    for word in phrase.split():
        if word == "*":
            pattern.append({"LOWER": {"NOT_IN": list(NEGATION_WORDS)}, "IS_PUNCT": False, "IS_SPACE": False,
                            "OP": f"{{0,{GAP_WORDS}}}"})
        else:
            pattern.extend({"LOWER": token} for token in tokenize(word))
    return pattern
