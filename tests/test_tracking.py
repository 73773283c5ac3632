"""fbn_keras.tracking: a face followed over frames of a real photograph, re-detection, the schedule, the box."""

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fbn_keras import preprocess, tracking

W, H = 320, 240
N_FRAMES = 30


def pan_and_scale(t: int, n: int = N_FRAMES) -> np.ndarray:
    """The (2, 3) warp of frame t: the photo scaled 0.45 → 0.54 (a fifth larger) and panned 60 px right, 20 px up."""
    s = 0.45 + 0.09 * t / n
    return np.float32([[s, 0, 20 + 60 * t / n], [0, s, 10 - 20 * t / n]])


def render(photo: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(photo, matrix, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def moved(points: np.ndarray, frm: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Where points seen under warp `frm` are under warp `to` (both scale + shift): back to the photo, then forward."""
    return (points - frm[:, 2]) / frm[0, 0] * to[0, 0] + to[:, 2]


class Counting:
    """A detector wrapper that records on which calls the detector ran."""

    def __init__(self, detector):
        self.detector, self.calls = detector, 0

    def detect(self, rgb):
        self.calls += 1
        return self.detector.detect(rgb)


class Planted:
    """A detector that 'finds' known landmarks: one face while all five are inside the frame, else none."""

    def __init__(self, landmarks_of):
        self.landmarks_of, self.frame, self.calls = landmarks_of, 0, []

    def detect(self, rgb):
        self.calls.append(self.frame)
        pts = np.float32(self.landmarks_of(self.frame))
        h, w = rgb.shape[:2]
        if np.any(pts < 0) or np.any(pts[:, 0] > w - 1) or np.any(pts[:, 1] > h - 1):
            return []
        lo, hi = pts.min(0), pts.max(0)
        return [preprocess.Face((float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])), 0.99, pts)]


@pytest.fixture(scope="module")
def photo():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def detector():
    return preprocess.FaceDetector(min_confidence=0.9)


def run_frames(tracker, frames, planted=None):
    out = []
    for t, rgb in enumerate(frames):
        if planted is not None:
            planted.frame = t
        out.append(tracker.update(rgb))
    return out


# === A real face, the real detector ===

def test_tracking_keeps_the_eyes_on_a_panned_and_scaled_face(photo, detector):
    """Detected once, then tracked for 29 frames while the face grows by a fifth and moves 60 px.

    The bound: every tracked eye stays within 2 px of where the applied warp puts the first detection's
    eyes (measured: at most 1.2 px, the drift growing with the zoom; mtcnn run on every frame itself lands
    up to ~1 px from those positions). The face is 40-48 px wide; a tracker that lost it would be tens of
    pixels off, one that only followed the pan would be up to 4 px off by the last frame.
    """
    frames = [render(photo, pan_and_scale(t)) for t in range(N_FRAMES)]
    counting = Counting(detector)
    tracker = tracking.FaceTracker(counting, detect_every=1000)
    faces = [f for _, f in tracker.track(enumerate(frames))]
    assert counting.calls == 1 and tracker.counts == {"detected: first frame": 1, "tracked": N_FRAMES - 1}
    assert all(len(f) == 1 for f in faces)
    first = faces[0][0]
    for t in range(1, N_FRAMES):
        expected = moved(first.landmarks, pan_and_scale(0), pan_and_scale(t))
        eyes = np.linalg.norm(faces[t][0].landmarks[:2] - expected[:2], axis=1)
        assert eyes.max() < 2.0, (t, eyes)
        assert faces[t][0].confidence == first.confidence
    # The box moved and grew with the face: its centre and width follow the warp.
    m0, m1 = pan_and_scale(0), pan_and_scale(N_FRAMES - 1)
    x, y, w, h = first.box
    (cx, cy), = moved(np.float32([[x + w / 2, y + h / 2]]), m0, m1)
    x1, y1, w1, h1 = faces[-1][0].box
    assert (x1 + w1 / 2, y1 + h1 / 2) == pytest.approx((cx, cy), abs=3)
    assert w1 / w == pytest.approx(m1[0, 0] / m0[0, 0], rel=0.05)


def test_a_lost_face_is_detected_again(photo, detector):
    """Face for frames 0-7, a blank grey picture for 8-12, the face again (moved on) from 13."""
    blank = np.full((H, W, 3), 128, np.uint8)
    frames = [blank if 8 <= t <= 12 else render(photo, pan_and_scale(t)) for t in range(21)]
    counting = Counting(detector)
    tracker = tracking.FaceTracker(counting, detect_every=1000)
    faces = run_frames(tracker, frames)
    assert [len(f) for f in faces] == [1] * 8 + [0] * 5 + [1] * 8
    # Detector runs: frame 0; frame 8 (tracking fails on the blank); 9-13 (no face held); 13 finds it again.
    assert counting.calls == 7 and tracker.counts["tracked"] == 14
    assert tracker.counts["detected: no face"] == 5
    assert tracker.counts["detected: points lost"] + tracker.counts["detected: forward-backward error"] == 1
    expected = moved(faces[0][0].landmarks, pan_and_scale(0), pan_and_scale(20))
    assert np.linalg.norm(faces[20][0].landmarks - expected, axis=1)[:2].max() < 2.5


# === The schedule and the failure checks, with a planted detector ===

def test_detects_on_schedule(photo):
    frames = [render(photo, pan_and_scale(t)) for t in range(12)]
    planted = Planted(lambda t: moved(np.float32([[150, 110], [170, 110], [160, 125], [152, 140], [168, 140]]),
                                      pan_and_scale(0), pan_and_scale(t)))
    tracker = tracking.FaceTracker(planted, detect_every=5)
    faces = run_frames(tracker, frames, planted)
    assert planted.calls == [0, 5, 10] and all(len(f) == 1 for f in faces)
    assert tracker.counts == {"detected: first frame": 1, "detected: scheduled": 2, "tracked": 9}


def test_points_leaving_the_frame_force_a_detection(photo):
    """The face slides 12 px a frame out of the right edge: tracking fails there and the detector is asked."""
    base = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)[:, :W - 64]   # face near x 90-135
    frames = [cv2.warpAffine(base, np.float32([[1, 0, 12 * t], [0, 1, 0]]), (W - 64, 256),
                             borderMode=cv2.BORDER_REPLICATE) for t in range(14)]
    start = np.float32([[100, 55], [124, 55], [112, 68], [103, 80], [121, 80]])
    planted = Planted(lambda t: start + np.float32([12 * t, 0]))
    tracker = tracking.FaceTracker(planted, detect_every=1000, fb_max_error=5.0)
    faces = run_frames(tracker, frames, planted)
    # Keypoint x reaches the last column (255) at 124 + 12 t > 255, t >= 11: no face from frame 11 on.
    assert [len(f) for f in faces] == [1] * 11 + [0] * 3
    # Tracked while well inside (frames 1-8), then the detector on the frame a keypoint leaves (11) and after.
    assert planted.calls[0] == 0 and planted.calls[1] >= 9 and planted.calls[-3:] == [11, 12, 13]
    assert tracker.counts["detected: no face"] == 2 and tracker.counts["tracked"] >= 9
    np.testing.assert_allclose(faces[10][0].landmarks, start + [120, 0], atol=1.5)


def test_forward_backward_error_threshold(photo):
    """A tiny threshold turns every tracked frame into a detection; the default lets the smooth pan track."""
    frames = [render(photo, pan_and_scale(t)) for t in range(4)]
    def landmarks(t):
        return moved(np.float32([[150, 110], [170, 110], [160, 125], [152, 140], [168, 140]]),
                     pan_and_scale(0), pan_and_scale(t))

    planted = Planted(landmarks)
    strict = tracking.FaceTracker(planted, detect_every=1000, fb_max_error=1e-9)
    run_frames(strict, frames, planted)
    assert planted.calls == [0, 1, 2, 3] and strict.counts["detected: forward-backward error"] == 3
    planted = Planted(landmarks)
    default = tracking.FaceTracker(planted, detect_every=1000)
    run_frames(default, frames, planted)
    assert planted.calls == [0]


def test_moved_box_by_hand():
    src = np.float32([[0, 0], [10, 0], [5, 5], [2, 9], [8, 9]])
    # Scale 2 and shift (5, -3): the box (10, 20, 30, 40) → corners (25, 37) and (85, 117).
    assert tracking.moved_box((10, 20, 30, 40), src, src * 2 + [5, -3]) == pytest.approx((25, 37, 60, 80), abs=1e-4)
    # A quarter turn about the origin, (x, y) → (-y, x): the centre (25, 40) goes to (-40, 25), the box stays upright.
    turned = np.stack([-src[:, 1], src[:, 0]], 1)
    assert tracking.moved_box((10, 20, 30, 40), src, turned) == pytest.approx((-55, 5, 30, 40), abs=1e-4)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="detect_every must be >= 1"):
        tracking.FaceTracker(Planted(lambda t: None), detect_every=0)
    with pytest.raises(ValueError, match="fb_max_error must be > 0"):
        tracking.FaceTracker(Planted(lambda t: None), fb_max_error=0)
