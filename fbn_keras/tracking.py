"""Follow faces through a video: detect every N frames, track the five keypoints in between.

Between detections the five alignment keypoints (eyes, nose tip, mouth
corners) are followed with pyramidal Lucas–Kanade optical flow (Bouguet,
"Pyramidal implementation of the Lucas Kanade feature tracker", 2001;
`cv2.calcOpticalFlowPyrLK`) on grayscale frames, and each point is checked by
its forward-backward error (Kalal, Mikolajczyk & Matas, "Forward-Backward
Error: Automatic Detection of Tracking Failures", ICPR 2010): track the point
forward to the new frame and back again; a point that does not come back to
where it started was lost. The detector runs again on the first frame, every
`detect_every` frames, whenever a point is lost, fails the forward-backward
check or leaves the frame, and on every frame while no face is being tracked.

Example:
    tracker = FaceTracker(preprocess.FaceDetector())
    for index, faces in tracker.track(enumerate(rgb_frames)):
        crops = [preprocess.align_face(rgb, face.landmarks) for face in faces]
"""

from __future__ import annotations

import collections
from typing import Iterable, Iterator, Optional, Protocol, Sequence

import cv2
import numpy as np

from fbn_keras.preprocess import Face, ensure_rgb, similarity_transform, transform_points

#: Frames between two scheduled detections, chosen from a measurement on this project's 2-core CPU
#: (benchmarks/bench_video.py: 640x480 mp4 at 30 frames/s, the `small` network, a shared machine).
#: One mtcnn pass costs D = 0.5-0.66 s; the rest of a tracked frame costs c = 2.9 ms (decode 1.1,
#: track 1.2, align 0.6), already more than the `small` network's ~1.7-3 ms per crop. N = D / c =
#: 170-230 would let the detector at most double a frame's cost; on a 10 s clip (21-px window) N = 10, 30, 60,
#: 150, 300 gave 23, 42, 54, 126, 130 frames/s end to end (detect every frame: 1.6) and box centres 0.5,
#: 1.0, 1.0, 1.2, 1.4 px (mean) from detect-every-frame's (faces ~80 px wide). 150 frames (5 s at
#: 30 frames/s) is where the speed levels off; it also bounds how long a newly arrived face goes unseen.
DETECT_EVERY = 150

#: Largest forward-backward error (pixels, in the full frame) a tracked keypoint may have.
#: Measured on the benchmark clip: median 0.001 px, largest 0.007 px over 300 tracked frames; on a
#: face replaced by a grey picture or by another part of the photo: 60-210 px, or the point is lost.
FB_MAX_ERROR = 1.0

#: Lucas–Kanade search window (pixels, each pyramid level) and the pyramid's top level (0 = no pyramid).
#: A window assumes its content only shifts; on a face zooming by 20 % over 30 frames the five points
#: drifted up to 1.2 px (face 40 px wide) / 0.9 px (85 px) with OpenCV's usual 21 px window, 1.15 / 0.74 px
#: with 15, 0.7 / 0.55 px with 11. 15 keeps some margin against compression noise.
WIN_SIZE = 15
MAX_LEVEL = 3

#: Flow is computed on the part of the frame around the faces: their keypoints' extent, widened on
#: each side by this fraction of it (plus one window), so a face may move that far between two frames.
ROI_MARGIN = 1.0


class Detector(Protocol):
    """Anything that finds faces with five landmarks in an RGB uint8 frame, largest first."""

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


class FaceTracker:
    """Faces per frame from a detector run every `detect_every` frames and Lucas–Kanade tracking in between.

    Each tracked face keeps the detector's confidence and its box, moved and
    scaled by the similarity transform (Umeyama fit) that takes the keypoints as
    detected onto the keypoints as tracked. Face k stays face k until the next detection.
    `counts` tells how often the detector ran and why.
    """

    def __init__(self, detector: Detector, detect_every: int = DETECT_EVERY, fb_max_error: float = FB_MAX_ERROR,
                 win_size: int = WIN_SIZE, max_level: int = MAX_LEVEL, roi_margin: float = ROI_MARGIN):
        if int(detect_every) < 1:
            raise ValueError(f"detect_every must be >= 1. Received: detect_every={detect_every}")
        if not float(fb_max_error) > 0:
            raise ValueError(f"fb_max_error must be > 0 pixels. Received: fb_max_error={fb_max_error}")
        if int(win_size) < 3 or int(max_level) < 0 or not float(roi_margin) >= 0:
            raise ValueError(f"win_size must be >= 3, max_level >= 0 and roi_margin >= 0. Received: "
                             f"win_size={win_size}, max_level={max_level}, roi_margin={roi_margin}")
        self.detector = detector
        self.detect_every = int(detect_every)
        self.fb_max_error = float(fb_max_error)
        self.win_size = int(win_size)
        self.max_level = int(max_level)
        self.roi_margin = float(roi_margin)
        self.counts: collections.Counter = collections.Counter()
        self.reset()

    def reset(self) -> None:
        """Forget the faces being tracked (a new video starts): the next frame is detected."""
        self._prev: Optional[np.ndarray] = None      # the previous frame, RGB
        self._detected: list[Face] = []              # the faces as last detected
        self._points: Optional[np.ndarray] = None    # (faces * 5, 2) float32: their keypoints in the previous frame
        self._since_detection = 0

    def track(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, list[Face]]]:
        """(frame index, RGB uint8 frame) in order → (frame index, faces in that frame, largest detected first)."""
        self.reset()
        for index, rgb in frames:
            yield index, self.update(rgb)

    def update(self, rgb: np.ndarray) -> list[Face]:
        """The faces in the next frame of the video."""
        rgb = ensure_rgb(rgb)
        reason = self._must_detect(rgb)
        if reason is None:
            points, reason = self._flow(self._prev, rgb, self._points)
        if reason is None:
            self._points = points
            faces = self._tracked_faces()
            self.counts["tracked"] += 1
            self._since_detection += 1
        else:
            faces = self.detector.detect(rgb)
            self.counts[f"detected: {reason}"] += 1
            self._detected = list(faces)
            self._points = (np.concatenate([f.landmarks for f in faces]).astype(np.float32)
                            if faces else None)
            self._since_detection = 1
        self._prev = rgb
        return faces

    # --- one tracking step ---

    def _must_detect(self, rgb: np.ndarray) -> Optional[str]:
        """Why this frame goes to the detector before any tracking is tried, or None."""
        if self._prev is None:
            return "first frame"
        if self._points is None:
            return "no face"
        if self._since_detection >= self.detect_every:
            return "scheduled"
        if self._prev.shape != rgb.shape:
            return "frame size changed"
        return None

    def _flow(self, prev: np.ndarray, rgb: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, Optional[str]]:
        """Track `points` from `prev` to `rgb` forward and back; the new points and what failed, if anything."""
        h, w = rgb.shape[:2]
        lo, hi = points.min(0), points.max(0)
        pad = self.roi_margin * float(max(hi - lo)) + self.win_size
        x0, y0 = (max(0, int(np.floor(v - pad))) for v in lo)
        x1, y1 = min(w, int(np.ceil(hi[0] + pad)) + 1), min(h, int(np.ceil(hi[1] + pad)) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return points, "points left the frame"
        g0 = cv2.cvtColor(prev[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        g1 = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        offset = np.float32([x0, y0])
        p0 = (points - offset).reshape(-1, 1, 2).astype(np.float32)
        lk = dict(winSize=(self.win_size, self.win_size), maxLevel=self.max_level,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        p1, ok1, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, **lk)
        if p1 is None or not ok1.all():
            return points, "points lost"
        back, ok2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, p1, None, **lk)
        if back is None or not ok2.all():
            return points, "points lost"
        fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
        if not np.all(fb <= self.fb_max_error):        # also catches NaN
            return points, "forward-backward error"
        new = p1.reshape(-1, 2) + offset
        if np.any(new < 0) or np.any(new[:, 0] > w - 1) or np.any(new[:, 1] > h - 1):
            return points, "points left the frame"
        return new.astype(np.float32), None

    def _tracked_faces(self) -> list[Face]:
        """The detected faces moved onto the tracked keypoints: landmarks as tracked, boxes by similarity."""
        faces = []
        for k, face in enumerate(self._detected):
            landmarks = self._points[5 * k:5 * k + 5].copy()
            faces.append(Face(moved_box(face.box, face.landmarks, landmarks), face.confidence, landmarks))
        return faces


def moved_box(box: Sequence[float], src, dst) -> tuple[float, float, float, float]:
    """The (x, y, w, h) box moved by the similarity taking keypoints `src` onto `dst`: centre moved, sides scaled.

    The box stays upright like the detector's; a small tilt in the fit (keypoint jitter) must not widen it.
    """
    x, y, bw, bh = (float(v) for v in box)
    matrix = similarity_transform(src, dst)
    (cx, cy), = transform_points([[x + bw / 2, y + bh / 2]], matrix)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return float(cx - scale * bw / 2), float(cy - scale * bh / 2), scale * bw, scale * bh
