"""FaceRNET (Kollias et al., ABAW5): eq. 4's Pearson loss, the Mask layer, routing under Adam, the model.

Numbers are checked against numpy / scipy and hand arithmetic, never against the module's own output.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf
from scipy import stats

from fbn_keras import facernet, losses
from fbn_keras.config import Config, preset

T = 4                                   # frames of the tiny test models


def tiny_config(**overrides):
    return preset("tiny", image_size=32, facernet_frames=T, **overrides)


def _batch(rng, batch=3, frames=T):
    return {"frames": rng.uniform(-1, 1, (batch, frames, 32, 32, 3)).astype(np.float32),
            "length": np.array([2, 4, 1][:batch], np.int32)}


# === eq. 4 ===

def _hand_pearson_loss(y, p):
    """1 − mean over columns of scipy's Pearson r (float64)."""
    return 1.0 - np.mean([stats.pearsonr(y[:, i], p[:, i])[0] for i in range(y.shape[1])])


def test_pearson_loss_matches_scipy(rng):
    y = rng.uniform(0, 1, (9, 7)).astype(np.float32)
    p = (0.6 * y + 0.4 * rng.uniform(0, 1, (9, 7))).astype(np.float32)
    got = float(facernet.pearson_loss(y, p))
    assert got == pytest.approx(_hand_pearson_loss(y, p), abs=1e-5)
    # Pearson is scale- and shift-invariant in the predictions (why a sigmoid output is enough)
    assert float(facernet.pearson_loss(y, 3.0 * p - 1.0)) == pytest.approx(got, abs=1e-5)


def test_pearson_loss_mask_and_constant_column(rng):
    y = rng.uniform(0, 1, (6, 7)).astype(np.float32)
    p = rng.uniform(0, 1, (6, 7)).astype(np.float32)
    mask = np.array([1, 1, 0, 1, 1, 1], np.float32)
    y_bad = y.copy()
    y_bad[2] = np.nan                                      # a masked row's NaN must not leak
    keep = mask > 0
    assert float(facernet.pearson_loss(y_bad, p, mask)) == pytest.approx(_hand_pearson_loss(y[keep], p[keep]),
                                                                         abs=1e-5)
    # a constant prediction column: ρ = 0 from the ε under the square root, not NaN
    p[:, 0] = 0.5
    rho, n = facernet.pearson(y, p)
    assert float(n) == 6 and float(rho[0]) == 0.0 and np.all(np.isfinite(rho))
    assert float(facernet.pearson_loss(y[:0], p[:0])) == 0.0         # no row: 0


def test_pearson_loss_two_replicas_equal_one_device(two_cpu_strategy, one_cpu_strategy):
    """Each replica's share, summed, is the global-batch loss; the summed gradients are its gradient."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.uniform(0, 1, (8, 7)).astype(np.float32)
    y[:5] += 0.5                                           # halves that differ: per-replica ρ ≠ global ρ
    w0 = rng.normal(scale=0.5, size=(3, 7)).astype(np.float32)

    def run(strategy):
        with strategy.scope():
            w = tf.Variable(w0)
        parts = [(x[:5], y[:5]), (x[5:], y[5:])] if strategy.num_replicas_in_sync == 2 else [(x, y)]
        values = strategy.experimental_distribute_values_from_function(lambda ctx: parts[ctx.replica_id_in_sync_group])

        @tf.function
        def step(batch):
            def replica(data):
                xb, yb = data
                with tf.GradientTape() as tape:
                    loss = facernet.pearson_loss(yb, tf.matmul(xb, w))
                return loss, tape.gradient(loss, w)
            loss, grad = strategy.run(replica, args=(batch,))
            return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", grad, axis=None)
        loss, grad = step(values)
        return loss.numpy(), grad.numpy()

    loss2, grad2 = run(two_cpu_strategy)
    loss1, grad1 = run(one_cpu_strategy)
    want = _hand_pearson_loss(y.astype(np.float64), x.astype(np.float64) @ w0)
    assert loss1 == pytest.approx(want, abs=1e-5) and loss2 == pytest.approx(want, abs=1e-5)
    np.testing.assert_allclose(grad2, grad1, atol=1e-5)
    assert np.abs(grad1).max() > 1e-3
    naive = np.mean([_hand_pearson_loss(y[s], x[s] @ w0) for s in (slice(0, 5), slice(5, 8))])
    assert abs(naive - want) > 0.05                        # per-replica ρ would be another number


def test_intensity_loss_terms(rng):
    y = rng.uniform(0, 1, (5, 7)).astype(np.float32)
    p = rng.uniform(0, 1, (5, 7)).astype(np.float32)
    out = facernet.IntensityLoss()({"intensity": p}, {"intensity": y})
    assert float(out["total"]) == pytest.approx(_hand_pearson_loss(y, p), abs=1e-5)
    with pytest.raises(KeyError, match="intensity"):
        facernet.IntensityLoss()({"intensity": p}, {"va": y})


def test_rec_loss_is_the_multitask_loss_with_distribution_matching():
    loss = facernet.rec_loss(tiny_config(coupling="none", tasks="va"))
    assert isinstance(loss, losses.MultiTaskLoss)
    assert loss.term_names() == ("expr", "au", "va", "dm")               # eq. 3: CCE, BCE, CCC, DM


# === Mask layer ===

def test_length_mask_zeroes_exactly_the_frames_past_the_length(rng):
    x = rng.normal(size=(3, 5, 2)).astype(np.float32) + 3.0              # no zero in the input
    lengths = np.array([0, 2, 5], np.int32)
    got = np.asarray(facernet.LengthMask()([x, lengths]))
    want = x.copy()
    want[0, :] = 0
    want[1, 2:] = 0
    np.testing.assert_array_equal(got, want)


def test_length_mask_serialises():
    layer = facernet.LengthMask(route=False, name="m")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, facernet.LengthMask) and again.route is False


# === Routing ===

def test_routed_rows_are_those_of_frames_past_the_longest_video():
    rows = np.asarray(facernet.routed_rows(np.array([3, 5]), 6, 2))
    # frames 0..4 are routed by the 5-frame video (rows 0..9); frame 5 by none (rows 10, 11)
    np.testing.assert_array_equal(rows, [False] * 10 + [True] * 2)
    assert not np.asarray(facernet.routed_rows(np.array([6, 1]), 6, 2)).any()


def _routing_model(frames=5, units=3):
    seq = keras.Input((frames, units), name="sequence")
    length = keras.Input((), dtype="int32", name="length")
    x = facernet.LengthMask(route=True, name="mask")([seq, length])
    x = keras.layers.Flatten(name="concat_frames")(x)
    x = keras.layers.Dense(4, activation="tanh", name=facernet.ROUTED_DENSE)(x)   # no dead unit
    out = keras.layers.Dense(7, activation="sigmoid", name="intensity")(x)
    return keras.Model({"sequence": seq, "length": length}, {"intensity": out})


def _adam_step(model, optimizer, inputs, labels, hook=None):
    snapshot = facernet.routing_snapshot(model)
    with tf.GradientTape() as tape:
        loss = facernet.pearson_loss(labels, model(inputs)["intensity"])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    if hook is not None:
        hook(inputs, snapshot)
    return grads


def test_routing_keeps_unrouted_rows_bit_identical_under_adam_where_zeroing_does_not():
    rng = np.random.default_rng(1)
    frames, units = 5, 3
    seq = rng.normal(size=(4, frames, units)).astype(np.float32)
    labels = rng.uniform(0, 1, (4, 7)).astype(np.float32)
    full = {"sequence": seq, "length": np.full(4, frames, np.int32)}
    short = {"sequence": seq, "length": np.array([2, 3, 1, 3], np.int32)}      # max(l) = 3: rows 9..14 unrouted
    unrouted = np.arange(frames * units) >= 3 * units

    results = {}
    for mode in ("zero", "route"):
        keras.utils.set_random_seed(0)
        model = _routing_model(frames, units)
        optimizer = keras.optimizers.Adam(1e-2)
        hook = facernet.routing_hook(model)
        assert hook is not None
        _adam_step(model, optimizer, full, labels)              # every row routed: Adam's moments non-zero
        before = np.array(model.get_layer(facernet.ROUTED_DENSE).kernel.numpy())
        grads = _adam_step(model, optimizer, short, labels, hook if mode == "route" else None)
        after = model.get_layer(facernet.ROUTED_DENSE).kernel.numpy()
        kernel_grad = np.asarray(grads[0])
        assert np.all(kernel_grad[unrouted] == 0)               # zeroed inputs: zero gradient on those rows
        results[mode] = (before, after)

    before, after = results["zero"]
    assert np.abs(after[unrouted] - before[unrouted]).min() > 0    # plain zeroing: Adam still moves them
    before, after = results["route"]
    np.testing.assert_array_equal(after[unrouted], before[unrouted])   # routing: bit-identical
    assert np.abs(after[~unrouted] - before[~unrouted]).max() > 0      # the routed rows do learn


def test_apply_routing_restores_only_the_given_rows():
    var = keras.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))
    before = np.array(var.numpy())
    var.assign(var.value + 10.0)
    facernet.apply_routing(var, before, np.array([False, True, False]))
    np.testing.assert_array_equal(var.numpy(), [[10, 11], [2, 3], [14, 15]])


# === The model ===

def test_build_facernet_shapes_rec_and_parameters(rng):
    config = tiny_config()
    model = facernet.build_facernet(config)
    out = model(_batch(rng))
    assert set(out) == {"intensity"} and out["intensity"].shape == (3, 7)
    assert np.all((np.asarray(out["intensity"]) > 0) & (np.asarray(out["intensity"]) < 1))
    rec = model.get_layer("rec")
    assert set(rec.output) == {"va", "expr", "au"}
    # GRU on the 26-d representation (2 + 7 + 17), 8 units (tiny), Keras' reset_after form: 3 gates ×
    # (input kernel + recurrent kernel + 2 biases)
    assert model.get_layer("gru").count_params() == 3 * (26 * 8 + 8 * 8 + 2 * 8)
    assert model.get_layer("routed_dense").count_params() == T * 8 * 32 + 32
    assert model.get_layer("intensity").count_params() == 32 * 7 + 7


def test_build_facernet_paper_head_sizes():
    # The paper's sizes (Section 3.3): 26-d input, GRU 128, t = 480, dense 32, output 7; REC not built here.
    gru = keras.layers.GRU(128, return_sequences=True)
    gru.build((None, 480, 26))
    assert gru.count_params() == 3 * (26 * 128 + 128 * 128 + 2 * 128)
    assert Config().facernet_frames * 128 == 61_440                      # the concatenated outputs


@pytest.mark.parametrize("features, width", [("va", 2), ("expr", 7), ("au", 17), ("va+expr", 9),
                                             ("va+au", 19), ("expr+au", 24), ("va+expr+au", 26)])
def test_feature_subsets_of_table_2(features, width):
    assert facernet.feature_size(features) == width
    model = facernet.build_facernet(tiny_config(facernet_features=features))
    assert model.get_layer("gru").input.shape[-1] == width


def test_no_gru_ablation_feeds_the_representation_to_the_mask_and_dense(rng):
    """facernet_rnn "none": no GRU; the routed dense reads T frames x 26 features (2 + 7 + 17), and the
    routing hook restores the rows of frames past the longest video (frame-major, 26 rows per frame)."""
    model = facernet.build_facernet(tiny_config(facernet_rnn="none"))
    assert not any(isinstance(layer, keras.layers.GRU) for layer in model.layers)
    assert model.get_layer("routed_dense").count_params() == T * 26 * 32 + 32
    batch = _batch(rng)
    assert model(batch)["intensity"].shape == (3, 7)
    kernel = model.get_layer("routed_dense").kernel
    before = np.asarray(kernel.value).copy()
    snapshot = facernet.routing_snapshot(model)
    kernel.assign(before + 1.0)
    facernet.routing_hook(model)({"length": np.array([1, 2, 2])}, snapshot)
    after = np.asarray(kernel.value)
    np.testing.assert_array_equal(after[2 * 26:], before[2 * 26:])        # frames 2, 3: no video routes them
    np.testing.assert_array_equal(after[:2 * 26], before[:2 * 26] + 1.0)
    with pytest.raises(ValueError, match="facernet_rnn must be one of"):
        preset("tiny", facernet_rnn="lstm")


def test_mask_modes_and_padding(rng):
    batch = _batch(rng)
    changed = {k: v.copy() for k, v in batch.items()}
    changed["frames"][0, 2:] = rng.uniform(-1, 1, changed["frames"][0, 2:].shape)   # past video 0's length 2
    for mode in ("route", "zero", "none"):
        keras.utils.set_random_seed(0)
        model = facernet.build_facernet(tiny_config(facernet_mask=mode))
        assert (facernet.routing_hook(model) is not None) == (mode == "route")
        a, b = (np.asarray(model(x)["intensity"]) for x in (batch, changed))
        if mode == "none":
            assert "mask" not in [layer.name for layer in model.layers]
            assert np.abs(a[0] - b[0]).max() > 0                 # padded frames reach the dense layer
        else:
            np.testing.assert_array_equal(a[0], b[0])            # frames t >= l cannot change the output
        np.testing.assert_array_equal(a[1:], b[1:])


def test_facernet_saves_and_loads_in_safe_mode(tmp_path, rng):
    model = facernet.build_facernet(tiny_config())
    batch = _batch(rng)
    path = tmp_path / "facernet.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(batch)["intensity"]), np.asarray(model(batch)["intensity"]),
                               atol=1e-6)
    assert again.get_layer("mask").route is True


def test_stages_and_freezing():
    model = facernet.build_facernet(tiny_config())
    rec_vars = len(model.get_layer("rec").trainable_weights)
    total = len(model.trainable_weights)
    assert rec_vars > 0
    facernet.freeze_rec(model)
    assert len(model.trainable_weights) == total - rec_vars
    facernet.freeze_rec(model, frozen=False)
    assert len(model.trainable_weights) == total
    facernet.apply_stage(model, "rec")
    assert len(model.trainable_weights) == rec_vars
    facernet.apply_stage(model, "rnn")
    assert len(model.trainable_weights) == total - rec_vars
    assert facernet.STAGES["rnn"].learning_rate == 1e-4 and facernet.STAGES["end_to_end"].learning_rate == 1e-5
    with pytest.raises(ValueError, match="stage must be one of"):
        facernet.apply_stage(model, "finetune")


def test_config_checks_facernet_fields():
    with pytest.raises(ValueError, match="facernet_mask must be one of"):
        preset("tiny", facernet_mask="drop")
    with pytest.raises(ValueError, match="facernet_frames must be >= 1"):
        preset("tiny", facernet_frames=0)
    with pytest.raises(ValueError, match="facernet_features must be one of"):
        preset("tiny", facernet_features="au+va")


def _distributed_routed_step(strategy, lengths):
    """Two Adam steps (all frames routed, then `lengths`) with the routing hook inside `strategy.run`;
    returns (kernel before the 2nd step, after it, the replicas' copies after it)."""
    rng = np.random.default_rng(1)
    seq = rng.normal(size=(4, 5, 3)).astype(np.float32)
    labels = rng.uniform(0, 1, (4, 7)).astype(np.float32)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = _routing_model(5, 3)
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(model.trainable_variables)
    hook = facernet.routing_hook(model)

    def batch(lens):
        rows = [slice(0, 3), slice(3, 4)] if strategy.num_replicas_in_sync == 2 else [slice(0, 4)]
        parts = [({"sequence": seq[r], "length": lens[r]}, labels[r]) for r in rows]
        return strategy.experimental_distribute_values_from_function(lambda ctx: parts[ctx.replica_id_in_sync_group])

    @tf.function
    def step(data):
        def replica(part):
            inputs, y = part
            snapshot = facernet.routing_snapshot(model)
            with tf.GradientTape() as tape:
                loss = facernet.pearson_loss(y, model(inputs)["intensity"])
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            hook(inputs, snapshot)
        strategy.run(replica, args=(data,))

    step(batch(np.full(4, 5, np.int32)))
    kernel = model.get_layer(facernet.ROUTED_DENSE).kernel
    before = np.array(kernel.numpy())
    step(batch(lengths))
    copies = [np.asarray(v) for v in getattr(kernel.value, "values", [kernel.value])]
    return before, kernel.numpy(), copies


def test_routing_under_two_replicas_equals_one_device(two_cpu_strategy, one_cpu_strategy):
    # replica 0 holds videos of lengths 2, 1, 1 and replica 1 one of length 4: the rows left alone are
    # those of frame 4 only (the global max(l) = 4), not replica 0's frames 2..4
    lengths = np.array([2, 1, 1, 4], np.int32)
    before2, after2, copies = _distributed_routed_step(two_cpu_strategy, lengths)
    before1, after1, _ = _distributed_routed_step(one_cpu_strategy, lengths)
    unrouted = np.arange(15) >= 4 * 3
    np.testing.assert_array_equal(after2[unrouted], before2[unrouted])
    assert np.abs(after2[~unrouted] - before2[~unrouted]).min() > 0        # frames 0..3 all learn
    np.testing.assert_allclose(after2, after1, atol=1e-6)
    assert all(np.array_equal(copies[0], c) for c in copies)


def test_one_routed_training_step_on_synthetic_reaction_videos(tmp_path):
    """The pieces fit: whole-video batches → FaceRNET → eq. 4 → Adam → routing hook (stage "rnn")."""
    from fbn_keras.synthetic import intensity

    out = intensity.build(tmp_path / "out", {"train": 3}, seed=2, length=3, image_size=32)
    (inputs, labels), = facernet.make_video_dataset(out, [intensity.DATABASE], "train", frames=T, batch_size=3,
                                                     image_size=32).take(1)
    np.testing.assert_array_equal(inputs["length"].numpy(), [3, 3, 3])
    model = facernet.apply_stage(facernet.build_facernet(tiny_config()), "rnn")
    optimizer = keras.optimizers.Adam(facernet.STAGES["rnn"].learning_rate)
    hook = facernet.routing_hook(model)
    rec_before = [np.array(w) for w in model.get_layer("rec").get_weights()]
    kernel = model.get_layer(facernet.ROUTED_DENSE).kernel
    before = np.array(kernel.numpy())
    snapshot = facernet.routing_snapshot(model)
    with tf.GradientTape() as tape:
        loss = facernet.IntensityLoss()(model(inputs, training=True), labels)["total"]
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    hook(inputs, snapshot)
    assert np.isfinite(float(loss))
    after = kernel.numpy()
    np.testing.assert_array_equal(after[3 * 8:], before[3 * 8:])          # frame 3 of T = 4: no video routes it
    assert np.abs(after[:3 * 8] - before[:3 * 8]).max() > 0
    assert all(np.array_equal(a, b) for a, b in zip(rec_before, model.get_layer("rec").get_weights()))
