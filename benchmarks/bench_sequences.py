"""The measurement behind the sequence input (docs/VIDEO.md): windows read from per-video SequenceExample shards
(`fbn_keras.sequences`) against windows assembled at read time from the per-frame shards.

    python benchmarks/bench_sequences.py                       # synthetic video test-bed (scale 0.2)
    python benchmarks/bench_sequences.py --data SHARDS --databases affwild2 --windows 400

Both sides give the same windows: (T, 96, 96, 3) decoded frames and the per-frame labels.
A (per-frame): the per-frame records of the split are read into memory (canonical copy of
each, grouped by video, sorted by frame), then tf.data gathers each window's serialized
records, parses and decodes them. B (sequence shards): a one-off conversion writes one
SequenceExample per video; tf.data streams them and cuts windows. Printed per side: setup
time (A: loading the split; B: the conversion), extra disk, memory held, windows/s (best of
`--rounds`, alternating), and the lines of code of each path.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fbn_keras import data, sequences  # noqa: E402
from fbn_keras.manifest import FOLDERS, Manifest  # noqa: E402


def per_frame_windows(data_dir: str, databases: list[str], split: str, length: int, seed: int = 0):
    """Path A: every canonical per-frame record of the split in memory, grouped and sorted, then windows
    gathered from it in tf.data (same windows as `sequences.train_windows`). Returns (dataset, bytes held)."""
    manifest = Manifest.load(data_dir)
    spec = {k: data.FEATURES[k] for k in (data.GROUP, data.FRAME, data.VA_MASK, data.AU_MASK, data.EXPR)}
    videos: dict[bytes, list[tuple[int, bytes]]] = {}
    for index, folder in enumerate(FOLDERS):
        files = [str(Path(data_dir) / s["file"]) for s in manifest.shards(folder, split, databases)]
        if not files:
            continue
        for raws in tf.data.TFRecordDataset(files).batch(1024):
            f = {k: v.numpy() for k, v in tf.io.parse_example(raws, spec).items()}
            canon = np.select([f[data.VA_MASK] > 0, f[data.AU_MASK].sum(-1) > 0, f[data.EXPR] >= 0], [0, 1, 2], 3)
            for raw, g, n, c in zip(raws.numpy(), f[data.GROUP], f[data.FRAME], canon):
                if c == index:
                    videos.setdefault(g, []).append((int(n), raw))
    records, windows = [], []
    rng = np.random.default_rng(seed)
    for g in sorted(videos):
        frames = sorted(videos[g])
        base = len(records)
        records.extend(r for _, r in frames)
        for start, stop in sequences.train_windows(len(frames), length, int(rng.integers(length))):
            idx = np.full(length, -1, np.int64)
            idx[:stop - start] = np.arange(base + start, base + stop)
            windows.append(idx)
    held = sum(len(r) for r in records)
    table = tf.constant(records + [b""])
    ds = tf.data.Dataset.from_tensor_slices(np.stack(windows)).shuffle(len(windows), seed=seed).repeat()

    def window(idx):
        raws = tf.gather(table, tf.where(idx >= 0, idx, len(records)))
        real = idx >= 0
        feats = tf.io.parse_example(tf.where(real, raws, tf.constant(_EMPTY)), data.FEATURES)
        images = sequences._decode_images(tf.where(real, feats[data.IMAGE], b""), 96)
        return data.to_unit_range(images), data.sanitize_labels(feats), real
    return ds.map(window, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), held


_EMPTY = data.make_example(b"", "", "").SerializeToString()


def rate(ds, n: int) -> float:
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - start)


def disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.tfrecord"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="a shard folder of per-frame video records (default: synthetic video)")
    parser.add_argument("--databases", default="synthv-affwild,synthv-affwild2")
    parser.add_argument("--split", default="train")
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--windows", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.databases.split(",")
    if args.data is None:
        from fbn_keras.records.synthetic_video import ensure_video_testbed
        source = ensure_video_testbed(scale=0.2)
    else:
        source = Path(args.data)
    work = Path(tempfile.mkdtemp(prefix="bench-seq-"))
    try:
        for sub in ("manifest.json", *FOLDERS):       # a private copy, so B's conversion is timed from scratch
            if (source / sub).is_dir():
                shutil.copytree(source / sub, work / sub)
            elif (source / sub).exists():
                shutil.copy(source / sub, work / sub)
        frames_disk = sum(disk(work / f) for f in FOLDERS if (work / f).is_dir())
        start = time.perf_counter()
        a, held = per_frame_windows(str(work), names, args.split, args.length)
        setup_a = time.perf_counter() - start
        start = time.perf_counter()
        sequences.write_sequence_shards(work, names, splits=[args.split])
        setup_b = time.perf_counter() - start
        b = sequences.make_sequence_dataset(work, names, args.split, length=args.length, batch_size=1).unbatch()
        rates = {"A": [], "B": []}
        for _ in range(args.rounds):
            rates["A"].append(rate(a, args.windows))
            rates["B"].append(rate(b, args.windows))
        lines_a = len(inspect.getsource(per_frame_windows).splitlines())
        lines_b = sum(len(inspect.getsource(f).splitlines()) for f in (
            sequences._spill, sequences._convert_split, sequences.assemble, sequences.sequence_example,
            sequences._ShardWriter, sequences._cut, sequences.make_sequence_dataset))
        print(f"per-frame shards: {frames_disk / 1e6:.1f} MB on disk ({', '.join(names)}, all splits)")
        print(f"A per-frame assembly : setup {setup_a:6.1f} s (load split), extra disk 0 MB, "
              f"memory {held / 1e6:.1f} MB, "
              f"{max(rates['A']):6.1f} windows/s of T={args.length}, {lines_a} lines")
        print(f"B sequence shards    : setup {setup_b:6.1f} s (one-off conversion), extra disk "
              f"{disk(work / sequences.FOLDER) / 1e6:.1f} MB, memory ~0 (streamed), {max(rates['B']):6.1f} windows/s, "
              f"{lines_b} lines")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
