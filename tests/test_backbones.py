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
