"""Does the sequence input keep up with training? Windows/s the training pipeline yields against windows/s
a training step consumes, measured side by side in one run (docs/VIDEO.md).

    python benchmarks/bench_sequence_pipeline.py            # synthetic video test-bed, `small` preset, 4 × 32
    python benchmarks/bench_sequence_pipeline.py --quick    # a tiny setting (seconds): the plumbing only

(a) `sequences.make_sequence_dataset(training=True)` on the synthetic video test-bed's train split:
windows of T frames (96×96 JPEGs decoded) with their 68 landmarks and labels, B per batch, counted
as windows/s over `--batches` batches after one warm-up batch. (b) One training step of AffWildNet
(`video_models.build_video_model`, the preset's width; a small CNN-GRU from Keras layers when that
module is absent) with Adam and the CCC loss (journal eq. 2) on one fixed batch, counted as windows/s
over `--steps` steps after two warm-up steps. The two alternate for `--rounds` rounds; the best
of each is kept. Printed last: `ratio: pipeline / step = R (goal >= 10)`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402

from fbn_keras import losses, sequences  # noqa: E402
from fbn_keras.config import preset  # noqa: E402

GOAL = 10.0


def build_model(config):
    """AffWildNet at the preset's sizes (frames + landmarks → VA per frame); a small CNN-GRU otherwise."""
    try:
        from fbn_keras import video_models
    except ImportError:
        video_models = None
    if video_models is not None:
        return video_models.build_video_model(config)
    import keras

    frames = keras.Input((None, 96, 96, 3), name="frames")
    points = keras.Input((None, 136), name="landmarks")
    x = frames
    for k, filters in enumerate((8, 16, 32, 64)):
        x = keras.layers.TimeDistributed(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))(x)
        x = keras.layers.TimeDistributed(keras.layers.MaxPooling2D(2))(x)
    x = keras.layers.TimeDistributed(keras.layers.Flatten())(x)
    x = keras.layers.Dense(config.fc_units, activation="relu")(keras.layers.Concatenate()([x, points]))
    x = keras.layers.GRU(config.rnn_units, return_sequences=True)(x)
    x = keras.layers.GRU(config.rnn_units, return_sequences=True)(x)
    return keras.Model({"frames": frames, "landmarks": points}, {"va": keras.layers.Dense(2, name="va")(x)})


def pipeline_rate(dataset_iter, batches: int, batch: int) -> float:
    """Windows/s of the input pipeline over `batches` batches (the iterator is already warm)."""
    start = time.perf_counter()
    for _ in range(batches):
        next(dataset_iter)
    return batches * batch / (time.perf_counter() - start)


def make_step(model):
    """One traced training step: forward, CCC loss over the batch's labelled frames, Adam update."""
    import keras

    optimizer = keras.optimizers.Adam(1e-4)
    names = [t.name.split(":")[0] for t in model.inputs]

    @tf.function
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            out = model({k: inputs[k] for k in names}, training=True)
            loss = losses.ccc_loss(tf.reshape(labels["va"], [-1, 2]), tf.reshape(labels["va_mask"], [-1]),
                                   tf.reshape(out["va"], [-1, 2]))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def step_rate(step, inputs, labels, steps: int, batch: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(inputs, labels)
    float(loss)
    return steps * batch / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny preset, T=8, B=2, a few batches (seconds)")
    parser.add_argument("--database", default=None, help="synthetic video database (default synthv-affwild)")
    parser.add_argument("--scale", type=float, default=None, help="test-bed scale (default 0.5)")
    parser.add_argument("--preset", default=None, help="model preset (default small)")
    parser.add_argument("--length", type=int, default=None, help="T (default 32)")
    parser.add_argument("--batch", type=int, default=None, help="B (default 4)")
    parser.add_argument("--batches", type=int, default=None, help="pipeline batches per round (default 50)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per round (default 5)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")
    args = parser.parse_args(argv)
    quick = dict(database="synthv-afew-va", scale=0.05, preset="tiny", length=8, batch=2, batches=3, steps=2,
                 rounds=1)
    full = dict(database="synthv-affwild", scale=0.5, preset="small", length=32, batch=4, batches=50, steps=5,
                rounds=3)
    opts = {k: (getattr(args, k) if getattr(args, k) is not None else (quick if args.quick else full)[k])
            for k in full}

    from fbn_keras.records.synthetic_video import ensure_video_testbed

    data_dir = ensure_video_testbed(scale=opts["scale"], databases=[opts["database"]])
    T, B = opts["length"], opts["batch"]
    ds = sequences.make_sequence_dataset(data_dir, [opts["database"]], "train", length=T, batch_size=B,
                                         training=True, landmarks=True)
    it = iter(ds)
    inputs, labels = next(it)                                      # warm-up batch; also the step's fixed batch
    config = preset(opts["preset"], model="affwildnet", seq_length=T, seq_batch=B, landmarks=True)
    model = build_model(config)
    step = make_step(model)
    for _ in range(2):
        step(inputs, labels)                                       # trace and warm up
    rates: dict[str, list[float]] = {"pipeline": [], "step": []}
    for _ in range(opts["rounds"]):
        rates["pipeline"].append(pipeline_rate(it, opts["batches"], B))
        rates["step"].append(step_rate(step, inputs, labels, opts["steps"], B))
    a, b = max(rates["pipeline"]), max(rates["step"])
    print(f"setting: {opts['database']} (scale {opts['scale']:g}), windows {B} x {T} with landmarks, "
          f"model affwildnet ({opts['preset']} preset, {model.count_params():,} parameters), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"(a) input pipeline  : {a:8.1f} windows/s  (rounds: {', '.join(f'{r:.1f}' for r in rates['pipeline'])})")
    print(f"(b) training step   : {b:8.1f} windows/s  (rounds: {', '.join(f'{r:.1f}' for r in rates['step'])})")
    print(f"ratio: pipeline / step = {a / b:.1f} (goal >= {GOAL:g}): "
          f"{'met' if a / b >= GOAL else 'not met'}")


if __name__ == "__main__":
    main()
