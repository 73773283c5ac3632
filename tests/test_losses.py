"""Losses and coupling terms (main paper eq. 1–3) against values worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import losses, taxonomy
from fbn_keras.config import COUPLINGS, preset

LN2, LN7 = math.log(2.0), math.log(7.0)
E = {name: i for i, name in enumerate(taxonomy.EXPRESSIONS)}


def col(au: int) -> int:
    return taxonomy.AUS.index(au)


def au_row(present=(), annotated=None):
    """(17,) labels with `present` AUs at 1, and the δ mask (all AUs when annotated is None)."""
    y = np.zeros(17, np.float32)
    for au in present:
        y[col(au)] = 1.0
    m = np.ones(17, np.float32) if annotated is None else np.zeros(17, np.float32)
    for au in annotated or ():
        m[col(au)] = 1.0
    return y, m


# === Relation tables (Table 1) ===

def test_happiness_row_of_relation_matrix():
    row = taxonomy.relation_matrix()[E["happiness"]]
    assert sorted(np.flatnonzero(row)) == sorted([col(6), col(12), col(25)])
    assert np.all(row[row > 0] == 1.0)
    assert taxonomy.relation_weights()[E["happiness"], col(6)] == pytest.approx(0.51)


def test_q_au2_is_p_surprise_plus_p_fear():
    # journal eq. 8 example: fear logit ln2, surprise ln3, the rest 0 → p = 0.2, 0.3 (sum of exps 10).
    logits = np.zeros((1, 7), np.float32)
    logits[0, E["fear"]], logits[0, E["surprise"]] = math.log(2), math.log(3)
    q = np.asarray(losses.au_mixture(logits, taxonomy.relation_matrix()))
    assert q[0, col(2)] == pytest.approx(0.5, abs=1e-6)
    assert q[0, col(14)] == 0.0                         # AU14 is in no row
    assert q[0, col(12)] == pytest.approx(0.1, abs=1e-6)  # happiness only
    # the main paper's worked example: ½(p(surprised) + p(fearful))
    q_half = np.asarray(losses.au_mixture(logits, taxonomy.relation_matrix(), average_emotions=True))
    assert q_half[0, col(2)] == pytest.approx(0.25, abs=1e-6)


# === Distribution matching (eq. 2–3) ===

def test_dm_on_the_q_au2_example_leaves_uncovered_au14_out():
    logits = np.zeros((1, 7), np.float32)
    logits[0, E["fear"]], logits[0, E["surprise"]] = math.log(2), math.log(3)
    au = np.full((1, 17), -50.0, np.float32)
    au[0, col(2)] = 0.0          # p(AU2) = 0.5
    au[0, col(14)] = 50.0        # p(AU14) = 1, q ≡ 0: would add −log 1e-7 ≈ 16 if counted
    loss = float(losses.distribution_matching_loss(logits, au, taxonomy.relation_matrix()))
    assert loss == pytest.approx(-0.5 * math.log(0.5), abs=1e-5)


def test_dm_tiny_hand_example_and_target_gradient():
    relation = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    # image 1: p(emo) = (½, ½) → q = (1, ½); p(au) = (½, ¾) → −½·log 1 − ¾·log ½ = ¾ ln 2
    # image 2: p(emo) = (1/(1+e²), e²/(1+e²)) → q = (1, e²/(1+e²)); p(au) = (½, ½)
    expr = tf.Variable([[0.0, 0.0], [0.0, 2.0]])
    au = tf.Variable([[0.0, math.log(3.0)], [0.0, 0.0]])
    q2 = math.exp(2) / (1 + math.exp(2))
    want = 0.5 * (0.75 * LN2 - 0.5 * math.log(q2))
    for stop in (False, True):
        with tf.GradientTape() as tape:
            loss = losses.distribution_matching_loss(expr, au, relation, stop_gradient_target=stop)
        g_expr, g_au = tape.gradient(loss, [expr, au])
        assert float(loss) == pytest.approx(want, abs=1e-6)
        # dL/dz_au = −log q · p(1−p) / N: image 1, AU 2: ln2 · 3/16 / 2
        want_g = 0.0 if stop else LN2 * 0.75 * 0.25 / 2
        got_g = 0.0 if g_au is None else float(g_au[0, 1])     # stopped: no path to the AU logits
        assert got_g == pytest.approx(want_g, abs=1e-6)
        assert np.all(np.isfinite(g_expr)) and float(tf.reduce_sum(tf.abs(g_expr))) > 0


def test_dm_bernoulli_form_hand_example():
    # Rows: neutral (no AUs), emotion A (AU 1), emotion B (AUs 1, 2); logits 0 → p(emo) = ⅓ each,
    # q = (⅔, ⅓). AU logits 0, ln 3 → p = (½, ¾).
    relation = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], np.float32)
    expr = tf.Variable([[0.0, 0.0, 0.0]])
    au = tf.Variable([[0.0, math.log(3.0)]])
    # KL(½ ‖ ⅔) = ½ ln(3/4) + ½ ln(3/2);  KL(¾ ‖ ⅓) = ¾ ln(9/4) + ¼ ln(3/8)
    want = 0.5 * math.log(3 / 4) + 0.5 * math.log(3 / 2) + 0.75 * math.log(9 / 4) + 0.25 * math.log(3 / 8)
    for stop in (True, False):
        with tf.GradientTape() as tape:
            loss = losses.distribution_matching_loss(expr, au, relation, stop_gradient_target=stop, form="bernoulli")
        g_au = tape.gradient(loss, au)
        assert float(loss) == pytest.approx(want, abs=1e-6)
        # ∂KL/∂z = [ln(p/q) − ln((1−p)/(1−q))]·p(1−p); AU 1: (ln ¾ − ln 3/2)·¼ = −¼ ln 2
        got = 0.0 if g_au is None else float(g_au[0, 0])
        assert got == pytest.approx(0.0 if stop else -0.25 * LN2, abs=1e-6)
    # eq. 3 as printed on the same image: −½ ln ⅔ − ¾ ln ⅓
    positive = float(losses.distribution_matching_loss(expr, au, relation, form="positive"))
    assert positive == pytest.approx(-0.5 * math.log(2 / 3) - 0.75 * math.log(1 / 3), abs=1e-6)
    # KL is 0 where q = p: p(AU) = (⅔, ⅓)
    matched = np.array([[math.log(2.0), -math.log(2.0)]], np.float32)
    assert float(losses.distribution_matching_loss(expr, matched, relation, form="bernoulli")) == \
        pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="form must be one of"):
        losses.distribution_matching_loss(expr, au, relation, form="kl")


def _dm_minimiser(form: str, steps: int = 400, lr: float = 4.0) -> np.ndarray:
    """p(emo) minimising DM over the expression logits (plain gradient descent from logits 0), with every
    AU probability fixed at 0.03, on Table 1's relation."""
    relation = taxonomy.relation_matrix()
    au = tf.constant(np.full((1, taxonomy.NUM_AUS), math.log(0.03 / 0.97), np.float32))

    @tf.function
    def descend():
        z = tf.zeros((1, taxonomy.NUM_EXPRESSIONS))
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = losses.distribution_matching_loss(z, au, relation, form=form)
            z = z - lr * tape.gradient(loss, z)
        return tf.nn.softmax(z)[0]

    return descend().numpy()


def test_dm_forms_on_a_face_with_no_aus():
    # Eq. 3 as printed: neutral relates to no AU, so any mass on it lowers every q and raises −p·log q:
    # the minimiser puts (almost) nothing on neutral, whatever the face shows.
    p_positive = _dm_minimiser("positive")
    assert p_positive[E["neutral"]] < 0.01
    # Footnote 5's per-AU KL wants q ≈ 0.03 on each AU: about 0.9 of the mass stays on neutral.
    p_bernoulli = _dm_minimiser("bernoulli")
    assert 0.88 < p_bernoulli[E["neutral"]] < 0.93
    # At that point the KL, computed here in numpy, is far below its value at the start (uniform p(emo)).
    relation = taxonomy.relation_matrix()
    covered = relation.any(axis=0)

    def kl(p_emo):
        q = p_emo @ relation
        return float(np.sum(np.where(covered, 0.03 * np.log(0.03 / np.where(covered, q, 1))
                                     + 0.97 * np.log(0.97 / (1 - q)), 0.0)))

    assert kl(p_bernoulli) < 0.1 < kl(np.full(7, 1 / 7))


# === Co-annotation ===

def test_coannotated_sadness_image():
    targets, mask, weights = (np.asarray(t) for t in losses.coannotate_expression(
        np.array([E["sadness"]]), taxonomy.relation_weights()))
    want_w = {4: 1.0, 15: 1.0, 1: 0.6, 6: 0.5, 17: 0.67}      # AU11 (0.26) is outside the 17: dropped
    expect_w = np.zeros(17, np.float32)
    for au, w in want_w.items():
        expect_w[col(au)] = w
    np.testing.assert_allclose(weights[0], expect_w, atol=1e-6)
    np.testing.assert_array_equal(mask[0], (expect_w > 0).astype(np.float32))
    np.testing.assert_array_equal(targets[0], mask[0])
    # AU loss with logits 0: each BCE = ln 2; Σ w·ln2 / Σδ = 3.77·ln2/5
    loss = float(losses.au_loss(targets, mask, np.zeros((1, 17), np.float32), weights=weights))
    assert loss == pytest.approx(3.77 * LN2 / 5, abs=1e-6)
    loss_w = losses.au_loss(targets, mask, np.zeros((1, 17), np.float32), weights=weights,
                            normalise_by_weights=True)
    assert float(loss_w) == pytest.approx(LN2, abs=1e-6)


def test_coannotate_expression_missing_and_neutral_rows_have_no_mask():
    _, mask, weights = losses.coannotate_expression(np.array([-1, E["neutral"], E["happiness"]]),
                                                    taxonomy.relation_weights())
    mask = np.asarray(mask)
    assert mask[0].sum() == 0 and mask[1].sum() == 0 and mask[2].sum() == 3


def test_coannotate_aus_picks_most_required():
    rel = taxonomy.relation_weights()
    rows = [
        au_row((1, 2, 4, 5, 20, 25, 26)),                          # fear (7 AUs) and surprise (5) → fear
        au_row((1, 2, 5, 25, 26)),                                 # surprise only
        au_row((1, 2, 4, 5, 20, 25, 26), annotated=(1, 2, 4, 5, 25, 26)),  # AU20 unannotated → surprise
        au_row((6, 12, 25), annotated=(12, 25)),                   # AU6 unknown → nothing
        au_row(()),                                                # nothing present (neutral never qualifies)
        au_row((1, 2, 4, 5, 6, 15, 17, 25, 26)),                   # sadness (5) ties surprise (5)
    ]
    y = np.stack([r[0] for r in rows])
    m = np.stack([r[1] for r in rows])
    got = np.asarray(losses.coannotate_aus(y, m, rel)).tolist()
    assert got == [E["fear"], E["surprise"], E["surprise"], -1, -1, -1]
    got_first = np.asarray(losses.coannotate_aus(y, m, rel, on_tie="first")).tolist()
    assert got_first[-1] == E["sadness"]
    with pytest.raises(ValueError, match="on_tie"):
        losses.coannotate_aus(y, m, rel, on_tie="random")


# === Soft co-annotation ===

def _softmax(s):
    e = np.exp(np.asarray(s, np.float64))
    return e / e.sum()


def test_soft_targets_happy_example():
    y, m = au_row((12, 25))                    # all 17 annotated; AU6 absent
    rel = taxonomy.relation_weights()
    # happy (12 + 25 + 0.51·6)/2.51; fear AU25 of 1+1+1+1+.57+.63+.33; surprise AU25 of 4.66
    scores = np.zeros(7)
    scores[E["happiness"]] = 2 / 2.51
    scores[E["fear"]] = 1 / 5.53
    scores[E["surprise"]] = 1 / 4.66
    targets, row = losses.soft_coannotation_targets(y[None], m[None], rel)
    np.testing.assert_allclose(np.asarray(targets)[0], _softmax(scores), atol=1e-6)
    assert np.asarray(row).tolist() == [1.0]
    # neutral left out of the softmax
    t_nn, _ = losses.soft_coannotation_targets(y[None], m[None], rel, include_neutral=False)
    want = _softmax(scores[1:])
    np.testing.assert_allclose(np.asarray(t_nn)[0], np.concatenate([[0.0], want]), atol=1e-6)
    # unweighted table: happy (1+1+0)/3
    t_u, _ = losses.soft_coannotation_targets(y[None], m[None], taxonomy.relation_matrix())
    scores_u = np.zeros(7)
    scores_u[E["happiness"]], scores_u[E["fear"]], scores_u[E["surprise"]] = 2 / 3, 1 / 7, 1 / 5
    np.testing.assert_allclose(np.asarray(t_u)[0], _softmax(scores_u), atol=1e-6)


def test_soft_targets_unannotated_aus():
    y, m = au_row((12, 25), annotated=(12, 25))    # only AU12 and AU25 annotated
    rel = taxonomy.relation_weights()
    ign, _ = losses.soft_coannotation_targets(y[None], m[None], rel, unannotated="ignore")
    s = np.zeros(7)
    s[E["happiness"]], s[E["fear"]], s[E["surprise"]] = 2 / 2, 1 / 1, 1 / 1   # only annotated AUs count
    np.testing.assert_allclose(np.asarray(ign)[0], _softmax(s), atol=1e-6)
    absent, _ = losses.soft_coannotation_targets(y[None], m[None], rel, unannotated="absent")
    s[E["happiness"]], s[E["fear"]], s[E["surprise"]] = 2 / 2.51, 1 / 5.53, 1 / 4.66
    np.testing.assert_allclose(np.asarray(absent)[0], _softmax(s), atol=1e-6)


def test_soft_targets_disfa_frame_with_only_au4():
    # A DISFA frame (DISFA annotates AUs 1 2 4 5 6 9 12 15 17 20 25 26) with only AU4 on, Table 1 weights.
    y, m = au_row((4,), annotated=taxonomy.DATABASES["disfa"].aus)
    rel = taxonomy.relation_weights()
    # "ignore": anger's annotated AUs are 4 (1) and 17 (0.52) → 1/1.52 = 0.658; sadness 4 of 1+1+.6+.5+.67;
    # fear 4 of 5.53; disgust 4 (0.31) of 9, 17, 4 = 2.31; happiness and surprise do not use AU4.
    ign = np.zeros(7)
    ign[E["anger"]], ign[E["sadness"]], ign[E["fear"]], ign[E["disgust"]] = 1 / 1.52, 1 / 3.77, 1 / 5.53, 0.31 / 2.31
    # "absent": the full Σw of each emotion: anger 1+1+1+.26+.52+.29 = 4.07 → 0.246; disgust 3.57.
    absent = np.zeros(7)
    absent[E["anger"]], absent[E["sadness"]], absent[E["fear"]], absent[E["disgust"]] = \
        1 / 4.07, 1 / 3.77, 1 / 5.53, 0.31 / 3.57
    assert ign[E["anger"]] == pytest.approx(0.658, abs=5e-4) and absent[E["anger"]] == pytest.approx(0.246, abs=5e-4)
    t_ign, _ = losses.soft_coannotation_targets(y[None], m[None], rel, unannotated="ignore")
    t_abs, _ = losses.soft_coannotation_targets(y[None], m[None], rel, unannotated="absent")
    t_ign, t_abs = np.asarray(t_ign)[0], np.asarray(t_abs)[0]
    np.testing.assert_allclose(t_ign, _softmax(ign), atol=1e-6)
    np.testing.assert_allclose(t_abs, _softmax(absent), atol=1e-6)
    # Softmax over the seven (neutral scores 0): anger's soft label e^0.658/8.576 = 0.225 against
    # e^0.246/7.871 = 0.162; the most likely emotion is anger under "ignore", sadness under "absent".
    assert t_ign[E["anger"]] == pytest.approx(0.2251, abs=2e-4)
    assert t_abs[E["anger"]] == pytest.approx(0.1624, abs=2e-4)
    assert t_ign.argmax() == E["anger"] and t_abs.argmax() == E["sadness"]


def test_soft_loss_hand_values():
    y, m = au_row((12, 25))
    ys, ms = np.stack([y, y]), np.stack([m, np.zeros(17, np.float32)])   # 2nd image: no AU labels
    rel = taxonomy.relation_weights()
    # logits 0: −Σ t·log(1/7) = ln 7, whatever t
    assert float(losses.soft_coannotation_loss(np.zeros((2, 7), np.float32), ys, ms, rel)) == \
        pytest.approx(LN7, abs=1e-6)
    scores = np.zeros(7)
    scores[E["happiness"]], scores[E["fear"]], scores[E["surprise"]] = 2 / 2.51, 1 / 5.53, 1 / 4.66
    t = _softmax(scores)
    logits = np.array([[0, 0, 0, 0, 3.0, 0, 0], [9, 9, 9, 9, 9, 9, 9]], np.float32)
    log_p = np.array([0, 0, 0, 0, 3.0, 0, 0]) - math.log(6 + math.exp(3))
    want = -(t * log_p).sum()
    assert float(losses.soft_coannotation_loss(logits, ys, ms, rel)) == pytest.approx(want, abs=1e-5)


# === Task losses ===

def test_expression_cross_entropy_hand_example():
    logits = np.zeros((3, 7), np.float32)
    logits[0, 0] = 2.0
    labels = np.array([0, -1, 3])
    want = ((math.log(math.exp(2) + 6) - 2) + LN7) / 2
    assert float(losses.expression_loss(labels, logits)) == pytest.approx(want, abs=1e-6)


def test_expression_loss_rejects_bad_codes():
    with pytest.raises(ValueError, match="expression labels"):
        losses.expression_loss(np.array([7]), np.zeros((1, 7), np.float32))


def test_au_loss_is_delta_normalised_per_image():
    y = np.zeros((3, 17), np.float32)
    m = np.zeros((3, 17), np.float32)
    logits = np.zeros((3, 17), np.float32)
    m[0, :2] = 1.0                                        # 2 AUs at logit 0: ln 2 each → ln 2 per image
    m[1, 5], y[1, 5], logits[1, 5] = 1.0, 1.0, math.log(3)   # p = ¾ → −ln ¾
    logits[1, 6] = 40.0                                   # unannotated: ignored
    # image 3: nothing annotated → excluded from the mean
    want = (LN2 - math.log(0.75)) / 2
    assert float(losses.au_loss(y, m, logits)) == pytest.approx(want, abs=1e-6)


def _va(n=4, c=0.0):
    y = np.stack([np.array([-1.0, 0.0, 1.0, 0.5]), np.array([0.2, -0.4, 0.8, 0.0])], axis=1)[:n]
    return y.astype(np.float32), (y + c).astype(np.float32)


def test_ccc_of_shifted_copy():
    y, p = _va(c=0.3)
    s2 = y.var(axis=0)                                    # population variance of each column
    want = 2 * s2 / (2 * s2 + 0.09)                       # CCC(y, y + c) = 2s²/(2s² + c²)
    loss = float(losses.ccc_loss(y, np.ones(4, np.float32), p))
    assert loss == pytest.approx(1 - want.mean(), abs=1e-5)
    ccc, n = losses.concordance(y, np.ones((4, 1)), p)
    np.testing.assert_allclose(np.asarray(ccc), want, atol=1e-5)
    assert float(n) == 4.0


def test_ccc_identical_is_one_and_mask_selects_rows():
    y, _ = _va()
    assert float(losses.ccc_loss(y, np.ones(4), y)) == pytest.approx(0.0, abs=1e-5)
    p = y.copy()
    p[3] = [50.0, -50.0]                                  # a wild prediction on an unlabelled row
    y_nan = y.copy()
    y_nan[3] = np.nan
    assert float(losses.ccc_loss(y_nan, np.array([1, 1, 1, 0]), p)) == pytest.approx(0.0, abs=1e-5)


# === Robustness: finite loss and gradients ===

def _finite_with_grads(fn, *variables):
    with tf.GradientTape() as tape:
        loss = fn(*variables)
    grads = tape.gradient(loss, list(variables))
    assert np.isfinite(float(loss)), float(loss)
    for g in grads:
        assert g is None or np.all(np.isfinite(np.asarray(g))), g
    return float(loss)


CASES = {
    "empty": 0.0, "all_masked": 0.0, "constant": 0.0, "extreme": 50.0, "nan_under_mask": 0.0,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_loss_finite_with_finite_grads(case):
    n = 0 if case == "empty" else 4
    rng = np.random.default_rng(1)
    sign = np.where(rng.random((n, 26)) > 0.5, 1.0, -1.0)
    out = (sign * 50.0 if case == "extreme" else (np.zeros((n, 26)) if case == "constant"
                                                  else rng.normal(size=(n, 26)))).astype(np.float32)
    va, expr, au = tf.Variable(out[:, :2]), tf.Variable(out[:, 2:9]), tf.Variable(out[:, 9:])
    y_va = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    y_expr = rng.integers(0, 7, n).astype(np.int32)
    y_au = (rng.random((n, 17)) > 0.5).astype(np.float32)
    m_va, m_au = np.ones(n, np.float32), np.ones((n, 17), np.float32)
    if case == "constant":
        y_va[:] = 0.3
    if case in ("all_masked", "nan_under_mask"):
        y_expr[:] = -1
        m_va[:], m_au[:] = 0.0, 0.0
    if case == "nan_under_mask":
        y_va[:], y_au[:] = np.nan, np.nan
    rel = taxonomy.relation_weights()
    fns = {
        "expr": lambda v: losses.expression_loss(y_expr, v),
        "au": lambda v: losses.au_loss(y_au, m_au, v, weights=m_au * 0.5),
        "va": lambda v: losses.ccc_loss(y_va, m_va, v),
        "soft": lambda v: losses.soft_coannotation_loss(v, y_au, m_au, rel),
    }
    for name, var in (("expr", expr), ("au", au), ("va", va), ("soft", expr)):
        value = _finite_with_grads(fns[name], var)
        if case in ("empty", "all_masked", "nan_under_mask"):
            assert value == 0.0, (name, value)
    for stop in (False, True):
        _finite_with_grads(lambda e, a: losses.distribution_matching_loss(e, a, rel, stop), expr, au)
    for coupling in COUPLINGS:
        mtl = losses.MultiTaskLoss(preset("tiny", coupling=coupling))
        labels = {"va": y_va, "va_mask": m_va, "expr": y_expr, "au": y_au, "au_mask": m_au}
        _finite_with_grads(lambda a, b, c: mtl({"va": a, "expr": b, "au": c}, labels)["total"], va, expr, au)


# === The whole objective ===

def _batch():
    """3 images: expression-only (sadness), AU-only (surprise AUs, all annotated), VA-only."""
    y_au = np.zeros((3, 17), np.float32)
    m_au = np.zeros((3, 17), np.float32)
    y_au[1], m_au[1] = au_row((1, 2, 5, 25, 26))
    y_au[0, :] = np.nan                                   # unannotated: must not leak
    va = np.array([[np.nan, np.nan], [0.0, 0.0], [0.5, -0.5]], np.float32)
    labels = {"va": va, "va_mask": np.array([0, 0, 1], np.float32), "expr": np.array([E["sadness"], -1, -1]),
              "au": y_au, "au_mask": m_au}
    outputs = {"va": np.zeros((3, 2), np.float32), "expr": np.zeros((3, 7), np.float32),
               "au": np.zeros((3, 17), np.float32)}
    return outputs, labels


def test_multitask_total_without_coupling():
    outputs, labels = _batch()
    # logits 0: expression ln 7 (1 row), AU ln 2 (1 row), CCC of constant prediction 0 → loss 1
    terms = losses.MultiTaskLoss(preset("tiny", coupling="none"))(outputs, labels)
    assert sorted(terms) == ["au", "expr", "total", "va"]
    assert float(terms["expr"]) == pytest.approx(LN7, abs=1e-6)
    assert float(terms["au"]) == pytest.approx(LN2, abs=1e-6)
    assert float(terms["va"]) == pytest.approx(1.0, abs=1e-6)
    assert float(terms["total"]) == pytest.approx(LN7 + LN2 + 1, abs=1e-5)
    cfg = preset("tiny", coupling="none", lambda_au=2.0, lambda_va=0.5)
    assert float(losses.MultiTaskLoss(cfg)(outputs, labels)["total"]) == pytest.approx(LN7 + 2 * LN2 + 0.5, abs=1e-5)


def test_multitask_coannotation_merges_targets():
    outputs, labels = _batch()
    terms = losses.MultiTaskLoss(preset("tiny", coupling="coann"))(outputs, labels)
    # expression: row 0 sadness, row 1 co-annotated surprise → ln 7 over 2 rows
    assert float(terms["expr"]) == pytest.approx(LN7, abs=1e-6)
    # AU: row 0 co-annotated sadness (3.77 ln2 / 5), row 1 real labels (ln 2)
    assert float(terms["au"]) == pytest.approx((3.77 / 5 + 1) * LN2 / 2, abs=1e-6)
    assert sorted(terms) == ["au", "expr", "total", "va"]


def test_multitask_keeps_real_labels_over_coannotation():
    outputs, labels = _batch()
    labels["expr"] = np.array([E["sadness"], E["happiness"], -1])   # row 1 now has a real expression
    outputs["expr"][1, E["happiness"]] = 2.0
    terms = losses.MultiTaskLoss(preset("tiny", coupling="coann"))(outputs, labels)
    want = (LN7 + math.log(math.exp(2) + 6) - 2) / 2        # happiness kept, not surprise
    assert float(terms["expr"]) == pytest.approx(want, abs=1e-6)


def test_multitask_soft_and_dm_terms_and_tasks():
    outputs, labels = _batch()
    terms = losses.MultiTaskLoss(preset("tiny", coupling="soft+dm", lambda_soft=2.0))(outputs, labels)
    assert sorted(terms) == ["au", "dm", "expr", "soft", "total", "va"]
    assert float(terms["soft"]) == pytest.approx(LN7, abs=1e-6)    # logits 0, one AU-labelled row
    # p(au) = ½ everywhere, p(emo) = 1/7: q_i = (#emotions relating AU i)/7 over the 16 covered AUs
    n_emo = (taxonomy.relation_matrix() > 0).sum(axis=0)
    # eq. 3's sum over the 16 AUs Table 1 covers (all but AU14); the default reduction is its mean over them
    assert int((n_emo > 0).sum()) == 16
    want_dm = -0.5 * sum(math.log(k / 7) for k in n_emo if k > 0) / 16
    assert float(terms["dm"]) == pytest.approx(want_dm, abs=1e-5)
    assert float(terms["total"]) == pytest.approx(LN7 + LN2 + 1 + 2 * LN7 + want_dm, abs=1e-4)
    summed = losses.MultiTaskLoss(preset("tiny", coupling="soft+dm", dm_reduction="sum"))(outputs, labels)
    assert float(summed["dm"]) == pytest.approx(16 * want_dm, abs=1e-5)
    with pytest.raises(ValueError, match="dm_reduction must be one of"):
        preset("tiny", dm_reduction="max")
    single = losses.MultiTaskLoss(preset("tiny", coupling="soft+dm", tasks="va"))(outputs, labels)
    assert sorted(single) == ["total", "va"] and float(single["total"]) == pytest.approx(1.0, abs=1e-6)


def test_multitask_coann_dm_switches_on_exactly_those_terms():
    outputs, labels = _batch()
    terms = losses.MultiTaskLoss(preset("tiny", coupling="coann+dm"))(outputs, labels)
    assert sorted(terms) == ["au", "dm", "expr", "total", "va"]          # no soft co-annotation term
    # co-annotation is on: as in the coann test, row 1 gets surprise (ln 7 over 2 rows) and row 0
    # sadness's AUs (3.77 ln 2 / 5)
    assert float(terms["expr"]) == pytest.approx(LN7, abs=1e-6)
    assert float(terms["au"]) == pytest.approx((3.77 / 5 + 1) * LN2 / 2, abs=1e-6)
    n_emo = (taxonomy.relation_matrix() > 0).sum(axis=0)
    want_dm = -0.5 * sum(math.log(k / 7) for k in n_emo if k > 0) / 16    # mean over the 16 covered AUs
    assert float(terms["dm"]) == pytest.approx(want_dm, abs=1e-5)
    assert float(terms["total"]) == pytest.approx(LN7 + (3.77 / 5 + 1) * LN2 / 2 + 1 + want_dm, abs=1e-4)
    # and without co-annotation ("dm"), row 1's expression stays missing: ln 7 over row 0 only, AU ln 2
    dm_only = losses.MultiTaskLoss(preset("tiny", coupling="dm"))(outputs, labels)
    assert float(dm_only["au"]) == pytest.approx(LN2, abs=1e-6)


def test_multitask_missing_keys_are_named():
    outputs, labels = _batch()
    del labels["au_mask"]
    with pytest.raises(KeyError, match="au_mask"):
        losses.MultiTaskLoss(preset("tiny"))(outputs, labels)


def test_multitask_reads_optional_readings_from_config():
    outputs, labels = _batch()
    cfg = preset("tiny", coupling="coann")
    cfg.au_normalise_by_weights = True     # a field the lead may add to Config; read when present
    terms = losses.MultiTaskLoss(cfg)(outputs, labels)
    assert float(terms["au"]) == pytest.approx(LN2, abs=1e-6)   # both rows: weighted mean of ln 2
    cfg.soft_unannotated = "bogus"
    with pytest.raises(ValueError, match="soft_unannotated"):
        losses.MultiTaskLoss(cfg)


def test_au_loss_positive_weight_scales_only_positive_terms():
    y = np.zeros((1, 17), np.float32)
    m = np.zeros((1, 17), np.float32)
    m[0, :2], y[0, 0] = 1.0, 1.0                  # AU1 positive, AU2 negative, both at logit 0
    pos_weight = np.ones(17, np.float32)
    pos_weight[0], pos_weight[1] = 3.0, 5.0        # AU2's weight has no positive to act on
    # (3·ln 2 + ln 2) / 2 annotated AUs
    want = (3 * LN2 + LN2) / 2
    got = float(losses.au_loss(y, m, np.zeros((1, 17), np.float32), pos_weight=pos_weight))
    assert got == pytest.approx(want, abs=1e-6)
    plain = float(losses.au_loss(y, m, np.zeros((1, 17), np.float32), pos_weight=np.ones(17, np.float32)))
    assert plain == pytest.approx(LN2, abs=1e-6)


def test_balanced_au_pos_weight_by_hand():
    # negatives/positives: 3/1 = 3; no positive → 1; 10/30 = ⅓; 95/5 = 19 → capped at 10; 1/9 → floored at 1/4
    got = losses.balanced_au_pos_weight([1, 0, 30, 5, 9], [4, 10, 40, 100, 10], max_weight=10.0)
    np.testing.assert_allclose(got, [3.0, 1.0, 1 / 3, 10.0, 1 / 9], rtol=1e-6)
    got = losses.balanced_au_pos_weight([9], [10], max_weight=4.0)
    np.testing.assert_allclose(got, [0.25], rtol=1e-6)
    # square root: 4/1 → 2, 1/9 → ⅓, 99/1 → 9.95 (under the cap of 10)
    got = losses.balanced_au_pos_weight([1, 9, 1], [5, 10, 100], max_weight=10.0, power=0.5)
    np.testing.assert_allclose(got, [2.0, 1 / 3, math.sqrt(99)], rtol=1e-6)
    with pytest.raises(ValueError, match="positives <= annotated"):
        losses.balanced_au_pos_weight([5], [4], max_weight=10.0)


def test_multitask_loss_rejects_bad_pos_weight():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match="au_pos_weight"):
        losses.MultiTaskLoss(cfg, au_pos_weight=np.zeros(17))


def test_multitask_pos_weight_shifts_dm_target_back_to_the_prior():
    """With positives weighted by w, AU logits ln w mean p = ½ after the log-w prior correction, so DM
    equals the unweighted example's value (logits 0, p = ½); the AU term weighs the positive ln 2 by w."""
    outputs, labels = _batch()
    w = np.linspace(1.5, 6.0, 17).astype(np.float32)
    outputs["au"] = np.tile(np.log(w)[None, :], (3, 1)).astype(np.float32)
    terms = losses.MultiTaskLoss(preset("tiny", coupling="dm"), au_pos_weight=w)(outputs, labels)
    n_emo = (taxonomy.relation_matrix() > 0).sum(axis=0)
    want_dm = -0.5 * sum(math.log(k / 7) for k in n_emo if k > 0) / 16    # mean over the 16 covered AUs
    assert float(terms["dm"]) == pytest.approx(want_dm, abs=1e-5)
    # Row 1's 5 positive AUs (1, 2, 5, 25, 26) and 12 negatives, at logit z = ln w:
    # positive: w·ln(1 + 1/w), negative: ln(1 + w); mean over its 17 annotated AUs
    row = [w[k] * math.log(1 + 1 / w[k]) if labels["au"][1, k] else math.log(1 + w[k]) for k in range(17)]
    assert float(terms["au"]) == pytest.approx(sum(row) / 17, abs=1e-5)
