"""FaceBehaviorNet: a trunk, two FC layers, one linear output for VA, expressions and AUs (main paper Section 3, Fig. 1).

`build_facebehaviornet(config)` gives a functional Keras model from (N, 96, 96, 3)
faces in [-1, 1] to `{"va": (N, 2), "expr": (N, 7) logits, "au": (N, 17) logits}`;
`probabilities` applies the paper's softmax / sigmoid; `load_vgg_face_weights`
loads a local VGG-FACE conversion by layer name; `parameter_counts` backs
`python -m fbn_keras.model --preset paper`.
"""

from __future__ import annotations

import logging
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
from keras import ops

from fbn_keras import backbones, cli, taxonomy
from fbn_keras.config import Config, add_config_flags, config_from_args

log = logging.getLogger(__name__)

NUM_VA = len(taxonomy.VA_NAMES)
#: Output heads in the order of the 26 output units (paper: "a (linear) output layer").
HEADS: tuple[tuple[str, int], ...] = (("va", NUM_VA), ("expr", taxonomy.NUM_EXPRESSIONS), ("au", taxonomy.NUM_AUS))
NUM_OUTPUTS = sum(n for _, n in HEADS)
#: Layers after the trunk. Named fc1/fc2/output on purpose: never VGG's fc6/fc7/fc8,
#: so a VGG-FACE file's FC weights can never be loaded into them by name.
HEAD_LAYERS: tuple[str, ...] = ("fc1", "fc2", "output")
#: Name of the optional input-normalisation layer for pretrained VGG-FACE weights.
VGG_FACE_INPUT = "vgg_face_input"
CHANNEL_ORDERS: tuple[str, ...] = ("bgr", "rgb")


# === Model ===

def build_facebehaviornet(config: Config, *, vgg_face_input: bool | None = None, pooling: str = "avg",
                          load_weights: bool = True) -> keras.Model:
    """The FaceBehaviorNet functional model of `config` (main paper Section 3).

    trunk → [Dense(fc_units, relu) → Dropout(dropout)] × 2 → Dense(26) split into
    va (linear), expr (7 logits) and au (17 logits), in taxonomy order.

    Args:
        config: uses backbone, trunk_init, width, fc_units, dropout, image_size, vgg_face_weights,
            vgg_face_input.
        vgg_face_input: insert the `vgg_face_input` layer mapping [-1, 1] RGB to
            VGG-FACE's mean-subtracted 0..255 scale. None (default): the
            config's `vgg_face_input` flag; when that is None too, on exactly
            when pretrained weights are given and loaded (`config.vgg_face_weights`);
            random-init models keep the paper's [-1, 1] input.
        pooling: "avg" or "flatten", for the resnet50/densenet121 trunks only.
        load_weights: load `config.vgg_face_weights` when set (else say that the
            trunk starts from random initialisation).

    Example:
        model = build_facebehaviornet(preset("tiny"))
        out = model(np.zeros((1, 96, 96, 3), "float32"))  # out["expr"].shape == (1, 7)
    """
    # === Checks ===
    if config.backbone not in backbones.BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(backbones.BACKBONES)}. "
                         f"Received: backbone={config.backbone!r}")
    has_weights = bool(config.vgg_face_weights)
    if has_weights and config.backbone != "vgg_face":
        raise ValueError(f"vgg_face_weights only apply to backbone 'vgg_face'. Received: backbone={config.backbone!r}, "
                         f"vgg_face_weights={config.vgg_face_weights!r}")
    if vgg_face_input is None:
        vgg_face_input = config.vgg_face_input
    if vgg_face_input is None:
        vgg_face_input = has_weights and load_weights
    if vgg_face_input and config.backbone != "vgg_face":
        raise ValueError(f"vgg_face_input only applies to backbone 'vgg_face'. Received: backbone={config.backbone!r}")

    # === Layers and functional model ===
    inputs = keras.Input((config.image_size, config.image_size, 3), name="image")
    x = backbones.vgg_face_input_adapter(inputs, VGG_FACE_INPUT) if vgg_face_input else inputs
    trunk = backbones.BACKBONES[config.backbone]
    x = (trunk(x, config.width, config.trunk_init) if config.backbone == "vgg_face"
         else trunk(x, config.width, pooling=pooling))
    for i in (1, 2):
        x = keras.layers.Dense(config.fc_units, activation="relu", name=f"fc{i}")(x)
        x = keras.layers.Dropout(config.dropout, name=f"dropout{i}")(x)
    # One linear layer of 2 + 7 + 17 units, then sliced (built-in ops, no Lambda:
    # the model loads in safe mode); Identity layers give each head its name.
    out = keras.layers.Dense(NUM_OUTPUTS, name="output")(x)
    heads, start = {}, 0
    for name, size in HEADS:
        heads[name] = keras.layers.Identity(name=name)(out[:, start:start + size])
        start += size
    model = keras.Model(inputs, heads, name="facebehaviornet")

    # === Initialisation (VGG-FACE weights: load when given, else say so) ===
    if has_weights and load_weights:
        load_vgg_face_weights(model, config.vgg_face_weights)
    else:
        log.info("FaceBehaviorNet (%s, width %s): trunk starts from random initialisation%s", config.backbone,
                 config.width, "" if not has_weights else " (load_weights=False)")
    return model


# === Outputs → probabilities ===

def probabilities(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's final predictions: softmax over expr, sigmoid per AU, VA unchanged (main paper Section 3).

    Accepts the model's output dict of numpy arrays (→ numpy arrays) or tensors (→ tensors).
    """
    missing = [name for name, _ in HEADS if name not in outputs]
    if missing:
        raise ValueError(f"outputs must hold {[n for n, _ in HEADS]}. Missing: {missing}; "
                         f"received keys {sorted(outputs)}")
    as_numpy = all(isinstance(outputs[name], np.ndarray) for name, _ in HEADS)
    probs = {"va": outputs["va"],
             "expr": ops.softmax(ops.convert_to_tensor(outputs["expr"]), axis=-1),
             "au": ops.sigmoid(ops.convert_to_tensor(outputs["au"]))}
    if as_numpy:
        probs = {k: np.asarray(ops.convert_to_numpy(v)) for k, v in probs.items()}
    return probs


def check_images(images: np.ndarray, size: int) -> np.ndarray:
    """`images` as float32 (N, size, size, 3) in [-1, 1], or a ValueError saying what is wrong."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"images must have shape (N, {size}, {size}, 3). Received: shape={images.shape}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be float in [-1, 1] (x / 127.5 - 1 for 8-bit pixels). "
                         f"Received: dtype={images.dtype}")
    if images.size and (not np.isfinite(images).all() or images.min() < -1.001 or images.max() > 1.001):
        raise ValueError(f"images must be finite and in [-1, 1] (x / 127.5 - 1 for 8-bit pixels). "
                         f"Received: min={np.nanmin(images):.3g}, max={np.nanmax(images):.3g}")
    return images.astype(np.float32, copy=False)


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Probabilities (see `probabilities`) for a float array of faces in [-1, 1], in batches of `fbn_keras.runs`'
    one traced forward pass."""
    from fbn_keras.runs import make_forward

    images = check_images(images, int(model.input_shape[1]))
    if len(images) == 0:
        return {name: np.zeros((0, size), np.float32) for name, size in HEADS}
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    forward = make_forward(model)
    parts = [forward(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name, _ in HEADS}


# === Pretrained VGG-FACE weights ===

class WeightsFileError(ValueError):
    """A pretrained-weights file that cannot be used: unsupported, or with missing or mis-shaped layers."""


def _weights_from_h5(handle) -> dict[str, dict[str, np.ndarray]]:
    """{layer: {"kernel", "bias"}} from a Keras HDF5 weights file, by layer name.

    Keras 3 `.weights.h5` keeps each layer's name in the `name` attribute of its
    `vars` group (datasets `0` = kernel, `1` = bias); Keras 2 `.h5` files use
    groups named after the layer (`conv1_1/conv1_1/kernel:0`). Arrays are told
    apart by rank (4-D kernel, 1-D bias). Optimizer state is skipped.
    """
    import h5py

    found: dict[str, dict[str, np.ndarray]] = {}

    def visit(path: str, obj) -> None:
        if not isinstance(obj, h5py.Group) or "optimizer" in path.split("/"):
            return
        arrays = [obj[k] for k in obj if isinstance(obj[k], h5py.Dataset)]
        if not arrays:
            return
        name = obj.attrs.get("name", path.rsplit("/", 1)[-1])
        name = name.decode() if isinstance(name, bytes) else str(name)
        entry = found.setdefault(name, {})
        for a in arrays:
            kind = {4: "kernel", 1: "bias"}.get(a.ndim, a.name)
            entry.setdefault(kind, np.asarray(a))

    with h5py.File(handle, "r") as f:
        f.visititems(visit)
    return found


def _weights_from_numpy(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{layer: {"kernel", "bias"}} from `.npz` keys "conv1_1/kernel" or a pickled `.npy` dict.

    The `.npy` dict may be flat ("conv1_1/kernel") or nested by layer with
    kernel/bias (or caffe-tensorflow's weights/biases, or a [kernel, bias] list).
    """
    if path.suffix == ".npz":
        with np.load(path) as f:
            flat = {k: f[k] for k in f.files}
    else:
        # A pickled dict is the format of the common .npy conversions; only load files you trust.
        obj = np.load(path, allow_pickle=True)
        flat = obj.item() if obj.dtype == object and obj.shape == () else None
        if not isinstance(flat, dict):
            raise WeightsFileError(f"{path}: expected a pickled dict of layer weights. Received: array of shape {obj.shape}")
    aliases = {"kernel": "kernel", "weights": "kernel", "w": "kernel", "bias": "bias", "biases": "bias", "b": "bias"}
    found: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        layer, _, kind = str(key).partition("/")
        if kind:
            found.setdefault(layer, {})[aliases.get(kind.split(":")[0], kind)] = np.asarray(value)
        elif isinstance(value, dict):
            found[layer] = {aliases.get(k, k): np.asarray(v) for k, v in value.items()}
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            found[layer] = {"kernel": np.asarray(value[0]), "bias": np.asarray(value[1])}
    return found


def read_weights_file(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {"kernel": array, "bias": array}} from a `.h5`/`.weights.h5`/`.keras`/`.npz`/`.npy` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG-FACE weights file not found: {path}")
    if path.suffix in (".npz", ".npy"):
        return _weights_from_numpy(path)
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f:
            return _weights_from_h5(f)
    if path.suffix in (".h5", ".hdf5"):
        return _weights_from_h5(path)
    raise WeightsFileError(f"Unsupported weights file {path}: expected .h5, .weights.h5, .keras, .npz or .npy")


def load_vgg_face_weights(model: keras.Model, path: str | Path, *, channel_order: str = "bgr") -> list[str]:
    """Load conv1_1 … conv5_3 of a local VGG-FACE file into `model` by layer name; return the names loaded.

    Nothing is assigned unless all 13 layers are present with the model's
    shapes; otherwise one WeightsFileError (a ValueError) names every missing and mis-shaped layer.
    Other entries of the file (fc6, fc7, fc8) are ignored. Kernels are
    (3, 3, in, out) as in Keras, MatConvNet and caffe-tensorflow.

    Input normalisation: VGG-FACE was trained on 0..255 pixels minus the mean
    face; our input is RGB in [-1, 1]. Build the model with the
    `vgg_face_input` layer (`build_facebehaviornet` does when
    `config.vgg_face_weights` is set) so the pretrained filters see the scale
    they were trained on. `channel_order="bgr"` (Caffe and keras-vggface
    conversions) reverses conv1_1's input channels so the model keeps taking
    RGB; use "rgb" for MatConvNet conversions, which are RGB already.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}. Received: channel_order={channel_order!r}")
    layer_names = {layer.name for layer in model.layers}
    absent = [n for n in backbones.VGG_CONV_NAMES if n not in layer_names]
    if absent:
        raise ValueError(f"Model {model.name!r} has no VGG-FACE layer(s) {absent}: "
                         "VGG-FACE weights only load into the vgg_face backbone")
    stored = read_weights_file(path)

    # === Check every layer before assigning any ===
    problems, assignments = [], {}
    for name in backbones.VGG_CONV_NAMES:
        layer = model.get_layer(name)
        want_kernel, want_bias = (tuple(w.shape) for w in layer.weights)
        entry = stored.get(name, {})
        kernel, bias = entry.get("kernel"), entry.get("bias")
        if kernel is None or bias is None:
            missing = [k for k, v in (("kernel", kernel), ("bias", bias)) if v is None]
            problems.append(f"{name}: missing {' and '.join(missing)}")
            continue
        # MatConvNet stores biases as (out, 1) columns: same numbers, so accept any size-1 axes.
        bias = bias.reshape(-1) if bias.size == want_bias[0] else bias
        if kernel.shape != want_kernel or bias.shape != want_bias:
            hint = (" (looks like Caffe's (out, in, h, w): transpose to (h, w, in, out))"
                    if kernel.shape == (want_kernel[3], want_kernel[2], *want_kernel[:2]) else "")
            problems.append(f"{name}: kernel {kernel.shape} bias {bias.shape}, model expects "
                            f"kernel {want_kernel} bias {want_bias}{hint}")
            continue
        if name == "conv1_1" and channel_order == "bgr":
            kernel = kernel[:, :, ::-1, :]  # BGR-trained filters, fed RGB: reverse the input-channel axis
        assignments[name] = [kernel.astype(np.float32), bias.astype(np.float32)]
    if problems:
        raise WeightsFileError(f"Cannot load VGG-FACE weights from {path}: {len(problems)} of "
                         f"{len(backbones.VGG_CONV_NAMES)} conv layers missing or mis-shaped:\n  "
                         + "\n  ".join(problems))

    # === Assign ===
    for name, values in assignments.items():
        model.get_layer(name).set_weights(values)
    ignored = sorted(set(stored) - set(assignments))
    log.info("Loaded VGG-FACE weights from %s into %s (channel order %s)%s", path, ", ".join(assignments),
             channel_order, f"; ignored {', '.join(ignored)}" if ignored else "")
    if VGG_FACE_INPUT not in layer_names:
        log.warning("Model has no %r layer: pretrained VGG-FACE filters will see [-1, 1] inputs instead of the "
                    "mean-subtracted 0..255 scale they were trained on", VGG_FACE_INPUT)
    return list(assignments)


# === Parameter counts ===

def count_parameters(model: keras.Model) -> dict[str, int]:
    """{"trunk", "head", "total"} parameters of a built FaceBehaviorNet: head = fc1 + fc2 + output."""
    total = int(model.count_params())
    head = sum(int(model.get_layer(name).count_params()) for name in HEAD_LAYERS)
    return {"trunk": total - head, "head": head, "total": total}


def parameter_counts(config: Config) -> dict[str, int]:
    """Parameters of the model `config` describes, split into trunk and head (paper preset: trunk 14,714,688)."""
    model = build_facebehaviornet(config, load_weights=False)
    return count_parameters(model)


def format_parameter_table(config: Config, counts: Mapping[str, int]) -> str:
    """A small text table of `counts` for the CLI."""
    rows = [f"FaceBehaviorNet, preset {config.preset}: backbone {config.backbone}, width {config.width}, "
            f"fc {config.fc_units}, input {config.image_size}x{config.image_size}x3"]
    rows += [f"{part:<6} {counts[part]:>14,}" for part in ("trunk", "head", "total")]
    return "\n".join(rows)


@cli.entry_point("fbn_keras.model")
def main(argv: list[str] | None = None) -> int:
    """`python -m fbn_keras.model --preset paper`: print the parameter counts."""
    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.model"), description=__doc__.splitlines()[0])
    add_config_flags(parser)
    args = parser.parse_args(argv)
    with cli.user_errors(ValueError):
        config = config_from_args(args)
    print(format_parameter_table(config, parameter_counts(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
