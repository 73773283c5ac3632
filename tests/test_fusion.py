"""Decision-level fusion (journal eq. 3) on a hand example."""

import numpy as np
import pytest

from fbn_keras.fusion import decision_fusion, fusion_weights


def test_eq3_by_hand():
    # CNN-1RNN: t = (0.4, 0.3); CNN-3RNN: t = (0.6, 0.1)
    preds = {"cnn1rnn": np.array([[0.5, -0.2], [0.0, 0.4]]),
             "cnn3rnn": np.array([[0.0, 0.6], [-0.5, 0.0]])}
    weights = fusion_weights({"cnn1rnn": {"ccc_v": 0.4, "ccc_a": 0.3, "n_va": 10}, "cnn3rnn": (0.6, 0.1)})
    assert weights == {"cnn1rnn": (0.4, 0.3), "cnn3rnn": (0.6, 0.1)}
    fused = decision_fusion(preds, weights)
    want = [[(0.4 * 0.5 + 0.6 * 0.0) / 1.0, (0.3 * -0.2 + 0.1 * 0.6) / 0.4],
            [(0.4 * 0.0 + 0.6 * -0.5) / 1.0, (0.3 * 0.4 + 0.1 * 0.0) / 0.4]]
    np.testing.assert_allclose(fused, want, atol=1e-12)          # [[0.2, 0.0], [-0.3, 0.3]]


def test_equal_weights_are_the_plain_mean_and_one_member_is_itself():
    a, b = np.array([[0.2, 0.4]]), np.array([[0.6, -0.4]])
    np.testing.assert_allclose(decision_fusion({"a": a, "b": b}, {"a": (0.5, 0.2), "b": (0.5, 0.2)}), [[0.4, 0.0]])
    np.testing.assert_allclose(decision_fusion({"a": a}, {"a": (0.3, 0.7)}), a)


def test_nonpositive_ccc_is_refused_or_clipped():
    preds = {"a": np.array([[0.2, 0.4]]), "b": np.array([[0.6, -0.4]])}
    weights = {"a": (0.5, -0.1), "b": (0.25, 0.3)}
    with pytest.raises(ValueError, match="positive validation CCCs"):
        decision_fusion(preds, weights)
    # clipped: 'a' leaves the arousal average; valence is (0.5·0.2 + 0.25·0.6) / 0.75
    np.testing.assert_allclose(decision_fusion(preds, weights, clip_nonpositive=True), [[0.25 / 0.75, -0.4]])
    with pytest.raises(ValueError, match=r"positive validation CCC for \['arousal'\]"):
        decision_fusion(preds, {"a": (0.5, 0.0), "b": (0.25, -0.3)}, clip_nonpositive=True)


@pytest.mark.parametrize("preds, weights, message", [
    ({"a": np.zeros((2, 2))}, {"b": (0.1, 0.1)}, "same members"),
    ({"a": np.zeros((2, 2)), "b": np.zeros((3, 2))}, {"a": (0.1, 0.1), "b": (0.1, 0.1)}, "one N"),
    ({"a": np.zeros((2, 3))}, {"a": (0.1, 0.1)}, r"\(N, 2\)"),
    ({"a": np.zeros((2, 2))}, {"a": (0.1, float("nan"))}, "finite"),
])
def test_bad_inputs_are_refused(preds, weights, message):
    with pytest.raises(ValueError, match=message):
        decision_fusion(preds, weights)


def test_fusion_weights_checks_its_input():
    with pytest.raises(ValueError, match="need 'ccc_v' and 'ccc_a'"):
        fusion_weights({"a": {"ccc_v": 0.3}})
    with pytest.raises(ValueError, match=r"must be \(ccc_v, ccc_a\)"):
        fusion_weights({"a": (0.3,)})
    with pytest.raises(ValueError, match="at least one"):
        fusion_weights({})


def test_fusion_weights_read_the_sequence_evaluator_names():
    from fbn_keras import fusion

    weights = fusion.fusion_weights({"a": {"ccc_valence": 0.4, "ccc_arousal": 0.2, "unit": "utterance"},
                                     "b": (0.1, 0.3)})
    assert weights == {"a": (0.4, 0.2), "b": (0.1, 0.3)}
