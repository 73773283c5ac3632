"""Run a trained FaceBehaviorNet on images, folders and videos: one CSV row per face per frame.

    python -m fbn_keras.predict runs/latest/model.keras photos/ clip.mp4 --out results.csv \
        [--every N] [--detect-every N] [--aligned] [--plots DIR] [--batch-size N] [--min-confidence C]

Faces are detected and aligned by `fbn_keras.preprocess` (`--aligned` skips
detection for inputs that are already face crops). In a video the detector runs
every `--detect-every` frames and the five keypoints are tracked in between
(`fbn_keras.tracking`; `--detect-every 1` detects every frame); frames are
decoded, detected and aligned in a reader thread, and the CSV written in a
writer thread, while the network runs. Each row gives the box,
the detector's confidence, valence and arousal, the 7 expression
probabilities and their argmax, the 17 AU probabilities (`AU01 … AU26`) and
their presence (`AU01_c … AU26_c`, OpenFace/py-feat style), and for video
the frame's time in seconds. A frame without a face gets one row with only
its file, frame and time filled in. An unreadable file is reported on one line,
counted and skipped; the exit status is non-zero only when nothing could be read.

A run of one of the journal's video networks (its config.json names a `model`
other than facebehaviornet) reads each video's largest face per frame, feeds
windows of T consecutive crops to the network (plus dlib's 68 landmarks per crop
when it takes them) and writes one row per frame: file, frame, time, valence,
arousal, and the expression and AU probabilities of the heads it has.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import csv
import dataclasses
import logging
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np

from fbn_keras import cli
from fbn_keras import preprocess, taxonomy, tracking

log = logging.getLogger("fbn_keras.predict")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})

ID_COLUMNS = ("file", "frame", "face", "x", "y", "w", "h", "confidence")


def csv_columns() -> list[str]:
    """The CSV header: ids and box, VA, expression probabilities by name, argmax, AU probabilities, presence, time."""
    return [*ID_COLUMNS, *taxonomy.VA_NAMES, *taxonomy.EXPRESSIONS, "expression",
            *taxonomy.au_names(), *(f"{n}_c" for n in taxonomy.au_names()), "timestamp"]


# === Inputs ===

class UnreadableInput(ValueError):
    """A file that cannot be read as an image or a video; the run reports it and goes on."""


def find_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read: files as given, folders searched recursively for image and video files (sorted).

    A path that does not exist is kept, so that it is reported and counted as unreadable.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*")
                                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES))
        else:
            found.append(p)
    return found


def is_video(path: Path) -> bool:
    """Video by suffix; a file with an unknown suffix is a video when OpenCV has no image reader for it."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES:
        return False
    return path.is_file() and not cv2.haveImageReader(str(path))


def iter_frames(path: Path, every: int = 1) -> Iterator[tuple[int, Optional[float], np.ndarray]]:
    """(frame index, time in seconds or None for a still, RGB uint8) for an image or every `every`-th video frame.

    Raises UnreadableInput before yielding anything when the file cannot be read.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1. Received: every={every}")
    if not path.is_file():
        raise UnreadableInput(f"{path}: no such file")
    if not is_video(path):
        try:
            yield 0, None, preprocess.read_image(path)
        except ValueError as err:
            raise UnreadableInput(str(err)) from None
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise UnreadableInput(f"{path}: OpenCV cannot open it as a video")
        fps = cap.get(cv2.CAP_PROP_FPS)
        index = 0
        while cap.grab():                      # grab every frame, decode only the kept ones
            if index % every == 0:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    if index == 0:
                        raise UnreadableInput(f"{path}: cannot decode its first frame")
                    log.warning("%s: frame %d cannot be decoded; the video stops here", path, index)
                    return
                # Times from the frame index and the stream's rate; the decoder's clock where there is no rate.
                t = index / fps if fps and np.isfinite(fps) and fps > 0 else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                yield index, float(t), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise UnreadableInput(f"{path}: no video frame could be read")
    finally:
        cap.release()


# === Faces ===

@dataclasses.dataclass
class FaceCrop:
    """One face ready for the network, with where it came from; `crop` None marks a frame without a face."""

    file: str
    frame: int
    face: Optional[int]                        # None for a frame without a face
    box: Optional[tuple[float, float, float, float]]
    confidence: Optional[float]                # None for --aligned inputs (no detector ran)
    timestamp: Optional[float]                 # None for stills
    crop: Optional[np.ndarray]                 # (size, size, 3) uint8; None for a frame without a face


def faces_in(frames: Sequence[np.ndarray], detector: Optional[preprocess.FaceDetector], size: int) -> list[list]:
    """For each frame, (box, confidence, crop) per face, largest first; without a detector the image's centre
    square is the face.

    Frames go to the detector together: mtcnn runs a batch of same-size video frames in one pass.
    """
    images = [preprocess.ensure_rgb(f) for f in frames]
    if detector is None:
        out = []
        for image in images:
            # The shard writer's crop (centre square, then resize), so train and serve see the same face;
            # the box is that square.
            top, left, side = preprocess.centre_square(*image.shape[:2])
            crop = preprocess.square_resize(image, size)
            out.append([((float(left), float(top), float(side), float(side)), None, crop)])
        return out
    return [[(face.box, face.confidence, preprocess.align_face(image, face.landmarks, size=size)) for face in faces]
            for image, faces in zip(images, detector.detect_batch(images))]


def frame_faces(path: Path, every: int = 1, detector: Optional[preprocess.FaceDetector] = None,
                size: int = preprocess.DEFAULT_SIZE, detect_every: int = 1, detect_batch: int = 8,
                counts: Optional[collections.Counter] = None) -> Iterator[tuple[int, Optional[float], list]]:
    """(frame index, time, [(box, confidence, crop), ...]) for each kept frame of an image or a video.

    A video with a detector and `detect_every` > 1 goes through `tracking.FaceTracker` (detector runs
    added to `counts`); otherwise every frame is detected, `detect_batch` frames per detector call.
    Raises UnreadableInput before yielding anything when the file cannot be read.
    """
    frames = iter_frames(path, every)
    if detector is not None and detect_every > 1 and is_video(path):
        tracker = tracking.FaceTracker(detector, detect_every=detect_every)
        try:
            for frame, t, rgb in frames:
                faces = tracker.update(rgb)
                yield frame, t, [(f.box, f.confidence, preprocess.align_face(rgb, f.landmarks, size=size))
                                 for f in faces]
        finally:
            if counts is not None:
                counts.update(tracker.counts)
        return
    for chunk in _chunks(frames, detect_batch):
        for (frame, t, _), faces in zip(chunk, faces_in([rgb for _, _, rgb in chunk], detector, size)):
            yield frame, t, faces


def _read_inputs(files: Sequence[Path], **options) -> Iterator[tuple]:
    """Each file's frames as ("frame", path, index, time, faces) events, then ("end", path, UnreadableInput or None)."""
    for path in files:
        try:
            for frame, t, faces in frame_faces(path, **options):
                yield "frame", path, frame, t, faces
        except UnreadableInput as err:
            yield "end", path, err
        else:
            yield "end", path, None


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Yield `items` as a background thread produces them into a queue of at most `depth`.

    The producer (decoding, detection, alignment: OpenCV and TensorFlow release
    the GIL) runs ahead while the caller runs the network; an exception in the
    producer is raised here, and stopping early stops the producer.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1. Received: depth={depth}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((None, x)):
                    return
            put((end, None))
        except BaseException as err:  # noqa: BLE001  handed to the consumer, which raises it
            put((end, err))
        finally:
            getattr(items, "close", lambda: None)()

    thread = threading.Thread(target=produce, name="fbn-predict-reader", daemon=True)
    thread.start()
    try:
        while True:
            tag, x = q.get()
            if tag is end:
                if x is not None:
                    raise x
                return
            yield x
    finally:
        stop.set()
        thread.join()


def _chunks(iterable: Iterable, n: int) -> Iterator[list]:
    chunk: list = []
    for x in iterable:
        chunk.append(x)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# === The network ===

class Predictor:
    """A loaded FaceBehaviorNet: uint8 crops in, numpy VA, expression and AU probabilities out."""

    def __init__(self, model):
        from fbn_keras import runs

        shape = tuple(model.inputs[0].shape)
        if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(f"Expected a model on square RGB images (N, S, S, 3). Received: input shape {shape}")
        self.model = model
        self.size = int(shape[1])
        self._forward = runs.make_forward(model)

    @classmethod
    def load(cls, path: str | Path) -> "Predictor":
        """`fbn_keras.runs.load_run`'s model of a run folder or a `.keras` file (Keras safe mode)."""
        from fbn_keras import runs

        return cls(runs.load_run(path)[0])

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """(N, S, S, 3) uint8 → {"va": (N, 2), "expr": (N, 7) probabilities, "au": (N, 17) probabilities}."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"Expected crops of shape (N, {self.size}, {self.size}, 3). Received: {crops.shape}")
        out = self._forward(preprocess.to_model_input(crops))
        return {k: np.asarray(out[k], np.float32) for k in ("va", "expr", "au")}


def result_rows(items: Sequence[FaceCrop], preds: dict[str, np.ndarray], au_threshold: float = 0.5) -> list[dict]:
    """One CSV row (column → value) per item, in `csv_columns()` order; `preds` holds the faces' predictions in order.

    An item without a crop (a frame without a face) gets a row with only its file, frame and time.
    """
    rows = []
    au_names = taxonomy.au_names()
    i = -1
    for item in items:
        if item.crop is None:
            rows.append(dict(file=item.file, frame=item.frame, timestamp=item.timestamp))
            continue
        i += 1
        expr, au, va = preds["expr"][i], preds["au"][i], preds["va"][i]
        row: dict[str, Any] = dict(file=item.file, frame=item.frame, face=item.face,
                                   x=item.box[0], y=item.box[1], w=item.box[2], h=item.box[3],
                                   confidence=item.confidence, valence=float(va[0]), arousal=float(va[1]))
        row.update({name: float(p) for name, p in zip(taxonomy.EXPRESSIONS, expr)})
        row["expression"] = taxonomy.EXPRESSIONS[int(np.argmax(expr))]
        row.update({name: float(p) for name, p in zip(au_names, au)})
        row.update({f"{name}_c": int(p >= au_threshold) for name, p in zip(au_names, au)})
        row["timestamp"] = item.timestamp
        rows.append(row)
    return rows


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


# === The run ===

@dataclasses.dataclass
class Summary:
    """What a run read, found and skipped."""

    files_read: int = 0
    images: int = 0
    videos: int = 0
    frames: int = 0
    frames_without_face: int = 0
    faces: int = 0
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)   # file → reason
    # Video frames tracked, and detected by reason (fbn_keras.tracking.FaceTracker.counts).
    tracking: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    plots: list[str] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        return (f"read {self.files_read} file(s) ({self.images} image(s), {self.videos} video(s)), "
                f"{self.frames} frame(s), {self.faces} face(s); {self.frames_without_face} frame(s) without a face; "
                f"skipped {len(self.skipped)} unreadable file(s)"
                + (f"; video frames tracked {self.tracking['tracked']}, detected "
                   f"{sum(self.tracking.values()) - self.tracking['tracked']}" if self.tracking else ""))


def _plot_name(file: str, used: dict[str, int]) -> str:
    """A file-name stem for a source's plots, unique within the run (same names in two folders get -2, -3)."""
    stem = Path(file).stem or "input"
    used[stem] += 1
    return stem if used[stem] == 1 else f"{stem}-{used[stem]}"


class _Run:
    """The state of one run: batching, CSV writing, plots; kept small so `run` reads top to bottom.

    A batch's rows are formatted and written by a writer thread while the network runs the next batch.
    """

    def __init__(self, predictor: Predictor, csv_file, batch_size: int, au_threshold: float,
                 plots: Optional[Path], summary: Summary):
        self.writer = csv.DictWriter(csv_file, fieldnames=csv_columns())
        self.writer.writeheader()
        self.predictor, self.batch_size = predictor, batch_size
        self.au_threshold, self.plots, self.summary = au_threshold, plots, summary
        self.pending: list[FaceCrop] = []
        self.video_rows: dict[str, list[dict]] = collections.defaultdict(list)
        self.plot_names: dict[str, str] = {}
        self._used: collections.Counter = collections.Counter()
        self._writer_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fbn-csv")
        self._writing: Optional[tuple[list[FaceCrop], concurrent.futures.Future]] = None

    def __enter__(self) -> "_Run":
        return self

    def __exit__(self, *exc) -> None:
        self._writer_thread.shutdown(wait=True)       # the last rows reach the file before it closes

    def add(self, item: FaceCrop) -> None:
        self.pending.append(item)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        crops = [it.crop for it in items if it.crop is not None]
        preds = self.predictor(np.stack(crops)) if crops else {}
        self.collect()
        self._writing = items, self._writer_thread.submit(self._write, items, preds)

    def _write(self, items: list[FaceCrop], preds: dict[str, np.ndarray]) -> list[dict]:
        rows = result_rows(items, preds, self.au_threshold)
        self.writer.writerows({k: _format(v) for k, v in row.items()} for row in rows)
        return rows

    def collect(self) -> None:
        """Wait for the batch being written; keep its rows for the video figures and draw its face figures."""
        if self._writing is None:
            return
        (items, future), self._writing = self._writing, None
        for item, row in zip(items, future.result()):
            if item.crop is None:
                continue
            if item.timestamp is not None:
                self.video_rows[item.file].append(row)
            elif self.plots is not None:
                self._plot_face(item, row)

    def _name(self, file: str) -> str:
        if file not in self.plot_names:
            self.plot_names[file] = _plot_name(file, self._used)
        return self.plot_names[file]

    def _plot_face(self, item: FaceCrop, row: dict) -> None:
        from fbn_keras import plots

        path = self.plots / f"{self._name(item.file)}_face{item.face}.png"
        plots.plot_face(item.crop, [row["valence"], row["arousal"]], [row[e] for e in taxonomy.EXPRESSIONS],
                        [row[a] for a in taxonomy.au_names()], title=f"{Path(item.file).name} face {item.face}",
                        path=path, au_threshold=self.au_threshold)
        self.summary.plots.append(str(path))

    def plot_videos(self) -> None:
        """One time-series figure per video and face index (face k = the k-th largest face of each frame)."""
        from fbn_keras import plots

        if self.plots is None:
            return
        for file, rows in self.video_rows.items():
            for k in sorted({r["face"] for r in rows}):
                track = [r for r in rows if r["face"] == k]
                path = self.plots / f"{self._name(file)}_face{k}_series.png"
                plots.plot_video([r["timestamp"] for r in track], [[r["valence"], r["arousal"]] for r in track],
                                 [[r[e] for e in taxonomy.EXPRESSIONS] for r in track],
                                 [[r[a] for a in taxonomy.au_names()] for r in track],
                                 title=f"{Path(file).name} face {k}", path=path)
                self.summary.plots.append(str(path))


def run(predictor: Predictor, inputs: Sequence[str | Path], out: str | Path, *, every: int = 1,
        aligned: bool = False, plots: Optional[str | Path] = None, batch_size: int = 32,
        min_confidence: float = 0.9, au_threshold: float = 0.5,
        detector: Optional[preprocess.FaceDetector] = None, detect_batch: int = 8,
        detect_every: int = tracking.DETECT_EVERY, progress: bool = True) -> Summary:
    """Predict every face in `inputs` and write the CSV to `out`; returns what was read and skipped.

    In a video the detector runs every `detect_every` kept frames and faces are tracked in between
    (1: every frame is detected, `detect_batch` frames per detector call). Reading, detection and
    alignment run in a background thread, a few batches ahead of the network.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if every < 1 or detect_batch < 1 or detect_every < 1:
        raise ValueError(f"every, detect_batch and detect_every must be >= 1. Received: every={every}, "
                         f"detect_batch={detect_batch}, detect_every={detect_every}")
    if not aligned and detector is None:
        detector = preprocess.FaceDetector(min_confidence=min_confidence)
    files = find_inputs(inputs)
    summary = Summary()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots_dir = Path(plots) if plots is not None else None

    with open(out, "w", newline="") as fh, logging_redirect_tqdm(), \
            tqdm(total=len(files), unit="file", disable=not progress) as bar, \
            _Run(predictor, fh, batch_size, au_threshold, plots_dir, summary) as state:
        events = _read_inputs(files, every=every, detector=None if aligned else detector, size=predictor.size,
                              detect_every=detect_every, detect_batch=detect_batch, counts=summary.tracking)
        for event in prefetch(events, depth=2 * batch_size):
            if event[0] == "frame":
                _, path, frame, t, faces = event
                summary.frames += 1
                summary.frames_without_face += not faces
                summary.faces += len(faces)
                for k, (box, conf, crop) in enumerate(faces):
                    state.add(FaceCrop(str(path), frame, k, box, conf, t, crop))
                if not faces:
                    state.add(FaceCrop(str(path), frame, None, None, None, t, None))
                if t is not None:
                    bar.set_postfix_str(f"{path.name[-24:]} frame {frame}")
                elif not faces:
                    log.info("no face found in %s", path)
                continue
            _, path, err = event
            if err is not None:
                log.warning("skipped: %s", err)
                summary.skipped[str(path)] = str(err)
            else:
                summary.files_read += 1
                if is_video(path):
                    summary.videos += 1
                else:
                    summary.images += 1
            bar.update(1)
        state.flush()
        state.collect()
        state.plot_videos()
    return summary


# === Sequence models (the journal's video networks) ===

class SequencePredictor:
    """A loaded sequence model: the crops of a video in order → per-frame VA, expression and AU probabilities.

    The crops are cut into windows of T consecutive frames (the test tiles of docs/VIDEO.md; the last one
    padded, its padding dropped), `windows` per forward pass. A model that takes "landmarks" gets dlib's
    68 points found on each crop (`fbn_keras.landmarks`), scaled to [-1, 1] as the records store them.
    """

    def __init__(self, model, config, au_slots: Optional[Sequence[int]] = None, windows: Optional[int] = None,
                 landmarker: Any = None):
        from fbn_keras import evaluate_sequences

        names = evaluate_sequences.input_names(model)
        if "audio" in names or "frames" not in names:
            raise ValueError(f"predict reads faces from images and videos; a model on {names} needs a "
                             "spectrogram per frame, which it does not compute")
        shape = tuple({t.name.split(":")[0]: t for t in model.inputs}["frames"].shape)
        if len(shape) != 5 or shape[2] is None or shape[2] != shape[3] or shape[4] != 3:
            raise ValueError(f"Expected frames of shape (B, T, S, S, 3). Received: {shape}")
        self.model, self.names, self.size = model, names, int(shape[2])
        self.length, default_windows = evaluate_sequences.window_sizes(model, config)
        self.windows = int(windows or default_windows)
        if self.windows < 1:
            raise ValueError(f"windows must be >= 1. Received: windows={windows}")
        self.slots = evaluate_sequences.resolve_au_slots(model, config, au_slots)
        self.heads = [h for h in ("va", "expr", "au") if h in model.output]
        self.landmarker = None
        if "landmarks" in names:
            if landmarker is None:
                from fbn_keras import landmarks
                try:
                    landmarker = landmarks.Landmarker()
                except ImportError as err:
                    raise RuntimeError(f"this model takes 68 facial landmarks per frame, found with dlib, which "
                                       f"is not available: {err}") from None
            self.landmarker = landmarker
        self._forward = evaluate_sequences._forward(model)

    def _landmarks(self, crops: np.ndarray) -> np.ndarray:
        from fbn_keras import landmarks

        return np.stack([landmarks.flatten(landmarks.to_unit(self.landmarker.on_crop(c), self.size))
                         for c in crops]).astype(np.float32)

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """(N, S, S, 3) uint8 crops of one face in frame order → {"va": (N, 2), "expr": (N, 7), "au": (N, n_au)}."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"Expected crops of shape (N, {self.size}, {self.size}, 3). Received: {crops.shape}")
        n, t = len(crops), self.length
        if n == 0:
            return {}
        tiles = -(-n // t)
        index = np.arange(tiles * t)
        index = np.where(index < n, index, 0).reshape(tiles, t)          # padding repeats frame 0, dropped below
        images = preprocess.to_model_input(crops)
        points = self._landmarks(crops) if self.landmarker is not None else None
        outs: dict[str, list] = {}
        for start in range(0, tiles, self.windows):
            idx = index[start:start + self.windows]
            inputs = {"frames": np.asarray(images)[idx]}
            if points is not None:
                inputs["landmarks"] = points[idx]
            for k, v in self._forward(inputs).items():
                outs.setdefault(k, []).append(np.asarray(v, np.float32))
        return {k: np.concatenate(v).reshape(tiles * t, -1)[:n] for k, v in outs.items()}

    def columns(self) -> list[str]:
        """The per-frame CSV header: file, frame, time, VA, then the expression and AU probabilities it has."""
        cols = ["file", "frame", "timestamp", *taxonomy.VA_NAMES]
        if "expr" in self.heads:
            cols += [*taxonomy.EXPRESSIONS, "expression"]
        if "au" in self.heads:
            cols += [taxonomy.au_names()[k] for k in self.slots]
        return cols


def _write_sequence_rows(writer, predictor: SequencePredictor, file: str, pending: list, au_names: list[str],
                         summary: Summary) -> None:
    """Predict the crops of `pending` (frame, time, crop or None) in order and write one row per frame."""
    crops = [c for _, _, c in pending if c is not None]
    preds = predictor(np.stack(crops)) if crops else {}
    i = 0
    for frame, t, crop in pending:
        summary.frames += 1
        row: dict[str, Any] = {"file": file, "frame": frame, "timestamp": t}
        if crop is not None:
            summary.faces += 1
            row.update(valence=float(preds["va"][i, 0]), arousal=float(preds["va"][i, 1]))
            if "expr" in preds:
                row.update({e: float(p) for e, p in zip(taxonomy.EXPRESSIONS, preds["expr"][i])})
                row["expression"] = taxonomy.EXPRESSIONS[int(np.argmax(preds["expr"][i]))]
            if "au" in preds:
                row.update({a: float(p) for a, p in zip(au_names, preds["au"][i])})
            i += 1
        else:
            summary.frames_without_face += 1
        writer.writerow({k: _format(v) for k, v in row.items()})


def run_sequence(predictor: SequencePredictor, inputs: Sequence[str | Path], out: str | Path, *, every: int = 1,
                 aligned: bool = False, min_confidence: float = 0.9,
                 detector: Optional[preprocess.FaceDetector] = None,
                 detect_every: int = tracking.DETECT_EVERY, chunk_passes: int = 8) -> Summary:
    """Per-frame CSV of a sequence model over each video (an image is a one-frame video): the largest face of
    each frame, tracked between detections (`fbn_keras.tracking`); a frame without a face gets a row with
    only its file, frame and time, and the windows run over the frames with a face. Crops are held and
    predicted `chunk_passes` forward passes of windows at a time (a multiple of T: the same windows)."""
    if every < 1 or detect_every < 1 or chunk_passes < 1:
        raise ValueError(f"every, detect_every and chunk_passes must be >= 1. Received: every={every}, "
                         f"detect_every={detect_every}, chunk_passes={chunk_passes}")
    if not aligned and detector is None:
        detector = preprocess.FaceDetector(min_confidence=min_confidence)
    summary = Summary()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = predictor.columns()
    au_names = [taxonomy.au_names()[k] for k in predictor.slots] if predictor.slots is not None else []
    chunk = predictor.length * predictor.windows * chunk_passes
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for path in find_inputs(inputs):
            pending: list[tuple[int, Optional[float], Optional[np.ndarray]]] = []
            held = 0
            try:
                for frame, t, faces in frame_faces(path, every=every, detector=None if aligned else detector,
                                                   size=predictor.size, detect_every=detect_every,
                                                   counts=summary.tracking):
                    pending.append((frame, t, faces[0][2] if faces else None))
                    held += bool(faces)
                    # A multiple of T crops at a time: the same windows as the whole video's, bounded memory.
                    if held == chunk:
                        _write_sequence_rows(writer, predictor, str(path), pending, au_names, summary)
                        pending, held = [], 0
            except UnreadableInput as err:
                log.warning("skipped: %s", err)
                summary.skipped[str(path)] = str(err)
                continue
            _write_sequence_rows(writer, predictor, str(path), pending, au_names, summary)
            summary.files_read += 1
            summary.videos += is_video(path)
            summary.images += not is_video(path)
    return summary


# === Command line ===

@cli.entry_point("fbn_keras.predict")
def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.predict"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run folder written by fbn_keras.train, or a .keras file")
    parser.add_argument("inputs", nargs="+", help="image files, folders (searched recursively), video files")
    parser.add_argument("--out", required=True, help="the CSV to write")
    parser.add_argument("--every", type=int, default=1, help="use every N-th video frame (default: all)")
    parser.add_argument("--detect-every", type=int, default=tracking.DETECT_EVERY,
                        help="in videos, run the face detector every N kept frames and track the faces in between "
                             f"(default: {tracking.DETECT_EVERY}; 1: detect every frame)")
    parser.add_argument("--aligned", action="store_true", help="inputs are already aligned face crops: no detection")
    parser.add_argument("--plots", default=None, help="folder for per-face and per-video figures")
    parser.add_argument("--batch-size", type=int, default=32, help="faces per forward pass (default: 32)")
    parser.add_argument("--min-confidence", type=float, default=0.9, help="face detector confidence threshold")
    parser.add_argument("--au-threshold", type=cli.open_unit_float, default=None,
                        help="AU presence threshold in (0, 1) (default: the run's config.json beside MODEL, else 0.5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error(f"--every must be >= 1, got {args.every}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.detect_every < 1:
        parser.error(f"--detect-every must be >= 1, got {args.detect_every}")
    if not 0.0 <= args.min_confidence <= 1.0:
        parser.error(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
    cli.check_files(args.inputs)

    from fbn_keras import runs

    try:
        model, config = runs.load_run(args.model)   # safe mode: no code from the file runs
    except runs.RunLoadError as err:
        parser.error(str(err))
    threshold = args.au_threshold if args.au_threshold is not None else config.au_threshold
    if config.model != "facebehaviornet":
        # A journal video network: windows of T frames of each video, one CSV row per frame.
        try:
            seq_predictor = SequencePredictor(model, config)
        except (ValueError, RuntimeError) as err:
            parser.error(str(err))
        if args.plots:
            log.warning("--plots: the figures are drawn for FaceBehaviorNet runs only; none for %s", config.model)
        summary = run_sequence(seq_predictor, args.inputs, args.out, every=args.every, aligned=args.aligned,
                               min_confidence=args.min_confidence, detect_every=args.detect_every)
        log.info("%s", summary.line())
        log.info("wrote %s", args.out)
        return 0 if summary.files_read else 1
    predictor = Predictor(model)
    summary = run(predictor, args.inputs, args.out, every=args.every, aligned=args.aligned, plots=args.plots,
                  batch_size=args.batch_size, min_confidence=args.min_confidence, au_threshold=threshold,
                  detect_every=args.detect_every, progress=not args.no_progress)
    log.info("%s", summary.line())
    for file, reason in summary.skipped.items():
        log.info("  unreadable: %s", reason)
    log.info("wrote %s%s", args.out, f" and {len(summary.plots)} plot(s) in {args.plots}" if args.plots else "")
    if summary.files_read == 0:
        log.error("nothing could be read")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
