"""EmotioNet parser: the challenge's 11 AUs, and its basic + compound emotion set.

EmotioNet is distributed as lists of image URLs; users download the images.
No standard layout exists, so ours is (tfrecords_tools/README.md): each list
file is given by its role on the command line (`--au-train`, `--au-validation`,
`--au-test`, `--emotion-train`, …; paths relative to ROOT or absolute), and each
downloaded image is found below ROOT (or --images) by the URL's last path
component (or at `<host>/<path>`, as `wget -x` saves it).

- AU lists: tab-separated, no header (`url`, `orig_url`, AU1…AU60), or the later
  table (.csv/.xlsx) with a header (`URL`, `URL orig`, `'AU 1'`, …). 999 = not
  coded (mask 0); only the 11 challenge AUs are read. Records: `emotionet`.
- Emotion lists: 16 one-hot columns (alphabetical, docs/DATABASES.md): the six
  basic ones → `label/expr`, the ten compound ones → `label/compound`
  (`taxonomy.EMOTIONET_COMPOUND_SUBSET`). Records: `emotionet-compound`.
- Splits per kind of list: without a test list, the validation list is our
  test split and the training list splits 85/15 by image.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional
from urllib.parse import unquote, urlparse

import numpy as np

from fbn_keras import taxonomy
from tfrecords_tools import parsing, splits
from tfrecords_tools.items import Item, ParsedItem, Skip

AU_DATABASE = "emotionet"
EMOTION_DATABASE = "emotionet-compound"
CHALLENGE_AUS: tuple[int, ...] = taxonomy.DATABASES[AU_DATABASE].aus
NOT_CODED = 999
ROLES = ("train", "validation", "test")
KINDS = ("au", "emotion")
#: The emotion set's 16 one-hot columns, in their (alphabetical) order.
EMOTIONET_EMOTIONS: tuple[str, ...] = (
    "angrily_disgusted", "angrily_surprised", "angry", "appalled", "awed", "disgusted", "fearful",
    "fearfully_angry", "fearfully_surprised", "happily_disgusted", "happily_surprised", "happy", "sad",
    "sadly_angry", "sadly_disgusted", "surprised")
#: The six basic columns → our expression names; the other ten are compound names.
EMOTIONET_BASIC: dict[str, str] = {
    "angry": "anger", "disgusted": "disgust", "fearful": "fear", "happy": "happiness",
    "sad": "sadness", "surprised": "surprise"}


def _norm(name: str) -> str:
    """Column-name key: "'AU 1'" → "au1", "URL orig" → "urlorig", "happily_surprised" → "happilysurprised"."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _emotion_targets() -> dict[str, tuple[str, int]]:
    """Normalised column name → ("expr", index) or ("compound", index)."""
    out = {}
    for name in EMOTIONET_EMOTIONS:
        if name in EMOTIONET_BASIC:
            out[_norm(name)] = ("expr", taxonomy.expression_index(EMOTIONET_BASIC[name]))
        else:
            index = taxonomy.compound_index(name.replace("_", " "))
            if index not in taxonomy.EMOTIONET_COMPOUND_SUBSET:
                raise ValueError(f"EmotioNet compound {name!r} is not in taxonomy.EMOTIONET_COMPOUND_SUBSET")
            out[_norm(name)] = ("compound", index)
    return out


EMOTION_TARGETS = _emotion_targets()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """EmotioNet options: one flag per list role (repeatable), the image folder, the 85/15 split."""
    for kind in KINDS:
        for role in ROLES:
            parser.add_argument(f"--{kind}-{role}", action="append", default=None, metavar="LIST",
                                help=f"{'AU' if kind == 'au' else 'emotion-set'} list of the published "
                                     f"{role} set (repeatable)")
    parser.add_argument("--images", type=Path, default=None,
                        help="folder holding the downloaded images (default: ROOT)")
    parsing.add_split_arguments(parser, validation_default=splits.VALIDATION_FRACTION)


# === Tables ===

def _is_number(text: str) -> bool:
    return parsing.float_or_none(text.strip().strip("'\"")) is not None


def read_table(path: Path, kind: str) -> tuple[list[str], list[list[str]]]:
    """(normalised column names, rows of strings) of a list file, with or without its header."""
    if path.suffix.lower() in (".xlsx", ".xls"):
        import pandas as pd  # only the later header tables need it
        frame = pd.read_excel(path, dtype=str, header=0).fillna("")
        return [_norm(c) for c in frame.columns], frame.values.tolist()
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first else ","
    rows = [[f.strip() for f in r] for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(r)]
    if not rows:
        return [], []
    if len(rows[0]) > 2 and not _is_number(rows[0][2]):          # a header row
        return [_norm(c) for c in rows[0]], rows[1:]
    width = len(rows[0])
    if kind == "au":                                             # url, [orig_url,] AU1…AU60
        urls = ["url"] if width == 61 else ["url", "urlorig"]
        return urls + [f"au{i}" for i in range(1, width - len(urls) + 1)], rows
    emotions = [_norm(e) for e in EMOTIONET_EMOTIONS]
    if width == len(emotions) + 1:
        return ["url"] + emotions, rows
    if width == len(emotions) + 2:
        return ["url", "urlorig"] + emotions, rows
    raise ValueError(f"EmotioNet: {path}: a header-less emotion list needs a URL column (or two) and "
                     f"{len(emotions)} emotion columns; its rows have {width} fields")


def clean_url(text: str) -> str:
    """A URL field without surrounding spaces and quotes (the later tables end URLs with `'`)."""
    return text.strip().strip("'\"").strip()


def _au_labels(row: dict[str, str], detail: str) -> tuple[Optional[np.ndarray], Optional[np.ndarray], list]:
    """(au, mask, dropped) from a row's challenge-AU columns; (None, None, []) when the table has none."""
    present = [a for a in CHALLENGE_AUS if f"au{a}" in row]
    if not present:
        return None, None, []
    au = np.zeros(taxonomy.NUM_AUS, np.float32)
    mask = np.zeros(taxonomy.NUM_AUS, np.float32)
    dropped = []
    for a in present:
        value = parsing.float_or_none(row[f"au{a}"].strip("'\""))
        if value in (0.0, 1.0):
            au[taxonomy.au_index(a)] = value
            mask[taxonomy.au_index(a)] = 1.0
        elif value != NOT_CODED:
            dropped.append(("invalid_label", f"{detail}: AU{a} = {row[f'au{a}']!r}"))
    return au, mask, dropped


def _emotion_label(row: dict[str, str], detail: str) -> tuple[int, int, list]:
    """(expr, compound, dropped) from a row's one-hot emotion columns; (-1, -1, []) when the table has none."""
    columns = [c for c in EMOTION_TARGETS if c in row]
    if not columns:
        return -1, -1, []
    values = {c: parsing.float_or_none(row[c].strip("'\"")) for c in columns}
    if any(v not in (0.0, 1.0) for v in values.values()):
        return -1, -1, [("invalid_label", f"{detail}: emotion values {values}")]
    on = [c for c, v in values.items() if v == 1.0]
    if len(on) != 1:
        return -1, -1, [("invalid_label", f"{detail}: {len(on)} emotion columns set, expected one")]
    task, index = EMOTION_TARGETS[on[0]]
    return (index, -1, []) if task == "expr" else (-1, index, [])


# === Images ===

class ImageFinder:
    """URL → downloaded file below a folder: at `<host>/<path>`, else by the URL's file name."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._index: Optional[dict[str, list[Path]]] = None

    def find(self, url: str) -> tuple[Optional[Path], str]:
        """(path, "") when found, else (None, skip reason)."""
        parsed = urlparse(url)
        path = unquote(parsed.path)
        name = PurePosixPath(path).name
        if not name:
            return None, "invalid_label"
        direct = self.folder / parsed.netloc / path.lstrip("/")
        if parsed.netloc and direct.is_file():
            return direct, ""
        if self._index is None:
            self._index = parsing.index_images(self.folder)
        found = self._index.get(name) or self._index.get(PurePosixPath(parsed.path).name) or []
        if len(found) == 1:
            return found[0], ""
        return None, ("ambiguous_file" if found else "missing_file")


def _list_path(root: Path, text: str) -> Path:
    """A list given on the command line: absolute, relative to ROOT, else relative to the working folder."""
    path = Path(text)
    if path.is_absolute() or not (root / path).exists():
        return path
    return root / path


def parse(root: Path, args: argparse.Namespace) -> Iterator[ParsedItem]:
    """Items of every list given by role: AU lists → `emotionet`, emotion lists → `emotionet-compound`."""
    args = parsing.with_defaults(args, add_arguments)
    root = Path(root)
    lists = {(kind, role): [_list_path(root, p) for p in getattr(args, f"{kind}_{role}") or []]
             for kind in KINDS for role in ROLES}
    if not any(lists.values()):
        raise ValueError("EmotioNet: give at least one list by role, e.g. --au-train LIST --au-validation LIST "
                         "(see tfrecords_tools/README.md)")
    finder = ImageFinder(args.images or root)
    for kind in KINDS:
        has_test = bool(lists[(kind, "test")])
        tables = {role: [(p, *read_table(p, kind)) for p in lists[(kind, role)]] for role in ROLES}
        train_urls = [clean_url(r[c.index("url") if "url" in c else 0])
                      for _, c, rows in tables["train"] for r in rows if r]
        # A published test list keeps the published validation list: the training list is not split.
        held = frozenset() if has_test else splits.holdout(
            train_urls, parsing.validation_fraction(args), args.split_seed)
        database = AU_DATABASE if kind == "au" else EMOTION_DATABASE
        for role in ROLES:
            for path, columns, rows in tables[role]:
                url_col = columns.index("url") if "url" in columns else 0
                for lineno, fields in enumerate(rows, 1):
                    detail = f"{path.name}:{lineno}"
                    if len(fields) != len(columns):
                        yield Skip("invalid_label", f"{detail}: {len(fields)} fields, expected {len(columns)}")
                        continue
                    row = dict(zip(columns, fields))
                    url = clean_url(fields[url_col])
                    au, mask, dropped = _au_labels(row, detail)
                    expr, compound, more = _emotion_label(row, detail)
                    dropped += more
                    image, reason = finder.find(url)
                    if image is None:
                        yield Skip(reason, f"{detail}: {url}")
                        continue
                    rel = image.relative_to(finder.folder).as_posix()
                    item = Item(database=database, split=splits.our_split(role, url, held, has_test),
                                image_id=rel, load=parsing.image_loader(image),
                                au=au, au_mask=mask, expr=expr, compound=compound)
                    yield from parsing.finish(item, dropped)
