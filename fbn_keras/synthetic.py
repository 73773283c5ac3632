"""Synthetic faces driven by 17 AU intensities, and eight partially-labelled databases made of them.

The real databases can never be downloaded here, so the project trains, tests
and demonstrates on this test-bed (issue 3 §1). A procedural renderer draws
96×96 RGB faces (OpenCV anti-aliased polygons) whose geometry follows FACS for
each AU in `taxonomy.AUS`; identities and nuisance (pose, lighting,
background, noise, JPEG, occluders) vary. Labels come from the paper's
generative story: expression → prototypical AUs on, observational AUs on with
probability w (`taxonomy.COGNITIVE_TABLE`), other AUs at a low spontaneous
rate; valence-arousal a smooth function of expression and AU intensities plus
annotator noise. Each synthetic database keeps only the labels its real
namesake has (`taxonomy.SYNTHETIC_OF`), with train/validation/test split by
identity.

    python -m fbn_keras.synthetic --contact-sheet docs/synthetic_examples.png
    python -m fbn_keras.synthetic --benchmark 2000
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
import zlib
from typing import Iterator, Optional

import cv2
import numpy as np

from fbn_keras import taxonomy
from tfrecords_tools.items import SPLITS

IMAGE_SIZE = 96

# === Databases and default sizes ===

#: The eight synthetic databases, each mimicking the labels of the real one it is named after.
SYNTHETIC_DATABASES: tuple[str, ...] = tuple(taxonomy.SYNTHETIC_OF)

#: Images per database and split of the default test-bed: ~22k training images, ~1.7–1.9k test
#: images per task (VA: affwild+affectnet+affwild2; EXPR: affectnet+rafdb+affwild2; AU: disfa+bp4d+emotionet+affwild2).
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "synth-affwild": {"train": 4000, "validation": 400, "test": 600},
    "synth-affectnet": {"train": 4000, "validation": 400, "test": 600},
    "synth-rafdb": {"train": 3000, "validation": 300, "test": 500},
    "synth-rafdb-compound": {"train": 800, "validation": 100, "test": 300},
    "synth-disfa": {"train": 2500, "validation": 250, "test": 400},
    "synth-bp4d": {"train": 2500, "validation": 250, "test": 400},
    "synth-emotionet": {"train": 2500, "validation": 250, "test": 400},
    "synth-affwild2": {"train": 3000, "validation": 300, "test": 600},
}

#: FACS names of the 17 AUs, for the contact sheet's labels.
AU_DESCRIPTIONS: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor", 17: "chin raiser",
    20: "lip stretcher", 23: "lip tightener", 24: "lip pressor", 25: "lips part", 26: "jaw drop",
}

# === The generative story of the labels ===

#: Expression priors (EXPRESSIONS order): imbalanced, neutral and happiness most common, as in the wild.
EXPRESSION_PRIOR = np.array([0.28, 0.09, 0.08, 0.07, 0.25, 0.12, 0.11])

#: Valence-arousal of each expression at full strength (Russell's circumplex), EXPRESSIONS order.
EXPRESSION_VA = np.array([
    [0.00, -0.05],   # neutral
    [-0.55, 0.60],   # anger
    [-0.60, 0.30],   # disgust
    [-0.50, 0.65],   # fear
    [0.65, 0.30],    # happiness
    [-0.60, -0.35],  # sadness
    [0.25, 0.60],    # surprise
])

#: What each AU's intensity adds to (valence, arousal): smiles raise valence, wide eyes and an open jaw arousal.
_AU_VA = {1: (-0.05, 0.05), 2: (0.0, 0.10), 4: (-0.10, 0.05), 5: (0.0, 0.20), 6: (0.10, 0.0),
          7: (0.0, 0.05), 9: (-0.10, 0.0), 10: (-0.10, 0.0), 12: (0.30, 0.0), 15: (-0.25, -0.10),
          20: (-0.05, 0.10), 25: (0.0, 0.05), 26: (0.0, 0.15)}
AU_VA_WEIGHTS = np.array([_AU_VA.get(au, (0.0, 0.0)) for au in taxonomy.AUS])   # (17, 2)

VA_NOISE_STD = 0.1            # annotator noise on valence and arousal
SPONTANEOUS_RATE = 0.02       # P(an AU unrelated to the expression is active)
#: AUs that Table 1 barely uses (AU14 in no row, AU23/24 observational in anger only, AU7 in
#: anger only) yet BP4D and Aff-Wild2 annotate often occur spontaneously more often.
SPONTANEOUS_RATES = np.array([{7: 0.05, 14: 0.15, 23: 0.06, 24: 0.05}.get(au, SPONTANEOUS_RATE)
                              for au in taxonomy.AUS])
COMPOUND_OBSERVATIONAL = 0.5  # P(a compound's observational AU is active): Du et al. give no rates here
STRENGTH_RANGE = (0.55, 1.0)  # expression strength: the active AUs' intensity scale
AU_THRESHOLD = 0.5            # binary AU label = intensity ≥ 0.5


_COGNITIVE_WEIGHTS = taxonomy.relation_weights("cognitive")   # (7, 17): 1 prototypical, w observational


def va_of(expr_mix: np.ndarray, strength: float, intensities: np.ndarray) -> np.ndarray:
    """Noise-free (valence, arousal) of a face: the expression's circumplex point scaled by
    its strength plus each AU's contribution, clipped to [-1, 1].

    `expr_mix` is a (7,) weighting of expressions (one-hot for a basic expression,
    ½/½ for a compound), so compounds mix their two emotions' VA.
    """
    mix = np.asarray(expr_mix, np.float64)
    raw = strength * (mix @ EXPRESSION_VA) + np.asarray(intensities, np.float64) @ AU_VA_WEIGHTS
    return np.clip(raw, -1.0, 1.0)


def au_labels(intensities: np.ndarray) -> np.ndarray:
    """(17,) float32 binary AU occurrence: intensity ≥ AU_THRESHOLD."""
    return (np.asarray(intensities) >= AU_THRESHOLD).astype(np.float32)


def _activation_intensities(rng: np.random.Generator, p_active: np.ndarray, related: np.ndarray,
                            strength: float) -> np.ndarray:
    """Intensities of one face: AU k active with probability p_active[k] (or the spontaneous
    rate where unrelated), active AUs near `strength`, inactive ones at most a faint trace."""
    p = np.where(related, p_active, SPONTANEOUS_RATES)
    active = rng.random(taxonomy.NUM_AUS) < p
    scaled = strength * rng.uniform(0.85, 1.2, taxonomy.NUM_AUS)
    spontaneous = rng.uniform(0.5, 0.9, taxonomy.NUM_AUS)
    trace = rng.uniform(0.0, 0.25, taxonomy.NUM_AUS) * (rng.random(taxonomy.NUM_AUS) < 0.3)
    x = np.where(active, np.where(related, scaled, spontaneous), trace)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def expression_intensities(rng: np.random.Generator, expr: int, strength: float) -> np.ndarray:
    """AU intensities for basic expression `expr`: prototypical AUs on, observational ones on
    with probability w (cognitive table, SPEC §2), others spontaneous."""
    w = _COGNITIVE_WEIGHTS[expr]
    return _activation_intensities(rng, w, w > 0, strength)


def compound_intensities(rng: np.random.Generator, compound: int, strength: float) -> np.ndarray:
    """AU intensities for compound `compound` (index into COMPOUNDS, Du et al. 2014): its
    prototypical AUs on, its observational ones on with probability COMPOUND_OBSERVATIONAL."""
    c = taxonomy.COMPOUNDS[compound]
    p = np.zeros(taxonomy.NUM_AUS)
    for au in c.observational:
        if au in taxonomy.AUS:
            p[taxonomy.au_index(au)] = COMPOUND_OBSERVATIONAL
    for au in c.prototypical:
        p[taxonomy.au_index(au)] = 1.0
    return _activation_intensities(rng, p, p > 0, strength)


def compound_mix(compound: int) -> np.ndarray:
    """(7,) expression mix of a compound class: ½ on each of its two emotions."""
    mix = np.zeros(taxonomy.NUM_EXPRESSIONS)
    for emotion in taxonomy.COMPOUNDS[compound].emotions:
        mix[taxonomy.expression_index(emotion)] += 0.5
    return mix


@dataclasses.dataclass
class FaceState:
    """The hidden truth of one face: what the labels are drawn from."""

    intensities: np.ndarray        # (17,) in [0, 1]
    expr: int                      # basic expression, -1 for a compound face
    compound: int                  # index into COMPOUNDS, -1 for a basic face
    va: np.ndarray                 # (2,) with annotator noise, clipped to [-1, 1]
    strength: float = 1.0          # scale of the active AUs' intensities


def draw_state(rng: np.random.Generator, compound_subset: tuple[int, ...] = ()) -> FaceState:
    """One face from the generative story: a basic expression from EXPRESSION_PRIOR, or, when
    `compound_subset` is given, a compound class drawn uniformly from it."""
    strength = float(rng.uniform(*STRENGTH_RANGE))
    if compound_subset:
        compound = int(compound_subset[rng.integers(len(compound_subset))])
        x = compound_intensities(rng, compound, strength)
        mix, expr = compound_mix(compound), -1
    else:
        expr, compound = int(rng.choice(taxonomy.NUM_EXPRESSIONS, p=EXPRESSION_PRIOR)), -1
        x = expression_intensities(rng, expr, strength)
        mix = np.eye(taxonomy.NUM_EXPRESSIONS)[expr]
    va = np.clip(va_of(mix, strength, x) + rng.normal(0.0, VA_NOISE_STD, 2), -1.0, 1.0)
    return FaceState(x, expr, compound, va, strength)


# === Identity and nuisance ===

_SKIN_LIGHT = np.array([240.0, 205.0, 180.0])
_SKIN_DARK = np.array([95.0, 62.0, 45.0])
_HAIR = np.array([[25, 20, 18], [70, 45, 30], [120, 80, 45], [200, 165, 100], [150, 60, 30],
                  [160, 160, 160]], np.float64)
_IRIS = np.array([[60, 40, 25], [40, 80, 120], [70, 100, 60], [30, 25, 20]], np.float64)
HAIR_STYLES = ("short", "cap", "long", "fringe", "bald")


@dataclasses.dataclass(frozen=True)
class Identity:
    """A person: face shape, colours and feature sizes (lengths in pixels at scale 1)."""

    face_w: float = 28.5          # half-width of the face
    face_h: float = 36.0          # centre-to-chin (and centre-to-crown) distance
    jaw: float = 0.15             # 0 round … 0.3 tapered jaw
    skin: tuple = (225.0, 185.0, 160.0)
    hair: tuple = (70.0, 45.0, 30.0)
    hair_style: str = "short"
    hair_volume: float = 3.0
    eye_sep: float = 12.5         # half the distance between the eye centres
    eye_size: float = 1.0
    iris: tuple = (60.0, 40.0, 25.0)
    brow_w: float = 2.2           # brow thickness
    nose_len: float = 7.5         # nose tip below the face centre
    nose_w: float = 1.0
    mouth_w: float = 10.5         # half-width of the mouth
    mouth_y: float = 18.5         # lip line below the face centre
    lip_t: float = 2.6            # lip thickness
    lip: tuple = (190.0, 95.0, 95.0)
    clothes: tuple = (60.0, 80.0, 120.0)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Identity":
        """A random person."""
        tone = rng.uniform(0.0, 1.0)
        skin = (1 - tone) * _SKIN_LIGHT + tone * _SKIN_DARK + rng.normal(0, 6, 3)
        lip = np.clip(skin * np.array([0.85, 0.55, 0.55]) + np.array([25, 5, 10]), 0, 255)
        return cls(
            face_w=rng.uniform(26.5, 30.5), face_h=rng.uniform(34.0, 38.0), jaw=rng.uniform(0.0, 0.3),
            skin=tuple(np.clip(skin, 0, 255)), hair=tuple(_HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)),
            hair_style=HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.3, 0.25, 0.25, 0.1, 0.1])],
            hair_volume=rng.uniform(1.5, 5.0), eye_sep=rng.uniform(11.5, 13.5),
            eye_size=rng.uniform(0.88, 1.12), iris=tuple(_IRIS[rng.integers(len(_IRIS))]),
            brow_w=rng.uniform(1.7, 2.7), nose_len=rng.uniform(6.5, 9.0), nose_w=rng.uniform(0.85, 1.2),
            mouth_w=rng.uniform(9.5, 11.5), mouth_y=rng.uniform(17.5, 20.0), lip_t=rng.uniform(2.1, 3.1),
            lip=tuple(lip), clothes=tuple(rng.uniform(20, 230, 3)))


@dataclasses.dataclass(frozen=True)
class Occluder:
    """Something in front of the face (image coordinates): a hand, a cup, a microphone."""

    kind: str                     # "ellipse" or "rect"
    center: tuple[float, float]
    size: tuple[float, float]     # half-axes
    angle: float                  # degrees
    color: tuple


@dataclasses.dataclass(frozen=True)
class Nuisance:
    """Everything about an image that is not the person or the expression. The defaults are a
    clean frontal studio image (no JPEG round trip when jpeg_quality is 0)."""

    rotation: float = 0.0                 # in-plane, degrees
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    light_angle: float = 0.0              # direction of the lighting gradient, radians
    light: float = 0.0                    # gradient strength (relative brightness change across the image)
    brightness: float = 1.0
    background: tuple = (150.0, 160.0, 170.0)
    texture: float = 0.0                  # amplitude of the background texture
    noise: float = 0.0                    # pixel noise std (grey levels)
    jpeg_quality: int = 0
    occluder: Optional[Occluder] = None
    seed: int = 0                         # background texture and pixel noise

    @classmethod
    def sample(cls, rng: np.random.Generator, occlusion_rate: float = 0.1) -> "Nuisance":
        """Random nuisance within issue 3's ranges: rotation ±15°, scale ±10 %, shift ±4 px,
        JPEG quality 60–95, an occluder with probability `occlusion_rate`."""
        occluder = None
        if rng.random() < occlusion_rate:
            side = rng.choice([-1.0, 1.0])
            occluder = Occluder(
                kind=("ellipse", "rect")[rng.integers(2)],
                center=(48 + side * rng.uniform(10, 30), rng.uniform(30, 85)),
                size=(rng.uniform(6, 14), rng.uniform(8, 18)), angle=rng.uniform(0, 180),
                color=tuple(rng.uniform(30, 230, 3)))
        return cls(
            rotation=rng.uniform(-15, 15), scale=rng.uniform(0.9, 1.1),
            shift=(rng.uniform(-4, 4), rng.uniform(-4, 4)), light_angle=rng.uniform(0, 2 * np.pi),
            light=rng.uniform(0.0, 0.35), brightness=rng.uniform(0.85, 1.15),
            background=tuple(rng.uniform(30, 230, 3)), texture=rng.uniform(0, 60),
            noise=rng.uniform(0, 5), jpeg_quality=int(rng.integers(60, 96)), occluder=occluder,
            seed=int(rng.integers(2**31)))

    def drifted(self, rng: np.random.Generator) -> "Nuisance":
        """The next video frame's nuisance: pose drifts a little, within the same bounds."""
        return dataclasses.replace(
            self, rotation=float(np.clip(self.rotation + rng.normal(0, 0.8), -15, 15)),
            scale=float(np.clip(self.scale + rng.normal(0, 0.005), 0.9, 1.1)),
            shift=tuple(np.clip(np.asarray(self.shift) + rng.normal(0, 0.3, 2), -4, 4)),
            seed=int(rng.integers(2**31)))


# === Drawing primitives (face coordinates → anti-aliased pixels) ===

#: Where the face centre lands and how large a face of scale 1 is drawn: the dropped chin of
#: AU26 stays inside the frame at the largest scale and lowest shift.
FACE_CENTER = (48.0, 44.0)
FACE_SCALE = 0.95
_SHIFT = 4                 # OpenCV sub-pixel bits: coordinates drawn with 1/16 px precision
_ONE = float(1 << _SHIFT)
_DARK = np.array([35.0, 22.0, 20.0])
_WHITE = np.array([250.0, 248.0, 245.0])


def _mix(a, b, t: float) -> tuple:
    """Colour a + t·(b − a), t clipped to [0, 1] (plain floats: this runs ~100 times per image)."""
    t = min(max(float(t), 0.0), 1.0)
    return tuple(float(x) + t * (float(y) - float(x)) for x, y in zip(a, b))


@functools.lru_cache(maxsize=None)
def _arc(n: int, t0: float, t1: float) -> np.ndarray:
    """(n, 2) unit-circle points from angle t0 to t1."""
    t = np.linspace(t0, t1, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24,
             t0: float = 0.0, t1: float = 2 * np.pi) -> np.ndarray:
    """(n, 2) points on an ellipse arc from angle t0 to t1 (y down)."""
    return _arc(n, t0, t1) * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=None)
def _quad_basis(n: int) -> np.ndarray:
    """(n, 3) weights of p0, p1, p2 for the quadratic through p1 at t = ½ (control 2·p1 − (p0+p2)/2)."""
    t = np.linspace(0.0, 1.0, n)
    b0, b1, b2 = (1 - t) ** 2, 2 * (1 - t) * t, t ** 2
    return np.stack([b0 - 0.5 * b1, 2 * b1, b2 - 0.5 * b1], axis=1)


def _quad(p0, p1, p2, n: int = 10) -> np.ndarray:
    """(n, 2) points of the quadratic curve from p0 to p2 that passes through p1 at its middle."""
    return _quad_basis(n) @ np.array([p0, p1, p2], np.float64)


def _stroke(points: np.ndarray, width) -> np.ndarray:
    """A polyline as a filled polygon of the given width (scalar or one per point)."""
    p = np.asarray(points, np.float64)
    d = np.empty_like(p)
    d[1:-1] = p[2:] - p[:-2]
    d[0], d[-1] = p[1] - p[0], p[-1] - p[-2]
    n = d[:, ::-1] * (-1.0, 1.0)
    n *= (0.5 * np.asarray(width, np.float64) / np.maximum(np.hypot(n[:, 0], n[:, 1]), 1e-9))[:, None]
    return np.concatenate([p + n, (p - n)[::-1]])


class _Canvas:
    """Shapes in face coordinates, recorded in drawing order and rasterised in one pass through
    the similarity transform (one matrix product for all points keeps the renderer fast)."""

    def __init__(self):
        self.shapes: list[tuple[np.ndarray, tuple, float]] = []

    def fill(self, points: np.ndarray, color) -> None:
        self.shapes.append((points, color, 0.0))

    def line(self, points: np.ndarray, color, width: float = 1.0) -> None:
        """An open polyline; widths under 1.4 px draw 1 px wide, wider ones 2 px (OpenCV's AA lines)."""
        self.shapes.append((points, color, width))

    def rasterize(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        pts = np.concatenate([s[0] for s in self.shapes]) @ matrix[:, :2].T + matrix[:, 2]
        pix = np.round(pts * _ONE).astype(np.int32)
        end = 0
        for points, color, width in self.shapes:
            start, end = end, end + len(points)
            if width:
                cv2.polylines(image, [pix[start:end]], False, color, 1 if width < 1.4 else 2, cv2.LINE_AA, _SHIFT)
            else:
                cv2.fillPoly(image, [pix[start:end]], color, cv2.LINE_AA, _SHIFT)
        return image


def _pose_matrix(nuisance: Nuisance) -> np.ndarray:
    """2×3 similarity: face coordinates (origin at the face centre) → image pixels."""
    theta = np.deg2rad(nuisance.rotation)
    s = FACE_SCALE * nuisance.scale
    cx, cy = FACE_CENTER
    return np.array([[s * np.cos(theta), -s * np.sin(theta), cx + nuisance.shift[0]],
                     [s * np.sin(theta), s * np.cos(theta), cy + nuisance.shift[1]]])


# === The face (each AU's deformation, FACS) ===

def _au(intensities: np.ndarray) -> dict[int, float]:
    return {au: float(v) for au, v in zip(taxonomy.AUS, intensities)}


def _draw_head(cv: _Canvas, idn: Identity, a: dict[int, float]) -> float:
    """Hair behind, neck, shoulders, ears, the face outline; returns the chin's y.
    AU26 drops the jaw (chin down), AU17 pushes the chin boss up."""
    w, h = idn.face_w, idn.face_h
    skin = np.asarray(idn.skin)
    chin = h + 7.0 * a[26] - 2.5 * a[17]
    if idn.hair_style == "long":
        cv.fill(np.concatenate([_ellipse(0, -4, w + idn.hair_volume + 2, h + idn.hair_volume, 30, np.pi, 2 * np.pi),
                                [[w + idn.hair_volume + 3, 45], [-w - idn.hair_volume - 3, 45]]]), idn.hair)
    cv.fill(np.array([[-0.42 * w, 10], [0.42 * w, 10], [0.5 * w, 60], [-0.5 * w, 60]]), tuple(skin * 0.82))
    cv.fill(_ellipse(0, h + 24, 50, 16, 30), idn.clothes)
    for sgn in (-1, 1):
        cv.fill(_ellipse(sgn * (w + 0.5), -5, 3.2, 6.5, 16), tuple(skin * 0.9))
    t_top = np.linspace(np.pi, 2 * np.pi, 16)
    t_low = np.linspace(0.0, np.pi, 20)[1:-1]
    top = np.stack([w * np.cos(t_top), 1.02 * h * np.sin(t_top)], axis=1)
    low = np.stack([w * np.cos(t_low) * (1 - idn.jaw * np.sin(t_low) ** 2), chin * np.sin(t_low)], axis=1)
    cv.fill(np.concatenate([top, low]), idn.skin)
    if idn.hair_style in ("short", "cap", "long", "fringe"):
        v = 1.2 if idn.hair_style == "short" else idn.hair_volume
        line_y = -31.5 if idn.hair_style != "cap" else -30.0
        outer = _ellipse(0, 0, w + v, 1.02 * h + v, 22, np.pi - 0.05, 2 * np.pi + 0.05)
        inner = np.concatenate([[[w * 0.98, -13]], _quad((w * 0.8, line_y + 3), (0, line_y), (-w * 0.8, line_y + 3), 9),
                                [[-w * 0.98, -13]]])
        cv.fill(np.concatenate([outer, inner]), idn.hair)
        if idn.hair_style == "fringe":
            cv.fill(np.array([[-w * 0.9, -20], [-w * 0.7, line_y - 1], [w * 0.4, line_y - 1]]), idn.hair)
    return chin


def _draw_brows(cv: _Canvas, idn: Identity, a: dict[int, float]) -> None:
    """AU1 raises the inner brow (+ central forehead wrinkles), AU2 the outer brow (+ lateral
    wrinkles), AU4 lowers the brows and pulls them together (+ vertical glabella furrows)."""
    skin, color = np.asarray(idn.skin), _mix(idn.hair, _DARK, 0.4)
    e = idn.eye_sep
    for sgn in (-1, 1):
        inner = (sgn * (e - 6.5 - 2.5 * a[4]), -17.0 - 5.5 * a[1] + 4.0 * a[4])
        mid = (sgn * (e + 0.5), -19.5 - 2.5 * a[1] - 3.5 * a[2] + 3.0 * a[4])
        outer = (sgn * (e + 8.0), -17.5 - 0.5 * a[1] - 5.5 * a[2] + 2.0 * a[4])
        cv.fill(_stroke(_quad(inner, mid, outer, 10), np.linspace(idn.brow_w, 0.6 * idn.brow_w, 10)), color)
        if a[2] > 0.05:
            for k, y in enumerate((-25.0, -28.0)):
                xs = sgn * np.array([e + 1.0, e + 5.0, e + 9.0 - k])
                cv.line(np.stack([xs, [y + 0.8, y, y + 0.8]], axis=1), _mix(skin, _DARK, 0.5 * a[2]), 0.9)
    if a[1] > 0.05:
        for y in (-24.5, -27.5):
            cv.line(_quad((-6.5, y + 0.8), (0, y), (6.5, y + 0.8), 7), _mix(skin, _DARK, 0.5 * a[1]), 0.9)
    if a[4] > 0.05:
        for sgn in (-1, 1):
            cv.line(np.array([[sgn * 1.8, -20.0], [sgn * 1.4, -13.5]]), _mix(skin, _DARK, 0.6 * a[4]), 1.0)


def _draw_eyes(cv: _Canvas, idn: Identity, a: dict[int, float]) -> None:
    """AU5 raises the upper lid (white above the iris, crease gone), AU6 raises the cheeks and
    lower lid (+ crow's feet), AU7 tightens both lids (+ a tense line under the lower lid)."""
    skin = np.asarray(idn.skin)
    s = idn.eye_size
    ew = 6.0 * s
    hu = max(0.5, (3.2 + 3.4 * a[5] - 1.9 * a[7] - 0.7 * a[6]) * s)
    hl = max(0.35, (2.3 - 1.3 * a[6] - 1.3 * a[7] + 0.3 * a[5]) * s)
    u = np.linspace(-1.0, 1.0, 13)
    f = 1 - u ** 2
    for sgn in (-1, 1):
        cx, cy = sgn * idn.eye_sep, -8.0
        x = cx + u * ew
        upper, lower = cy - hu * f ** 0.75, cy + hl * f ** 0.9
        cv.fill(np.concatenate([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1]]), (245, 243, 238))
        for r, color in ((2.4 * s, idn.iris), (1.1 * s, (15, 12, 12))):
            ring = _ellipse(cx, cy + 0.4, r, r, 16)
            rx = np.minimum(np.maximum(ring[:, 0], x[0]), x[-1])   # (np.clip is slow on tiny arrays)
            ring[:, 1] = np.minimum(np.maximum(ring[:, 1], np.interp(rx, x, upper)), np.interp(rx, x, lower))
            cv.fill(ring, color)
        cv.line(np.stack([x, upper], 1), (30, 22, 22), 1.1)
        cv.line(np.stack([x, lower], 1), _mix(skin, _DARK, 0.35), 0.6)
        cv.line(np.stack([x[2:-2], upper[2:-2] - 1.8], 1), _mix(skin, _DARK, 0.3 * (1 - a[5])), 0.6)
        if a[7] > 0.05:
            cv.line(np.stack([x[3:-3], lower[3:-3] + 1.4], 1), _mix(skin, _DARK, 0.9 * a[7]), 0.9)
        if a[6] > 0.05:
            for k in (-1, 0, 1):
                cv.line(np.array([[cx + sgn * (ew + 1.0), cy + 0.6 * k], [cx + sgn * (ew + 4.5), cy + 2.2 * k]]),
                        _mix(skin, _DARK, 0.75 * a[6]), 0.8)


def _draw_cheeks(cv: _Canvas, idn: Identity, a: dict[int, float]) -> None:
    """Cheek apples: AU6 lifts them and makes them fuller."""
    for sgn in (-1, 1):
        cv.fill(_ellipse(sgn * (idn.eye_sep + 2.5), 5.0 - 4.5 * a[6], 6.0, 4.0 + 0.5 * a[6], 18),
                _mix(idn.skin, (225, 105, 105), 0.08 + 0.5 * a[6]))


def _draw_nose(cv: _Canvas, idn: Identity, a: dict[int, float]) -> None:
    """AU9 wrinkles the nose bridge and lifts/flares the nostrils; AU9, AU10 and AU12 deepen
    the nasolabial folds (AU10 most)."""
    skin, nw, yn = np.asarray(idn.skin), idn.nose_w, idn.nose_len
    lift = 1.6 * a[9] + 0.6 * a[10]
    for sgn in (-1, 1):
        cv.line(np.array([[sgn * 2.6, -6.0], [sgn * 3.3 * nw, yn - 2.5]]), _mix(skin, _DARK, 0.15), 0.8)
        cv.fill(_ellipse(sgn * 2.5 * nw, yn + 1.0 - lift, (1.4 + 0.6 * a[9]) * nw, 0.9, 12), _mix(skin, _DARK, 0.7))
        cv.line(_quad((sgn * 4.0 * nw, yn - 1.5 - lift), (sgn * 4.6 * nw, yn + 0.3 - lift),
                      (sgn * 3.0 * nw, yn + 1.9 - lift), 7), _mix(skin, _DARK, 0.3 + 0.3 * a[9]), 0.8)
        fold = 0.55 * a[10] + 0.2 * a[9] + 0.25 * a[12]
        mw = idn.mouth_w
        if fold > 0.06:
            start = (sgn * (4.6 * nw + 0.6), yn - 0.5 - lift)
            mid = (sgn * (mw + 2.5 + 1.5 * a[12]), idn.mouth_y - 3.0)
            end = (sgn * (mw + 2.5 + 2.0 * a[12] + 1.5 * a[20]), idn.mouth_y + 3.5)
            cv.line(_quad(start, mid, end, 9), _mix(skin, _DARK, fold), 1.0)
    if a[9] > 0.05:
        for y in (-4.5, -2.5, -0.5):
            cv.line(_quad((-3.2, y + 0.4), (0, y - 0.3), (3.2, y + 0.4), 6), _mix(skin, _DARK, 0.65 * a[9]), 0.8)


def _draw_mouth(cv: _Canvas, idn: Identity, a: dict[int, float], chin: float) -> None:
    """AU12 corners up and out, AU15 corners down (+ marionette lines), AU14 dimples, AU20
    stretched thin lips (+ lateral folds), AU23 thin tight lips (+ vertical lip lines), AU24
    pressed lips (+ bulges above and below), AU10 upper lip raised (upper teeth show), AU25 lips
    apart, AU26 jaw down (wider opening), AU17 chin boss up (+ chin dimpling, mentolabial crease)."""
    skin, lip = np.asarray(idn.skin), np.asarray(idn.lip)
    ym = idn.mouth_y
    w = idn.mouth_w + 2.5 * a[12] + 4.5 * a[20] - 1.8 * a[23] - 1.2 * a[24] - 1.3 * a[14]
    cdy = -4.5 * a[12] + 4.0 * a[15] + 0.6 * a[20] - 0.8 * a[14]
    thin = max(0.3, 1 - 0.35 * a[20] - 0.55 * a[23] - 0.45 * a[24])
    tu, tl = idn.lip_t * thin, idn.lip_t * 1.3 * thin
    gap = (2.6 * a[25] + 3.0 * a[26] + 2.5 * a[25] * a[26]) * (1 - 0.7 * a[24]) * (1 - 0.4 * a[17])
    lift = 2.8 * a[10]
    u = np.linspace(-1.0, 1.0, 17)
    x = u * w
    c = 1 - u ** 2
    y_ui = ym + cdy * u ** 2 - (gap / 2 + lift) * c ** 0.6
    y_li = ym + cdy * u ** 2 + (gap / 2) * c ** 0.6
    y_uo = y_ui - tu * np.sqrt(c) * (1 - 0.3 * np.exp(-(u / 0.15) ** 2)) - 0.5 * lift * c
    y_lo = y_li + tl * c ** 0.6
    pts = lambda ys: np.stack([x, ys], axis=1)  # noqa: E731
    if gap + lift > 0.2:
        cv.fill(np.concatenate([pts(y_ui), pts(y_li)[::-1]]), (75, 25, 30))
        teeth_low = np.minimum(y_ui + 2.2, y_li)
        k = slice(3, -3)
        cv.fill(np.concatenate([pts(y_ui)[k], pts(teeth_low)[k][::-1]]), (238, 235, 225))
        if a[26] > 0.2 and gap > 2.0:
            cv.fill(np.concatenate([pts(np.maximum(y_li - 1.2 * a[26], teeth_low))[k], pts(y_li)[k][::-1]]),
                    (225, 222, 212))
    lip = np.asarray(_mix(lip, _DARK, 0.75 * a[23]))   # AU23: tightened lips darken
    lip = np.asarray(_mix(lip, skin, 0.5 * a[24]))     # AU24: pressed lips pale
    cv.fill(np.concatenate([pts(y_uo), pts(y_ui)[::-1]]), tuple(lip * 0.92))
    cv.fill(np.concatenate([pts(y_li), pts(y_lo)[::-1]]), tuple(lip))
    cv.line(pts(0.5 * (y_ui + y_li)) if gap + lift <= 0.2 else pts(y_ui), _mix(lip, _DARK, 0.55), 0.7)
    corner = np.array([w, ym + cdy])
    for sgn in (-1, 1):
        cx, cy = sgn * corner[0], corner[1]
        if a[14] > 0.05:
            t0 = -1.1 if sgn > 0 else np.pi - 1.1
            cv.line(_ellipse(cx, cy, 2.2, 3.0, 7, t0, t0 + 2.2), _mix(skin, _DARK, 1.0 * a[14]), 1.5)
            cv.fill(_ellipse(cx + sgn * 2.8, cy, 1.3, 2.0, 10), _mix(skin, _DARK, 0.9 * a[14]))
        if a[15] > 0.05:
            cv.line(np.array([[cx + sgn * 0.3, cy + 0.8], [cx + sgn * 1.2, cy + 6.0]]), _mix(skin, _DARK, 0.6 * a[15]), 1.0)
        if a[20] > 0.05:
            cv.line(np.array([[cx + sgn * 1.0, cy], [cx + sgn * 6.5, cy + 0.8]]), _mix(skin, _DARK, 0.75 * a[20]), 0.9)
    if a[23] > 0.05:
        dark = _mix(lip, _DARK, 0.6 * a[23])
        cv.line(pts(y_uo), dark, 0.6)
        cv.line(pts(y_lo), dark, 0.6)
        for i in (4, 6, 8, 10, 12):
            cv.line(np.array([[x[i], y_uo[i] + 0.3], [x[i], y_lo[i] - 0.3]]), dark, 0.6)
    if a[24] > 0.05:
        k = slice(2, -2)
        cv.line(pts(y_uo - 1.8)[k], _mix(skin, _DARK, 0.35 * a[24]), 1.0)
        cv.line(pts(y_lo + 1.8)[k], _mix(skin, _DARK, 0.45 * a[24]), 1.0)
    bottom = float(y_lo[8])
    cv.line(_quad((-5.0, bottom + 2.6), (0, bottom + 3.6), (5.0, bottom + 2.6), 7),
            _mix(skin, _DARK, 0.12 + 0.5 * a[17]), 1.0)
    if a[17] > 0.05:
        boss_y = 0.5 * (bottom + 3.6 + chin) + 1.0
        cv.fill(_ellipse(0, boss_y, 6.0, 3.2, 16), _mix(skin, _DARK, 0.2 * a[17]))
        for dx, dy in ((-3, -0.8), (0, -1.2), (3, -0.8), (-1.5, 0.8), (1.5, 0.8)):
            cv.fill(_ellipse(dx, boss_y + dy, 0.6, 0.6, 8), _mix(skin, _DARK, 0.5 * a[17]))


def _draw_face(cv: _Canvas, idn: Identity, intensities: np.ndarray) -> None:
    a = _au(intensities)
    chin = _draw_head(cv, idn, a)
    _draw_cheeks(cv, idn, a)
    _draw_brows(cv, idn, a)
    _draw_eyes(cv, idn, a)
    _draw_nose(cv, idn, a)
    _draw_mouth(cv, idn, a, chin)


# === Nuisance in pixels ===

_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / (IMAGE_SIZE / 2) - 1.0


#: A fixed bank of N(0, 1) pixel noise; each image reads it from a random offset (drawing 27k fresh
#: normals per image would cost more than drawing the face).
_NOISE_BANK = np.random.default_rng(20200813).standard_normal(1 << 20, dtype=np.float32)
_PIXELS = IMAGE_SIZE * IMAGE_SIZE * 3


def _background(nuisance: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Background colour with a smooth random texture (low-resolution noise, upsampled)."""
    img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
    img[:] = nuisance.background
    if nuisance.texture > 0:
        k = int(rng.integers(3, 9))
        blobs = rng.uniform(-nuisance.texture, nuisance.texture, (k, k, 3)).astype(np.float32)
        img += cv2.resize(blobs, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0, 255).astype(np.uint8)


def _photometric(image: np.ndarray, nuisance: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Lighting gradient, brightness, pixel noise, then a JPEG round trip."""
    c, s = np.cos(nuisance.light_angle), np.sin(nuisance.light_angle)
    gain = nuisance.brightness * (1 + nuisance.light * (c * _XX + s * _YY))
    img = image * gain[:, :, None]
    if nuisance.noise > 0:
        start = int(rng.integers(len(_NOISE_BANK) - _PIXELS))
        img += nuisance.noise * _NOISE_BANK[start:start + _PIXELS].reshape(img.shape)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if nuisance.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(nuisance.jpeg_quality)])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a synthetic face")
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def render_face(intensities: np.ndarray, identity: Identity, nuisance: Optional[Nuisance] = None,
                rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """A 96×96×3 uint8 RGB face of `identity` showing the 17 AU `intensities` (taxonomy.AUS order, in
    [0, 1]) under `nuisance`. Deterministic: texture and noise come from `rng`, else from nuisance.seed."""
    x = np.asarray(intensities, np.float64)
    if x.shape != (taxonomy.NUM_AUS,):
        raise ValueError(f"intensities must have shape ({taxonomy.NUM_AUS},) in taxonomy.AUS order. "
                         f"Received: shape={x.shape}")
    if not np.all(np.isfinite(x)) or np.any((x < 0) | (x > 1)):
        raise ValueError(f"intensities must be finite and in [0, 1]. Received: {x}")
    nuisance = Nuisance() if nuisance is None else nuisance
    rng = np.random.default_rng(nuisance.seed) if rng is None else rng
    cv = _Canvas()
    _draw_face(cv, identity, x)
    image = cv.rasterize(_background(nuisance, rng), _pose_matrix(nuisance))
    occ = nuisance.occluder
    if occ is not None:
        box = cv2.ellipse2Poly((0, 0), (100, 100), 0, 0, 360, 12) / 100.0 if occ.kind == "ellipse" \
            else np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
        t = np.deg2rad(occ.angle)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        pts = (box * np.asarray(occ.size)) @ rot.T + np.asarray(occ.center)
        cv2.fillPoly(image, [np.round(pts * _ONE).astype(np.int32)], occ.color, cv2.LINE_AA, _SHIFT)
    return _photometric(image, nuisance, rng)


# === The databases ===

@dataclasses.dataclass
class SyntheticSample:
    """One synthetic image with the labels its database gives it (missing labels as in SPEC §1)."""

    image: np.ndarray                          # (96, 96, 3) uint8 RGB
    image_id: str
    group: str                                 # identity (stills) or video
    frame: int                                 # -1 for stills
    va: Optional[tuple[float, float]]          # None: missing
    expr: int                                  # -1: missing
    au: Optional[np.ndarray]                   # (17,) 0/1, zeros outside au_mask; None: missing
    au_mask: Optional[np.ndarray]              # (17,) δ; None: missing
    compound: int                              # index into COMPOUNDS, -1: missing
    intensities: np.ndarray                    # (17,) ground truth behind the labels
    database: str = ""
    split: str = ""


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """How a synthetic database is made: its labels, its people, its missing labels."""

    video: bool
    per_group: tuple[int, int]        # images per identity (stills) or frames per video, min and max
    unusable: float = 0.0             # AffectNet: share of images without usable labels
    invalid_run_rate: float = 0.0     # Aff-Wild2: P(an invalid run of frames starts), per task and frame


_RECIPES: dict[str, _Recipe] = {
    "synth-affwild": _Recipe(video=True, per_group=(30, 60)),
    "synth-affectnet": _Recipe(video=False, per_group=(3, 3), unusable=0.05),
    "synth-rafdb": _Recipe(video=False, per_group=(4, 4)),
    "synth-rafdb-compound": _Recipe(video=False, per_group=(4, 4)),
    "synth-disfa": _Recipe(video=False, per_group=(20, 20)),
    "synth-bp4d": _Recipe(video=False, per_group=(15, 15)),
    "synth-emotionet": _Recipe(video=False, per_group=(2, 2)),
    "synth-affwild2": _Recipe(video=True, per_group=(30, 60), invalid_run_rate=0.007),
}


def _check(database: str, split: str) -> None:
    if database not in SYNTHETIC_DATABASES:
        raise ValueError(f"Unknown synthetic database {database!r}; expected one of {SYNTHETIC_DATABASES}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")


def _rng(seed: int, database: str, split: str, *path: int) -> np.random.Generator:
    """A generator keyed by (seed, database, split, path): stable across runs and Python versions."""
    return np.random.default_rng([seed, zlib.crc32(database.encode()), SPLITS.index(split), *path])


def _labelled(database: str, split: str, image: np.ndarray, image_id: str, group: str, frame: int,
              state: FaceState, hide: frozenset = frozenset()) -> SyntheticSample:
    """A sample carrying only the labels `database` annotates, minus the tasks in `hide`."""
    db = taxonomy.database(database)
    va = tuple(float(v) for v in state.va) if "va" in db.tasks and "va" not in hide else None
    expr = state.expr if "expr" in db.tasks and "expr" not in hide else -1
    au = mask = None
    if "au" in db.tasks and "au" not in hide:
        mask = taxonomy.au_mask_for(db.aus)
        au = au_labels(state.intensities) * mask
    compound = state.compound if "compound" in db.tasks else -1
    return SyntheticSample(image, image_id, group, frame, va, expr, au, mask, compound,
                           state.intensities, database, split)


def _stills(database: str, split: str, n: int, seed: int) -> Iterator[SyntheticSample]:
    recipe = _RECIPES[database]
    subset = taxonomy.database(database).compound_subset
    per = recipe.per_group[0]
    identity, k_identity = None, -1
    for i in range(n):
        k, j = divmod(i, per)
        if k != k_identity:
            identity, k_identity = Identity.sample(_rng(seed, database, split, k, 0)), k
        rng = _rng(seed, database, split, k, j + 1)
        state = draw_state(rng, subset)
        image = render_face(state.intensities, identity, Nuisance.sample(rng), rng)
        hide = frozenset()
        if recipe.unusable and rng.random() < recipe.unusable:
            # AffectNet: codes 7/8 (contempt, none) keep VA; 9/10 (uncertain, no face) carry VA -2 too.
            hide = frozenset({"expr"}) if rng.random() < 0.6 else frozenset({"expr", "va"})
        group = f"{split}-{k:05d}"
        yield _labelled(database, split, image, f"{group}/{j:03d}", group, -1, state, hide)


def _invalid_runs(rng: np.random.Generator, length: int, rate: float) -> np.ndarray:
    """(length,) bool: runs of 3–12 frames marked invalid (face lost, annotator gap)."""
    bad = np.zeros(length, bool)
    t = 0
    while t < length:
        if rng.random() < rate:
            run = int(rng.integers(3, 13))
            bad[t:t + run] = True
            t += run
        else:
            t += 1
    return bad


def _video(database: str, split: str, k: int, seed: int) -> Iterator[SyntheticSample]:
    """Frames of video k: episodes of expressions whose intensities, VA and pose move smoothly."""
    recipe = _RECIPES[database]
    rng = _rng(seed, database, split, k, 0)
    identity = Identity.sample(rng)
    nuisance = Nuisance.sample(rng)
    length = int(rng.integers(recipe.per_group[0], recipe.per_group[1] + 1))
    tasks = taxonomy.database(database).tasks
    invalid = {t: _invalid_runs(rng, length, recipe.invalid_run_rate) for t in tasks}
    group = f"{split}-{k:05d}"
    x = np.zeros(taxonomy.NUM_AUS)
    mix = np.eye(taxonomy.NUM_EXPRESSIONS)[0]
    strength, noise, episode_end, target = 0.0, np.zeros(2), 0, None
    for t in range(length):
        if t >= episode_end:
            target = draw_state(rng)
            episode_end = t + int(rng.integers(8, 26))
        # Exponential approach to the episode's target: consecutive frames differ only a little.
        x = x + 0.55 * (target.intensities - x)
        mix = mix + 0.55 * (np.eye(taxonomy.NUM_EXPRESSIONS)[target.expr] - mix)
        strength = strength + 0.55 * (target.strength - strength)
        noise = 0.7 * noise + np.sqrt(1 - 0.7 ** 2) * rng.normal(0.0, VA_NOISE_STD, 2)
        va = np.clip(va_of(mix, strength, x) + noise, -1.0, 1.0)
        state = FaceState(np.clip(x, 0, 1).astype(np.float32), target.expr, -1, va, strength)
        nuisance = nuisance.drifted(rng)
        image = render_face(state.intensities, identity, nuisance)
        hide = frozenset(task for task in tasks if invalid[task][t])
        yield _labelled(database, split, image, f"{group}/{t + 1:05d}", group, t + 1, state, hide)


def generate(database: str, split: str, n: Optional[int] = None, seed: int = 0) -> Iterator[SyntheticSample]:
    """The first `n` samples (default: DEFAULT_SIZES) of one synthetic database's split.

    Deterministic by seed; the first m samples do not depend on n. Splits never share an
    identity (each split draws its own people). Stills come `per_group` to an identity;
    video databases yield whole videos of consecutive frames (group = video, frame ≥ 1).
    """
    _check(database, split)
    n = DEFAULT_SIZES[database][split] if n is None else int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0. Received: n={n}")
    if not _RECIPES[database].video:
        yield from _stills(database, split, n, seed)
        return
    count, k = 0, 0
    while count < n:
        for sample in _video(database, split, k, seed):
            if count >= n:
                return
            count += 1
            yield sample
        k += 1


def labelled_stills(n: int, split: str = "train", seed: int = 0) -> Iterator[SyntheticSample]:
    """`n` stills with every label (VA, expression, all 17 AUs): the generative story unmasked,
    for learnability checks and demos. One image per identity."""
    name = "synth-all-labels"
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")
    for k in range(n):
        rng = _rng(seed, name, split, k)
        identity = Identity.sample(rng)
        state = draw_state(rng)
        image = render_face(state.intensities, identity, Nuisance.sample(rng), rng)
        group = f"{split}-{k:05d}"
        yield SyntheticSample(image, f"{group}/000", group, -1, tuple(float(v) for v in state.va), state.expr,
                              au_labels(state.intensities), np.ones(taxonomy.NUM_AUS, np.float32), -1,
                              state.intensities, name, split)


# === Contact sheet ===

def _prototype(expr: int, strength: float = 0.9) -> np.ndarray:
    """Intensities showing an expression clearly: prototypical AUs and observational ones with w ≥ 0.5."""
    w = taxonomy.relation_weights("cognitive")[expr]
    return np.where(w >= 0.5, strength, 0.0).astype(np.float32)


def contact_sheet(path: Optional[str] = None, identities: int = 6, seed: int = 0, zoom: int = 2) -> np.ndarray:
    """Every expression on a few identities (first column: prototypical AUs, clean; the rest
    drawn from the generative story with nuisance), then every AU at intensity 0 vs 1 on a
    neutral face, each labelled. Writes a PNG to `path` when given; returns the RGB sheet."""
    cell, band = IMAGE_SIZE * zoom, 22
    cols = max(identities, 6)
    width = cols * cell
    rows = []

    def banner(text: str, height: int = band) -> np.ndarray:
        img = np.full((height, width, 3), 255, np.uint8)
        cv2.putText(img, text, (6, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        return img

    def tile(images: list[np.ndarray], labels: list[str]) -> np.ndarray:
        out = np.full((band + cell, width, 3), 255, np.uint8)
        for i, (img, label) in enumerate(zip(images, labels)):
            big = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
            out[band:, i * cell:(i + 1) * cell] = big
            cv2.putText(out, label, (i * cell + 4, band - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
        return out

    rows.append(banner("Expressions: col 1 prototypical AUs, clean; cols 2+ drawn from the generative story "
                       "with nuisance", 30))
    for e, name in enumerate(taxonomy.EXPRESSIONS):
        rng = np.random.default_rng([seed, e])
        images = [render_face(_prototype(e), Identity.sample(rng))]
        labels = [f"{name}"]
        while len(images) < identities:
            state = draw_state(rng)
            while state.expr != e:
                state = draw_state(rng)
            images.append(render_face(state.intensities, Identity.sample(rng), Nuisance.sample(rng), rng))
            on = [str(au) for au, v in zip(taxonomy.AUS, state.intensities) if v >= AU_THRESHOLD]
            labels.append("AU " + (",".join(on) or "-"))
        rows.append(tile(images, labels))
    rows.append(banner("Each AU at intensity 0 | 1 on a neutral face (FACS names)", 30))
    neutral = Identity()
    pairs_per_row = cols // 2
    for start in range(0, taxonomy.NUM_AUS, pairs_per_row):
        images, labels = [], []
        for au in taxonomy.AUS[start:start + pairs_per_row]:
            x = np.zeros(taxonomy.NUM_AUS, np.float32)
            images.append(render_face(x, neutral))
            x[taxonomy.au_index(au)] = 1.0
            images.append(render_face(x, neutral))
            labels += [f"AU{au}: 0", f"{AU_DESCRIPTIONS[au]}: 1"]
        rows.append(tile(images, labels))
    sheet = np.concatenate(rows, axis=0)
    if path is not None:
        if not cv2.imwrite(str(path), sheet[:, :, ::-1]):
            raise OSError(f"Could not write the contact sheet to {path}")
    return sheet


# === Command line ===

def images_per_second(n: int = 1000, database: str = "synth-affectnet") -> float:
    """Rendering throughput of `generate` on this process (one core)."""
    start = time.perf_counter()
    count = sum(1 for _ in generate(database, "train", n=n))
    return count / (time.perf_counter() - start)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contact-sheet", metavar="PNG", help="write the contact sheet here")
    parser.add_argument("--benchmark", type=int, metavar="N", help="render N images and print images/s")
    args = parser.parse_args(argv)
    if not (args.contact_sheet or args.benchmark):
        parser.error("nothing to do: give --contact-sheet PNG and/or --benchmark N")
    if args.contact_sheet:
        contact_sheet(args.contact_sheet)
        print(f"wrote {args.contact_sheet}")
    if args.benchmark:
        print(f"{images_per_second(args.benchmark):.0f} images/s on one core")


if __name__ == "__main__":
    main()
