"""FaceBehaviorNet's convolutional trunks: VGG-FACE (main paper Section 3) and, for Table 2, ResNet-50 and DenseNet-121.

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


def vgg_face_trunk(inputs, width: float = 1.0):
    """The 13 conv + 5 max-pool layers of VGG-FACE (VGG-16 topology), then flatten (main paper Section 3).

    Convs are 3×3, stride 1, 'same' padding, ReLU, named conv1_1 … conv5_3 so
    pretrained weights load by name; pools are 2×2/2, named pool1 … pool5.
    At 96×96 the output is 3·3·round(512·width) features (4608 at width 1).

    Args:
        inputs: (N, H, W, 3) tensor.
        width: multiplier on every block's channels (round, min 1).

    Example:
        x = keras.Input((96, 96, 3)); f = vgg_face_trunk(x)  # f.shape == (None, 4608)
    """
    if not width > 0:
        raise ValueError(f"width must be > 0. Received: width={width}")
    x = inputs
    for b, (n_convs, channels) in enumerate(VGG_BLOCKS, start=1):
        filters = scaled_channels(channels, width)
        for i in range(1, n_convs + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{b}_{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{b}")(x)
    return keras.layers.Flatten(name="flatten")(x)


# === keras.applications trunks (main paper Table 2) ===

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
        # keras.applications has no width multiplier; these trunks are only for
        # Table 2, which compares full-size networks.
        log.warning("%s has no width multiplier: building it at full size (width=%s ignored)", name, width)
    trunk = app(include_top=False, weights=None, input_shape=tuple(inputs.shape[1:]), pooling=None, name=name)
    x = synchronized_batchnorm(trunk)(inputs)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Flatten(name="flatten")(x)


def resnet50_trunk(inputs, width: float = 1.0, pooling: str = "avg"):
    """ResNet-50 from keras.applications (weights=None, no top), then global average pooling by default.

    The paper does not say how its ResNet-50 was pooled; global average pooling
    is the architecture's own head (2048 features). `pooling="flatten"` gives
    the VGG-style 3·3·2048 = 18432 features instead. Full size whatever `width`.
    """
    return _application_trunk(keras.applications.ResNet50, "resnet50", inputs, width, pooling)


def densenet121_trunk(inputs, width: float = 1.0, pooling: str = "avg"):
    """DenseNet-121 from keras.applications (weights=None, no top), then global average pooling by default.

    As for ResNet-50: average pooling (1024 features) unless `pooling="flatten"`
    (3·3·1024 = 9216). Full size whatever `width`.
    """
    return _application_trunk(keras.applications.DenseNet121, "densenet121", inputs, width, pooling)


#: config.backbone name → trunk function.
BACKBONES: dict[str, Callable] = {
    "vgg_face": vgg_face_trunk,
    "resnet50": resnet50_trunk,
    "densenet121": densenet121_trunk,
}
