"""ResNet-50 and DenseNet-121 built from their blocks: keras.applications' parameters at width 1, fewer channels
at a smaller width (the multiplier of the VGG-FACE trunk), synchronised BatchNorm."""

import keras
import pytest

from fbn_keras import backbones

SHAPE = (96, 96, 3)


@pytest.mark.slow   # ~17 s on 2 cores: builds both full-width networks twice
@pytest.mark.parametrize("ours, theirs", [(backbones.resnet50_network, keras.applications.ResNet50),
                                          (backbones.densenet121_network, keras.applications.DenseNet121)])
def test_width_one_has_keras_applications_parameters(ours, theirs):
    reference = theirs(include_top=False, weights=None, input_shape=SHAPE)
    net = ours(SHAPE)
    assert net.count_params() == reference.count_params()
    assert net.output_shape == reference.output_shape == (None, 3, 3, {"resnet50": 2048}.get(net.name, 1024))
    assert all(layer.synchronized for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_width_scales_channels():
    # ResNet-50 at 1/8: bottlenecks of 8, 16, 32, 64 channels, expanded 4x: 256 out. DenseNet-121 at 1/8:
    # stem 8, growth 4: 8+6*4=32 -> 16, 16+12*4=64 -> 32, 32+24*4=128 -> 64, 64+16*4=128 out.
    resnet = backbones.resnet50_network(SHAPE, width=0.125)
    assert resnet.output_shape == (None, 3, 3, 256)
    assert resnet.get_layer("conv1_conv").filters == 8 and resnet.get_layer("conv5_block3_2_conv").filters == 64
    dense = backbones.densenet121_network(SHAPE, width=0.125)
    assert dense.output_shape == (None, 3, 3, 128)
    assert dense.get_layer("pool4_conv").filters == 64 and dense.get_layer("conv5_block16_2_conv").filters == 4
    inputs = keras.Input(SHAPE)
    assert backbones.resnet50_trunk(inputs, width=0.125).shape == (None, 256)


def test_trunk_init_sets_the_convolutions_spread():
    """conv5_3 at width 1/8 has 64 filters over 3x3x64 inputs: fan_in = fan_out = 576. He-normal's sd is
    sqrt(2 / 576) = 0.0589; Glorot-uniform's limit is sqrt(6 / 1152) = 0.0722, so its sd is 0.0722 / sqrt(3)
    = 0.0417 (36,864 weights each: the sample sd is within 2% of these)."""
    import numpy as np

    from fbn_keras.config import preset
    from fbn_keras.model import build_facebehaviornet

    for init, sd in (("he_normal", 0.0589), ("glorot_uniform", 0.0417)):
        keras.utils.set_random_seed(0)
        model = build_facebehaviornet(preset("small", trunk_init=init, image_size=32))
        kernel = np.asarray(model.get_layer("conv5_3").kernel)
        assert kernel.shape == (3, 3, 64, 64)
        assert kernel.std() == pytest.approx(sd, rel=0.02), init
    with pytest.raises(ValueError, match="trunk_init only applies to backbone 'vgg_face'"):
        preset("small", backbone="resnet50", trunk_init="he_normal")
