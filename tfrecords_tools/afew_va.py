"""AFEW-VA parser: per-frame valence-arousal and 68 landmarks of 600 film clips (Kossaifi et al. 2017).

Layout as distributed: one folder per clip, `ROOT/<clip>/` (001 … 600, possibly
one level down, e.g. `ROOT/AFEW-VA/001/`), holding the clip's frames as
`00000.png`, `00001.png`, … and one JSON file `<clip>.json`:

    {"video_id": "001", "actor": "…",
     "frames": {"00000": {"valence": 0, "arousal": 3, "landmarks": [[x, y], … 68]}, …}}

Valence and arousal are integers in [-10, 10]: we divide by 10. The 68
landmarks (pixels of the frame) are used to align the face and are written,
moved into the crop, as the record's `feature/landmarks` (journal Section IV;
docs/VIDEO.md). Each clip is one group (a sequence); frame = the frame's number.
AFEW-VA publishes no split: clips are divided by actor (by clip where no actor is
named) into test (`--test-fraction`, 15 %), validation (15 % of the rest) and train.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "afew-va"
SCALE = 10.0                     # labels are integers in [-10, 10]
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """AFEW-VA options: the test and validation fractions (it publishes no split)."""
    parser.add_argument("--test-fraction", type=float, default=splits.VALIDATION_FRACTION,
                        help="fraction of the actors (clips where no actor is named) held out as test (default 0.15)")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def clip_folders(root: Path) -> list[Path]:
    """Every folder directly holding a JSON annotation file, at most two levels below `root`, sorted."""
    found = sorted({p.parent for p in root.glob("*/*.json")} | {p.parent for p in root.glob("*/*/*.json")})
    return [f for f in found if f != root]


def _annotation(folder: Path) -> tuple[Optional[dict], Optional[Skip]]:
    """The clip's JSON (the one named after the folder, else the only one), or the Skip that says why not."""
    files = sorted(folder.glob("*.json"))
    named = [f for f in files if f.stem == folder.name]
    path = named[0] if named else (files[0] if len(files) == 1 else None)
    if path is None:
        return None, Skip("ambiguous_annotation", f"{folder}: {[f.name for f in files]}")
    try:
        ann = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError) as err:
        return None, Skip("unreadable_annotation", f"{path}: {err}")
    if not isinstance(ann, dict) or not isinstance(ann.get("frames"), dict):
        return None, Skip("unreadable_annotation", f"{path}: no 'frames' object")
    return ann, None


def _frame_file(folder: Path, key: str) -> Optional[Path]:
    for suffix in FRAME_SUFFIXES:
        path = folder / f"{key}{suffix}"
        if path.is_file():
            return path
    return None


def _landmarks(value) -> Optional[np.ndarray]:
    """68 finite (x, y) points, else None (the frame is then aligned by detection)."""
    try:
        pts = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        return None
    if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
        return None
    return pts.astype(np.float32)


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per annotated frame with a valid VA pair and an image on disk."""
    args = parsing.with_defaults(args, add_arguments)
    if not 0.0 <= args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1). Received: {args.test_fraction}")
    root = Path(root)
    folders = clip_folders(root)
    if not folders:
        raise FileNotFoundError(f"AFEW-VA: no clip folder with a <clip>.json below {root}")
    clips = []                                   # (folder, annotation, split group)
    for folder in folders:
        ann, skip = _annotation(folder)
        if skip is not None:
            yield skip
            continue
        clips.append((folder, ann, str(ann.get("actor") or folder.name)))
    actors = [g for _, _, g in clips]
    test = splits.holdout(actors, args.test_fraction, args.split_seed)
    held = splits.holdout([g for g in actors if g not in test], parsing.validation_fraction(args), args.split_seed)
    for folder, ann, actor in clips:
        split = "test" if actor in test else splits.our_split("train", actor, held, has_test=True)
        clip = folder.name
        for key in sorted(ann["frames"], key=lambda k: (len(k), k)):
            entry = ann["frames"][key]
            where = f"{clip}/{key}"
            if not key.isdigit() or not isinstance(entry, dict):
                yield Skip("invalid_label", f"{where}: not a numbered frame entry")
                continue
            v, a = (parsing.float_or_none(entry.get(k)) for k in ("valence", "arousal"))
            va, problem = parsing.check_va(None if v is None else v / SCALE, None if a is None else a / SCALE)
            if problem:
                yield Skip(problem, f"{where}: valence={entry.get('valence')!r} arousal={entry.get('arousal')!r}")
                continue
            path = _frame_file(folder, key)
            if path is None:
                yield parsing.missing(folder / f"{key}.png")
                continue
            points = _landmarks(entry.get("landmarks"))
            yield Item(database=DATABASE, split=split, image_id=f"{clip}/{key}", load=parsing.image_loader(path),
                       group=clip, frame=int(key), landmarks=points, va=va)
            if points is None:       # kept, aligned by detection instead, without landmarks in its record
                yield Skip("dropped_bad_landmarks", f"{where}: expected 68 (x, y) points")
