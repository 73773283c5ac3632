"""Images per second of the Beam build with 1 and with 2 worker processes, on the same images that need face detection.

    python benchmarks/bench_build.py [--n 100] [--workers 1 2] [--inline]

The input is a miniature RAF-DB (the `rafdb` parser's layout, `--original`
images, so every item goes through MTCNN detection and alignment): `--n`
variants of scikit-image's astronaut photograph (512×512; each cropped,
scaled, flipped, rotated and lit differently). Each build runs end to end
(`write_shards_beam`: items file, DirectRunner in multi-process mode with
`--direct_num_workers` workers, shards, manifest) into a fresh folder. Two
rates per build: end to end (including the workers' start-up: Python,
TensorFlow, the detector, ~10 s) and while detecting (each worker's images
from its first to its last load, summed over the workers: the steady state a
long build runs at). The ratio of the last worker count to the first is the
parallel speed-up (goal ≥ 1.7 for 2 workers on 2 cores). The load average is
printed: on a shared machine other processes take cores from the workers.
`--inline` adds the single-process writer on the same input for reference.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fbn_keras.records.writer import build_records, build_skips, write_shards  # noqa: E402
from tfrecords_tools import rafdb  # noqa: E402
from tfrecords_tools.beam_pipeline import write_shards_beam  # noqa: E402


def astronaut_variant(rng: np.random.Generator) -> np.ndarray:
    """The astronaut photograph cropped (70–100 %), rotated (±10°), maybe mirrored, brightness ×0.8–1.2; RGB uint8."""
    from skimage import data

    image = data.astronaut()
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.7, 1.0))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = image[top:top + side, left:left + side]
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-10, 10)), 1.0)
    crop = cv2.warpAffine(crop, turn, (side, side), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
    return cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA)


def make_rafdb(root: Path, n: int, seed: int = 0) -> None:
    """A RAF-DB folder (`basic/EmoLabel/list_patition_label.txt`, `basic/Image/original/`) of `n` variants."""
    rng = np.random.default_rng(seed)
    images = root / "basic" / "Image" / "original"
    images.mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"train_{i + 1:05d}.jpg"
        cv2.imwrite(str(images / name), cv2.cvtColor(astronaut_variant(rng), cv2.COLOR_RGB2BGR))
        lines.append(f"{name} {i % 7 + 1}\n")
    (root / "basic" / "EmoLabel").mkdir(parents=True)
    (root / "basic" / "EmoLabel" / "list_patition_label.txt").write_text("".join(lines))


def logged_load(load, log: str):
    """`load`, which first appends `pid time cpu-time` to the file `log` (worker processes share the file)."""
    def run():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {time.time():.4f} {time.process_time():.4f}\n")
        return load()
    return run


def detecting_rate(log: Path) -> tuple[float, float]:
    """(images/s, cores used) while detecting: per worker (loads − 1) / (last load − first load) and its CPU
    time over that span, summed over the workers."""
    rows = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        pid, stamp, cpu = line.split()
        rows[pid].append((float(stamp), float(cpu)))
    rate = cores = 0.0
    for r in rows.values():
        if len(r) > 1:
            span = r[-1][0] - r[0][0]
            rate, cores = rate + (len(r) - 1) / span, cores + (r[-1][1] - r[0][1]) / span
    return rate, cores


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(root: Path, out: Path, workers: int) -> tuple[float, tuple[float, float], int, dict, float]:
    """(seconds, (images/s, cores) while detecting, records, skips, CPU seconds of the worker processes) of one
    build; workers 0 = the single-process writer."""
    log = out.parent / f"loads{workers}.txt"
    items = (dataclasses.replace(item, load=logged_load(item.load, str(log))) if hasattr(item, "load") else item
             for item in rafdb.parse(root, argparse.Namespace(dataset="rafdb", original=True)))
    start, cpu = time.perf_counter(), children_cpu()
    if workers == 0:
        manifest = write_shards(items, out, "rafdb", aligner="auto")
    else:
        manifest = write_shards_beam(items, out, "rafdb", aligner="auto", commit_every=10 ** 9, pipeline_args=[
            "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"])
    return time.perf_counter() - start, detecting_rate(log), build_records(manifest, "rafdb"), \
        build_skips(manifest, "rafdb"), children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="images (default 100)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--inline", action="store_true", help="also time the single-process writer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "RAF-DB"
        make_rafdb(root, args.n)
        print(f"{args.n} images of 512×512 needing detection; {os.cpu_count()} cores; "
              f"load average before {os.getloadavg()[0]:.1f}")
        rates, steady = {}, {}
        for workers in ([0] if args.inline else []) + list(args.workers):
            seconds, steady[workers], records, skips, cpu = run(root, Path(tmp) / f"out{workers}", workers)
            rates[workers] = args.n / seconds
            label = "single process" if workers == 0 else f"Beam, {workers} worker{'s' * (workers > 1)}"
            (steady[workers], cores) = steady[workers]
            print(f"{label:<18} {seconds:6.1f} s  end to end {rates[workers]:5.2f} images/s  while detecting "
                  f"{steady[workers]:5.2f} images/s on {cores:.2f} cores  {records} records  skips {skips or '{}'}  "
                  f"workers' CPU {cpu / args.n * 1000:.0f} ms/image  load {os.getloadavg()[0]:.1f}")
        first, last = args.workers[0], args.workers[-1]
        print(f"ratio {last} / {first} workers: end to end {rates[last] / rates[first]:.2f}, while detecting "
              f"{steady[last] / steady[first]:.2f} (goal ≥ 1.7 for 2 / 1 on 2 cores)")


if __name__ == "__main__":
    main()
