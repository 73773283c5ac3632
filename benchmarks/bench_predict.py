"""Images per second of `predict --aligned` on a folder of face crops vs the network alone on the same crops.

    python benchmarks/bench_predict.py [--preset paper|small] [--images 512] [--rounds 7]

The folder is generated here: the astronaut's face (`skimage.data.astronaut()`),
detected once and aligned to 96x96 with its landmarks jittered by up to 2 px
and its brightness varied, so every PNG differs. The end-to-end run is
`fbn_keras.predict.run(..., aligned=True)`: find the files, decode each PNG,
run the network in batches, write the CSV (reading runs in the reader thread).
The baseline is the same network (`paper` architecture by default, the one users deploy; untrained
weights: speed does not depend on them) on the decoded crops in the same
batches. The two are timed in alternating rounds and the median round of each
is compared (and the median of the per-round ratios). Goal: ratio ≥ 0.9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data as skdata  # noqa: E402

from fbn_keras import predict, preprocess  # noqa: E402
from fbn_keras.config import preset  # noqa: E402
from fbn_keras.model import build_facebehaviornet  # noqa: E402


def write_crops(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """`n` distinct aligned crops of the astronaut's face as PNG files."""
    photo = skdata.astronaut()
    (face,) = preprocess.FaceDetector().detect(photo)
    rng = np.random.default_rng(seed)
    for i in range(n):
        crop = preprocess.align_face(photo, face.landmarks + rng.uniform(-2, 2, (5, 2)), size=size)
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"face_{i:05d}.png"), crop[..., ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=("small", "paper", "tiny"),
                        help="the network's architecture (default: paper, the network users deploy; small costs less per crop than decoding one here)")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="alternating timed rounds of each")
    args = parser.parse_args()

    predictor = predict.Predictor(build_facebehaviornet(preset(args.preset)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "crops"
        folder.mkdir()
        write_crops(folder, args.images, predictor.size)
        crops = np.stack([preprocess.read_image(p) for p in sorted(folder.iterdir())])
        predictor(crops[:args.batch_size])                      # trace outside the timing

        def end_to_end() -> float:
            t0 = time.perf_counter()
            summary = predict.run(predictor, [folder], Path(tmp) / "out.csv", aligned=True,
                                  batch_size=args.batch_size, progress=False)
            seconds = time.perf_counter() - t0
            assert summary.faces == args.images, summary.line()
            return summary.faces / seconds

        def model_alone() -> float:
            t0 = time.perf_counter()
            for i in range(0, len(crops), args.batch_size):
                out = predictor(crops[i:i + args.batch_size])
            float(out["va"][0, 0])
            return len(crops) / (time.perf_counter() - t0)

        rounds: dict[str, list[float]] = {"predict": [], "model alone": []}
        for r in range(args.rounds):               # A B, B A, A B, ...: a load that drifts hits both alike
            for key in (("predict", "model alone") if r % 2 == 0 else ("model alone", "predict")):
                rounds[key].append(end_to_end() if key == "predict" else model_alone())
    med = {k: statistics.median(v) for k, v in rounds.items()}
    paired = statistics.median(p / m for p, m in zip(rounds["predict"], rounds["model alone"]))
    print(f"preset={args.preset} {args.images} aligned {predictor.size}x{predictor.size} PNG crops; "
          f"batch {args.batch_size}; {args.rounds} rounds")
    for key in rounds:
        spread = ", ".join(f"{v:.1f}" for v in rounds[key])
        print(f"{key:>12}: {med[key]:8.1f} images/s (median; rounds {spread})")
    print(f"ratio predict / model alone: {med['predict'] / med['model alone']:.3f} (goal >= 0.9); "
          f"median of the per-round ratios {paired:.3f}")


if __name__ == "__main__":
    main()
