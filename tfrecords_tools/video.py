"""Reading frames of a database's videos with OpenCV (DISFA, Aff-Wild, AFEW).

Frames are numbered from 1, as the databases' label files number them
(label line k ↔ frame k). A parser yields one `Item` per labelled frame whose
`load` is `frame_loader(path, k)`: a picklable partial that reads frame k.
Each thread keeps its last video open and reads forward, so loading the items
of a video in order decodes it once; an unreadable video or a frame past the
end raises `SkipError` (counted by the writer), never a crash.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import cv2
import numpy as np

from tfrecords_tools.items import Skip, SkipError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".flv", ".m4v")

# Reading forward decodes every frame in between; past this gap a seek is cheaper.
_MAX_FORWARD_GAP = 300

_local = threading.local()


def _open(path: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise SkipError("unreadable_video", path)
    return cap


def frame_count_or_skip(path: str | Path | None, missing: str = "") -> int | Skip:
    """`frame_count(path)`, or the Skip a parser yields instead: once per video, not per labelled frame.

    `path` None means the parser found no file for the video; `missing` names what it looked for.
    """
    if path is None:
        return Skip("missing_file", missing)
    try:
        return frame_count(path)
    except SkipError as e:
        return Skip(e.reason, e.detail)


def frame_count(path: str | Path) -> int:
    """Number of frames in the video; raises SkipError("unreadable_video") if it cannot be opened or decoded.

    The container's frame count is used when it has one and the first frame
    decodes; otherwise the frames are counted by reading them.
    """
    path = str(path)
    if not Path(path).is_file():
        raise SkipError("missing_file", path)
    cap = _open(path)
    try:
        ok, _ = cap.read()
        if not ok:
            raise SkipError("unreadable_video", path)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n > 0:
            return n
        n = 1
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _reader(path: str) -> dict:
    """This thread's open capture of `path`, (re)opened when another video was read last."""
    state = getattr(_local, "state", None)
    if state is None or state["path"] != path:
        if state is not None:
            state["cap"].release()
        state = {"path": path, "cap": _open(path), "next": 1}
        _local.state = state
    return state


def read_frame(path: str, frame: int) -> np.ndarray:
    """Frame `frame` (1-based) of the video at `path` as RGB uint8 (H, W, 3)."""
    if frame < 1:
        raise ValueError(f"frame numbers start at 1. Received: frame={frame}")
    state = _reader(path)
    cap = state["cap"]
    if frame < state["next"] or frame - state["next"] > _MAX_FORWARD_GAP:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame - 1)
        state["next"] = int(cap.get(cv2.CAP_PROP_POS_FRAMES)) + 1
        if state["next"] != frame:  # the backend could not seek exactly: start again and read forward
            cap.release()
            state["cap"] = cap = _open(path)
            state["next"] = 1
    while state["next"] < frame:
        if not cap.grab():
            state["next"] = 1 << 62  # at the end: the next read reopens the video
            raise SkipError("past_video_end", f"{path}#{frame}")
        state["next"] += 1
    ok, bgr = cap.read()
    if not ok or bgr is None:
        state["next"] = 1 << 62
        raise SkipError("past_video_end", f"{path}#{frame}")
    state["next"] += 1
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frame_loader(path: str | Path, frame: int):
    """A picklable `Item.load` that reads frame `frame` (1-based) of `path`."""
    return functools.partial(read_frame, str(path), int(frame))

