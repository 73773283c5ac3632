"""The GAN's objective (multi-task learning and generation paper, eq. 1–5) against values worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import gan_losses as gl
from fbn_keras.gan import GanConfig

LN3 = math.log(3.0)          # sigmoid(ln 3) = 0.75
LN9 = math.log(9.0)          # sigmoid(ln 9) = 0.9


def _f(x):
    return float(np.asarray(x))


def _labels17(rows):
    """17-AU label and δ arrays with the given {AU number: (label, δ)} per image."""
    from fbn_keras import taxonomy
    au = np.zeros((len(rows), 17), np.float32)
    mask = np.zeros((len(rows), 17), np.float32)
    for i, row in enumerate(rows):
        for number, (label, delta) in row.items():
            au[i, taxonomy.AUS.index(number)] = label
            mask[i, taxonomy.AUS.index(number)] = delta
    return au, mask


def test_au_columns_are_the_eight_affwild_aus():
    # AUS = 1 2 4 5 6 7 9 10 12 14 15 17 20 23 24 25 26 → AUs 1 2 4 6 12 15 20 25 sit at these columns.
    assert gl.AU_COLUMNS == (0, 1, 2, 4, 8, 10, 12, 15)
    au, mask = gl.gan_au_labels(np.arange(17, dtype=np.float32)[None], np.ones((1, 17), np.float32))
    np.testing.assert_array_equal(au, [[0, 1, 2, 4, 8, 10, 12, 15]])


def test_mse_va_loss_by_hand():
    labels = np.array([[0.5, -0.5], [0.2, 0.1], [np.nan, np.nan]], np.float32)
    preds = np.array([[0.3, -0.1], [0.2, 0.5], [9.0, 9.0]], np.float32)
    mask = np.array([1, 1, 0], np.float32)
    # image 1: (0.2² + 0.4²)/2 = 0.1; image 2: (0² + 0.4²)/2 = 0.08; image 3 masked (NaN label)
    assert _f(gl.va_loss(labels, mask, preds, "mse")) == pytest.approx((0.1 + 0.08) / 2, rel=1e-5)
    assert _f(gl.va_loss(labels, np.zeros(3, np.float32), preds, "mse")) == 0.0
    with pytest.raises(ValueError, match="kind must be 'ccc' or 'mse'. Received: kind='l1'"):
        gl.va_loss(labels, mask, preds, "l1")


def test_ccc_va_loss_by_hand():
    # valence y = [1, −1], ŷ = [1, 0]: means 0, ½; variances 1, ¼; covariance (1·1 + (−1)·0)/2 − 0 = ½
    #   → ρ_v = 2·½ / (1 + ¼ + ¼) = 2/3. Arousal y = ŷ = [0, 1] → ρ_a = 1. Eq. 4: 1 − (2/3 + 1)/2 = 1/6.
    labels = np.array([[1.0, 0.0], [-1.0, 1.0]], np.float32)
    preds = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    assert _f(gl.va_loss(labels, np.ones(2, np.float32), preds, "ccc")) == pytest.approx(1 / 6, abs=1e-6)


def test_real_image_terms_by_hand():
    outputs = {
        "va": np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], np.float32),
        "au": np.array([[0.0] * 8, [LN3, LN3] + [0.0] * 6, [7.0] * 8], np.float32),
        "fake": np.array([[0.0], [LN3], [0.0]], np.float32),
    }
    au, au_mask = _labels17([
        {n: (1.0, 1.0) for n in (1, 2, 4, 6, 12, 15, 20, 25)},   # all 8 annotated, logits 0: ln 2 each
        {1: (1.0, 1.0), 2: (0.0, 1.0), 5: (1.0, 1.0)},           # AU5 is not one of the 8: ignored
        {5: (1.0, 1.0), 26: (0.0, 1.0)},                         # none of the 8 annotated: left out
    ])
    labels = {"va": np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, 0.0]], np.float32),
              "va_mask": np.array([1, 1, 0], np.float32), "au": au, "au_mask": au_mask}
    terms = gl.discriminator_real_loss(outputs, labels, "ccc")
    assert sorted(terms) == ["r_au", "r_fake", "r_va"]
    assert _f(terms["r_va"]) == pytest.approx(1 / 6, abs=1e-6)        # the rows of the CCC test, 3rd masked
    # image 2: AU1 label 1 at p = ¾ → −ln ¾; AU2 label 0 at p = ¾ → −ln ¼; mean over its 2 annotated AUs
    image2 = (-math.log(0.75) - math.log(0.25)) / 2
    assert _f(terms["r_au"]) == pytest.approx((math.log(2) + image2) / 2, rel=1e-5)
    # fake target 0: logit 0 → ln 2; p = ¾ → −ln ¼; logit 0 → ln 2
    assert _f(terms["r_fake"]) == pytest.approx((math.log(2) + math.log(4) + math.log(2)) / 3, rel=1e-5)


def test_fake_image_terms_by_hand():
    outputs = {"va": np.array([[0.3, -0.2], [0.01, 0.51]], np.float32),
               "au": np.zeros((2, 8), np.float32),
               "fake": np.array([[0.0], [LN9]], np.float32)}
    terms = gl.discriminator_fake_loss(outputs, "mse", 0.01, 0.9)
    # MSE to 0.01: image 1 ((0.29)² + (0.21)²)/2, image 2 (0² + 0.5²)/2
    assert _f(terms["f_va"]) == pytest.approx(((0.29 ** 2 + 0.21 ** 2) / 2 + 0.125) / 2, rel=1e-5)
    # target 0.01 at p = ½: −(0.01 ln ½ + 0.99 ln ½) = ln 2
    assert _f(terms["f_au"]) == pytest.approx(math.log(2), rel=1e-6)
    # target 0.9: at p = ½, ln 2; at p = 0.9, −(0.9 ln 0.9 + 0.1 ln 0.1)
    assert _f(terms["f_fake"]) == pytest.approx((math.log(2) - 0.9 * math.log(0.9) - 0.1 * math.log(0.1)) / 2,
                                                rel=1e-5)


def test_fake_va_under_ccc_is_inert():
    preds = tf.Variable([[0.3, -0.2], [0.01, 0.51], [-0.7, 0.9]])
    with tf.GradientTape() as tape:
        term = gl.discriminator_fake_loss({"va": preds}, "ccc")["f_va"]
    # a constant target has covariance 0 with anything: ρ = 0, loss 1, no gradient
    assert _f(term) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(tape.gradient(term, preds), np.zeros((3, 2)), atol=1e-6)


def test_huber_by_hand():
    real = np.zeros((2, 1, 1, 2), np.float32)
    fake = np.array([0.5, -2.0, 1.0, 3.0], np.float32).reshape(2, 1, 1, 2)
    # δ = 1: ½·0.25, 1·(2 − ½), ½·1, 1·(3 − ½) → mean over the 4 elements
    assert _f(gl.huber_loss(real, fake, 1.0)) == pytest.approx((0.125 + 1.5 + 0.5 + 2.5) / 4, rel=1e-6)
    # δ = 2: ½·0.25, ½·4, ½·1, 2·(3 − 1)
    assert _f(gl.huber_loss(real, fake, 2.0)) == pytest.approx((0.125 + 2.0 + 0.5 + 4.0) / 4, rel=1e-6)


def test_generator_loss_by_hand():
    real = np.zeros((2, 1, 1, 2), np.float32)
    fake = np.array([0.5, -2.0, 1.0, 3.0], np.float32).reshape(2, 1, 1, 2)
    out = gl.generator_loss(np.array([[0.0], [LN3]], np.float32), real, fake, w_r=0.5, delta=1.0)
    log_x = (math.log(0.5) + math.log(0.75)) / 2
    assert _f(out["log_x"]) == pytest.approx(log_x, rel=1e-6)
    assert _f(out["huber"]) == pytest.approx(4.625 / 4, rel=1e-6)
    assert _f(out["total"]) == pytest.approx(log_x + 0.5 * 4.625 / 4, rel=1e-6)
    # x clipped to [1e-7, 1]: a confident "real" verdict stays finite
    far = gl.generator_loss(np.array([[-100.0]], np.float32), real[:1], real[:1], w_r=0.0)
    assert _f(far["total"]) == pytest.approx(math.log(1e-7), rel=1e-5)


def test_w_r_schedule():
    assert [_f(gl.w_r_at(s, 1.0, 100)) for s in (0, 25, 50, 100, 150)] == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0])
    assert [_f(gl.w_r_at(s, 2.0, 0)) for s in (0, 10 ** 6)] == [2.0, 2.0]


@pytest.mark.parametrize("heads,expected", [
    ("va+au+fake", ["f_au", "f_fake", "f_va", "r_au", "r_fake", "r_va", "total"]),
    ("va+fake", ["f_fake", "f_va", "r_fake", "r_va", "total"]),
    ("au+fake", ["f_au", "f_fake", "r_au", "r_fake", "total"]),
    ("va+au", ["r_au", "r_va", "total"]),
])
def test_discriminator_loss_has_the_variants_terms_and_sums_them(heads, expected):
    config = GanConfig(d_outputs=heads, va_loss="mse")
    sizes = {"va": 2, "au": 8, "fake": 1}
    rng = np.random.default_rng(0)
    real = {h: rng.normal(size=(4, sizes[h])).astype(np.float32) for h in config.heads}
    fake = {h: rng.normal(size=(4, sizes[h])).astype(np.float32) for h in config.heads}
    au, au_mask = _labels17([{1: (1.0, 1.0), 25: (0.0, 1.0)}] * 4)
    labels = {"va": rng.uniform(-1, 1, (4, 2)).astype(np.float32), "va_mask": np.ones(4, np.float32),
              "au": au, "au_mask": au_mask}
    terms = gl.discriminator_loss(real, labels, fake if config.adversarial else None, config)
    assert sorted(terms) == expected
    assert _f(terms["total"]) == pytest.approx(sum(_f(v) for k, v in terms.items() if k != "total"), rel=1e-6)


def test_two_replicas_sum_to_the_one_device_losses(two_cpu_strategy):
    """Each replica returns its share: the SUM over 2 uneven replicas is the whole batch's loss."""
    rng = np.random.default_rng(5)
    n, split = 6, 4
    real = rng.uniform(-1, 1, (n, 2, 2, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (n, 2, 2, 3)).astype(np.float32)
    logits = {"va": rng.normal(size=(n, 2)).astype(np.float32), "au": rng.normal(size=(n, 8)).astype(np.float32),
              "fake": rng.normal(size=(n, 1)).astype(np.float32)}
    au, au_mask = _labels17([{1: (1.0, 1.0), 4: (0.0, 1.0)}, {}, {25: (1.0, 1.0)}, {2: (1.0, 1.0)},
                             {6: (0.0, 1.0)}, {}])
    labels = {"va": rng.uniform(-1, 1, (n, 2)).astype(np.float32), "va_mask": np.array([1, 0, 1, 1, 1, 0], np.float32),
              "au": au, "au_mask": au_mask}
    config = GanConfig(va_loss="ccc")

    def losses(data):
        r, f, lo, lb = data
        d = gl.discriminator_loss(lo, lb, lo, config)
        g = gl.generator_loss(lo["fake"], r, f, 0.5)
        return {**{f"d/{k}": v for k, v in d.items()}, **{f"g/{k}": v for k, v in g.items()}}

    whole = {k: _f(v) for k, v in losses((real, fake, logits, labels)).items()}
    parts = [tf.nest.map_structure(lambda a: a[:split], (real, fake, logits, labels)),
             tf.nest.map_structure(lambda a: a[split:], (real, fake, logits, labels))]
    values = two_cpu_strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group])
    shares = tf.function(lambda v: two_cpu_strategy.run(losses, args=(v,)))(values)
    summed = {k: _f(two_cpu_strategy.reduce("SUM", v, axis=None)) for k, v in shares.items()}
    assert summed == pytest.approx(whole, rel=1e-5, abs=1e-6)
