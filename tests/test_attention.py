"""The attention GRU cell (TF1 AttentionCellWrapper form) and VGGFACE-GRU-attention (multi-task learning and
generation paper, Section IV-B; docs/FAITHFULNESS.md, "VGGFACE-GRU-attention")."""

import keras
import numpy as np
import pytest

from fbn_keras import attention
from fbn_keras.config import preset


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_reference(cell, x):
    """Step-by-step numpy forward pass of the cell from the zero state, written from the equations.

    GRU with the reset gate after the recurrent matmul (Keras' GRUCell; gates z, r, h in that order).
    Returns outputs (B, T, A), read-outs a_t (B, T, A) and α (B, T, L).
    """
    w = {v.path.split("/")[-1]: np.asarray(v.numpy(), np.float64) for v in cell.weights}
    W1, b1 = w["input_kernel"], w["input_bias"]
    Wk, Wq, bq, v = w["key_kernel"], w["query_kernel"], w["query_bias"], w["score_vector"]
    W2, b2 = w["output_kernel"], w["output_bias"]
    K, U, B = w["kernel"], w["recurrent_kernel"], w["bias"]
    u, L, A = cell.units, cell.attn_length, cell.attn_size
    n = x.shape[0]
    s, a = np.zeros((n, u)), np.zeros((n, A))
    window, filled = [], 0               # window: list of outputs, oldest first, at most L
    outs, reads, alphas = [], [], []
    for t in range(x.shape[1]):
        xp = np.concatenate([x[:, t], a], -1) @ W1 + b1
        xk, hk = xp @ K + B[0], s @ U + B[1]
        z = _sigmoid(xk[:, :u] + hk[:, :u])
        r = _sigmoid(xk[:, u:2 * u] + hk[:, u:2 * u])
        cand = np.tanh(xk[:, 2 * u:] + r * hk[:, 2 * u:])
        s = z * s + (1 - z) * cand
        alpha = np.zeros((n, L))
        a = np.zeros((n, A))
        if filled:
            H = np.stack(window, 1)                                      # (n, filled, A)
            e = np.tanh(H @ Wk + (s @ Wq + bq)[:, None, :]) @ v          # (n, filled)
            p = np.exp(e - e.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            alpha[:, L - filled:] = p                                    # newest slot last
            a = (p[:, :, None] * H).sum(1)
        o = np.concatenate([s, a], -1) @ W2 + b2
        window = (window + [o])[-L:]
        filled = len(window)
        outs.append(o), reads.append(a), alphas.append(alpha)
    return np.stack(outs, 1), np.stack(reads, 1), np.stack(alphas, 1)


def _cell(units=4, length=3, d=3, seed=0, attn_size=None):
    """A built cell with every weight, biases included, random and non-zero."""
    cell = attention.AttentionGRUCell(units, attn_length=length, attn_size=attn_size)
    cell.build((None, d))
    rng = np.random.default_rng(seed)
    for var in cell.weights:
        var.assign(rng.normal(scale=0.6, size=var.shape).astype("float32"))
    return cell


def _inputs(b=2, t=7, d=3, seed=1):
    return np.random.default_rng(seed).normal(size=(b, t, d)).astype("float32")


def test_alpha_sums_to_one_over_filled_slots_and_is_zero_elsewhere():
    length = 4
    _, alpha = attention.run_cell(_cell(length=length), _inputs(t=7))
    assert alpha.shape == (2, 7, length)
    np.testing.assert_array_equal(alpha[:, 0], 0.0)       # t = 0: empty window, no weight anywhere
    for t in range(1, 7):
        filled = min(t, length)                           # the outputs o_0 .. o_{t-1}, newest last
        np.testing.assert_allclose(alpha[:, t, length - filled:].sum(-1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(alpha[:, t, :length - filled], 0.0)
        assert np.all(alpha[:, t, length - filled:] > 0)


def test_layer_matches_numpy_reference():
    cell = _cell(units=4, length=3, d=3, attn_size=5)
    x = _inputs(b=2, t=6, d=3)
    want_out, want_read, want_alpha = _numpy_reference(cell, x.astype(np.float64))
    layer = keras.layers.RNN(cell, return_sequences=True)
    np.testing.assert_allclose(np.asarray(layer(x)), want_out, atol=1e-5)
    out, alpha = attention.run_cell(cell, x)
    np.testing.assert_allclose(out, want_out, atol=1e-5)
    np.testing.assert_allclose(alpha, want_alpha, atol=1e-5)
    assert np.abs(want_read[:, 1:]).max() > 0.1           # the read-outs a_t take part


def test_equal_scores_read_out_the_mean_of_the_window():
    """W_k = 0: every slot scores vᵀ tanh(W_q s_t + b_q), so α is uniform and a_t = mean of the filled slots."""
    length = 3
    cell = _cell(length=length)
    cell.key_kernel.assign(np.zeros(cell.key_kernel.shape, "float32"))
    x = _inputs(b=1, t=6)
    states = cell.get_initial_state(batch_size=1)
    outputs = []
    for t in range(6):
        out, states, alpha = cell.step(x[:, t], states)
        read = np.asarray(states[1])
        if t == 0:
            np.testing.assert_array_equal(read, 0.0)
        else:
            recent = outputs[-length:]
            np.testing.assert_allclose(read[0], np.mean(recent, axis=0), atol=1e-5)
            np.testing.assert_allclose(np.asarray(alpha)[0, length - len(recent):], 1.0 / len(recent), atol=1e-6)
        outputs.append(np.asarray(out)[0])


def test_one_slot_scoring_far_higher_is_read_out_alone_unless_unfilled():
    """W_k = 10·I, W_q = 0, v = 50·e_0: e_j = 50·tanh(10·H_j[0]); the slot with H_j[0] = 1 scores 50, the
    others 0, so a_t = that slot's vector. Marked unfilled, it gets weight 0 and the read-out is the mean
    of the other filled slots."""
    units, length = 4, 4
    cell = _cell(units=units, length=length)
    cell.key_kernel.assign(10.0 * np.eye(units, dtype="float32"))
    cell.query_kernel.assign(np.zeros((units, units), "float32"))
    cell.query_bias.assign(np.zeros(units, "float32"))
    cell.score_vector.assign(np.array([50, 0, 0, 0], "float32"))
    window = np.zeros((1, length, units), "float32")
    window[0, 1] = [1.0, 2.0, -3.0, 0.5]                 # the high-scoring slot
    window[0, 2] = [0.0, -1.0, 4.0, 2.0]
    window[0, 3] = [0.0, 3.0, 1.0, -2.0]
    x = _inputs(b=1, t=1, d=3)[:, 0]
    zeros = np.zeros((1, units), "float32")

    def read(filled):
        states = [zeros, zeros, window.reshape(1, -1), np.array([filled], "float32")]
        _, new_states, alpha = cell.step(x, states)
        return np.asarray(new_states[1])[0], np.asarray(alpha)[0]

    a, alpha = read([0, 1, 1, 1])
    np.testing.assert_allclose(a, window[0, 1], atol=1e-5)
    np.testing.assert_allclose(alpha, [0, 1, 0, 0], atol=1e-6)
    a, alpha = read([0, 0, 1, 1])
    np.testing.assert_allclose(a, (window[0, 2] + window[0, 3]) / 2, atol=1e-5)
    np.testing.assert_allclose(alpha, [0, 0, 0.5, 0.5], atol=1e-6)


def test_masked_softmax_hand_values():
    scores = np.array([[1.0, 2.0, 3.0], [5.0, 0.0, 0.0]], "float32")
    filled = np.array([[1, 0, 1], [0, 0, 0]], "float32")
    got = np.asarray(attention.masked_softmax(scores, filled))
    e1, e3 = np.exp(1.0), np.exp(3.0)
    np.testing.assert_allclose(got, [[e1 / (e1 + e3), 0, e3 / (e1 + e3)], [0, 0, 0]], atol=1e-6)


def test_cell_save_load_round_trip(tmp_path):
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, attention.attention_gru(4, attn_length=3)(inputs))
    for var in model.weights:
        var.assign(np.random.default_rng(5).normal(scale=0.5, size=var.shape).astype("float32"))
    x = _inputs(b=2, t=5)
    path = tmp_path / "cell.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    cell = loaded.layers[-1].cell
    assert isinstance(cell, attention.AttentionGRUCell)
    assert (cell.units, cell.attn_length, cell.attn_size, cell.attn_vec_size) == (4, 3, 4, 4)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_cell_rejects_bad_sizes():
    with pytest.raises(ValueError, match="attn_length must be a positive integer. Received: attn_length=0"):
        attention.AttentionGRUCell(4, attn_length=0)
    with pytest.raises(ValueError, match="units must be a positive integer"):
        attention.AttentionGRUCell(2.5)
    with pytest.raises(ValueError, match=r"inputs must be \(B, T, D\)"):
        attention.run_cell(_cell(), np.zeros((2, 3), "float32"))


# === The network ===

def _tiny(**overrides):
    return preset("tiny", image_size=32, **overrides)


def test_model_shapes_any_length_and_ablation():
    model = attention.build_attention_model(_tiny())
    for t in (3, 5):
        out = model({"frames": np.zeros((2, t, 32, 32, 3), "float32")})
        assert tuple(out["va"].shape) == (2, t, 2) and tuple(out["expr"].shape) == (2, t, 7)
    assert isinstance(model.get_layer("attention_gru").cell, attention.AttentionGRUCell)
    assert model.get_layer("attention_gru").cell.attn_length == 32
    plain = attention.build_attention_model(_tiny(attention=False, attention_length=4))
    names = {layer.name for layer in plain.layers}
    assert "gru2" in names and "attention_gru" not in names
    assert tuple(plain({"frames": np.zeros((1, 4, 32, 32, 3), "float32")})["expr"].shape) == (1, 4, 7)


def test_freeze_cnn_leaves_only_rnn_attention_and_output_trainable():
    model = attention.build_attention_model(_tiny(freeze_cnn=True, attention_length=4))
    trainable = {v.path.split("/")[0] for v in model.trainable_weights}
    assert trainable == {"fc", "gru1", "attention_gru", "output"}
    conv = model.get_layer("conv1_1")
    assert not conv.trainable and all(w is not conv.weights[0] for w in model.trainable_weights)
    end_to_end = attention.build_attention_model(_tiny(attention_length=4))
    assert len(end_to_end.trainable_weights) == len(model.trainable_weights) + 26   # 13 convs × (kernel, bias)


def test_model_save_load_round_trip(tmp_path):
    model = attention.build_attention_model(_tiny(attention_length=4))
    x = {"frames": np.random.default_rng(2).uniform(-1, 1, (1, 6, 32, 32, 3)).astype("float32")}
    path = tmp_path / "attn.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for head in ("va", "expr"):
        np.testing.assert_allclose(np.asarray(loaded(x)[head]), np.asarray(model(x)[head]), atol=1e-5)


def test_parameter_count_at_paper_size():
    """96×96, width 1, FC 4096, GRU 128, attention length 32 (length adds no weights)."""
    model = attention.build_attention_model(preset("paper"), load_weights=False)
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    cnn = sum(3 * 3 * cin * cout + cout for cin, cout in convs)
    assert cnn == 14_714_688
    fc = (3 * 3 * 512) * 4096 + 4096                               # flatten of 3×3×512 → 4096
    u = 128

    def gru(d):                                                    # kernel, recurrent kernel, 2 bias rows
        return 3 * (d * u + u * u) + 2 * 3 * u

    gru1 = gru(4096)
    attn = ((128 + 128) * 128 + 128                                # W1 [x; a] → x', with bias
            + gru(128)                                             # the wrapped GRU on x'
            + 128 * 128                                            # W_k (no bias)
            + 128 * 128 + 128                                      # W_q with bias
            + 128                                                  # v
            + (128 + 128) * 128 + 128)                             # W2 [h; a] → o, with bias
    output = 128 * 9 + 9
    assert sum(model.get_layer(f"conv{b}_{i}").count_params() for b, n in enumerate((2, 2, 3, 3, 3), 1)
               for i in range(1, n + 1)) == cnn
    assert model.get_layer("attention_gru").count_params() == attn == 197_888
    assert model.count_params() == cnn + fc + gru1 + attn + output == 35_414_985


def test_model_rejects_other_backbones():
    with pytest.raises(ValueError, match="VGG-FACE trunk. Received: backbone='resnet50'"):
        attention.build_attention_model(_tiny(backbone="resnet50"))


def test_init_from_a_trained_network_loads_conv_fc_and_gru_by_name(tmp_path):
    source = attention.build_attention_model(_tiny(attention_length=4))
    for var in source.weights:
        var.assign(np.random.default_rng(7).normal(scale=0.1, size=var.shape).astype("float32"))
    path = tmp_path / "source.keras"
    source.save(path)
    target = attention.build_attention_model(_tiny(attention_length=4, init_from=str(path)))
    for name in ("conv1_1", "conv5_3", "fc", "gru1", "attention_gru"):
        for got, want in zip(target.get_layer(name).weights, source.get_layer(name).weights):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # the output layer is the paper's to replace: never copied
    assert not np.array_equal(np.asarray(target.get_layer("output").weights[0]),
                              np.asarray(source.get_layer("output").weights[0]))


def test_every_cell_weight_gets_a_gradient():
    import tensorflow as tf

    cell = _cell(units=4, length=3)
    layer = keras.layers.RNN(cell, return_sequences=True)
    x = tf.constant(_inputs(b=2, t=5))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    grads = tape.gradient(loss, cell.trainable_weights)
    assert len(grads) == 11                  # W1, b1, GRU kernel/recurrent/bias, W_k, W_q, b_q, v, W2, b2
    for var, grad in zip(cell.trainable_weights, grads):
        assert grad is not None and np.abs(np.asarray(grad)).max() > 1e-6, var.path
