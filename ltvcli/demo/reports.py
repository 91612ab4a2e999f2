"""Free-text radiology reports for the demo studies, in MIMIC-CXR's layout.

The text is written from the report *states* of :mod:`ltvcli.demo.cohort`
(what the radiologist said), not from the truth, so the report and the two
labellers' CSV rows tell the same story: a hedged finding reads "possible
left pleural effusion", a negated one "no pneumothorax", a missed one is not
there at all. ``___`` stands for a de-identified span, as in MIMIC-CXR.
"""

from __future__ import annotations

import numpy as np

from ltvcli.demo.cohort import HEDGED, NEGATED, POSITIVE, StudyTruth

#: Per finding: the positive sentence ({deg} = degree, {side} = side) and the noun for hedges and negations.
PHRASES: dict[str, tuple[str, str]] = {
    "Atelectasis": ("{Deg} {side} basilar atelectasis.", "atelectasis"),
    "Cardiomegaly": ("The heart is {deg}ly enlarged.", "cardiomegaly"),
    "Consolidation": ("Consolidation in the {side} lower lobe.", "focal consolidation"),
    "Edema": ("Perihilar haziness and septal lines consistent with {deg} pulmonary edema.", "pulmonary edema"),
    "Enlarged Cardiomediastinum": ("The cardiomediastinal silhouette is widened.", "mediastinal widening"),
    "Fracture": ("Healing fracture of a {side} lateral rib.", "acute rib fracture"),
    "Lung Lesion": ("A well-circumscribed nodule projects over the {side} mid lung.", "pulmonary nodule"),
    "Lung Opacity": ("Hazy opacity in the {side} mid lung.", "focal opacity"),
    "Pleural Effusion": ("{Deg} {side} pleural effusion.", "pleural effusion"),
    "Pleural Other": ("{Side} lateral pleural thickening.", "pleural thickening"),
    "Pneumonia": ("Patchy opacities in the {side} lower lobe concerning for pneumonia.", "pneumonia"),
    "Pneumothorax": ("{Deg} {side} apical pneumothorax.", "pneumothorax"),
    "Support Devices": ("{devices} in standard position.", "support devices"),
}
HEDGES = ("Possible {noun}.", "Cannot exclude {noun}.", "Findings may represent {noun}.",
          "Equivocal {noun}.")
NEGATIONS = ("No {noun}.", "No evidence of {noun}.", "There is no {noun}.")
INDICATIONS = ("cough", "shortness of breath", "fever", "chest pain", "evaluate for pneumonia",
               "line placement", "preoperative evaluation", "hypoxia")


def write_report(study: StudyTruth, examination: str, rng: np.random.Generator) -> str:
    """The report text of one study (FINDINGS and IMPRESSION sections)."""
    positive, hedged, negated = [], [], []
    for finding, state in study.states.items():
        if state == POSITIVE:
            positive.append(_positive(finding, study))
        elif state == HEDGED:
            hedged.append(rng.choice(HEDGES).format(noun=PHRASES[finding][1]))
        elif state == NEGATED:
            negated.append(rng.choice(NEGATIONS).format(noun=PHRASES[finding][1]))
    findings = " ".join(positive + hedged + negated) or "The lungs are clear."
    pathology = [s for s in positive + hedged if not s.endswith("in standard position.")]
    impression = " ".join(pathology) if pathology else "No acute cardiopulmonary process."
    return (
        "                                 FINAL REPORT\n"
        f" EXAMINATION:  {examination}\n \n"
        f" INDICATION:  ___ with {rng.choice(INDICATIONS)}.\n \n"
        " COMPARISON:  None.\n \n"
        f" FINDINGS:  \n \n {findings}\n \n"
        f" IMPRESSION:  \n \n {impression}\n"
    )


def _positive(finding: str, study: StudyTruth) -> str:
    """The positive sentence, with degree from the severity and the side where the finding is."""
    severity = study.severity.get(finding, 0.6)  # an over-called finding is written as moderate
    degree = "mild" if severity < 0.5 else "moderate" if severity < 0.8 else "severe"
    if finding in ("Pleural Effusion", "Pneumothorax"):
        degree = {"mild": "small", "severe": "large"}.get(degree, degree)
    side = study.side.get(finding, "right")
    side = "bilateral" if side == "both" else side
    devices = ", ".join(study.devices) or "monitoring device"
    return PHRASES[finding][0].format(deg=degree, Deg=degree.capitalize(), side=side, Side=side.capitalize(),
                                      devices=devices[0].upper() + devices[1:])
