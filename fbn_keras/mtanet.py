"""MTANet (Zhang & Gu, ABAW 2020): one face → valence-arousal, 8 AUs and 7 expressions from an SE-ResNet-50.

`build_mtanet(config)` gives the functional model of Section III-A (Fig. 1): a 112×112 face in [-1, 1] →
backbone (`config.mtanet_backbone`, Table I) → neck (global average and global max pooling of the last map,
each Dropout → Dense(512) → ReLU, concatenated to 1024) → one Dense layer per task,
`{"va": (N, 2) linear, "au": (N, 8) logits, "expr": (N, 7) logits}`. The 8 AUs are Aff-Wild2's
1, 2, 4, 6, 12, 15, 20, 25 (`mtanet_au_slots` places them in `taxonomy.AUS`).

`MTANetLoss(config)` is Section III-B: cross entropy (eq. 1), binary cross entropy summed over the 8 AUs
(eq. 2) and the CCC loss (eq. 3–4), added (stage 1) or weighted by learned task uncertainties (eq. 5,
`UncertaintyWeighting`, stage 2); `STAGES` holds the two stages' optimisation settings (Section IV-B).
`load_vggface2_weights` loads a local VGGFace2-pretrained backbone by layer name. The readings of what the
paper leaves open are in docs/FAITHFULNESS.md, "MTANet (Zhang & Gu, ABAW 2020)".
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
from keras import ops

from fbn_keras import losses, taxonomy
from fbn_keras.backbones import scaled_channels
from fbn_keras.config import MTANET_WEIGHTINGS, Config
from fbn_keras.model import WeightsFileError, read_weights_file
from fbn_keras.se_resnet import NETWORKS

log = logging.getLogger(__name__)

#: The AUs of MTANet's AU head (Section III-A: "eight individual AU labels"; Aff-Wild2's ABAW 2020 set).
MTANET_AUS: tuple[int, ...] = taxonomy.AFFWILD2_PAPER_AUS
#: Units of each neck branch at width 1: two branches concatenated give the paper's 1024-d feature.
NECK_UNITS = 512
#: The heads in output order: (name, units).
HEADS: tuple[tuple[str, int], ...] = (("va", len(taxonomy.VA_NAMES)), ("au", len(MTANET_AUS)),
                                      ("expr", taxonomy.NUM_EXPRESSIONS))
TASKS: tuple[str, ...] = ("va", "au", "expr")
#: Name of the optional input layer mapping [-1, 1] RGB to VGGFace2's mean-subtracted 0..255 scale.
VGGFACE2_INPUT = "vggface2_input"
#: Mean pixel of the VGGFace2 training faces, RGB on 0..255 (Cao et al., 2018; the Caffe models list it as BGR).
VGGFACE2_MEAN_RGB: tuple[float, float, float] = (131.0912, 103.8827, 91.4953)
CHANNEL_ORDERS: tuple[str, ...] = ("bgr", "rgb")

#: Section IV-B's two-stage schedule as config overrides: stage 1 trains with the plain sum of the task
#: losses (Adam, lr 1e-3, weight decay 1e-3, read as decoupled AdamW), stage 2 fine-tunes with eq. 5
#: (SGD, lr 1e-4, weight decay 5e-3; momentum is not given: none). The trainer keeps the uncertainty
#: variables out of weight decay.
STAGES: dict[str, dict[str, Any]] = {
    "stage1": dict(mtanet_weighting="sum", optimizer="adamw", learning_rate=1e-3, weight_decay=1e-3),
    "stage2": dict(mtanet_weighting="uncertainty", optimizer="sgd", learning_rate=1e-4, weight_decay=5e-3),
}


def mtanet_au_slots() -> tuple[int, ...]:
    """Columns of `taxonomy.AUS` holding MTANet's 8 AUs, in the AU head's order."""
    return tuple(taxonomy.au_index(au) for au in MTANET_AUS)


# === Model ===

def build_mtanet(config: Config, *, vggface2_input: bool = False) -> keras.Model:
    """The MTANet functional model of `config` (Section III-A, Fig. 1).

    image (S×S×3, S = config.image_size; the paper's 112) → backbone at `config.width` (one nested sub-model,
    named after `config.mtanet_backbone`) → [GAP; GMP] of its last map, each → Dropout(config.dropout) →
    Dense(512·width) → ReLU, concatenated (1024 at width 1) → Dense heads va (2, linear), au (8 logits),
    expr (7 logits).

    Args:
        config: uses mtanet_backbone, width, dropout, image_size.
        vggface2_input: insert `vggface2_input`, mapping [-1, 1] RGB to VGGFace2's mean-subtracted 0..255,
            for pretrained weights (`load_vggface2_weights`); off, the backbone sees the [-1, 1] input.
    Example:
        model = build_mtanet(preset("tiny", image_size=32)); model(images)["au"].shape == (N, 8)
    """
    if config.mtanet_backbone not in NETWORKS:
        raise ValueError(f"mtanet_backbone must be one of {tuple(NETWORKS)}. "
                         f"Received: mtanet_backbone={config.mtanet_backbone!r}")
    size = config.image_size
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if vggface2_input:
        offset = [127.5 - m for m in VGGFACE2_MEAN_RGB]
        x = keras.layers.Rescaling(scale=127.5, offset=offset, name=VGGFACE2_INPUT)(x)
    features = NETWORKS[config.mtanet_backbone]((size, size, 3), config.width)(x)
    units = scaled_channels(NECK_UNITS, config.width)
    branches = []
    for kind, pool in (("avg", keras.layers.GlobalAveragePooling2D), ("max", keras.layers.GlobalMaxPooling2D)):
        b = pool(name=f"neck_{kind}_pool")(features)
        b = keras.layers.Dropout(config.dropout, name=f"neck_{kind}_dropout")(b)
        branches.append(keras.layers.Dense(units, activation="relu", name=f"neck_{kind}_fc")(b))
    neck = keras.layers.Concatenate(name="neck_concat")(branches)
    outputs = {name: keras.layers.Dense(n, name=name)(neck) for name, n in HEADS}
    return keras.Model(inputs, outputs, name="mtanet")


# === Pretrained VGGFace2 backbone ===

def _backbone(model: keras.Model) -> keras.Model:
    """The backbone sub-model of an MTANet (or `model` itself when it is a bare backbone network)."""
    if model.name in NETWORKS:
        return model
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name in NETWORKS]
    if len(nested) != 1:
        raise ValueError(f"Model {model.name!r} holds no backbone named one of {tuple(NETWORKS)}. "
                         f"Received layers: {[layer.name for layer in model.layers]}")
    return nested[0]


def _weights_from_h5_all(handle) -> dict[str, dict[str, np.ndarray]]:
    """{layer: {weight name or position: array}} from a Keras HDF5 file, keeping every array of a layer.

    Keras 3 `.weights.h5` names a layer in its `vars` group's `name` attribute and its arrays by position
    ("0", "1", …, in `layer.weights` order); Keras 2 `.h5` groups are the layer names and arrays are named
    ("gamma:0"). BatchNorm's four arrays all survive, which a reader keyed by array rank would merge.
    """
    import h5py

    found: dict[str, dict[str, np.ndarray]] = {}

    def visit(path: str, obj) -> None:
        if not isinstance(obj, h5py.Group) or "optimizer" in path.split("/"):
            return
        arrays = {k: obj[k] for k in obj if isinstance(obj[k], h5py.Dataset)}
        if not arrays:
            return
        name = obj.attrs.get("name", path.rsplit("/", 1)[-1])
        name = name.decode() if isinstance(name, bytes) else str(name)
        entry = found.setdefault(name, {})
        for key, a in arrays.items():
            entry.setdefault(key.split(":")[0], np.asarray(a))

    with h5py.File(handle, "r") as f:
        f.visititems(visit)
    return found


def _read_all_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every stored array by layer and weight name: HDF5 read here, `.npz`/`.npy` by `model.read_weights_file`."""
    if path.suffix == ".keras" and path.is_file():
        with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f:
            return _weights_from_h5_all(f)
    if path.suffix in (".h5", ".hdf5") and path.is_file():
        return _weights_from_h5_all(path)
    return read_weights_file(path)      # .npz / .npy keys "layer/weight"; raises on missing or unknown files


#: Other names of a weight in converted files (PyTorch, Caffe conversions).
_ALIASES: dict[str, tuple[str, ...]] = {
    "kernel": ("weights", "w", "weight"), "bias": ("biases", "b"), "gamma": ("scale", "weight"),
    "beta": ("offset", "bias"), "moving_mean": ("mean", "running_mean"),
    "moving_variance": ("variance", "var", "running_var"),
}


def _stored_value(entry: Mapping[str, np.ndarray], weight_name: str, position: int):
    for key in (weight_name, *_ALIASES.get(weight_name, ()), str(position)):
        if key in entry:
            return entry[key]
    return None


def load_vggface2_weights(model: keras.Model, path: str | Path, *, channel_order: str = "bgr") -> list[str]:
    """Load a local VGGFace2-pretrained backbone (Section IV-B) into `model`'s backbone by layer name.

    The file (`.h5`, `.weights.h5`, `.keras`, `.npz` with keys "layer/weight", pickled `.npy`) must hold every
    backbone layer with weights under this module's names (`conv2_block1_1_conv`, `conv2_block1_1_bn`'s
    gamma/beta/moving_mean/moving_variance, `conv2_block1_se_reduce`, …) at the model's shapes. Nothing is
    assigned otherwise: one `model.WeightsFileError` names every missing or mis-shaped layer. Neck and heads
    are not read. `channel_order="bgr"` (Caffe conversions) reverses `conv1_conv`'s input channels so the model
    keeps taking RGB. Build the model with `vggface2_input=True` so the filters see the scale they were
    trained on. Returns the names of the layers loaded.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}. Received: channel_order={channel_order!r}")
    backbone = _backbone(model)
    stored = _read_all_weights(Path(path))

    # === Check every layer before assigning any ===
    problems, assignments = [], {}
    layers = [layer for layer in backbone.layers if layer.weights]
    for layer in layers:
        entry = stored.get(layer.name)
        if entry is None:
            problems.append(f"{layer.name}: missing")
            continue
        values, bad = [], []
        for position, weight in enumerate(layer.weights):
            value = _stored_value(entry, weight.name, position)
            want = tuple(weight.shape)
            if value is None:
                bad.append(f"{weight.name} missing")
            elif value.size == int(np.prod(want)) and value.ndim <= 2 and len(want) == 1:
                values.append(value.reshape(want))          # (C, 1) columns of some conversions
            elif tuple(value.shape) != want:
                bad.append(f"{weight.name} {tuple(value.shape)}, model expects {want}")
            else:
                values.append(value)
        if bad:
            problems.append(f"{layer.name}: " + "; ".join(bad))
            continue
        if layer.name == "conv1_conv" and channel_order == "bgr":
            values[0] = values[0][:, :, ::-1, :]   # BGR-trained filters fed RGB: reverse the input channels
        assignments[layer.name] = [np.asarray(v, np.float32) for v in values]
    if problems:
        raise WeightsFileError(f"Cannot load VGGFace2 weights from {path} into {backbone.name!r}: "
                               f"{len(problems)} of {len(layers)} layers missing or mis-shaped:\n  "
                               + "\n  ".join(problems))

    # === Assign ===
    for name, values in assignments.items():
        backbone.get_layer(name).set_weights(values)
    log.info("Loaded VGGFace2 weights from %s into %s (%d layers, channel order %s)", path, backbone.name,
             len(assignments), channel_order)
    if VGGFACE2_INPUT not in {layer.name for layer in model.layers}:
        log.warning("Model has no %r layer: pretrained filters will see [-1, 1] inputs instead of the "
                    "mean-subtracted 0..255 scale they were trained on", VGGFACE2_INPUT)
    return list(assignments)


# === Losses (Section III-B, eq. 1–5) ===

_LABEL_KEYS = ("va", "va_mask", "expr", "au", "au_mask")


def _rows(x, dtype, width=None):
    """(..., K) → (N, K) (or (...,) → (N,) without `width`), so (B, T, …) batches work too."""
    x = ops.cast(x, dtype)
    return ops.reshape(x, (-1,) if width is None else (-1, width))


def mtanet_task_losses(outputs: Mapping[str, Any], labels: Mapping[str, Any],
                       au_slots: tuple[int, ...] | None = None) -> dict[str, Any]:
    """{"va", "au", "expr"}: MTANet's task losses (Section III-B), each masked by its labels.

    expr: eq. 1, softmax cross entropy averaged over images with an expression label (`losses.expression_loss`).
    au: eq. 2, Σ over the 8 AUs of the binary cross entropy per image (a sum, not a mean; an AU not annotated
    in an image adds nothing), averaged over images with at least one of the 8 annotated.
    va: eq. 4, 1 − ½(ρ_v + ρ_a) with eq. 3's CCC over the VA-labelled images (`losses.ccc_loss`).
    Each is this replica's share of the global-batch loss under `tf.distribute` (the convention of
    `fbn_keras.losses`), and 0 when no image carries the task's label.

    Args:
        outputs: {"va": (N, 2), "au": (N, 8) logits, "expr": (N, 7) logits}.
        labels: {"va": (N, 2), "va_mask": (N,), "expr": (N,) (-1 missing), "au": (N, 17), "au_mask": (N, 17)}
            in `taxonomy.AUS` columns (docs/LABELS.md).
        au_slots: the label columns of the AU head's outputs; default `mtanet_au_slots()`.
    """
    losses._require(outputs, TASKS, "outputs")
    losses._require(labels, _LABEL_KEYS, "labels")
    slots = list(mtanet_au_slots() if au_slots is None else au_slots)
    n_au = int(outputs["au"].shape[-1])
    if len(slots) != n_au:
        raise ValueError(f"au_slots must name one label column per AU output ({n_au}). Received: {slots}")
    n_label_aus = int(labels["au"].shape[-1])
    au = ops.take(_rows(labels["au"], "float32", n_label_aus), slots, axis=1)
    mask = ops.take(_rows(labels["au_mask"], "float32", n_label_aus), slots, axis=1)
    logits = _rows(outputs["au"], "float32", n_au)
    annotated = mask > 0
    au = ops.where(annotated, au, ops.zeros_like(au))          # NaN labels under mask 0 stay out
    bce = ops.where(annotated, losses._bce_with_logits(au, logits), ops.zeros_like(au))
    per_image = ops.sum(bce, axis=-1)                          # eq. 2: the sum over the 8 AUs
    n_expr = int(outputs["expr"].shape[-1])
    return {
        "va": losses.ccc_loss(_rows(labels["va"], "float32", 2), _rows(labels["va_mask"], "float32"),
                              _rows(outputs["va"], "float32", 2)),
        "au": losses._masked_mean(per_image, ops.any(annotated, axis=-1)),
        "expr": losses.expression_loss(ops.reshape(labels["expr"], (-1,)),
                                       _rows(outputs["expr"], "float32", n_expr)),
    }


class UncertaintyWeighting:
    """Eq. 5 (Kendall, Gal & Cipolla, CVPR 2018): task losses weighted by learned homoscedastic uncertainties.

    Learns s_t = log σ_t² per task (initial 0: σ = 1), so eq. 5 reads
    ½·e^{−s_va}·L_va + e^{−s_au}·L_au + e^{−s_expr}·L_expr + ½(s_va + s_au + s_expr):
    the regression task's weight is 1/(2σ²), the classification tasks' 1/σ², and log σ = ½s. The variables
    are made in the constructor, so building this inside `strategy.scope()` mirrors them. Under
    `tf.distribute` every returned value is this replica's share (the ½Σs term and σ divided by the
    replicas in sync), so their SUM over replicas is the value, as for `fbn_keras.losses`.
    """

    #: Eq. 5's factor per task: ½ for the regression (VA), 1 for the classification tasks.
    FACTORS: dict[str, float] = {"va": 0.5, "au": 1.0, "expr": 1.0}

    def __init__(self, initial_log_variance: float = 0.0):
        if not np.isfinite(initial_log_variance):
            raise ValueError(f"initial_log_variance must be finite. Received: {initial_log_variance!r}")
        self.log_variances = {t: keras.Variable(float(initial_log_variance), dtype="float32", trainable=True,
                                                name=f"mtanet_log_variance_{t}") for t in TASKS}

    @property
    def trainable_variables(self) -> list:
        """s_va, s_au, s_expr: the optimizer trains them with the network (never with weight decay)."""
        return [self.log_variances[t] for t in TASKS]

    def weights(self) -> dict[str, Any]:
        """{task: its weight in eq. 5}: ½e^{−s_va}, e^{−s_au}, e^{−s_expr}."""
        return {t: self.FACTORS[t] * ops.exp(-ops.convert_to_tensor(self.log_variances[t])) for t in TASKS}

    def __call__(self, terms: Mapping[str, Any]) -> dict[str, Any]:
        """{"total": eq. 5, "sigma_va", "sigma_au", "sigma_expr": σ_t = e^{s_t/2}} from the task losses `terms`."""
        losses._require(terms, TASKS, "terms")
        replicas = float(losses._num_replicas())
        weights = self.weights()
        total = ops.convert_to_tensor(0.0, "float32")
        out: dict[str, Any] = {}
        for t in TASKS:
            s = ops.convert_to_tensor(self.log_variances[t])
            total = total + weights[t] * ops.cast(terms[t], "float32") + 0.5 * s / replicas
            out[f"sigma_{t}"] = ops.exp(0.5 * s) / replicas
        out["total"] = total
        return out


class MTANetLoss:
    """MTANet's objective (Section III-B): the task losses of eq. 1–4, added (config.mtanet_weighting "sum",
    stage 1) or weighted by eq. 5 ("uncertainty", stage 2, `UncertaintyWeighting`).

    Returns {"va", "au", "expr", "total"} and, with uncertainty weighting, "sigma_va", "sigma_au",
    "sigma_expr". `trainable_variables` holds the s_t of eq. 5 (empty for "sum"): build the loss inside
    `strategy.scope()` and train them with the model.

    Example:
        loss = MTANetLoss(config)(model(images), labels)["total"]
    """

    def __init__(self, config: Config, au_slots: tuple[int, ...] | None = None):
        if config.mtanet_weighting not in MTANET_WEIGHTINGS:
            raise ValueError(f"mtanet_weighting must be one of {MTANET_WEIGHTINGS}. "
                             f"Received: mtanet_weighting={config.mtanet_weighting!r}")
        self.config = config
        self.au_slots = mtanet_au_slots() if au_slots is None else tuple(au_slots)
        self.uncertainty = UncertaintyWeighting() if config.mtanet_weighting == "uncertainty" else None

    @property
    def trainable_variables(self) -> list:
        return [] if self.uncertainty is None else self.uncertainty.trainable_variables

    def term_names(self) -> tuple[str, ...]:
        """The names of the values `__call__` returns, besides 'total'."""
        sigmas = () if self.uncertainty is None else tuple(f"sigma_{t}" for t in TASKS)
        return TASKS + sigmas

    def __call__(self, outputs: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
        terms = mtanet_task_losses(outputs, labels, self.au_slots)
        if self.uncertainty is None:
            terms["total"] = terms["va"] + terms["au"] + terms["expr"]
        else:
            terms.update(self.uncertainty(terms))
        return terms
