"""The single-process shard writer: parser Items → 96×96 JPEG records in per-task TFRecord shards, and the manifest.

The Apache Beam build (`tfrecords_tools/beam_pipeline.py`) subclasses `BuildRun`
and reuses the split streams below, so both writers name, list and resume
shards the same way.

Layout: `OUT/{va,au,expr,compound}/<database>-<split>-NNNNN-of-MMMMM.tfrecord`
and `OUT/manifest.json` (`fbn_keras/manifest.py`). A record whose item has
labels of two tasks is written into both task folders.

Streaming and resuming. A parser streams items of any split in any order, so
the writer cuts each (database, split) into *chunks* of `shard_size` items
(written or skipped). A chunk is written to `*.tfrecord.tmp` files, renamed to
`<database>-<split>-chunkKKKKK.tfrecord` when full, and only then recorded in
the manifest with the counts so far. When the stream ends, the chunks of each
split are renamed to their final `-NNNNN-of-MMMMM` names (now that M is known)
and the split is marked complete. A rerun after an interruption replays the
parser but skips, without loading them, the items of every chunk the manifest
lists; a rerun of a finished build returns at once. Half-written `.tmp` files
and chunks the manifest does not list are deleted and redone. Readers take
their shard lists from the manifest, so they never see partial files.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import tensorflow as tf

from fbn_keras.manifest import FOLDERS, Manifest, locked, merge
from fbn_keras.records.encode import IMAGE_SIZE, JPEG_QUALITY, Aligner, landmarks_missed, make_aligner, process
from fbn_keras.records.items import SPLITS, Item, Skip, SkipError

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1000
MAX_EXAMPLES = 5                         # skip details kept per reason in the manifest
_NAME = re.compile(r"^[A-Za-z0-9_.+]+(-[A-Za-z0-9_.+]+)*$")


class StrictSkipError(RuntimeError):
    """A skip under `strict=True`: the message names the reason and the item."""


# === One (database, split) stream ===

def new_split() -> dict:
    """A (database, split) entry of the manifest before its first chunk."""
    return {"complete": False, "items": 0, "records": 0, "chunks_done": 0,
            "tasks": {t: 0 for t in FOLDERS}, "skips": {}, "skip_examples": {},
            "chunks": {t: [] for t in FOLDERS}, "shards": {}}


def count_skip(entry: dict, reason: str, example: str) -> None:
    """Count one skip of `reason` in a manifest entry, keeping the first MAX_EXAMPLES details."""
    entry["skips"][reason] = entry["skips"].get(reason, 0) + 1
    examples = entry["skip_examples"].setdefault(reason, [])
    if len(examples) < MAX_EXAMPLES:
        examples.append(example)


class SplitStream:
    """Chunks, counts and final shards of one (database, split); `committed` is what the manifest may say."""

    def __init__(self, out: Path, database: str, split: str, previous: Optional[dict], shard_size: int):
        self.out, self.database, self.split, self.shard_size = out, database, split, shard_size
        self.committed = copy.deepcopy(previous) if previous else new_split()
        self.live = copy.deepcopy(self.committed)
        self.resume_left = 0 if self.complete else self.committed["items"]   # items already in listed chunks
        self.writers: dict[str, tuple[tf.io.TFRecordWriter, Path, int]] = {}
        self.chunk_items = 0
        self.written_now = 0
        if not self.complete:
            self._remove_unlisted()

    @property
    def complete(self) -> bool:
        return bool(self.committed["complete"])

    def _stem(self) -> str:
        return f"{self.database}-{self.split}"

    def _remove_unlisted(self) -> None:
        """Delete half-written temporaries and chunks the manifest does not list (they are redone)."""
        listed = {f for chunks in self.committed["chunks"].values() for f, _ in chunks}
        for task in FOLDERS:
            folder = self.out / task
            if not folder.is_dir():
                continue
            for path in folder.glob(f"{self._stem()}-chunk*"):
                if f"{task}/{path.name}" not in listed:
                    log.info("removing unfinished %s", path)
                    path.unlink()

    def skip(self, reason: str, example: str) -> None:
        count_skip(self.live, reason, example)

    def write(self, example: tf.train.Example, tasks: tuple[str, ...]) -> None:
        serialized = example.SerializeToString()
        for task in tasks:
            if task not in self.writers:
                path = self.out / task / f"{self.chunk_stem()}.tfrecord.tmp"
                path.parent.mkdir(parents=True, exist_ok=True)
                self.writers[task] = (tf.io.TFRecordWriter(str(path)), path, 0)
            writer, path, n = self.writers[task]
            writer.write(serialized)
            self.writers[task] = (writer, path, n + 1)
            self.live["tasks"][task] += 1
        self.live["records"] += 1
        self.written_now += 1

    def end_item(self) -> bool:
        """Count one item of the stream; True when that filled the chunk (which is then committed)."""
        self.live["items"] += 1
        self.chunk_items += 1
        if self.chunk_items >= self.shard_size:
            self.commit_chunk()
            return True
        return False

    def commit_chunk(self) -> None:
        """Close the open chunk's files, give them their chunk names, and make the counts committable."""
        for task, (writer, tmp, n) in self.writers.items():
            writer.close()
            final = tmp.with_suffix("")              # drop ".tmp"
            os.replace(tmp, final)
            self.live["chunks"][task].append([f"{task}/{final.name}", n])
        self.writers = {}
        self.chunk_items = 0
        self.live["chunks_done"] += 1
        self.committed = copy.deepcopy(self.live)

    def commit_files(self, files: dict[str, list[tuple[str, int]]], items: int, records: int,
                     tasks: dict[str, int], skips: dict[str, int], examples: dict[str, list[str]]) -> None:
        """Commit one chunk written elsewhere (the Beam build): its files per task `(relative path, records)`
        already in place under `out`, and the counts of its `items` items."""
        live = self.live
        for task, listed in files.items():
            live["chunks"][task].extend([rel, int(n)] for rel, n in listed)
        live["items"] += items
        live["records"] += records
        self.written_now += records
        for task, n in tasks.items():
            live["tasks"][task] += n
        for reason, n in skips.items():
            live["skips"][reason] = live["skips"].get(reason, 0) + n
            kept = live["skip_examples"].setdefault(reason, [])
            kept.extend(examples.get(reason, [])[:max(0, MAX_EXAMPLES - len(kept))])
        live["chunks_done"] += 1
        self.committed = copy.deepcopy(live)

    def chunk_stem(self) -> str:
        """`<database>-<split>-chunkKKKKK`: the file stem of the chunk being written (before its shard suffix)."""
        return f"{self._stem()}-chunk{self.live['chunks_done']:05d}"

    def close_abandoned(self) -> None:
        """Close open temporaries without committing them (after an error): the next run deletes them."""
        for writer, _, _ in self.writers.values():
            writer.close()
        self.writers = {}

    def finish(self) -> None:
        """End of stream: commit the last chunk, rename every chunk to `-NNNNN-of-MMMMM`, mark complete."""
        if self.chunk_items or self.writers:
            self.commit_chunk()
        shards: dict[str, list[dict]] = {}
        for task, chunks in self.live["chunks"].items():
            if not chunks:
                continue
            total = len(chunks)
            shards[task] = []
            for i, (rel, n) in enumerate(chunks):
                final = f"{task}/{self._stem()}-{i:05d}-of-{total:05d}.tfrecord"
                src, dst = self.out / rel, self.out / final
                if src.exists():
                    os.replace(src, dst)
                elif not dst.exists():   # neither: a file was removed by hand since the manifest listed it
                    raise FileNotFoundError(f"chunk {src} listed in the manifest is missing; rebuild this split")
                shards[task].append({"file": final, "records": n})
        self.live.update(complete=True, shards=shards, chunks={t: [] for t in FOLDERS})
        self.committed = copy.deepcopy(self.live)


# === The writer ===

def write_shards(items: Iterable[Union[Item, Skip]], out: str | Path, database: str, *,
                 shard_size: int = DEFAULT_SHARD_SIZE, strict: bool = False,
                 aligner: Union[str, Aligner] = "auto", image_size: int = IMAGE_SIZE,
                 jpeg_quality: int = JPEG_QUALITY, landmarker=None) -> Manifest:
    """Write a parser's stream into `out` and return the merged manifest.

    Args:
        items: Items and Skips from a parser (`fbn_keras/records/items.py`).
        out: the shard folder; several builds may share it (the manifest merges).
        database: the build's name (e.g. "affectnet", "synthetic"); the records
            are filed under each item's own `item.database`.
        shard_size: items (written or skipped) per shard of a (database, split).
        strict: raise `StrictSkipError` on the first skip instead of counting it.
        aligner: an `--align` mode ("auto", "detect", "none") or a callable
            `(rgb, item) -> (image_size, image_size, 3) uint8`.
        landmarker: a `fbn_keras.landmarks.Landmarker` for a mode `aligner`: dlib's 68 points of every
            crop whose item brings none go into its record (`--landmarks dlib`); a crop where dlib
            finds no face is written with landmarks mask 0 and counted as a "no_landmarks" skip.
    """
    out = Path(out)
    check_names(database, shard_size)
    if landmarker is not None and not isinstance(aligner, str):
        raise ValueError("landmarker goes with an --align mode; a custom aligner brings its own (make_aligner)")
    align = make_aligner(aligner, image_size, landmarker=landmarker) if isinstance(aligner, str) else aligner
    options = {"shard_size": shard_size, "align": aligner if isinstance(aligner, str) else "custom",
               "image_size": image_size, "jpeg_quality": jpeg_quality}
    if landmarker is not None:
        options["landmarks"] = "dlib"
    return run_build(out, database,
                     lambda previous: BuildRun(out, database, previous, options, strict, align).run(items))


def check_names(database: str, shard_size: int) -> None:
    """ValueError for a build name that cannot be a file name, or a shard size below 1."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1. Received: shard_size={shard_size}")
    if not _NAME.match(database):
        raise ValueError(f"database must be a plain name (letters, digits, '-', '_'). Received: {database!r}")


def run_build(out: Path, build: str, start: Callable[[Manifest], Manifest]) -> Manifest:
    """`start(previous manifest)` under the build's lock, unless the manifest says the build is complete."""
    try:
        with locked(out, f".build-{build}.lock", blocking=False):
            previous = Manifest.load(out)
            if previous.build_complete(build):
                log.info("%s: already complete in %s (nothing to do; remove its entries to rebuild)", build, out)
                return previous
            return start(previous)
    except BlockingIOError:
        raise RuntimeError(f"Another build of {build!r} is writing into {out}; wait for it to finish") from None


class BuildRun:
    """The state of one build: its split streams and the skips that no split owns.

    `run` feeds every parser object to `handle`, then `flush`, then finishes the
    splits; this class writes each item as it comes, and the Beam build
    (`tfrecords_tools/beam_pipeline.py`) overrides `handle` and `flush` to write
    chunks of items in parallel.
    """

    def __init__(self, out: Path, build: str, previous: Manifest, options: dict, strict: bool,
                 align: Optional[Aligner] = None):
        self.out, self.build, self.previous = out, build, previous
        self.shard_size, self.quality = options["shard_size"], options["jpeg_quality"]
        self.strict, self.align = strict, align
        self.streams: dict[tuple[str, str], SplitStream] = {}
        old = previous.data["builds"].get(build, {})
        # Skips outside any split are recounted from zero: the parser is replayed from its start.
        self.entry = {"complete": False, "databases": list(old.get("databases", [])), "options": options,
                      "skips": {}, "skip_examples": {}}

    def stream(self, database: str, split: str) -> SplitStream:
        key = (database, split)
        if key not in self.streams:
            if not _NAME.match(database):
                raise ValueError(f"item.database must be a plain name. Received: {database!r}")
            entry = self.previous.data["databases"].get(database, {}).get("splits", {}).get(split)
            self.streams[key] = SplitStream(self.out, database, split, entry, self.shard_size)
            if database not in self.entry["databases"]:
                self.entry["databases"].append(database)
        return self.streams[key]

    def on_skip(self, reason: str, where: str, detail: str, stream: Optional[SplitStream]) -> None:
        message = f"{where}: {detail}" if detail else where
        if self.strict:
            raise StrictSkipError(f"{reason}: {message}")
        log.warning("skip %s %s", reason, message)
        if stream is None:
            count_skip(self.entry, reason, message)
        else:
            stream.skip(reason, message)

    def run(self, items: Iterable[Union[Item, Skip]]) -> Manifest:
        try:
            for obj in items:
                self.handle(obj)
            self.flush()
        except BaseException:
            for s in self.streams.values():
                s.close_abandoned()
            raise
        for s in self.streams.values():
            if not s.complete:
                s.finish()
        self.entry["complete"] = True
        manifest = self.save()
        self.summarise(manifest)
        return manifest

    def accept(self, obj: Union[Item, Skip]) -> Optional[tuple[Item, SplitStream]]:
        """The item and its split's stream when `obj` is to be written now; None for a Skip or a bad split
        (counted at build level) and for an item the manifest already holds (complete split, listed chunk)."""
        if isinstance(obj, Skip):
            self.on_skip(obj.reason, self.build, obj.detail, None)
            return None
        if not isinstance(obj, Item):
            raise TypeError(f"A parser must yield Item or Skip objects. Received: {type(obj).__name__}")
        if obj.split not in SPLITS:
            self.on_skip("bad_split", where(obj), f"split must be one of {SPLITS}", None)
            return None
        stream = self.stream(obj.database, obj.split)
        if stream.complete:
            return None
        if stream.resume_left > 0:                  # already in a chunk the manifest lists
            stream.resume_left -= 1
            return None
        return obj, stream

    def handle(self, obj: Union[Item, Skip]) -> None:
        taken = self.accept(obj)
        if taken is None:
            return
        item, stream = taken
        try:
            example = process(item, self.align, self.quality)
            stream.write(example, item.tasks)
        except SkipError as err:
            self.on_skip(err.reason, where(item), err.detail, stream)
        else:
            if landmarks_missed(example, self.align):   # written, without landmarks: counted at build level
                self.on_skip("no_landmarks", where(item), "dlib found no face on the crop: landmarks mask 0", None)
        if stream.end_item():
            self.save()

    def flush(self) -> None:
        """Write what `handle` left pending: nothing here, each item is written as it comes."""

    def save(self) -> Manifest:
        """Merge the committed state of this build's databases into the manifest on disk."""
        databases = {}
        for name in self.entry["databases"]:
            entry = copy.deepcopy(self.previous.data["databases"].get(name, {"splits": {}}))
            for (db, split), s in self.streams.items():
                if db == name:
                    entry["splits"][split] = s.committed
            databases[name] = entry
        self.entry["databases"].sort()
        return merge(self.out, self.build, self.entry, databases)

    def summarise(self, manifest: Manifest) -> None:
        written = sum(s.written_now for s in self.streams.values())
        records = {t: 0 for t in FOLDERS}
        skips: dict[str, int] = dict(self.entry["skips"])
        for name in self.entry["databases"]:
            for split in manifest.splits(name).values():
                for t in FOLDERS:
                    records[t] += split["tasks"].get(t, 0)
                for reason, n in split["skips"].items():
                    skips[reason] = skips.get(reason, 0) + n
        log.info("%s → %s: %d records written now; per task %s; skipped %d %s",
                 self.build, self.out, written, records, sum(skips.values()), skips or "")


def where(item: Item) -> str:
    """`database/split/image_id`: how a skip names its item."""
    return f"{item.database}/{item.split}/{item.image_id}"


def build_records(manifest: Manifest, build: str) -> int:
    """Records held for one build's databases (every split): 0 means nothing could be written."""
    entry = manifest.data["builds"].get(build, {})
    return sum(split["records"] for name in entry.get("databases", [])
               for split in manifest.splits(name).values())


def build_skips(manifest: Manifest, build: str) -> dict[str, int]:
    """Skip counts by reason of one build: its databases' and those outside any split."""
    entry = manifest.data["builds"].get(build, {})
    total = dict(entry.get("skips", {}))
    for name in entry.get("databases", []):
        for reason, n in manifest.skips(name).items():
            total[reason] = total.get(reason, 0) + n
    return total
