"""Train the semi-supervised GAN (multi-task learning and generation paper, Section IV-A, IV-C1).

    python -m fbn_keras.train_gan                      # synthetic test-bed, `tiny` preset (a CPU smoke run)
    python -m fbn_keras.train_gan --data DIR --preset paper --out runs/gan      # real data, on a GPU
    python -m fbn_keras.train_gan --out runs/gan --resume                       # continue after an interruption

The real images are the AU task set's training shards (`fbn_keras.data`; the
paper trains on the AU part of Aff-Wild, whose frames also carry valence and
arousal), with every label they have. A training step is one cycle of the
update ratio (Section IV-C1): one update of D, then `ratio` updates of G (5
for configuration 1, 2 for configuration 2; `--extra-updates discriminator`
reverses the roles). Each update draws a fresh batch of real images and as many
z ~ U[-1, 1]^100, and goes through `fbn_keras.train.make_train_step`, the same
distributed step and apply-if-finite guard as every other network: D minimises
R_images + F_images, G minimises L_gen (eq. 1–5, `fbn_keras.gan_losses`), each
with its own Adam. The loop, checkpoints, resume, the NaN guard and the
CSV/TensorBoard log are `fbn_keras.train.run_loop`'s; TensorBoard also gets a
grid of G(z) for fixed z every `--image-every` steps.
At the end D is scored on the test splits (`--split`) as in Table IX (`fbn_keras.gan_evaluate`),
written as eval_test.json/.md in the run folder, unless `--no-eval`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fbn_keras import cli  # noqa: E402
from fbn_keras import data as fbn_data  # noqa: E402
from fbn_keras import distribute  # noqa: E402
from fbn_keras import gan_losses  # noqa: E402
from fbn_keras import shard_check  # noqa: E402
from fbn_keras import train as fbn_train  # noqa: E402
from fbn_keras.config import Config  # noqa: E402
from fbn_keras.gan import GanConfig, add_gan_flags, build_gan, gan_config_from_args  # noqa: E402
from fbn_keras.manifest import SPLITS  # noqa: E402

log = logging.getLogger("fbn_keras.train_gan")

GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
#: Generated images per TensorBoard grid (a square number).
GRID_SAMPLES = 16


# === Pure helpers ===

def update_schedule(ratio: int, extra_updates: str = "generator", adversarial: bool = True) -> tuple[str, ...]:
    """The updates of one training step, in order: "d" then `ratio` × "g" (or `ratio` × "d" then "g");
    D alone ("d",) when it has no fake class. SSGAN's order: D on step 0 of each ratio + 1."""
    if not adversarial:
        return ("d",)
    return ("d",) + ("g",) * ratio if extra_updates == "generator" else ("d",) * ratio + ("g",)


def image_grid(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) in [-1, 1], N a square → one (1, √N·H, √N·W, 3) image in [0, 1] for TensorBoard."""
    images = np.asarray(images, np.float32)
    side = int(round(np.sqrt(len(images))))
    if side * side != len(images) or images.ndim != 4:
        raise ValueError(f"Need a square number of (H, W, 3) images. Received shape {images.shape}")
    n, h, w, c = images.shape
    grid = images.reshape(side, side, h, w, c).transpose(0, 2, 1, 3, 4).reshape(side * h, side * w, c)
    return np.clip((grid + 1.0) / 2.0, 0.0, 1.0)[None]


def trainer_config(config: GanConfig, start: int = 0) -> Config:
    """The `Config` view of a GAN run that the shared data layer and loop read: the AU task set alone at
    the GAN's batch and image size, with every label its records have (VA too), reshuffled from a seed
    that includes the step; the loop's log and checkpoint intervals, no validation during training."""
    return Config(tasks="au", batch_au=config.batch, image_size=config.image_size, use_all_labels=True,
                  shuffle_buffer=config.shuffle_buffer, seed=config.seed + start,
                  skip_corrupt_records=config.skip_corrupt_records, steps=config.steps,
                  log_every=config.log_every, checkpoint_every=config.checkpoint_every, eval_every=0,
                  keep_checkpoints=config.keep_checkpoints)


#: The prime of `labelled_images`' hash (2^31 − 1): pixel sums stay far below int64's range.
_HASH_PRIME = 2 ** 31 - 1


def labelled_images(images, fraction: float, seed: int) -> tf.Tensor:
    """(N,) bool: which real images keep their labels when only `fraction` of them do (`label_fraction`).

    Chosen per image, not per draw: a universal hash of its pixels (quantised back to 0..255) with
    weights drawn from `seed`, h = Σ w_i x_i mod p, kept when h / p < fraction. The same image is
    labelled or not in every epoch and after a resume; another seed picks another subset.
    """
    size = int(np.prod(images.shape[1:]))
    weights = np.random.default_rng([int(seed), 7]).integers(1, _HASH_PRIME, size, dtype=np.int64)
    pixels = tf.cast(tf.round((tf.reshape(images, (-1, size)) + 1.0) * 127.5), tf.int64)
    h = tf.math.floormod(tf.reduce_sum(pixels * tf.constant(weights), axis=1), _HASH_PRIME)
    return tf.cast(h, tf.float64) / _HASH_PRIME < fraction


def drop_labels(labels: Mapping[str, tf.Tensor], keep: tf.Tensor) -> dict[str, tf.Tensor]:
    """`labels` with the VA and AU masks zeroed (and the expression set to -1) where `keep` is False: the
    image stays a real one for D's fake class (the semi-supervised point, Section IV-A)."""
    k = tf.cast(keep, tf.float32)
    return {**labels, "va_mask": labels["va_mask"] * k, "au_mask": labels["au_mask"] * k[:, None],
            "expr": tf.where(keep, labels["expr"], -1)}


def make_gan_dataset(data_dir, config: GanConfig, start: int = 0,
                     input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """Batches (images, labels) of the AU task set, each with "z": as many z ~ U[-1, 1]^z_dim as images;
    with `label_fraction` < 1 only that share of the images keeps its labels (`labelled_images`)."""
    databases = [d for d in config.databases.split(",") if d] or None
    ds = fbn_data.make_train_dataset(data_dir, trainer_config(config, start), input_context=input_context,
                                     databases=databases)

    def with_z(element):
        images, labels = element["au"]
        if config.label_fraction < 1.0:
            labels = drop_labels(labels, labelled_images(images, config.label_fraction, config.seed))
        z = tf.random.uniform((tf.shape(images)[0], config.z_dim), minval=-1.0, maxval=1.0)
        return images, {**labels, "z": z}

    return ds.map(with_z)


def make_optimizers(config: GanConfig) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """(G's, D's) Adam: lr 1e-4 and 1e-5, β1 0.5, β2 0.999, gradients clipped at 20 (Section IV-C1)."""
    clip = {"global_clipnorm" if config.clip == "global_norm" else "clipvalue": config.clip_value}
    make = lambda lr, name: keras.optimizers.Adam(learning_rate=lr, beta_1=config.adam_beta1,  # noqa: E731
                                                  beta_2=config.adam_beta2, name=name, **clip)
    return make(config.lr_generator, "g_adam"), make(config.lr_discriminator, "d_adam")


# === The two update steps ===

def make_gan_steps(generator: Optional[keras.Model], discriminator: keras.Model, g_optimizer, d_optimizer,
                   config: GanConfig, strategy: tf.distribute.Strategy, w_r: tf.Variable) -> dict[str, Any]:
    """{"d": D's step, "g": G's step}, each `fbn_keras.train.make_train_step` on a distributed batch
    (images, labels with "z") → (global loss terms, applied).

    D's step: D on the real images, D on G(z), R_images + F_images, D's
    variables only. G's step: G(z), D on it, L_gen against the real images with
    w_r read from the variable `w_r`, G's variables only.
    """
    def d_loss(real_outputs, labels):
        fake_outputs = None
        if generator is not None:
            fake_outputs = discriminator(generator(labels["z"], training=True), training=True)
        return gan_losses.discriminator_loss(real_outputs, labels, fake_outputs, config)

    steps = {"d": fbn_train.make_train_step(discriminator, d_loss, d_optimizer, strategy,
                                            discriminator.trainable_variables)}
    if generator is not None:
        def g_loss(fake, labels):
            return gan_losses.generator_loss(discriminator(fake, training=True)["fake"], labels["real"], fake,
                                             w_r, config.huber_delta)

        g_step = fbn_train.make_train_step(generator, g_loss, g_optimizer, strategy, generator.trainable_variables)

        def g_update(batch):
            images, labels = batch        # per-replica values: rearranging the structure moves no data
            return g_step((labels["z"], {"real": images}))

        steps["g"] = g_update
    return steps


# === Training ===

@dataclasses.dataclass
class GanResult:
    """What `train_gan` hands back."""

    generator: Optional[keras.Model]
    discriminator: keras.Model
    out_dir: Path
    step: int
    last_losses: dict[str, float]
    chief: bool = True


def train_gan(config: GanConfig, data_dir: str | Path, out_dir: str | Path, *, resume: bool = False,
              strategy: Optional[tf.distribute.Strategy] = None, verbose: bool = True) -> GanResult:
    """Train G and D for `config.steps` steps, checkpointing into `out_dir`; see the module docstring."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    strategy = strategy or distribute.choose_strategy()
    chief = distribute.is_chief(strategy)
    ckpt_dir = distribute.worker_dir(out_dir, strategy) / fbn_train.CHECKPOINT_DIR
    latest = tf.train.latest_checkpoint(str(out_dir / fbn_train.CHECKPOINT_DIR))
    if latest and not resume:
        raise FileExistsError(f"{out_dir} already holds checkpoints ({latest}). Pass --resume to continue "
                              "that run, or choose another --out.")
    if resume and not latest:
        log.info("--resume: no checkpoint in %s, starting from scratch", out_dir / fbn_train.CHECKPOINT_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    if chief:
        fbn_train._check_saved_config(config, out_dir / fbn_train.CONFIG_FILE, resume and latest is not None)
        config.save(out_dir / fbn_train.CONFIG_FILE)
    keras.utils.set_random_seed(config.seed)
    shard_check.SKIPPED.reset()
    schedule = update_schedule(config.ratio, config.extra_updates, config.adversarial)

    # === Networks, optimizers, checkpoint (everything with variables inside the scope) ===
    with strategy.scope():
        generator, discriminator = build_gan(config)
        g_optimizer, d_optimizer = make_optimizers(config)
        d_optimizer.build(discriminator.trainable_variables)
        parts: dict[str, Any] = dict(discriminator=discriminator, d_optimizer=d_optimizer)
        if generator is not None:
            g_optimizer.build(generator.trainable_variables)
            parts.update(generator=generator, g_optimizer=g_optimizer)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        w_r = tf.Variable(config.w_r_initial, dtype=tf.float32, trainable=False, name="w_r")
        checkpoint = tf.train.Checkpoint(step=step_var, **parts)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=config.keep_checkpoints)
    if resume and latest:
        fbn_train.restore_checkpoint(checkpoint, latest)
        log.info("Resumed from %s at step %d", latest, int(step_var.numpy()))
    start = int(step_var.numpy())

    # === Input (not checkpointed: a resumed run reshuffles from a seed that includes the step) ===
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: make_gan_dataset(data_dir, config, start, input_context=ctx))
    iterator = iter(dataset)
    shards = fbn_data.shard_files(data_dir, "train", ("au",))

    # === Update steps and the step of the loop ===
    updates = make_gan_steps(generator, discriminator, g_optimizer, d_optimizer, config, strategy, w_r)
    grids = _grid_writer(generator, config, out_dir, enabled=chief)

    def step_fn(step: int):
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for k, network in enumerate(schedule):
            try:
                batch = next(iterator)
            except tf.errors.DataLossError as err:     # names an offset, not a file: find the shard
                raise shard_check.corrupt_shard_error(err, shards, data_dir, f"training at step {step}") from None
            if network == "g":
                w_r.assign(float(gan_losses.w_r_at((step - 1) * len(schedule) + k, config.w_r_initial,
                                                   config.w_r_decay_updates)))
            losses, applied = updates[network](batch)
            for name, value in losses.items():
                key = f"{network}/{name}"
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
            if not bool(applied):      # the loop's guard stops the run, naming the term
                return {k: sums[k] / counts[k] for k in sums}, False
        if config.image_every and step % config.image_every == 0:
            grids(step)
        return {k: sums[k] / counts[k] for k in sums}, True

    values = fbn_train.run_loop(step_fn, trainer_config(config, start), out_dir, start, config.steps, step_var, manager,
                                images_per_step=config.batch * len(schedule), chief=chief, verbose=verbose)

    # === Final networks and config ===
    if chief:
        grids(max(start, config.steps))
        if generator is not None:
            generator.save(out_dir / GENERATOR_FILE)
        discriminator.save(out_dir / DISCRIMINATOR_FILE)
        config.save(out_dir / fbn_train.CONFIG_FILE)
        log.info("Wrote %s and %s in %s", GENERATOR_FILE, DISCRIMINATOR_FILE, out_dir)
    elif ckpt_dir.exists():
        tf.io.gfile.rmtree(str(ckpt_dir.parent))   # a non-chief's scratch copy
    return GanResult(generator=generator, discriminator=discriminator, out_dir=out_dir,
                     step=max(start, config.steps), last_losses=values, chief=chief)


def _grid_writer(generator: Optional[keras.Model], config: GanConfig, out_dir: Path, enabled: bool):
    """`write(step)`: a grid of G(z) for the same GRID_SAMPLES z at every call → TensorBoard `generated`."""
    if generator is None or not enabled:
        return lambda step: None
    z = np.random.default_rng(config.seed).uniform(-1.0, 1.0, (GRID_SAMPLES, config.z_dim)).astype(np.float32)
    writer = tf.summary.create_file_writer(str(out_dir / "tb" / "generated"))

    def write(step: int) -> None:
        grid = image_grid(generator(z, training=False))
        with writer.as_default(step=step):
            tf.summary.image("generated", grid)
        writer.flush()

    return write


# === Command line ===

def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.train_gan"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="built TFRecord folder (default: the synthetic test-bed, built on first use)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--no-eval", dest="evaluate", action="store_false",
                        help="skip the final evaluation of the discriminator (Table IX) on the test splits")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="split of the final evaluation (default: test)")
    add_gan_flags(parser)
    # The no-argument run is a CPU smoke run; `--preset paper` is for real data on a GPU.
    parser.set_defaults(preset="tiny")
    return parser


@cli.entry_point("fbn_keras.train_gan")
def main(argv: Optional[list[str]] = None) -> int:
    from fbn_keras.evaluate import setup_logging

    setup_logging()
    args = build_parser().parse_args(argv)
    with cli.user_errors(ValueError):
        config = gan_config_from_args(args)
    t0 = time.perf_counter()
    if args.data is not None:
        cli.check_data_dir(args.data, ("au",))
    else:
        from fbn_keras.testbed import ensure_synthetic_testbed
        args.data = str(ensure_synthetic_testbed())
        log.info("Synthetic test-bed ready in %s (%.0f s)", args.data, time.perf_counter() - t0)
    out = Path(args.out) if args.out else fbn_train.default_out_dir()
    try:
        with cli.user_errors(ValueError):
            result = train_gan(config, args.data, out, resume=args.resume)
    except fbn_train.NonFiniteLossError as err:
        log.error("%s", err)
        return 2
    except shard_check.CorruptShardError as err:
        log.error("%s", err)
        return 1
    if args.evaluate and result.chief:
        from fbn_keras import gan_evaluate
        try:
            results = gan_evaluate.evaluate_discriminator(result.discriminator, args.data, args.split, config)
        except shard_check.CorruptShardError as err:
            log.error("%s", err)
            return 1
        gan_evaluate.write_gan_results(results, result.out_dir, args.split, config)
        print(gan_evaluate.format_gan_table(results, config, args.split))
    log.info("Done in %.0f s; step %d; last losses %s", time.perf_counter() - t0, result.step,
             {k: round(v, 4) for k, v in result.last_losses.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
