"""The contract between a database parser and the shard writer.

A parser reads a database's own files and yields, for every labelled image or
frame, either an `Item` (labels already mapped into the label spaces of docs/LABELS.md) or a
`Skip` (why it cannot be used). A writer (`fbn_keras/records/writer.py`, or the
Beam build in `tfrecords_tools/beam_pipeline.py`) does the rest: loading, face
alignment, JPEG encoding, sharding per task, the manifest and the skip counts.
A parser therefore never touches TFRecords. The parsers live in
`tfrecords_tools/`; this contract is in the library so that the library's own
synthetic test-bed (`fbn_keras/testbed.py`) needs nothing from them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import numpy as np

from fbn_keras import taxonomy
from fbn_keras.manifest import SPLITS  # noqa: F401  (re-exported: the parsers' split names)


@dataclasses.dataclass
class Item:
    """One image (or video frame) with whatever labels its database gives it.

    `load` returns the image as an RGB uint8 (H, W, 3) array and raises
    `SkipError` (or any OSError/ValueError) when it cannot. `aligned` says the
    image is already an aligned face crop (resize only); otherwise the writer
    aligns it from `landmarks` (5 or 68 points, (x, y) in pixels) when given,
    else by detecting the face. 68 landmarks are also written into the record,
    moved into the crop (`fbn_keras/landmarks.py`); `audio` is written as given.
    """

    database: str
    split: str                                   # one of SPLITS
    image_id: str                                # relative path, or "video/frame"
    load: Callable[[], np.ndarray]
    group: str = ""                              # subject or video: the unit of 85/15 splits and of sequences
    frame: int = -1                              # frame number within `group` for video, -1 for stills
    aligned: bool = False
    landmarks: Optional[np.ndarray] = None
    va: Optional[tuple[float, float]] = None     # valence, arousal in [-1, 1]
    expr: int = -1                               # index into taxonomy.EXPRESSIONS, -1 missing
    au: Optional[np.ndarray] = None              # (17,) 0/1 in taxonomy.AUS order
    au_mask: Optional[np.ndarray] = None         # (17,) δ: 1 where the AU is annotated
    compound: int = -1                           # index into taxonomy.COMPOUNDS, -1 missing
    audio: Optional[bytes] = None                # PNG of the frame's spectrogram window (fbn_keras/audio.py)
    intensity: Optional[np.ndarray] = None       # (7,) reaction intensities in [0, 1], taxonomy.REACTIONS order

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task folders this item is written to (a record with two tasks goes to both)."""
        out = []
        if self.va is not None:
            out.append("va")
        if self.au_mask is not None and float(np.sum(self.au_mask)) > 0:
            out.append("au")
        if self.expr >= 0:
            out.append("expr")
        if self.compound >= 0:
            out.append("compound")
        if self.intensity is not None:
            out.append("intensity")
        return tuple(out)

    def validate(self) -> Optional[str]:
        """A skip reason if a label is out of range or NaN, else None."""
        if self.split not in SPLITS:
            return "bad_split"
        if self.va is not None:
            v = np.asarray(self.va, np.float64)
            if v.shape != (2,) or not np.all(np.isfinite(v)):
                return "nan_label"
            if np.any(np.abs(v) > 1.0 + 1e-6):
                return "label_out_of_range"
        if not -1 <= self.expr < taxonomy.NUM_EXPRESSIONS:
            return "label_out_of_range"
        if not -1 <= self.compound < taxonomy.NUM_COMPOUNDS:
            return "label_out_of_range"
        if self.au is not None or self.au_mask is not None:
            if self.au is None or self.au_mask is None:
                return "bad_au_label"
            au, mask = np.asarray(self.au, np.float64), np.asarray(self.au_mask, np.float64)
            if au.shape != (taxonomy.NUM_AUS,) or mask.shape != (taxonomy.NUM_AUS,):
                return "bad_au_label"
            if not (np.all(np.isfinite(au)) and np.all(np.isfinite(mask))):
                return "nan_label"
            if np.any((au < 0) | (au > 1)) or np.any((mask != 0) & (mask != 1)):
                return "label_out_of_range"
        if self.intensity is not None:
            values = np.asarray(self.intensity, np.float64)
            if values.shape != (taxonomy.NUM_REACTIONS,):
                return "bad_intensity_label"
            if not np.all(np.isfinite(values)):
                return "nan_label"
            if np.any((values < 0) | (values > 1)):
                return "label_out_of_range"
        if not self.tasks:
            return "no_usable_label"
        return None


@dataclasses.dataclass
class Skip:
    """Something a parser found but cannot use: counted in the manifest under `reason`."""

    reason: str          # e.g. "missing_file", "corrupt_image", "invalid_label", "no_face", "unreadable_video"
    detail: str = ""     # a path or id, for the one warning line


class SkipError(Exception):
    """Raised by `Item.load` (or the aligner) to skip one item with a named reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


ParsedItem = Union[Item, Skip]
