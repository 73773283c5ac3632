"""The shard writer as an Apache Beam pipeline: the single-process writer's shards and manifest, laptop to cluster.

    parser items (driver) → items file → reshuffle → EncodeFn (load, detect, align, JPEG; one detector per worker)
        → Partition by (database, split, task) → WriteToTFRecord per shard set → manifest

The driver replays the parser (cheap: label files only) and cuts its stream
into *chunks* of `commit_every` items. Each chunk is one pipeline run: its
items are written (cloudpickled) to a staging file, the pipeline writes the
chunk's shards into `OUT/.beam-<build>/`, and only when the run has succeeded
are the files moved next to the single-process writer's chunks
(`OUT/<task>/<database>-<split>-chunkKKKKK-SSSSS-of-NNNNN.tfrecord`) and listed in
the manifest with the counts, which Beam metrics carry (a counter per
(database, split) and skip reason), checked against a skip side output and the
records on disk. When the stream ends every split's chunks
are renamed to `<database>-<split>-NNNNN-of-MMMMM.tfrecord`, exactly as the
single-process writer does (`fbn_keras/records/writer.py`, whose split
streams, resumption and manifest code this module reuses). A rerun after an
interruption replays the parser, skips the items of every committed chunk and
redoes at most the one chunk that was running.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import struct
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import apache_beam as beam
import tensorflow as tf
from apache_beam.coders import coders
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from fbn_keras.manifest import FOLDERS, Manifest
from fbn_keras.records.encode import ALIGN_MODES, IMAGE_SIZE, JPEG_QUALITY
from fbn_keras.records.items import Item, Skip, SkipError
from fbn_keras.records.writer import (DEFAULT_SHARD_SIZE, MAX_EXAMPLES, BuildRun, SplitStream, StrictSkipError,
                                      check_names, run_build, where)

log = logging.getLogger(__name__)

#: Items per pipeline run: the unit of resumption (a run is all-or-nothing) and of the driver's staging file.
DEFAULT_COMMIT_EVERY = 50_000
#: Namespace of the build's Beam counters: `written|db|split`, `task|db|split|task`, `skip|db|split|reason`.
METRICS_NAMESPACE = "fbn_build"
_ITEM_CODER = coders.CloudpickleCoder()
_STRICT = "fbn-strict-skip"
#: Consecutive frames of one video that go to one worker together, in order, so it decodes the video forward
#: (`tfrecords_tools/video.py`) instead of reopening and seeking it for every frame. Stills go one by one.
VIDEO_RUN = 64


_DIRECT = ("DirectRunner", "direct")


def pipeline_options(args: Sequence[str] = ()) -> PipelineOptions:
    """Beam options from `args` (what follows `--` on the command line); by default the DirectRunner in
    multi-process mode with one worker per local core. Anything given in `args` wins."""
    args = list(args)
    given = " ".join(args)
    options = PipelineOptions(args)
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = "DirectRunner"
    if _is_direct(options):
        direct = options.view_as(DirectOptions)
        if "direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if "direct_num_workers" not in given:
            direct.direct_num_workers = os.cpu_count() or 1
    return options


def _share_import_path() -> None:
    """Put this repository on PYTHONPATH, so that worker processes import `fbn_keras` and `tfrecords_tools`
    wherever the command was started from."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root] + paths)


def _is_direct(options: PipelineOptions) -> bool:
    return str(options.view_as(StandardOptions).runner) in _DIRECT


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on the chosen runner. For the DirectRunner this is its FnApiRunner, which honours
    `direct_running_mode` and `direct_num_workers` (the DirectRunner itself would first try to download and
    start the Prism runner, which ignores both)."""
    if _is_direct(options):
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        _share_import_path()
        return beam.Pipeline(runner=fn_runner.FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


class EncodeFn(beam.DoFn):
    """Item → serialized record per task folder, or a counted skip: `fbn_keras.records.encode.process` on a worker.

    Outputs `((database, split, task), record)` for each of the item's tasks, and
    on the "skip" output `((database, split, reason), "database/split/id: detail")`.
    The face detector is made once per worker in `setup`; its networks are built
    on the first image that needs detection (pre-aligned crops never pay for it).
    """

    def __init__(self, align: str = "auto", image_size: int = IMAGE_SIZE, jpeg_quality: int = JPEG_QUALITY,
                 strict: bool = False, one_core: bool = True):
        if align not in ALIGN_MODES:
            raise ValueError(f"align must be one of {ALIGN_MODES}. Received: align={align!r}")
        self.align_mode, self.image_size, self.jpeg_quality, self.strict = align, image_size, jpeg_quality, strict
        self.one_core = one_core
        self.aligner = None

    def setup(self):
        import cv2

        from fbn_keras.records.encode import make_aligner

        if self.one_core:     # one worker process per core: keep its OpenCV and TensorFlow (mtcnn) on one core
            cv2.setNumThreads(1)
            _single_threaded_tensorflow()
        detector = None
        if self.align_mode != "none":
            from fbn_keras.preprocess import FaceDetector
            detector = FaceDetector()
        self.aligner = make_aligner(self.align_mode, self.image_size, detector=detector)

    def process(self, payload: bytes):
        from fbn_keras.records.encode import process

        item: Item = _ITEM_CODER.decode(payload)
        try:
            example = process(item, self.aligner, self.jpeg_quality)
        except SkipError as err:
            Metrics.counter(METRICS_NAMESPACE, f"skip|{item.database}|{item.split}|{err.reason}").inc()
            message = f"{where(item)}: {err.detail}" if err.detail else where(item)
            if self.strict:
                raise StrictSkipError(f"{_STRICT}<<{err.reason}: {message}>>") from None
            yield beam.pvalue.TaggedOutput("skip", ((item.database, item.split, err.reason), message))
            return
        record = example.SerializeToString()
        Metrics.counter(METRICS_NAMESPACE, f"written|{item.database}|{item.split}").inc()
        for task in item.tasks:
            Metrics.counter(METRICS_NAMESPACE, f"task|{item.database}|{item.split}|{task}").inc()
            yield (item.database, item.split, task), record


def _single_threaded_tensorflow() -> None:
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:      # the runtime is already initialised in this process (in-memory runner): leave it
        pass


def build_chunk_pipeline(pipeline: beam.Pipeline, items_file: str,
                         destinations: dict[tuple[str, str, str], tuple[str, int]], summaries_prefix: str,
                         encode: EncodeFn) -> None:
    """One chunk's pipeline: `destinations` maps (database, split, task) → (file prefix, number of shards)."""
    keys = sorted(destinations)
    index = {k: i for i, k in enumerate(keys)}
    encoded = (pipeline
               | "Read items" >> beam.io.ReadFromTFRecord(items_file)
               | "Key" >> beam.Map(split_key)
               | "Reshuffle by video run" >> beam.GroupByKey()
               | "Frames in order" >> beam.FlatMap(lambda kv: [p for _, p in sorted(kv[1], key=lambda fp: fp[0])])
               | "Load, align, encode" >> beam.ParDo(encode).with_outputs("skip", main="records"))
    if keys:
        parts = encoded.records | "Route by task and split" >> beam.Partition(lambda kv, n: index[kv[0]], len(keys))
        for i, key in enumerate(keys):
            prefix, shards = destinations[key]
            (parts[i]
             | f"Records {'/'.join(key)}" >> beam.Values()
             | f"Write {'/'.join(key)}" >> beam.io.WriteToTFRecord(
                 prefix, file_name_suffix=".tfrecord", num_shards=shards, shard_name_template="-SSSSS-of-NNNNN"))
    (encoded.skip
     | "Skips by reason" >> beam.CombinePerKey(SkipSummary())
     | "As JSON" >> beam.MapTuple(lambda key, summary: json.dumps([list(key), summary[0], summary[1]]))
     | "Write skip summaries" >> beam.io.WriteToText(summaries_prefix, file_name_suffix=".jsonl"))


class SkipSummary(beam.CombineFn):
    """(count, the first MAX_EXAMPLES details in sorted order) of one (database, split, reason)'s skips."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, acc, detail):
        return acc[0] + 1, sorted(acc[1] + [detail])[:MAX_EXAMPLES]

    def merge_accumulators(self, accs):
        accs = list(accs)
        return sum(a[0] for a in accs), sorted(d for a in accs for d in a[1])[:MAX_EXAMPLES]

    def extract_output(self, acc):
        return acc


def shuffle_key(item: Item, index: int) -> bytes:
    """`video|group|run\\tframe` for a video frame (runs of VIDEO_RUN frames stay together), `still|index\\t0`
    for anything else: the key the items are regrouped by, and the frame they are sorted by within it."""
    if item.frame >= 0 and item.group:
        group = item.group.replace("\0", " ")
        return f"video|{group}|{item.frame // VIDEO_RUN}\t{item.frame}".encode()
    return f"still|{index}\t0".encode()


def split_key(record: bytes) -> tuple[bytes, tuple[int, bytes]]:
    """An items-file record → (shuffle key, (frame, cloudpickled item))."""
    header, payload = record.split(b"\0", 1)
    key, frame = header.rsplit(b"\t", 1)
    return key, (int(frame), payload)


def count_records(path: str | Path) -> int:
    """Records in a TFRecord file, from its length headers (no record is read)."""
    n = 0
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        pos = 0
        while pos < size:
            header = handle.read(12)
            if len(header) < 12:
                raise ValueError(f"{path} is truncated at byte {pos}")
            (length,) = struct.unpack("<Q", header[:8])
            pos += 12 + length + 4
            handle.seek(pos)
            n += 1
    if pos != size:
        raise ValueError(f"{path} is truncated")
    return n


class BeamRun(BuildRun):
    """A `BuildRun` whose items are gathered in chunks and written by one Beam pipeline run per chunk."""

    def __init__(self, out: Path, build: str, previous: Manifest, options: dict, strict: bool,
                 pipeline_args: Sequence[str], commit_every: int):
        super().__init__(out, build, previous, options, strict)
        self.pipeline_args = list(pipeline_args)
        self.commit_every = commit_every
        self.staging = out / f".beam-{build}"
        self.options = options
        self.pending: list[tuple[Item, SplitStream]] = []
        self.sent = 0                                       # items sent to pipelines so far (stills' keys)
        self.timings: list[tuple[int, float]] = []        # (items, seconds) of each pipeline run

    def handle(self, obj: Union[Item, Skip]) -> None:
        taken = self.accept(obj)
        if taken is not None:
            self.pending.append(taken)
            if len(self.pending) >= self.commit_every:
                self.flush()

    def flush(self) -> None:
        """Run the pipeline on the pending items and commit its shards; nothing is listed unless it all succeeded."""
        if not self.pending:
            return
        chunk, self.pending = self.pending, []
        if self.staging.exists():                    # an interrupted run's leftovers
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        items_file = self.staging / "items.tfrecord"
        streams: dict[tuple[str, str], SplitStream] = {}
        items_per_split: dict[tuple[str, str], int] = {}
        per_task: dict[tuple[str, str, str], int] = {}
        with tf.io.TFRecordWriter(str(items_file)) as writer:
            for item, stream in chunk:
                writer.write(shuffle_key(item, self.sent) + b"\0" + _ITEM_CODER.encode(item))
                self.sent += 1
                key = (item.database, item.split)
                streams[key] = stream
                items_per_split[key] = items_per_split.get(key, 0) + 1
                for task in _tasks(item):
                    per_task[key + (task,)] = per_task.get(key + (task,), 0) + 1
        destinations = {
            (db, split, task): (str(self.staging / task / streams[(db, split)].chunk_stem()),
                                max(1, math.ceil(n / self.shard_size)))
            for (db, split, task), n in per_task.items()}
        start = time.perf_counter()
        counters = self._run(str(items_file), destinations)
        self.timings.append((len(chunk), time.perf_counter() - start))
        summaries = self._read_skip_summaries()
        for key, stream in streams.items():
            self._commit(key, stream, items_per_split[key], counters, summaries)
        shutil.rmtree(self.staging)
        self.save()
        n, seconds = self.timings[-1]
        log.info("%s: %d items in %.1f s (%.1f items/s)", self.build, n, seconds, n / max(seconds, 1e-9))

    def _run(self, items_file: str, destinations) -> Optional[dict[str, int]]:
        options = pipeline_options(self.pipeline_args)
        in_process = _is_direct(options) and \
            options.view_as(DirectOptions).direct_running_mode in ("in_memory", "multi_threading")
        encode = EncodeFn(self.options["align"], self.options["image_size"], self.options["jpeg_quality"],
                          self.strict, one_core=not in_process)
        pipeline = make_pipeline(options)
        build_chunk_pipeline(pipeline, items_file, destinations, str(self.staging / "skip_summaries"), encode)
        try:
            result = pipeline.run()
            result.wait_until_finish()
        except Exception as err:        # a runner wraps a worker's error in its own; find a --strict skip in it
            found = re.search(re.escape(_STRICT) + r"<<(.*?)>>", str(err), re.S)
            if found:
                raise StrictSkipError(found.group(1)) from None
            raise
        return committed_counters(result)

    def _read_skip_summaries(self) -> dict[tuple[str, str, str], tuple[int, list[str]]]:
        """(database, split, reason) → (count, examples) from the pipeline's skip side output."""
        out: dict[tuple[str, str, str], tuple[int, list[str]]] = {}
        for path in sorted(self.staging.glob("skip_summaries*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    key, count, examples = json.loads(line)
                    out[tuple(key)] = (int(count), examples)
        return out

    def _commit(self, key: tuple[str, str], stream: SplitStream, n_items: int, counters: Optional[dict[str, int]],
                summaries: dict) -> None:
        """Move one split's files of this chunk into `out` (a shard with no record is dropped) and list them.

        The counts are Beam's committed metrics, checked against the records on disk and the skip side
        output; on a runner that reports no committed metrics, the disk and the side output alone."""
        db, split = key
        skips = {reason: n for (d, s, reason), (n, _) in summaries.items() if (d, s) == key}
        examples = {reason: ex for (d, s, reason), (_, ex) in summaries.items() if (d, s) == key}
        files: dict[str, list[tuple[str, int]]] = {}
        tasks = {t: 0 for t in FOLDERS}
        for task in FOLDERS:
            folder = self.staging / task
            for path in sorted(folder.glob(f"{stream.chunk_stem()}-*.tfrecord")) if folder.is_dir() else []:
                n = count_records(path)
                if n == 0:
                    continue
                (self.out / task).mkdir(parents=True, exist_ok=True)
                os.replace(path, self.out / task / path.name)
                files.setdefault(task, []).append((f"{task}/{path.name}", n))
                tasks[task] += n
        records = n_items - sum(skips.values())
        if counters is not None:
            prefix = f"skip|{db}|{split}|"
            counted = {name[len(prefix):]: n for name, n in counters.items() if name.startswith(prefix) and n}
            seen = {"skips": counted, "written": counters.get(f"written|{db}|{split}", 0),
                    "tasks": {t: counters.get(f"task|{db}|{split}|{t}", 0) for t in FOLDERS}}
            found = {"skips": skips, "written": records, "tasks": tasks}
            if seen != found:
                raise RuntimeError(f"{db}/{split}: Beam metrics {seen} disagree with the output {found}; "
                                   f"the runner lost or repeated work, rerun the build")
        if records < 0 or any(files.get(t) and n > records for t, n in tasks.items()):
            raise RuntimeError(f"{db}/{split}: {n_items} items sent, {sum(skips.values())} skipped, "
                               f"records per task {tasks}; rerun the build")
        for reason, n in skips.items():
            log.warning("skip %s ×%d in %s/%s, e.g. %s", reason, n, db, split, examples[reason][0])
        stream.commit_files(files, n_items, records, tasks, skips, examples)


def committed_counters(result) -> Optional[dict[str, int]]:
    """This build's Beam counters by name, summed over steps; None when the runner reports no committed values."""
    counters: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        if c.committed is None:
            return None
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed)
    return counters or None         # every item increments a counter: none at all means no metrics support


def _tasks(item: Item) -> tuple[str, ...]:
    try:
        return item.tasks
    except (TypeError, ValueError):       # malformed labels: the worker counts the skip
        return ()


def write_shards_beam(items: Iterable[Union[Item, Skip]], out: str | Path, database: str, *,
                      pipeline_args: Sequence[str] = (), commit_every: int = DEFAULT_COMMIT_EVERY,
                      shard_size: int = DEFAULT_SHARD_SIZE, strict: bool = False, aligner: str = "auto",
                      image_size: int = IMAGE_SIZE, jpeg_quality: int = JPEG_QUALITY) -> Manifest:
    """`fbn_keras.records.writer.write_shards` on Apache Beam: same arguments, same shards and manifest.

    Args:
        pipeline_args: Beam pipeline options (`--runner FlinkRunner ...`); by
            default the DirectRunner on every local core (`pipeline_options`).
        commit_every: items per pipeline run; a run that fails or is
            interrupted is redone whole by the next build, earlier runs are kept.
        aligner: an `--align` mode ("auto", "detect", "none"); a custom callable
            is not supported here (it would have to be shipped to the workers).
    """
    out = Path(out)
    check_names(database, shard_size)
    if commit_every < 1:
        raise ValueError(f"commit_every must be >= 1. Received: commit_every={commit_every}")
    if aligner not in ALIGN_MODES:
        raise ValueError(f"aligner must be one of {ALIGN_MODES} for the Beam build. Received: aligner={aligner!r}")
    options = {"shard_size": shard_size, "align": aligner, "image_size": image_size, "jpeg_quality": jpeg_quality}
    return run_build(out, database, lambda previous: BeamRun(out, database, previous, options, strict,
                                                             pipeline_args, commit_every).run(items))
