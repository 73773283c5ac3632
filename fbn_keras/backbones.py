"""FaceBehaviorNet's convolutional trunks: VGG-FACE (main paper Section 3) and, for Table 2, ResNet-50 and DenseNet-121.

All three take the same width multiplier on their channels (the small and tiny
presets' 1/8 and 1/16), so Table 2 compares topologies at one size.

Every trunk is a function `(inputs, width=1.0) -> features`: it takes the
(N, 96, 96, 3) input tensor of a functional model and returns a flat (N, D)
feature tensor on which the shared head (2 × FC + linear output) is built.
`BACKBONES` maps the names of `config.backbone` to these functions.
"""

from __future__ import annotations

import logging
from typing import Callable

import keras

log = logging.getLogger(__name__)

# === VGG-FACE ===

#: VGG-16's convolutional blocks: (number of 3×3 convs, channels at width 1).
#: VGG-FACE (Parkhi et al., 2015) has exactly this topology.
VGG_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

#: The 13 conv layer names of VGG-FACE, in order: the keys weights load by.
VGG_CONV_NAMES: tuple[str, ...] = tuple(
    f"conv{b}_{i}" for b, (n, _) in enumerate(VGG_BLOCKS, start=1) for i in range(1, n + 1))

#: Mean pixel of the VGG-FACE training faces, RGB order on a 0..255 scale
#: (MatConvNet `normalization.averageImage`; the Caffe model lists it as BGR).
VGG_FACE_MEAN_RGB: tuple[float, float, float] = (129.1863, 104.7624, 93.5940)


def scaled_channels(channels: int, width: float) -> int:
    """round(channels · width), at least 1: the width multiplier of the small/tiny presets."""
    return max(1, int(round(channels * width)))


def vgg_face_input_adapter(inputs, name: str = "vgg_face_input"):
    """Map our RGB input in [-1, 1] to what pretrained VGG-FACE filters expect: RGB on 0..255 minus the mean face.

    x·127.5 + 127.5 − mean, per channel, with the built-in `Rescaling` layer
    (no weights, no Lambda: the model still loads in Keras safe mode). The
    RGB→BGR swap of Caffe-converted weights is folded into conv1_1's kernel
    when the weights are loaded (`load_vgg_face_weights(channel_order="bgr")`),
    which is exact and needs no layer.
    """
    offset = [127.5 - m for m in VGG_FACE_MEAN_RGB]
    return keras.layers.Rescaling(scale=127.5, offset=offset, name=name)(inputs)


def vgg_face_trunk(inputs, width: float = 1.0, kernel_initializer: str = "glorot_uniform"):
    """The 13 conv + 5 max-pool layers of VGG-FACE (VGG-16 topology), then flatten (main paper Section 3).

    Convs are 3×3, stride 1, 'same' padding, ReLU, named conv1_1 … conv5_3 so
    pretrained weights load by name; pools are 2×2/2, named pool1 … pool5.
    At 96×96 the output is 3·3·round(512·width) features (4608 at width 1).

    Args:
        inputs: (N, H, W, 3) tensor.
        width: multiplier on every block's channels (round, min 1).
        kernel_initializer: the convolutions' initial kernels when no pretrained weights are loaded
            (`Config.trunk_init`; "he_normal" keeps the signal of this plain ReLU stack alive from scratch).

    Example:
        x = keras.Input((96, 96, 3)); f = vgg_face_trunk(x)  # f.shape == (None, 4608)
    """
    if not width > 0:
        raise ValueError(f"width must be > 0. Received: width={width}")
    x = inputs
    for b, (n_convs, channels) in enumerate(VGG_BLOCKS, start=1):
        filters = scaled_channels(channels, width)
        for i in range(1, n_convs + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{b}_{i}",
                                    kernel_initializer=kernel_initializer)(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{b}")(x)
    return keras.layers.Flatten(name="flatten")(x)


# === BatchNorm under a strategy, and keras.applications trunks ===

#: How the last feature map of ResNet-50 / DenseNet-121 becomes a vector.
POOLINGS: tuple[str, ...] = ("avg", "flatten")


def synchronized_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of functional `model` whose BatchNormalization layers take their statistics over the global batch.

    Under a `tf.distribute` strategy Keras' BatchNormalization normalises each
    replica's rows by that replica's own mean and variance, and each replica
    moves the moving statistics towards its own; the global loss is then not
    the one-device loss. With `synchronized=True` (TensorFlow backend) the
    layer all-reduces Σx, Σx² and the count over the replicas first, so every
    replica uses the global batch's mean and variance E[x²] − E[x]², and the
    moving statistics follow the global batch. Without a strategy it is plain
    BatchNormalization. Every other layer and every config value is kept; the
    copy has fresh weights (the trunks start from random initialisation).
    """
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _application_trunk(app: Callable, name: str, inputs, width: float, pooling: str):
    """A keras.applications network (random init, no top, BatchNorm synchronised over replicas) nested as one
    sub-model, then pooled."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    if width != 1.0:
        # keras.applications has no width multiplier: `resnet50_trunk` / `densenet121_trunk` have one.
        log.warning("%s has no width multiplier: building it at full size (width=%s ignored)", name, width)
    trunk = app(include_top=False, weights=None, input_shape=tuple(inputs.shape[1:]), pooling=None, name=name)
    x = synchronized_batchnorm(trunk)(inputs)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Flatten(name="flatten")(x)


# === ResNet-50 and DenseNet-121 from their blocks, at any width (main paper Table 2) ===

#: keras.applications' BatchNormalization epsilon in both networks.
BN_EPSILON = 1.001e-5
#: ResNet-50's four stages: (bottleneck channels at width 1, blocks, stride of the first block).
RESNET50_STAGES: tuple[tuple[int, int, int], ...] = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
#: DenseNet-121: stem channels, growth rate, dense layers per block, transition compression.
DENSENET121_STEM, DENSENET121_GROWTH, DENSENET121_BLOCKS, DENSENET121_REDUCTION = 64, 32, (6, 12, 24, 16), 0.5


def _bn(x, name: str):
    """BatchNormalization as keras.applications configures it, with statistics over the global batch under a
    strategy (see `synchronized_batchnorm`)."""
    return keras.layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, synchronized=True, name=name)(x)


def _stem(inputs, channels: int, use_bias: bool, pool_name: str):
    """7×7/2 conv, BatchNorm, ReLU, 3×3/2 max-pool: the first layers of both networks."""
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(channels, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(_bn(x, "conv1_bn"))
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=pool_name)(x)


def _bottleneck(x, filters: int, stride: int, project: bool, name: str):
    """ResNet v1 bottleneck: 1×1 (stride) → 3×3 → 1×1 to 4·filters, added to the (projected) input, ReLU."""
    shortcut = x
    if project:
        shortcut = _bn(keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x), f"{name}_0_bn")
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = _bn(keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x), f"{name}_3_bn")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def resnet50_network(input_shape: tuple[int, ...], width: float = 1.0, name: str = "resnet50") -> keras.Model:
    """ResNet-50 (He et al., 2016; keras.applications' layout, no top) with every channel count × `width`.

    The same stages, block counts, strides and 4× bottleneck expansion at any
    width; at width 1 it has exactly keras.applications.ResNet50's parameters.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0. Received: width={width}")
    inputs = keras.Input(input_shape)
    x = _stem(inputs, scaled_channels(64, width), use_bias=True, pool_name="pool1_pool")
    for stage, (filters, blocks, stride) in enumerate(RESNET50_STAGES, start=2):
        for block in range(1, blocks + 1):
            x = _bottleneck(x, scaled_channels(filters, width), stride if block == 1 else 1, project=block == 1,
                            name=f"conv{stage}_block{block}")
    return keras.Model(inputs, x, name=name)


def _dense_layer(x, growth: int, name: str):
    """DenseNet-BC layer: BN, ReLU, 1×1 conv to 4·growth, BN, ReLU, 3×3 conv to growth, concatenated on."""
    y = keras.layers.Activation("relu", name=f"{name}_0_relu")(_bn(x, f"{name}_0_bn"))
    y = keras.layers.Conv2D(4 * growth, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(y, f"{name}_1_bn"))
    y = keras.layers.Conv2D(growth, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, reduction: float, name: str):
    """BN, ReLU, 1×1 conv to `reduction` of the channels, 2×2 average pool."""
    x = keras.layers.Activation("relu", name=f"{name}_relu")(_bn(x, f"{name}_bn"))
    x = keras.layers.Conv2D(int(x.shape[-1] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def densenet121_network(input_shape: tuple[int, ...], width: float = 1.0, name: str = "densenet121") -> keras.Model:
    """DenseNet-121 (Huang et al., 2017; keras.applications' layout, no top) with stem and growth rate × `width`.

    The same 6/12/24/16 dense layers and 0.5 compression at any width (so every
    channel count scales with `width`); at width 1 it has exactly
    keras.applications.DenseNet121's parameters.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0. Received: width={width}")
    inputs = keras.Input(input_shape)
    x = _stem(inputs, scaled_channels(DENSENET121_STEM, width), use_bias=False, pool_name="pool1")
    growth = scaled_channels(DENSENET121_GROWTH, width)
    for b, layers in enumerate(DENSENET121_BLOCKS, start=2):
        for i in range(1, layers + 1):
            x = _dense_layer(x, growth, f"conv{b}_block{i}")
        if b < 1 + len(DENSENET121_BLOCKS):
            x = _transition(x, DENSENET121_REDUCTION, f"pool{b}")
    x = keras.layers.Activation("relu", name="relu")(_bn(x, "bn"))
    return keras.Model(inputs, x, name=name)


def _pooled(network: keras.Model, inputs, pooling: str):
    """`network` nested as one sub-model on `inputs`, then pooled to a vector."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    x = network(inputs)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Flatten(name="flatten")(x)


def resnet50_trunk(inputs, width: float = 1.0, pooling: str = "avg"):
    """ResNet-50 at `width` (random init, synchronised BatchNorm), then global average pooling by default.

    The paper does not say how its ResNet-50 was pooled; global average pooling
    is the architecture's own head (2048·width features). `pooling="flatten"`
    gives the VGG-style 3·3·2048·width features instead. `width` is the same
    multiplier as the VGG-FACE trunk's, so Table 2 compares topologies, not sizes.
    """
    return _pooled(resnet50_network(tuple(inputs.shape[1:]), width), inputs, pooling)


def densenet121_trunk(inputs, width: float = 1.0, pooling: str = "avg"):
    """DenseNet-121 at `width` (random init, synchronised BatchNorm), then global average pooling by default.

    As for ResNet-50: average pooling (1024·width features) unless `pooling="flatten"`.
    """
    return _pooled(densenet121_network(tuple(inputs.shape[1:]), width), inputs, pooling)


#: config.backbone name → trunk function.
BACKBONES: dict[str, Callable] = {
    "vgg_face": vgg_face_trunk,
    "resnet50": resnet50_trunk,
    "densenet121": densenet121_trunk,
}
