"""`python -m tfrecords_tools.build DATASET --root ROOT --out OUT`: one database's files → TFRecord shards.

DATASET picks a parser module from `PARSERS` (imported only when chosen); the
module's `add_arguments(parser)` adds its own flags and `parse(root, args)`
yields Items and Skips, which the Apache Beam pipeline
(`tfrecords_tools/beam_pipeline.py`, every local core by default) or, with
`--writer inline`, the single-process writer (`fbn_keras.records.writer`) turns
into shards. Beam pipeline options go after `--`. The parser sees
`args.dataset`, so one module can serve two datasets (RAF-DB and its compound
set, BP4D and BP4D+). Exit status: 0 when the OUT folder holds records of this
build, 1 when nothing could be written, 2 on a usage error or a skip under
`--strict`.

Example:
    python -m tfrecords_tools.build rafdb --root /data/RAF-DB --out shards/
    python -m tfrecords_tools.build synthetic --out shards/ --scale 0.1 --writer inline
    python -m tfrecords_tools.build affectnet --root /nfs/AffectNet --out /nfs/fbn -- \
        --runner FlinkRunner --flink_master flink-jobmanager:8081 --environment_type PROCESS ...
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from fbn_keras import cli

#: DATASET → the module with its parser.
PARSERS: dict[str, str] = {
    "synthetic": "tfrecords_tools.synthetic",
    "synthetic-video": "tfrecords_tools.synthetic_video",
    "affectnet": "tfrecords_tools.affectnet",
    "affwild2": "tfrecords_tools.affwild2",
    "affwild": "tfrecords_tools.affwild",
    "rafdb": "tfrecords_tools.rafdb",
    "rafdb-compound": "tfrecords_tools.rafdb",
    "emotionet": "tfrecords_tools.emotionet",
    "disfa": "tfrecords_tools.disfa",
    "bp4d": "tfrecords_tools.bp4d",
    "bp4dplus": "tfrecords_tools.bp4d",
    "afew": "tfrecords_tools.afew",
    "afew-va": "tfrecords_tools.afew_va",
    "omg": "tfrecords_tools.omg",
    "hume-reaction": "tfrecords_tools.hume_reaction",
}
#: Datasets that read nothing from disk.
NO_ROOT = frozenset({"synthetic", "synthetic-video"})

log = logging.getLogger("tfrecords_tools.build")


def parser_module(dataset: str):
    """The parser module of `dataset` (ValueError naming the choices for an unknown one)."""
    if dataset not in PARSERS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {sorted(PARSERS)}")
    return importlib.import_module(PARSERS[dataset])


def _arg_parser(module=None) -> argparse.ArgumentParser:
    from tfrecords_tools.writer import ALIGN_MODES, DEFAULT_SHARD_SIZE

    p = cli.ArgumentParser(prog=cli.prog("tfrecords_tools.build"), description=__doc__.split("\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(PARSERS), metavar="DATASET", help=", ".join(sorted(PARSERS)))
    p.add_argument("--root", type=Path, help="the database's folder as distributed (not needed for synthetic)")
    p.add_argument("--out", type=Path, required=True, help="shard folder (several databases may share it)")
    p.add_argument("--strict", action="store_true", help="stop at the first item that would be skipped")
    p.add_argument("--align", choices=ALIGN_MODES, default="auto",
                   help="auto: resize pre-aligned crops, align from given landmarks, else detect; "
                        "detect: always detect; none: centre-crop and resize, no detection")
    p.add_argument("--shard-size", type=cli.positive_int, default=DEFAULT_SHARD_SIZE,
                   help=f"items per shard of a database split (default {DEFAULT_SHARD_SIZE})")
    p.add_argument("--image-size", type=cli.positive_int, default=96, help="side of the stored crops (default 96)")
    p.add_argument("--landmarks", choices=("off", "dlib"), default="off",
                   help="dlib: dlib's 68 landmarks of each aligned crop into its record (journal Section IV; "
                        "needs --writer inline; a crop without a face: mask 0, counted as no_landmarks); "
                        "off: only the landmarks a database ships (default off)")
    p.add_argument("--writer", choices=("beam", "inline"), default="beam",
                   help="beam: the Apache Beam pipeline, on every local core unless pipeline options after `--` "
                        "say otherwise; inline: the single-process writer (default beam)")
    p.add_argument("--commit-every", type=cli.positive_int, default=50_000,
                   help="beam: items per pipeline run, the unit a rerun after an interruption redoes "
                        "(default 50000)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug-level logging")
    if module is not None and hasattr(module, "add_arguments"):
        module.add_arguments(p)
    return p


def record_parser_options(out: Path, dataset: str, options: dict):
    """Add a parser's own choices to its build's `options` in `out`'s manifest (under the manifest lock)."""
    from fbn_keras.manifest import Manifest, locked

    with locked(out):
        manifest = Manifest.load(out)
        manifest.data["builds"][dataset].setdefault("options", {})["parser"] = dict(options)
        manifest.save(out)
    return manifest


def split_pipeline_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(our arguments, Beam pipeline options): everything after the first `--` goes to Beam."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def write(items, args: argparse.Namespace, pipeline_args: Sequence[str]):
    """Write a parser's items with the writer `args.writer` names; the manifest."""
    from tfrecords_tools.writer import write_shards

    common = dict(strict=args.strict, aligner=args.align, shard_size=args.shard_size, image_size=args.image_size)
    if getattr(args, "landmarks", "off") == "dlib":
        from fbn_keras.landmarks import Landmarker
        return write_shards(items, args.out, args.dataset, landmarker=Landmarker(), **common)
    if args.writer == "inline":
        return write_shards(items, args.out, args.dataset, **common)
    try:
        from tfrecords_tools import beam_pipeline
    except ImportError as err:
        log.warning("apache_beam cannot be imported (%s): writing with the single-process writer instead "
                    "(pip install -r requirements.txt for the parallel build)", err)
        return write_shards(items, args.out, args.dataset, **common)
    if not args.verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    return beam_pipeline.write_shards_beam(items, args.out, args.dataset, pipeline_args=pipeline_args,
                                           commit_every=args.commit_every, **common)


@cli.entry_point("tfrecords_tools.build")
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, pipeline_args = split_pipeline_args(argv)
    # Find DATASET first, so that its parser's own flags (and --help) can be added.
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("dataset", nargs="?")
    known, _ = first.parse_known_args(argv)
    module = None
    if known.dataset in PARSERS:
        try:
            module = parser_module(known.dataset)
        except ImportError as err:
            print(f"error: the {known.dataset} parser ({PARSERS[known.dataset]}) cannot be imported: {err}",
                  file=sys.stderr)
            return 2
    args = _arg_parser(module).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.landmarks != "off" and args.writer != "inline":
        print("error: --landmarks dlib runs in the single-process writer: add --writer inline", file=sys.stderr)
        return 2
    if pipeline_args and args.writer != "beam":
        print(f"error: pipeline options after `--` need --writer beam. Received: {pipeline_args}", file=sys.stderr)
        return 2
    if args.dataset not in NO_ROOT:
        if args.root is None:
            print(f"error: {args.dataset} needs --root (the database's folder)", file=sys.stderr)
            return 2
        if not args.root.is_dir():
            print(f"error: --root {args.root} is not a folder", file=sys.stderr)
            return 2

    from tfrecords_tools.writer import StrictSkipError, build_records, build_skips

    # What a parser decided from the files while reading (e.g. BP4D+'s frame offset): kept in the manifest.
    args.parser_options = {}
    try:
        manifest = write(module.parse(args.root, args), args, pipeline_args)
        if args.parser_options:
            manifest = record_parser_options(args.out, args.dataset, args.parser_options)
    except StrictSkipError as err:
        print(f"error (--strict): {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        # A parser raises these when the folder is not the database's published layout
        # (e.g. no AUCoding/AU_OCC/ under a BP4D root): one line, not a traceback.
        print(f"error: cannot read {args.dataset} under {args.root}: {err}", file=sys.stderr)
        return 2
    records = build_records(manifest, args.dataset)
    if records == 0:
        print(f"error: no record of {args.dataset} could be written to {args.out}; skips by reason: "
              f"{build_skips(manifest, args.dataset)} (details in {args.out / 'manifest.json'})", file=sys.stderr)
        return 1
    print(f"{args.dataset}: {records} records in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
