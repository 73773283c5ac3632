"""Images/s of the training input (`make_train_dataset`) against a bare parallel JPEG decode of the same shards.

    python benchmarks/bench_pipeline.py                      # synthetic test-bed (scale 0.2), small preset
    python benchmarks/bench_pipeline.py --data SHARDS --preset paper --images 20000

Both sides read the same `train` shards of the VA, AU and EXPR folders. The
bare side is TFRecordDataset → parse_single_example → decode_jpeg, parallel
and prefetched; the full side adds shuffling, scaling to [-1, 1], label
parsing, per-task masking and the three-way zip. Each is timed `--rounds`
times, alternately, and the best round counts (the machine is shared). Goal:
ratio ≥ 0.8.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402

from fbn_keras import config as fbn_config  # noqa: E402
from fbn_keras import data  # noqa: E402
from fbn_keras.manifest import Manifest  # noqa: E402


def bare_decode(files: list[str], batch: int) -> tf.data.Dataset:
    """The floor of any reader: records → JPEG decoded to uint8, in parallel, batched, prefetched."""
    ds = tf.data.Dataset.from_tensor_slices(files).repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.map(lambda raw: tf.io.decode_jpeg(tf.io.parse_single_example(raw, data.FEATURES)[data.IMAGE],
                                              channels=3),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def images_per_second(ds: tf.data.Dataset, steps: int, images_per_step: int, warmup: int = 5) -> float:
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * images_per_step / (time.perf_counter() - start)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="a built shard folder (default: the synthetic test-bed)")
    p.add_argument("--scale", type=float, default=0.2, help="scale of the default synthetic test-bed")
    p.add_argument("--preset", default="small", choices=sorted(fbn_config.PRESETS))
    p.add_argument("--images", type=int, default=6000, help="images timed per round and side")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.data is None:
        from fbn_keras.testbed import ensure_synthetic_testbed
        args.data = ensure_synthetic_testbed(scale=args.scale)

    cfg = fbn_config.preset(args.preset, shuffle_buffer=min(fbn_config.preset(args.preset).shuffle_buffer, 2000))
    per_step = cfg.global_batch
    steps = max(1, args.images // per_step)
    manifest = Manifest.load(args.data)
    files = [str(args.data / s["file"]) for t in data.TASKS for s in manifest.shards(t, "train")]
    full, bare = [], []
    for _ in range(args.rounds):
        bare.append(images_per_second(bare_decode(files, per_step), steps, per_step))
        full.append(images_per_second(data.make_train_dataset(args.data, cfg), steps, per_step))
    best_full, best_bare = max(full), max(bare)
    print(f"shards: {args.data} ({len(files)} train files); preset {args.preset}: "
          f"batches {cfg.batch_va}/{cfg.batch_au}/{cfg.batch_expr}; {steps} steps × {per_step} images per round; "
          f"{os.cpu_count()} CPUs")
    print(f"| reader | images/s (best of {args.rounds}) | rounds |")
    print("|---|---:|---|")
    print(f"| bare decode (TFRecord → parse → decode_jpeg) | {best_bare:,.0f} | "
          f"{', '.join(f'{v:,.0f}' for v in bare)} |")
    print(f"| make_train_dataset (VA+AU+EXPR zip) | {best_full:,.0f} | {', '.join(f'{v:,.0f}' for v in full)} |")
    print(f"| ratio (goal ≥ 0.80) | {best_full / best_bare:.2f} | |")


if __name__ == "__main__":
    main()
