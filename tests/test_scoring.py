"""evaluate.score_database: per-AU masks and a database's own expression classes, against numbers by hand."""

import logging

import numpy as np
import pytest

from fbn_keras import taxonomy
from fbn_keras.evaluate import score_database


def _au_columns(values_by_au, n):
    out = np.zeros((n, taxonomy.NUM_AUS), np.float32)
    for au, col in values_by_au.items():
        out[:, taxonomy.au_index(au)] = col
    return out


def test_an_unannotated_au_drops_that_au_of_the_frame_not_the_frame():
    # Two EmotioNet frames; frame 1 has AU2 coded 999 (δ = 0), every other of the 11 AUs annotated.
    # AU1: truth [0, 1], predicted [0, 1] → F1 1. AU2 on frame 0 only: truth 1, predicted 1 → F1 1
    # (frame 1's AU2, truth 1 but predicted 0, must not count). The other 9 AUs: no positives → F1 0.
    # Every AU is right on every annotated entry → mean accuracy 1.
    mask = np.tile(taxonomy.au_mask_for(taxonomy.DATABASES["emotionet"].aus), (2, 1))
    mask[1, taxonomy.au_index(2)] = 0.0
    labels = {"au": _au_columns({1: [0, 1], 2: [1, 1]}, 2), "au_mask": mask}
    preds = {"au": _au_columns({1: [0.2, 0.9], 2: [0.9, 0.1]}, 2)}
    got = score_database("synth-emotionet", preds, labels)
    assert got["n_au"] == 2
    assert got["au_f1"] == pytest.approx(2 / 11)
    assert got["au_mean_acc"] == pytest.approx(1.0)
    assert got["au_afa"] == pytest.approx((2 / 11 + 1) / 2)
    # Dropping frame 1 altogether (the rule before) would give AU1 truth [0], predicted [0] → F1 0: 1/11.


def test_an_au_no_frame_annotates_is_left_out_with_a_warning(caplog):
    # DISFA's 12 AUs, AU4 never annotated: AU1 right on both frames (F1 1), 10 AUs with no positives (F1 0).
    mask = np.tile(taxonomy.au_mask_for(taxonomy.DATABASES["disfa"].aus), (2, 1))
    mask[:, taxonomy.au_index(4)] = 0.0
    labels = {"au": _au_columns({1: [1, 0], 4: [1, 1]}, 2), "au_mask": mask}
    preds = {"au": _au_columns({1: [0.9, 0.1], 4: [0.0, 0.0]}, 2)}
    with caplog.at_level(logging.WARNING, logger="fbn_keras.evaluate"):
        got = score_database("synth-disfa", preds, labels)
    assert got["au_f1"] == pytest.approx(1 / 11)
    assert "no frame annotates AU4" in caplog.text


def test_a_database_without_neutral_is_scored_over_its_own_six_classes():
    anger, happiness, surprise, neutral = (taxonomy.expression_index(e)
                                           for e in ("anger", "happiness", "surprise", "neutral"))
    probs = np.full((5, 7), 0.01, np.float32)
    probs[0, [neutral, anger]] = [0.5, 0.3]         # over the six classes: anger (right)
    probs[1, happiness] = 0.9                       # happiness (right)
    probs[2, [neutral, surprise, happiness]] = [0.6, 0.3, 0.05]   # surprise (wrong: labelled happiness)
    probs[3, surprise] = 0.8                        # surprise (right)
    probs[4, neutral] = 0.9                         # labelled neutral: not a class of this database
    labels = {"expr": np.array([anger, happiness, happiness, surprise, neutral]),
              "compound": np.full(5, -1)}
    preds = {"expr": probs, "au": np.zeros((5, taxonomy.NUM_AUS), np.float32), "va": np.zeros((5, 2), np.float32)}
    got = score_database("emotionet-compound", preds, labels)
    # anger F1 1; happiness tp 1, fn 1 → ⅔; surprise tp 1, fp 1 → ⅔; the 3 classes absent from the
    # labels are left out: (1 + ⅔ + ⅔)/3 = 7/9. Over all 7 classes with neutral predictable it would be
    # [neutral, happiness, neutral, surprise] → (⅔ + 1)/7 = 5/21.
    assert got["n_expr"] == 4
    assert got["expr_f1"] == pytest.approx(7 / 9)


def test_seven_class_databases_keep_neutral():
    # RAF-DB: neutral is one of its classes, so a neutral prediction counts. Rows: neutral → neutral (right),
    # anger → neutral (wrong): mean diagonal over the two labelled classes = (1 + 0)/2.
    probs = np.full((2, 7), 0.01, np.float32)
    probs[:, 0] = 0.9
    got = score_database("synth-rafdb", {"expr": probs}, {"expr": np.array([0, 1])})
    assert got["expr_mean_diag"] == pytest.approx(0.5)
