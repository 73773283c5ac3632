"""2 replicas (the CPU split into 2 logical devices) vs 1 device on the same global batch: same losses, same step."""

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import taxonomy
from fbn_keras.config import preset
from fbn_keras.train import make_train_step


def _global_batch(n_per_task=6, size=96, seed=0):
    """A fixed global batch: VA rows, then AU rows, then expression rows, each with only its own labels."""
    rng = np.random.default_rng(seed)
    n = 3 * n_per_task
    images = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    va = np.zeros((n, 2), np.float32)
    va_mask = np.zeros((n,), np.float32)
    va[:n_per_task] = rng.uniform(-1, 1, (n_per_task, 2))
    va_mask[:n_per_task] = 1
    au = np.zeros((n, taxonomy.NUM_AUS), np.float32)
    au_mask = np.zeros_like(au)
    au[n_per_task:2 * n_per_task] = rng.integers(0, 2, (n_per_task, taxonomy.NUM_AUS))
    au_mask[n_per_task:2 * n_per_task] = taxonomy.au_mask_for(taxonomy.DATABASES["disfa"].aus)
    expr = np.full((n,), -1, np.int64)
    expr[2 * n_per_task:] = rng.integers(0, taxonomy.NUM_EXPRESSIONS, n_per_task)
    labels = {"va": va, "va_mask": va_mask, "expr": expr, "au": au, "au_mask": au_mask}
    return images, labels


def _one_step(strategy, config, init_weights, images, labels):
    """Build the model in `strategy`'s scope with `init_weights`, take one step; (losses, new weights)."""
    import keras

    from fbn_keras.losses import MultiTaskLoss
    from fbn_keras.model import build_facebehaviornet

    with strategy.scope():
        model = build_facebehaviornet(config)
        if init_weights is not None:
            model.set_weights(init_weights)
        # SGD, not Adam: Adam's first step is ±lr whatever the gradient's scale, which would hide a
        # gradient off by the replica count; SGD's step is proportional to the gradient.
        optimizer = keras.optimizers.SGD(config.learning_rate)
        optimizer.build(model.trainable_variables)
        loss_fn = MultiTaskLoss(config)
    before = model.get_weights()
    step = make_train_step(model, loss_fn, optimizer, strategy)
    replicas = strategy.num_replicas_in_sync
    n = images.shape[0]
    bounds = np.linspace(0, n, replicas + 1).astype(int)

    # Deterministic split: replica r gets rows bounds[r]:bounds[r+1] of the global batch, so a
    # replica sees a mix of tasks in unequal numbers, as with the paper's 401/247/103.
    def shard(ctx):
        lo, hi = bounds[ctx.replica_id_in_sync_group], bounds[ctx.replica_id_in_sync_group + 1]
        return tf.constant(images[lo:hi]), {k: tf.constant(v[lo:hi]) for k, v in labels.items()}

    inputs = strategy.experimental_distribute_values_from_function(shard)
    losses, applied = step(inputs)
    assert bool(applied)
    return {k: float(v) for k, v in losses.items()}, before, model.get_weights()


def test_two_replicas_match_one_device(two_cpu_strategy, one_cpu_strategy):
    # Dropout 0 so the two runs see the same network; lr large enough that a step moves the weights visibly.
    # Every coupling term on (coann, soft, dm), so each of their all-reduced statistics is checked;
    # 32×32 images keep the five pools of the VGG trunk and make the test quick.
    config = preset("tiny", dropout=0.0, coupling="coann+soft+dm", learning_rate=0.5, image_size=32)
    images, labels = _global_batch(size=32)
    losses1, init, after1 = _one_step(one_cpu_strategy, config, None, images, labels)
    losses2, init2, after2 = _one_step(two_cpu_strategy, config, init, images, labels)
    for a, b in zip(init, init2):
        np.testing.assert_array_equal(a, b)
    assert set(losses1) == set(losses2) == {"total", "va", "au", "expr", "soft", "dm"}
    for name in losses1:
        assert losses2[name] == pytest.approx(losses1[name], rel=1e-5, abs=1e-6), name
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(after1, init))
    print("largest weight change", moved, "losses", losses1)
    assert moved > 1e-3   # the step did something, so equal weights below are evidence
    for a, b in zip(after1, after2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
