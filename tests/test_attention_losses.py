"""Eq. 6 of the multi-task learning and generation paper (Section IV-C): α·L'_VA + β·L_expr, each option
against values worked out by hand, masking per frame, and the global-batch form under tf.distribute."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras.attention_losses import AttentionLoss, expression_mse_loss, va_mse_loss
from fbn_keras.config import preset

E2 = math.exp(2.0)


def _batch():
    """B = 2 windows of T = 3 frames.

    window 0: f0 VA + expression 2 (logits all 0); f1 no VA (NaN label), no expression;
              f2 padding (frame_mask 0) whose labels claim VA and expression 1: must not count.
    window 1: f0 VA + expression 0 (logits 2·e_0); f1 VA only; f2 nothing.
    """
    va = np.array([[[0.5, -0.5], [np.nan, np.nan], [9.0, 9.0]],
                   [[0.0, 0.0], [-0.3, 0.1], [0.0, 0.0]]], np.float32)
    va_mask = np.array([[1, 0, 1], [1, 1, 0]], np.float32)
    expr = np.array([[2, -1, 1], [0, -1, -1]], np.int32)
    frame_mask = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
    pred = np.array([[[0.5, 0.5], [3.0, 3.0], [-7.0, 4.0]],
                     [[0.2, -0.4], [-0.3, 0.4], [1.0, 1.0]]], np.float32)
    logits = np.zeros((2, 3, 7), np.float32)
    logits[0, 2] = [5, -5, 3, 0, 0, 0, 0]          # padding frame: arbitrary
    logits[1, 0, 0] = 2.0
    logits[1, 1] = [1, 2, 3, 4, 5, 6, 7]             # unlabelled: arbitrary
    return ({"va": pred, "expr": logits},
            {"va": va, "va_mask": va_mask, "expr": expr, "frame_mask": frame_mask})


# Labelled VA frames: (y, ŷ) = ([.5, −.5], [.5, .5]), ([0, 0], [.2, −.4]), ([−.3, .1], [−.3, .4]).
VA_MSE = ((0 + 1.0) / 2 + (0.04 + 0.16) / 2 + (0 + 0.09) / 2) / 3                  # 0.215
# Labelled expression frames: class 2 with logits 0 (softmax 1/7 each); class 0 with logits 2·e_0
# (softmax e²/(e²+6) on class 0, 1/(e²+6) on the others).
CE = (math.log(7.0) + (-2.0 + math.log(E2 + 6.0))) / 2
MSE_LOGITS = (1.0 / 7 + (2.0 - 1.0) ** 2 / 7) / 2
MSE_SOFTMAX = (((1 / 7 - 1) ** 2 + 6 * (1 / 7) ** 2) / 7
               + ((E2 / (E2 + 6) - 1) ** 2 + 6 * (1 / (E2 + 6)) ** 2) / 7) / 2


def _ccc_loss(y, p):
    """1 − mean CCC, textbook population formula over the given rows."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    my, mp = y.mean(0), p.mean(0)
    den = y.var(0) + p.var(0) + (my - mp) ** 2 + 1e-8
    return 1.0 - (2 * ((y - my) * (p - mp)).mean(0) / den).mean()


Y = [[0.5, -0.5], [0.0, 0.0], [-0.3, 0.1]]
P = [[0.5, 0.5], [0.2, -0.4], [-0.3, 0.4]]


def _loss(**overrides):
    return AttentionLoss(preset("tiny", **overrides))


def test_hand_constants():
    assert VA_MSE == pytest.approx(0.215)
    assert ((1 / 7 - 1) ** 2 + 6 * (1 / 7) ** 2) / 7 == pytest.approx(6 / 49)   # uniform softmax, one-hot target


@pytest.mark.parametrize("va_loss, expr_loss, want_va, want_expr", [
    ("ccc", "ce", _ccc_loss(Y, P), CE),
    ("ccc", "mse_softmax", _ccc_loss(Y, P), MSE_SOFTMAX),
    ("ccc", "mse_logits", _ccc_loss(Y, P), MSE_LOGITS),
    ("mse", "ce", VA_MSE, CE),
    ("mse", "mse_softmax", VA_MSE, MSE_SOFTMAX),
    ("mse", "mse_logits", VA_MSE, MSE_LOGITS),
])
def test_every_option_against_hand_values(va_loss, expr_loss, want_va, want_expr):
    outputs, labels = _batch()
    got = _loss(attn_va_loss=va_loss, attn_expr_loss=expr_loss, attn_alpha=0.25, attn_beta=0.75)(outputs, labels)
    assert sorted(got) == ["expr", "total", "va"]
    assert float(got["va"]) == pytest.approx(want_va, abs=1e-5)
    assert float(got["expr"]) == pytest.approx(want_expr, abs=1e-5)
    assert float(got["total"]) == pytest.approx(0.25 * want_va + 0.75 * want_expr, abs=1e-5)


def test_paper_defaults_are_ccc_ce_half_half():
    cfg = preset("paper")
    assert (cfg.attn_va_loss, cfg.attn_expr_loss, cfg.attn_alpha, cfg.attn_beta) == ("ccc", "ce", 0.5, 0.5)
    outputs, labels = _batch()
    got = AttentionLoss(cfg)(outputs, labels)
    assert float(got["total"]) == pytest.approx(0.5 * _ccc_loss(Y, P) + 0.5 * CE, abs=1e-5)


def test_single_task_corners_of_eq6():
    outputs, labels = _batch()
    only_expr = _loss(attn_alpha=0.0, attn_beta=1.0)(outputs, labels)
    assert float(only_expr["total"]) == pytest.approx(CE, abs=1e-5)
    only_va = _loss(attn_alpha=1.0, attn_beta=0.0, attn_va_loss="mse")(outputs, labels)
    assert float(only_va["total"]) == pytest.approx(VA_MSE, abs=1e-5)


def test_sequence_ccc_scope():
    """Per window: window 0 has one labelled frame (CCC 0 by the ε guard: loss 1), window 1 two."""
    outputs, labels = _batch()
    got = _loss(ccc_scope="sequence")(outputs, labels)
    assert float(got["va"]) == pytest.approx((1.0 + _ccc_loss(Y[1:], P[1:])) / 2, abs=1e-5)


def test_nothing_labelled_gives_zero():
    outputs, labels = _batch()
    labels = {**labels, "frame_mask": np.zeros((2, 3), np.float32)}
    for va_loss, expr_loss in (("ccc", "ce"), ("mse", "mse_softmax"), ("mse", "mse_logits")):
        got = _loss(attn_va_loss=va_loss, attn_expr_loss=expr_loss)(outputs, labels)
        assert float(got["va"]) == 0.0 and float(got["expr"]) == 0.0 and float(got["total"]) == 0.0


def test_pure_functions_hand_values():
    assert float(va_mse_loss(np.array([[1.0, 0.0], [5.0, 5.0]], np.float32), np.array([1, 0], np.float32),
                             np.array([[0.0, 2.0], [0.0, 0.0]], np.float32))) == pytest.approx((1 + 4) / 2)
    logits = np.zeros((2, 7), np.float32)
    assert float(expression_mse_loss(np.array([3, -1]), logits, after_softmax=False)) == pytest.approx(1 / 7)
    assert float(expression_mse_loss(np.array([3, -1]), logits, after_softmax=True)) == pytest.approx(6 / 49)


def test_rejects_bad_options_and_labels():
    cfg = preset("tiny")
    cfg.attn_va_loss = "l1"
    with pytest.raises(ValueError, match="attn_va_loss must be one of .*Received: attn_va_loss='l1'"):
        AttentionLoss(cfg)
    cfg = preset("tiny")
    cfg.attn_expr_loss = "hinge"
    with pytest.raises(ValueError, match="attn_expr_loss must be one of"):
        AttentionLoss(cfg)
    with pytest.raises(ValueError, match=r"attn_alpha must be in \[0, 1\]"):
        preset("tiny", attn_alpha=1.5)
    with pytest.raises(ValueError, match="expression labels must be -1"):
        expression_mse_loss(np.array([9]), np.zeros((1, 7), np.float32), after_softmax=True)
    outputs, labels = _batch()
    with pytest.raises(KeyError, match="labels lacks"):
        _loss()(outputs, {k: v for k, v in labels.items() if k != "frame_mask"})


# === Global batch under tf.distribute ===

def _run(strategy, loss_fn):
    """(loss terms, gradient) with outputs = x @ w, window 0 on replica 0 and window 1 on replica 1."""
    outputs, labels = _batch()
    x = np.random.default_rng(4).normal(size=(2, 3, 4)).astype(np.float32)
    w0 = np.random.default_rng(5).normal(scale=0.5, size=(4, 9)).astype(np.float32)
    with strategy.scope():
        w = tf.Variable(w0)
    n = strategy.num_replicas_in_sync
    data = (x, labels)
    parts = ([tf.nest.map_structure(lambda a: a[:1], data), tf.nest.map_structure(lambda a: a[1:], data)]
             if n == 2 else [data])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group])

    @tf.function
    def step(batch):
        def replica_fn(d):
            xb, lb = d
            with tf.GradientTape() as tape:
                z = tf.einsum("btf,fk->btk", xb, w)
                terms = loss_fn({"va": z[..., :2], "expr": z[..., 2:]}, lb)
                vec = tf.stack([terms["va"], terms["expr"], terms["total"]])
            return vec, tape.gradient(terms["total"], w)
        vec, grad = strategy.run(replica_fn, args=(batch,))
        return strategy.reduce("SUM", vec, axis=None), strategy.reduce("SUM", grad, axis=None)

    vec, grad = step(per_replica)
    return vec.numpy(), grad.numpy()


@pytest.mark.parametrize("va_loss, expr_loss", [("ccc", "ce"), ("mse", "mse_softmax"), ("ccc", "mse_logits")])
def test_replica_shares_sum_to_the_global_loss(two_cpu_strategy, one_cpu_strategy, va_loss, expr_loss):
    loss = _loss(attn_va_loss=va_loss, attn_expr_loss=expr_loss, attn_alpha=0.3, attn_beta=0.6)
    vec2, grad2 = _run(two_cpu_strategy, loss)
    vec1, grad1 = _run(one_cpu_strategy, loss)
    assert np.all(np.isfinite(vec1)) and np.all(vec1 > 0)
    np.testing.assert_allclose(vec2, vec1, atol=1e-5)
    np.testing.assert_allclose(grad2, grad1, atol=1e-5)
    assert np.abs(grad1).max() > 1e-3
