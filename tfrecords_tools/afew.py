"""AFEW (EmotiW) parser: every clip's frames labelled with the clip's expression.

Layout (docs/DATABASES.md): `ROOT/Train_AFEW/<Class>/<id>.avi` and
`ROOT/Val_AFEW/<Class>/…` for the seven class folders; other folders (e.g.
`AlignedFaces_LBPTOP_Points`) are not classes and are ignored. AFEW publishes
no test labels: `Val_AFEW` is our test split and `Train_AFEW` splits 85/15 by
clip. Each frame (or every N-th, --every) becomes a record whose `image_id`
names the clip and whose `group` is the clip id, so per-clip accuracy can
vote over a clip's frames; frames without a face are skipped by the writer.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Iterator

from fbn_keras import cli, taxonomy
from tfrecords_tools import parsing, splits, video
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "afew"
#: AFEW's class folder names (case-insensitive) → our expression names.
AFEW_CLASSES: dict[str, str] = {
    "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
    "neutral": "neutral", "sad": "sadness", "surprise": "surprise",
}
CLASS_TO_EXPR = {folder: taxonomy.expression_index(name) for folder, name in AFEW_CLASSES.items()}
#: A partition folder is named with one of these (e.g. Train_AFEW, Val_AFEW; case-insensitive) → published split.
PARTITIONS = {"train": "train", "val": "validation"}


def partition_of(folder_name: str):
    """"Train_AFEW" → "train", "Val_AFEW" → "validation", anything else (e.g. Test_AFEW, unlabelled) → None."""
    tokens = re.split(r"[^a-z]+", folder_name.lower())
    found = [PARTITIONS[t] for t in tokens if t in PARTITIONS]
    return found[0] if len(found) == 1 else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """AFEW options: frame sampling, the 85/15 split."""
    parser.add_argument("--every", type=cli.positive_int, default=1,
                        help="keep frames 1, 1+N, 1+2N, … of each clip (default 1: every frame)")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def clips(root: Path) -> list[tuple[str, str, int, Path]]:
    """(published split, clip id, expression index, path) of every clip in a class folder."""
    out = []
    parts = [p for p in sorted(root.iterdir()) if p.is_dir()]
    if not any(partition_of(p.name) for p in parts):             # one extra level, e.g. ROOT/EmotiW/Train_AFEW
        parts = [c for p in parts for c in sorted(p.iterdir()) if c.is_dir()]
    for part in (p for p in parts if partition_of(p.name)):
        for class_dir in sorted(c for c in part.iterdir() if c.is_dir() and c.name.lower() in CLASS_TO_EXPR):
            for clip in sorted(class_dir.iterdir()):
                if clip.is_file() and clip.suffix.lower() in video.VIDEO_SUFFIXES:
                    out.append((partition_of(part.name), clip.stem, CLASS_TO_EXPR[class_dir.name.lower()], clip))
    return out


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per kept frame of every readable clip."""
    args = parsing.with_defaults(args, add_arguments)
    if args.every < 1:
        raise ValueError(f"--every must be >= 1. Received: every={args.every}")
    root = Path(root)
    found = clips(root)
    if not found:
        raise FileNotFoundError(f"AFEW: no clips in Train_AFEW/<class>/ or Val_AFEW/<class>/ below {root}")
    held = splits.holdout([cid for s, cid, _, _ in found if s == "train"],
                          parsing.validation_fraction(args), args.split_seed)
    for published, clip_id, expr, path in found:
        n_frames = video.frame_count_or_skip(path)
        if isinstance(n_frames, Skip):
            yield n_frames
            continue
        split = splits.our_split(published, clip_id, held, has_test=False)
        rel = path.relative_to(root).with_suffix("").as_posix()
        for k in range(1, n_frames + 1, args.every):
            yield Item(database=DATABASE, split=split, image_id=f"{rel}/{k:05d}",
                       load=video.frame_loader(path, k), group=clip_id, frame=k, expr=expr)
