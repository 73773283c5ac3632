"""68-point facial landmarks (iBUG order): dlib's predictor for real frames, and their place in a 96×96 crop.

The journal (Section IV) locates "68 facial landmarks in all frames" with the
dlib library and AffWildNet feeds them, beside the last pooling layer, to its
FC layer (Section V-A). The packages `dlib-bin` (dlib, built) and
`face-recognition-models` (dlib's `shape_predictor_68_face_landmarks.dat`)
ship everything offline; they are imported only when a `Landmarker` is built.
Records store the points in the aligned crop, scaled to [-1, 1] and
flattened x1, y1, … (136 numbers; `fbn_keras.data.LANDMARKS`, docs/VIDEO.md).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

NUM_LANDMARKS = 68

#: iBUG index ranges of the parts (jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67).
PARTS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17), "brow_left": (17, 22), "brow_right": (22, 27), "nose": (27, 36),
    "eye_left": (36, 42), "eye_right": (42, 48), "mouth_outer": (48, 60), "mouth_inner": (60, 68),
}

#: Where dlib's box goes on an aligned 96×96 crop when its own detector finds no face there
#: (measured on an aligned photograph: 0.7 px mean error against the points found in the full image).
CROP_BOX_96: tuple[int, int, int, int] = (12, 18, 84, 90)


def to_unit(points, size: int) -> np.ndarray:
    """(68, 2) pixel coordinates in a `size`×`size` crop → [-1, 1] (x / (size/2) − 1), float32."""
    return (np.asarray(points, np.float64) / (size / 2.0) - 1.0).astype(np.float32)


def from_unit(points, size: int) -> np.ndarray:
    """The inverse of `to_unit`: [-1, 1] → pixels."""
    return ((np.asarray(points, np.float64) + 1.0) * (size / 2.0)).astype(np.float32)


def flatten(points) -> np.ndarray:
    """(68, 2) → (136,) x1, y1, x2, y2, … (the record layout)."""
    pts = np.asarray(points, np.float32)
    if pts.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"Expected {NUM_LANDMARKS} (x, y) landmarks. Received: shape={pts.shape}")
    return pts.reshape(-1)


def in_crop(points, image_shape: tuple[int, ...], size: int, aligned: bool) -> np.ndarray:
    """68 image landmarks → the same points in the writer's `size`×`size` crop (pixels).

    `aligned` (a pre-cropped image, or `--align none`): the crop is the centred
    square resized (`preprocess.square_resize`); otherwise the crop is the
    similarity alignment from the points' five anchors (`preprocess.align_from_landmarks`).
    """
    from fbn_keras import preprocess

    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if pts.shape != (NUM_LANDMARKS, 2) or not np.all(np.isfinite(pts)):
        raise ValueError(f"Expected {NUM_LANDMARKS} finite (x, y) landmarks. Received: shape={np.shape(points)}")
    if aligned:
        top, left, side = preprocess.centre_square(*image_shape[:2])
        # Pixel centres map as the resize maps them: x' + ½ = (x − left + ½) · size / side.
        return ((pts - np.array([left, top], np.float64) + 0.5) * (size / side) - 0.5).astype(np.float32)
    matrix = preprocess.alignment_matrix(preprocess.landmarks68_to_5(pts), size)
    return preprocess.transform_points(pts, matrix).astype(np.float32)


class Landmarker:
    """dlib's frontal face detector and 68-point shape predictor (the journal's Section IV tools)."""

    def __init__(self, predictor_path: Optional[str] = None):
        try:
            import dlib
        except ImportError as err:
            raise ImportError("68-point landmarks need dlib: pip install dlib-bin face-recognition-models "
                              f"(pinned in requirements.txt). ({err})") from None
        if predictor_path is None:
            try:
                import face_recognition_models
            except ImportError as err:
                raise ImportError("dlib's 68-point model ships in face-recognition-models: pip install "
                                  f"face-recognition-models (pinned in requirements.txt). ({err})") from None
            predictor_path = face_recognition_models.pose_predictor_model_location()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))

    def _points(self, rgb: np.ndarray, box) -> np.ndarray:
        shape = self._predictor(np.ascontiguousarray(rgb), box)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def detect(self, rgb: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
        """(68, 2) pixel landmarks of every face dlib finds in an RGB uint8 image, largest face first."""
        boxes = sorted(self._detector(np.ascontiguousarray(rgb), int(upsample)), key=lambda r: -r.area())
        return [self._points(rgb, box) for box in boxes]

    def on_crop(self, crop: np.ndarray) -> np.ndarray:
        """(68, 2) pixel landmarks of the one aligned face filling `crop` (square uint8 RGB).

        dlib's detector runs on the crop; when it finds nothing (a small or hard
        crop) the predictor starts from the box where an aligned face sits.
        """
        size = crop.shape[0]
        boxes = self._detector(np.ascontiguousarray(crop), 0)
        if boxes:
            box = max(boxes, key=lambda r: r.area())
        else:
            box = self._dlib.rectangle(*[int(round(v * size / 96.0)) for v in CROP_BOX_96])
        return self._points(crop, box)
