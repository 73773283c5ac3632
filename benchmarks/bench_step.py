"""Time per image of FaceBehaviorNet's full multi-task step vs a plain single-head step (multi-task overhead at scale).

    python benchmarks/bench_step.py [--preset small] [--steps 20] [--repeats 5]

Both steps run the same backbone on the same total batch (batch_va +
batch_au + batch_expr images) through the same `make_train_step` under the
same strategy, from in-memory tensors so the input pipeline does not count.
The multi-task step applies eq. 1 with every coupling term on
(`coann+soft+dm`); the plain step is softmax cross entropy on the expression
head for every image. The two are timed in alternating rounds (the machine is
shared, so load drifts) and the median round of each is compared.
Goal: ratio ≤ 1.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fbn_keras import distribute, taxonomy  # noqa: E402
from fbn_keras.config import preset  # noqa: E402
from fbn_keras.losses import MultiTaskLoss, expression_loss  # noqa: E402
from fbn_keras.model import build_facebehaviornet  # noqa: E402
from fbn_keras.train import make_train_step  # noqa: E402


def synthetic_batch(config, seed: int = 0):
    """One global batch shaped like the training input: VA rows, AU rows, expression rows."""
    rng = np.random.default_rng(seed)
    sizes = (config.batch_va, config.batch_au, config.batch_expr)
    n = sum(sizes)
    va_rows, au_rows = slice(0, sizes[0]), slice(sizes[0], sizes[0] + sizes[1])
    expr_rows = slice(sizes[0] + sizes[1], n)
    s = config.image_size
    labels = {
        "va": np.zeros((n, 2), np.float32), "va_mask": np.zeros((n,), np.float32),
        "expr": np.full((n,), -1, np.int64),
        "au": np.zeros((n, taxonomy.NUM_AUS), np.float32), "au_mask": np.zeros((n, taxonomy.NUM_AUS), np.float32),
    }
    labels["va"][va_rows] = rng.uniform(-1, 1, (sizes[0], 2))
    labels["va_mask"][va_rows] = 1
    labels["au"][au_rows] = rng.integers(0, 2, (sizes[1], taxonomy.NUM_AUS))
    labels["au_mask"][au_rows] = 1
    labels["expr"][expr_rows] = rng.integers(0, taxonomy.NUM_EXPRESSIONS, sizes[2])
    images = rng.uniform(-1, 1, (n, s, s, 3)).astype(np.float32)
    return tf.constant(images), {k: tf.constant(v) for k, v in labels.items()}


def plain_expression_loss(outputs, labels):
    """The single-head baseline: softmax CE on the expression head for every image (labels filled in)."""
    n = keras.ops.shape(outputs["expr"])[0]
    fake = keras.ops.mod(keras.ops.arange(n), taxonomy.NUM_EXPRESSIONS)
    return {"total": expression_loss(fake, outputs["expr"])}


def time_rounds(step, inputs, steps: int) -> float:
    """Seconds per step over one round of `steps` steps (after the step has been traced)."""
    t0 = time.perf_counter()
    for _ in range(steps):
        losses, _ = step(inputs)
    float(losses["total"])   # wait for the last step
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds of each step")
    args = parser.parse_args()

    config = preset(args.preset, coupling="coann+soft+dm")
    strategy = distribute.choose_strategy()
    with strategy.scope():
        model = build_facebehaviornet(config)
        opt_full = keras.optimizers.Adam(config.learning_rate)
        opt_plain = keras.optimizers.Adam(config.learning_rate)
        opt_full.build(model.trainable_variables)
        opt_plain.build(model.trainable_variables)
    full = make_train_step(model, MultiTaskLoss(config), opt_full, strategy)
    plain = make_train_step(model, plain_expression_loss, opt_plain, strategy)
    inputs = strategy.experimental_distribute_values_from_function(lambda ctx: synthetic_batch(config))
    n = config.global_batch
    for step in (full, plain):      # trace and warm up
        time_rounds(step, inputs, 2)
    rounds = {"full": [], "plain": []}
    for _ in range(args.repeats):
        rounds["full"].append(time_rounds(full, inputs, args.steps))
        rounds["plain"].append(time_rounds(plain, inputs, args.steps))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"preset={args.preset} batch={n} ({config.batch_va}+{config.batch_au}+{config.batch_expr}) "
          f"replicas={strategy.num_replicas_in_sync} rounds={args.repeats}x{args.steps} steps")
    for k in ("full", "plain"):
        spread = f"{min(rounds[k]) / n * 1e3:.3f}-{max(rounds[k]) / n * 1e3:.3f}"
        print(f"{k:>5} step: {med[k] / n * 1e3:.3f} ms/image (median; rounds {spread})")
    print(f"ratio full/plain: {med['full'] / med['plain']:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
