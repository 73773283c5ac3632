"""Parser of the synthetic test-bed: the items of `fbn_keras.records.synthetic` (already aligned 96×96 crops).

Each synthetic database (`synth-affwild`, `synth-rafdb`, …) keeps its own
partial labels, so the shards reproduce the real sets' annotation pattern.
`--scale` multiplies every default size (0.1 for a quick test-bed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator, Optional

from fbn_keras.records.items import Item
from fbn_keras.records.synthetic import items, sizes, to_item  # noqa: F401  (re-exported)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the default number of images of every database and split (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--databases", default=None,
                        help="comma-separated synthetic databases to build (default: all)")


def parse(root: Optional[Path], args: argparse.Namespace) -> Iterator[Item]:
    """The builder entry point: `root` is unused (the data is generated)."""
    names = None if not getattr(args, "databases", None) else [n.strip() for n in args.databases.split(",")]
    return items(getattr(args, "scale", 1.0), getattr(args, "seed", 0), names)
