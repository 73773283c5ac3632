"""Evaluation metrics against confusion-matrix numbers worked out by hand."""

import numpy as np
import pytest

from fbn_keras import metrics

# Rows true class, columns predicted (by hand):
#   class 0: [2, 1, 0, 0]   recall 2/3, precision 2/4
#   class 1: [0, 1, 1, 0]   recall 1/2, precision 1/2
#   class 2: [1, 0, 3, 0]   recall 3/4, precision 3/4
#   class 3: [1, 0, 0, 0]   recall 0,   precision 0 (never predicted)
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 2, 0, 2, 0])
F1S = [4 / 7, 0.5, 0.75, 0.0]              # class 0: 2·½·⅔/(½+⅔) = 4/7
RECALLS = [2 / 3, 0.5, 0.75, 0.0]


def test_confusion_matrix_by_hand():
    want = [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 3, 0], [1, 0, 0, 0]]
    np.testing.assert_array_equal(metrics.confusion(Y_TRUE, Y_PRED, num_classes=4), want)


def test_accuracy_macro_f1_mean_diagonal_uar():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)
    assert metrics.macro_f1(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx(np.mean(F1S))
    # a 5th class absent from the labels is left out of the macro mean, as it is of the recall means
    assert metrics.macro_f1(Y_TRUE, Y_PRED, num_classes=5) == pytest.approx(np.mean(F1S))
    assert metrics.mean_diagonal(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx(np.mean(RECALLS))
    # mean diagonal and UAR run over the classes present in y_true only
    assert metrics.mean_diagonal(Y_TRUE, Y_PRED, num_classes=5) == pytest.approx(np.mean(RECALLS))
    assert metrics.uar(Y_TRUE, Y_PRED, num_classes=5) == pytest.approx(np.mean(RECALLS))
    assert metrics.abaw_expr_score(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx(
        0.67 * np.mean(F1S) + 0.33 * 0.6)


def test_classes_absent_from_the_labels_are_left_out_of_all_three_means():
    # Class 2 is predicted once but never labelled. Class 0: tp 1, fn 1, fp 0 → P 1, R ½, F1 ⅔;
    # class 1: tp 2 → F1 1, R 1. Over the labelled classes: macro F1 (⅔ + 1)/2 = 5/6, recall (½ + 1)/2 = ¾.
    # Counting class 2 as F1 0 (a fixed class list) would give 5/9 instead.
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]
    assert metrics.macro_f1(y_true, y_pred, num_classes=3) == pytest.approx(5 / 6)
    assert metrics.uar(y_true, y_pred, num_classes=3) == pytest.approx(0.75)
    assert metrics.mean_diagonal(y_true, y_pred, num_classes=3) == pytest.approx(0.75)


def test_au_metrics_score_each_au_on_its_annotated_rows():
    y_true = np.array([[1, 0], [1, 1], [0, 1]])
    y_pred = np.array([[1, 0], [0, 0], [0, 1]])
    mask = np.array([[1, 1], [1, 0], [1, 1]])     # row 1 leaves AU B unannotated (EmotioNet's 999)
    # AU A, all 3 rows: tp 1, fn 1 → F1 ⅔, accuracy ⅔. AU B, rows 0 and 2: [0, 1] vs [0, 1] → F1 1, accuracy 1.
    assert metrics.f1_mean(y_true, y_pred, mask) == pytest.approx((2 / 3 + 1) / 2)
    assert metrics.au_accuracy_mean(y_true, y_pred, mask) == pytest.approx((2 / 3 + 1) / 2)
    assert metrics.afa(y_true, y_pred, mask) == pytest.approx(5 / 6)
    # Without the mask row 1's AU B (true 1, predicted 0) is a miss: F1 ⅔, accuracy ⅔.
    assert metrics.f1_mean(y_true, y_pred) == pytest.approx(2 / 3)
    # An AU that no row annotates is left out of the mean.
    assert metrics.f1_mean(y_true, y_pred, np.array([[1, 0]] * 3)) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="leaves no annotated entry"):
        metrics.f1_mean(y_true, y_pred, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"mask must have the labels' shape \(3, 2\)"):
        metrics.au_accuracy_mean(y_true, y_pred, np.ones((3, 3)))


def test_au_f1_mean_and_afa():
    y_true = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    y_pred = np.array([[1, 0], [0, 0], [1, 0], [0, 1]])
    # AU A: tp 1, fp 1, fn 1 → F1 ½, accuracy 2/4; AU B: no positives, one false alarm → F1 0, accuracy 3/4
    assert metrics.f1_mean(y_true, y_pred) == pytest.approx(0.25)
    assert metrics.au_accuracy_mean(y_true, y_pred) == pytest.approx(0.625)
    assert metrics.afa(y_true, y_pred) == pytest.approx(0.4375)


def test_ccc_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    # shifted copy: 2s²/(2s² + c²) with s² = 1.25, c = 1
    assert metrics.ccc(y, y + 1) == pytest.approx(2.5 / 3.5)
    assert metrics.ccc(y, y) == pytest.approx(1.0)
    assert metrics.ccc([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # two columns: the mean of the per-column CCCs
    both = metrics.ccc(np.stack([y, y], 1), np.stack([y + 1, y], 1))
    assert both == pytest.approx((2.5 / 3.5 + 1.0) / 2)
    assert metrics.ccc([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_clip_accuracy_majority_and_mean_probability():
    clips = np.array(["a", "a", "a", "b", "b", "c", "c", "c"])
    y_true = np.array([1, 1, 1, 0, 0, 2, 2, 2])
    votes = np.array([1, 1, 2, 2, 0, 0, 0, 2])     # a → 1 ✓, b tie 0/2 → 0 ✓, c → 0 ✗
    assert metrics.clip_accuracy(y_true, votes, clips) == pytest.approx(2 / 3)
    probs = np.zeros((8, 3))
    probs[np.arange(8), votes] = 1.0
    probs[5:7] = [0.6, 0.0, 0.4]                      # clip c: mean [0.4, 0, 0.6] → 2 ✓
    probs[3:5] = [[0.4, 0, 0.6], [0.9, 0, 0.1]]     # clip b: mean [0.65, 0, 0.35] → 0 ✓
    assert metrics.clip_accuracy(y_true, probs, clips) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different labels"):
        metrics.clip_accuracy([0, 1], [0, 1], ["x", "x"])


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.accuracy([], []), "accuracy: empty input"),
    (lambda: metrics.macro_f1([0, 1], [0]), r"same shape. Received \(2,\) and \(1,\)"),
    (lambda: metrics.macro_f1([0, -1], [0, 1]), r"y_true holds labels outside \[0, 7\).*\[-1\]"),
    (lambda: metrics.mean_diagonal([0, 9], [0, 1]), r"outside \[0, 7\).*\[9\]"),
    (lambda: metrics.uar([], [], 3), "uar: empty input"),
    (lambda: metrics.f1_mean([[0.2, 1]], [[1, 1]]), "y_true must be binary 0/1"),
    (lambda: metrics.f1_mean(np.zeros((0, 17)), np.zeros((0, 17))), "f1_mean: empty input"),
    (lambda: metrics.ccc([1.0, np.nan], [1.0, 2.0]), "NaN or inf"),
    (lambda: metrics.ccc([], []), "ccc: empty input"),
    (lambda: metrics.clip_accuracy([], [], []), "clip_accuracy: empty input"),
])
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_weighted_f1_by_hand():
    # supports 3, 2, 4, 1: (3·4/7 + 2·½ + 4·¾ + 1·0) / 10 = (12/7 + 4) / 10 = 4/7
    assert metrics.weighted_f1(Y_TRUE, Y_PRED, num_classes=4) == pytest.approx(4 / 7)
    # a class absent from the labels has weight 0; a prediction of it is still a miss: class 0 has
    # precision 1, recall ½, F1 ⅔; class 1 F1 1 → (2·⅔ + 1·1) / 3 = 7/9
    assert metrics.weighted_f1([0, 0, 1], [0, 2, 1], num_classes=3) == pytest.approx(7 / 9)
    with pytest.raises(ValueError, match=r"weighted_f1: y_true holds labels outside \[0, 7\)"):
        metrics.weighted_f1([0, -1], [0, 1])
