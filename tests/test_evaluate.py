"""fbn_keras.evaluate: each database's metrics on small fixed predictions, against values worked out by hand."""

import numpy as np
import pytest

from fbn_keras import taxonomy
from fbn_keras.evaluate import format_table, paper_column, score_database


def _onehot_probs(classes, k=7, p=0.9):
    """Probabilities whose argmax is `classes` (the rest of the mass spread evenly)."""
    out = np.full((len(classes), k), (1 - p) / (k - 1), np.float32)
    out[np.arange(len(classes)), classes] = p
    return out


def _au_columns(values_by_au, n):
    """(n, 17) array with the given AU columns set, zeros elsewhere."""
    out = np.zeros((n, taxonomy.NUM_AUS), np.float32)
    for au, col in values_by_au.items():
        out[:, taxonomy.au_index(au)] = col
    return out


def test_affwild2_ccc_f1_and_abaw_totals_by_hand():
    # 4 labelled rows and a 5th with every mask off and wild predictions, which must not count.
    va_true = np.array([[1, 1], [-1, -1], [1, 1], [-1, -1], [0, 0]], np.float32)
    va_pred = np.array([[.5, 1.5], [-.5, -.5], [.5, 1.5], [-.5, -.5], [5, 5]], np.float32)
    # valence: mean 0 both, var_t 1, var_p .25, cov .5 → 2·.5 / 1.25 = 0.8
    # arousal: p = t + .5 → var 1 and 1, cov 1, mean gap .5 → 2 / (2 + .25) = 8/9
    expr_true = np.array([0, 1, 1, 2, -1])
    expr_pred = _onehot_probs([0, 1, 2, 2, 3])
    # F1 per class: 0 → 1; 1 → P 1, R ½ → ⅔; 2 → P ½, R 1 → ⅔; classes 3..6 are absent from the labels and
    # left out (metrics.macro_f1): macro F1 = (1 + ⅔ + ⅔)/3 = 7/9 (it was ⅓ over all 7); acc ¾.
    au_true = _au_columns({1: [1, 1, 1, 1, 0], 12: [1, 1, 0, 0, 0], 5: [1, 1, 1, 1, 1]}, 5)
    au_prob = _au_columns({1: [.9, .8, .7, .6, 0], 12: [.9, .2, .7, .1, .9], 5: [0, 0, 0, 0, 0]}, 5)
    mask = np.zeros((5, taxonomy.NUM_AUS), np.float32)
    mask[:4] = 1.0   # AU5 is annotated here but is not an Aff-Wild2 AU: it must be ignored
    # AU1: F1 1, acc 1. AU12: tp 1, fp 1, fn 1 → F1 ½, acc ½. The other 10 Aff-Wild2 AUs: F1 0, acc 1.
    labels = {"va": va_true, "va_mask": np.array([1, 1, 1, 1, 0]), "expr": expr_true, "au": au_true,
              "au_mask": mask}
    preds = {"va": va_pred, "expr": expr_pred, "au": au_prob}
    got = score_database("synth-affwild2", preds, labels)
    assert got["ccc_v"] == pytest.approx(0.8, abs=1e-6)
    assert got["ccc_a"] == pytest.approx(8 / 9, abs=1e-6)
    assert got["va_abaw"] == pytest.approx((0.8 + 8 / 9) / 2, abs=1e-6)
    assert got["expr_f1"] == pytest.approx(7 / 9, abs=1e-6)
    assert got["expr_acc"] == pytest.approx(0.75)
    assert got["expr_abaw"] == pytest.approx(0.67 * 7 / 9 + 0.33 * 0.75, abs=1e-6)
    assert got["au_f1"] == pytest.approx(1.5 / 12, abs=1e-6)
    assert got["au_abaw"] == pytest.approx(0.5 * 1.5 / 12 + 0.5 * 11.5 / 12, abs=1e-6)
    assert (got["n_va"], got["n_expr"], got["n_au"]) == (4, 4, 4)


def test_rafdb_mean_diagonal_by_hand():
    # class 0: 1 of 2 right; class 1: 2 of 3; class 4: 1 of 1 → (½ + ⅔ + 1) / 3
    labels = {"expr": np.array([0, 0, 1, 1, 1, 4])}
    preds = {"expr": _onehot_probs([0, 1, 1, 1, 0, 4])}
    got = score_database("synth-rafdb", preds, labels)
    assert got == {"expr_mean_diag": pytest.approx((0.5 + 2 / 3 + 1) / 3), "n_expr": 6}


def test_afew_votes_per_clip_with_the_mean_probability():
    # Clip "a" (label 1): frame argmaxes are 1, 0, 0 (a frame vote would say 0) but the mean
    # probability of class 1 is (.9+.4+.4)/3 = .567 > class 0's .433, so the clip is right.
    # Clip "b" (label 2): both frames say 3 → wrong. Accuracy over clips: ½.
    probs = np.zeros((5, 7), np.float32)
    probs[0, [0, 1]] = [.1, .9]
    probs[1, [0, 1]] = [.6, .4]
    probs[2, [0, 1]] = [.6, .4]
    probs[3:, 3] = 1.0
    labels = {"expr": np.array([1, 1, 1, 2, 2]), "group": np.array([b"a", b"a", b"a", b"b", b"b"])}
    got = score_database("afew", {"expr": probs}, labels)
    assert got["expr_acc"] == pytest.approx(0.5)


def test_emotionet_f1_mean_accuracy_and_afa_over_its_own_11_aus():
    # AU1: truth [1, 0], predicted [1, 1] → F1 ⅔, acc ½; the other 10 EmotioNet AUs: F1 0, acc 1.
    # AU7 (not an EmotioNet AU) is wrong on both rows and must not count.
    labels = {"au": _au_columns({1: [1, 0], 7: [1, 1]}, 2), "au_mask": np.ones((2, taxonomy.NUM_AUS))}
    preds = {"au": _au_columns({1: [.8, .6], 7: [0, 0]}, 2)}
    got = score_database("synth-emotionet", preds, labels)
    f1, acc = (2 / 3) / 11, (0.5 + 10) / 11
    assert got["au_f1"] == pytest.approx(f1)
    assert got["au_mean_acc"] == pytest.approx(acc)
    assert got["au_afa"] == pytest.approx((f1 + acc) / 2)


def test_au_threshold_moves_the_decision():
    labels = {"au": _au_columns({1: [1, 0]}, 2), "au_mask": np.ones((2, taxonomy.NUM_AUS))}
    preds = {"au": _au_columns({1: [.8, .6]}, 2)}
    # threshold .7: AU1 predicted [1, 0] → F1 1 on AU1, 0 on the other 11 DISFA AUs.
    got = score_database("synth-disfa", preds, labels, au_threshold=0.7)
    assert got["au_f1"] == pytest.approx(1 / 12)


def test_va_only_database_with_no_labelled_rows_is_left_out():
    labels = {"va": np.zeros((3, 2)), "va_mask": np.zeros(3)}
    assert score_database("synth-affwild", {"va": np.ones((3, 2))}, labels) == {}


def test_table_puts_the_papers_numbers_beside_ours():
    results = {"synth-rafdb": {"expr_mean_diag": 0.5, "n_expr": 6},
               "synth-affwild": {"ccc_v": 0.25, "ccc_a": 0.125}}
    plain = format_table(results)
    # Tables 3–4, FaceBehaviorNet: RAF-DB mean diagonal 0.67; Aff-Wild CCC 0.55 / 0.36.
    assert "| fbn-keras (ours) | 0.500 |" in plain
    assert "| FaceBehaviorNet (paper) | 0.670 |" in plain
    assert "| fbn-keras (ours) | 0.250 | 0.125 |" in plain
    assert "0.550 | 0.360 |" in plain
    # With the run's coupling, the matching Table 6 row: soft co-annotation + DM gives 0.68 on RAF-DB.
    assert "| 0.680 |" in format_table(results, coupling="soft+dm")
    assert paper_column("soft+dm")[("affwild", "ccc_v")] == 0.59


def test_rafdb_compound_zero_shot_mean_diagonal_by_hand():
    # Both rows look happily surprised: p(happiness) = p(surprise) = ½, every AU of that class
    # (1, 2, 12, 25, 5, 26) at probability 1, positive valence → its eq. 10 score is 1 + 1 + 1 = 3,
    # which no other class reaches. Row 0 is labelled happily surprised (right), row 1 fearfully
    # surprised (wrong): mean diagonal over the two classes present = (1 + 0) / 2.
    expr = np.zeros((2, 7), np.float32)
    expr[:, [taxonomy.expression_index("happiness"), taxonomy.expression_index("surprise")]] = 0.5
    au = _au_columns({a: [1.0, 1.0] for a in (1, 2, 12, 25, 5, 26)}, 2)
    labels = {"expr": np.array([-1, -1]),
              "compound": np.array([taxonomy.compound_index("happily surprised"),
                                    taxonomy.compound_index("fearfully surprised")])}
    preds = {"expr": expr, "au": au, "va": np.array([[0.5, 0.2], [0.5, 0.2]], np.float32)}
    got = score_database("synth-rafdb-compound", preds, labels)
    assert got == {"compound_mean_diag": pytest.approx(0.5), "n_compound": 2}
