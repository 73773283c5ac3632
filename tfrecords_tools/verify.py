"""`python -m tfrecords_tools.verify OUT`: read every shard OUT's manifest lists and name each bad one.

A shard is bad when it is missing, when one of its records fails a checksum
or is cut short (TensorFlow reads it and checks both CRCs of every record),
or when it holds another number of records than the manifest lists. Each bad
shard gets one line: its path and what is wrong (with the byte offset of a
corrupt record). Exit status: 0 when every shard is sound, 1 when any is bad,
2 when OUT holds no manifest.

Example:
    python -m tfrecords_tools.verify /data/fbn
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

from fbn_keras import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def listed_shards(manifest) -> Iterator[tuple[str, int]]:
    """(relative path, records) of every shard the manifest lists, over databases, splits and task folders."""
    for name in manifest.databases():
        for entry in manifest.splits(name).values():
            for shards in entry.get("shards", {}).values():
                for shard in shards:
                    yield shard["file"], int(shard["records"])


def check_shard(path: Path, expected: int) -> tuple[int, Optional[str]]:
    """(records read, what is wrong or None) for one shard, every record's checksums checked by TensorFlow."""
    import tensorflow as tf

    from fbn_keras import shard_check

    if not path.is_file():
        return 0, "missing"
    try:
        count = int(tf.data.TFRecordDataset(str(path)).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    except tf.errors.DataLossError as err:
        found = shard_check.DATA_LOSS.search(err.message)
        if not found:
            return 0, " ".join(err.message.split())[:200]
        return 0, shard_check.record_problem_at(path, int(found.group(2))) or found.group(0)
    except tf.errors.OpError as err:
        return 0, " ".join(err.message.split())[:200]
    if count != expected:
        return count, f"holds {count} records, the manifest lists {expected}"
    return count, None


def verify(out: Path) -> tuple[int, int, list[tuple[str, str]]]:
    """(shards checked, records read, [(path, problem)] of the bad shards) of a shard folder."""
    from fbn_keras.manifest import Manifest

    manifest = Manifest.load(out)
    checked, records, bad = 0, 0, []
    for relative, expected in listed_shards(manifest):
        count, problem = check_shard(out / relative, expected)
        checked, records = checked + 1, records + count
        if problem:
            bad.append((str(out / relative), problem))
    return checked, records, bad


@cli.entry_point("tfrecords_tools.verify")
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog=cli.prog("tfrecords_tools.verify"), description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="a shard folder written by tfrecords_tools.build")
    args = parser.parse_args(argv)
    if not (args.out / "manifest.json").is_file():
        print(f"error: {args.out} holds no manifest.json (not a folder built by tfrecords_tools.build)",
              file=sys.stderr)
        return 2
    try:
        checked, records, bad = verify(args.out)
    except ValueError as err:          # an unreadable manifest
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, problem in bad:
        print(f"BAD {path}: {problem}")
    print(f"{checked} shards, {records} records read: {len(bad)} bad"
          + (" (rebuild those databases, or train with --skip-corrupt-records)" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
