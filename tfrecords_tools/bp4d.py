"""BP4D (FERA 2015) and BP4D+ (FERA 2017) parsers: AU occurrence per coded frame.

Layout (DATA_FORMATS.md): `ROOT/AUCoding/AU_OCC/<subject>_<task>.csv` with a
header row of integers (column `0` = frame, the others AU numbers), values
0/1 and 9 = not coded. BP4D frames: `ROOT/Sequences/<subject>/<task>/<n>.jpg`;
BP4D+ frames: `ROOT/2D+3D/<subject>.zip` (entries `<subject>/<task>/<n>.jpg`)
or the same unpacked. Image numbers are zero-padded differently per session,
so frame ↔ image is looked up from the files themselves (image number =
frame + --frame-offset). Neither database publishes a test set we can use:
subjects are split into test (FERA's development partition when
--test-subjects names it, else a seeded half) and train, train 85/15 into
train/validation, all by subject.
"""

from __future__ import annotations

import argparse
import csv
import re
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from fbn_keras import taxonomy
from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

NOT_CODED = 9
CSV_NAME = re.compile(r"^([FM]\d{3})_(T\d+)\.csv$", re.IGNORECASE)
#: Share of subjects in the test split when --test-subjects is not given: FERA 2015 held out 20 of BP4D's 41.
TEST_FRACTION = 0.5
FRAME_FOLDERS = {"bp4d": "Sequences", "bp4dplus": "2D+3D"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """BP4D/BP4D+ options: AUs, frame offset, frame folder, the subject split."""
    parser.add_argument("--aus", default=None,
                        help="comma-separated AU numbers to read (default: the FERA challenge's AUs, "
                             "BP4D 1,2,4,6,7,10,12,14,15,17,23; BP4D+ 1,4,6,7,10,12,14,15,17,23; add 24 "
                             "for BP4D's 12-AU protocol)")
    parser.add_argument("--frame-offset", type=int, default=0,
                        help="image number = CSV frame number + offset (default 0)")
    parser.add_argument("--frames", type=Path, default=None,
                        help="folder of frames (default: Sequences/ for BP4D, 2D+3D/ for BP4D+, below ROOT)")
    parser.add_argument("--test-subjects", default=None,
                        help="comma-separated subjects (or @file) of the test split, e.g. FERA's "
                             f"development partition; default: a seeded {TEST_FRACTION} of the subjects")
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION,
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
        self.frames_root, self.subject = frames_root, subject
        self.zip_path = next((p for p in sorted(frames_root.glob("*.zip"))
                              if p.stem.lower() == subject.lower()), None) if frames_root.is_dir() else None
        self.zip_names: Optional[list[str]] = None

    def task(self, task: str) -> dict[int, Callable]:
        """Image number → `Item.load` for the frames of `task` ({} when there are none)."""
        if task in self._cache:
            return self._cache[task]
        folder = self.frames_root / self.subject / task
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
            found = {}
        self._cache[task] = found
        return found


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
    for subject, task, path in sessions:
        split = "test" if subject in test else splits.our_split("train", subject, held, has_test=True)
        rows, problems = read_occurrence(path, aus)
        for reason, detail in problems:
            yield Skip(reason, detail)
        lookup = lookups.setdefault(subject, FrameLookup(frames_root, subject))
        images = lookup.task(task)
        group = f"{subject}/{task}"
        for frame, au, mask, dropped in rows:
            number = frame + args.frame_offset
            if not mask.any():
                # Every AU 9 (outside the coded segment) carries no label, like an unlabelled frame:
                # not an item and not a skip. A frame whose values were all invalid is counted.
                if dropped:
                    yield Skip(*dropped[0])
                continue
            if number not in images:
                yield Skip("missing_file", f"{frames_root}/{group}/{number}.jpg")
                continue
            item = Item(database=database, split=split, image_id=f"{group}/{frame}",
                        load=images[number], group=group, frame=frame, au=au, au_mask=mask)
            yield from parsing.finish(item, dropped)
