"""TFRecord schema of every FaceBehaviorNet record, and the readers that feed training and evaluation.

Feature keys are written here once and imported by the writer
(`fbn_keras/records/encode.py`) and by every reader. Decoding (serialized →
raw tensors) and parsing (raw → model inputs and masks) are separate steps.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import tensorflow as tf

from fbn_keras import shard_check, taxonomy
from fbn_keras.manifest import FOLDERS, Manifest

log = logging.getLogger(__name__)

# === Schema ===

IMAGE = "image/encoded"        # JPEG of the aligned 96×96 RGB crop
SOURCE = "image/source"        # database name
ID = "image/id"                # relative path, or "video/frame"
GROUP = "image/group"          # subject or video id (sequences, per-clip metrics, subject splits)
FRAME = "image/frame"          # frame number within the group, -1 for stills
VA = "label/va"                # float ×2: valence, arousal
VA_MASK = "mask/va"            # int64: 1 when VA is labelled
EXPR = "label/expr"            # int64: index into EXPRESSIONS, -1 missing
AU = "label/au"                # float ×17 in AUS order
AU_MASK = "mask/au"            # float ×17: δ_i of eq. 1
COMPOUND = "label/compound"    # int64: index into COMPOUNDS, -1 missing
# Optional per-frame features of video records (read by fbn_keras/sequences.py; docs/VIDEO.md):
LANDMARKS = "feature/landmarks"        # float ×136: 68 iBUG points in the crop, x1, y1, … scaled to [-1, 1]
LANDMARKS_MASK = "mask/landmarks"      # int64: 1 when the landmarks are present
AUDIO = "feature/audio"                # PNG of the frame's 96×96 uint8 spectrogram window (fbn_keras/audio.py)
# Per-video labels written on each frame of the video (Hume-Reaction, FaceRNET; docs/LABELS.md):
INTENSITY = "label/intensity"          # float ×7: reaction intensities in [0, 1], taxonomy.REACTIONS order
INTENSITY_MASK = "mask/intensity"      # int64: 1 when the intensities are labelled

TASKS = ("va", "au", "expr")   # the three shard sets of the training input (paper Fig. 1)

FEATURES = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    SOURCE: tf.io.FixedLenFeature([], tf.string),
    ID: tf.io.FixedLenFeature([], tf.string),
    GROUP: tf.io.FixedLenFeature([], tf.string, default_value=""),
    FRAME: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    VA: tf.io.FixedLenFeature([2], tf.float32),
    VA_MASK: tf.io.FixedLenFeature([], tf.int64),
    EXPR: tf.io.FixedLenFeature([], tf.int64),
    AU: tf.io.FixedLenFeature([taxonomy.NUM_AUS], tf.float32),
    AU_MASK: tf.io.FixedLenFeature([taxonomy.NUM_AUS], tf.float32),
    COMPOUND: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}
#: The per-video intensities, parsed only by the readers that ask for them (`sequences`, intensity=True).
INTENSITY_FEATURES = {
    INTENSITY: tf.io.FixedLenFeature([taxonomy.NUM_REACTIONS], tf.float32,
                                     default_value=[0.0] * taxonomy.NUM_REACTIONS),
    INTENSITY_MASK: tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def _bytes(v: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _ints(v) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x) for x in np.atleast_1d(v)]))


def _floats(v) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(x) for x in np.atleast_1d(v)]))


def make_example(jpeg: bytes, source: str, image_id: str, *, group: str = "", frame: int = -1,
                 va=None, expr: int = -1, au=None, au_mask=None, compound: int = -1,
                 landmarks=None, audio: Optional[bytes] = None, intensity=None) -> tf.train.Example:
    """One record in the schema above; a missing label is written as its 'missing' value.

    `landmarks` ((68, 2) in [-1, 1] crop coordinates), `audio` (PNG bytes) and `intensity` ((7,) reaction
    intensities) are written only when given, so still-image records stay as they were.
    """
    va_arr = np.zeros(2, np.float32) if va is None else np.asarray(va, np.float32)
    au_arr = np.zeros(taxonomy.NUM_AUS, np.float32) if au is None else np.asarray(au, np.float32)
    mask_arr = np.zeros(taxonomy.NUM_AUS, np.float32) if au_mask is None else np.asarray(au_mask, np.float32)
    extra = {}
    if landmarks is not None:
        points = np.asarray(landmarks, np.float32).reshape(-1)
        if points.shape != (136,):
            raise ValueError(f"landmarks must be 68 (x, y) points. Received: shape={np.shape(landmarks)}")
        extra.update({LANDMARKS: _floats(points), LANDMARKS_MASK: _ints(1)})
    if audio is not None:
        extra[AUDIO] = _bytes(audio)
    if intensity is not None:
        values = np.asarray(intensity, np.float32).reshape(-1)
        if values.shape != (taxonomy.NUM_REACTIONS,):
            raise ValueError(f"intensity must be {taxonomy.NUM_REACTIONS} values. "
                             f"Received: shape={np.shape(intensity)}")
        extra.update({INTENSITY: _floats(values), INTENSITY_MASK: _ints(1)})
    return tf.train.Example(features=tf.train.Features(feature={
        **extra,
        IMAGE: _bytes(jpeg),
        SOURCE: _bytes(source.encode()),
        ID: _bytes(image_id.encode()),
        GROUP: _bytes(group.encode()),
        FRAME: _ints(frame),
        VA: _floats(va_arr),
        VA_MASK: _ints(0 if va is None else 1),
        EXPR: _ints(expr),
        AU: _floats(au_arr),
        AU_MASK: _floats(mask_arr),
        COMPOUND: _ints(compound),
    }))


def decode_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Serialized tf.train.Example → dict of raw tensors keyed by the schema's feature keys."""
    return tf.io.parse_single_example(serialized, FEATURES)


# === Parsing (raw tensors → model inputs and masks) ===

def parse_features(features: dict[str, tf.Tensor], image_size: int = 96) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Decoded features of one record, or of a batch (from `tf.io.parse_example`) → (images, labels).

    Images: float32 in [-1, 1], (size, size, 3) or (N, size, size, 3); other
    stored sizes are resized. Labels: va (2,) float32, va_mask () float32,
    expr () int32, au (17,) float32, au_mask (17,) float32, compound () int32
    (each with a leading N for a batch). See `sanitize_labels` for bad values.
    """
    encoded = features[IMAGE]
    if encoded.shape.rank == 0:
        images = _decode_jpeg(encoded, image_size)
    else:
        images = tf.map_fn(lambda e: _decode_jpeg(e, image_size), encoded,
                           fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8))
    return to_unit_range(images), sanitize_labels(features)


def _decode_jpeg(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One JPEG → uint8 (size, size, 3); resized only when stored at another size."""
    image = tf.io.decode_jpeg(encoded, channels=3)
    shape = tf.shape(image)
    image = tf.cond(tf.logical_and(shape[0] == image_size, shape[1] == image_size), lambda: image,
                    lambda: tf.cast(tf.round(tf.clip_by_value(
                        tf.image.resize(image, [image_size, image_size]), 0.0, 255.0)), tf.uint8))
    return tf.ensure_shape(image, [image_size, image_size, 3])


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels → float32 x/127.5 − 1 in [-1, 1] (main paper Section 5)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def sanitize_labels(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The label dict of one record or a batch, with no bad value left in it.

    A non-finite VA zeroes the pair and its mask; a non-finite AU (or mask)
    entry zeroes that AU and its δ; an expression or compound index out of
    range becomes -1. Each record with such a value is logged with its id on
    stderr (one line), so bad labels are never passed on silently nor reach a loss.
    """
    va = features[VA]
    va_ok = tf.reduce_all(tf.math.is_finite(va), axis=-1)
    va_mask = tf.where(va_ok, tf.cast(features[VA_MASK], tf.float32), 0.0)
    va = tf.where(va_ok[..., None], va, 0.0)
    au, au_mask = features[AU], features[AU_MASK]
    au_ok = tf.math.is_finite(au) & tf.math.is_finite(au_mask)
    au = tf.where(au_ok, au, 0.0)
    au_mask = tf.where(au_ok, au_mask, 0.0)
    expr = tf.cast(features[EXPR], tf.int32)
    expr_ok = (expr >= -1) & (expr < taxonomy.NUM_EXPRESSIONS)
    compound = tf.cast(features[COMPOUND], tf.int32)
    compound_ok = (compound >= -1) & (compound < taxonomy.NUM_COMPOUNDS)
    bad = (tf.cast(~va_ok, tf.int32) + tf.reduce_sum(tf.cast(~au_ok, tf.int32), axis=-1)
           + tf.cast(~expr_ok, tf.int32) + tf.cast(~compound_ok, tf.int32))
    extra = {}
    if INTENSITY in features:           # a non-finite intensity vector is dropped with its mask
        intensity = features[INTENSITY]
        intensity_ok = tf.reduce_all(tf.math.is_finite(intensity), axis=-1)
        extra = {"intensity": tf.where(intensity_ok[..., None], intensity, 0.0),
                 "intensity_mask": tf.where(intensity_ok, tf.cast(features[INTENSITY_MASK], tf.float32), 0.0)}
        bad = bad + tf.cast(~intensity_ok, tf.int32)
    with tf.control_dependencies([_warn_bad_labels(bad, features[ID])]):
        return {
            "va": tf.identity(va),
            "va_mask": va_mask,
            "expr": tf.where(expr_ok, expr, -1),
            "au": au,
            "au_mask": au_mask,
            "compound": tf.where(compound_ok, compound, -1),
            **extra,
        }


def _warn_bad_labels(bad: tf.Tensor, record_ids: tf.Tensor) -> tf.Tensor:
    def warn():
        rows = tf.reshape(tf.where(tf.reshape(bad, [-1]) > 0), [-1])
        ids, counts = tf.gather(tf.reshape(record_ids, [-1]), rows), tf.gather(tf.reshape(bad, [-1]), rows)
        tf.print("WARNING fbn_keras.data: records", ids, "had", counts,
                 "non-finite or out-of-range label value(s); replaced and masked", output_stream=sys.stderr)
        return tf.constant(True)
    return tf.cond(tf.reduce_any(bad > 0), warn, lambda: tf.constant(False))


def parse_record(raw: tf.Tensor, image_size: int = 96) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Serialized record → (image float32 in [-1, 1] (H, W, 3), labels); see `parse_features`."""
    return parse_features(decode_example(raw), image_size)


def parse_records(raws: tf.Tensor, image_size: int = 96) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """A vector of serialized records → batched (images, labels): one vectorised parse per batch (fast path)."""
    return parse_features(tf.io.parse_example(raws, FEATURES), image_size)


def record_folder(features: dict[str, tf.Tensor]) -> tf.Tensor:
    """Index into FOLDERS of a record's first task folder: its canonical copy (order of `Item.tasks`)."""
    cases = [
        (features[VA_MASK] > 0, lambda: tf.constant(0)),
        (tf.reduce_sum(features[AU_MASK]) > 0, lambda: tf.constant(1)),
        (features[EXPR] >= 0, lambda: tf.constant(2)),
        (features[COMPOUND] >= 0, lambda: tf.constant(3)),
    ]
    # A record with none of those labels is an intensity-only one (Hume-Reaction).
    return tf.case(cases, default=lambda: tf.constant(FOLDERS.index("intensity")), exclusive=False)


# === Manifest queries ===

def _manifest(data_dir) -> Manifest:
    manifest = Manifest.load(data_dir)
    if not manifest.databases():
        raise FileNotFoundError(f"{data_dir} holds no built database (no manifest.json, or an empty one); "
                                f"build one with `python -m tfrecords_tools.build`")
    return manifest


def list_databases(data_dir) -> dict[str, dict]:
    """{database: {"tasks": task folders holding records, "splits": {split: {"records": n, <folder>: n}}}}."""
    manifest = _manifest(data_dir)
    out = {}
    for name in manifest.databases():
        splits = {split: {"records": e["records"], **{t: e["tasks"].get(t, 0) for t in FOLDERS}}
                  for split, e in manifest.splits(name).items() if e.get("complete")}
        tasks = [t for t in FOLDERS if any(s[t] for s in splits.values())]
        out[name] = {"tasks": tasks, "splits": splits}
    return out


def train_sizes(data_dir, databases: Optional[Iterable[str]] = None) -> dict[str, int]:
    """Training records per task set (VA, AU, EXPR), e.g. to turn epochs into steps."""
    manifest = _manifest(data_dir)
    return {t: sum(s["records"] for s in manifest.shards(t, "train", databases)) for t in TASKS}


def au_label_counts(data_dir, split: str = "train", databases: Optional[Iterable[str]] = None,
                    skip_corrupt: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(positives, annotated): per AU, how many records of the AU set's `split` shards carry label 1
    and how many carry a label at all (δ = 1). Reads only the label features, not the images.

    Non-finite labels count as not annotated, as `sanitize_labels` treats them in training.
    """
    files = listed_files(data_dir, _manifest(data_dir).shards("au", split, databases))
    positives = np.zeros(taxonomy.NUM_AUS, np.int64)
    annotated = np.zeros(taxonomy.NUM_AUS, np.int64)
    if not files:
        return positives, annotated
    spec = {AU: FEATURES[AU], AU_MASK: FEATURES[AU_MASK]}
    ds = read_records(files, skip_corrupt, parallel=True).batch(4096)
    with naming_corrupt_shards(files, data_dir, f"counting the AU labels of the {split} split"):
        for raws in ds.map(lambda r: tf.io.parse_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE):
            au, mask = raws[AU].numpy(), raws[AU_MASK].numpy()
            labelled = np.isfinite(au) & np.isfinite(mask) & (mask > 0)
            annotated += labelled.sum(axis=0)
            positives += (labelled & (np.nan_to_num(au) >= 0.5)).sum(axis=0)
    return positives, annotated


# === Reading shards (a corrupt record: stop naming the shard, or skip and count) ===

def listed_files(data_dir, shards: Iterable[dict]) -> list[str]:
    """Paths of manifest shard entries; each one's record count is noted for counting skipped records."""
    files = []
    for entry in shards:
        path = str(Path(data_dir) / entry["file"])
        shard_check.SKIPPED.expect(path, entry["records"])
        files.append(path)
    return files


def shard_files(data_dir, split: str, tasks: Iterable[str] = FOLDERS,
                databases: Optional[Iterable[str]] = None) -> list[str]:
    """Every listed shard of `split` in the task folders `tasks`: what a failed read is searched in."""
    manifest = _manifest(data_dir)
    names = None if databases is None else list(databases)
    return [f for task in tasks for f in listed_files(data_dir, manifest.shards(task, split, names))]


def _report_pass(path: tf.Tensor, read: tf.Tensor) -> tf.Tensor:
    shard_check.SKIPPED.report(path.numpy().decode(), int(read.numpy()))
    return tf.constant(False)


def read_shard(path: tf.Tensor, skip_corrupt: bool = False) -> tf.data.Dataset:
    """The serialized records of one shard. With `skip_corrupt`, a corrupt record ends the shard's pass
    instead of the run (TFRecord framing has nothing to resync on after it), and each pass reports the
    records it read to `shard_check.SKIPPED`, which counts those short of the manifest's."""
    records = tf.data.TFRecordDataset(path)
    if not skip_corrupt:
        return records
    marked = records.ignore_errors().map(lambda r: (r, False)).concatenate(
        tf.data.Dataset.from_tensors((tf.constant(b""), True)))            # an end-of-pass marker
    counted = marked.scan(tf.constant(0, tf.int64), lambda n, x: (n + tf.cast(~x[1], tf.int64), (*x, n)))

    def keep(record, end, n):   # every record; at the marker, report the pass (the marker is dropped)
        return tf.cond(end, lambda: tf.reshape(tf.py_function(_report_pass, [path, n], tf.bool), []),
                       lambda: tf.constant(True))
    return counted.filter(keep).map(lambda record, end, n: record)


def read_records(files: list[str], skip_corrupt: bool = False, parallel: bool = False) -> tf.data.Dataset:
    """The records of `files` in file order (`parallel`: files read concurrently, order not kept)."""
    if not skip_corrupt:
        return tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE if parallel else None)
    paths = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))
    if not parallel:
        return paths.flat_map(lambda f: read_shard(f, True))
    return paths.interleave(lambda f: read_shard(f, True), cycle_length=min(len(files), 8),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)


@contextlib.contextmanager
def naming_corrupt_shards(files: Iterable[str], data_dir, what: str) -> Iterator[None]:
    """Inside, TensorFlow's DataLossError (which names an offset, not a file) becomes a one-line
    `shard_check.CorruptShardError` naming the shard of `files` it came from; `what` says what was reading."""
    try:
        yield
    except tf.errors.DataLossError as error:
        raise shard_check.corrupt_shard_error(error, files, data_dir, what) from None


# === Training input (paper Fig. 1: one batch of each task set per step) ===

def replica_batch_sizes(global_batch: int, num_replicas: int) -> list[int]:
    """Per-replica sizes summing to `global_batch`: the first `global_batch % n` replicas take one more.

    401/247/103 do not split evenly; dropping the remainder would lose images
    each step, so the replicas get unequal batches and the losses divide by
    all-reduced label counts (never by a fixed size).
    """
    if global_batch < num_replicas:
        raise ValueError(f"A global batch of {global_batch} cannot give every one of {num_replicas} replicas "
                         f"an image; raise the batch size. Received: batch={global_batch}")
    base, extra = divmod(global_batch, num_replicas)
    return [base + (1 if r < extra else 0) for r in range(num_replicas)]


def _mask_to_task(task: str):
    """Keep only `task`'s labels: the other losses see nothing from this batch (main paper Section 6)."""
    def mask(image, labels):
        labels = dict(labels)
        if task != "va":
            labels["va_mask"] = tf.zeros_like(labels["va_mask"])
        if task != "au":
            labels["au_mask"] = tf.zeros_like(labels["au_mask"])
        if task != "expr":
            labels["expr"] = tf.fill(tf.shape(labels["expr"]), -1)
        return image, labels
    return mask


def _split_batch(sizes: list[int]):
    """One batch of sum(sizes) → len(sizes) consecutive batches, one per local replica in order."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    starts_t, sizes_t = tf.constant(starts), tf.constant(np.asarray(sizes, np.int64))

    def split(images, labels):
        def piece(i):
            begin, size = starts_t[i], sizes_t[i]
            return tf.nest.map_structure(lambda t: t[begin:begin + size], (images, labels))
        return tf.data.Dataset.range(len(sizes)).map(piece)
    return split


def _task_dataset(files: list[str], task: str, sizes: list[int], config, seed: int,
                  pipeline: int, pipelines: int) -> tf.data.Dataset:
    """files → shard → shuffle → repeat → batch → parse+mask (→ split per replica), forever."""
    deterministic = bool(config.deterministic)
    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_files = pipelines > 1 and len(files) >= pipelines
    if shard_files:
        ds = ds.shard(pipelines, pipeline)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    skip = bool(config.skip_corrupt_records)
    ds = ds.interleave(lambda path: read_shard(path, skip), cycle_length=min(len(files), 8),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if pipelines > 1 and not shard_files:
        # Fewer files than workers: every worker reads every file and keeps its share of records.
        ds = ds.shard(pipelines, pipeline)
    ds = ds.shuffle(config.shuffle_buffer, seed=seed + 7919 * pipeline, reshuffle_each_iteration=True).repeat()
    # Batch the serialized records, then parse each batch at once: far fewer per-element ops.
    ds = ds.batch(sum(sizes), drop_remainder=True)
    mask = None if config.use_all_labels else _mask_to_task(task)

    def parse(raws):
        images, labels = parse_records(raws, config.image_size)
        return (images, labels) if mask is None else mask(images, labels)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if len(sizes) > 1:
        ds = ds.flat_map(_split_batch(sizes))
    return ds


def is_compound_database(name: str) -> bool:
    """True for a database whose `taxonomy.DATABASES` entry carries compound labels (RAF-DB compound,
    EmotioNet's emotion list, their synthetic copies); False for any other or unknown name."""
    try:
        return "compound" in taxonomy.database(name).tasks
    except ValueError:
        return False


def training_databases(available: Iterable[str], config) -> list[str]:
    """The databases multi-task training reads by default: all of `available` but the compound ones.

    Main paper Section 4 builds the EXPR-Set from AFEW, RAF-DB, Aff-Wild2 and
    AffectNet only; the compound sets (whose EmotioNet list also carries six
    basic classes in `expr/`) are kept for Table 7's zero- and few-shot
    experiments, so that zero-shot stays zero-shot. `config.train_compound_databases`
    lets them in.
    """
    names = sorted(available)
    if config.train_compound_databases:
        return names
    left_out = [n for n in names if is_compound_database(n)]
    if left_out:
        log.info("compound databases %s left out of multi-task training (--train-compound-databases "
                 "lets them in)", left_out)
    return [n for n in names if n not in left_out]


def make_train_dataset(data_dir, config, input_context: Optional[tf.distribute.InputContext] = None,
                       databases: Optional[Iterable[str]] = None) -> tf.data.Dataset:
    """The paper's training input: elements `{task: (images, labels)}` for the tasks in `config.task_set`.

    Each task set (the `train` shards of its folder, over `databases`, or by
    default `training_databases`: every database but the compound ones)
    is repeated and shuffled (seeded by `config.seed`) and batched at
    `config.batch_<task>`. Under `distribute_datasets_from_function` pass the
    `input_context`: files are sharded by input pipeline (records, when there
    are fewer files than pipelines), and this pipeline yields one batch per
    local replica in turn, sized by `replica_batch_sizes` so that the replica
    batches sum to the global batch. Unless `config.use_all_labels`, each batch
    carries only its own task's labels (the others masked).
    """
    manifest = _manifest(data_dir)
    names = training_databases(manifest.databases(), config) if databases is None else list(databases)
    unknown = sorted(set(names) - set(manifest.databases()))
    if unknown:
        raise ValueError(f"Databases {unknown} are not in {data_dir}; it holds {manifest.databases()}")
    pipeline, pipelines, replicas = 0, 1, 1
    if input_context is not None:
        pipeline, pipelines = input_context.input_pipeline_id, input_context.num_input_pipelines
        replicas = input_context.num_replicas_in_sync
    local = replicas // pipelines
    streams = {}
    for offset, task in enumerate(TASKS):
        if task not in config.task_set:
            continue
        files = listed_files(data_dir, [s for s in manifest.shards(task, "train", names) if s["records"] > 0])
        if not files:
            raise ValueError(f"No {task!r} training shards in {data_dir} (databases: {names}); "
                             f"build a database with {task} labels or drop {task!r} from config.tasks")
        global_batch = getattr(config, f"batch_{task}")
        sizes = replica_batch_sizes(global_batch, replicas)[pipeline * local:(pipeline + 1) * local]
        streams[task] = _task_dataset(files, task, sizes, config, config.seed + 1000 * offset, pipeline, pipelines)
    ds = tf.data.Dataset.zip(streams).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(config.deterministic)
    return ds.with_options(options)


# === Evaluation input ===

def make_eval_dataset(data_dir, database: str, split: str = "test", batch_size: int = 128,
                      image_size: int = 96, skip_corrupt: bool = False) -> tf.data.Dataset:
    """Batches `(images, labels)` over every record of one database and split, each read once, in file order.

    A record written to two task folders is kept only from its first one
    (`record_folder`). The labels add "id", "group", "source" (strings) and
    "frame" (int64, -1 for stills) for per-clip metrics. `skip_corrupt`: see `read_shard`.
    """
    manifest = _manifest(data_dir)
    splits = manifest.splits(database)
    if split not in splits or not splits[split].get("complete"):
        done = [s for s, e in splits.items() if e.get("complete")]
        raise ValueError(f"{database} has no complete {split!r} split in {data_dir}; it has {done}")
    parts = []
    for index, folder in enumerate(FOLDERS):
        files = listed_files(data_dir, manifest.shards(folder, split, [database]))
        if files:
            ds = read_records(files, skip_corrupt).map(decode_example)
            parts.append(ds.filter(lambda f, i=index: tf.equal(record_folder(f), i)))
    if not parts:       # a finished split in which every item was skipped: an empty dataset, not an error
        parts = [tf.data.TFRecordDataset(tf.constant([], tf.string)).map(decode_example)]
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)

    def parse(features):
        image, labels = parse_features(features, image_size)
        labels.update(id=features[ID], group=features[GROUP], source=features[SOURCE], frame=features[FRAME])
        return image, labels

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
