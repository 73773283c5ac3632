"""The journal's video networks (Sections V-A, V-B, VI-A): shapes at any length, parameter counts at the
paper's sizes worked out by hand, causality, the landmark ablation, the .keras round trip, initialisation
from trained networks and VGG-FACE weights."""

import keras
import numpy as np
import pytest

from fbn_keras import config as config_module
from fbn_keras import taxonomy
from fbn_keras.config import preset
from fbn_keras.video_models import (VIDEO_MODELS, VideoModelInfo, au_slots, build_video_model, initialise_from,
                                    model_inputs)

S = 32  # tiny images; the trunk halves them five times


def tiny(name, **overrides):
    return preset("tiny", model=name, image_size=S, **overrides)


def batch(names, b=2, t=3, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"frames": (b, t, S, S, 3), "landmarks": (b, t, 136), "audio": (b, t, 96, 96, 1)}
    return {n: rng.uniform(-1, 1, shapes[n]).astype("float32") for n in names}


def run(model, x):
    return {k: np.asarray(v) for k, v in model(x, training=False).items()}


# === What each network is ===

def test_every_video_model_of_the_config_is_described():
    assert set(VIDEO_MODELS) <= set(config_module.MODELS) and "facebehaviornet" not in VIDEO_MODELS
    assert len(VIDEO_MODELS) == 10
    for name, info in VIDEO_MODELS.items():
        assert isinstance(info, VideoModelInfo) and "Section" in info.summary, name
        assert info.inputs[0] == "frames" and info.heads[0] == "va"
        assert info.uses_landmarks == ("landmarks" in info.inputs)
        assert info.uses_audio == ("audio" in info.inputs)
    # Section V-A / V-B: 4 windows of 80; Section VI-A: 10 x 90 for the GRU nets, 256 single frames for MT-VGG.
    assert (VIDEO_MODELS["affwildnet"].paper_batch, VIDEO_MODELS["affwildnet"].paper_length) == (4, 80)
    assert (VIDEO_MODELS["av-mt-vgg-gru"].paper_batch, VIDEO_MODELS["av-mt-vgg-gru"].paper_length) == (10, 90)
    assert (VIDEO_MODELS["mt-vgg"].paper_batch, VIDEO_MODELS["mt-vgg"].paper_length) == (256, 1)


def test_au_slots_are_the_paper_or_release_aus_in_the_17_slots():
    # taxonomy.AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26), slots 0..16.
    assert taxonomy.AUS == (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
    # AUs 1, 2, 4, 6, 12, 15, 20, 25 (Section III)
    assert au_slots(tiny("mt-vgg-gru")) == (0, 1, 2, 4, 8, 10, 12, 15)
    # AUs 1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26 (the later release)
    assert au_slots(tiny("mt-vgg", mt_aus="release")) == (0, 1, 2, 4, 5, 7, 8, 10, 13, 14, 15, 16)
    assert au_slots(tiny("affwildnet")) == ()


def test_a_model_that_is_not_a_video_network_is_refused():
    with pytest.raises(ValueError, match="model='facebehaviornet'"):
        build_video_model(preset("tiny"))
    with pytest.raises(ValueError, match="backbone='resnet50'"):
        build_video_model(tiny("affwildnet", backbone="resnet50"))


# === Shapes, at two lengths of one model (T unknown when built) ===

@pytest.mark.parametrize("name", sorted(VIDEO_MODELS))
def test_output_shapes_at_any_length_and_causal(name):
    """One model at T = 3 and T = 5, the longer window being the shorter one plus 2 frames (padding):
    the first 3 frames' outputs must not change (the GRUs run forward only; the rest is per frame)."""
    config = tiny(name)
    model = build_video_model(config)
    assert tuple(model.input) == model_inputs(config) == VIDEO_MODELS[name].inputs
    short = batch(model_inputs(config), t=3, seed=1)
    extra = batch(model_inputs(config), t=2, seed=2)
    longer = {k: np.concatenate([short[k], extra[k]], axis=1) for k in short}
    a, b = run(model, short), run(model, longer)
    for t, out in ((3, a), (5, b)):
        want = {"va": (2, t, 2), "expr": (2, t, 7), "au": (2, t, 8)}
        assert {k: v.shape for k, v in out.items()} == {h: want[h] for h in VIDEO_MODELS[name].heads}
        assert all(np.isfinite(v).all() for v in out.values())
    for k in a:
        np.testing.assert_allclose(b[k][:, :3], a[k], rtol=1e-5, atol=1e-6)
        assert not np.allclose(b[k][:, 3:], b[k][:, 2:3])  # the later frames get outputs of their own


def test_release_aus_give_a_12_unit_head_and_tanh_bounds_va():
    model = build_video_model(tiny("mt-vgg-gru", mt_aus="release", va_activation="tanh"))
    out = run(model, batch(("frames",)))
    assert out["au"].shape == (2, 3, 12) and np.abs(out["va"]).max() <= 1


# === Parameters at the paper's sizes (96x96, width 1, FC 4096, GRU 128), by hand ===

# VGG-FACE's 13 3x3 convs (in, out channels): 3*3*in*out + out each.
VGG_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG = sum(3 * 3 * i * o + o for i, o in VGG_CHANNELS)
POOL5 = 3 * 3 * 512          # 96 / 2^5 = 3
POOL2 = 24 * 24 * 128        # 96 / 2^2 = 24
LANDMARKS = 136
FC_LM = (POOL5 + LANDMARKS) * 4096 + 4096     # FC fed by pool5 + landmarks
FC1 = POOL5 * 4096 + 4096


def gru(inputs, units=128):
    """Keras GRU, reset_after=True: kernel in x 3u, recurrent u x 3u, two biases of 3u."""
    return 3 * (inputs * units + units * units + 2 * units)


def lstm(inputs, units=128):
    return 4 * (inputs * units + units * units + units)


VA_OUT = 128 * 2 + 2
MT_OUT = 128 * (2 + 7 + 8) + (2 + 7 + 8)
CNN1RNN_BODY = VGG + FC_LM + gru(POOL2 + POOL5 + 4096) + gru(128)
CNN3RNN_BODY = VGG + FC_LM + (gru(4096) + gru(128)) + (gru(POOL5) + gru(128)) + (gru(POOL2) + gru(128))

PAPER_COUNTS = {
    "affwildnet": VGG + FC_LM + gru(4096) + gru(128) + VA_OUT,
    "vgg-face-lstm": VGG + FC1 + lstm(4096) + lstm(128) + VA_OUT,
    "cnn1rnn": CNN1RNN_BODY + VA_OUT,
    "cnn3rnn": CNN3RNN_BODY + (3 * 128) * 2 + 2,
    "mt-vgg": VGG + FC1 + (4096 * 4096 + 4096) + 4096 * 17 + 17,
    "mt-vgg-gru": VGG + FC1 + gru(4096) + gru(128) + MT_OUT,
}


def test_the_vgg_face_convs_have_their_published_size():
    assert VGG == 14_714_688


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_parameter_count_at_the_paper_size(name):
    model = build_video_model(preset("paper", model=name))
    assert model.count_params() == PAPER_COUNTS[name]
    keras.backend.clear_session()


def test_fusion_parameter_count_at_the_paper_size():
    model = build_video_model(preset("paper", model="fusion-rnn"))
    # both members whole, their 128 + 3 x 128 GRU outputs -> one GRU of 128 -> VA
    assert model.count_params() == CNN1RNN_BODY + CNN3RNN_BODY + gru(4 * 128) + VA_OUT
    keras.backend.clear_session()


def test_gap_taps_average_pool2_and_pool5_channels():
    model = build_video_model(tiny("cnn1rnn", tap_pool="gap"))
    # width 1/16: pool2 -> 128/16 = 8 channels, pool5 -> 512/16 = 32 channels, fc 32; GRU of 8
    assert tuple(model.get_layer("gru1").cell.kernel.shape) == (8 + 32 + 32, 3 * 8)


# === Landmark ablation ===

@pytest.mark.parametrize("name", ["affwildnet", "fusion-fc"])
def test_landmarks_off_drops_the_input(name):
    on, off = tiny(name), tiny(name, landmarks=False)
    assert "landmarks" in model_inputs(on) and model_inputs(off) == ("frames",)
    m_on, m_off = build_video_model(on), build_video_model(off)
    assert tuple(m_off.input) == ("frames",)
    pool5 = 1 * 1 * 32   # 32 / 2^5 = 1; 512 / 16 channels
    fc_on = (m_on if name != "fusion-fc" else m_on.get_layer("cnn3rnn")).get_layer("fc")
    fc_off = (m_off if name != "fusion-fc" else m_off.get_layer("cnn3rnn")).get_layer("fc")
    assert fc_on.kernel.shape[0] == pool5 + 136 and fc_off.kernel.shape[0] == pool5
    assert run(m_off, batch(("frames",)))["va"].shape == (2, 3, 2)


# === .keras round trip (safe mode) ===

@pytest.mark.parametrize("name", ["fusion-rnn", "av-mt-vgg-gru"])
def test_keras_round_trip_gives_identical_outputs(name, tmp_path):
    config = tiny(name, va_activation="tanh")
    model = build_video_model(config)
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True, compile=False)
    x = batch(model_inputs(config), t=4)
    before, after = run(model, x), run(again, x)
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


# === Initialisation from trained networks ===

def _saved(config, path, seed):
    keras.utils.set_random_seed(seed)
    model = build_video_model(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / "model.keras")
    return model


def _weighted(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def test_fusion_members_initialise_from_their_own_runs(tmp_path):
    one = _saved(tiny("cnn1rnn"), tmp_path / "run1", seed=1)
    three = _saved(tiny("cnn3rnn"), tmp_path / "run3", seed=3)
    fused = build_video_model(tiny("fusion-rnn", init_from=f"{tmp_path / 'run1'},{tmp_path / 'run3'}",
                                   freeze_init=True))
    for member, source in (("cnn1rnn", one), ("cnn3rnn", three)):
        sub = fused.get_layer(member)
        for name, layer in _weighted(sub).items():
            for got, want in zip(layer.get_weights(), source.get_layer(name).get_weights()):
                np.testing.assert_array_equal(got, want)
            assert not layer.trainable
    # the fusion GRU and output stay new and trainable
    assert fused.get_layer("fusion_gru").trainable and fused.get_layer("va").trainable
    assert len(fused.trainable_weights) == 3 + 2   # fusion GRU kernel, recurrent kernel, bias; va kernel, bias
    # the fused network on the members' features: fusion output changes, the members' features do not
    x = batch(("frames", "landmarks"))
    np.testing.assert_allclose(np.asarray(fused.get_layer("cnn1rnn")(x)),
                               np.asarray(keras.Model(one.input, one.get_layer("gru2").output)(x)), atol=1e-6)


def test_initialise_from_returns_the_names_and_skips_output_layers(tmp_path):
    source = _saved(tiny("mt-vgg"), tmp_path / "mtvgg", seed=5)
    target = build_video_model(tiny("mt-vgg-gru"))
    output_before = target.get_layer("output").get_weights()
    loaded = initialise_from(target, str(tmp_path / "mtvgg" / "model.keras"), freeze=False)
    convs = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    assert loaded == convs + ["fc1"]          # the CNN part; fc2 is not in MT-VGG-GRU, output replaced
    np.testing.assert_array_equal(target.get_layer("fc1").kernel, source.get_layer("fc1").kernel)
    for got, want in zip(target.get_layer("output").get_weights(), output_before):
        np.testing.assert_array_equal(got, want)


def test_av_streams_initialise_by_name(tmp_path):
    visual = _saved(tiny("mt-vgg-gru"), tmp_path / "visual", seed=7)
    av = build_video_model(tiny("av-mt-vgg-gru"))
    loaded = initialise_from(av, [f"visual_stream={tmp_path / 'visual'}"])
    assert "visual_stream/gru2" in loaded
    np.testing.assert_array_equal(av.get_layer("visual_stream").get_layer("gru2").get_weights()[1],
                                  visual.get_layer("gru2").get_weights()[1])


def test_initialise_from_refuses_mis_shaped_and_missing_layers_naming_them(tmp_path):
    _saved(tiny("cnn1rnn", fc_units=16), tmp_path / "narrow", seed=2)
    fused = build_video_model(tiny("fusion-fc"))
    before = fused.get_layer("cnn1rnn").get_layer("conv1_1").get_weights()[0]
    with pytest.raises(ValueError, match=r"(?s)layer cnn1rnn/fc has weights.*layer cnn1rnn/gru1 has weights"):
        initialise_from(fused, [tmp_path / "narrow"])
    with pytest.raises(ValueError, match=r"layer cnn3rnn/rnn1_gru1 missing"):
        initialise_from(fused, f"cnn3rnn={tmp_path / 'narrow'}")
    with pytest.raises(ValueError, match=r"no such \.keras file"):
        initialise_from(fused, str(tmp_path / "nowhere"))
    # nothing was assigned
    np.testing.assert_array_equal(fused.get_layer("cnn1rnn").get_layer("conv1_1").get_weights()[0], before)


# === VGG-FACE weights reach every visual trunk ===

def test_vgg_face_weights_load_into_each_fusion_member(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    scale = lambda c: c if c == 3 else max(1, round(c / 16))  # noqa: E731  tiny width 1/16
    arrays = {}
    for name, (i, o) in zip(names, VGG_CHANNELS):
        arrays[f"{name}/kernel"] = rng.normal(size=(3, 3, scale(i), scale(o))).astype("float32")
        arrays[f"{name}/bias"] = rng.normal(size=(scale(o),)).astype("float32")
    path = tmp_path / "vgg_face.npz"
    np.savez(path, **arrays)
    fused = build_video_model(tiny("fusion-rnn", vgg_face_weights=str(path)))
    for member in ("cnn1rnn", "cnn3rnn"):
        sub = fused.get_layer(member)
        np.testing.assert_array_equal(sub.get_layer("conv3_2").kernel, arrays["conv3_2/kernel"])
        assert sub.get_layer("vgg_face_input") is not None
