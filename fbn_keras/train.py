"""Train FaceBehaviorNet (main paper Section 6, eq. 1–3) or any network of `fbn_keras.registry`.

    python -m fbn_keras.train                      # synthetic test-bed, `small` preset, then test-split table
    python -m fbn_keras.train --data DIR --preset paper --out runs/paper   # real data, on a GPU
    python -m fbn_keras.train --out runs/paper --resume                    # continue after an interruption
    python -m fbn_keras.train --model affwildnet   # a video network on the synthetic video test-bed
    python -m fbn_keras.train --model facernet     # FaceRNET on the synthetic reaction videos

For FaceBehaviorNet every step concatenates one batch from each of VA-Set,
AU-Set and EXPR-Set, runs one forward pass and minimises `MultiTaskLoss` (eq. 1
plus the chosen coupling terms). A sequence network (`--model`, docs/VIDEO.md)
takes (B, T) windows of consecutive frames and its own loss, FaceRNET whole
videos with one label vector each; the registry says which. The loop is
explicit, a `tf.function` around `strategy.run`, so the same code runs on
one device, several (`MirroredStrategy`) and several machines
(`MultiWorkerMirroredStrategy` from `TF_CONFIG`): Keras 3's `fit()` fails
under the latter on TF 2.21 (keras-team/keras#20585).

Resume order: the latest checkpoint in `--out/checkpoints` when `--resume` is
given (from scratch, with a log line, when there is none); a fresh run refuses
an `--out` that already holds checkpoints rather than mixing two runs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fbn_keras import cli  # noqa: E402
from fbn_keras import data as fbn_data  # noqa: E402
from fbn_keras import distribute  # noqa: E402
from fbn_keras import registry  # noqa: E402
from fbn_keras import shard_check  # noqa: E402
from fbn_keras import taxonomy  # noqa: E402
from fbn_keras.config import AU_POS_WEIGHT_POWERS, Config, add_config_flags, config_from_args  # noqa: E402
from fbn_keras.losses import balanced_au_pos_weight  # noqa: E402
from fbn_keras.manifest import SPLITS  # noqa: E402
from fbn_keras.schedules import ConstantThenExponentialDecay  # noqa: E402

log = logging.getLogger("fbn_keras.train")

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
AU_POS_WEIGHT_FILE = "au_pos_weight.json"
#: Name of the dropout RNG states in a run's checkpoints (`rng_state_variables`).
RNG_CHECKPOINT_KEY = "rng"
#: Name of a loss's own variables (learned task weights) in a run's checkpoints.
LOSS_CHECKPOINT_KEY = "loss"


class NonFiniteLossError(RuntimeError):
    """A loss term (or a gradient) became NaN or infinite; the step's update was not applied."""


# === Pure helpers ===

def concat_batches(element: Mapping[str, tuple[Any, Mapping[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    """One batch per task set → one batch: images and every label key concatenated (VA, AU, EXPR order).

    Paper Section 6: "three batches, one from each of these sets, were concatenated".
    Only the tasks present in `element` take part (single-task baselines feed one).
    """
    tasks = [t for t in fbn_data.TASKS if t in element]
    unknown = sorted(set(element) - set(fbn_data.TASKS))
    if not tasks or unknown:
        raise ValueError(f"Expected batches keyed by some of {fbn_data.TASKS}. Received keys: {sorted(element)}")
    keys = set(element[tasks[0]][1])
    for t in tasks[1:]:
        if set(element[t][1]) != keys:
            raise ValueError(f"Label keys differ between task batches: {tasks[0]}={sorted(keys)}, "
                             f"{t}={sorted(element[t][1])}")
    images = tf.concat([element[t][0] for t in tasks], axis=0)
    labels = {k: tf.concat([element[t][1][k] for t in tasks], axis=0) for k in sorted(keys)}
    return images, labels


def first_non_finite(values: Mapping[str, float]) -> Optional[str]:
    """Name of the first non-finite loss term, the named terms before 'total'; None when all are finite."""
    for name in sorted(values, key=lambda n: n == "total"):
        if not math.isfinite(values[name]):
            return name
    return None


def constant_va_output(row: Mapping[str, float], tol: float = 1e-6) -> bool:
    """Whether a logged interval's VA loss is exactly 1 − CCC at CCC = 0 (eq. 2): the VA output did not vary
    over any batch of the interval, the mark of a collapsed network (every ReLU of a layer dead)."""
    value = row.get("loss/va")
    return value is not None and abs(value - 1.0) <= tol


def learning_rate_for(config: Config, total_steps: int):
    """The optimizer's learning rate: constant (Section 6: 1e-4), cosine-decayed to 5 % over `total_steps`,
    or constant then exponentially decayed (`exp_after`, the journal's AffWildNet)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "exp_after":
        return ConstantThenExponentialDecay(config.learning_rate, config.lr_decay_start, config.lr_decay_every,
                                            config.lr_decay_rate)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=max(1, total_steps), alpha=0.05)


def make_optimizer(config: Config, total_steps: int, no_decay: tuple = ()) -> keras.optimizers.Optimizer:
    """`config.optimizer` at `learning_rate_for(config)`; weight decay (adamw, sgd) spares `no_decay`
    (a loss's own variables, such as learned task uncertainties)."""
    rate = learning_rate_for(config, total_steps)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=rate, weight_decay=config.weight_decay or None)
    if no_decay:
        optimizer.exclude_from_weight_decay(var_list=list(no_decay))
    return optimizer


def loss_variables(loss_fn) -> list:
    """A loss's own trainable variables (learned task weights), or none."""
    return list(getattr(loss_fn, "trainable_variables", []) or [])


def steps_for(config: Config, train_sizes: Mapping[str, int]) -> int:
    """Training length in steps: `config.steps`, or `config.epochs` of the largest per-task epoch.

    Section 6: the batch sizes are chosen so that one epoch samples every image
    of each set; with other sizes an epoch is the longest set's pass.
    """
    if config.steps is not None:
        return int(config.steps)
    batch = {"va": config.batch_va, "au": config.batch_au, "expr": config.batch_expr}
    per_epoch = max((math.ceil(train_sizes.get(t, 0) / batch[t]) for t in config.task_set), default=0)
    if per_epoch == 0:
        raise ValueError(f"No training images for the tasks {sorted(config.task_set)}: sizes {dict(train_sizes)}")
    return max(1, math.ceil(config.epochs * per_epoch))


def rng_state_variables(model: keras.Model) -> list[tf.Variable]:
    """The model's random-generator states: one Keras `SeedGenerator` state per Dropout layer.

    They are variables but not weights, so a checkpoint of the model alone
    misses them and a resumed run would redraw the dropout masks of its first
    steps. `make_checkpoint` adds them under `RNG_CHECKPOINT_KEY`.
    """
    weights = {id(v) for v in model.weights}
    return [v.value for v in model.variables if id(v) not in weights]


def make_checkpoint(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                    step: tf.Variable, loss_vars: Optional[list] = None) -> tf.train.Checkpoint:
    """What a run's checkpoints hold: the weights, the optimizer state, the step, the dropout RNG states
    and a loss's own variables (`loss_vars`)."""
    rng = rng_state_variables(model)     # empty without dropout
    extra = {RNG_CHECKPOINT_KEY: rng} if rng else {}
    if loss_vars:
        extra[LOSS_CHECKPOINT_KEY] = list(loss_vars)
    return tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, **extra)


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restore `path` into a `make_checkpoint` object; each of its objects must find a saved value.

    A checkpoint without RNG states (written before they were saved) restores
    everything else, with a warning: dropout then restarts from its initial state.
    """
    rng = getattr(checkpoint, RNG_CHECKPOINT_KEY, None)
    if rng and not any(name.startswith(f"{RNG_CHECKPOINT_KEY}/") for name, _ in tf.train.list_variables(path)):
        log.warning("%s holds no dropout RNG state (written without dropout, or before the state was saved): "
                    "dropout restarts from its initial state", path)
        keep = {k: getattr(checkpoint, k) for k in (LOSS_CHECKPOINT_KEY,) if hasattr(checkpoint, k)}
        checkpoint = tf.train.Checkpoint(model=checkpoint.model, optimizer=checkpoint.optimizer, step=checkpoint.step,
                                         **keep)
    checkpoint.restore(path).assert_existing_objects_matched()


# === The distributed update step ===

def _all_finite(tensors) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors if t is not None])


def _apply_if(optimizer: keras.optimizers.Optimizer, grads, variables, ok: tf.Tensor) -> None:
    """`optimizer.apply(grads, variables)` only when `ok` (the same on every replica).

    The condition is taken in cross-replica context, as Keras' LossScaleOptimizer
    does: a `cond` in replica context cannot hold the optimizer's merge_call.
    """
    def cross_replica(distribution, grads, ok):
        ok = distribution.experimental_local_results(ok)[0]

        def apply():
            distribution.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))

        tf.cond(ok, apply, lambda: None)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(grads, ok))


def make_train_step(model: keras.Model, loss_fn: Callable, optimizer: keras.optimizers.Optimizer,
                    strategy: tf.distribute.Strategy, variables: Optional[list] = None,
                    hooks: Optional[tuple[Callable, Callable]] = None) -> Callable:
    """A `tf.function` taking a distributed batch and returning (global losses, whether the update was applied).

    The batch is `make_train_dataset`'s `{task: (images, labels)}` (concatenated
    here, per replica) or an already concatenated `(inputs, labels)` (a sequence
    network's windows: `inputs` a dict). `variables` (default: the model's
    trainable ones) are what the update moves, e.g. plus a loss's own variables.

    Each replica's loss is already its share of the global loss (the loss module
    all-reduces its counts and CCC sums), so the optimizer's sum of replica
    gradients is the global gradient and a SUM reduce is the global loss. A
    non-finite loss or gradient on any replica skips the update everywhere.

    `hooks` (a spec's `update_hooks(model)`): `(before_apply, after_apply)`, run in each replica's step
    around the update as `state = before_apply(inputs)` and `after_apply(inputs, state)`, e.g. FaceRNET's
    routing (Section 3.2), which sets the kernel rows no video of the batch routes into back to `state`.
    """
    variables = list(model.trainable_variables) if variables is None else list(variables)
    before_apply, after_apply = hooks if hooks is not None else (None, None)

    def replica_step(batch):
        images, labels = concat_batches(batch) if isinstance(batch, Mapping) else batch
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            losses = loss_fn(outputs, labels)
        grads = tape.gradient(losses["total"], variables)
        local_ok = tf.logical_and(_all_finite(losses.values()), _all_finite(grads))
        bad = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(local_ok, tf.float32))
        ok = tf.equal(bad, 0.0)
        state = before_apply(images) if before_apply is not None else None
        _apply_if(optimizer, grads, variables, ok)
        if after_apply is not None:
            after_apply(images, state)      # a skipped update left the weights as `state` holds them anyway
        return losses, ok

    @tf.function
    def train_step(inputs):
        losses, ok = strategy.run(replica_step, args=(inputs,))
        total = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in losses.items()}
        return total, strategy.experimental_local_results(ok)[0]

    return train_step


# === Bookkeeping ===

class MetricsLog:
    """Per-term loss means over each logging interval → CSV, TensorBoard and the log (chief only)."""

    def __init__(self, out_dir: Path, enabled: bool):
        self.enabled = enabled
        self.sums: dict[str, float] = {}
        self.count = 0
        self.t0 = time.perf_counter()
        self.csv_path = out_dir / METRICS_FILE
        self.writer = tf.summary.create_file_writer(str(out_dir / "tb")) if enabled else None

    def add(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def flush(self, step: int, images_per_step: int, extra: Optional[Mapping[str, float]] = None) -> dict:
        """Write the interval's means at `step`; returns the row written."""
        elapsed = time.perf_counter() - self.t0
        row: dict[str, float] = {"step": step}
        row.update({f"loss/{k}": v / max(self.count, 1) for k, v in sorted(self.sums.items())})
        row["images_per_s"] = self.count * images_per_step / max(elapsed, 1e-9)
        row.update(extra or {})
        if self.enabled:
            self._write_csv(row)
            with self.writer.as_default(step=step):
                for k, v in row.items():
                    if k != "step":
                        tf.summary.scalar(k, v)
            self.writer.flush()
        self.sums, self.count, self.t0 = {}, 0, time.perf_counter()
        return row

    def _write_csv(self, row: Mapping[str, float]) -> None:
        # A resumed run, or one that gains a column (validation metrics), appends under a fresh header.
        header = list(row)
        existing = self.csv_path.read_text().splitlines()[:1] if self.csv_path.exists() else []
        last_header = self._last_header()
        with self.csv_path.open("a", newline="") as f:
            w = csv.writer(f)
            if not existing or last_header != header:
                w.writerow(header)
            w.writerow([row[k] for k in header])

    def _last_header(self) -> Optional[list[str]]:
        if not self.csv_path.exists():
            return None
        last = None
        for line in self.csv_path.read_text().splitlines():
            if line.startswith("step,"):
                last = line.split(",")
        return last


def _progress(total: int, start: int, enabled: bool) -> Optional[keras.utils.Progbar]:
    if not enabled:
        return None
    bar = keras.utils.Progbar(total, unit_name="step", stateful_metrics=None)
    bar.update(start)
    return bar


def _validator(model: keras.Model, config: Config, data_dir: Path, out_dir: Path,
               enabled: bool) -> Callable[[int], None]:
    """Periodic evaluation on the validation splits → `validation.csv` (long format) and TensorBoard.

    The network's own evaluation (`registry`), with the run's `au_threshold` as in every other evaluation of the run.
    """
    if not enabled:
        return lambda step: None
    evaluate = registry.spec(config.model).evaluate
    writer = tf.summary.create_file_writer(str(out_dir / "tb" / "validation"))
    path = out_dir / "validation.csv"

    def validate(step: int) -> None:
        results = evaluate(model, data_dir, "validation", config)
        rows = [(db, k, v) for db, scores in results.items() for k, v in scores.items()
                if not k.startswith("n_") and isinstance(v, (int, float))]
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "database", "metric", "value"])
            w.writerows([(step, db, k, v) for db, k, v in rows])
        with writer.as_default(step=step):
            for db, k, v in rows:
                tf.summary.scalar(f"{db}/{k}", v)
        writer.flush()
        log.info("validation at step %d: %s", step, {f"{db}/{k}": round(v, 3) for db, k, v in rows})

    return validate


def default_out_dir() -> Path:
    """runs/<timestamp>: a fresh folder per run, so two runs never mix checkpoints."""
    return Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def latest_run_dir(root: Path = Path("runs")) -> Optional[Path]:
    """The newest folder under `root` holding a checkpoint (what `--resume` without `--out` continues)."""
    found = [p for p in root.glob("*") if tf.train.latest_checkpoint(str(p / CHECKPOINT_DIR))]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# === Training ===

@dataclasses.dataclass
class TrainResult:
    """What `train` hands back: the trained model and where it wrote things."""

    model: keras.Model
    out_dir: Path
    step: int
    last_losses: dict[str, float]
    chief: bool = True


def train(config: Config, data_dir: str | Path, out_dir: str | Path, *, resume: bool = False,
          strategy: Optional[tf.distribute.Strategy] = None, verbose: bool = True) -> TrainResult:
    """Train `config.model` for `config.steps` (or epochs) steps, checkpointing into `out_dir`; see the module
    docstring."""
    # === Logging and output folder ===
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    spec = registry.spec(config.model)
    strategy = strategy or distribute.choose_strategy()
    chief = distribute.is_chief(strategy)
    ckpt_dir = distribute.worker_dir(out_dir, strategy) / CHECKPOINT_DIR
    latest = tf.train.latest_checkpoint(str(out_dir / CHECKPOINT_DIR))
    if latest and not resume:
        raise FileExistsError(f"{out_dir} already holds checkpoints ({latest}). Pass --resume to continue "
                              "that run, or choose another --out.")
    if resume and not latest:
        log.info("--resume: no checkpoint in %s, starting from scratch", out_dir / CHECKPOINT_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    if chief:
        _check_saved_config(config, out_dir / CONFIG_FILE, resume and latest is not None)
        config.save(out_dir / CONFIG_FILE)
    log.info("%s: strategy %s with %d replica(s); chief=%s; out=%s", config.model, type(strategy).__name__,
             strategy.num_replicas_in_sync, chief, out_dir)
    keras.utils.set_random_seed(config.draw_seed)
    shard_check.SKIPPED.reset()    # counts of corrupt records skipped (--skip-corrupt-records) in this run

    total_steps = registry.total_steps(config, data_dir)
    kind = registry.kind(config)
    au_pos_weight = _au_pos_weight(config, data_dir, out_dir if chief else None) if kind == "frames" else None

    # === Model, optimizer, loss, checkpoint (everything with variables inside the scope) ===
    with strategy.scope():
        model = spec.build(config)   # FaceBehaviorNet loads --vgg-face-weights when given, else says so
        loss_fn = spec.make_loss(config, model, au_pos_weight)
        own = loss_variables(loss_fn)
        variables = list(model.trainable_variables) + own
        optimizer = make_optimizer(config, total_steps, no_decay=tuple(own))
        optimizer.build(variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = make_checkpoint(model, optimizer, step_var, own)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=config.keep_checkpoints)

    # === Checkpoint restore ===
    if resume and latest:
        restore_checkpoint(checkpoint, latest)
        log.info("Resumed from %s at step %d", latest, int(step_var.numpy()))
    start = int(step_var.numpy())

    # === Input ===
    # The input pipeline is not checkpointed: its state is the shuffle buffers
    # (hundreds of MB of decoded images at the paper's sizes). A resumed run
    # reshuffles from a seed that includes the step, so it does not replay the
    # first batches of the interrupted run. Its batches therefore differ from
    # those an uninterrupted run would have drawn, and so do its final weights
    # (the weights, optimizer state and dropout RNG state are restored exactly).
    data_config = dataclasses.replace(config, seed=config.draw_seed + start, restart=0)
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: registry.train_dataset(data_dir, data_config, input_context=ctx))
    iterator = iter(dataset)
    shards = (fbn_data.shard_files(data_dir, "train", config.task_set) if kind == "frames" else
              _sequence_shards(config, data_dir))

    def next_batch(step: int):
        try:
            return next(iterator)
        except tf.errors.DataLossError as err:     # names an offset, not a file: find the shard
            raise shard_check.corrupt_shard_error(err, shards, data_dir, f"training at step {step}") from None

    # === Update step ===
    hooks = spec.update_hooks(model) if spec.update_hooks is not None else None
    train_step = make_train_step(model, loss_fn, optimizer, strategy, variables, hooks)

    # === Loop ===
    validate = _validator(model, config, data_dir, out_dir, enabled=chief and config.eval_every > 0)
    values = run_loop(lambda step: train_step(next_batch(step)), config, out_dir, start, total_steps,
                      step_var, manager, validate=validate, images_per_step=registry.frames_per_step(config),
                      chief=chief, verbose=verbose)

    # === Final model and config ===
    if config.skip_corrupt_records and chief:
        log.info("Corrupt records skipped: %d (per shard in %s)", shard_check.SKIPPED.total(),
                 shard_check.SKIPPED.write(out_dir))
    if chief:
        model.save(out_dir / MODEL_FILE)
        config.save(out_dir / CONFIG_FILE)
        log.info("Wrote %s and %s", out_dir / MODEL_FILE, out_dir / CONFIG_FILE)
    elif ckpt_dir.exists():
        tf.io.gfile.rmtree(str(ckpt_dir.parent))   # a non-chief's scratch copy
    return TrainResult(model=model, out_dir=out_dir, step=max(start, total_steps), last_losses=values,
                       chief=chief)


def _sequence_shards(config: Config, data_dir: Path) -> list[str]:
    from fbn_keras import sequences

    return sequences.sequence_files(data_dir, registry.sequence_databases(config, data_dir), "train")


def run_loop(step_fn: Callable[[int], tuple[Mapping[str, Any], Any]], config: Config, out_dir: Path, start: int,
             total_steps: int, step_var: tf.Variable, manager: tf.train.CheckpointManager, *,
             validate: Callable[[int], None] = lambda step: None, images_per_step: int = 0, chief: bool = True,
             verbose: bool = True) -> dict[str, float]:
    """The one training loop: steps `start + 1 … total_steps` of `step_fn(step) -> (global losses, applied)`.

    Around each step: the NaN guard (a non-finite term, or an update skipped for
    non-finite gradients, stops the run naming the term and the last
    checkpoint), the step counter, the progress bar and the per-interval log,
    CSV and TensorBoard rows (`config.log_every`), checkpoints
    (`config.checkpoint_every` and the last step) and validation
    (`config.eval_every`). Every trainer of the package runs through it; what
    a step does (one optimizer, or a GAN's two) is `step_fn`'s business.
    Returns the last step's losses.
    """
    metrics = MetricsLog(out_dir, enabled=chief)
    # A live bar on a terminal; in a log file (nohup) the per-interval lines below carry the progress.
    bar = _progress(total_steps, start, enabled=chief and verbose and sys.stdout.isatty())
    values: dict[str, float] = {}
    warned_collapse = False   # warn once per run, not at every interval
    t_start = time.perf_counter()
    if start >= total_steps:
        log.info("Already at step %d of %d: nothing to train", start, total_steps)
    for step in range(start + 1, total_steps + 1):
        losses, applied = step_fn(step)
        values = {k: float(v) for k, v in losses.items()}
        bad = first_non_finite(values) or (None if bool(applied) else "gradients")
        if bad:
            raise NonFiniteLossError(
                f"Non-finite loss at step {step}: term {bad!r} = {values.get(bad, float('nan'))} "
                f"(all terms: {values}). The update was skipped, so the weights hold no NaN; the last "
                f"checkpoint is {manager.latest_checkpoint}. Check the labels of this run's data.")
        step_var.assign(step)
        metrics.add(values)
        if bar is not None:
            bar.update(step, values=list(values.items()))
        if step % config.log_every == 0 or step == total_steps:
            row = metrics.flush(step, images_per_step)
            if config.skip_corrupt_records and chief:
                shard_check.SKIPPED.write(out_dir)
            per_step = (time.perf_counter() - t_start) / (step - start)
            if verbose and chief:
                log.info("step %d/%d (%.1f s/step, %.0f s left): %s", step, total_steps, per_step,
                         per_step * (total_steps - step),
                         {k: round(v, 4) for k, v in row.items() if k != "step"})
            if chief and not warned_collapse and constant_va_output(row):
                warned_collapse = True
                log.warning("step %d: the VA loss has been exactly 1 (CCC 0) over the last %d steps: the VA "
                            "output is constant, so the network has likely collapsed (dead ReLUs) and will "
                            "not recover. Restart with another seed or a lower --learning-rate.",
                            step, config.log_every)
        if step % config.checkpoint_every == 0 or step == total_steps:
            manager.save(checkpoint_number=step)
        if config.eval_every > 0 and step % config.eval_every == 0 and step < total_steps:
            validate(step)
    return values


def _au_pos_weight(config: Config, data_dir: Path, out_dir: Optional[Path]) -> Optional[np.ndarray]:
    """`--au-pos-weight balanced`: per-AU weights from the training labels' counts, logged and
    written to `out_dir/au_pos_weight.json`; None (eq. 1's plain BCE) otherwise."""
    power = AU_POS_WEIGHT_POWERS[config.au_pos_weight]
    if power is None or "au" not in config.task_set:
        return None
    positives, annotated = fbn_data.au_label_counts(data_dir, skip_corrupt=config.skip_corrupt_records)
    weights = balanced_au_pos_weight(positives, annotated, config.au_pos_weight_max, power=power)
    table = {f"AU{au}": {"positives": int(p), "annotated": int(n), "pos_weight": round(float(w), 4)}
             for au, p, n, w in zip(taxonomy.AUS, positives, annotated, weights)}
    log.info("AU positive weights (%s, clipped to %g): %s", config.au_pos_weight, config.au_pos_weight_max,
             {k: v["pos_weight"] for k, v in table.items() if v["annotated"]})
    if out_dir is not None:
        (out_dir / AU_POS_WEIGHT_FILE).write_text(json.dumps(table, indent=1) + "\n")
    return weights


def _check_saved_config(config: Config, path: Path, resuming: bool) -> None:
    """On resume, warn about every field that differs from the interrupted run's config."""
    if not (resuming and path.exists()):
        return
    saved = json.loads(path.read_text())
    diff = {k: (saved.get(k), v) for k, v in config.to_dict().items() if saved.get(k) != v}
    if diff:
        log.warning("Resuming with a config that differs from %s: %s", path, diff)


# === Command line ===

def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog=cli.prog("fbn_keras.train"), description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="built TFRecord folder (default: the synthetic test-bed, built on first use)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>; with --resume, "
                        "the newest run under runs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--no-eval", dest="evaluate", action="store_false",
                        help="skip the final evaluation on the test splits")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="split of the final evaluation (default: test)")
    add_config_flags(parser)
    # The no-argument run is the CPU demo; `--preset paper` is for real data on a GPU.
    parser.set_defaults(preset="small")
    return parser


@cli.entry_point("fbn_keras.train")
def main(argv: Optional[list[str]] = None) -> int:
    from fbn_keras.evaluate import setup_logging

    setup_logging()
    args = build_parser().parse_args(argv)
    with cli.user_errors(ValueError):
        config = config_from_args(args)
    spec = registry.spec(config.model)
    t0 = time.perf_counter()
    if args.data is not None and registry.kind(config) == "frames":
        cli.check_data_dir(args.data, config.task_set)
    if args.data is None:
        args.data = str(registry.default_data(config))
        log.info("Synthetic test-bed ready in %s (%.0f s)", args.data, time.perf_counter() - t0)
    out = Path(args.out) if args.out else (latest_run_dir() if args.resume else None) or default_out_dir()
    try:
        with cli.user_errors(ValueError):
            result = train(config, args.data, out, resume=args.resume)
    except NonFiniteLossError as err:
        log.error("%s", err)
        return 2
    except shard_check.CorruptShardError as err:
        log.error("%s", err)
        return 1
    if args.evaluate and result.chief:
        from fbn_keras.evaluate import write_results
        try:
            results = spec.evaluate(result.model, Path(args.data), args.split, config)
        except shard_check.CorruptShardError as err:
            log.error("%s", err)
            return 1
        write_results(results, result.out_dir, args.split, config)
        print(spec.format(results, config))
    log.info("Done in %.0f s (data, training and evaluation)", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
