"""The demo's patients: true findings, what the radiologist wrote, what two NLP labellers read.

Label noise in MIMIC-CXR has two layers, and both are simulated here because
the learning-to-vote method exploits exactly that structure:

1. The *report*: the radiologist hedges on faint findings ("possible
   pneumonia"), forgets to mention some, over-calls a few and explicitly
   negates others ("no pneumothorax"). Both labellers read the same report,
   so these errors are shared, i.e. their errors are correlated.
2. The *reading*: NegBio and CheXpert each mis-parse some mentions
   (a missed negation, a hedge read as positive, a mention not found). These
   errors are independent, so the two labellers still disagree.

Truth is a multivariate probit model: three latent factors (heart failure,
infection, acuity / ICU stay) load on the findings, so cardiomegaly, edema and
effusion go together, pneumonia and consolidation go together, and support
devices come with portable AP films. Thresholds are chosen so that each
finding's marginal rate is exactly its ``prevalence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ltvcli.findings import FINDINGS

#: What a report says about one finding, and the CSV code a perfect reader would give it.
POSITIVE, HEDGED, NEGATED, ABSENT = 0, 1, 2, 3
#: Raw labeller codes written to the CSVs; NaN is a blank cell (not mentioned).
CODE_VALUES = np.array([1.0, -1.0, 0.0, np.nan])

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
#: Findings that make "No Finding" false (CheXpert's rule: everything except Support Devices).
PATHOLOGIES = tuple(f for f in FINDINGS if f not in (NO_FINDING, SUPPORT_DEVICES))
#: Findings drawn on one side of the chest (or both); the others have no side.
SIDED = ("Atelectasis", "Consolidation", "Fracture", "Lung Lesion", "Lung Opacity", "Pleural Effusion",
         "Pleural Other", "Pneumonia", "Pneumothorax")
BILATERAL_OK = ("Atelectasis", "Lung Opacity", "Pleural Effusion", "Pneumonia")
DEVICES = ("endotracheal tube", "central venous catheter", "nasogastric tube", "ECG leads")


@dataclass(frozen=True)
class FindingModel:
    """How one finding occurs, and how reports and labellers treat it.

    ``up_ratio`` is the labellers' uncertain/positive ratio (the paper's
    Table 1 where it gives one: Atelectasis 0.22, Consolidation 0.3-0.4,
    Edema 0.48, Pneumonia 1.1-1.2, Pneumothorax 0.11); ``hedge_true`` is the
    share of hedged mentions that are truly present (high for pneumonia,
    which is why the paper's u1 label sets beat u0 there).
    """

    prevalence: float
    loadings: tuple[float, float, float]  # heart failure, infection, acuity
    up_ratio: float
    hedge_true: float = 0.7
    negated: float = 0.2  # P(report says "no X" | X absent)
    missed: float = 0.05  # P(report does not mention X | X present)


# Prevalences loosely follow MIMIC-CXR's CheXpert labels, with rare findings raised to at least 7 %
# so that a test split of a few dozen images still holds positives of every finding.
MODELS: dict[str, FindingModel] = {
    "Atelectasis": FindingModel(0.20, (0.1, 0.3, 0.5), 0.225, negated=0.1),
    "Cardiomegaly": FindingModel(0.18, (0.8, 0.0, 0.1), 0.15, negated=0.35),
    "Consolidation": FindingModel(0.08, (0.0, 0.75, 0.3), 0.35, negated=0.4),
    "Edema": FindingModel(0.13, (0.6, 0.0, 0.45), 0.48, negated=0.35),
    "Enlarged Cardiomediastinum": FindingModel(0.08, (0.6, 0.0, 0.2), 0.8, hedge_true=0.5, negated=0.3),
    "Fracture": FindingModel(0.07, (0.0, 0.0, 0.2), 0.1, negated=0.1, missed=0.25),
    "Lung Lesion": FindingModel(0.07, (0.0, 0.2, 0.0), 0.2, negated=0.1, missed=0.1),
    "Lung Opacity": FindingModel(0.15, (0.2, 0.6, 0.4), 0.05, negated=0.15),
    "Pleural Effusion": FindingModel(0.22, (0.55, 0.2, 0.4), 0.15, negated=0.6),
    "Pleural Other": FindingModel(0.07, (0.0, 0.1, 0.1), 0.4, hedge_true=0.6, negated=0.05, missed=0.1),
    "Pneumonia": FindingModel(0.10, (0.0, 0.8, 0.25), 1.15, hedge_true=0.75, negated=0.3),
    "Pneumothorax": FindingModel(0.07, (0.0, 0.0, 0.45), 0.11, negated=0.6),
    "Support Devices": FindingModel(0.28, (0.0, 0.0, 0.85), 0.02, negated=0.02, missed=0.08),
}
#: P(report over-calls X | X absent): a false positive shared by both labellers.
OVERCALL = 0.01

#: Reading confusion per labeller: rows = report state (POSITIVE, HEDGED, NEGATED, ABSENT),
#: columns = P(code 1.0, -1.0, 0.0, blank). NegBio misses negations a little more often.
READERS: dict[str, np.ndarray] = {
    "negbio": np.array([
        [0.93, 0.03, 0.00, 0.04],
        [0.10, 0.85, 0.03, 0.02],
        [0.05, 0.005, 0.905, 0.04],
        [0.010, 0.000, 0.005, 0.985],
    ]),
    "chexpert": np.array([
        [0.95, 0.03, 0.00, 0.02],
        [0.06, 0.88, 0.04, 0.02],
        [0.03, 0.005, 0.945, 0.02],
        [0.007, 0.000, 0.003, 0.990],
    ]),
}


@dataclass(frozen=True)
class StudyTruth:
    """One study as the image and report generators need it (findings by name)."""

    severity: dict[str, float]  # present findings only, 0.3 (faint) .. 1 (obvious)
    side: dict[str, str]  # sided present findings: "right", "left" or "both" (the patient's side)
    states: dict[str, int]  # report state of every finding except No Finding
    devices: tuple[str, ...]
    portable: bool  # an ICU / bedside film: AP view


@dataclass
class Cohort:
    """Arrays over studies [S, 14] in FINDINGS order, plus the labellers' codes."""

    present: np.ndarray  # bool
    severity: np.ndarray  # float, 0 where absent
    side: np.ndarray  # int8: 0 right, 1 left, 2 both, -1 no side
    devices: np.ndarray  # bool [S, len(DEVICES)]
    portable: np.ndarray  # bool [S]
    states: np.ndarray  # int8 report states
    codes: dict[str, np.ndarray]  # labeller -> float [S, 14]: 1.0 / -1.0 / 0.0 / NaN

    def __len__(self) -> int:
        return len(self.portable)

    def study(self, i: int) -> StudyTruth:
        sides = ("right", "left", "both")
        return StudyTruth(
            severity={f: float(self.severity[i, c]) for c, f in enumerate(FINDINGS) if self.present[i, c]},
            side={f: sides[self.side[i, c]] for c, f in enumerate(FINDINGS) if self.present[i, c] and f in SIDED},
            states={f: int(self.states[i, c]) for c, f in enumerate(FINDINGS) if f != NO_FINDING},
            devices=tuple(d for d, on in zip(DEVICES, self.devices[i]) if on),
            portable=bool(self.portable[i]),
        )


def draw_cohort(n: int, rng: np.random.Generator) -> Cohort:
    """Simulate ``n`` studies: truth, report states, and both labellers' codes."""
    present, acuity = _draw_truth(n, rng)
    severity = np.where(present, 0.3 + 0.7 * rng.beta(2.0, 1.5, present.shape), 0.0)
    side = _draw_sides(present, rng)
    devices = _draw_devices(present[:, FINDINGS.index(SUPPORT_DEVICES)], rng)
    states = _draw_report_states(present, severity, rng)
    codes = {name: _read(states, confusion, rng) for name, confusion in READERS.items()}
    return Cohort(present, severity, side, devices, acuity > 0.4, states, codes)


def _draw_truth(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Correlated findings with exact marginal prevalences (multivariate probit)."""
    factors = rng.standard_normal((n, 3))
    present = np.zeros((n, len(FINDINGS)), dtype=bool)
    for c, finding in enumerate(FINDINGS):
        if finding == NO_FINDING:
            continue
        model = MODELS[finding]
        load = np.array(model.loadings)
        latent = factors @ load + np.sqrt(1.0 - load @ load) * rng.standard_normal(n)
        present[:, c] = latent > NormalDist().inv_cdf(1.0 - model.prevalence)
    # CheXpert's hierarchy: consolidation and pneumonia are lung opacities, and most reports say so.
    opacity = FINDINGS.index("Lung Opacity")
    children = present[:, [FINDINGS.index("Consolidation"), FINDINGS.index("Pneumonia")]].any(axis=1)
    present[:, opacity] |= children & (rng.random(n) < 0.6)
    present[:, FINDINGS.index(NO_FINDING)] = ~present[:, [FINDINGS.index(f) for f in PATHOLOGIES]].any(axis=1)
    return present, factors[:, 2]


def _draw_sides(present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = np.full(present.shape, -1, dtype=np.int8)
    for finding in SIDED:
        c = FINDINGS.index(finding)
        p = (0.45, 0.35, 0.20) if finding in BILATERAL_OK else (0.55, 0.45, 0.0)
        side[:, c] = np.where(present[:, c], rng.choice(3, size=len(present), p=p), -1)
    return side


def _draw_devices(has_devices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which devices a Support Devices study shows; at least one."""
    devices = rng.random((len(has_devices), len(DEVICES))) < np.array([0.5, 0.55, 0.35, 0.5])
    none = ~devices.any(axis=1)
    devices[none, rng.integers(0, len(DEVICES), int(none.sum()))] = True
    return devices & has_devices[:, None]


def _draw_report_states(present: np.ndarray, severity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the radiologist wrote about each finding; faint findings are hedged more often."""
    states = np.full(present.shape, ABSENT, dtype=np.int8)
    for c, finding in enumerate(FINDINGS):
        if finding == NO_FINDING:
            continue
        model = MODELS[finding]
        hedge_pos, hedge_neg = _hedge_rates(model)
        faintness = 0.5 + 0.5 * (1.0 - severity[:, c]) / 0.3  # 0.5 .. 1.67, mean 1 (E[severity] = 0.7)
        u = rng.random(len(present))
        p_hedge = hedge_pos * faintness
        pos_state = np.where(u < p_hedge, HEDGED, np.where(u < p_hedge + model.missed, ABSENT, POSITIVE))
        neg_state = np.select(
            [u < hedge_neg, u < hedge_neg + OVERCALL, u < hedge_neg + OVERCALL + model.negated],
            [HEDGED, POSITIVE, NEGATED], ABSENT)
        states[:, c] = np.where(present[:, c], pos_state, neg_state)
    return states


def _hedge_rates(model: FindingModel) -> tuple[float, float]:
    """P(hedged | present) and P(hedged | absent) that give the target uncertain/positive ratio.

    The labellers' expected positive and uncertain rates are linear in the two
    hedge rates h and f (through the report states and the average reading
    confusion), so two linear equations fix them: uncertain = ratio x positive,
    and a share ``hedge_true`` of hedged mentions is on truly present findings.
    """
    p, q = model.prevalence, model.hedge_true
    reading = np.mean(list(READERS.values()), axis=0)

    def rate(code: int) -> tuple[float, float, float]:
        """Constant, h and f coefficients of P(labeller writes ``code``)."""
        col = reading[:, code]
        constant = p * ((1 - model.missed) * col[POSITIVE] + model.missed * col[ABSENT]) + (1 - p) * (
            OVERCALL * col[POSITIVE] + model.negated * col[NEGATED] + (1 - OVERCALL - model.negated) * col[ABSENT])
        return constant, p * (col[HEDGED] - col[POSITIVE]), (1 - p) * (col[HEDGED] - col[ABSENT])

    (p0, ph, pf), (u0, uh, uf) = rate(0), rate(1)
    r = model.up_ratio
    system = np.array([[uh - r * ph, uf - r * pf], [p * (1 - q), -q * (1 - p)]])
    h, f = np.linalg.solve(system, [r * p0 - u0, 0.0])
    return float(np.clip(h, 0.0, 0.6)), float(np.clip(f, 0.0, 0.3))


def _read(states: np.ndarray, confusion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One labeller's CSV codes for every study; No Finding follows CheXpert's rule."""
    cumulative = np.cumsum(confusion, axis=1)[states]  # [S, C, 4]
    outcome = (rng.random(states.shape)[..., None] >= cumulative).sum(axis=-1).clip(max=3)
    codes = CODE_VALUES[outcome]
    pathology = [FINDINGS.index(f) for f in PATHOLOGIES]
    mentioned = np.isin(codes[:, pathology], (1.0, -1.0)).any(axis=1)
    codes[:, FINDINGS.index(NO_FINDING)] = np.where(mentioned, np.nan, 1.0)
    return codes
