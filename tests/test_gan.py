"""The GAN's networks (multi-task learning and generation paper, Tables V–VIII) and its config."""

import argparse

import numpy as np
import pytest

from fbn_keras import gan
from fbn_keras.gan import GanConfig, build_discriminator, build_gan, build_generator


def _bn(c):
    return 4 * c          # gamma, beta, moving mean, moving variance


def _deconv(k, cin, cout):
    return k * k * cin * cout + cout


_conv = _deconv           # same count: kh·kw·in·out weights + out biases

# Paper sizes, worked out from Tables V–VIII by hand.
G_PARAMS = {
    "1": _deconv(2, 100, 384) + _bn(384) + _deconv(4, 384, 128) + _bn(128) + _deconv(4, 128, 64) + _bn(64)
         + _deconv(6, 64, 3),
    **{name: 100 * 6 * 6 * 1024 + 6 * 6 * 1024 + _bn(1024)
       + _deconv(k, 1024, 512) + _bn(512) + _deconv(k, 512, 256) + _bn(256) + _deconv(k, 256, 128) + _bn(128)
       + _deconv(k, 128, 3) for name, k in (("2", 5), ("2_7x7", 7))},
}
D_TRUNK_PARAMS = {
    "1": _conv(5, 3, 64) + _bn(64) + _conv(5, 64, 128) + _bn(128) + _conv(5, 128, 256) + _bn(256),
    **{name: _conv(k, 3, 64) + _bn(64) + _conv(k, 64, 128) + _bn(128) + _conv(k, 128, 256) + _bn(256)
       + _conv(k, 256, 512) + _bn(512) for name, k in (("2", 5), ("2_7x7", 7))},
}
D_FLAT = {"1": 4 * 4 * 256, "2": 6 * 6 * 512, "2_7x7": 6 * 6 * 512}
HEADS = {"va+au+fake": 2 + 8 + 1, "va+fake": 2 + 1, "au+fake": 8 + 1, "va+au": 2 + 8}


def test_hand_counts_spelled_out():
    # The configuration-1 generator in full, as a check on the helpers above.
    assert G_PARAMS["1"] == (2 * 2 * 100 * 384 + 384) + 4 * 384 + (4 * 4 * 384 * 128 + 128) + 4 * 128 \
        + (4 * 4 * 128 * 64 + 64) + 4 * 64 + (6 * 6 * 64 * 3 + 3) == 1_080_899


@pytest.mark.parametrize("name", gan.GAN_CONFIGS)
def test_generator_at_paper_size(name):
    g = build_generator(GanConfig(gan_config=name))
    size = {"1": 32, "2": 96, "2_7x7": 96}[name]
    assert g.input_shape == (None, 100)
    assert g.output_shape == (None, size, size, 3)
    assert g.count_params() == G_PARAMS[name]


@pytest.mark.parametrize("name", gan.GAN_CONFIGS)
@pytest.mark.parametrize("heads", gan.D_OUTPUTS)
def test_discriminator_at_paper_size(name, heads):
    d = build_discriminator(GanConfig(gan_config=name, d_outputs=heads))
    size = {"1": 32, "2": 96, "2_7x7": 96}[name]
    assert d.input_shape == (None, size, size, 3)
    assert d.count_params() == D_TRUNK_PARAMS[name] + D_FLAT[name] * HEADS[heads] + HEADS[heads]
    assert d.get_layer("d_flatten").output.shape[-1] == D_FLAT[name]


def test_generator_config1_sizes_follow_valid_padding():
    g = build_generator(GanConfig(gan_config="1", width=0.0625))
    # Table V with 'valid': 1 → 2 → 6 → 14 → 32 (out = (in − 1)·stride + kernel).
    sides = [g.get_layer(f"g_deconv{i}").output.shape[1] for i in (1, 2, 3, 4)]
    assert sides == [(1 - 1) * 1 + 2, (2 - 1) * 2 + 4, (6 - 1) * 2 + 4, (14 - 1) * 2 + 6] == [2, 6, 14, 32]


@pytest.mark.parametrize("name,heads", [("1", "va+au+fake"), ("1", "va+fake"), ("2", "au+fake"), ("2_7x7", "va+au")])
def test_forward_shapes_and_ranges_at_small_width(name, heads):
    config = GanConfig(gan_config=name, d_outputs=heads, width=0.0625)
    g, d = build_gan(config)
    size = config.image_size
    if heads == "va+au":
        assert g is None              # no fake class: nothing trains a generator
        images = np.random.default_rng(0).uniform(-1, 1, (3, size, size, 3)).astype("float32")
    else:
        z = np.asarray(gan.sample_z(3, 100, seed=1))
        images = np.asarray(g(z, training=False))
        assert images.shape == (3, size, size, 3)
        assert np.all(np.abs(images) <= 1.0)   # tanh
    outputs = d(images, training=False)
    expected = {"va": (3, 2), "au": (3, 8), "fake": (3, 1)}
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {h: expected[h] for h in heads.split("+")}


def test_heads_are_slices_of_one_fully_connected_layer():
    d = build_discriminator(GanConfig(gan_config="1", width=0.0625))
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    out = d(x, training=False)
    flat = d.get_layer("d_flatten").output
    import keras
    features = keras.Model(d.input, flat)(x, training=False)
    kernel, bias = d.get_layer("d_output").get_weights()
    logits = np.asarray(features) @ kernel + bias          # 2 + 8 + 1 in VA, AU, fake order
    np.testing.assert_allclose(out["va"], logits[:, 0:2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["au"], logits[:, 2:10], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["fake"], logits[:, 10:11], rtol=1e-5, atol=1e-5)


def test_sample_z_is_uniform_in_minus_one_one():
    z = np.asarray(gan.sample_z(4000, 100, seed=3))
    assert z.shape == (4000, 100)
    assert z.min() >= -1.0 and z.max() <= 1.0
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1 / 3) < 0.01     # U[-1, 1]: mean 0, variance (b − a)²/12


def test_models_round_trip_through_keras_files_in_safe_mode(tmp_path):
    import keras
    config = GanConfig(gan_config="1", width=0.0625)
    g, d = build_gan(config)
    z = np.asarray(gan.sample_z(2, 100, seed=0))
    x = np.asarray(g(z, training=False))
    for model, inputs in ((g, z), (d, x)):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        a, b = model(inputs, training=False), loaded(inputs, training=False)
        if isinstance(a, dict):
            for k in a:
                np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# === Config ===

def test_paper_defaults():
    c = GanConfig()
    assert (c.z_dim, c.fake_target_labels, c.fake_target_fake, c.w_r_initial, c.huber_delta) == \
        (100, 0.01, 0.9, 1.0, 1.0)
    assert (c.lr_generator, c.lr_discriminator, c.adam_beta1, c.adam_beta2, c.batch) == (1e-4, 1e-5, 0.5, 0.999, 64)
    assert (c.clip, c.clip_value, c.extra_updates, c.va_loss, c.d_outputs) == ("global_norm", 20.0, "generator",
                                                                               "ccc", "va+au+fake")
    assert [GanConfig(gan_config=n).ratio for n in gan.GAN_CONFIGS] == [5, 2, 2]
    assert [GanConfig(gan_config=n).image_size for n in gan.GAN_CONFIGS] == [32, 96, 96]
    assert GanConfig(update_ratio=3).ratio == 3
    assert gan.GAN_AUS == (1, 2, 4, 6, 12, 15, 20, 25)


@pytest.mark.parametrize("overrides,message", [
    (dict(gan_config="3"), "gan_config must be one of"),
    (dict(d_outputs="fake"), "d_outputs must be one of"),
    (dict(va_loss="l1"), "va_loss must be one of"),
    (dict(fake_target_fake=1.5), r"fake_target_fake must be in \[0, 1\]. Received: fake_target_fake=1.5"),
    (dict(update_ratio=0), "update_ratio must be >= 1"),
    (dict(lr_generator=float("nan")), "lr_generator must be > 0"),
    (dict(adam_beta1=1.0), r"adam_beta1 must be in \[0, 1\)"),
    (dict(width=0.0), r"width must be in \(0, 4\]"),
])
def test_validate_names_the_bad_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        GanConfig(**overrides)


def test_every_field_has_help_and_every_str_field_has_choices():
    import dataclasses
    names = {f.name for f in dataclasses.fields(GanConfig)}
    assert set(gan.GAN_FLAG_HELP) == names
    strings = {f.name for f in dataclasses.fields(GanConfig) if f.type in ("str", str)}
    assert strings - {"preset", "databases"} == set(gan.GAN_CHOICES)     # those two are names


def test_presets_and_flags():
    parser = argparse.ArgumentParser()
    gan.add_gan_flags(parser)
    c = gan.gan_config_from_args(parser.parse_args(["--preset", "tiny", "--va-loss", "mse", "--update-ratio", "3",
                                                    "--skip-corrupt-records"]))
    assert (c.preset, c.gan_config, c.width, c.va_loss, c.ratio) == ("tiny", "1", 0.0625, "mse", 3)
    assert c.skip_corrupt_records is True
    assert gan.gan_config_from_args(parser.parse_args([])) == GanConfig()
    parser.format_help()
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        gan.gan_preset("huge")


def test_config_round_trips_through_json(tmp_path):
    c = gan.gan_preset("tiny", d_outputs="au+fake")
    c.save(tmp_path / "gan.json")
    assert GanConfig.load(tmp_path / "gan.json") == c
