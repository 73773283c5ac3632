"""Frames per second of `predict` on a video, end to end, vs the network alone on the same aligned crops.

    python benchmarks/bench_video.py [--preset paper|small] [--seconds 30] [--detect-every N] [--rounds 3]

The clip is generated here: `skimage.data.astronaut()` panned and zoomed
slowly (scale 0.8 → 1.0, 120 px across, 30 px down over the clip) in a 640x480
frame at 30 frames/s, written as MPEG-4 (mp4v). The end-to-end run is
`fbn_keras.predict.run` with the face tracker (decode, detect every N frames,
track, align in the reader thread; the network and the CSV in the main one).
The baseline is the same network (`paper` architecture by default, the one users deploy; untrained
weights: speed does not depend on them) on the crops that run aligned, in the
same batches, with no decoding, detection or CSV. The two are timed in
alternating rounds and the median round of each is compared (and the
median of the per-round ratios). Goal: ratio ≥ 0.5.

Agreement: the per-frame outputs of the tracked run against detecting every
frame (`--detect-every 1`), on every `--agreement-every`-th frame (the detector
treats frames independently, so the subset gives the same per-frame numbers as
a full detect-every-frame run, in a fraction of the time): mean absolute
difference of valence/arousal, AU and expression probabilities, and the
distance between the box centres (pixels).
"""

from __future__ import annotations

import argparse
import csv
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

from fbn_keras import predict, preprocess, taxonomy, tracking  # noqa: E402
from fbn_keras.config import preset  # noqa: E402
from fbn_keras.model import build_facebehaviornet  # noqa: E402

WIDTH, HEIGHT = 640, 480


def write_clip(path: Path, seconds: float, fps: float) -> int:
    """The astronaut panned and zoomed slowly, as an mp4; returns the number of frames."""
    photo = skdata.astronaut()
    n = int(round(seconds * fps))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write mp4v video here")
    for t in range(n):
        a = t / max(1, n - 1)
        s = 0.8 + 0.2 * a
        matrix = np.float32([[s, 0, 60 + 120 * a - 256 * (s - 0.8)], [0, s, -20 + 30 * a - 256 * (s - 0.8)]])
        frame = cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        writer.write(frame[..., ::-1])
    writer.release()
    return n


def read_rows(path: Path) -> dict[int, dict]:
    with open(path, newline="") as fh:
        return {int(r["frame"]): r for r in csv.DictReader(fh) if r["face"] in ("", "0")}


def box_centre(row: dict) -> np.ndarray:
    return np.array([float(row["x"]) + float(row["w"]) / 2, float(row["y"]) + float(row["h"]) / 2])


def timed_run(predictor, clip, out, detector, **kw) -> tuple[float, predict.Summary]:
    t0 = time.perf_counter()
    summary = predict.run(predictor, [clip], out, detector=detector, progress=False, **kw)
    return time.perf_counter() - t0, summary


def time_model(predictor, crops: np.ndarray, batch: int) -> float:
    """Seconds for the network alone over all crops, in batches of `batch`."""
    t0 = time.perf_counter()
    for i in range(0, len(crops), batch):
        out = predictor(crops[i:i + batch])
    float(out["va"][0, 0])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=("small", "paper", "tiny"),
                        help="the network's architecture (default: paper, the network users deploy; small costs less per crop than decoding one here)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--detect-every", type=int, default=tracking.DETECT_EVERY)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds of each")
    parser.add_argument("--agreement-every", type=int, default=5,
                        help="compare with detect-every-frame on every N-th frame (1: all)")
    args = parser.parse_args()

    predictor = predict.Predictor(build_facebehaviornet(preset(args.preset)))
    detector = preprocess.FaceDetector()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "astronaut.mp4"
        n = write_clip(clip, args.seconds, args.fps)
        first = next(predict.iter_frames(clip))[2]
        detector.detect(first)                                   # build mtcnn outside the timing
        # The crops the tracked run aligns: the baseline's input.
        crops = np.stack([c for _, _, faces in predict.frame_faces(clip, detector=detector, size=predictor.size,
                                                                   detect_every=args.detect_every)
                          for _, _, c in faces[:1]])
        predictor(crops[:args.batch_size])                        # trace outside the timing
        time_model(predictor, crops[:args.batch_size * 2], args.batch_size)

        rounds: dict[str, list[float]] = {"end to end": [], "model alone": []}
        for r in range(args.rounds):               # A B, B A, A B, ...: a load that drifts hits both alike
            for key in (("end to end", "model alone") if r % 2 == 0 else ("model alone", "end to end")):
                if key == "end to end":
                    seconds, summary = timed_run(predictor, clip, tmp / "tracked.csv", detector,
                                                 detect_every=args.detect_every, batch_size=args.batch_size)
                    rounds[key].append(summary.frames / seconds)
                else:
                    rounds[key].append(len(crops) / time_model(predictor, crops, args.batch_size))
        med = {k: statistics.median(v) for k, v in rounds.items()}
        paired = statistics.median(e / m for e, m in zip(rounds["end to end"], rounds["model alone"]))

        # Detect every frame, on every k-th frame: the reference for agreement, and the old speed.
        k = args.agreement_every
        seconds_ref, ref_summary = timed_run(predictor, clip, tmp / "every.csv", detector, detect_every=1,
                                             every=k, batch_size=args.batch_size)
        tracked, every = read_rows(tmp / "tracked.csv"), read_rows(tmp / "every.csv")

    frames = sorted(f for f in every if every[f]["face"] == "0" and tracked.get(f, {}).get("face") == "0")
    groups = {"valence/arousal": list(taxonomy.VA_NAMES), "AU probabilities": taxonomy.au_names(),
              "expression probabilities": list(taxonomy.EXPRESSIONS)}
    print(f"preset={args.preset} clip {n} frames {WIDTH}x{HEIGHT} at {args.fps:g} fps; detect every "
          f"{args.detect_every} frames; batch {args.batch_size}; {args.rounds} rounds")
    print(f"tracked run: {dict(summary.tracking)}; {summary.frames_without_face} frame(s) without a face")
    for key in rounds:
        spread = ", ".join(f"{v:.1f}" for v in rounds[key])
        print(f"{key:>12}: {med[key]:8.1f} frames/s (median; rounds {spread})")
    print(f"ratio end to end / model alone: {med['end to end'] / med['model alone']:.3f} (goal >= 0.5); "
          f"median of the per-round ratios {paired:.3f}")
    print(f"detect every frame: {ref_summary.frames / seconds_ref:.1f} frames/s "
          f"(on every {k}-th frame: {ref_summary.frames} frames, {ref_summary.frames_without_face} without a face)")
    print(f"agreement with detect-every-frame on {len(frames)} frames (mean absolute difference):")
    for name, cols in groups.items():
        diff = np.array([[float(tracked[f][c]) - float(every[f][c]) for c in cols] for f in frames])
        print(f"  {name}: {np.abs(diff).mean():.5f} (max {np.abs(diff).max():.5f})")
    gap = np.linalg.norm([box_centre(tracked[f]) - box_centre(every[f]) for f in frames], axis=1)
    width = np.mean([float(every[f]["w"]) for f in frames])
    print(f"  box centre: {gap.mean():.2f} px (max {gap.max():.2f}; face width {width:.0f} px)")


if __name__ == "__main__":
    main()
