"""Global-batch losses under tf.distribute: 2 replicas on uneven halves equal 1 device on the whole batch.

Each replica returns its share; strategy.reduce(SUM) of the shares is the loss,
and the SUM of per-replica gradients (what the optimizer applies) is the
gradient of the global-batch loss.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import losses
from fbn_keras.config import preset

N, SPLIT, FEATURES = 8, 5, 3          # replica 0 gets 5 rows, replica 1 gets 3


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, FEATURES)).astype(np.float32)
    y_va = rng.uniform(-1, 1, (N, 2)).astype(np.float32)
    # halves with different label means: per-replica CCC then differs from the global one
    y_va[:SPLIT] += 0.4
    y_va[SPLIT:] -= 0.4
    m_va = np.array([1, 1, 1, 0, 1, 1, 1, 0], np.float32)
    y_va[3] = np.nan                                       # masked NaN must not leak
    y_expr = np.array([5, -1, 4, 2, -1, 6, -1, 0], np.int32)
    y_au = (rng.random((N, 17)) > 0.5).astype(np.float32)
    m_au = np.zeros((N, 17), np.float32)
    m_au[[1, 4, 6]] = 1.0
    m_au[0, :5] = 1.0
    return x, {"va": y_va, "va_mask": m_va, "expr": y_expr, "au": y_au, "au_mask": m_au}


def _halves(tree):
    return [tf.nest.map_structure(lambda a: a[:SPLIT], tree), tf.nest.map_structure(lambda a: a[SPLIT:], tree)]


def _init_weights():
    return np.random.default_rng(3).normal(scale=0.5, size=(FEATURES, 26)).astype(np.float32)


def _outputs(x, w):
    z = tf.matmul(x, w)
    return {"va": z[:, :2], "expr": z[:, 2:9], "au": z[:, 9:]}


def _run(strategy, loss_fn):
    """(loss, grad) under `strategy`, each replica fed its own rows.

    loss_fn(outputs, labels) returns a scalar or a vector of terms; the
    gradient is that of the last entry w.r.t. the shared weights.
    """
    x, labels = _data()
    with strategy.scope():
        w = tf.Variable(_init_weights())
    n = strategy.num_replicas_in_sync
    parts = _halves((x, labels)) if n == 2 else [(x, labels)]
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group])

    @tf.function
    def step(batch):
        def replica_fn(data):
            xb, lb = data
            with tf.GradientTape() as tape:
                loss = loss_fn(_outputs(xb, w), lb)
                last = tf.reshape(loss, (-1,))[-1]
            return loss, tape.gradient(last, w)
        loss, grad = strategy.run(replica_fn, args=(batch,))
        return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", grad, axis=None)

    loss, grad = step(per_replica)
    return loss.numpy(), grad.numpy()


def _ccc_loss(out, lb):
    return losses.ccc_loss(lb["va"], lb["va_mask"], out["va"])


def _hand_ccc_loss(y, p):
    """1 − mean CCC from the textbook formula, numpy float64."""
    y, p = y.astype(np.float64), p.astype(np.float64)
    my, mp = y.mean(0), p.mean(0)
    ccc = 2 * ((y - my) * (p - mp)).mean(0) / (y.var(0) + p.var(0) + (my - mp) ** 2)
    return 1 - ccc.mean()


def test_global_ccc_matches_one_device_and_differs_from_per_replica(two_cpu_strategy, one_cpu_strategy):
    loss2, grad2 = _run(two_cpu_strategy, _ccc_loss)
    loss1, grad1 = _run(one_cpu_strategy, _ccc_loss)
    x, lb = _data()
    pred = (x @ _init_weights())[:, :2]
    keep = lb["va_mask"] > 0
    want = _hand_ccc_loss(lb["va"][keep], pred[keep])
    assert loss1 == pytest.approx(want, abs=1e-5)
    assert loss2 == pytest.approx(want, abs=1e-5)
    np.testing.assert_allclose(grad2, grad1, atol=1e-5)
    assert np.abs(grad1).max() > 1e-3
    # the naive alternative: each replica's own CCC, averaged, is a different number
    halves = [(lb["va"][s][keep[s]], pred[s][keep[s]]) for s in (slice(0, SPLIT), slice(SPLIT, N))]
    naive = np.mean([_hand_ccc_loss(y, p) for y, p in halves])
    assert abs(naive - want) > 0.05, (naive, want)
    # and its gradient, from a CCC of each replica's local rows only (no all-reduce), differs too
    _, grad_naive = _run(two_cpu_strategy, _local_ccc_loss)
    assert np.abs(grad_naive - grad1).max() > 1e-3


def _local_ccc_loss(out, lb):
    """The naive per-replica loss: CCC of this replica's rows, ÷ 2 replicas."""
    mask = lb["va_mask"] > 0
    y = tf.boolean_mask(lb["va"], mask)
    p = tf.boolean_mask(out["va"], mask)
    my, mp = tf.reduce_mean(y, 0), tf.reduce_mean(p, 0)
    cov = tf.reduce_mean((y - my) * (p - mp), 0)
    den = tf.math.reduce_variance(y, 0) + tf.math.reduce_variance(p, 0) + (my - mp) ** 2
    return (1 - tf.reduce_mean(2 * cov / den)) / 2.0


def test_multitask_loss_matches_one_device(two_cpu_strategy, one_cpu_strategy):
    """Every term of the fullest configuration, and the gradient of the total."""
    mtl = losses.MultiTaskLoss(preset("tiny", coupling="coann+soft+dm"))
    names = mtl.term_names() + ("total",)
    assert names == ("expr", "au", "va", "soft", "dm", "total")

    def loss_fn(out, lb):
        values = mtl(out, lb)
        return tf.stack([values[t] for t in names])

    vec2, grad2 = _run(two_cpu_strategy, loss_fn)
    vec1, grad1 = _run(one_cpu_strategy, loss_fn)
    assert np.all(np.isfinite(vec1)) and np.all(vec1 > 0)
    np.testing.assert_allclose(vec2, vec1, atol=1e-5)
    np.testing.assert_allclose(grad2, grad1, atol=1e-5)
    assert np.abs(grad1).max() > 1e-3


def test_masked_mean_uses_global_count(two_cpu_strategy):
    """Expression loss with 2 labelled rows on replica 0 and 1 on replica 1: every row weighs 1/3."""
    logits = np.zeros((N, 7), np.float32)
    logits[0, 5] = 2.0
    labels = np.array([5, -1, 0, -1, -1, 3, -1, -1], np.int32)
    parts = _halves((logits, labels))
    per_replica = two_cpu_strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group])

    @tf.function
    def step(batch):
        loss = two_cpu_strategy.run(lambda d: losses.expression_loss(d[1], d[0]), args=(batch,))
        return two_cpu_strategy.reduce("SUM", loss, axis=None)

    want = ((math.log(math.exp(2) + 6) - 2) + 2 * math.log(7)) / 3
    assert float(step(per_replica)) == pytest.approx(want, abs=1e-6)
