"""`render_face`: AU intensities + identity + nuisance → a 96×96 RGB uint8 image, deterministically."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from fbn_keras import taxonomy
from fbn_keras.synthetic.appearance import Identity, Nuisance
from fbn_keras.synthetic.draw import IMAGE_SIZE, Canvas, fill_pixels, pose_matrix
from fbn_keras.synthetic.face import draw_face

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
    cv = Canvas()
    draw_face(cv, identity, x)
    image = cv.rasterize(_background(nuisance, rng), pose_matrix(nuisance))
    occ = nuisance.occluder
    if occ is not None:
        box = cv2.ellipse2Poly((0, 0), (100, 100), 0, 0, 360, 12) / 100.0 if occ.kind == "ellipse" \
            else np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
        t = np.deg2rad(occ.angle)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        fill_pixels(image, (box * np.asarray(occ.size)) @ rot.T + np.asarray(occ.center), occ.color)
    return _photometric(image, nuisance, rng)
