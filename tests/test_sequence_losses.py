"""The sequence models' loss (journal eq. 4–6, eq. 2) against numbers worked out in numpy."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import taxonomy
from fbn_keras.config import preset
from fbn_keras.sequence_losses import SequenceLoss

B, T = 2, 4
SLOTS = tuple(taxonomy.au_index(a) for a in (1, 4, 12))     # a 3-AU head


def _ccc_loss_np(y, p):
    """1 − mean CCC, textbook population formula, float64."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    my, mp = y.mean(0), p.mean(0)
    ccc = 2 * ((y - my) * (p - mp)).mean(0) / (y.var(0) + p.var(0) + (my - mp) ** 2)
    return 1 - ccc.mean()


def _bce_np(t, z):
    q = 1 / (1 + math.exp(-z))
    return -(t * math.log(q) + (1 - t) * math.log(1 - q))


def _batch():
    rng = np.random.default_rng(3)
    out = {"va": rng.normal(size=(B, T, 2)).astype(np.float32),
           "expr": rng.normal(size=(B, T, 7)).astype(np.float32),
           "au": rng.normal(size=(B, T, 3)).astype(np.float32)}
    va = rng.uniform(-1, 1, (B, T, 2)).astype(np.float32)
    va_mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], np.float32)
    frame_mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], np.float32)   # last frame of window 1 is padding
    va[0, 3] = np.nan                                                 # unlabelled: must not leak
    expr = np.array([[2, -1, 4, 0], [6, 6, -1, 3]], np.int32)         # the 3 sits on padding
    au = np.zeros((B, T, 17), np.float32)
    au_mask = np.zeros((B, T, 17), np.float32)
    return out, {"va": va, "va_mask": va_mask, "expr": expr, "au": au, "au_mask": au_mask,
                 "frame_mask": frame_mask}


def _call(config, heads, out, labels, slots=SLOTS):
    values = SequenceLoss(config, heads, slots)(out, labels)
    return {k: float(v) for k, v in values.items()}


def test_va_batch_scope_is_one_ccc_over_every_masked_frame():
    out, lb = _batch()
    keep = (lb["va_mask"] > 0) & (lb["frame_mask"] > 0)        # 3 + 3 frames; padding excluded
    want = _ccc_loss_np(lb["va"][keep], out["va"][keep])
    got = _call(preset("tiny"), ("va",), out, lb)
    assert got["va"] == pytest.approx(want, abs=1e-5)
    assert got["total"] == pytest.approx(want, abs=1e-5)
    assert set(got) == {"va", "total"}


def test_va_sequence_scope_is_the_mean_of_per_window_losses():
    out, lb = _batch()
    per = [_ccc_loss_np(lb["va"][b, :3], out["va"][b, :3]) for b in range(B)]   # 3 frames each
    got = _call(preset("tiny", ccc_scope="sequence"), ("va",), out, lb)
    assert got["va"] == pytest.approx(np.mean(per), abs=1e-5)
    batch = _call(preset("tiny"), ("va",), out, lb)["va"]
    assert abs(batch - np.mean(per)) > 1e-3                    # the two readings differ here
    # a window without any VA label is left out of the mean, not counted as 0 or 1
    lb["va_mask"][1] = 0
    got = _call(preset("tiny", ccc_scope="sequence"), ("va",), out, lb)
    assert got["va"] == pytest.approx(per[0], abs=1e-5)


def test_expression_term_is_masked_cross_entropy_over_frames():
    out, lb = _batch()
    z = out["expr"].astype(np.float64)
    frames = [(0, 0, 2), (0, 2, 4), (0, 3, 0), (1, 0, 6), (1, 1, 6)]     # (1, 3) is padding
    ce = [np.log(np.exp(z[b, t]).sum()) - z[b, t, c] for b, t, c in frames]
    got = _call(preset("tiny"), ("expr",), out, lb)
    assert got["expr"] == pytest.approx(np.mean(ce), abs=1e-5)


def _au_case():
    out, lb = _batch()
    out["au"][:] = 0.0
    out["au"][0, 0] = [2.0, -1.0, 0.5]
    au1, au4, au12 = SLOTS
    # frame (0,0): AU1 = 1, AU4 = 0 annotated; AU12 not.  frame (0,1): AU12 = 1 only.
    lb["au"][0, 0, [au1, au4]] = [1, 0]
    lb["au_mask"][0, 0, [au1, au4]] = 1
    lb["au"][0, 1, au12] = 1
    lb["au_mask"][0, 1, au12] = 1
    # an AU outside the head's slots, annotated: never read
    lb["au_mask"][1, 0, taxonomy.au_index(26)] = 1
    lb["au"][1, 0, taxonomy.au_index(26)] = 1
    # padding frame with AU labels: never read
    lb["au_mask"][1, 3, au1] = 1
    lb["au"][1, 3, au1] = np.nan
    f0 = [_bce_np(1, 2.0), _bce_np(0, -1.0)]
    f1 = [_bce_np(1, 0.0)]
    return out, lb, f0, f1


def test_au_sum_is_eq5_sum_over_aus_averaged_over_labelled_frames():
    out, lb, f0, f1 = _au_case()
    got = _call(preset("tiny", au_reduction="sum"), ("au",), out, lb)
    assert got["au"] == pytest.approx((sum(f0) + sum(f1)) / 2, abs=1e-5)


def test_au_mean_averages_over_the_annotated_aus_of_each_frame():
    out, lb, f0, f1 = _au_case()
    got = _call(preset("tiny", au_reduction="mean"), ("au",), out, lb)
    assert got["au"] == pytest.approx((np.mean(f0) + np.mean(f1)) / 2, abs=1e-5)


def test_total_is_the_unweighted_sum_and_padding_never_counts():
    out, lb, _, _ = _au_case()
    cfg = preset("tiny", lambda_au=5.0, lambda_va=3.0)          # FaceBehaviorNet's λs play no part
    got = _call(cfg, ("au", "va", "expr"), out, lb)
    assert list(got) == ["va", "expr", "au", "total"]
    assert got["total"] == pytest.approx(got["va"] + got["expr"] + got["au"], abs=1e-6)
    # change everything on the padded frame (1, 3): no term moves
    out2 = {k: v.copy() for k, v in out.items()}
    for v in out2.values():
        v[1, 3] = 9.0
    lb2 = {k: v.copy() for k, v in lb.items()}
    lb2["va"][1, 3] = 0.9
    lb2["expr"][1, 3] = 1
    lb2["au_mask"][1, 3, SLOTS[2]] = 1
    lb2["au"][1, 3, SLOTS[2]] = 1
    again = _call(cfg, ("va", "expr", "au"), out2, lb2)
    for k in got:
        assert again[k] == pytest.approx(got[k], abs=1e-6), k


def test_nothing_labelled_gives_zero_terms():
    out, lb = _batch()
    lb["va_mask"][:] = 0
    lb["expr"][:] = -1
    got = _call(preset("tiny"), ("va", "expr", "au"), out, lb)
    assert got == {"va": 0.0, "expr": 0.0, "au": 0.0, "total": 0.0}


@pytest.mark.parametrize("kwargs, message", [
    (dict(heads=()), "heads must be distinct"),
    (dict(heads=("va", "landmarks")), "heads must be distinct"),
    (dict(heads=("au",), au_slots=()), "needs au_slots"),
    (dict(heads=("au",), au_slots=(0, 17)), "au_slots must be distinct"),
    (dict(heads=("au",), au_slots=(2, 2)), "au_slots must be distinct"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequenceLoss(preset("tiny"), **kwargs)


def test_au_head_width_must_match_the_slots():
    out, lb = _batch()
    with pytest.raises(ValueError, match="au_slots names 2"):
        SequenceLoss(preset("tiny"), ("au",), SLOTS[:2])(out, lb)


def test_missing_labels_are_named():
    out, lb = _batch()
    del lb["frame_mask"]
    with pytest.raises(KeyError, match="frame_mask"):
        SequenceLoss(preset("tiny"), ("va",))(out, lb)


# === Under tf.distribute: 2 replicas (one window each) == 1 device on the same global batch ===

def _run(strategy, config):
    out, lb, _, _ = _au_case()
    out, lb = tf.nest.map_structure(tf.constant, (out, lb))
    loss = SequenceLoss(config, ("va", "expr", "au"), SLOTS)
    names = loss.term_names() + ("total",)
    n = strategy.num_replicas_in_sync
    parts = ([tf.nest.map_structure(lambda a: a[:1], (out, lb)), tf.nest.map_structure(lambda a: a[1:], (out, lb))]
             if n == 2 else [(out, lb)])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group])
    with strategy.scope():
        scale = tf.Variable(1.0)

    @tf.function
    def step(batch):
        def replica_fn(data):
            o, labels = data
            with tf.GradientTape() as tape:
                values = loss({k: v * scale for k, v in o.items()}, labels)
                vec = tf.stack([values[t] for t in names])
                total = values["total"]
            return vec, tape.gradient(total, scale)
        vec, grad = strategy.run(replica_fn, args=(batch,))
        return strategy.reduce("SUM", vec, axis=None), strategy.reduce("SUM", grad, axis=None)

    vec, grad = step(per_replica)
    return vec.numpy(), float(grad)


@pytest.mark.parametrize("scope, reduction", [("batch", "sum"), ("sequence", "mean")])
def test_two_replicas_equal_one_device(two_cpu_strategy, one_cpu_strategy, scope, reduction):
    cfg = preset("tiny", ccc_scope=scope, au_reduction=reduction)
    vec2, grad2 = _run(two_cpu_strategy, cfg)
    vec1, grad1 = _run(one_cpu_strategy, cfg)
    out, lb, _, _ = _au_case()
    plain = _call(cfg, ("va", "expr", "au"), out, lb)
    np.testing.assert_allclose(vec1, [plain[k] for k in ("va", "expr", "au", "total")], atol=1e-5)
    np.testing.assert_allclose(vec2, vec1, atol=1e-5)
    assert grad2 == pytest.approx(grad1, abs=1e-5) and abs(grad1) > 1e-3
