"""Parser of the synthetic video test-bed: the per-frame items of `fbn_keras.records.synthetic_video`.

    python -m tfrecords_tools.build synthetic-video --out shards/ --scale 0.5

Each of the five video sets (`synthv-affwild`, its `-control`, `synthv-affwild2`,
`synthv-afew-va`, `synthv-omg`) keeps its real namesake's partial labels; every
frame carries its 68 landmarks and its audio window. Turn the per-frame shards
into sequence shards with `fbn_keras.sequences.write_sequence_shards(OUT)`
(done by `fbn_keras.records.synthetic_video.ensure_video_testbed`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator, Optional

from fbn_keras.records.items import Item
from fbn_keras.records.synthetic_video import items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the default number of videos of every database and split (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--databases", default=None,
                        help="comma-separated synthetic video databases to build (default: all)")


def parse(root: Optional[Path], args: argparse.Namespace) -> Iterator[Item]:
    """The builder entry point: `root` is unused (the videos are generated)."""
    names = None if not getattr(args, "databases", None) else [n.strip() for n in args.databases.split(",")]
    return items(getattr(args, "scale", 1.0), getattr(args, "seed", 0), names)
