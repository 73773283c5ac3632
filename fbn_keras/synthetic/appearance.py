"""Who is in a synthetic image and how it was taken: identity (face shape, colours, feature
sizes, hair) and nuisance (pose, lighting, background, noise, JPEG, occluder), each sampled
within the test-bed's ranges (`Nuisance.sample`)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

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
        """Random nuisance within the test-bed's ranges: rotation ±15°, scale ±10 %, shift ±4 px,
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
