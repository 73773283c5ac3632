"""Video sequences for the journal's CNN-RNN networks: per-video SequenceExample shards, windows, tiling, stitching.

The builders write one record per frame (`image/group` = video, `image/frame`
= its number) into the task folders. `write_sequence_shards` regroups them once
into one `tf.train.SequenceExample` per video (or per `max_frames` chunk of a
long video) under `OUT/seq/`, indexed by `OUT/sequences.json`; docs/VIDEO.md
gives the measurement that chose this over assembling windows from the
per-frame shards at read time. `make_sequence_dataset` then yields

    inputs = {"frames": (B, T, H, W, 3) float32 in [-1, 1],
              "landmarks": (B, T, 136) [optional], "audio": (B, T, 96, 96, 1) [optional]}
    labels = {"va": (B, T, 2), "va_mask": (B, T), "expr": (B, T), "au": (B, T, 17), "au_mask": (B, T, 17),
              "compound": (B, T), "frame_mask": (B, T), "landmarks_mask": (B, T),
              "group": (B,), "frame": (B, T)}

with the frame path's label conventions (`data.sanitize_labels`). `frame_mask`
is 0 on padding and on a frame without a crop (kept in place only with
`fill_gaps`); every label mask is 0 wherever `frame_mask` is.

Windows (docs/FAITHFULNESS.md, "Video"). Training: non-overlapping windows of T
consecutive frames of one video, the cut points moved by a random offset each
epoch, shuffled, the short ones padded. Test: each video tiled from its first
frame with stride T (or `stride` < T: overlapping, averaged by `stitch`), so
every frame gets a prediction. Frames without a crop are dropped, their
neighbours becoming consecutive (`split_at_gap` N starts a new window
sequence where N or more frames are missing).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import tensorflow as tf

from fbn_keras import data, taxonomy
from fbn_keras.manifest import FOLDERS, SPLITS, Manifest, locked

log = logging.getLogger(__name__)

INDEX = "sequences.json"
FOLDER = "seq"
FORMAT = 1
DEFAULT_MAX_FRAMES = 2048          # frames per SequenceExample: longer videos are cut into chunks
DEFAULT_SHARD_FRAMES = 4096        # frames per sequence shard (a shard holds whole sequences)
FRAME_MASK = "mask/frame"          # per-frame int64: 1 a frame with a crop, 0 a placeholder (`fill_gaps`)
LENGTH = "seq/length"              # context int64: frames in the sequence
CHUNK = "seq/chunk"                # context int64: which chunk of its video (0, 1, …)
AUDIO_SIZE = 96
_PARALLEL_DECODES = 32             # frames of a window decoded at once (3.4× the map_fn default, measured)

#: Per-frame feature lists of a sequence: (kind, width, default) of every per-frame record key.
_PER_FRAME: dict[str, tuple[str, int, object]] = {
    data.IMAGE: ("bytes", 1, b""),
    data.ID: ("bytes", 1, b""),
    data.FRAME: ("int", 1, -1),
    data.VA: ("float", 2, 0.0),
    data.VA_MASK: ("int", 1, 0),
    data.EXPR: ("int", 1, -1),
    data.AU: ("float", taxonomy.NUM_AUS, 0.0),
    data.AU_MASK: ("float", taxonomy.NUM_AUS, 0.0),
    data.COMPOUND: ("int", 1, -1),
    data.LANDMARKS: ("float", 136, 0.0),
    data.LANDMARKS_MASK: ("int", 1, 0),
    data.AUDIO: ("bytes", 1, b""),
    data.INTENSITY: ("float", taxonomy.NUM_REACTIONS, 0.0),
    data.INTENSITY_MASK: ("int", 1, 0),
    FRAME_MASK: ("int", 1, 1),
}
#: Per-frame keys parsed only when a reader asks for them (sequence shards written before they existed lack them).
_ON_REQUEST = {data.LANDMARKS: "landmarks", data.AUDIO: "audio", data.INTENSITY: "intensity",
               data.INTENSITY_MASK: "intensity"}
_DTYPES = {"bytes": tf.string, "int": tf.int64, "float": tf.float32}
CONTEXT_FEATURES = {
    data.GROUP: tf.io.FixedLenFeature([], tf.string),
    data.SOURCE: tf.io.FixedLenFeature([], tf.string),
    LENGTH: tf.io.FixedLenFeature([], tf.int64),
    CHUNK: tf.io.FixedLenFeature([], tf.int64),
}
SEQUENCE_FEATURES = {key: tf.io.FixedLenSequenceFeature([width] if width > 1 else [], _DTYPES[kind])
                     for key, (kind, width, _) in _PER_FRAME.items()}


# === Writing: per-frame shards → one SequenceExample per video (chunk) ===

def _values(example: tf.train.Example, key: str) -> list:
    """The values of one feature of a per-frame record, or its default when the record lacks it."""
    kind, width, default = _PER_FRAME[key]
    feature = example.features.feature
    if key not in feature:
        return [default] * width
    f = feature[key]
    values = list(f.bytes_list.value if kind == "bytes" else f.int64_list.value if kind == "int"
                  else f.float_list.value)
    if len(values) != width:
        raise ValueError(f"record {feature[data.ID].bytes_list.value}: {key} has {len(values)} values, "
                         f"expected {width}")
    return values


def _placeholder(frame: int) -> dict[str, list]:
    """A frame with no record (no crop) kept in place by `fill_gaps`: no image, no label, frame mask 0."""
    out = {key: [default] * width for key, (_, width, default) in _PER_FRAME.items()}
    out[data.FRAME], out[FRAME_MASK] = [frame], [0]
    return out


def sequence_example(group: str, source: str, chunk: int, frames: list[dict[str, list]]) -> tf.train.SequenceExample:
    """One sequence from its frames (each a dict key → values, sorted by frame number)."""
    def feature(kind: str, values: list) -> tf.train.Feature:
        if kind == "bytes":
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        if kind == "int":
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    lists = {key: tf.train.FeatureList(feature=[feature(kind, f[key]) for f in frames])
             for key, (kind, _, _) in _PER_FRAME.items()}
    context = tf.train.Features(feature={
        data.GROUP: feature("bytes", [group.encode()]), data.SOURCE: feature("bytes", [source.encode()]),
        LENGTH: feature("int", [len(frames)]), CHUNK: feature("int", [chunk])})
    return tf.train.SequenceExample(context=context, feature_lists=tf.train.FeatureLists(feature_list=lists))


def assemble(records: Iterable[bytes], fill_gaps: int = 0) -> tuple[list[dict[str, list]], int]:
    """Serialized per-frame records of one video → (its frames sorted by frame number, duplicates dropped).

    A run of up to `fill_gaps` missing frame numbers is filled with placeholders
    (frame mask 0); longer runs are left out, so their neighbours become consecutive (docs/FAITHFULNESS.md, "Video").
    """
    by_frame: dict[int, dict[str, list]] = {}
    duplicates = 0
    for raw in records:
        example = tf.train.Example.FromString(raw)
        frame = {key: _values(example, key) for key in _PER_FRAME}
        number = int(frame[data.FRAME][0])
        if number in by_frame:
            duplicates += 1
            continue
        by_frame[number] = frame
    out: list[dict[str, list]] = []
    for number in sorted(by_frame):
        if out and fill_gaps > 0:
            previous = int(out[-1][data.FRAME][0])
            if 1 < number - previous <= fill_gaps + 1:
                out.extend(_placeholder(f) for f in range(previous + 1, number))
        out.append(by_frame[number])
    return out, duplicates


class _ShardWriter:
    """Sequence shards `seq/<db>-<split>-chunkKKKKK.tfrecord`, cut every `shard_frames` frames, renamed at the end."""

    def __init__(self, out: Path, stem: str, shard_frames: int):
        self.out, self.stem, self.shard_frames = out, stem, shard_frames
        self.done: list[list] = []          # [path, sequences, frames]
        self.writer, self.path, self.sequences, self.frames = None, None, 0, 0

    def write(self, example: tf.train.SequenceExample, frames: int) -> None:
        if self.writer is None:
            self.path = self.out / FOLDER / f"{self.stem}-chunk{len(self.done):05d}.tfrecord"
            self.writer, self.sequences, self.frames = tf.io.TFRecordWriter(str(self.path)), 0, 0
        self.writer.write(example.SerializeToString())
        self.sequences += 1
        self.frames += frames
        if self.frames >= self.shard_frames:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.done.append([self.path, self.sequences, self.frames])
            self.writer = None

    def finish(self) -> list[dict]:
        self.close()
        shards = []
        for i, (path, sequences, frames) in enumerate(self.done):
            final = f"{FOLDER}/{self.stem}-{i:05d}-of-{len(self.done):05d}.tfrecord"
            os.replace(path, self.out / final)
            shards.append({"file": final, "sequences": sequences, "frames": frames})
        return shards


def _source_shards(manifest: Manifest, database: str, split: str) -> list[tuple[int, str, int]]:
    """(folder index, file, records) of every per-frame shard of one database split."""
    return [(i, s["file"], s["records"]) for i, folder in enumerate(FOLDERS)
            for s in manifest.shards(folder, split, [database]) if s["records"] > 0]


def _spill(out: Path, sources: list[tuple[int, str, int]], tmp: Path) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Pass 1: every canonical per-frame record (its first task folder's copy) into a temporary file per run
    of consecutive records of one video. Returns {group: [files]} in first-seen order and {group: source}."""
    files: dict[str, list[Path]] = {}
    sources_of: dict[str, str] = {}
    ids: dict[str, int] = {}
    spec = {k: data.FEATURES[k] for k in (data.GROUP, data.SOURCE, data.VA_MASK, data.AU_MASK, data.EXPR,
                                          data.COMPOUND)}

    def parse(raws):
        feats = tf.io.parse_example(raws, spec)
        folders = tf.map_fn(data.record_folder, feats, fn_output_signature=tf.int32)
        return raws, feats[data.GROUP], feats[data.SOURCE], folders

    for index, file, _ in sources:
        ds = tf.data.TFRecordDataset(str(out / file)).batch(512).map(parse)
        writer, current = None, None
        for raws, groups, sources_, folders in ds.as_numpy_iterator():
            for raw, group, source, f in zip(raws, groups, sources_, folders):
                if f != index:          # another task folder holds this record's canonical copy
                    continue
                group = group.decode()
                if group != current:
                    if writer is not None:
                        writer.close()
                    path = tmp / f"{ids.setdefault(group, len(ids))}-{len(files.get(group, []))}.tfrecord"
                    files.setdefault(group, []).append(path)
                    sources_of.setdefault(group, source.decode())
                    writer, current = tf.io.TFRecordWriter(str(path)), group
                writer.write(raw)
        if writer is not None:
            writer.close()
    return files, sources_of


def _convert_split(out: Path, database: str, split: str, sources: list, max_frames: int, fill_gaps: int,
                   shard_frames: int) -> dict:
    """Both passes for one database split; returns its index entry."""
    tmp = out / FOLDER / f".tmp-{database}-{split}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stem = f"{database}-{split}"
    for stale in (out / FOLDER).glob(f"{stem}-*.tfrecord"):
        stale.unlink()
    try:
        files, sources_of = _spill(out, sources, tmp)
        writer = _ShardWriter(out, stem, shard_frames)
        counts = {"groups": 0, "sequences": 0, "frames": 0, "placeholders": 0, "duplicates": 0,
                  "landmarks": 0, "audio": 0}
        for group, paths in files.items():
            raws = (r.numpy() for r in tf.data.TFRecordDataset([str(p) for p in paths]))
            frames, duplicates = assemble(raws, fill_gaps)
            counts["groups"] += 1
            counts["duplicates"] += duplicates
            for chunk, start in enumerate(range(0, len(frames), max_frames)):
                piece = frames[start:start + max_frames]
                writer.write(sequence_example(group, sources_of[group], chunk, piece), len(piece))
                counts["sequences"] += 1
            counts["frames"] += len(frames)
            counts["placeholders"] += sum(1 for f in frames if f[FRAME_MASK][0] == 0)
            counts["landmarks"] += sum(1 for f in frames if f[data.LANDMARKS_MASK][0] > 0)
            counts["audio"] += sum(1 for f in frames if f[data.AUDIO][0])
        shards = writer.finish()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if counts["duplicates"]:
        log.warning("%s/%s: %d records repeat a frame number of their video; kept the first of each",
                    database, split, counts["duplicates"])
    return {"complete": True, "source": [[f, n] for _, f, n in sources],
            "options": {"max_frames": max_frames, "fill_gaps": fill_gaps}, "shards": shards, **counts}


def load_index(data_dir) -> dict:
    """`OUT/sequences.json`, or an empty index."""
    path = Path(data_dir) / INDEX
    if not path.exists():
        return {"format": FORMAT, "databases": {}}
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported format {index.get('format')!r}; this code reads {FORMAT}")
    return index


def write_sequence_shards(data_dir, databases: Optional[Iterable[str]] = None, splits: Iterable[str] = SPLITS,
                          max_frames: int = DEFAULT_MAX_FRAMES, fill_gaps: int = 0,
                          shard_frames: int = DEFAULT_SHARD_FRAMES) -> dict:
    """Build (or bring up to date) the sequence shards of `databases` (default: every video database in the
    manifest, i.e. one whose records carry frame numbers) and return the index.

    A split is redone when its per-frame shards or the options changed since it was converted;
    otherwise it is left as it is. Several processes may call this at once (a lock serialises them).
    """
    out = Path(data_dir)
    if max_frames < 1 or fill_gaps < 0 or shard_frames < 1:
        raise ValueError(f"max_frames and shard_frames must be >= 1, fill_gaps >= 0. Received: "
                         f"max_frames={max_frames}, fill_gaps={fill_gaps}, shard_frames={shard_frames}")
    manifest = Manifest.load(out)
    names = manifest.databases() if databases is None else list(databases)
    unknown = sorted(set(names) - set(manifest.databases()))
    if unknown:
        raise ValueError(f"Databases {unknown} are not in {out}; it holds {manifest.databases()}")
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    if databases is not None:
        for name in names:
            firsts = [_source_shards(manifest, name, s)[:1] for s in splits if manifest.splits(name).get(s)]
            if any(f and not _is_video(out, f) for f in firsts):
                raise ValueError(f"{name} holds stills (no frame numbers); only video databases make sequences")
    with locked(out, ".sequences.lock"):
        index = load_index(out)
        for name in names:
            for split in splits:
                entry = manifest.splits(name).get(split)
                if not entry or not entry.get("complete"):
                    continue
                sources = _source_shards(manifest, name, split)
                if databases is None and not _is_video(out, sources):
                    continue
                old = index["databases"].get(name, {}).get(split)
                wanted = {"max_frames": max_frames, "fill_gaps": fill_gaps}
                if old and old.get("complete") and old["source"] == [[f, n] for _, f, n in sources] \
                        and old.get("options") == wanted:
                    continue
                log.info("sequence shards of %s/%s (%d per-frame records)", name, split,
                         sum(n for _, _, n in sources))
                index["databases"].setdefault(name, {})[split] = {"complete": False}   # readers stay away meanwhile
                _save_index(out, index)
                index["databases"].setdefault(name, {})[split] = _convert_split(
                    out, name, split, sources, max_frames, fill_gaps, shard_frames)
                _save_index(out, index)
    return index


def _is_video(out: Path, sources: list) -> bool:
    """True when the first record of a split has a frame number (stills carry -1)."""
    for _, file, _ in sources:
        for raw in tf.data.TFRecordDataset(str(out / file)).take(1):
            return int(tf.io.parse_single_example(raw, {data.FRAME: data.FEATURES[data.FRAME]})[data.FRAME]) >= 0
    return False


def _save_index(out: Path, index: dict) -> None:
    tmp = out / f".{INDEX}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out / INDEX)


# === Windows ===

def segment_bounds(frames: np.ndarray, split_at_gap: Optional[int] = None) -> list[tuple[int, int]]:
    """[(start, stop)) index ranges of the runs of a sequence between gaps of `split_at_gap` or more
    missing frame numbers (one run when None)."""
    frames = np.asarray(frames)
    n = len(frames)
    if n == 0:
        return []
    if split_at_gap is None:
        return [(0, n)]
    cuts = np.flatnonzero(np.diff(frames) > int(split_at_gap)) + 1
    edges = np.concatenate([[0], cuts, [n]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def train_windows(n_or_frames, length: int, offset: int, split_at_gap: Optional[int] = None) -> np.ndarray:
    """(W, 2) [start, stop) of the training windows of a sequence: in each run, cuts at
    offset, offset + T, offset + 2T, … (plus the run's start), so no two windows overlap and every
    frame is in one window; a window is at most T frames (docs/FAITHFULNESS.md, "Video")."""
    frames = np.arange(n_or_frames) if np.ndim(n_or_frames) == 0 else np.asarray(n_or_frames)
    offset = int(offset) % length
    out = []
    for start, stop in segment_bounds(frames, split_at_gap):
        cuts = list(range(start + offset, stop, length)) if offset else list(range(start, stop, length))
        if not cuts or cuts[0] != start:
            cuts.insert(0, start)
        cuts.append(stop)
        out.extend(zip(cuts[:-1], cuts[1:]))
    return np.asarray(out, np.int64).reshape(-1, 2)


def test_windows(n_or_frames, length: int, stride: Optional[int] = None,
                 split_at_gap: Optional[int] = None) -> np.ndarray:
    """(W, 2) [start, stop) of the test tiles of a sequence: from each run's first frame every `stride`
    (default T) frames, T long or to the run's end, so every frame is in at least one tile."""
    frames = np.arange(n_or_frames) if np.ndim(n_or_frames) == 0 else np.asarray(n_or_frames)
    stride = length if stride is None else int(stride)
    if not 1 <= stride <= length:
        raise ValueError(f"stride must be in [1, T={length}]. Received: stride={stride}")
    out = []
    for start, stop in segment_bounds(frames, split_at_gap):
        for s in range(start, stop, stride):
            out.append((s, min(s + length, stop)))
            if s + length >= stop:
                break
    return np.asarray(out, np.int64).reshape(-1, 2)


# === Reading ===

def sequence_files(data_dir, databases: Optional[Iterable[str]] = None, split: str = "train") -> list[str]:
    """The sequence shards of `split` over `databases` (default: all converted ones)."""
    index = load_index(data_dir)["databases"]
    names = sorted(index) if databases is None else list(databases)
    missing = [n for n in names if not index.get(n, {}).get(split, {}).get("complete")]
    if missing:
        raise ValueError(f"No sequence shards of {missing} ({split}) in {data_dir}; build them with "
                         f"fbn_keras.sequences.write_sequence_shards (the per-frame shards must exist)")
    return [str(Path(data_dir) / s["file"]) for n in names for s in index[n][split]["shards"]]


def require_feature(data_dir, databases: Iterable[str], split: str, feature: str) -> None:
    """Raise (one line) when a database split carries no `feature` ("landmarks" or "audio") at all.

    A database that has the feature may still lack it on some frames (a face dlib could not fit,
    a blank frame): those frames get zeros, and for landmarks `labels["landmarks_mask"]` 0.
    """
    index = load_index(data_dir)["databases"]
    for name in databases:
        entry = index.get(name, {}).get(split, {})
        if entry.get(feature, 0) == 0:
            real = entry.get("frames", 0) - entry.get("placeholders", 0)
            raise ValueError(f"{name}/{split}: none of its {real} frames carry {feature}; this input needs "
                             f"a database built with {feature} (or turn the input off)")


def parse_sequence(serialized: tf.Tensor, keys: Optional[Iterable[str]] = None) -> dict[str, tf.Tensor]:
    """Serialized SequenceExample → {context keys: scalars, per-frame keys (default all): (n, …) tensors}."""
    wanted = SEQUENCE_FEATURES if keys is None else {k: SEQUENCE_FEATURES[k] for k in keys}
    context, lists = tf.io.parse_single_sequence_example(serialized, CONTEXT_FEATURES, wanted)
    return {**context, **lists}


def _keys(landmarks: bool, audio: bool, intensity: bool = False) -> tuple[str, ...]:
    """The per-frame keys a reader parses: the optional ones only when asked for."""
    asked = {"landmarks": landmarks, "audio": audio, "intensity": intensity}
    return tuple(k for k in _PER_FRAME if k not in _ON_REQUEST or asked[_ON_REQUEST[k]])


def _bounds(windows_fn):
    def bounds(frames, offset):
        return tf.numpy_function(lambda f, o: windows_fn(f, o), [frames, offset], tf.int64, stateful=False)
    return bounds


def _cut(seq: dict[str, tf.Tensor], bounds: tf.Tensor, length: int) -> tf.data.Dataset:
    """Windows [start, stop) of one sequence, each padded to `length`: per-frame keys (T, …), plus 'pad' (T,)."""
    bounds = tf.reshape(bounds, [-1, 2])
    idx = bounds[:, :1] + tf.range(length, dtype=tf.int64)[None, :]          # (W, T)
    real = idx < bounds[:, 1:]
    safe = tf.where(real, idx, 0)
    out = {}
    for key, (kind, width, default) in _PER_FRAME.items():
        if key not in seq:
            continue
        values = tf.gather(seq[key], safe)
        fill = tf.constant(default, _DTYPES[kind])
        mask = real if width == 1 else real[..., None]
        out[key] = tf.where(mask, values, fill)
    out["real"] = real
    out[data.GROUP] = tf.fill(tf.shape(bounds)[:1], seq[data.GROUP])
    out[data.SOURCE] = tf.fill(tf.shape(bounds)[:1], seq[data.SOURCE])
    return tf.data.Dataset.from_tensor_slices(out)


def _decode_images(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """(T,) JPEG strings ("" for padding) → (T, size, size, 3) uint8, zeros where empty."""
    def one(e):
        return tf.cond(tf.strings.length(e) > 0, lambda: data._decode_jpeg(e, image_size),
                       lambda: tf.zeros([image_size, image_size, 3], tf.uint8))
    return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
                     parallel_iterations=_PARALLEL_DECODES)


def _decode_audio(encoded: tf.Tensor) -> tf.Tensor:
    """(T,) PNG strings ("" where absent) → (T, 96, 96, 1) float32 in [-1, 1] (absent: -1, silence)."""
    def one(e):
        return tf.cond(tf.strings.length(e) > 0,
                       lambda: tf.ensure_shape(tf.io.decode_png(e, channels=1), [AUDIO_SIZE, AUDIO_SIZE, 1]),
                       lambda: tf.zeros([AUDIO_SIZE, AUDIO_SIZE, 1], tf.uint8))
    png = tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([AUDIO_SIZE, AUDIO_SIZE, 1], tf.uint8),
                    parallel_iterations=_PARALLEL_DECODES)
    present = tf.cast(tf.strings.length(encoded) > 0, tf.float32)[:, None, None, None]
    return (data.to_unit_range(png) + 1.0) * present - 1.0


def window_to_model(window: dict[str, tf.Tensor], image_size: int = 96, landmarks: bool = False,
                    audio: bool = False) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """One padded window (or a batch of them) → (inputs, labels) as the module docstring lists."""
    frame_mask = tf.cast(window["real"], tf.float32) * tf.cast(window[FRAME_MASK] > 0, tf.float32)
    labels = data.sanitize_labels(window)
    keep = frame_mask > 0
    labels["va_mask"] = labels["va_mask"] * frame_mask
    labels["au_mask"] = labels["au_mask"] * frame_mask[..., None]
    labels["expr"] = tf.where(keep, labels["expr"], -1)
    labels["compound"] = tf.where(keep, labels["compound"], -1)
    labels["frame_mask"] = frame_mask
    labels["landmarks_mask"] = tf.cast(window[data.LANDMARKS_MASK] > 0, tf.float32) * frame_mask
    labels["group"] = window[data.GROUP]
    labels["frame"] = tf.where(window["real"], window[data.FRAME], -1)
    if "intensity" in labels:            # the video's reaction intensities on each of its frames
        labels["intensity_mask"] = labels["intensity_mask"] * frame_mask
    encoded = window[data.IMAGE]
    flat = tf.reshape(encoded, [-1])
    images = tf.reshape(_decode_images(flat, image_size),
                        tf.concat([tf.shape(encoded), [image_size, image_size, 3]], 0))
    inputs = {"frames": data.to_unit_range(images)}
    if landmarks:
        inputs["landmarks"] = window[data.LANDMARKS] * labels["landmarks_mask"][..., None]
    if audio:
        spec = _decode_audio(tf.reshape(window[data.AUDIO], [-1]))
        inputs["audio"] = tf.reshape(spec, tf.concat([tf.shape(encoded), [AUDIO_SIZE, AUDIO_SIZE, 1]], 0))
    return inputs, labels


def make_sequence_dataset(data_dir, databases: Optional[Iterable[str]] = None, split: str = "train", *,
                          length: int = 80, batch_size: int = 4, training: Optional[bool] = None,
                          stride: Optional[int] = None, split_at_gap: Optional[int] = None,
                          image_size: int = 96, landmarks: bool = False, audio: bool = False,
                          intensity: bool = False, seed: int = 0,
                          shuffle_windows: int = 256, deterministic: bool = False,
                          input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """Batches (inputs, labels) of (B, T) windows from the sequence shards (module docstring).

    training (default: split == "train"): endless, windows cut at a random offset per video and epoch
    (`train_windows`), shuffled, `drop_remainder` batches. Otherwise one pass in file order, tiles from
    `test_windows` (stride T, or `stride`), the last batch smaller; `stitch` maps predictions back to frames.
    `landmarks` / `audio` add those inputs and refuse a database split that has none; `intensity` adds the
    labels "intensity" (B, T, 7) and "intensity_mask" (B, T) (Hume-Reaction's per-video reaction intensities).
    Under `distribute_datasets_from_function` pass the `input_context`: each input pipeline trains on
    its share of the shards (of the windows, when there are fewer shards than pipelines), and
    `batch_size` is what this pipeline yields per step.
    """
    if length < 1 or batch_size < 1:
        raise ValueError(f"length and batch_size must be >= 1. Received: length={length}, batch_size={batch_size}")
    names = sorted(load_index(data_dir)["databases"]) if databases is None else list(databases)
    files = sequence_files(data_dir, names, split)
    for wanted, feature in ((landmarks, "landmarks"), (audio, "audio")):
        if wanted:
            require_feature(data_dir, names, split, feature)
    training = split == "train" if training is None else bool(training)
    keys = _keys(landmarks, audio, intensity)
    pipeline, pipelines = (0, 1) if input_context is None else (input_context.input_pipeline_id,
                                                                 input_context.num_input_pipelines)
    if training:
        ds = tf.data.Dataset.from_tensor_slices(files)
        if pipelines > 1 and len(files) >= pipelines:
            ds = ds.shard(pipelines, pipeline)
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 4),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        ds = ds.shuffle(16, seed=seed + 1, reshuffle_each_iteration=True).repeat()
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed + 2)))
        bounds = _bounds(lambda f, o: train_windows(f, length, int(o) % length, split_at_gap))
        ds = ds.map(lambda raw, r: (parse_sequence(raw, keys), r), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=deterministic)
        ds = ds.flat_map(lambda seq, r: _cut(seq, bounds(seq[data.FRAME], r), length))
        if pipelines > 1 and len(files) < pipelines:
            ds = ds.shard(pipelines, pipeline)
        ds = ds.shuffle(shuffle_windows, seed=seed + 3, reshuffle_each_iteration=True)
    else:
        ds = tf.data.TFRecordDataset(files).map(lambda raw: parse_sequence(raw, keys))
        bounds = _bounds(lambda f, o: test_windows(f, length, stride, split_at_gap))
        ds = ds.flat_map(lambda seq: _cut(seq, bounds(seq[data.FRAME], tf.constant(0, tf.int64)), length))
    ds = ds.map(lambda w: window_to_model(w, image_size, landmarks, audio), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic or not training)
    ds = ds.batch(batch_size, drop_remainder=training)
    return ds.prefetch(tf.data.AUTOTUNE)


# === Stitching test tiles back to frames ===

def stitch(predictions, groups, frames) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tiled window predictions → per-frame predictions: {group: (frame numbers (n,), predictions (n, …))}.

    `predictions` (N, T, …) for N windows, `groups` (N,) their videos, `frames` (N, T) their frame
    numbers with -1 on padding (the reader's `labels["frame"]`). A frame in several overlapping
    tiles gets the mean of its predictions.
    """
    preds = np.asarray(predictions)
    frames = np.asarray(frames)
    groups = [g.decode() if isinstance(g, bytes) else str(g) for g in np.asarray(groups).reshape(-1)]
    if preds.shape[:2] != frames.shape or len(groups) != frames.shape[0]:
        raise ValueError(f"predictions (N, T, …), groups (N,) and frames (N, T) must agree. Received: "
                         f"{preds.shape}, {len(groups)}, {frames.shape}")
    sums: dict[str, dict[int, list]] = {}
    for w, group in enumerate(groups):
        per = sums.setdefault(group, {})
        for t in np.flatnonzero(frames[w] >= 0):
            entry = per.setdefault(int(frames[w, t]), [0.0, 0])
            entry[0] = entry[0] + preds[w, t]
            entry[1] += 1
    out = {}
    for group, per in sums.items():
        numbers = np.array(sorted(per), np.int64)
        out[group] = (numbers, np.stack([np.asarray(per[f][0], np.float64) / per[f][1] for f in numbers]))
    return out
