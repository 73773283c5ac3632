"""Throughput of the synthetic renderer on one core (the test-bed's goal: ≥ 300 images/s).

    python benchmarks/bench_synthetic.py [--n 2000]

Prints images/s per database by wall clock and by this process's CPU time: on a shared
machine the CPU-time figure is the one-core throughput, the wall-clock one what you got.
"""

from __future__ import annotations

import argparse
import time

import cv2

from fbn_keras import synthetic


def measure(database: str, n: int) -> tuple[float, float]:
    """(images/s by wall clock, images/s by CPU time) of `generate(database, 'train', n)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in synthetic.generate(database, "train", n=n))
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="images per database (default 2000)")
    args = parser.parse_args()
    cv2.setNumThreads(1)   # one core: OpenCV must not spread the JPEG and resize work
    print(f"{'database':<22}{'wall img/s':>12}{'cpu img/s':>12}")
    total_n, total_wall, total_cpu = 0, 0.0, 0.0
    for database in synthetic.SYNTHETIC_DATABASES:
        by_wall, by_cpu = measure(database, args.n)
        print(f"{database:<22}{by_wall:>12.0f}{by_cpu:>12.0f}")
        total_n, total_wall, total_cpu = total_n + args.n, total_wall + args.n / by_wall, total_cpu + args.n / by_cpu
    print(f"{'all':<22}{total_n / total_wall:>12.0f}{total_n / total_cpu:>12.0f}")


if __name__ == "__main__":
    main()
