"""OMG-Emotion parser: utterance videos labelled with one valence-arousal pair each (Barros et al. 2018).

Layout as distributed: the challenge's CSV files (anywhere up to two levels
below ROOT) `omg_TrainVideos.csv`, `omg_ValidationVideos.csv` and
`omg_TestVideos_WithLabels.csv`, with the columns

    link,start,end,video,utterance,arousal,valence,EmotionMaxVote

and the utterance clips its download script cut from YouTube, saved as
`<any folder>/<video>/<utterance>` (e.g. `Train/5b44393ed/utterance_4.mp4`).
Valence is in [-1, 1], arousal in [0, 1]: we store 2·arousal − 1, so both live in
[-1, 1] like every other VA label (CCC is unchanged when labels and predictions
are mapped alike; docs/FAITHFULNESS.md, "Video"). Labels are per utterance
(journal Section V-B): every frame of an utterance carries the utterance's pair,
and each utterance is one group (`<video>/<utterance>`), i.e. one sequence.
`--audio` adds each frame's spectrogram window from `<utterance>.wav` beside the
clip (`fbn_keras/audio.py`; extract it with `ffmpeg -i u.mp4 -ac 1 -ar 44100 u.wav`).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from tfrecords_tools import parsing, video
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "omg"
#: The published label files → our split (the test labels were released after the challenge).
CSV_FILES: dict[str, str] = {
    "omg_TrainVideos.csv": "train",
    "omg_ValidationVideos.csv": "validation",
    "omg_TestVideos_WithLabels.csv": "test",
}
COLUMNS = ("video", "utterance", "arousal", "valence")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """OMG-Emotion options: frame sampling, the audio feature."""
    parser.add_argument("--every", type=int, default=1,
                        help="keep frames 1, 1+N, 1+2N, … of each utterance (default 1: every frame)")
    parser.add_argument("--audio", action="store_true",
                        help="add each frame's spectrogram window from <utterance>.wav beside the clip")


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of one label CSV (ValueError naming the file when a needed column is missing)."""
    with open(path, newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing}; expected {list(COLUMNS)} among its header")
        return list(reader)


def utterance_va(row: dict[str, str]) -> tuple[tuple[float, float] | None, str | None]:
    """(valence, 2·arousal − 1), or (None, reason) for a missing, non-numeric or out-of-range label."""
    v, a = parsing.float_or_none(row.get("valence")), parsing.float_or_none(row.get("arousal"))
    if a is not None and np.isfinite(a) and not 0.0 <= a <= 1.0:
        return None, "label_out_of_range"
    return parsing.check_va(v, None if a is None else 2.0 * a - 1.0)


def index_clips(root: Path) -> dict[tuple[str, str], Path]:
    """(video, utterance file name) → path of every video file below `root` (first found wins)."""
    out: dict[tuple[str, str], Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in video.VIDEO_SUFFIXES and path.is_file():
            out.setdefault((path.parent.name, path.name), path)
    return out


def _fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return fps if fps > 0 else 25.0


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per kept frame of every utterance with a valid label and a readable clip."""
    args = parsing.with_defaults(args, add_arguments)
    if args.every < 1:
        raise ValueError(f"--every must be >= 1. Received: every={args.every}")
    root = Path(root)
    tables = [(parsing.find_file(root, name, max_depth=2), split) for name, split in CSV_FILES.items()]
    tables = [(path, split) for path, split in tables if path is not None]
    if not tables:
        raise FileNotFoundError(f"OMG-Emotion: none of {list(CSV_FILES)} below {root}")
    clips = index_clips(root)
    seen: set[tuple[str, str]] = set()
    for path, split in tables:
        for line, row in enumerate(read_rows(path), start=2):
            vid, utt = (row.get("video") or "").strip(), (row.get("utterance") or "").strip()
            where = f"{path.name}:{line} {vid}/{utt}"
            if not vid or not utt:
                yield Skip("invalid_row", where)
                continue
            if (vid, utt) in seen:
                yield Skip("duplicate_row", where)
                continue
            seen.add((vid, utt))
            va, problem = utterance_va(row)
            if problem:
                yield Skip(problem, f"{where}: valence={row.get('valence')!r} arousal={row.get('arousal')!r}")
                continue
            clip = clips.get((vid, utt))
            n_frames = video.frame_count_or_skip(clip, f"{root}/…/{vid}/{utt}")
            if isinstance(n_frames, Skip):
                yield n_frames
                continue
            frames = list(range(1, n_frames + 1, args.every))
            windows = [None] * len(frames)
            if args.audio:
                wav = clip.with_suffix(".wav")
                if wav.is_file():
                    try:
                        from fbn_keras import audio
                        windows = audio.video_windows(wav, np.asarray(frames), _fps(clip))
                    except ValueError as err:
                        yield Skip("unreadable_audio", f"{wav}: {err}")
                else:
                    yield Skip("missing_audio", str(wav))
            group = f"{vid}/{Path(utt).stem}"
            for k, window in zip(frames, windows):
                yield Item(database=DATABASE, split=split, image_id=f"{group}/{k:05d}",
                           load=video.frame_loader(clip, k), group=group, frame=k, va=va, audio=window)
