"""SE-ResNet-50, ResNeXt-50 and ResNeXt-50 + CBAM: attention blocks and the grouped convolution against numpy,
shapes, and the parameter counts of SE-ResNet-50 and ResNeXt-50 worked out by hand (Hu et al., CVPR 2018,
Table 1; Xie et al., CVPR 2017, Table 1)."""

import keras
import numpy as np
import pytest

from fbn_keras import se_resnet


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# === SE block ===

def test_se_block_matches_numpy_with_hand_set_weights():
    x_np = np.array([[[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]],
                     [[2.0, 0.0, 1.5, -1.0], [-1.0, 3.0, 0.0, 0.0]]], np.float32)[None]   # (1, 2, 2, 4)
    inputs = keras.Input((2, 2, 4))
    model = keras.Model(inputs, se_resnet.se_block(inputs, "b", reduction=2))
    w1 = np.array([[0.5, -1.0], [1.0, 0.25], [-0.5, 0.5], [0.25, 1.0]], np.float32)   # C=4 → C/2=2
    b1 = np.array([0.1, -0.2], np.float32)
    w2 = np.array([[1.0, -1.0, 0.5, 0.0], [0.5, 0.5, -1.0, 2.0]], np.float32)         # 2 → 4
    b2 = np.array([0.0, 0.1, -0.1, 0.2], np.float32)
    model.get_layer("b_se_reduce").set_weights([w1, b1])
    model.get_layer("b_se_expand").set_weights([w2, b2])

    # Squeeze: per-channel means over the 4 positions.
    z = np.array([(1 + 0 + 2 - 1) / 4, (-2 + 1 + 0 + 3) / 4, (0.5 - 1 + 1.5 + 0) / 4, (3 + 2 - 1 + 0) / 4])
    assert np.allclose(z, x_np[0].mean(axis=(0, 1)))
    hidden = np.maximum(z @ w1 + b1, 0.0)
    gate = _sigmoid(hidden @ w2 + b2)
    expected = x_np * gate[None, None, None, :]
    assert np.allclose(model(x_np).numpy(), expected, atol=1e-6)


def test_se_block_hidden_width_is_channels_over_16():
    inputs = keras.Input((4, 4, 256))
    model = keras.Model(inputs, se_resnet.se_block(inputs, "b"))
    assert model.get_layer("b_se_reduce").units == 256 // 16


def test_se_block_rejects_a_reduction_below_one():
    with pytest.raises(ValueError, match="reduction=0"):
        se_resnet.se_block(keras.Input((4, 4, 8)), "b", reduction=0)


# === CBAM ===

def _conv_same(image, kernel, bias):
    """'same' zero-padded single-output conv: image (H, W, Cin), kernel (k, k, Cin, 1)."""
    k = kernel.shape[0]
    p = k // 2
    padded = np.pad(image, ((p, p), (p, p), (0, 0)))
    out = np.zeros(image.shape[:2])
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = np.sum(padded[i:i + k, j:j + k, :] * kernel[..., 0]) + bias[0]
    return out


def test_cbam_channel_then_spatial_attention_match_numpy():
    rng = np.random.default_rng(3)
    x_np = rng.normal(size=(1, 3, 3, 4)).astype(np.float32)
    inputs = keras.Input((3, 3, 4))
    model = keras.Model(inputs, se_resnet.cbam_block(inputs, "b", reduction=2, kernel_size=7))
    w1 = np.array([[0.5, -1.0], [1.0, 0.25], [-0.5, 0.5], [0.25, 1.0]], np.float32)
    b1 = np.array([0.1, -0.2], np.float32)
    w2 = np.array([[1.0, -1.0, 0.5, 0.0], [0.5, 0.5, -1.0, 2.0]], np.float32)
    b2 = np.array([0.0, 0.1, -0.1, 0.2], np.float32)
    kernel = rng.normal(scale=0.3, size=(7, 7, 2, 1)).astype(np.float32)
    bias = np.array([0.05], np.float32)
    model.get_layer("b_cbam_fc1").set_weights([w1, b1])
    model.get_layer("b_cbam_fc2").set_weights([w2, b2])
    model.get_layer("b_cbam_spatial").set_weights([kernel, bias])

    x = x_np[0]
    mlp = lambda v: np.maximum(v @ w1 + b1, 0.0) @ w2 + b2       # the shared MLP (Woo et al., eq. 2)
    m_c = _sigmoid(mlp(x.mean(axis=(0, 1))) + mlp(x.max(axis=(0, 1))))
    x1 = x * m_c
    pooled = np.stack([x1.mean(axis=-1), x1.max(axis=-1)], axis=-1)   # [avg; max] over channels (eq. 3)
    m_s = _sigmoid(_conv_same(pooled, kernel, bias))
    expected = x1 * m_s[..., None]
    assert np.allclose(model(x_np).numpy()[0], expected, atol=1e-5)


# === Networks ===

@pytest.fixture(scope="module")
def full_size():
    """The three networks at the paper's 112×112, width 1 (built, never run on data)."""
    return {name: fn((112, 112, 3)) for name, fn in se_resnet.NETWORKS.items()}


def test_last_feature_map_is_4x4x2048_at_112(full_size):
    for name, model in full_size.items():
        assert model.output_shape == (None, 4, 4, 2048), name


def test_resnext_uses_32_groups_of_4_channels_in_stage2(full_size):
    conv = full_size["resnext50"].get_layer("conv2_block1_2_conv")
    assert (conv.filters, conv.groups) == (128, 32)
    assert full_size["resnext50_cbam"].get_layer("conv5_block3_2_conv").groups == 32


def test_se_resnet50_parameter_count_by_hand(full_size):
    """Convs have no bias; every BatchNorm holds γ, β, moving mean, moving variance (4 per channel); the
    SE FCs (C → C/16 → C) have biases. Bottleneck (in c, width m, out 4m): 1×1 c·m, 3×3 9·m·m, 1×1 m·4m;
    the first block of each stage also projects the shortcut with a 1×1 conv c·4m and its BatchNorm."""
    stem = 7 * 7 * 3 * 64 + 4 * 64

    def se(o):
        return o * (o // 16) + (o // 16) + (o // 16) * o + o

    stage2 = (64 * 64 + 9 * 64 * 64 + 64 * 256 + 64 * 256          # block 1 convs, projection 64→256
              + 2 * (256 * 64 + 9 * 64 * 64 + 64 * 256)            # blocks 2–3 convs
              + 3 * 4 * (64 + 64 + 256) + 4 * 256                  # BatchNorms (+ the projection's)
              + 3 * se(256))
    stage3 = (256 * 128 + 9 * 128 * 128 + 128 * 512 + 256 * 512
              + 3 * (512 * 128 + 9 * 128 * 128 + 128 * 512)
              + 4 * 4 * (128 + 128 + 512) + 4 * 512
              + 4 * se(512))
    stage4 = (512 * 256 + 9 * 256 * 256 + 256 * 1024 + 512 * 1024
              + 5 * (1024 * 256 + 9 * 256 * 256 + 256 * 1024)
              + 6 * 4 * (256 + 256 + 1024) + 4 * 1024
              + 6 * se(1024))
    stage5 = (1024 * 512 + 9 * 512 * 512 + 512 * 2048 + 1024 * 2048
              + 2 * (2048 * 512 + 9 * 512 * 512 + 512 * 2048)
              + 3 * 4 * (512 + 512 + 2048) + 4 * 2048
              + 3 * se(2048))
    assert se(256) == 256 * 16 + 16 + 16 * 256 + 256 == 8464
    total = stem + stage2 + stage3 + stage4 + stage5
    model = full_size["se_resnet50"]
    assert model.count_params() == total == 26_092_144

    # Sanity note against the literature: Hu et al. (Table 2) give SE-ResNet-50 28.1 M parameters counting
    # BatchNorm's γ, β only (the moving statistics are buffers) and including the 1000-way classifier
    # 2048·1000 + 1000. Without the moving statistics (2 per BatchNorm channel) and with that classifier:
    bn_channels = (64 + 3 * (64 + 64 + 256) + 256 + 4 * (128 + 128 + 512) + 512
                   + 6 * (256 + 256 + 1024) + 1024 + 3 * (512 + 512 + 2048) + 2048)
    literature_style = total - 2 * bn_channels + 2048 * 1000 + 1000
    assert abs(literature_style / 1e6 - 28.09) < 0.01
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable == total - 2 * bn_channels


@pytest.fixture(scope="module")
def narrow():
    """The three networks at 32×32, width 1/16 (the tiny preset's)."""
    return {name: fn((32, 32, 3), width=1 / 16) for name, fn in se_resnet.NETWORKS.items()}


def test_narrow_networks_keep_the_topology(narrow):
    for name, model in narrow.items():
        assert model.output_shape == (None, 1, 1, 4 * 32), name      # 4·round(512/16)
        assert model.get_layer("conv4_block6_out").output.shape[-1] == 4 * 16, name


@pytest.mark.parametrize("name", ["se_resnet50", "resnext50_cbam"])   # the second covers the grouped convs
def test_narrow_networks_give_finite_gradients(narrow, name):
    import tensorflow as tf

    model = narrow[name]
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_resnext_groups_divide_the_channels_at_any_width():
    assert se_resnet.resnext_groups(128) == 32
    assert se_resnet.resnext_groups(16) == 16      # width 1/8: 16 groups of 1
    assert se_resnet.resnext_groups(24) == 8


def test_networks_reject_a_non_positive_width():
    with pytest.raises(ValueError, match="width=0"):
        se_resnet.se_resnet50_network((32, 32, 3), width=0)


def test_attention_blocks_round_trip_through_keras_file_in_safe_mode(tmp_path):
    inputs = keras.Input((5, 5, 32))
    model = keras.Model(inputs, se_resnet.se_block(se_resnet.cbam_block(inputs, "c"), "s"))
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 32)).astype(np.float32)
    assert np.allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


# === Grouped convolution ===

def _grouped_conv_numpy(x, kernel, groups, stride, padding):
    """Direct per-group convolution: output channel o of group g = o // (C_out/G) sums input channels of group g."""
    kh, kw, per_in, c_out = kernel.shape
    per_out = c_out // groups
    if padding == "same":     # TF 'same': the extra row/column of padding goes after
        h, w = x.shape[1:3]
        ph = max((-(-h // stride) - 1) * stride + kh - h, 0)
        pw = max((-(-w // stride) - 1) * stride + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, oh, ow, c_out))
    for o in range(c_out):
        g = o // per_out
        for i in range(oh):
            for j in range(ow):
                patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, g * per_in:(g + 1) * per_in]
                out[:, i, j, o] = np.sum(patch * kernel[None, :, :, :, o], axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("method", se_resnet.GROUPED_CONV_METHODS)
@pytest.mark.parametrize("groups, channels, stride, padding", [(4, 4, 1, "same"),     # 1 input channel per group
                                                               (2, 12, 2, "same"),    # 6 per group
                                                               (3, 6, 2, "valid")])
def test_grouped_conv_matches_a_numpy_per_group_convolution(method, groups, channels, stride, padding):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 6, 5, channels)).astype(np.float32)
    layer = se_resnet.GroupedConv2D(channels, 3, strides=stride, padding=padding, groups=groups, use_bias=False,
                                    method=method)
    layer.build(x.shape)
    assert tuple(layer.kernel.shape) == (3, 3, channels // groups, channels)    # Keras' grouped kernel shape
    kernel = rng.normal(size=(3, 3, channels // groups, channels)).astype(np.float32)
    layer.set_weights([kernel])
    expected = _grouped_conv_numpy(x.astype(np.float64), kernel.astype(np.float64), groups, stride, padding)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_grouped_conv_matches_keras_grouped_conv2d_and_its_gradients():
    import tensorflow as tf

    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(2, 5, 5, 8)).astype(np.float32))
    reference = keras.layers.Conv2D(8, 3, padding="same", groups=4, use_bias=True)
    reference.build(x.shape)
    reference.set_weights([rng.normal(size=(3, 3, 2, 8)).astype(np.float32),
                           rng.normal(size=(8,)).astype(np.float32)])
    results = []
    grouped = se_resnet.GroupedConv2D(8, 3, padding="same", groups=4, use_bias=True)
    grouped.build(x.shape)
    grouped.set_weights(reference.get_weights())      # the same variables, shapes and order
    for layer in (reference, grouped):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        results.append([y.numpy(), *(g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_weights]))])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_grouped_conv_round_trips_through_keras_file_in_safe_mode(tmp_path):
    inputs = keras.Input((6, 6, 8))
    model = keras.Model(inputs, se_resnet.GroupedConv2D(8, 3, padding="same", groups=4, use_bias=False,
                                                        method="split", name="g_2_conv")(inputs))
    path = tmp_path / "grouped.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    layer = loaded.get_layer("g_2_conv")
    assert isinstance(layer, se_resnet.GroupedConv2D) and (layer.groups, layer.method) == (4, "split")
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_grouped_conv_rejects_an_unknown_method_and_dilation():
    with pytest.raises(ValueError, match="method='dense'"):
        se_resnet.GroupedConv2D(8, 3, groups=4, method="dense")
    with pytest.raises(ValueError, match=r"dilation_rate=\(2, 2\)"):
        se_resnet.GroupedConv2D(8, 3, groups=4, dilation_rate=2)


def test_resnext50_parameter_count_by_hand(full_size):
    """As SE-ResNet-50's count without SE blocks, bottleneck widths m = 128·2^i and 3×3 convs of 32 groups:
    9·(m/32)·m weights (Xie et al., Table 1: 25.0 M with the classifier, BatchNorm's γ, β only)."""
    stem = 7 * 7 * 3 * 64 + 4 * 64

    def stage(c_in, m, out, blocks):
        convs = c_in * m + 9 * (m // 32) * m + m * out + c_in * out                 # block 1 and its projection
        convs += (blocks - 1) * (out * m + 9 * (m // 32) * m + m * out)
        return convs + blocks * 4 * (m + m + out) + 4 * out                           # BatchNorms

    total = stem + stage(64, 128, 256, 3) + stage(256, 256, 512, 4) + stage(512, 512, 1024, 6) \
        + stage(1024, 1024, 2048, 3)
    model = full_size["resnext50"]
    assert model.count_params() == total
    assert isinstance(model.get_layer("conv2_block1_2_conv"), se_resnet.GroupedConv2D)
    bn_channels = (64 + 3 * (128 + 128 + 256) + 256 + 4 * (256 + 256 + 512) + 512
                   + 6 * (512 + 512 + 1024) + 1024 + 3 * (1024 + 1024 + 2048) + 2048)
    assert abs((total - 2 * bn_channels + 2048 * 1000 + 1000) / 1e6 - 25.0) < 0.05
