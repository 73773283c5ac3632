"""One parser Item → its record: load the image, crop the face to 96×96, JPEG-encode, build the Example.

Both shard writers use this: the single-process one (`fbn_keras/records/writer.py`)
and the Apache Beam build (`tfrecords_tools/beam_pipeline.py`). Bad input is a
`SkipError` with a named reason (counted by the writer), never a crash.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import tensorflow as tf

from fbn_keras import data
from fbn_keras.records.items import Item, SkipError

IMAGE_SIZE = 96
JPEG_QUALITY = 95
ALIGN_MODES = ("auto", "detect", "none")

Aligner = Callable[[np.ndarray, Item], np.ndarray]


# === Images ===

def _as_rgb(image) -> np.ndarray:
    """uint8 (H, W, 3) from what a loader returned (grayscale and RGBA are converted), else SkipError."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or arr.size == 0:
        raise SkipError("corrupt_image", f"loader returned dtype={arr.dtype}, shape={arr.shape}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.shape[2] != 3:
        raise SkipError("corrupt_image", f"loader returned shape={arr.shape}")
    return np.ascontiguousarray(arr)


def resize(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Square uint8 crop of side `size`: `fbn_keras.preprocess.square_resize`, the crop `predict --aligned` uses."""
    from fbn_keras import preprocess
    return preprocess.square_resize(rgb, size)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """RGB uint8 → JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SkipError("encode_failed", f"shape={rgb.shape}")
    return buf.tobytes()


# === Alignment ===

def make_aligner(mode: str = "auto", size: int = IMAGE_SIZE, detector=None, landmarker=None) -> Aligner:
    """The face-cropping policy of `--align` as a function `(rgb, item) -> (size, size, 3) uint8`.

    auto:   `item.aligned` → centre-crop + resize; `item.landmarks` → similarity
            alignment from them (5 or 68 points); else detect the face.
    detect: always detect (given landmarks and `aligned` are ignored).
    none:   centre-crop + resize every image, no detection (pre-cropped data).
    A face not found raises `SkipError("no_face")`; unusable landmarks
    `SkipError("bad_landmarks")`. `fbn_keras.preprocess` (and mtcnn) are
    imported only when a path needs them; the detector is built once.
    `landmarker` (a `fbn_keras.landmarks.Landmarker`) finds dlib's 68 points on
    every crop whose item brings none, for the record's `feature/landmarks`; on a
    crop where dlib finds no face the record keeps landmarks mask 0 (`landmarks_missed`).
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}. Received: align={mode!r}")
    state = {"detector": detector}

    def detect(rgb: np.ndarray, item: Item) -> np.ndarray:
        from fbn_keras import preprocess
        if state["detector"] is None:
            state["detector"] = preprocess.FaceDetector()
        faces = state["detector"].detect(rgb)
        if not faces:
            raise SkipError("no_face", item.image_id)
        return preprocess.align_face(rgb, faces[0].landmarks, size=size)   # faces come largest first

    def from_landmarks(rgb: np.ndarray, item: Item) -> np.ndarray:
        from fbn_keras import preprocess
        try:
            return preprocess.align_from_landmarks(rgb, item.landmarks, size=size)
        except ValueError as err:
            raise SkipError("bad_landmarks", f"{item.image_id}: {err}") from None

    def align(rgb: np.ndarray, item: Item) -> np.ndarray:
        if mode == "none" or (mode == "auto" and item.aligned):
            return resize(rgb, size)
        if mode == "auto" and item.landmarks is not None:
            return from_landmarks(rgb, item)
        return detect(rgb, item)

    align.mode = mode            # `process` needs it to move given landmarks into the crop
    align.landmarker = landmarker
    return align


def process(item: Item, aligner: Aligner, quality: int = JPEG_QUALITY) -> tf.train.Example:
    """One item → its record, or `SkipError` with the reason (labels are checked before any file is read)."""
    reason = item.validate()
    if reason:
        raise SkipError(reason, _describe_labels(item))
    try:
        image = item.load()
    except SkipError:
        raise
    except FileNotFoundError as err:
        raise SkipError("missing_file", str(err)) from None
    except (OSError, ValueError, cv2.error) as err:
        raise SkipError("corrupt_image", str(err)) from None
    rgb = _as_rgb(image)
    crop = aligner(rgb, item)
    return data.make_example(
        encode_jpeg(crop, quality), item.database, item.image_id, group=item.group, frame=item.frame,
        va=item.va, expr=item.expr, au=item.au if item.au_mask is not None else None,
        au_mask=item.au_mask, compound=item.compound,
        landmarks=_record_landmarks(item, rgb.shape, crop, aligner), audio=item.audio, intensity=item.intensity)


def _record_landmarks(item: Item, shape: tuple, crop: np.ndarray, aligner: Aligner) -> "np.ndarray | None":
    """The record's landmarks: the item's own moved into the crop, else the aligner's landmarker on the crop."""
    points = _crop_landmarks(item, shape, crop.shape[0], getattr(aligner, "mode", None))
    landmarker = getattr(aligner, "landmarker", None)
    if points is None and landmarker is not None:
        from fbn_keras import landmarks
        # dlib's detector on the crop as `Landmarker.on_crop` runs it, then once upsampled for a small face;
        # nothing found: no landmarks (mask 0), not on_crop's guessed box.
        found = landmarker.detect(crop, upsample=0) or landmarker.detect(crop, upsample=1)
        # Not clipped: a point dlib places beyond the crop (a chin the alignment cut) keeps its geometry, a
        # little outside [-1, 1], as the landmarks a database ships do (`_crop_landmarks`).
        points = landmarks.to_unit(found[0], crop.shape[0]) if found else None
    return points


def landmarks_missed(example: tf.train.Example, aligner: Aligner) -> bool:
    """True when the aligner's landmarker ran on this record's crop and found no face: landmarks mask 0."""
    return getattr(aligner, "landmarker", None) is not None and data.LANDMARKS_MASK not in example.features.feature


def _crop_landmarks(item: Item, shape: tuple, size: int, mode) -> "np.ndarray | None":
    """An item's 68 landmarks in its crop, scaled to [-1, 1] (`fbn_keras.landmarks`); None when it has
    none, or when the crop was not made from them or the whole image (`--align detect`; a custom aligner
    on an image that is not `aligned`)."""
    if item.landmarks is None or np.size(item.landmarks) != 136:
        return None
    if mode == "detect" or (mode is None and not item.aligned):
        return None
    from fbn_keras import landmarks
    try:
        points = landmarks.in_crop(item.landmarks, shape, size, aligned=item.aligned or mode == "none")
    except ValueError as err:
        raise SkipError("bad_landmarks", f"{item.image_id}: {err}") from None
    return landmarks.to_unit(points, size)


def _describe_labels(item: Item) -> str:
    return (f"va={item.va} expr={item.expr} compound={item.compound} au={None if item.au is None else list(item.au)}"
            + ("" if item.intensity is None else f" intensity={list(np.asarray(item.intensity))}"))
