"""Aff-Wild (2017) parser: per-frame valence-arousal on the videos' frames.

Layout (docs/DATABASES.md, assumed): `ROOT/videos/{train,test}/<id>.mp4|.avi`
and `ROOT/annotations/{train,test}/{valence,arousal}/<id>.txt` with one float
per line; line k ↔ frame k (1-based). When the valence file, the arousal file
and the video differ in length, the shorter wins and every label line past it
is counted. Aff-Wild publishes its test set: train stays train unless
--val-fraction asks for a validation split (by video).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator, Optional

from tfrecords_tools import parsing, splits, video
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "affwild"
PUBLISHED = ("train", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Aff-Wild options: the optional validation split."""
    parsing.add_split_arguments(parser, validation_default=None)


def read_values(path: Path) -> list[Optional[float]]:
    """One float per non-empty line (None where a line is not a number)."""
    return [parsing.float_or_none(line.strip()) for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _videos(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in video.VIDEO_SUFFIXES}


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per frame with a valence and an arousal value, up to the shortest of the three lengths."""
    args = parsing.with_defaults(args, add_arguments)
    root = Path(root)
    videos_dir = parsing.find_dir(root, "videos", max_depth=1)
    annotations_dir = parsing.find_dir(root, "annotations", max_depth=1)
    if videos_dir is None or annotations_dir is None:
        raise FileNotFoundError(f"Aff-Wild: expected videos/ and annotations/ below {root}")
    sessions = []   # (published split, id, valence file, arousal file)
    for published in PUBLISHED:
        ann = parsing.find_dir(annotations_dir, published, max_depth=1)
        if ann is None:
            continue
        valence_dir = parsing.find_dir(ann, "valence", max_depth=1)
        arousal_dir = parsing.find_dir(ann, "arousal", max_depth=1)
        for vfile in sorted(valence_dir.glob("*.txt")) if valence_dir else []:
            afile = arousal_dir / vfile.name if arousal_dir else None
            if afile is None or not afile.is_file():
                yield Skip("missing_file", f"{ann}/arousal/{vfile.name}")
                continue
            sessions.append((published, vfile.stem, vfile, afile))
        for afile in sorted(arousal_dir.glob("*.txt")) if arousal_dir else []:
            if not (valence_dir and (valence_dir / afile.name).is_file()):
                yield Skip("missing_file", f"{ann}/valence/{afile.name}")
    held = splits.holdout([vid for p, vid, _, _ in sessions if p == "train"],
                          parsing.validation_fraction(args), args.split_seed)
    video_files = {p: _videos(parsing.find_dir(videos_dir, p, max_depth=1) or videos_dir / p) for p in PUBLISHED}
    for published, vid, vfile, afile in sessions:
        path = video_files[published].get(vid)
        n_frames = video.frame_count_or_skip(path, f"{videos_dir}/{published}/{vid}.mp4")
        if isinstance(n_frames, Skip):
            yield n_frames
            continue
        valence, arousal = read_values(vfile), read_values(afile)
        n = min(len(valence), len(arousal), n_frames)
        for k in range(n + 1, max(len(valence), len(arousal)) + 1):
            reason = "past_video_end" if k > n_frames else "unpaired_label"
            yield Skip(reason, f"{vid}#{k} (video {n_frames} frames, {len(valence)} valence, "
                               f"{len(arousal)} arousal lines)")
        split = splits.our_split(published, vid, held, has_test=True)
        for k in range(1, n + 1):
            va, problem = parsing.check_va(valence[k - 1], arousal[k - 1])
            if problem:
                yield Skip(problem, f"{vid}#{k}: {valence[k - 1]},{arousal[k - 1]}")
                continue
            yield Item(database=DATABASE, split=split, image_id=f"{vid}/{k:05d}",
                       load=video.frame_loader(path, k), group=vid, frame=k, va=va)
