"""Hume-Reaction parser: reaction videos labelled with one vector of 7 emotional-reaction intensities each.

The database of MuSe 2022's Emotional Reactions sub-challenge and of ABAW5's Emotional Reaction Intensity
challenge (FaceRNET paper, Section 3.3: 25,067 videos of 2,222 subjects; train 15,806, validation 4,657,
test 4,604). Layout as distributed (docs/DATABASES.md), anywhere up to three levels below ROOT:

- a label table: a CSV whose header holds a video id column (`File_ID`, or `Id`) and the 7 columns
  `Adoration, Amusement, Anxiety, Disgust, Empathic-Pain, Fear, Surprise` (intensities in [0, 1]);
  ABAW5's `data_info.csv` also holds a `Split` column (`Train`, `Val`, `Test`);
- otherwise a split table: a CSV with the id column and a `Split` (or `Partition`) column (MuSe 2022's
  partition file);
- otherwise the split is read from a folder of the video's path (`train`, `val`/`validation`/`devel`,
  `test`);
- the videos, `<File_ID>.mp4` (any video suffix) anywhere below ROOT; ids written `[00001]` match
  `00001.mp4`.

Every frame (or every N-th, `--every N`) of a video becomes a record carrying the video's 7 intensities
(`label/intensity`, `mask/intensity`; docs/RECORDS.md) in the `intensity` task folder; each video is one
group (a sequence). The test labels were not published: as for the other databases without them, the
published validation set is our `test` split and the training set is split 85/15 by video into `train`
and `validation` (`--val-fraction`); when the label table does label test videos, the published splits
are kept. A video with a missing, non-numeric, NaN or out-of-range intensity, no video file, or an
unreadable video is skipped and counted once (tfrecords_tools/README.md).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from fbn_keras import taxonomy
from tfrecords_tools import parsing, splits, video
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "hume-reaction"
ID_COLUMNS = ("file_id", "id")
SPLIT_COLUMNS = ("split", "partition")
#: Published split names (lower case) → the published split they are.
PUBLISHED: dict[str, str] = {"train": "train", "training": "train", "val": "validation",
                             "validation": "validation", "devel": "validation", "development": "validation",
                             "dev": "validation", "test": "test"}
MAX_DEPTH = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Hume-Reaction options: frame sampling and the train/validation split of the published training set."""
    parser.add_argument("--every", type=int, default=1,
                        help="keep frames 1, 1+N, 1+2N, … of each video (default 1: every frame)")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def video_id(text: Optional[str]) -> str:
    """A File_ID as the label files write it ("00001", "[00001]", "00001.mp4") → "00001"."""
    text = (text or "").strip().strip("[]").strip()
    stem = Path(text).stem if Path(text).suffix.lower() in video.VIDEO_SUFFIXES else text
    return stem


def _column(header: list[str], names: tuple[str, ...]) -> Optional[str]:
    lower = {h.strip().lower(): h for h in header}
    return next((lower[n] for n in names if n in lower), None)


def _csv_files(root: Path) -> list[Path]:
    found = []
    for depth in range(MAX_DEPTH + 1):
        found += sorted(p for p in root.glob("/".join(["*"] * (depth + 1))) if p.suffix.lower() == ".csv"
                        and p.is_file())
    return found


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def find_tables(root: Path) -> tuple[Optional[Path], Optional[Path]]:
    """(label table, split table) below `root`: the first CSV with an id column and the 7 reaction
    columns, and the first other CSV with an id and a split column (None where there is none)."""
    labels = split = None
    for path in _csv_files(root):
        header = _read_header(path)
        if _column(header, ID_COLUMNS) is None:
            continue
        if labels is None and all(name in header for name in taxonomy.REACTIONS):
            labels = path
        elif split is None and _column(header, SPLIT_COLUMNS) is not None:
            split = path
    return labels, split


def _read_header(path: Path) -> list[str]:
    with open(path, newline="", errors="replace") as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def intensities(row: dict[str, str]) -> tuple[Optional[np.ndarray], Optional[str]]:
    """The row's 7 intensities in REACTIONS order, or (None, reason): invalid_label (missing or not a
    number), nan_label, label_out_of_range (outside [0, 1])."""
    values = [parsing.float_or_none(row.get(name)) for name in taxonomy.REACTIONS]
    if any(v is None for v in values):
        return None, "invalid_label"
    out = np.asarray(values, np.float64)
    if not np.all(np.isfinite(out)):
        return None, "nan_label"
    if np.any((out < 0) | (out > 1)):
        return None, "label_out_of_range"
    return out.astype(np.float32), None


def index_videos(root: Path) -> dict[str, Path]:
    """Video id (file stem) → path of every video file below `root` (first found wins)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in video.VIDEO_SUFFIXES and path.is_file():
            out.setdefault(video_id(path.stem), path)
    return out


def _folder_split(path: Optional[Path], root: Path) -> Optional[str]:
    if path is None:
        return None
    for part in reversed(path.relative_to(root).parts[:-1]):
        name = re.sub(r"[^a-z]", "", part.lower())
        if name in PUBLISHED:
            return PUBLISHED[name]
    return None


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per kept frame of every video with 7 valid intensities, a known split and a readable file."""
    args = parsing.with_defaults(args, add_arguments)
    if args.every < 1:
        raise ValueError(f"--every must be >= 1. Received: every={args.every}")
    root = Path(root)
    label_path, split_path = find_tables(root)
    if label_path is None:
        raise FileNotFoundError(f"Hume-Reaction: no CSV below {root} with a File_ID column and the columns "
                                f"{list(taxonomy.REACTIONS)}")
    header, rows = _read(label_path)
    id_col, split_col = _column(header, ID_COLUMNS), _column(header, SPLIT_COLUMNS)
    published: dict[str, str] = {}
    if split_col is None and split_path is not None:
        split_header, split_rows = _read(split_path)
        sid, scol = _column(split_header, ID_COLUMNS), _column(split_header, SPLIT_COLUMNS)
        published = {video_id(r.get(sid)): PUBLISHED.get((r.get(scol) or "").strip().lower(), "")
                     for r in split_rows}
    videos = index_videos(root)

    # === Pass 1: labels and published splits ===
    kept: list[tuple[str, str, np.ndarray, str]] = []        # (id, published split, intensities, where)
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        vid = video_id(row.get(id_col))
        where = f"{label_path.name}:{line} {vid}"
        if not vid:
            yield Skip("invalid_row", where)
            continue
        if vid in seen:
            yield Skip("duplicate_row", where)
            continue
        seen.add(vid)
        if split_col is not None:
            split = PUBLISHED.get((row.get(split_col) or "").strip().lower())
        else:
            split = published.get(vid) or _folder_split(videos.get(vid), root)
        if not split:
            yield Skip("no_split", f"{where}: split {row.get(split_col) if split_col else None!r}")
            continue
        values, problem = intensities(row)
        if problem:
            yield Skip(problem, f"{where}: {[row.get(n) for n in taxonomy.REACTIONS]}")
            continue
        kept.append((vid, split, values, where))

    # === Our splits (docs/DATABASES.md): published validation = test unless test labels exist ===
    has_test = any(split == "test" for _, split, _, _ in kept)
    held = splits.holdout([vid for vid, split, _, _ in kept if split == "train"], parsing.validation_fraction(args),
                          args.split_seed)

    # === Pass 2: frames ===
    for vid, split, values, where in kept:
        path = videos.get(vid)
        n_frames = video.frame_count_or_skip(path, f"{root}/…/{vid}.mp4")
        if isinstance(n_frames, Skip):
            yield n_frames
            continue
        ours = splits.our_split(split, vid, held, has_test=has_test)
        for k in range(1, n_frames + 1, args.every):
            yield Item(database=DATABASE, split=ours, image_id=f"{vid}/{k:05d}", load=video.frame_loader(path, k),
                       group=vid, frame=k, intensity=values)
