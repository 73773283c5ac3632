"""AffectNet parser: expressions (codes 0–6) and valence-arousal, with the 68 landmarks for alignment.

Layout (docs/DATABASES.md): `training.csv` and `validation.csv` (found by name
below ROOT: folder spellings vary) with the header
`subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal`
(a leading `#` stripped); images below `Manually_Annotated_Images/`. AffectNet
publishes no test set: validation.csv is our test split and training.csv is
split 85/15 by image (AffectNet names no subjects).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from fbn_keras import taxonomy
from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

#: AffectNet expression codes 0..6, in order; 7 Contempt, 8 None, 9 Uncertain, 10 No-Face carry no expression.
AFFECTNET_EXPRESSIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
CODE_TO_EXPR: tuple[int, ...] = tuple(taxonomy.expression_index(n) for n in AFFECTNET_EXPRESSIONS)
NON_CLASS_CODES = {7: "contempt", 8: "none", 9: "uncertain", 10: "no-face"}
NO_VA = -2.0                       # AffectNet's "no valence/arousal" value
NUM_LANDMARKS = 68
CSV_SPLITS = {"training.csv": "train", "validation.csv": "validation"}
IMAGE_DIR = "Manually_Annotated_Images"
REQUIRED = ("subDirectory_filePath", "expression", "valence", "arousal")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """AffectNet options: where the CSVs and images are when not found by name, and the 85/15 split."""
    parser.add_argument("--csv-dir", type=Path, default=None,
                        help="folder holding training.csv/validation.csv (default: found by name below ROOT)")
    parser.add_argument("--images", type=Path, default=None,
                        help=f"image folder (default: {IMAGE_DIR}/ found below ROOT, else ROOT)")
    parser.add_argument("--no-landmarks", action="store_true",
                        help="ignore the CSV's 68 landmarks and let the writer detect the face")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


def parse_landmarks(text: str) -> Optional[np.ndarray]:
    """`x1;y1;x2;y2;…` → (68, 2) float32 in image pixels, or None if it is not 68 finite points."""
    try:
        values = np.array([float(v) for v in text.replace(",", ";").split(";") if v.strip()], np.float32)
    except ValueError:
        return None
    if values.size != 2 * NUM_LANDMARKS or not np.all(np.isfinite(values)):
        return None
    return values.reshape(NUM_LANDMARKS, 2)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = [h.strip().lstrip("#").strip() for h in next(reader, [])]
        lacking = [h for h in REQUIRED if h not in header]
        if lacking:
            raise ValueError(f"AffectNet: {path} lacks the columns {lacking}; its header is {header}")
        for lineno, fields in enumerate(reader, 2):
            if fields:
                yield lineno, dict(zip(header, (v.strip() for v in fields)))


def _labels(row: dict[str, str], detail: str) -> tuple[int, Optional[tuple[float, float]], list[tuple[str, str]]]:
    """(expression index or -1, VA or None, dropped labels) of one CSV row."""
    dropped: list[tuple[str, str]] = []
    expr = -1
    code = parsing.float_or_none(row.get("expression", ""))
    if code is None or code != int(code):
        dropped.append(("invalid_label", f"{detail}: expression {row.get('expression')!r}"))
    elif 0 <= code < len(CODE_TO_EXPR):
        expr = CODE_TO_EXPR[int(code)]
    elif int(code) not in NON_CLASS_CODES:
        dropped.append(("label_out_of_range", f"{detail}: expression {int(code)}"))
    valence = parsing.float_or_none(row.get("valence", ""))
    arousal = parsing.float_or_none(row.get("arousal", ""))
    if valence == NO_VA and arousal == NO_VA:
        return expr, None, dropped
    va, problem = parsing.check_va(valence, arousal)
    if problem:
        dropped.append((problem, f"{detail}: valence,arousal {row.get('valence')!r},{row.get('arousal')!r}"))
    return expr, va, dropped


def _csvs(root: Path, csv_dir: Optional[Path]) -> dict[str, Path]:
    found = {}
    for name, split in CSV_SPLITS.items():
        path = parsing.find_file(csv_dir or root, name, max_depth=0 if csv_dir else 2)
        if path is not None:
            found[split] = path
    if not found:
        raise FileNotFoundError(f"AffectNet: neither training.csv nor validation.csv below {csv_dir or root}")
    return found


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """Items of training.csv (train/validation, 85/15 by image) and validation.csv (test)."""
    args = parsing.with_defaults(args, add_arguments)
    root = Path(root)
    images = args.images or parsing.find_dir(root, IMAGE_DIR, max_depth=2) or root
    csvs = _csvs(root, args.csv_dir)
    held = frozenset()
    if "train" in csvs:
        held = splits.holdout((r["subDirectory_filePath"] for _, r in _rows(csvs["train"])),
                              parsing.validation_fraction(args), args.split_seed)
    for published, path in csvs.items():
        for lineno, row in _rows(path):
            rel = row["subDirectory_filePath"]
            detail = f"{path.name}:{lineno}"
            image = images / rel
            if not rel or not image.is_file():
                yield parsing.missing(image)
                continue
            expr, va, dropped = _labels(row, detail)
            landmarks = None
            if not args.no_landmarks and (va is not None or expr >= 0):
                landmarks = parse_landmarks(row.get("facial_landmarks", ""))
                if landmarks is None:  # the writer detects the face instead: counted, not skipped
                    dropped.append(("bad_landmarks", f"{detail}: facial_landmarks"))
            item = Item(database="affectnet", split=splits.our_split(published, rel, held, has_test=False),
                        image_id=rel, load=parsing.image_loader(image), landmarks=landmarks,
                        va=va, expr=expr)
            if not item.tasks and not dropped:  # codes 9/10 (and 7/8 without VA): nothing to learn from
                yield Skip("no_usable_label", f"{detail}: expression {row.get('expression')}, no valence/arousal")
                continue
            yield from parsing.finish(item, dropped)
