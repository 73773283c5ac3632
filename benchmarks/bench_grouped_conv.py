"""Forward+backward time of ResNeXt's grouped 3×3 convs: Keras `Conv2D(groups=...)` vs `se_resnet.GroupedConv2D`.

    python benchmarks/bench_grouped_conv.py [--preset small] [--steps 3] [--methods auto,depthwise,split] [--model]

Per stage of ResNeXt-50 at the preset's width, image size and batch (batch_va + batch_au + batch_expr images),
one bottleneck 3×3 conv on a random map of that stage's size, with the same kernel in every implementation:
time per forward+backward (gradients w.r.t. input and kernel) in one `tf.function`, the median of `--steps`
calls after a tracing call, side by side in one run, and the ratio Conv2D(groups) / GroupedConv2D. `--model`
also times one MTANet training step (forward, backward, AdamW) with a ResNeXt-50 backbone built each way, and
with SE-ResNet-50 for reference. Keras' TensorFlow backend compiles grouped convs with XLA on CPU (see
docs/FAITHFULNESS.md, "ResNeXt grouped convolutions on CPU"). Reports ratios; asserts no time.
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

from fbn_keras import se_resnet  # noqa: E402
from fbn_keras.backbones import scaled_channels  # noqa: E402
from fbn_keras.config import preset  # noqa: E402

KERAS = "Conv2D(groups)"


def _median_call(fn, steps: int) -> float:
    """Median seconds of `fn()` over `steps` calls after one tracing call; `fn` returns tensors to fetch."""
    [t.numpy() for t in fn()]
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        [t.numpy() for t in fn()]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_layer(layer: keras.layers.Layer, x: tf.Tensor, steps: int) -> float:
    """Seconds per forward+backward of `layer` on `x` (loss Σy², gradients w.r.t. x and the kernel)."""
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x, layer.kernel])
    return _median_call(step, steps)


def bench_layers(config, methods: list[str], steps: int) -> None:
    batch = config.batch_va + config.batch_au + config.batch_expr
    side = -(-config.image_size // 4)                  # after the stride-2 stem conv and max-pool
    rng = np.random.default_rng(0)
    print(f"ResNeXt-50 3x3 grouped convs, width {config.width}, {config.image_size}px, batch {batch}: "
          "ms per forward+backward")
    for i in range(4):
        channels = scaled_channels(se_resnet.RESNEXT_STAGE1_WIDTH * 2 ** i, config.width)
        groups = se_resnet.resnext_groups(channels)
        size = -(-side // 2 ** i)
        x = tf.constant(rng.normal(size=(batch, size, size, channels)).astype(np.float32))
        kernel = rng.normal(scale=0.1, size=(3, 3, channels // groups, channels)).astype(np.float32)
        layers = {KERAS: keras.layers.Conv2D(channels, 3, padding="same", groups=groups, use_bias=False)}
        layers.update({m: se_resnet.GroupedConv2D(channels, 3, padding="same", groups=groups, use_bias=False,
                                                  method=m) for m in methods})
        timings = {}
        for name, layer in layers.items():
            layer.build(x.shape)
            layer.set_weights([kernel])
            timings[name] = time_layer(layer, x, steps)
        line = "  ".join(f"{name} {t * 1e3:.1f}" for name, t in timings.items())
        ratios = "  ".join(f"{KERAS}/{m} = {timings[KERAS] / timings[m]:.1f}x" for m in methods)
        print(f"  stage {i + 2}: {size}x{size}x{channels}, {groups} groups of {channels // groups}: {line}  |  {ratios}",
              flush=True)


def time_model_step(config, steps: int, plain_grouped: bool) -> float:
    """Seconds per MTANet training step (forward, backward, AdamW) on random images, loss Σ mean(output²)."""
    from fbn_keras.mtanet import build_mtanet

    grouped = se_resnet.GroupedConv2D
    if plain_grouped:
        se_resnet.GroupedConv2D = keras.layers.Conv2D      # the bottleneck then builds Keras' grouped Conv2D
    try:
        model = build_mtanet(config)
    finally:
        se_resnet.GroupedConv2D = grouped
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=1e-3)
    batch = config.batch_va + config.batch_au + config.batch_expr
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, config.image_size, config.image_size, 3)),
                         tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.square(o)) for o in outputs.values()])
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return [loss]
    return _median_call(step, steps)


def bench_model(preset_name: str, steps: int) -> None:
    runs = {"resnext50, " + KERAS: ("resnext50", True), "resnext50, GroupedConv2D": ("resnext50", False),
            "se_resnet50": ("se_resnet50", False)}
    timings = {}
    for label, (backbone, plain) in runs.items():
        config = preset(preset_name, model="mtanet", mtanet_backbone=backbone)
        timings[label] = time_model_step(config, steps, plain)
        print(f"  MTANet step, {label}: {timings[label]:.2f} s", flush=True)
    before, after = timings["resnext50, " + KERAS], timings["resnext50, GroupedConv2D"]
    print(f"  speed-up of the resnext50 step: {before / after:.1f}x; resnext50 / se_resnet50 now "
          f"{after / timings['se_resnet50']:.2f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--methods", default="auto,depthwise,split",
                        help=f"GroupedConv2D methods to time, of {se_resnet.GROUPED_CONV_METHODS}")
    parser.add_argument("--model", action="store_true", help="also time whole MTANet training steps")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in se_resnet.GROUPED_CONV_METHODS:
            raise ValueError(f"--methods must be of {se_resnet.GROUPED_CONV_METHODS}. Received: {m!r}")
    bench_layers(preset(args.preset, model="mtanet", mtanet_backbone="resnext50"), methods, args.steps)
    if args.model:
        bench_model(args.preset, args.steps)


if __name__ == "__main__":
    main()
