"""Tests of fbn_keras.model and fbn_keras.backbones: topology, heads, save/load, weights loading, probabilities."""

import argparse
import logging

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import backbones, config as config_lib
from fbn_keras.config import preset
from fbn_keras.model import (build_facebehaviornet, load_vgg_face_weights, parameter_counts, predict_probabilities,
                             probabilities)

SIZE = 96


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")


def run_model_checks(model, images, tmp_path, thorough=True):
    """Shared helper (keras-hub habit): config round trip, safe-mode .keras save/load, eager call, tf.data predict.

    `thorough=False` (the big keras.applications trunks) skips the separate
    from_config clone and the tf.data predict, which trace the whole graph
    again; the safe-mode load still rebuilds the model from its config.
    """
    eager = {k: v.numpy() for k, v in model(images, training=False).items()}
    assert {k: v.shape for k, v in eager.items()} == {"va": (len(images), 2), "expr": (len(images), 7),
                                                      "au": (len(images), 17)}
    assert all(np.isfinite(v).all() for v in eager.values())
    if thorough:
        # Config round trip: same topology, new weights that we copy over.
        _check_clone(model, images, eager)
    # .keras round trip in safe mode.
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for k, v in loaded(images, training=False).items():
        np.testing.assert_allclose(v.numpy(), eager[k], rtol=1e-5, atol=1e-5)
    if thorough:
        predicted = model.predict(tf.data.Dataset.from_tensor_slices(images).batch(2), verbose=0)
        for k, v in predicted.items():
            np.testing.assert_allclose(v, eager[k], rtol=1e-4, atol=1e-5)


def _check_clone(model, images, eager):
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for k, v in clone(images, training=False).items():
        np.testing.assert_allclose(v.numpy(), eager[k], rtol=1e-5, atol=1e-5)


# === Topology ===

def test_tiny_vgg_model_round_trips(tmp_path):
    model = build_facebehaviornet(preset("tiny"))
    run_model_checks(model, _images(3), tmp_path)


def test_vgg_layer_names_and_scaled_channels():
    model = build_facebehaviornet(preset("tiny"))  # width 1/16
    names = [layer.name for layer in model.layers]
    convs = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
    pools = ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert [n for n in names if n.startswith("conv")] == convs
    assert [n for n in names if n.startswith("pool")] == pools
    # 64/16 = 4, 128/16 = 8, 256/16 = 16, 512/16 = 32.
    assert [model.get_layer(n).filters for n in convs] == [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    # 96 / 2^5 = 3: flatten of 3·3·32 = 288 features.
    assert model.get_layer("fc1").kernel.shape == (288, 32)
    assert not any(n in names for n in ("fc6", "fc7", "fc8"))
    assert model.get_layer("output").units == 26


def test_width_rounds_and_keeps_at_least_one_channel():
    x = keras.Input((SIZE, SIZE, 3))
    m = keras.Model(x, backbones.vgg_face_trunk(x, width=0.001))
    assert m.get_layer("conv5_3").filters == 1
    assert m.output.shape == (None, 9)
    with pytest.raises(ValueError, match="width"):
        backbones.vgg_face_trunk(keras.Input((SIZE, SIZE, 3)), width=0)


def test_backbone_registry_matches_config_names():
    assert set(backbones.BACKBONES) == set(config_lib.BACKBONES)


def test_output_layer_is_split_va_expr_au_in_order():
    model = build_facebehaviornet(preset("tiny"))
    out = model.get_layer("output")
    # Zero kernel and bias 0..25: each head must receive its own slice of the 26 units.
    out.set_weights([np.zeros(out.kernel.shape, "float32"), np.arange(26, dtype="float32")])
    y = model(_images(2), training=False)
    np.testing.assert_array_equal(y["va"].numpy(), [[0, 1]] * 2)
    np.testing.assert_array_equal(y["expr"].numpy(), [list(range(2, 9))] * 2)
    np.testing.assert_array_equal(y["au"].numpy(), [list(range(9, 26))] * 2)
    # Linear output: a negative bias passes through unclipped.
    out.set_weights([np.zeros(out.kernel.shape, "float32"), -np.ones(26, "float32")])
    assert float(model(_images(1), training=False)["va"][0, 0]) == -1.0


def test_paper_parameter_counts():
    counts = parameter_counts(preset("paper"))
    # VGG-16 conv part: Σ (9·c_in + 1)·c_out over the 13 convs = 14,714,688.
    assert counts["trunk"] == 14_714_688
    # Head by hand: flatten 3·3·512 = 4608;
    #   fc1 4608·4096 + 4096 = 18,878,464; fc2 4096·4096 + 4096 = 16,781,312; output 4096·26 + 26 = 106,522.
    assert counts["head"] == 18_878_464 + 16_781_312 + 106_522 == 35_766_298
    assert counts["total"] == 14_714_688 + 35_766_298


def test_tiny_head_count():
    # fc1 288·32 + 32 = 9,248; fc2 32·32 + 32 = 1,056; output 32·26 + 26 = 858.
    assert parameter_counts(preset("tiny"))["head"] == 9_248 + 1_056 + 858


def test_cli_prints_table(capsys):
    from fbn_keras.model import main

    main(["--preset", "tiny"])
    out = capsys.readouterr().out
    assert "trunk" in out and "11,162" in out


@pytest.mark.slow
@pytest.mark.parametrize("backbone, features", [("resnet50", 2048 // 16), ("densenet121", 1024 // 16)])
def test_application_backbones(backbone, features, tmp_path):
    model = build_facebehaviornet(preset("tiny", backbone=backbone))
    # Global average pooling of the last 3×3 map: fc1 sees the architecture's channel count at the tiny
    # preset's width (1/16, as the VGG-FACE trunk's).
    assert model.get_layer("fc1").kernel.shape == (features, 32)
    if backbone == "resnet50":
        run_model_checks(model, _images(2), tmp_path, thorough=False)
        flat = build_facebehaviornet(preset("tiny", backbone=backbone), pooling="flatten")
        assert flat.get_layer("fc1").kernel.shape == (3 * 3 * features, 32)
    else:
        # DenseNet's safe-mode reload alone takes ~15 s on 2 cores and exercises the same
        # nested-application path as ResNet-50's: only the eager call here.
        assert model(_images(1), training=False)["au"].shape == (1, 17)


# === Probabilities ===

def test_probabilities_by_hand():
    outputs = {"va": np.array([[0.3, -2.0]], "float32"),
               "expr": np.log(np.arange(1, 8, dtype="float32"))[None],   # softmax → k / 28
               "au": np.array([[0.0, np.log(3.0)] + [-np.inf] * 15], "float32")}  # sigmoid → 0.5, 0.75, 0
    probs = probabilities(outputs)
    assert all(isinstance(v, np.ndarray) for v in probs.values())
    np.testing.assert_array_equal(probs["va"], outputs["va"])
    np.testing.assert_allclose(probs["expr"], [np.arange(1, 8) / 28], rtol=1e-6)
    np.testing.assert_allclose(probs["au"], [[0.5, 0.75] + [0.0] * 15], atol=1e-7)
    tensors = probabilities({k: tf.constant(v) for k, v in outputs.items()})
    assert tf.is_tensor(tensors["expr"])
    np.testing.assert_allclose(tensors["expr"].numpy(), probs["expr"], rtol=1e-6)
    with pytest.raises(ValueError, match="au"):
        probabilities({"va": outputs["va"], "expr": outputs["expr"]})


def test_predict_probabilities_ranges_and_input_checks():
    model = build_facebehaviornet(preset("tiny"))
    probs = predict_probabilities(model, _images(5), batch_size=2)
    assert probs["expr"].shape == (5, 7) and probs["au"].shape == (5, 17) and probs["va"].shape == (5, 2)
    np.testing.assert_allclose(probs["expr"].sum(axis=1), 1.0, rtol=1e-5)
    assert ((probs["au"] >= 0) & (probs["au"] <= 1)).all()
    assert predict_probabilities(model, np.zeros((0, SIZE, SIZE, 3), "float32"))["au"].shape == (0, 17)
    with pytest.raises(ValueError, match="dtype=uint8"):
        predict_probabilities(model, np.zeros((1, SIZE, SIZE, 3), "uint8"))
    with pytest.raises(ValueError, match=r"max=255"):
        predict_probabilities(model, np.full((1, SIZE, SIZE, 3), 255.0, "float32"))
    with pytest.raises(ValueError, match=r"shape=\(1, 64, 64, 3\)"):
        predict_probabilities(model, np.zeros((1, 64, 64, 3), "float32"))


# === VGG-FACE weights ===

def _fake_vgg_face(width, seed=0):
    """Random VGG-FACE-shaped arrays for the given width, plus the FC layers a real file carries."""
    rng = np.random.default_rng(seed)
    arrays, c_in = {}, 3
    for b, (n, channels) in enumerate(backbones.VGG_BLOCKS, start=1):
        c_out = backbones.scaled_channels(channels, width)
        for i in range(1, n + 1):
            arrays[f"conv{b}_{i}"] = (rng.normal(size=(3, 3, c_in, c_out)).astype("float32"),
                                      rng.normal(size=(c_out,)).astype("float32"))
            c_in = c_out
    arrays["fc6"] = (rng.normal(size=(288, 32)).astype("float32"), np.zeros(32, "float32"))
    return arrays


def _assert_loaded(model, arrays, bgr):
    for name in backbones.VGG_CONV_NAMES:
        kernel, bias = model.get_layer(name).get_weights()
        want = arrays[name][0]
        if name == "conv1_1" and bgr:
            # File channel 0 (B) must feed the model's input channel 2 (B of RGB), and so on.
            want = np.stack([want[:, :, 2], want[:, :, 1], want[:, :, 0]], axis=2)
        np.testing.assert_array_equal(kernel, want)
        np.testing.assert_array_equal(bias, arrays[name][1])


def test_load_npz_by_name_flips_bgr_and_ignores_fc(tmp_path, caplog):
    arrays = _fake_vgg_face(0.0625)
    path = tmp_path / "vgg_face.npz"
    np.savez(path, **{f"{n}/{k}": a for n, (w, b) in arrays.items() for k, a in (("kernel", w), ("bias", b))})
    model = build_facebehaviornet(preset("tiny"))
    fc1_before = model.get_layer("fc1").get_weights()[0].copy()
    with caplog.at_level(logging.INFO, logger="fbn_keras.model"):
        loaded = load_vgg_face_weights(model, path)
    assert loaded == list(backbones.VGG_CONV_NAMES)
    _assert_loaded(model, arrays, bgr=True)
    np.testing.assert_array_equal(model.get_layer("fc1").get_weights()[0], fc1_before)
    assert "conv5_3" in caplog.text and "ignored fc6" in caplog.text


def test_load_npy_nested_dict_rgb(tmp_path):
    arrays = _fake_vgg_face(0.0625, seed=1)
    path = tmp_path / "vgg_face.npy"
    # caffe-tensorflow layout: {layer: {"weights": W, "biases": b}}; MatConvNet-style (out, 1) biases.
    np.save(path, {n: {"weights": w, "biases": b[:, None]} for n, (w, b) in arrays.items()}, allow_pickle=True)
    model = build_facebehaviornet(preset("tiny"))
    load_vgg_face_weights(model, path, channel_order="rgb")
    _assert_loaded(model, arrays, bgr=False)


def test_load_keras3_weights_h5_and_legacy_h5(tmp_path):
    arrays = _fake_vgg_face(0.0625, seed=2)
    # A Keras 3 .weights.h5 of a bare VGG trunk holding the arrays.
    x = keras.Input((SIZE, SIZE, 3))
    trunk = keras.Model(x, backbones.vgg_face_trunk(x, 0.0625))
    for name in backbones.VGG_CONV_NAMES:
        trunk.get_layer(name).set_weights(list(arrays[name]))
    trunk.save_weights(tmp_path / "trunk.weights.h5")
    model = build_facebehaviornet(preset("tiny"))
    load_vgg_face_weights(model, tmp_path / "trunk.weights.h5", channel_order="rgb")
    _assert_loaded(model, arrays, bgr=False)
    # A Keras 2 style .h5 written by hand: layer/layer/kernel:0, bias:0.
    with h5py.File(tmp_path / "legacy.h5", "w") as f:
        for name, (w, b) in arrays.items():
            f[f"{name}/{name}/kernel:0"] = w[::-1] if name == "fc6" else w
            f[f"{name}/{name}/bias:0"] = b
    model = build_facebehaviornet(preset("tiny"))
    load_vgg_face_weights(model, tmp_path / "legacy.h5")
    _assert_loaded(model, arrays, bgr=True)


def test_load_reports_every_missing_and_misshaped_layer(tmp_path):
    arrays = _fake_vgg_face(0.0625)
    del arrays["conv3_2"]
    arrays["conv4_1"] = (arrays["conv4_1"][0][..., :5], arrays["conv4_1"][1])   # 5 output channels, not 32
    kernel = arrays["conv2_1"][0]
    arrays["conv2_1"] = (np.transpose(kernel, (3, 2, 0, 1)), arrays["conv2_1"][1])  # Caffe (out, in, h, w)
    flat = {f"{n}/{k}": a for n, (w, b) in arrays.items() for k, a in (("kernel", w), ("bias", b))}
    del flat["conv5_3/bias"]
    np.savez(tmp_path / "bad.npz", **flat)
    model = build_facebehaviornet(preset("tiny"))
    before = model.get_layer("conv1_1").get_weights()[0].copy()
    with pytest.raises(ValueError, match="4 of 13") as err:
        load_vgg_face_weights(model, tmp_path / "bad.npz")
    msg = str(err.value)
    assert "4 of 13" in msg
    assert "conv3_2: missing kernel and bias" in msg and "conv5_3: missing bias" in msg
    assert "conv4_1: kernel (3, 3, 16, 5)" in msg and "(3, 3, 16, 32)" in msg
    assert "conv2_1" in msg and "transpose" in msg
    # Nothing assigned when anything is wrong.
    np.testing.assert_array_equal(model.get_layer("conv1_1").get_weights()[0], before)


def test_load_errors_for_wrong_file_or_backbone(tmp_path):
    model = build_facebehaviornet(preset("tiny"))
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_vgg_face_weights(model, tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="channel_order"):
        load_vgg_face_weights(model, tmp_path / "nope.npz", channel_order="bgra")
    with pytest.raises(ValueError, match="vgg_face_weights only apply"):
        build_facebehaviornet(preset("tiny", backbone="resnet50", vgg_face_weights="x.npz"))


def test_build_with_weights_adds_input_adapter_and_loads(tmp_path, caplog):
    arrays = _fake_vgg_face(0.0625)
    path = tmp_path / "vgg_face.npz"
    np.savez(path, **{f"{n}/{k}": a for n, (w, b) in arrays.items() for k, a in (("kernel", w), ("bias", b))})
    model = build_facebehaviornet(preset("tiny", vgg_face_weights=str(path)))
    _assert_loaded(model, arrays, bgr=True)
    adapter = model.get_layer("vgg_face_input")
    # [-1, 1] → 0..255 minus the VGG-FACE mean face (RGB 129.1863, 104.7624, 93.5940).
    x = np.array([[[[-1.0, 0.0, 1.0]]]], "float32")
    np.testing.assert_allclose(adapter(x).numpy().ravel(), [0 - 129.1863, 127.5 - 104.7624, 255 - 93.5940],
                               rtol=1e-5)
    with caplog.at_level(logging.INFO, logger="fbn_keras.model"):
        plain = build_facebehaviornet(preset("tiny"))
    assert "random initialisation" in caplog.text
    assert "vgg_face_input" not in [layer.name for layer in plain.layers]


def test_vgg_face_input_flag_adds_or_removes_the_adapter(tmp_path):
    from fbn_keras.config import FLAG_HELP, Config, add_config_flags, config_from_args

    arrays = _fake_vgg_face(0.0625)
    path = tmp_path / "vgg_face.npz"
    np.savez(path, **{f"{n}/{k}": a for n, (w, b) in arrays.items() for k, a in (("kernel", w), ("bias", b))})

    def names(config):
        return [layer.name for layer in build_facebehaviornet(config).layers]

    x = np.full((1, 32, 32, 3), 0.5, "float32")
    # --vgg-face-input on a random-init model: the adapter comes first and maps 0.5 to 191.25 − mean.
    on = build_facebehaviornet(preset("tiny", image_size=32, vgg_face_input=True))
    assert [layer.name for layer in on.layers][:2] == ["image", "vgg_face_input"]
    np.testing.assert_allclose(on.get_layer("vgg_face_input")(x).numpy()[0, 0, 0],
                               [191.25 - 129.1863, 191.25 - 104.7624, 191.25 - 93.5940], rtol=1e-5)
    # --no-vgg-face-input with pretrained weights: the weights load, the input stays [-1, 1].
    off = build_facebehaviornet(preset("tiny", vgg_face_weights=str(path), vgg_face_input=False))
    _assert_loaded(off, arrays, bgr=True)
    assert "vgg_face_input" not in [layer.name for layer in off.layers]
    # Unset: on exactly when weights are given (the earlier rule).
    assert "vgg_face_input" in names(preset("tiny", vgg_face_weights=str(path)))
    assert "vgg_face_input" not in names(preset("tiny", image_size=32))

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    assert config_from_args(parser.parse_args(["--preset", "tiny", "--vgg-face-input"])).vgg_face_input is True
    assert config_from_args(parser.parse_args(["--preset", "tiny", "--no-vgg-face-input"])).vgg_face_input is False
    assert config_from_args(parser.parse_args(["--preset", "tiny"])).vgg_face_input is None
    assert "VGG-FACE" in FLAG_HELP["vgg_face_input"]
    with pytest.raises(ValueError, match="vgg_face_input only applies to backbone 'vgg_face'"):
        Config(backbone="resnet50", vgg_face_input=True)


def test_build_and_load_inside_two_replica_strategy(tmp_path, two_cpu_strategy):
    arrays = _fake_vgg_face(0.0625, seed=3)
    path = tmp_path / "vgg_face.npz"
    np.savez(path, **{f"{n}/{k}": a for n, (w, b) in arrays.items() for k, a in (("kernel", w), ("bias", b))})
    with two_cpu_strategy.scope():
        model = build_facebehaviornet(preset("tiny", vgg_face_weights=str(path)))
    _assert_loaded(model, arrays, bgr=True)
