"""DISFA parser: 12 AUs from per-AU intensity files, binarised at intensity ≥ 2, on the video's frames.

Layout (docs/DATABASES.md): `ROOT/ActionUnit_Labels/SN001/SN001_au1.txt …`
(one `frame,intensity` line per frame, intensity 0–5) and
`ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi` (and the right camera).
Label frame t ↔ video frame t (both 1-based). DISFA has no official split:
subjects are split into test and train, and train 85/15 into
train/validation, all by subject.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from fbn_keras import cli, taxonomy
from tfrecords_tools import parsing, splits, video
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "disfa"
AUS: tuple[int, ...] = taxonomy.DATABASES[DATABASE].aus
#: DISFA's occurrence threshold: intensity ≥ 2 (the usual reading of "present", docs/DATABASES.md).
OCCURRENCE_THRESHOLD = 2
MAX_INTENSITY = 5
CAMERAS = ("left", "right")
SUBJECT = re.compile(r"^SN\d{3}$", re.IGNORECASE)
#: 9 of 27 subjects, as in the usual 3-fold subject protocol, when no --test-subjects are given.
TEST_FRACTION = 1 / 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DISFA options: cameras, the subject split."""
    parser.add_argument("--camera", choices=("left", "right", "both"), default="both",
                        help="which camera's video to use (default both: the paper counts 260K frames, "
                             "130K per camera)")
    parser.add_argument("--test-subjects", default=None,
                        help="comma-separated subjects (or @file) of the test split; default: a seeded "
                             f"{TEST_FRACTION:.2f} of the subjects")
    parser.add_argument("--test-fraction", type=cli.open_unit_float, default=TEST_FRACTION,
                        help="fraction of subjects in the test split when --test-subjects is not given")
    parser.add_argument("--threshold", type=cli.positive_int, default=OCCURRENCE_THRESHOLD,
                        help="intensity at and above which an AU counts as present (default 2)")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def read_intensities(path: Path) -> tuple[dict[int, int], list[tuple[Optional[int], str, str]]]:
    """frame → intensity of one `SNxxx_auN.txt`, and (frame or None, reason, detail) of each unusable line."""
    values: dict[int, int] = {}
    problems: list[tuple[Optional[int], str, str]] = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.replace("\t", ",").split(",")]
        frame = parsing.float_or_none(fields[0]) if len(fields) == 2 else None
        value = parsing.float_or_none(fields[1]) if len(fields) == 2 else None
        detail = f"{path.name}:{lineno}: {line.strip()!r}"
        if frame is None or not np.isfinite(frame) or frame != int(frame) or frame < 1:
            problems.append((None, "invalid_label", detail))
        elif value is None:
            problems.append((int(frame), "invalid_label", detail))
        elif not np.isfinite(value):
            problems.append((int(frame), "nan_label", detail))
        elif value != int(value) or not 0 <= value <= MAX_INTENSITY:
            problems.append((int(frame), "label_out_of_range", detail))
        else:
            values[int(frame)] = int(value)
    return values, problems


def _label_files(subject_dir: Path) -> dict[int, Path]:
    """AU number → `<subject>_au<N>.txt` (case-insensitive) for DISFA's 12 AUs."""
    out = {}
    for p in subject_dir.iterdir():
        m = re.search(r"_au(\d+)\.txt$", p.name, re.IGNORECASE)
        if m and int(m.group(1)) in AUS:
            out[int(m.group(1))] = p
    return out


def find_video_file(root: Path, subject: str, camera: str) -> Optional[Path]:
    """`Videos_<Camera>Camera/<Camera>Video<subject>_comp.avi`, matched by camera and subject name."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and camera in p.name.lower()
                         and "video" in p.name.lower()):
        for f in sorted(folder.iterdir()):
            name = f.name.lower()
            if subject.lower() in name and camera in name and f.suffix.lower() in video.VIDEO_SUFFIXES:
                return f
    return None


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per labelled frame of each subject's video(s), split by subject."""
    args = parsing.with_defaults(args, add_arguments)
    root = Path(root)
    labels_dir = parsing.find_dir(root, "ActionUnit_Labels", max_depth=2)
    if labels_dir is None:
        raise FileNotFoundError(f"DISFA: no ActionUnit_Labels/ below {root}")
    subjects = sorted(p.name for p in labels_dir.iterdir() if p.is_dir() and SUBJECT.match(p.name))
    test = parsing.parse_subjects(args.test_subjects)
    if test is None:
        test = splits.holdout(subjects, args.test_fraction, args.split_seed)
    held = splits.holdout([s for s in subjects if s not in test],
                          parsing.validation_fraction(args), args.split_seed)
    cameras = CAMERAS if args.camera == "both" else (args.camera,)
    for subject in subjects:
        split = "test" if subject in test else splits.our_split("train", subject, held, has_test=True)
        files = _label_files(labels_dir / subject)
        for au in AUS:
            if au not in files:
                yield Skip("missing_file", f"{labels_dir / subject}/{subject}_au{au}.txt")
        per_au: dict[int, dict[int, int]] = {}
        problems: dict[Optional[int], list[tuple[str, str]]] = {}
        for au, path in sorted(files.items()):
            per_au[au], bad = read_intensities(path)
            for frame, reason, detail in bad:
                problems.setdefault(frame, []).append((reason, detail))
        for reason, detail in problems.pop(None, []):  # lines without a readable frame number
            yield Skip(reason, detail)
        frames = sorted(set(problems).union(*(v.keys() for v in per_au.values())))
        for camera in cameras:
            path = find_video_file(root, subject, camera)
            n_frames = video.frame_count_or_skip(path, f"{root}/Videos_{camera.title()}Camera/*{subject}*.avi")
            if isinstance(n_frames, Skip):
                yield n_frames
                continue
            group = f"{subject}/{camera}"
            for frame in frames:
                if frame > n_frames:
                    yield Skip("past_video_end", f"{group}#{frame} (video has {n_frames} frames)")
                    continue
                au = np.zeros(taxonomy.NUM_AUS, np.float32)
                mask = np.zeros(taxonomy.NUM_AUS, np.float32)
                for a, values in per_au.items():
                    if frame in values:
                        au[taxonomy.au_index(a)] = float(values[frame] >= args.threshold)
                        mask[taxonomy.au_index(a)] = 1.0
                item = Item(database=DATABASE, split=split, image_id=f"{group}/{frame:05d}",
                            load=video.frame_loader(path, frame), group=group, frame=frame,
                            au=au, au_mask=mask)
                yield from parsing.finish(item, problems.get(frame, []))
