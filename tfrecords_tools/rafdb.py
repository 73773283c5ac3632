"""RAF-DB parser: basic expressions (`rafdb`) and the compound set (`rafdb-compound`).

Layout (docs/DATABASES.md): `ROOT/{basic,compound}/EmoLabel/list_patition_label.txt`
with lines `<name> <label>`; images in `Image/aligned/<stem>_aligned.jpg`
(100×100 aligned crops, used by default) or `Image/original/<name>`. The split
is the name's prefix (`train_`, `test_`): RAF-DB publishes a test set, so no
validation split unless --val-fraction asks for one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

from fbn_keras import taxonomy
from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

#: RAF-DB basic codes 1..7, in order.
RAFDB_BASIC: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
BASIC_TO_EXPR: tuple[int, ...] = tuple(taxonomy.expression_index(n) for n in RAFDB_BASIC)
#: RAF-DB compound codes 1..11 → COMPOUNDS indices (the order is taxonomy's, docs/LABELS.md).
COMPOUND_TO_INDEX: tuple[int, ...] = taxonomy.RAFDB_COMPOUND_SUBSET

LABEL_FILE_NAMES = ("list_patition_label.txt", "list_partition_label.txt")  # official spelling first
SPLIT_PREFIXES = {"train": "train", "test": "test"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """RAF-DB options: originals instead of aligned crops, and the optional validation split."""
    parser.add_argument("--original", action="store_true",
                        help="use Image/original/<name> (face detected by the writer) instead of the "
                             "aligned 100x100 crops Image/aligned/<stem>_aligned.jpg")
    parsing.add_split_arguments(parser, validation_default=None)


def _subset_dir(root: Path, subset: str) -> Path:
    """ROOT/<subset> (or ROOT when it is named so); for the basic set also ROOT itself when it holds EmoLabel/.

    The compound set is never read from a folder not named `compound`, so that
    basic labels 1–7 cannot be taken for compound codes.
    """
    found = parsing.find_dir(root, subset, max_depth=1)
    if found is not None:
        return found
    if subset == "basic" and parsing.find_dir(root, "EmoLabel", max_depth=1) is not None:
        return root
    raise FileNotFoundError(f"RAF-DB: no {subset}/ folder (with EmoLabel/ and Image/) below {root}")


def _label_file(subset_dir: Path) -> Path:
    emo = parsing.find_dir(subset_dir, "EmoLabel", max_depth=1)
    for name in LABEL_FILE_NAMES:
        found = parsing.find_file(emo, name, max_depth=0) if emo else None
        if found is not None:
            return found
    raise FileNotFoundError(f"RAF-DB: no EmoLabel/list_patition_label.txt below {subset_dir}")


def image_path(subset_dir: Path, name: str, original: bool) -> Path:
    """The file of a listed image: the aligned crop is the listed stem + `_aligned.jpg` (numbers not re-padded)."""
    image_dir = parsing.find_dir(subset_dir, "Image", max_depth=1) or subset_dir / "Image"
    if original:
        return image_dir / "original" / name
    return image_dir / "aligned" / f"{Path(name).stem}_aligned.jpg"


def _parse(root: Path, args: argparse.Namespace, subset: str) -> Iterator[ParsedItem]:
    args = parsing.with_defaults(args, add_arguments)
    database = "rafdb" if subset == "basic" else "rafdb-compound"
    codes = BASIC_TO_EXPR if subset == "basic" else COMPOUND_TO_INDEX
    subset_dir = _subset_dir(Path(root), subset)
    rows: list[tuple[str, str, int]] = []    # (name, published split, 0-based code) of usable lines
    for lineno, line in enumerate(_label_file(subset_dir).read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        detail = f"{subset}/list_patition_label.txt:{lineno}"
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            yield Skip("invalid_label", f"{detail}: {line!r}")
            continue
        name, code = fields[0], int(fields[1])
        if not 1 <= code <= len(codes):
            yield Skip("label_out_of_range", f"{detail}: {line!r}")
            continue
        split = SPLIT_PREFIXES.get(name.split("_", 1)[0])
        if split is None:
            yield Skip("unknown_split", f"{detail}: {name} has neither a train_ nor a test_ prefix")
            continue
        rows.append((name, split, code - 1))

    held = splits.holdout([n for n, s, _ in rows if s == "train"],
                          parsing.validation_fraction(args), args.split_seed)
    for name, published, code in rows:
        path = image_path(subset_dir, name, args.original)
        if not path.is_file():
            yield parsing.missing(path)
            continue
        label = {"expr": codes[code]} if subset == "basic" else {"compound": codes[code]}
        yield Item(database=database, split=splits.our_split(published, name, held, has_test=True),
                   image_id=f"{subset}/{name}", load=parsing.image_loader(path),
                   aligned=not args.original, **label)


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """RAF-DB basic set (or the compound set when args.dataset is "rafdb-compound")."""
    subset = "compound" if getattr(args, "dataset", "rafdb") == "rafdb-compound" else "basic"
    return _parse(root, args, subset)


def parse_compound(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """RAF-DB compound set: codes 1..11 → `taxonomy.RAFDB_COMPOUND_SUBSET`."""
    return _parse(root, args, "compound")
