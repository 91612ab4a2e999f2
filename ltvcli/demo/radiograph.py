"""Synthetic chest radiographs whose findings are drawn into the pixels.

Each image is a sum of smooth shapes on a normalised grid (``u`` from -1 at
the image's left edge to +1 at its right, ``v`` from 0 at the top to 1 at the
bottom): body, two lung fields, mediastinum, heart, posterior ribs, vascular
texture, then one drawing per finding, then exposure, gamma and noise. As on
a real PA film the patient's right is on the image's left.

Findings are drawn to be learnable by a small CNN at 64 px and to differ
from each other in shape and place, so that label noise, not the images,
limits what a model can learn: a wider heart (Cardiomegaly), a wider upper
mediastinum (Enlarged Cardiomediastinum), a bright basal meniscus (Pleural
Effusion), a dark featureless apical rim with a pleural line (Pneumothorax),
bright tubes and rings (Support Devices), a dense sharp lobar patch
(Consolidation), clustered small blobs (Pneumonia), a soft haze (Lung
Opacity), perihilar bat-wing haze with septal lines (Edema), a plate-like band
over a raised hemidiaphragm (Atelectasis), a round nodule (Lung Lesion), a
lateral pleural rim (Pleural Other) and a broken rib with callus (Fracture).
Faint findings (low severity) are drawn fainter.

Everything is vectorised NumPy on float32; an image at 384x320 takes a few
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from ltvcli.demo.cohort import StudyTruth

LUNG_CENTER_U, LUNG_CENTER_V, LUNG_HALF_WIDTH, LUNG_HALF_HEIGHT = 0.40, 0.47, 0.28, 0.33
RIB_PERIOD = 1 / 9  # nine posterior ribs over the lung height


def draw_radiograph(truth: StudyTruth, frontal: bool, shape: tuple[int, int], study_seed: Sequence[int],
                    image_seed: Sequence[int]) -> np.ndarray:
    """One image of a study as float32 [rows, cols] in 0..1 (brighter = denser).

    ``study_seed`` fixes the patient's anatomy and where findings sit, so all
    images of a study show the same nodule in the same place; ``image_seed``
    varies positioning, exposure and noise between images.
    """
    anatomy = np.random.default_rng(study_seed)
    exposure = np.random.default_rng(image_seed)
    u, v = _grid(shape, exposure)
    density = (_frontal if frontal else _lateral)(u, v, truth, anatomy)
    density = np.clip(density, 0.0, 1.0) ** np.float32(exposure.uniform(0.8, 1.25))
    density += _smooth_noise(shape, exposure, cells=(6, 5)) * np.float32(0.04)
    density += exposure.standard_normal(shape).astype(np.float32) * np.float32(0.015)
    return np.clip(density, 0.0, 1.0)


# ---------------------------------------------------------------- geometry helpers
def _grid(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates with a random patient shift and scale (broadcastable [rows,1], [1,cols])."""
    rows, cols = shape
    scale = rng.uniform(0.94, 1.06)
    u = ((np.arange(cols, dtype=np.float32) + 0.5) / cols * 2 - 1 - rng.normal(0, 0.02)) / scale
    v = ((np.arange(rows, dtype=np.float32) + 0.5) / rows - 0.5 - rng.normal(0, 0.015)) / scale + 0.5
    return u[None, :].astype(np.float32), v[:, None].astype(np.float32)


def _sigmoid(x: np.ndarray, edge: float) -> np.ndarray:
    """A soft step from 0 to 1 over about ``edge`` (a blurred boundary)."""
    return 0.5 + 0.5 * np.tanh(x / np.float32(2 * edge))


def _radius(u, v, cu, cv, au, av, power) -> np.ndarray:
    """Super-ellipse 'radius': 1 on the outline, below 1 inside."""
    return np.abs((u - cu) / au) ** power + np.abs((v - cv) / av) ** power


def _ellipse(u, v, cu, cv, au, av, edge=0.015, power=2.0) -> np.ndarray:
    """Soft super-ellipse mask: 1 inside, 0 outside."""
    return _sigmoid(1.0 - _radius(u, v, cu, cv, au, av, power), edge * 4)


def _blob(u, v, cu, cv, su, sv) -> np.ndarray:
    """Gaussian blob with peak 1."""
    return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


def _band(u, v, f, half_width, v_from, v_to) -> np.ndarray:
    """A tube along the curve u = f(v) between two heights (a line, catheter or tube)."""
    return _sigmoid(half_width - np.abs(u - f(v)), 0.003) * _sigmoid(v - v_from, 0.004) * _sigmoid(v_to - v, 0.004)


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cells: tuple[int, int]) -> np.ndarray:
    """Zero-mean, unit-variance noise that varies over ``cells`` (rows, cols) blobs."""
    coarse = rng.standard_normal(cells).astype(np.float32)
    image = Image.fromarray(coarse).resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


# ---------------------------------------------------------------- frontal view
@dataclass(frozen=True)
class Lung:
    """One lung field: its mask (where not hidden by the heart) and super-ellipse geometry."""

    side: str  # the patient's side: "right" is on the image's left
    sign: float  # -1 for the right lung, +1 for the left: multiplying by it points laterally
    cu: float  # centre
    cv: float
    au: float  # half width and half height
    av: float
    mask: np.ndarray

    @property
    def bottom(self) -> float:
        return self.cv + self.av


def _lungs(u, v, truth: StudyTruth, anatomy: np.random.Generator, visible: np.ndarray) -> list[Lung]:
    """The right and left lung fields; atelectasis raises its side's hemidiaphragm (volume loss)."""
    lungs = []
    for side, sign in (("right", -1.0), ("left", 1.0)):
        av = LUNG_HALF_HEIGHT * anatomy.uniform(0.95, 1.05)
        if _on_side(truth, "Atelectasis", side):
            av -= 0.05 * truth.severity["Atelectasis"]
        cu = sign * LUNG_CENTER_U * anatomy.uniform(0.97, 1.03)
        cv = LUNG_CENTER_V + (LUNG_HALF_HEIGHT - av) * 0.5
        au = LUNG_HALF_WIDTH * anatomy.uniform(0.94, 1.06)
        mask = _ellipse(u, v, cu, cv, au, av, power=2.4) * visible
        lungs.append(Lung(side, sign, cu, cv, au, av, mask))
    return lungs


def _on_side(truth: StudyTruth, finding: str, side: str) -> bool:
    return finding in truth.severity and truth.side.get(finding) in (side, "both")


def _frontal(u, v, truth: StudyTruth, anatomy: np.random.Generator) -> np.ndarray:
    sev = truth.severity
    body = np.maximum(_ellipse(u, v, 0.0, 0.62, 0.92, 0.62, power=2.2), _ellipse(u, v, 0.0, 0.02, 0.2, 0.16))
    heart_width = anatomy.normal(0.25, 0.015) + (0.03 if truth.portable else 0.0)  # AP films magnify the heart
    if "Cardiomegaly" in sev:
        heart_width += 0.08 + 0.1 * sev["Cardiomegaly"]
    heart = _ellipse(u, v, 0.08, 0.70, heart_width, 0.15, power=2.0)
    mediastinum_width = 0.11 + (0.05 + 0.08 * sev["Enlarged Cardiomediastinum"]
                                if "Enlarged Cardiomediastinum" in sev else 0.0)
    mediastinum = _sigmoid(mediastinum_width - np.abs(u), 0.01) * _sigmoid(v - 0.1, 0.02) * _sigmoid(0.66 - v, 0.02)
    soft_tissue = np.maximum(heart, mediastinum)
    lungs = _lungs(u, v, truth, anatomy, 1 - soft_tissue)  # the heart and mediastinum hide the lung behind them
    lung = np.maximum(lungs[0].mask, lungs[1].mask)

    ptx, pleural_line = _pneumothorax(u, v, truth, lungs)
    texture = (_smooth_noise(lung.shape, anatomy, cells=(28, 22)) * 0.5
               + _blob(u, v, -0.2, 0.47, 0.06, 0.09) + _blob(u, v, 0.2, 0.47, 0.06, 0.09)) * lung * (1 - ptx)
    density = 0.08 + 0.44 * body - 0.34 * lung + 0.04 * texture
    density += 0.10 * _sigmoid(0.06 - np.abs(u), 0.01) * body  # spine
    density += 0.08 * _ribs(u, v, truth, lungs, anatomy) * body - 0.1 * ptx + 0.16 * pleural_line
    density += _lung_findings(u, v, truth, lungs, anatomy)
    density += _pleural_thickening(u, v, truth, lungs)
    density += _devices(u, v, truth, anatomy)
    return density


def _ribs(u, v, truth: StudyTruth, lungs: list[Lung], anatomy: np.random.Generator) -> np.ndarray:
    """Posterior ribs (curving down laterally); a fracture breaks one and adds callus."""
    phase = (v - 0.10 - 0.18 * u * u) / RIB_PERIOD

    def ribs_at(shift):
        return np.clip((np.cos(2 * np.pi * (phase + shift)) - 0.55) / 0.45, 0, 1)

    ribs = ribs_at(0.0) * _sigmoid(np.abs(u) - 0.08, 0.01) * _sigmoid(v - 0.1, 0.02) * _sigmoid(0.85 - v, 0.02)
    if "Fracture" not in truth.severity:
        return ribs
    strength = truth.severity["Fracture"]
    for g in lungs:
        if not _on_side(truth, "Fracture", g.side):
            continue
        u0 = g.cu + g.sign * g.au * anatomy.uniform(0.45, 0.75)
        v0 = 0.10 + 0.18 * u0 * u0 + RIB_PERIOD * anatomy.integers(2, 6)
        near = _blob(u, v, u0, v0, 0.09, 0.05)
        beyond = _sigmoid((u - u0) * g.sign, 0.004)  # the lateral fragment is displaced
        ribs = ribs * (1 - near * beyond) + ribs_at(0.3 * strength) * near * beyond
        ribs = ribs * (1 - _sigmoid(0.012 - np.abs(u - u0), 0.003) * near)  # the fracture gap
        ribs = ribs + 4.0 * strength * _blob(u, v, u0, v0, 0.05, 0.035)  # callus
    return ribs


def _lung_findings(u, v, truth: StudyTruth, lungs: list[Lung], anatomy: np.random.Generator) -> np.ndarray:
    """Densities inside the lung fields: patches, haze, nodules, plates and fluid."""
    sev = truth.severity
    extra = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    if "Edema" in sev:
        s = sev["Edema"]
        haze = _blob(u, v, -0.22, 0.52, 0.16, 0.15) + _blob(u, v, 0.22, 0.52, 0.16, 0.15)
        septal = (np.cos(2 * np.pi * (v - 0.66) * 22) > 0.7) * _sigmoid(np.abs(u) - 0.5, 0.01) \
            * _sigmoid(v - 0.64, 0.01) * _sigmoid(0.8 - v, 0.01)
        extra += (0.22 * haze + 0.14 * septal) * s * np.maximum(lungs[0].mask, lungs[1].mask)
    for g in lungs:
        mask, cu, cv, au, sign = g.mask, g.cu, g.cv, g.au, g.sign
        if _on_side(truth, "Consolidation", g.side):
            scale = 0.7 + 0.5 * sev["Consolidation"]
            extra += 0.26 * sev["Consolidation"] ** 0.5 * _ellipse(
                u, v, cu + sign * 0.04, cv + 0.16, 0.15 * scale, 0.10 * scale, edge=0.005, power=2.5) * mask
        if _on_side(truth, "Pneumonia", g.side):
            for _ in range(anatomy.integers(5, 9)):
                bu, bv = cu + anatomy.uniform(-0.14, 0.14), cv + anatomy.uniform(0.0, 0.24)
                extra += 0.16 * sev["Pneumonia"] * _blob(u, v, bu, bv, 0.035, 0.03) * mask
        if _on_side(truth, "Lung Opacity", g.side):
            extra += 0.2 * sev["Lung Opacity"] * _blob(u, v, cu + anatomy.uniform(-0.08, 0.08),
                                                       cv + anatomy.uniform(-0.08, 0.04), 0.13, 0.11) * mask
        if _on_side(truth, "Atelectasis", g.side):
            slope, v_a = anatomy.uniform(-0.15, 0.15), g.bottom - 0.09
            plate = _sigmoid(0.014 - np.abs(v - v_a - slope * (u - cu)), 0.004)
            extra += 0.28 * sev["Atelectasis"] * plate * _sigmoid(0.17 - np.abs(u - cu), 0.01) * mask
        if _on_side(truth, "Lung Lesion", g.side):
            radius = 0.035 + 0.03 * sev["Lung Lesion"]
            extra += 0.3 * _ellipse(u, v, cu + anatomy.uniform(-0.12, 0.12), cv + anatomy.uniform(-0.2, 0.05),
                                    radius, radius * 0.85, edge=0.004) * mask
        if _on_side(truth, "Pleural Effusion", g.side):
            s = sev["Pleural Effusion"]
            lateral = np.clip((u - cu) * sign / au, 0, 1)
            level = g.bottom - (0.05 + 0.2 * s) - 0.1 * s * lateral ** 2  # the meniscus climbs laterally
            extra += 0.34 * _sigmoid(v - level, 0.01) * mask
    return extra


def _pneumothorax(u, v, truth: StudyTruth, lungs: list[Lung]) -> tuple[np.ndarray, np.ndarray]:
    """The air rim between chest wall and collapsed lung (apical and lateral), and the visceral pleural line."""
    rim = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    line = np.zeros_like(rim)
    for g in lungs:
        if _on_side(truth, "Pneumothorax", g.side):
            depth = 0.06 + 0.12 * truth.severity["Pneumothorax"]
            r = _radius(u, v, g.cu - g.sign * depth * 0.6, g.cv + depth * 0.8, g.au - depth * 0.6,
                        g.av - depth * 0.8, power=2.4)
            rim += g.mask * (1 - _sigmoid(1.0 - r, 0.016))
            line += g.mask * _sigmoid(0.05 - np.abs(r - 1.0), 0.01) * (v < g.cv + 0.1)
    return np.clip(rim, 0, 1), line


def _pleural_thickening(u, v, truth: StudyTruth, lungs: list[Lung]) -> np.ndarray:
    """Pleural Other: a bright rim along the lateral chest wall of the upper lung."""
    extra = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    for g in lungs:
        if _on_side(truth, "Pleural Other", g.side):
            s = truth.severity["Pleural Other"]
            lateral = (u - g.cu) * g.sign / g.au
            extra += 0.3 * s * g.mask * _sigmoid(lateral - (0.8 - 0.12 * s), 0.02) * _sigmoid(0.62 - v, 0.02)
    return extra


def _devices(u, v, truth: StudyTruth, anatomy: np.random.Generator) -> np.ndarray:
    """Metal and plastic: very bright thin tubes and ECG lead rings."""
    extra = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    if "endotracheal tube" in truth.devices:
        tip = anatomy.uniform(0.26, 0.34)
        extra += 0.5 * _band(u, v, lambda vv: 0.0 * vv, 0.012, -0.1, tip)
    if "nasogastric tube" in truth.devices:
        extra += 0.45 * _band(u, v, lambda vv: 0.03 + 0.3 * np.clip((vv - 0.72) / 0.2, 0, 1) ** 2, 0.008, -0.1, 0.9)
    if "central venous catheter" in truth.devices:
        start = anatomy.uniform(0.4, 0.55)
        extra += 0.5 * _band(u, v, lambda vv: -start + (start + 0.04) * np.sqrt(np.clip((vv - 0.12) / 0.28, 0, 1)),
                             0.009, 0.12, 0.42)
    if "ECG leads" in truth.devices:
        for _ in range(3):
            cu, cv = anatomy.uniform(-0.7, 0.7), anatomy.uniform(0.15, 0.55)
            radius = np.sqrt((u - cu) ** 2 + ((v - cv) * 1.2) ** 2)
            extra += 0.5 * _sigmoid(0.012 - np.abs(radius - 0.04), 0.003)
    return extra


# ---------------------------------------------------------------- lateral view
def _lateral(u, v, truth: StudyTruth, anatomy: np.random.Generator) -> np.ndarray:
    """A simple lateral: one lung field, heart in front, spine behind; effusion and devices shown."""
    sev = truth.severity
    body = _ellipse(u, v, 0.0, 0.58, 0.85, 0.6, power=2.2)
    lung = _ellipse(u, v, -0.02, 0.48, 0.55 * anatomy.uniform(0.95, 1.05), 0.34, power=2.2)
    heart_width = 0.24 + (0.06 + 0.08 * sev["Cardiomegaly"] if "Cardiomegaly" in sev else 0.0)
    heart = _ellipse(u, v, -0.32, 0.68, heart_width, 0.17)
    spine = _sigmoid(0.08 - np.abs(u - 0.55), 0.01) * (0.7 + 0.3 * (np.cos(2 * np.pi * v / 0.07) > 0))
    density = 0.08 + 0.44 * body - 0.30 * lung * (1 - heart) + 0.18 * spine * body
    if "Pleural Effusion" in sev:
        level = 0.78 - 0.15 * sev["Pleural Effusion"] - 0.1 * np.clip(u / 0.5, 0, 1) ** 2
        density += 0.3 * lung * _sigmoid(v - level, 0.01)
    for finding in ("Consolidation", "Pneumonia", "Lung Opacity"):
        if finding in sev:
            density += 0.12 * sev[finding] * lung * _blob(u, v, anatomy.uniform(-0.3, 0.3), 0.6, 0.15, 0.1)
    if "endotracheal tube" in truth.devices or "nasogastric tube" in truth.devices:
        density += 0.45 * _band(u, v, lambda vv: 0.05 + 0.1 * vv, 0.01, -0.1, 0.35)
    return density
