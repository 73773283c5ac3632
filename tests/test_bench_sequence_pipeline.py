"""benchmarks/bench_sequence_pipeline.py runs at its tiny setting and prints the ratio line (docs/VIDEO.md)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_prints_both_rates_and_the_ratio():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_sequence_pipeline.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    a = float(re.search(r"\(a\) input pipeline\s*:\s*([\d.]+) windows/s", out).group(1))
    b = float(re.search(r"\(b\) training step\s*:\s*([\d.]+) windows/s", out).group(1))
    ratio = float(re.search(r"^ratio: pipeline / step = ([\d.]+) \(goal >= 10\)", out, re.M).group(1))
    assert a > 0 and b > 0 and abs(ratio - a / b) <= 0.05 + 0.01 * ratio      # printed to one decimal
