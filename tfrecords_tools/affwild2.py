"""Aff-Wild2 parser (ABAW annotation releases): VA, expressions and 12 AUs, merged per frame.

Layout (docs/DATABASES.md): `ROOT/cropped_aligned/<video>/00001.jpg` (aligned
crops) and an annotation release folder holding one folder per challenge
(`VA_*`, `EXPR_*`, `AU_*`, found by their first word), each with
`Train_Set/` and `Validation_Set/` of `<video>.txt` files: a header line,
then data line k ↔ crop `{k:05d}.jpg`. A video's labels from all challenges
are merged per frame into one Item. Test labels were never published:
`Validation_Set` is our test split; `Train_Set` splits 85/15 by video (both
subjects of a `_left`/`_right` pair on the same side).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from fbn_keras import taxonomy
from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

DATABASE = "affwild2"
CHALLENGES = ("VA", "EXPR", "AU")
PUBLISHED_SPLITS = {"train_set": "train", "validation_set": "validation"}
CROPS_DIR = "cropped_aligned"
#: The EXPR files' codes 0..7 (their header); 7 = Other, outside our 7 classes.
AFFWILD2_EXPR: tuple[str, ...] = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other")
EXPR_NAME_TO_INDEX = {n: (taxonomy.expression_index(n) if n != "other" else -1) for n in AFFWILD2_EXPR}
VA_INVALID = -5.0
EXPR_INVALID = -1
AU_INVALID = -1
SUBJECT_SUFFIX = re.compile(r"_(left|right)$")


@dataclasses.dataclass
class FrameLabels:
    """What the challenge files say about one frame of one video in one published split."""

    va: Optional[tuple[float, float]] = None
    expr: int = -1
    au: Optional[np.ndarray] = None
    au_mask: Optional[np.ndarray] = None
    dropped: list = dataclasses.field(default_factory=list)   # (reason, detail)
    other: bool = False                                          # EXPR said "Other"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Aff-Wild2 options: the crop and annotation folders when not found below ROOT, and the split."""
    parser.add_argument("--crops", type=Path, default=None,
                        help=f"folder of per-video crop folders (default: {CROPS_DIR}/ below ROOT)")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="the ABAW annotation release folder, e.g. ROOT/3rd_ABAW_Annotations "
                             "(default: the one folder below ROOT holding VA_*/EXPR_*/AU_* challenge folders)")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def challenge_of(folder_name: str) -> Optional[str]:
    """"VA_Estimation_Challenge" → "VA"; None for folders that are not a challenge's."""
    first = folder_name.split("_", 1)[0].upper()
    return first if first in CHALLENGES else None


def _has_splits(folder: Path) -> bool:
    return any(c.is_dir() and c.name.lower() in PUBLISHED_SPLITS for c in folder.iterdir())


def find_challenges(root: Path, annotations: Optional[Path] = None) -> dict[str, Path]:
    """Challenge name → its folder (holding Train_Set/Validation_Set), searched below ROOT by pattern."""
    base = annotations or root
    found: dict[str, list[Path]] = {}
    level = [base]
    for _ in range(3):  # release folder at most two levels below ROOT
        nxt = []
        for folder in level:
            for child in sorted(c for c in folder.iterdir() if c.is_dir()):
                if child.name.lower() == CROPS_DIR or child.name.lower().startswith("cropped"):
                    continue  # hundreds of thousands of crops: never walk them
                challenge = challenge_of(child.name)
                if challenge and _has_splits(child):
                    found.setdefault(challenge, []).append(child)
                else:
                    nxt.append(child)
        level = nxt
    ambiguous = {c: ps for c, ps in found.items() if len(ps) > 1}
    if ambiguous:
        raise ValueError(f"Aff-Wild2: several annotation folders per challenge {ambiguous}; "
                         f"pick one release with --annotations")
    if not found:
        raise FileNotFoundError(f"Aff-Wild2: no VA_*/EXPR_*/AU_* challenge folders with Train_Set/"
                                f"Validation_Set below {base}")
    return {c: ps[0] for c, ps in found.items()}


def _expr_codes(header: str) -> list[int]:
    """The EXPR file's header names its codes in order; fall back to the documented order."""
    names = [h.strip().lower() for h in header.split(",")]
    if names and all(n in EXPR_NAME_TO_INDEX for n in names):
        return [EXPR_NAME_TO_INDEX[n] for n in names]
    return [EXPR_NAME_TO_INDEX[n] for n in AFFWILD2_EXPR]


def _au_numbers(header: str, detail: str) -> list[int]:
    """`AU1,AU2,…` → [1, 2, …]; every one must be one of the 17."""
    try:
        aus = [int(re.sub(r"(?i)^\s*au\s*", "", h)) for h in header.split(",")]
        for au in aus:
            taxonomy.au_index(au)
    except ValueError:
        raise ValueError(f"Aff-Wild2: {detail}: AU header {header!r} is not AU1,AU2,… of the 17 AUs") from None
    return aus


def _read_va(fields: list[str], labels: FrameLabels, detail: str) -> None:
    values = [parsing.float_or_none(f) for f in fields]
    if len(values) != 2:
        labels.dropped.append(("invalid_label", f"{detail}: VA {fields}"))
    elif VA_INVALID in values:
        labels.dropped.append(("invalid_label", f"{detail}: VA -5"))
    else:
        va, problem = parsing.check_va(*values)
        if problem:
            labels.dropped.append((problem, f"{detail}: VA {fields}"))
        labels.va = va


def _read_expr(fields: list[str], codes: list[int], labels: FrameLabels, detail: str) -> None:
    value = parsing.float_or_none(fields[0]) if len(fields) == 1 else None
    if value is None or value != int(value):
        labels.dropped.append(("invalid_label", f"{detail}: EXPR {fields}"))
    elif int(value) == EXPR_INVALID:
        labels.dropped.append(("invalid_label", f"{detail}: EXPR -1"))
    elif not 0 <= int(value) < len(codes):
        labels.dropped.append(("label_out_of_range", f"{detail}: EXPR {int(value)}"))
    elif codes[int(value)] < 0:
        labels.other = True  # "Other": a valid annotation outside our classes, not an error
    else:
        labels.expr = codes[int(value)]


def _read_au(fields: list[str], aus: list[int], labels: FrameLabels, detail: str) -> None:
    values = [parsing.float_or_none(f) for f in fields]
    if len(values) != len(aus) or any(v is None for v in values):
        labels.dropped.append(("invalid_label", f"{detail}: AU {fields}"))
    elif AU_INVALID in values:  # the files mark a whole row -1; a partial -1 row is no better
        labels.dropped.append(("invalid_label", f"{detail}: AU -1"))
    elif any(v not in (0.0, 1.0) for v in values):
        labels.dropped.append(("label_out_of_range", f"{detail}: AU {fields}"))
    else:
        au = np.zeros(taxonomy.NUM_AUS, np.float32)
        for a, v in zip(aus, values):
            au[taxonomy.au_index(a)] = v
        labels.au, labels.au_mask = au, taxonomy.au_mask_for(tuple(aus))


def read_annotations(challenges: dict[str, Path]) -> tuple[dict[tuple[str, str], dict[int, FrameLabels]], list[Skip]]:
    """(video, published split) → frame (1-based) → merged labels of every challenge; and unreadable files."""
    out: dict[tuple[str, str], dict[int, FrameLabels]] = {}
    problems: list[Skip] = []
    for challenge, folder in sorted(challenges.items()):
        for split_dir in sorted(c for c in folder.iterdir() if c.is_dir() and c.name.lower() in PUBLISHED_SPLITS):
            published = PUBLISHED_SPLITS[split_dir.name.lower()]
            for txt in sorted(split_dir.glob("*.txt")):
                lines = txt.read_text(errors="replace").splitlines()
                if not lines:
                    problems.append(Skip("invalid_label", f"{txt}: empty file"))
                    continue
                header = lines[0]
                try:
                    codes = _expr_codes(header) if challenge == "EXPR" else []
                    aus = _au_numbers(header, str(txt)) if challenge == "AU" else []
                except ValueError as e:  # one file with a bad header: counted, the others still read
                    problems.append(Skip("invalid_label", str(e)))
                    continue
                frames = out.setdefault((txt.stem, published), {})
                for k, line in enumerate(lines[1:], 1):
                    if not line.strip():
                        continue
                    labels = frames.setdefault(k, FrameLabels())
                    fields = [f.strip() for f in line.split(",")]
                    detail = f"{challenge}/{split_dir.name}/{txt.name}:{k + 1}"
                    if challenge == "VA":
                        _read_va(fields, labels, detail)
                    elif challenge == "EXPR":
                        _read_expr(fields, codes, labels, detail)
                    else:
                        _read_au(fields, aus, labels, detail)
    return out, problems


def base_video(video: str) -> str:
    """"10-60-1280x720_right" → "10-60-1280x720": the unit of the 85/15 split."""
    return SUBJECT_SUFFIX.sub("", video)


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """One Item per frame that has a crop and at least one usable label, in every challenge merged."""
    args = parsing.with_defaults(args, add_arguments)
    root = Path(root)
    crops = args.crops or parsing.find_dir(root, CROPS_DIR, max_depth=2)
    if crops is None:
        raise FileNotFoundError(f"Aff-Wild2: no {CROPS_DIR}/ folder below {root} (give --crops)")
    annotations, problems = read_annotations(find_challenges(root, args.annotations))
    yield from problems
    held = splits.holdout((base_video(v) for v, s in annotations if s == "train"),
                          parsing.validation_fraction(args), args.split_seed)
    for (video, published), frames in sorted(annotations.items()):
        split = splits.our_split(published, base_video(video), held, has_test=False)
        folder = crops / video
        on_disk = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        for k, labels in sorted(frames.items()):
            name = f"{k:05d}.jpg"
            item = Item(database=DATABASE, split=split, image_id=f"{video}/{name}",
                        load=parsing.image_loader(folder / name), group=video, frame=k, aligned=True,
                        va=labels.va, expr=labels.expr, au=labels.au, au_mask=labels.au_mask)
            if not item.tasks:  # counted by its label problem, whether or not it has a crop
                if labels.dropped:
                    yield Skip(*labels.dropped[0])
                else:
                    yield Skip("no_usable_label", f"{video}/{name}: EXPR Other only")
                continue
            if name not in on_disk:  # labelled, but no face was found in this frame
                yield parsing.missing(folder / name)
                continue
            yield from parsing.finish(item, labels.dropped)
