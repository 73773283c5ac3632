"""SE-ResNet-50, ResNeXt-50 (32×4d) and ResNeXt-50 + CBAM: the three backbones MTANet compares (Zhang & Gu,
ABAW 2020, Section IV-B, Table I).

SE-ResNet-50 follows Hu et al. (CVPR 2018, Table 1): a 7×7/2 conv of 64, a 3×3/2 max-pool, bottleneck stages
of 3, 4, 6, 3 blocks with widths 64/128/256/512 and outputs 256/512/1024/2048, and a squeeze-and-excitation
block (GAP → FC C/16 → ReLU → FC C → sigmoid) scaling each residual branch before the addition.
ResNeXt-50 (Xie et al., CVPR 2017, Table 1) has the same stages with 32 groups of 4 channels in its 3×3
convs (bottleneck widths 128/256/512/1024); ResNeXt-50 + CBAM (Woo et al., ECCV 2018, Fig. 3) adds channel
then spatial attention to each residual branch.

Every network is a function `(input_shape, width=1.0) -> keras.Model` returning the last feature map
(4×4×2048 at 112×112, width 1), with every channel count × `width` through `backbones.scaled_channels`,
the convention of `backbones.resnet50_network`. Convs carry no bias (BatchNorm follows each), as in the
original networks; layers are named `conv{stage}_block{b}_...` so pretrained weights load by name
(`fbn_keras.mtanet.load_vggface2_weights`). ResNeXt's grouped 3×3 convs are `GroupedConv2D`: Keras'
`Conv2D(groups=...)` kernel and maths, computed without Keras' slow XLA route on CPU (docs/FAITHFULNESS.md).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import keras
from keras import ops

from fbn_keras.backbones import RESNET50_STAGES, _bn, _stem, scaled_channels

#: Reduction ratio r of the SE block's bottleneck FC (Hu et al., Section 6.1: r = 16).
SE_REDUCTION = 16
#: Reduction ratio of CBAM's channel-attention MLP and its spatial kernel (Woo et al., Sections 3, 4.1).
CBAM_REDUCTION = 16
CBAM_KERNEL = 7
#: ResNeXt-50 32×4d: cardinality 32, so the first stage's 3×3 conv has 32·4 = 128 channels (Xie et al., Table 1).
RESNEXT_CARDINALITY = 32
RESNEXT_STAGE1_WIDTH = 128


def _check_width(width: float) -> None:
    if not width > 0:
        raise ValueError(f"width must be > 0. Received: width={width}")


# === Attention blocks ===

def se_block(x, name: str, reduction: int = SE_REDUCTION):
    """Squeeze-and-excitation (Hu et al., Section 3, eq. 2–4): x · σ(W2·ReLU(W1·GAP(x) + b1) + b2).

    W1 maps C → max(1, C // reduction) channels, W2 back to C; the FCs have biases.
    """
    if not reduction >= 1:
        raise ValueError(f"reduction must be >= 1. Received: reduction={reduction}")
    channels = int(x.shape[-1])
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = keras.layers.Dense(max(1, channels // reduction), activation="relu", name=f"{name}_se_reduce")(s)
    s = keras.layers.Dense(channels, activation="sigmoid", name=f"{name}_se_expand")(s)
    return keras.layers.Multiply(name=f"{name}_se_scale")([x, s])


@keras.saving.register_keras_serializable(package="fbn_keras")
class ChannelPool(keras.layers.Layer):
    """[mean over channels; max over channels]: the (N, H, W, 2) input of CBAM's spatial attention (Woo et al., eq. 3)."""

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


def cbam_block(x, name: str, reduction: int = CBAM_REDUCTION, kernel_size: int = CBAM_KERNEL):
    """CBAM (Woo et al., Section 3): channel attention, then spatial attention, each multiplying the features.

    Channel (eq. 2): M_c = σ(MLP(GAP(x)) + MLP(GMP(x))), one shared MLP C → max(1, C // reduction) (ReLU) → C
    with biases. Spatial (eq. 3): M_s = σ(f^{k×k}([mean_c(x'); max_c(x')])) on x' = M_c·x, one k×k conv
    ('same' padding) with a bias, the inference-time form of the authors' bias-free conv followed by BatchNorm.
    """
    if not reduction >= 1 or not kernel_size >= 1:
        raise ValueError(f"reduction and kernel_size must be >= 1. Received: reduction={reduction}, "
                         f"kernel_size={kernel_size}")
    channels = int(x.shape[-1])
    fc1 = keras.layers.Dense(max(1, channels // reduction), activation="relu", name=f"{name}_cbam_fc1")
    fc2 = keras.layers.Dense(channels, name=f"{name}_cbam_fc2")
    avg = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_cbam_avg")(x)
    mx = keras.layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_cbam_max")(x)
    c = keras.layers.Add(name=f"{name}_cbam_channel_sum")([fc2(fc1(avg)), fc2(fc1(mx))])
    c = keras.layers.Activation("sigmoid", name=f"{name}_cbam_channel_gate")(c)
    x = keras.layers.Multiply(name=f"{name}_cbam_channel_scale")([x, c])
    s = ChannelPool(name=f"{name}_cbam_pool")(x)
    s = keras.layers.Conv2D(1, kernel_size, padding="same", activation="sigmoid", name=f"{name}_cbam_spatial")(s)
    return keras.layers.Multiply(name=f"{name}_cbam_spatial_scale")([x, s])


ATTENTIONS: dict[str, Callable] = {"se": se_block, "cbam": cbam_block}


# === Grouped convolution ===

#: How `GroupedConv2D` computes a grouped convolution (see `grouped_conv2d`).
GROUPED_CONV_METHODS = ("auto", "depthwise", "split")
#: "auto" takes the depthwise form up to this many input channels per group, one conv per group above it: the
#: faster of the two on CPU at the small preset's width 1/8 (1-4 per group) and at width 1 (4-32 per group).
DEPTHWISE_MAX_GROUP_CHANNELS = 4


def _check_method(method: str) -> None:
    if method not in GROUPED_CONV_METHODS:
        raise ValueError(f"method must be one of {GROUPED_CONV_METHODS}. Received: method={method!r}")


def grouped_conv2d(inputs, kernel, groups: int, strides=(1, 1), padding: str = "valid", method: str = "auto"):
    """The grouped 2-D convolution of `keras.ops.conv` with a (kh, kw, C_in/groups, C_out) kernel, channels last,
    without the XLA route Keras' TensorFlow backend takes for grouped kernels (Xie et al., Section 3.3, Fig. 3c).

    Output channel o = g·(C_out/groups) + j sums over input channels g·(C_in/groups) + i only. `method`:
    "depthwise": one depthwise conv with channel multiplier C_out/groups, then a sum over each group's inputs;
    "split": one ordinary conv per group, concatenated; "auto": depthwise up to `DEPTHWISE_MAX_GROUP_CHANNELS`
    input channels per group, split above.
    """
    _check_method(method)
    kh, kw, per_group_in, out_channels = (int(d) for d in kernel.shape)
    if int(inputs.shape[-1]) != per_group_in * groups or out_channels % groups:
        raise ValueError(f"inputs' {inputs.shape[-1]} channels and the kernel {tuple(kernel.shape)} do not make "
                         f"{groups} groups")
    if method == "auto":
        method = "depthwise" if per_group_in <= DEPTHWISE_MAX_GROUP_CHANNELS else "split"
    if method == "split":
        xs = ops.split(inputs, groups, axis=-1)
        ks = ops.split(kernel, groups, axis=-1)
        return ops.concatenate([ops.conv(a, b, strides=strides, padding=padding) for a, b in zip(xs, ks)], axis=-1)
    # Depthwise: input channel c = g·(C_in/G) + i gets the C_out/G filters kernel[:, :, i, g-th block of outputs];
    # its results come out at c·(C_out/G) + j, so a reshape to (G, C_in/G, C_out/G) and a sum over i finish.
    per_group_out = out_channels // groups
    blocks = ops.reshape(kernel, (kh, kw, per_group_in, groups, per_group_out))
    depthwise = ops.reshape(ops.transpose(blocks, (0, 1, 3, 2, 4)), (kh, kw, groups * per_group_in, per_group_out))
    y = ops.depthwise_conv(inputs, depthwise, strides=strides, padding=padding)
    shape = ops.shape(y)
    y = ops.reshape(y, (shape[0], shape[1], shape[2], groups, per_group_in, per_group_out))
    return ops.reshape(ops.sum(y, axis=4), (shape[0], shape[1], shape[2], out_channels))


@keras.saving.register_keras_serializable(package="fbn_keras")
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D(groups=g)` with the same kernel variable (kh, kw, C_in/g, C_out), config and outputs,
    computed by `grouped_conv2d` instead of Keras' XLA-compiled grouped conv (slow on CPU: docs/FAITHFULNESS.md,
    "ResNeXt grouped convolutions on CPU"). Channels last, no dilation; `groups == 1` is a plain Conv2D.
    """

    def __init__(self, *args, method: str = "auto", **kwargs):
        _check_method(method)
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last" or any(d != 1 for d in self.dilation_rate):
            raise ValueError(f"GroupedConv2D takes channels_last and dilation 1. Received: "
                             f"data_format={self.data_format!r}, dilation_rate={self.dilation_rate}")
        self.method = method

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        return grouped_conv2d(inputs, kernel, self.groups, strides=self.strides, padding=self.padding,
                              method=self.method)

    def get_config(self):
        return {**super().get_config(), "method": self.method}


# === Residual blocks and networks ===

def resnext_groups(channels: int, cardinality: int = RESNEXT_CARDINALITY) -> int:
    """Groups of a ResNeXt 3×3 conv with `channels` channels: the cardinality, or at narrow widths the largest
    number of groups ≤ it that divides the channels (gcd), so scaled networks keep grouped convs."""
    return math.gcd(int(channels), int(cardinality))


def _bottleneck_block(x, filters: int, out_channels: int, stride: int, project: bool, name: str,
                      groups: int = 1, attention: Optional[str] = None):
    """Bias-free ResNet v1 bottleneck: 1×1 (stride) → 3×3 (groups) → 1×1 to `out_channels`, each with BatchNorm,
    the attention block on the residual branch, added to the (projected) input, ReLU."""
    shortcut = x
    if project:
        shortcut = keras.layers.Conv2D(out_channels, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = _bn(shortcut, f"{name}_0_bn")
    x = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_1_conv")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    if groups == 1:
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    else:
        x = GroupedConv2D(filters, 3, padding="same", groups=groups, use_bias=False, name=f"{name}_2_conv")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = _bn(keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_3_conv")(x), f"{name}_3_bn")
    if attention is not None:
        x = ATTENTIONS[attention](x, name)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _residual_network(input_shape, width: float, name: str, inner: int, grouped: bool,
                      attention: Optional[str]) -> keras.Model:
    """Stem and the four ResNet-50 stages; bottleneck width inner·2^i, output 4·scaled(64·2^i) per stage."""
    _check_width(width)
    inputs = keras.Input(tuple(input_shape))
    x = _stem(inputs, scaled_channels(64, width), use_bias=False, pool_name="pool1_pool")
    for i, (stage, (base, blocks, stride)) in enumerate(zip(range(2, 6), RESNET50_STAGES)):
        filters = scaled_channels(inner * 2 ** i, width)
        out_channels = 4 * scaled_channels(base, width)
        groups = resnext_groups(filters) if grouped else 1
        for block in range(1, blocks + 1):
            x = _bottleneck_block(x, filters, out_channels, stride if block == 1 else 1, project=block == 1,
                                  name=f"conv{stage}_block{block}", groups=groups, attention=attention)
    return keras.Model(inputs, x, name=name)


def se_resnet50_network(input_shape: tuple[int, ...], width: float = 1.0, name: str = "se_resnet50") -> keras.Model:
    """SE-ResNet-50 (Hu et al., Table 1), no top, every channel count × `width`; the last map is 4×4×2048 at 112×112."""
    return _residual_network(input_shape, width, name, inner=64, grouped=False, attention="se")


def resnext50_network(input_shape: tuple[int, ...], width: float = 1.0, name: str = "resnext50") -> keras.Model:
    """ResNeXt-50 32×4d (Xie et al., Table 1), no top, every channel count × `width` (groups: `resnext_groups`)."""
    return _residual_network(input_shape, width, name, inner=RESNEXT_STAGE1_WIDTH, grouped=True, attention=None)


def resnext50_cbam_network(input_shape: tuple[int, ...], width: float = 1.0,
                           name: str = "resnext50_cbam") -> keras.Model:
    """ResNeXt-50 32×4d with CBAM on every residual branch (Woo et al., Fig. 3), no top, channels × `width`."""
    return _residual_network(input_shape, width, name, inner=RESNEXT_STAGE1_WIDTH, grouped=True, attention="cbam")


#: Backbone name (config.mtanet_backbone) → network function.
NETWORKS: dict[str, Callable[..., keras.Model]] = {
    "se_resnet50": se_resnet50_network,
    "resnext50": resnext50_network,
    "resnext50_cbam": resnext50_cbam_network,
}
