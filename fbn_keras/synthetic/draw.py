"""Drawing primitives: shapes in face coordinates, rasterised with OpenCV's anti-aliased
polygons through one similarity transform (the pose)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from fbn_keras.synthetic.appearance import Nuisance

IMAGE_SIZE = 96

#: Where the face centre lands and how large a face of scale 1 is drawn: the dropped chin of
#: AU26 stays inside the frame at the largest scale and lowest shift.
FACE_CENTER = (48.0, 44.0)
FACE_SCALE = 0.95
_SHIFT = 4                 # OpenCV sub-pixel bits: coordinates drawn with 1/16 px precision
_ONE = float(1 << _SHIFT)
DARK = np.array([35.0, 22.0, 20.0])


def mix(a, b, t: float) -> tuple:
    """Colour a + t·(b − a), t clipped to [0, 1] (plain floats: this runs ~100 times per image)."""
    t = min(max(float(t), 0.0), 1.0)
    return tuple(float(x) + t * (float(y) - float(x)) for x, y in zip(a, b))


@functools.lru_cache(maxsize=None)
def _arc(n: int, t0: float, t1: float) -> np.ndarray:
    """(n, 2) unit-circle points from angle t0 to t1."""
    t = np.linspace(t0, t1, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24,
             t0: float = 0.0, t1: float = 2 * np.pi) -> np.ndarray:
    """(n, 2) points on an ellipse arc from angle t0 to t1 (y down)."""
    return _arc(n, t0, t1) * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=None)
def _quad_basis(n: int) -> np.ndarray:
    """(n, 3) weights of p0, p1, p2 for the quadratic through p1 at t = ½ (control 2·p1 − (p0+p2)/2)."""
    t = np.linspace(0.0, 1.0, n)
    b0, b1, b2 = (1 - t) ** 2, 2 * (1 - t) * t, t ** 2
    return np.stack([b0 - 0.5 * b1, 2 * b1, b2 - 0.5 * b1], axis=1)


def quad(p0, p1, p2, n: int = 10) -> np.ndarray:
    """(n, 2) points of the quadratic curve from p0 to p2 that passes through p1 at its middle."""
    return _quad_basis(n) @ np.array([p0, p1, p2], np.float64)


def stroke(points: np.ndarray, width) -> np.ndarray:
    """A polyline as a filled polygon of the given width (scalar or one per point)."""
    p = np.asarray(points, np.float64)
    d = np.empty_like(p)
    d[1:-1] = p[2:] - p[:-2]
    d[0], d[-1] = p[1] - p[0], p[-1] - p[-2]
    n = d[:, ::-1] * (-1.0, 1.0)
    n *= (0.5 * np.asarray(width, np.float64) / np.maximum(np.hypot(n[:, 0], n[:, 1]), 1e-9))[:, None]
    return np.concatenate([p + n, (p - n)[::-1]])


class Canvas:
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
        """Draw every recorded shape onto `image` (in place) through the 2×3 `matrix`."""
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


def pose_matrix(nuisance: Nuisance) -> np.ndarray:
    """2×3 similarity: face coordinates (origin at the face centre) → image pixels."""
    theta = np.deg2rad(nuisance.rotation)
    s = FACE_SCALE * nuisance.scale
    cx, cy = FACE_CENTER
    return np.array([[s * np.cos(theta), -s * np.sin(theta), cx + nuisance.shift[0]],
                     [s * np.sin(theta), s * np.cos(theta), cy + nuisance.shift[1]]])


def fill_pixels(image: np.ndarray, points: np.ndarray, color) -> None:
    """Fill a polygon given in image pixels (anti-aliased, sub-pixel precise), in place."""
    cv2.fillPoly(image, [np.round(np.asarray(points) * _ONE).astype(np.int32)], color, cv2.LINE_AA, _SHIFT)
