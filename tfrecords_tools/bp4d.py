"""BP4D (FERA 2015) and BP4D+ (FERA 2017) parsers: AU occurrence per coded frame.

Layout (docs/DATABASES.md): `ROOT/AUCoding/AU_OCC/<subject>_<task>.csv` with a
header row of integers (column `0` = frame, the others AU numbers), values
0/1 and 9 = not coded. BP4D frames: `ROOT/Sequences/<subject>/<task>/<n>.jpg`;
BP4D+ frames: `ROOT/2D+3D/<subject>.zip` (entries `<subject>/<task>/<n>.jpg`)
or the same unpacked. Image numbers are zero-padded differently per session,
so frame ↔ image is looked up from the files themselves (image number =
frame + offset). The offset is read from the files when they tell (see
`detect_offset`), else it is the documented layout's (`DEFAULT_OFFSET`: BP4D+
zips start at 0000.jpg while its CSVs count frames from 1); `--frame-offset`
overrides both. Neither database publishes a test set we can use:
subjects are split into test (FERA's development partition when
--test-subjects names it, else a seeded half) and train, train 85/15 into
train/validation, all by subject.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from fbn_keras import cli, taxonomy
from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

NOT_CODED = 9
CSV_NAME = re.compile(r"^([FM]\d{3})_(T\d+)\.csv$", re.IGNORECASE)
#: Share of subjects in the test split when --test-subjects is not given: FERA 2015 held out 20 of BP4D's 41.
TEST_FRACTION = 0.5
FRAME_FOLDERS = {"bp4d": "Sequences", "bp4dplus": "2D+3D"}
#: Image number − CSV frame number of each database's documented layout, used when the files do not tell:
#: BP4D+ zips hold `F001/T1/0000.jpg …` while its AU_OCC frame column starts at 1 (image = frame − 1);
#: BP4D's `Sequences/` frames are numbered like its CSV rows.
DEFAULT_OFFSET = {"bp4d": 0, "bp4dplus": -1}
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """BP4D/BP4D+ options: AUs, frame offset, frame folder, the subject split."""
    parser.add_argument("--aus", default=None,
                        help="comma-separated AU numbers to read (default: the FERA challenge's AUs, "
                             "BP4D 1,2,4,6,7,10,12,14,15,17,23; BP4D+ 1,4,6,7,10,12,14,15,17,23; add 24 "
                             "for BP4D's 12-AU protocol)")
    parser.add_argument("--frame-offset", type=int, default=None,
                        help="image number = CSV frame number + offset (default: read from the files, "
                             f"else BP4D {DEFAULT_OFFSET['bp4d']}, BP4D+ {DEFAULT_OFFSET['bp4dplus']})")
    parser.add_argument("--frames", type=Path, default=None,
                        help="folder of frames (default: Sequences/ for BP4D, 2D+3D/ for BP4D+, below ROOT)")
    parser.add_argument("--test-subjects", default=None,
                        help="comma-separated subjects (or @file) of the test split, e.g. FERA's "
                             f"development partition; default: a seeded {TEST_FRACTION} of the subjects")
    parser.add_argument("--test-fraction", type=cli.open_unit_float, default=TEST_FRACTION,
                        help="fraction of subjects in the test split when --test-subjects is not given")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def read_occurrence(path: Path, aus: tuple[int, ...]) -> tuple[list[tuple[int, np.ndarray, np.ndarray, list]], list]:
    """Rows of one AU_OCC CSV as (frame, au (17,), mask (17,), dropped), and the file's own problems.

    A value 9 leaves the AU unannotated (mask 0); another value than 0/1/9
    is dropped and counted; an AU that the file has no column for is counted once.
    """
    with path.open(newline="", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return [], [("empty_file", str(path))]
    # Column 0 is the frame; the others are named by AU number ("12", or "AU12" in some copies).
    header = [parsing.float_or_none(re.sub(r"(?i)^\s*au\s*", "", h)) for h in rows[0]]
    columns = {int(h): i for i, h in enumerate(header) if h is not None and i > 0}
    file_problems = [("missing_au_column", f"{path.name}: AU{au}") for au in aus if au not in columns]
    present = [au for au in aus if au in columns]
    out = []
    for lineno, row in enumerate(rows[1:], 2):
        frame = parsing.float_or_none(row[0])
        if frame is None or frame != int(frame):
            file_problems.append(("invalid_label", f"{path.name}:{lineno}: frame {row[0]!r}"))
            continue
        au = np.zeros(taxonomy.NUM_AUS, np.float32)
        mask = np.zeros(taxonomy.NUM_AUS, np.float32)
        dropped = []
        for a in present:
            i = columns[a]
            value = parsing.float_or_none(row[i]) if i < len(row) else None
            if value in (0.0, 1.0):
                au[taxonomy.au_index(a)] = value
                mask[taxonomy.au_index(a)] = 1.0
            elif value != NOT_CODED:
                dropped.append(("invalid_label", f"{path.name}:{lineno}: AU{a} = {row[i] if i < len(row) else ''!r}"))
        out.append((int(frame), au, mask, dropped))
    return out, file_problems


def _numbered(names: list[str]) -> dict[int, str]:
    """Image number → name for names whose stem is a number (padding ignored)."""
    out = {}
    for name in names:
        stem, dot, ext = name.rpartition("/")[2].rpartition(".")
        if dot and stem.isdigit() and "." + ext.lower() in parsing.IMAGE_SUFFIXES:
            out[int(stem)] = name
    return out


class FrameLookup:
    """Image number → loader for one subject's task, from a folder of frames or a subject zip."""

    def __init__(self, frames_root: Path, subject: str):
        self._cache: dict[str, dict[int, Callable]] = {}
        self._names: dict[str, dict[int, str]] = {}
        self.frames_root, self.subject = frames_root, subject
        self.zip_path = next((p for p in sorted(frames_root.glob("*.zip"))
                              if p.stem.lower() == subject.lower()), None) if frames_root.is_dir() else None
        self.zip_names: Optional[list[str]] = None

    def _folder(self, task: str) -> Path:
        return self.frames_root / self.subject / task

    def task(self, task: str) -> dict[int, Callable]:
        """Image number → `Item.load` for the frames of `task` ({} when there are none)."""
        if task in self._cache:
            return self._cache[task]
        folder = self._folder(task)
        if folder.is_dir():
            numbered = _numbered([p.name for p in folder.iterdir() if p.is_file()])
            found = {n: parsing.image_loader(folder / name) for n, name in numbered.items()}
        elif self.zip_path is not None:
            if self.zip_names is None:
                try:
                    with zipfile.ZipFile(self.zip_path) as z:
                        self.zip_names = z.namelist()
                except (OSError, zipfile.BadZipFile):
                    self.zip_names = []
            prefix = f"/{task}/".lower()
            numbered = _numbered([n for n in self.zip_names if prefix in "/" + n.lower()])
            found = {n: parsing.zip_image_loader(self.zip_path, name) for n, name in numbered.items()}
        else:
            numbered, found = {}, {}
        self._cache[task], self._names[task] = found, numbered
        return found

    def looked_for(self, task: str, number: int) -> str:
        """Where image `number` of `task` was looked for: `ZIP:ENTRY` or a file path, padded and named like
        the task's other frames (4 digits and .jpg when it has none)."""
        self.task(task)
        names = self._names[task]
        if names:
            sample = names[min(names)]
            folder, _, base = sample.rpartition("/")
            stem, _, ext = base.rpartition(".")
            entry = f"{folder + '/' if folder else ''}{number:0{len(stem)}d}.{ext}"
        else:
            entry = f"{self.subject}/{task}/{number:04d}.jpg" if self.zip_path is not None else f"{number:04d}.jpg"
        if self.zip_path is not None and not self._folder(task).is_dir():
            return f"{self.zip_path}:{entry}"
        return str(self._folder(task) / entry.rpartition("/")[2])


def _frame_numbers(path: Path) -> list[int]:
    """The frame column of one AU_OCC CSV (rows whose frame is not an integer left out)."""
    with path.open(newline="", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r][1:]
    values = (parsing.float_or_none(r[0]) for r in rows)
    return [int(v) for v in values if v is not None and v == int(v)]


def offset_vote(frames: list[int], images: Iterable[int]) -> Optional[int]:
    """What one session's files say the offset is: -1, 0, or None when they do not tell.

    With images numbered from 0 and frames from 1 (image = frame − 1), the image
    before the first frame exists and the last frame has none: −1. With the
    same numbering, the last frame has its image and the one before the first
    does not: 0. Anything else (no images, both or neither edge) is no vote.
    """
    images = set(images)
    if not frames or not images:
        return None
    before, last = min(frames) - 1 in images, max(frames) in images
    if before and not last:
        return -1
    if last and not before:
        return 0
    return None


def detect_offset(sessions: list[tuple[str, str, Path]], lookup: Callable[[str], "FrameLookup"],
                  database: str) -> tuple[int, str]:
    """(offset, how it was chosen) from every session's vote; the database's documented offset when no
    session votes or the votes tie."""
    votes = {-1: 0, 0: 0}
    for subject, task, path in sessions:
        vote = offset_vote(_frame_numbers(path), lookup(subject).task(task))
        if vote is not None:
            votes[vote] += 1
    if votes[-1] != votes[0]:
        offset = -1 if votes[-1] > votes[0] else 0
        return offset, (f"read from the files: {votes[offset]} session(s) say image = frame {offset:+d}, "
                        f"{votes[-1 - offset]} say {-1 - offset:+d}")
    return DEFAULT_OFFSET[database], (f"{database}'s documented layout (the files do not tell: {votes[-1]} "
                                      f"session(s) say -1, {votes[0]} say 0)")


def _aus(text: Optional[str], database: str) -> tuple[int, ...]:
    if not text:
        return taxonomy.DATABASES[database].aus
    aus = tuple(int(a) for a in text.split(","))
    for a in aus:
        taxonomy.au_index(a)
    return aus


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """BP4D (or BP4D+ when args.dataset is "bp4dplus"): one Item per coded frame with an image."""
    args = parsing.with_defaults(args, add_arguments)
    database = "bp4dplus" if getattr(args, "dataset", "bp4d") == "bp4dplus" else "bp4d"
    root = Path(root)
    occ = parsing.find_dir(root, "AU_OCC", max_depth=3)
    if occ is None:
        raise FileNotFoundError(f"{database}: no AUCoding/AU_OCC/ below {root}")
    frames_root = args.frames or parsing.find_dir(root, FRAME_FOLDERS[database], max_depth=2)
    if frames_root is None:
        raise FileNotFoundError(f"{database}: no {FRAME_FOLDERS[database]}/ below {root} (give --frames)")
    aus = _aus(args.aus, database)
    sessions = sorted((m.group(1).upper(), m.group(2).upper(), p) for p in occ.iterdir()
                      if (m := CSV_NAME.match(p.name)))
    subjects = sorted({s for s, _, _ in sessions})
    test = parsing.parse_subjects(args.test_subjects)
    if test is None:
        test = splits.holdout(subjects, args.test_fraction, args.split_seed)
    held = splits.holdout([s for s in subjects if s not in test],
                          parsing.validation_fraction(args), args.split_seed)
    lookups: dict[str, FrameLookup] = {}

    def lookup(subject: str) -> FrameLookup:
        return lookups.setdefault(subject, FrameLookup(frames_root, subject))

    if args.frame_offset is None:
        offset, source = detect_offset([(s, t, p) for s, t, p in sessions], lookup, database)
    else:
        offset, source = args.frame_offset, "--frame-offset"
    log.info("%s: image number = CSV frame %+d (%s)", database, offset, source)
    recorded = getattr(args, "parser_options", None)
    if isinstance(recorded, dict):      # the build CLI writes these into the manifest's build options
        recorded.update(frame_offset=offset, frame_offset_source=source)
    for subject, task, path in sessions:
        split = "test" if subject in test else splits.our_split("train", subject, held, has_test=True)
        rows, problems = read_occurrence(path, aus)
        for reason, detail in problems:
            yield Skip(reason, detail)
        frames = lookup(subject)
        images = frames.task(task)
        group = f"{subject}/{task}"
        for frame, au, mask, dropped in rows:
            number = frame + offset
            if not mask.any():
                # Every AU 9 (outside the coded segment) carries no label, like an unlabelled frame:
                # not an item and not a skip. A frame whose values were all invalid is counted.
                if dropped:
                    yield Skip(*dropped[0])
                continue
            if number not in images:
                yield Skip("missing_file", f"{frames.looked_for(task, number)} (CSV frame {frame}, offset {offset:+d})")
                continue
            item = Item(database=database, split=split, image_id=f"{group}/{frame}",
                        load=images[number], group=group, frame=frame, au=au, au_mask=mask)
            yield from parsing.finish(item, dropped)
