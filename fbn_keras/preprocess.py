"""Face pre-processing: detection with 5 landmarks, similarity alignment, crop, scaling to [-1, 1] (main paper Section 5).

The paper detects the face, aligns it with a similarity transform to a frontal
template and feeds a 96×96 crop scaled to [-1, 1]. The template is the widely
used ArcFace 112×112 five-point template scaled by 96/112. Detection uses the
`mtcnn` package (its weights ship inside the wheel). Alignment is numpy/OpenCV;
the scaling also runs on tensors, so it can sit inside a `tf.data` map.

Example:
    detector = FaceDetector()
    for face in detector.detect(rgb):
        crop = align_face(rgb, face.landmarks)          # (96, 96, 3) uint8
        x = to_model_input(crop)                        # float32 in [-1, 1]
"""

from __future__ import annotations

import dataclasses
import io
import threading
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from PIL import Image
import tensorflow as tf

# === Templates ===

#: The five-point ArcFace template for 112×112 crops, (x, y) in pixels, in mtcnn's
#: keypoint order (image-left eye first).
ARCFACE_TEMPLATE_112: np.ndarray = np.array([
    [38.2946, 51.6963],   # left_eye (image left: the subject's right eye)
    [73.5318, 51.5014],   # right_eye
    [56.0252, 71.7366],   # nose
    [41.5493, 92.3655],   # mouth_left
    [70.7299, 92.2041],   # mouth_right
], np.float32)
ARCFACE_TEMPLATE_112.setflags(write=False)

#: mtcnn's keypoint names, in the row order of every (5, 2) landmark array here.
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Pixel side of the network's input (main paper Section 5).
DEFAULT_SIZE = 96

#: Border filling for the parts of a crop that fall outside the image.
BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


def template(size: int = DEFAULT_SIZE) -> np.ndarray:
    """The ArcFace five-point template scaled from 112 to `size` pixels: (5, 2) float32."""
    if int(size) < 8:
        raise ValueError(f"size must be >= 8 pixels. Received: size={size}")
    return ARCFACE_TEMPLATE_112 * np.float32(size / 112.0)


# === Image checks ===

def ensure_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, 3) RGB array from a uint8 grayscale, (H, W, 1), RGB or RGBA image.

    Grayscale is replicated to three channels and the alpha channel is dropped;
    any other dtype or shape raises a ValueError that says what was received.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image (0..255). Received: dtype={arr.dtype}, shape={arr.shape}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"Expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). "
                         f"Received: shape={arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if channels == 3:
        return np.ascontiguousarray(arr)
    if channels == 4:
        return np.ascontiguousarray(arr[:, :, :3])
    raise ValueError(f"Expected 1, 3 or 4 channels. Received: shape={arr.shape}")


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded image bytes → RGB uint8 (H, W, 3); raises ValueError naming `name` unless they fully decode.

    PIL rather than cv2.imdecode: OpenCV returns a half-grey picture for a
    truncated JPEG where PIL raises, and a truncated file must be reported.
    """
    if not data:
        raise ValueError(f"cannot read {name}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises all three on bad files
        raise ValueError(f"cannot decode {name} as an image ({err})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"cannot decode {name} as an image (shape {rgb.shape})")
    return np.ascontiguousarray(rgb)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); raises ValueError naming the file if it cannot."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    return decode_image(data, str(path))


def _points(points, name: str = "landmarks") -> np.ndarray:
    arr = np.asarray(points, np.float64)
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) (x, y) points. Received: shape={np.shape(points)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contain NaN or infinite values: {arr.tolist()}")
    return arr


# === Similarity alignment ===

def similarity_transform(src, dst, weights=None) -> np.ndarray:
    """Weighted least-squares similarity (rotation, uniform scale, shift) taking `src` onto `dst`: a (2, 3) matrix.

    Umeyama (1991), "Least-squares estimation of transformation parameters
    between two point patterns", eq. 40–42, without reflection; `weights`
    (one per point, default all equal) weight each point's squared error.
    """
    src, dst = _points(src, "src"), _points(dst, "dst")
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"src and dst must be the same (N >= 2, 2) shape. Received: {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(src),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {len(src)} non-negative numbers, not all 0. Received: {weights}")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s, d = src - mu_s, dst - mu_d
    var_s = float(w @ (s ** 2).sum(1))
    if var_s <= 1e-12:
        raise ValueError(f"src points are all the same; no transform is defined: {src.tolist()}")
    cov = (d * w[:, None]).T @ s
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:     # keep a rotation, never a mirror image
        e[1, 1] = -1.0
    rot = u @ e @ vt
    scale = float(np.trace(np.diag(sig) @ e)) / var_s
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def transform_points(points, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2) points."""
    pts = _points(points, "points")
    m = np.asarray(matrix, np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"matrix must be (2, 3). Received: shape={m.shape}")
    return pts @ m[:, :2].T + m[:, 2]


#: Per-landmark weights of the alignment fit (left eye, right eye, nose, mouth left, mouth right).
#: The mouth corners move with the very AUs we predict (AU12, AU15, AU20, AU25/26) and would
#: drag the face off the template in a plain 5-point fit (a broad smile moves the eyes > 2 px);
#: the eyes, which barely move with expression, count twice. All ones gives the usual ArcFace fit.
LANDMARK_WEIGHTS: tuple[float, ...] = (2.0, 2.0, 1.0, 1.0, 1.0)


def alignment_matrix(landmarks5, size: int = DEFAULT_SIZE, weights=LANDMARK_WEIGHTS) -> np.ndarray:
    """The (2, 3) similarity taking five image landmarks onto `template(size)` (weighted by `weights`)."""
    pts = _points(landmarks5)
    if pts.shape != (5, 2):
        raise ValueError(f"Expected 5 landmarks {LANDMARK_NAMES}. Received: shape={np.shape(landmarks5)}")
    return similarity_transform(pts, template(size), weights)


def align_face(rgb: np.ndarray, landmarks5, size: int = DEFAULT_SIZE, border: str = "replicate") -> np.ndarray:
    """Warp the face with these five landmarks onto the template: a (size, size, 3) uint8 crop.

    A face much larger than the crop is first shrunk with area averaging, so
    the warp does not alias. `border` fills what falls outside the image:
    "replicate" (default: no black wedges the network never saw in training)
    or "constant" (black).
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {sorted(BORDERS)}. Received: border={border!r}")
    image = ensure_rgb(rgb)
    pts = _points(landmarks5)
    matrix = alignment_matrix(pts, size)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # Area-average down to about the crop's resolution, then warp at ~1:1.
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        pts = pts * np.array([nw / w, nh / h])
        matrix = alignment_matrix(pts, size)
    return cv2.warpAffine(image, matrix, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                          borderMode=BORDERS[border], borderValue=(0, 0, 0))


def landmarks68_to_5(points) -> np.ndarray:
    """iBUG 68 points → the five alignment points: eye centres (36–41, 42–47), nose tip 30, mouth corners 48, 54."""
    pts = _points(points)
    if pts.shape != (68, 2):
        raise ValueError(f"Expected 68 iBUG landmarks. Received: shape={np.shape(points)}")
    return np.stack([
        pts[36:42].mean(0),   # image-left eye (the subject's right eye)
        pts[42:48].mean(0),
        pts[30],
        pts[48],
        pts[54],
    ]).astype(np.float32)


def align_from_landmarks(rgb: np.ndarray, landmarks, size: int = DEFAULT_SIZE,
                         border: str = "replicate") -> np.ndarray:
    """Align from landmarks a database ships: 5 points (mtcnn order) or 68 iBUG points, flat or (N, 2)."""
    pts = _points(landmarks)
    if pts.shape == (68, 2):
        pts = landmarks68_to_5(pts)
    elif pts.shape != (5, 2):
        raise ValueError(f"Expected 5 or 68 (x, y) landmarks. Received: shape={np.shape(landmarks)}")
    return align_face(rgb, pts, size=size, border=border)


# === Pre-cropped faces: one crop for the shard writer and for predict --aligned ===

def centre_square(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the largest centred square in a height × width image (odd leftovers go below/right)."""
    side = min(int(height), int(width))
    return (int(height) - side) // 2, (int(width) - side) // 2, side


def square_resize(rgb: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """An already-cropped face as the network's (size, size, 3) uint8 input: centre square, then resize.

    The crop keeps the face's proportions (no stretching of a non-square
    image); shrinking averages areas (cv2.INTER_AREA, no aliasing), enlarging
    is bilinear. The shard writer (`tfrecords_tools.writer.resize`) and
    `predict --aligned` both go through this, so training and inference see
    the same pixels for the same picture.
    """
    image = np.asarray(rgb)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"Expected an image of shape (H, W) or (H, W, C). Received: shape={image.shape}")
    if int(size) < 1:
        raise ValueError(f"size must be >= 1 pixel. Received: size={size}")
    top, left, side = centre_square(*image.shape[:2])
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (int(size), int(size)), interpolation=interp)


# === Scaling to the network's range ===

def to_model_input(image):
    """uint8 pixels → float32 in [-1, 1] as x/127.5 − 1 (main paper Section 5); numpy in, numpy out; tensor in, tensor out."""
    if tf.is_tensor(image):
        if image.dtype != tf.uint8:
            raise ValueError(f"Expected a uint8 image tensor. Received: dtype={image.dtype.name}")
        return tf.cast(image, tf.float32) / 127.5 - 1.0
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image. Received: dtype={arr.dtype}")
    return arr.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def from_model_input(x):
    """The inverse of `to_model_input` for display: [-1, 1] → uint8 (rounded, clipped)."""
    if tf.is_tensor(x):
        y = tf.round((tf.cast(x, tf.float32) + 1.0) * 127.5)
        return tf.cast(tf.clip_by_value(y, 0.0, 255.0), tf.uint8)
    y = np.round((np.asarray(x, np.float32) + 1.0) * 127.5)
    return np.clip(y, 0, 255).astype(np.uint8)


# === Detection ===

@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face: box (x, y, w, h) in pixels, detector confidence, (5, 2) float32 landmarks."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


class FaceDetector:
    """MTCNN face detector with five landmarks; the networks are built on first use (slow to build).

    Faces below `min_confidence` are dropped; the rest are returned largest
    first, so face 0 is the main subject.
    """

    def __init__(self, min_confidence: float = 0.9, min_face_size: int = 20, device: Optional[str] = None):
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1]. Received: min_confidence={min_confidence}")
        if int(min_face_size) < 12:
            raise ValueError(f"min_face_size must be >= 12 pixels. Received: min_face_size={min_face_size}")
        self.min_confidence = float(min_confidence)
        self.min_face_size = int(min_face_size)
        self.device = device
        self._mtcnn = None
        self._lock = threading.Lock()

    def _detector(self):
        with self._lock:
            if self._mtcnn is None:
                from mtcnn import MTCNN  # imported late: building it costs seconds
                device = self.device or ("GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0")
                self._mtcnn = MTCNN(device=device)
            return self._mtcnn

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 image, largest first."""
        return self.detect_batch([rgb])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each of several RGB uint8 images (one mtcnn call; images of one size batch best)."""
        rgbs = [ensure_rgb(im) for im in images]
        if not rgbs:
            return []
        rows = self._detector().detect_faces(rgbs, output_type="numpy", box_format="xyxy",
                                             min_face_size=self.min_face_size)
        rows = np.asarray(rows, np.float64).reshape(-1, np.shape(rows)[-1] if np.size(rows) else 16)
        out: list[list[Face]] = [[] for _ in rgbs]
        for row in rows:
            # mtcnn's numpy rows: image id, x1, y1, x2, y2, confidence, five x's, then five y's.
            conf = float(row[5])
            if conf < self.min_confidence:
                continue
            x1, y1, x2, y2 = (float(v) for v in row[1:5])
            landmarks = np.stack([row[6:11], row[11:16]], axis=1).astype(np.float32)
            out[int(row[0])].append(Face((x1, y1, x2 - x1, y2 - y1), conf, landmarks))
        return [sorted(faces, key=lambda f: -f.area) for faces in out]


def detect_and_align(rgb: np.ndarray, detector: FaceDetector, size: int = DEFAULT_SIZE,
                     border: str = "replicate") -> list[tuple[Face, np.ndarray]]:
    """Every face in the image, largest first, each with its aligned (size, size, 3) uint8 crop."""
    image = ensure_rgb(rgb)
    return [(face, align_face(image, face.landmarks, size=size, border=border)) for face in detector.detect(image)]
