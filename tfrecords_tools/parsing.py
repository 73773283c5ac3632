"""What every database parser shares: image loaders, file look-ups, split flags, label-problem accounting.

Conventions of all parsers (tfrecords_tools/README.md, "## Databases"):
- a listed image that is not on disk → `Skip("missing_file")` at parse time;
  an image that is on disk but does not decode → `SkipError("corrupt_image")`
  from `Item.load`, so the writer counts it;
- an invalid, NaN or out-of-range label is dropped and counted: when the image
  keeps another usable label it is still written and the dropped label is
  counted as `Skip("dropped_<reason>")`; when nothing usable remains the image
  is counted once as `Skip("<reason>")`.
"""

from __future__ import annotations

import argparse
import functools
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from fbn_keras import cli, preprocess
from tfrecords_tools.items import Item, ParsedItem, Skip, SkipError
from tfrecords_tools.splits import VALIDATION_FRACTION

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


# === Image loaders (picklable, so a writer may load in worker processes) ===

def decode_image(data: bytes, detail: str) -> np.ndarray:
    """Encoded image bytes → RGB uint8 (H, W, 3); SkipError("corrupt_image") if they do not fully decode."""
    try:
        return preprocess.decode_image(data, detail)
    except ValueError as e:
        raise SkipError("corrupt_image", str(e)) from None


def read_image(path: str) -> np.ndarray:
    """The image file at `path` as RGB uint8."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SkipError("missing_file", path) from None
    return decode_image(data, path)


@functools.lru_cache(maxsize=4)
def _zip(path: str) -> zipfile.ZipFile:
    # Opening a zip parses its whole directory: keep the last few open (ZipFile reads are thread-safe).
    return zipfile.ZipFile(path)


def read_zip_image(zip_path: str, member: str) -> np.ndarray:
    """The image `member` of the zip archive at `zip_path` as RGB uint8."""
    try:
        data = _zip(zip_path).read(member)
    except KeyError:
        raise SkipError("missing_file", f"{zip_path}:{member}") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise SkipError("corrupt_image", f"{zip_path}:{member} ({e})") from None
    return decode_image(data, f"{zip_path}:{member}")


def image_loader(path: Path | str) -> Callable[[], np.ndarray]:
    """`Item.load` for an image file."""
    return functools.partial(read_image, str(path))


def zip_image_loader(zip_path: Path | str, member: str) -> Callable[[], np.ndarray]:
    """`Item.load` for an image inside a zip archive."""
    return functools.partial(read_zip_image, str(zip_path), member)


# === Finding files ===

#: Folders of images or frames: a search for a label file or a layout folder never descends into them.
NO_DESCEND = frozenset({"manually_annotated_images", "cropped_aligned", "cropped", "sequences", "2d+3d",
                        "images", "image", "original", "aligned"})


def _subdirs(folders: list[Path]) -> list[Path]:
    return [c for p in folders if p.is_dir() for c in sorted(p.iterdir())
            if c.is_dir() and c.name.lower() not in NO_DESCEND]


def find_dir(root: Path, name: str, max_depth: int = 3) -> Optional[Path]:
    """The shallowest directory below `root` (root included) called `name`, case-insensitive; None if absent.

    Copies of a database differ in capitalisation and in one extra level of
    nesting; an exhaustive walk would also descend into the image folders.
    """
    target = name.lower()
    level = [root]
    for _ in range(max_depth + 1):
        found = sorted(p for p in level if p.name.lower() == target)
        if found:
            return found[0]
        level = [c for p in level if p.is_dir() for c in sorted(p.iterdir())
                 if c.is_dir() and (c.name.lower() == target or c.name.lower() not in NO_DESCEND)]
    return None


def find_file(root: Path, name: str, max_depth: int = 3) -> Optional[Path]:
    """The shallowest file below `root` called `name` (case-insensitive), skipping folders of images."""
    target = name.lower()
    level = [root]
    for _ in range(max_depth + 1):
        files = sorted(c for p in level for c in p.iterdir() if c.is_file() and c.name.lower() == target)
        if files:
            return files[0]
        level = _subdirs(level)
    return None


def index_images(root: Path) -> dict[str, list[Path]]:
    """Every image file below `root`, by file name (one walk; used where only names are known)."""
    out: dict[str, list[Path]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.lower().endswith(IMAGE_SUFFIXES):
                out.setdefault(f, []).append(Path(dirpath) / f)
    return out


# === Arguments ===

def add_split_arguments(parser: argparse.ArgumentParser, validation_default: Optional[float]) -> None:
    """--val-fraction and --split-seed, shared by every parser (main paper Section 4's 85/15 split)."""
    shown = "no validation split" if validation_default is None else f"{validation_default}"
    parser.add_argument("--val-fraction", type=cli.fraction, default=validation_default,
                        help=f"fraction of the training subjects/videos/images held out as validation "
                             f"(default: {shown})")
    parser.add_argument("--split-seed", type=cli.non_negative_int, default=0,
                        help="seed of the deterministic train/validation split (default 0)")


def with_defaults(args: Optional[argparse.Namespace],
                  add_arguments: Callable[[argparse.ArgumentParser], None]) -> argparse.Namespace:
    """`args` completed with a parser's defaults, so `parse` also works with a partial Namespace."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    full = p.parse_args([])
    for k, v in vars(args or argparse.Namespace()).items():
        setattr(full, k, v)
    return full


def validation_fraction(args: argparse.Namespace) -> float:
    """The validation fraction asked for, 0 when none."""
    return 0.0 if args.val_fraction is None else float(args.val_fraction)


# === Labels ===

def float_or_none(text: str) -> Optional[float]:
    """A float from a label field, None when it is not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def check_va(valence: Optional[float], arousal: Optional[float]) -> tuple[Optional[tuple[float, float]], Optional[str]]:
    """(va, None) for a valid pair in [-1, 1]; (None, reason) for an unparseable, NaN or out-of-range one."""
    if valence is None or arousal is None:
        return None, "invalid_label"
    v = np.array([valence, arousal], np.float64)
    if not np.all(np.isfinite(v)):
        return None, "nan_label"
    if np.any(np.abs(v) > 1.0):
        return None, "label_out_of_range"
    return (float(valence), float(arousal)), None


def finish(item: Item, dropped: Sequence[tuple[str, str]] = (), nothing_reason: str = "no_usable_label",
           ) -> Iterator[ParsedItem]:
    """Yield `item` plus one `Skip("dropped_<reason>")` per dropped label, or one Skip if nothing is usable.

    `dropped` lists (reason, detail) for each label that was invalid; when the
    item has no usable label the first of them names the skip, else
    `nothing_reason` does.
    """
    if item.tasks:
        yield item
        for reason, detail in dropped:
            yield Skip(f"dropped_{reason}", detail)
    elif dropped:
        reason, detail = dropped[0]
        yield Skip(reason, detail)
    else:
        yield Skip(nothing_reason, item.image_id)


def missing(path: Path | str) -> Skip:
    """The skip of a listed file that is not on disk."""
    return Skip("missing_file", str(path))


def parse_subjects(text: Optional[str]) -> Optional[frozenset[str]]:
    """A comma-separated subject list (or @file with one per line) → set; None when not given."""
    if not text:
        return None
    if text.startswith("@"):
        names: Iterable[str] = Path(text[1:]).read_text().split()
    else:
        names = text.split(",")
    return frozenset(n.strip() for n in names if n.strip())


__all__ = [
    "IMAGE_SUFFIXES", "VALIDATION_FRACTION", "add_split_arguments", "check_va", "decode_image",
    "find_dir", "find_file", "finish", "float_or_none", "image_loader", "index_images", "missing",
    "parse_subjects", "read_image", "read_zip_image", "validation_fraction", "with_defaults",
    "zip_image_loader",
]
