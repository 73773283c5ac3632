"""BatchNorm trunks under 2 replicas (the CPU split in 2 logical devices) vs 1 device on the same global batch.

ResNet-50 and DenseNet-121 come from keras.applications with per-replica
BatchNormalization; `backbones.synchronized_batchnorm` makes their statistics
those of the global batch. A tiny network with the keras.applications call
signature stands in for them here, built through the same `_application_trunk`
path, so the test takes seconds.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import backbones
from fbn_keras.config import preset
from fbn_keras.losses import MultiTaskLoss
from fbn_keras.train import make_train_step
from test_distributed_train import _global_batch as multitask_batch  # noqa: E402

SIZE = 32
N_PER_TASK = 5          # global batch 15: replica 0 gets 7 rows, replica 1 gets 8


def _tiny_bn_application(include_top, weights, input_shape, pooling, name):
    """Two conv → BatchNorm → ReLU blocks, called like keras.applications.ResNet50."""
    assert not include_top and weights is None and pooling is None
    x = inputs = keras.Input(input_shape)
    for i, filters in enumerate((4, 6)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.5, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name=name)


def _tiny_trunk(sync: bool):
    def trunk(inputs, width=1.0, pooling="avg"):
        if sync:
            return backbones._application_trunk(_tiny_bn_application, "resnet50", inputs, width, pooling)
        net = _tiny_bn_application(False, None, tuple(inputs.shape[1:]), None, "resnet50")
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(net(inputs))
    return trunk


def _global_batch():
    """VA rows, AU rows, expression rows; the halves differ in brightness so per-replica statistics differ."""
    images, labels = multitask_batch(n_per_task=N_PER_TASK, size=SIZE, seed=0)
    half = len(images) // 2
    images[:half] = np.clip(images[:half] * 0.5 + 0.4, -1, 1)
    return images, labels


def _one_step(strategy, config, init_weights):
    """Build the model in `strategy`'s scope, set `init_weights`, take one SGD step: (losses, before, after)."""
    from fbn_keras.model import build_facebehaviornet

    images, labels = _global_batch()
    with strategy.scope():
        model = build_facebehaviornet(config)
        if init_weights is not None:
            model.set_weights(init_weights)
        optimizer = keras.optimizers.SGD(config.learning_rate)
        optimizer.build(model.trainable_variables)
        loss_fn = MultiTaskLoss(config)
    before = model.get_weights()
    step = make_train_step(model, loss_fn, optimizer, strategy)
    bounds = np.linspace(0, len(images), strategy.num_replicas_in_sync + 1).astype(int)

    def shard(ctx):
        lo, hi = bounds[ctx.replica_id_in_sync_group], bounds[ctx.replica_id_in_sync_group + 1]
        return tf.constant(images[lo:hi]), {k: tf.constant(v[lo:hi]) for k, v in labels.items()}

    losses, applied = step(strategy.experimental_distribute_values_from_function(shard))
    assert bool(applied)
    return {k: float(v) for k, v in losses.items()}, before, model.get_weights(), model


def _moving_stats(model):
    trunk = model.get_layer("resnet50")
    return [np.asarray(w) for layer in trunk.layers if isinstance(layer, keras.layers.BatchNormalization)
            for w in (layer.moving_mean, layer.moving_variance)]


def _compare(sync, monkeypatch, one, two):
    monkeypatch.setitem(backbones.BACKBONES, "resnet50", _tiny_trunk(sync))
    config = preset("tiny", backbone="resnet50", dropout=0.0, coupling="none", learning_rate=0.5,
                    image_size=SIZE)
    losses1, init, after1, model1 = _one_step(one, config, None)
    losses2, _, after2, model2 = _one_step(two, config, init)
    return losses1, losses2, init, after1, after2, _moving_stats(model1), _moving_stats(model2)


def test_application_trunk_batchnorm_is_synchronized():
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, backbones._application_trunk(_tiny_bn_application, "resnet50", inputs, 1.0, "avg"))
    bns = [layer for layer in model.get_layer("resnet50").layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.name for layer in bns] == ["bn0", "bn1"]
    assert all(layer.synchronized and layer.momentum == 0.5 for layer in bns)


def test_synchronized_batchnorm_two_replicas_match_one_device(monkeypatch, two_cpu_strategy, one_cpu_strategy):
    losses1, losses2, init, after1, after2, stats1, stats2 = _compare(True, monkeypatch, one_cpu_strategy,
                                                                      two_cpu_strategy)
    assert set(losses1) == {"total", "va", "au", "expr"}
    for name in losses1:
        assert losses2[name] == pytest.approx(losses1[name], rel=1e-5, abs=1e-6), name
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(after1, init)) > 1e-3   # the step moved weights
    for a, b in zip(after1, after2):          # trainable weights and the BN moving statistics
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # The moving statistics moved (momentum 0.5) and agree: they followed the global batch on both.
    assert max(float(np.max(np.abs(s - w))) for s, w in zip(stats1, stats2)) < 1e-5
    assert max(float(np.max(np.abs(s - w))) for s, w in zip(stats1, _moving_stats_init(stats1))) > 1e-2


def _moving_stats_init(stats):
    """Keras' initial moving statistics: mean 0, variance 1 (alternating mean, variance)."""
    return [np.zeros_like(s) if i % 2 == 0 else np.ones_like(s) for i, s in enumerate(stats)]


def test_unsynchronized_batchnorm_two_replicas_differ_from_one_device(monkeypatch, two_cpu_strategy,
                                                                      one_cpu_strategy):
    # The same comparison with Keras' default per-replica statistics: the losses and the moving
    # statistics are not the one-device ones, so the test above can fail.
    losses1, losses2, _, _, _, stats1, stats2 = _compare(False, monkeypatch, one_cpu_strategy, two_cpu_strategy)
    assert abs(losses2["total"] - losses1["total"]) > 1e-4
    assert max(float(np.max(np.abs(s - w))) for s, w in zip(stats1, stats2)) > 1e-3
