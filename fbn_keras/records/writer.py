"""The one shard writer: parser Items → aligned 96×96 JPEG records in per-task TFRecord shards, plus the manifest.

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

import cv2
import numpy as np
import tensorflow as tf

from fbn_keras import data
from fbn_keras.manifest import FOLDERS, Manifest, locked, merge
from tfrecords_tools.items import SPLITS, Item, Skip, SkipError

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1000
IMAGE_SIZE = 96
JPEG_QUALITY = 95
ALIGN_MODES = ("auto", "detect", "none")
MAX_EXAMPLES = 5                         # skip details kept per reason in the manifest
_NAME = re.compile(r"^[A-Za-z0-9_.+]+(-[A-Za-z0-9_.+]+)*$")

Aligner = Callable[[np.ndarray, Item], np.ndarray]


class StrictSkipError(RuntimeError):
    """A skip under `strict=True`: the message names the reason and the item."""


# === Images ===

def _as_rgb(image) -> np.ndarray:
    """uint8 (H, W, 3) from what a loader returned (grayscale and RGBA are converted), else SkipError."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or arr.size == 0:
        raise SkipError("corrupt_image", f"loader returned dtype={arr.dtype}, shape={arr.shape}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.shape[2] != 3:
        raise SkipError("corrupt_image", f"loader returned shape={arr.shape}")
    return np.ascontiguousarray(arr)


def resize(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Square uint8 crop of side `size`: centre-crop to a square, then area (down) or linear (up) resize."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """RGB uint8 → JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SkipError("encode_failed", f"shape={rgb.shape}")
    return buf.tobytes()


# === Alignment ===

def make_aligner(mode: str = "auto", size: int = IMAGE_SIZE, detector=None) -> Aligner:
    """The face-cropping policy of `--align` as a function `(rgb, item) -> (size, size, 3) uint8`.

    auto:   `item.aligned` → centre-crop + resize; `item.landmarks` → similarity
            alignment from them (5 or 68 points); else detect the face.
    detect: always detect (given landmarks and `aligned` are ignored).
    none:   centre-crop + resize every image, no detection (pre-cropped data).
    A face not found raises `SkipError("no_face")`; unusable landmarks
    `SkipError("bad_landmarks")`. `fbn_keras.preprocess` (and mtcnn) are
    imported only when a path needs them; the detector is built once.
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}. Received: align={mode!r}")
    state = {"detector": detector}

    def detect(rgb: np.ndarray, item: Item) -> np.ndarray:
        from fbn_keras import preprocess
        if state["detector"] is None:
            state["detector"] = preprocess.FaceDetector()
        faces = state["detector"].detect(rgb)
        if not faces:
            raise SkipError("no_face", item.image_id)
        return preprocess.align_face(rgb, faces[0].landmarks, size=size)   # faces come largest first

    def from_landmarks(rgb: np.ndarray, item: Item) -> np.ndarray:
        from fbn_keras import preprocess
        try:
            return preprocess.align_from_landmarks(rgb, item.landmarks, size=size)
        except ValueError as err:
            raise SkipError("bad_landmarks", f"{item.image_id}: {err}") from None

    def align(rgb: np.ndarray, item: Item) -> np.ndarray:
        if mode == "none" or (mode == "auto" and item.aligned):
            return resize(rgb, size)
        if mode == "auto" and item.landmarks is not None:
            return from_landmarks(rgb, item)
        return detect(rgb, item)

    return align


def process(item: Item, aligner: Aligner, quality: int = JPEG_QUALITY) -> tf.train.Example:
    """One item → its record, or `SkipError` with the reason (labels are checked before any file is read)."""
    reason = item.validate()
    if reason:
        raise SkipError(reason, _describe_labels(item))
    try:
        image = item.load()
    except SkipError:
        raise
    except FileNotFoundError as err:
        raise SkipError("missing_file", str(err)) from None
    except (OSError, ValueError, cv2.error) as err:
        raise SkipError("corrupt_image", str(err)) from None
    crop = aligner(_as_rgb(image), item)
    return data.make_example(
        encode_jpeg(crop, quality), item.database, item.image_id, group=item.group, frame=item.frame,
        va=item.va, expr=item.expr, au=item.au if item.au_mask is not None else None,
        au_mask=item.au_mask, compound=item.compound)


def _describe_labels(item: Item) -> str:
    return f"va={item.va} expr={item.expr} compound={item.compound} au={None if item.au is None else list(item.au)}"


# === One (database, split) stream ===

def _new_split() -> dict:
    return {"complete": False, "items": 0, "records": 0, "chunks_done": 0,
            "tasks": {t: 0 for t in FOLDERS}, "skips": {}, "skip_examples": {},
            "chunks": {t: [] for t in FOLDERS}, "shards": {}}


def _count_skip(entry: dict, reason: str, example: str) -> None:
    entry["skips"][reason] = entry["skips"].get(reason, 0) + 1
    examples = entry["skip_examples"].setdefault(reason, [])
    if len(examples) < MAX_EXAMPLES:
        examples.append(example)


class _SplitStream:
    """Chunks, counts and final shards of one (database, split); `committed` is what the manifest may say."""

    def __init__(self, out: Path, database: str, split: str, previous: Optional[dict], shard_size: int):
        self.out, self.database, self.split, self.shard_size = out, database, split, shard_size
        self.committed = copy.deepcopy(previous) if previous else _new_split()
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
        _count_skip(self.live, reason, example)

    def write(self, example: tf.train.Example, tasks: tuple[str, ...]) -> None:
        serialized = example.SerializeToString()
        for task in tasks:
            if task not in self.writers:
                path = self.out / task / f"{self._stem()}-chunk{self.live['chunks_done']:05d}.tfrecord.tmp"
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
                 jpeg_quality: int = JPEG_QUALITY) -> Manifest:
    """Write a parser's stream into `out` and return the merged manifest.

    Args:
        items: Items and Skips from a parser (`tfrecords_tools/items.py`).
        out: the shard folder; several builds may share it (the manifest merges).
        database: the build's name (e.g. "affectnet", "synthetic"); the records
            are filed under each item's own `item.database`.
        shard_size: items (written or skipped) per shard of a (database, split).
        strict: raise `StrictSkipError` on the first skip instead of counting it.
        aligner: an `--align` mode ("auto", "detect", "none") or a callable
            `(rgb, item) -> (image_size, image_size, 3) uint8`.
    """
    out = Path(out)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1. Received: shard_size={shard_size}")
    if not _NAME.match(database):
        raise ValueError(f"database must be a plain name (letters, digits, '-', '_'). Received: {database!r}")
    align = make_aligner(aligner, image_size) if isinstance(aligner, str) else aligner
    options = {"shard_size": shard_size, "align": aligner if isinstance(aligner, str) else "custom",
               "image_size": image_size, "jpeg_quality": jpeg_quality}
    try:
        with locked(out, f".build-{database}.lock", blocking=False):
            previous = Manifest.load(out)
            if previous.build_complete(database):
                log.info("%s: already complete in %s (nothing to do; remove its entries to rebuild)", database, out)
                return previous
            return _BuildRun(out, database, previous, options, strict, align).run(items)
    except BlockingIOError:
        raise RuntimeError(f"Another build of {database!r} is writing into {out}; wait for it to finish") from None


class _BuildRun:
    """The state of one `write_shards` call: its split streams and the skips that no split owns."""

    def __init__(self, out: Path, build: str, previous: Manifest, options: dict, strict: bool, align: Aligner):
        self.out, self.build, self.previous = out, build, previous
        self.shard_size, self.quality = options["shard_size"], options["jpeg_quality"]
        self.strict, self.align = strict, align
        self.streams: dict[tuple[str, str], _SplitStream] = {}
        old = previous.data["builds"].get(build, {})
        # Skips outside any split are recounted from zero: the parser is replayed from its start.
        self.entry = {"complete": False, "databases": list(old.get("databases", [])), "options": options,
                      "skips": {}, "skip_examples": {}}

    def stream(self, database: str, split: str) -> _SplitStream:
        key = (database, split)
        if key not in self.streams:
            if not _NAME.match(database):
                raise ValueError(f"item.database must be a plain name. Received: {database!r}")
            entry = self.previous.data["databases"].get(database, {}).get("splits", {}).get(split)
            self.streams[key] = _SplitStream(self.out, database, split, entry, self.shard_size)
            if database not in self.entry["databases"]:
                self.entry["databases"].append(database)
        return self.streams[key]

    def on_skip(self, reason: str, where: str, detail: str, stream: Optional[_SplitStream]) -> None:
        message = f"{where}: {detail}" if detail else where
        if self.strict:
            raise StrictSkipError(f"{reason}: {message}")
        log.warning("skip %s %s", reason, message)
        if stream is None:
            _count_skip(self.entry, reason, message)
        else:
            stream.skip(reason, message)

    def run(self, items: Iterable[Union[Item, Skip]]) -> Manifest:
        try:
            for obj in items:
                self.handle(obj)
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

    def handle(self, obj: Union[Item, Skip]) -> None:
        if isinstance(obj, Skip):
            self.on_skip(obj.reason, self.build, obj.detail, None)
            return
        if not isinstance(obj, Item):
            raise TypeError(f"A parser must yield Item or Skip objects. Received: {type(obj).__name__}")
        where = f"{obj.database}/{obj.split}/{obj.image_id}"
        if obj.split not in SPLITS:
            self.on_skip("bad_split", where, f"split must be one of {SPLITS}", None)
            return
        stream = self.stream(obj.database, obj.split)
        if stream.complete:
            return
        if stream.resume_left > 0:                  # already in a chunk the manifest lists
            stream.resume_left -= 1
            return
        try:
            stream.write(process(obj, self.align, self.quality), obj.tasks)
        except SkipError as err:
            self.on_skip(err.reason, where, err.detail, stream)
        if stream.end_item():
            self.save()

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
