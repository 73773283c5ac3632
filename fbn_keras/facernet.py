"""FaceRNET: per-frame affect representations → GRU → Mask layer with routing → dense → 7 intensities.

Kollias et al., "FaceRNET: a facial expression intensity estimation network" (ABAW5 / MuSe 2022 ERI),
Section 3, Fig. 1. One label vector per video: the intensities of the 7 emotional reactions
(`taxonomy.REACTIONS`: Adoration, Amusement, Anxiety, Disgust, Empathic-Pain, Fear, Surprise).

- REC (Section 3.1): a per-frame multi-task CNN giving VA (2), 7 basic expressions and 17 AUs. The
  paper's REC ("based on residual units", Fig. 2) is not described beyond that; the REC here is
  FaceBehaviorNet (`model.build_facebehaviornet`) at `config.image_size` (112 in the paper), kept as
  one sub-model named "rec" so it can be trained alone (stage "rec", L_REC of eq. 3 =
  `losses.MultiTaskLoss` with coupling "dm"; `rec_loss`), frozen (`freeze_rec`) or loaded by name.
- Per-frame representation: the REC's outputs after their activations (VA as is, softmax over the
  expressions, sigmoid per AU), the subsets of Table 2 chosen by `config.facernet_features`.
- RNN: one GRU of `config.rnn_units` (128) units returning all T = `config.facernet_frames` (480)
  outputs; videos are zero-padded at the end to T frames.
- Mask layer (Section 3.2): `LengthMask` zeroes the outputs of frames t ≥ l (l: the input "length"),
  then the T outputs are concatenated (flattened) into `routed_dense` (32 units, ReLU) and the
  output layer (7, sigmoid).
- Routing (Section 3.2, "keeping the weights that do not participate in the routing process
  constant"): zeroing inputs gives those kernel rows zero gradient, but Adam's moments still move
  them. `routing_snapshot` / `routing_hook` restore the rows of `routed_dense`'s kernel that belong
  to frames ≥ max(l) of the batch after each optimizer step (docs/FAITHFULNESS.md, "FaceRNET").
- Loss (eq. 4): `pearson_loss`, 1 − mean Pearson ρ over the 7 reactions, over the videos of the
  global batch.
- Training stages (Section 3.3): `STAGES`.

Inputs {"frames": (B, T, S, S, 3) in [-1, 1], "length": (B,) int}; output {"intensity": (B, 7)}.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import keras
from keras import ops

from fbn_keras import losses, taxonomy
from fbn_keras.config import FACERNET_FEATURES, FACERNET_MASKS, FACERNET_RNNS

#: Input side of the paper's aligned faces (Section 3.3: RetinaFace, 5-point alignment, 112×112×3).
PAPER_IMAGE_SIZE = 112
#: Frames every video is padded to (Section 3.3, t = 480).
PAPER_FRAMES = 480
#: Units of the dense layer after the Mask layer (Section 3.3, "dense layer consists of 32 units").
DENSE_UNITS = 32
NUM_REACTIONS = len(taxonomy.REACTIONS)
#: Per-frame representation sizes by task (VA, 7 expressions, 17 AUs: 26 in all).
FEATURE_SIZES: dict[str, int] = {"va": len(taxonomy.VA_NAMES), "expr": taxonomy.NUM_EXPRESSIONS,
                                 "au": taxonomy.NUM_AUS}
#: ε under the square root of eq. 4, so a constant prediction or label column gives ρ = 0, not NaN.
PEARSON_EPS = 1e-8
ROUTED_DENSE = "routed_dense"
REC = "rec"


# === Loss (eq. 4) ===

def pearson(labels, preds, mask=None, eps: float = PEARSON_EPS):
    """Per-column Pearson ρ (K,) over the rows of the *global* batch (rows with mask 1; all when None).

    ρ = s_xy / sqrt(s_x·s_y + eps) (eq. 4) with population moments formed from the count, Σy, Σŷ, Σy²,
    Σŷ², Σyŷ, which are summed over replicas first (as `losses.concordance`), so 2 replicas give the
    number 1 device gives on the whole batch. Returns (ρ, n); ρ is 0 when n = 0.
    """
    labels = ops.cast(labels, "float32")
    preds = ops.cast(preds, "float32")
    if mask is None:
        mask = ops.ones(ops.shape(labels)[:1], "float32")
    row = ops.reshape(ops.cast(mask, "float32"), (-1, 1)) > 0
    zeros = ops.zeros_like(preds)
    y = ops.where(row, labels, zeros)
    p = ops.where(row, preds, zeros)
    count = ops.sum(ops.cast(row, "float32"))
    stats = ops.stack([ops.sum(y, 0), ops.sum(p, 0), ops.sum(y * y, 0), ops.sum(p * p, 0),
                       ops.sum(y * p, 0)], axis=0)                      # (5, K)
    n = losses._global_sum(count)
    stats = losses._global_sum(stats)
    n_safe = ops.maximum(n, 1.0)
    my, mp = stats[0] / n_safe, stats[1] / n_safe
    var_y = ops.maximum(stats[2] / n_safe - my * my, 0.0)
    var_p = ops.maximum(stats[3] / n_safe - mp * mp, 0.0)
    cov = stats[4] / n_safe - my * mp
    rho = cov / ops.sqrt(var_y * var_p + eps)
    return ops.where(n > 0, rho, ops.zeros_like(rho)), n


def pearson_loss(labels, preds, mask=None):
    """L_total of eq. 4: 1 − (1/7) Σ_i ρ_i over the videos of the global batch (this replica's share).

    Args:
        labels: (B, 7) intensities; preds: (B, 7); mask: optional (B,), 1 for a real video.
    Returns: scalar, this replica's share (÷ replicas in sync, `losses` module convention); 0 when no
        row counts.
    """
    rho, n = pearson(labels, preds, mask)
    loss = 1.0 - ops.mean(rho)
    return ops.where(n > 0, loss, ops.zeros_like(loss)) / float(losses._num_replicas())


class IntensityLoss:
    """The FaceRNET objective as the trainer calls it: `(outputs, labels) -> {"pearson", "total"}` (eq. 4).

    labels: {"intensity": (B, 7), optionally "intensity_mask": (B,)}.
    """

    def __init__(self, config=None):
        self.config = config

    def term_names(self) -> tuple[str, ...]:
        return ("pearson",)

    def __call__(self, outputs: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, Any]:
        losses._require(outputs, ("intensity",), "outputs")
        losses._require(labels, ("intensity",), "labels")
        value = pearson_loss(labels["intensity"], outputs["intensity"], labels.get("intensity_mask"))
        return {"pearson": value, "total": value}


def rec_loss(config, au_pos_weight=None) -> losses.MultiTaskLoss:
    """L_REC of eq. 3 (stage "rec"): L_CCC + L_CCE + L_BCE + L_DM, i.e. `losses.MultiTaskLoss` with
    coupling "dm" and all three tasks (reused, not copied).

    Eq. 2 is printed as −p'·log p' (the entropy of the target, no gradient to the AU head); the prose
    ("match REC's AU predictions with the AU pseudo-predictions ... binary cross entropy with soft
    targets") reads −p_AU·log p'_AU, which is MultiTaskLoss's `dm_form="positive"` term, p' from eq. 1
    (`losses.au_mixture`, Du et al.'s Table 1 = `relation="cognitive"`). `dm_form="bernoulli"` is the
    full soft-target BCE option (docs/FAITHFULNESS.md, "FaceRNET").
    """
    rec_config = dataclasses.replace(config, coupling="dm", tasks="va+au+expr")
    return losses.MultiTaskLoss(rec_config, au_pos_weight=au_pos_weight)


# === Layers ===

@keras.saving.register_keras_serializable(package="fbn_keras")
class LengthMask(keras.layers.Layer):
    """The Mask layer of Section 3.2: (B, T, D) outputs and lengths (B,) → the outputs with frames t ≥ l zeroed.

    `route` only records whether the model's dense kernel rows of the zeroed frames are also held
    constant by the optimizer step (`routing_hook`); the layer's own output is the same either way.
    """

    def __init__(self, route: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.route = bool(route)

    def call(self, inputs):
        values, lengths = inputs
        steps = ops.shape(values)[1]
        lengths = ops.cast(ops.reshape(lengths, (-1, 1)), "int32")
        keep = ops.arange(steps, dtype="int32")[None, :] < lengths          # (B, T)
        return ops.where(keep[..., None], values, ops.zeros_like(values))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "route": self.route}


@keras.saving.register_keras_serializable(package="fbn_keras")
class MergeTime(keras.layers.Layer):
    """(B, T, ...) → (B·T, ...): every frame through the per-frame REC in one batch."""

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (-1, *shape[2:]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None or input_shape[1] is None else input_shape[0] * input_shape[1]
        return (batch, *input_shape[2:])


@keras.saving.register_keras_serializable(package="fbn_keras")
class SplitTime(keras.layers.Layer):
    """(B·T, D) → (B, T, D) for a fixed T."""

    def __init__(self, frames: int, **kwargs):
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, x):
        return ops.reshape(x, (-1, self.frames, ops.shape(x)[-1]))

    def compute_output_shape(self, input_shape):
        return (None, self.frames, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


# === Model ===

def feature_tasks(features: str) -> tuple[str, ...]:
    """The tasks of a `facernet_features` value in the order VA, expressions, AUs (Table 2's subsets)."""
    if features not in FACERNET_FEATURES:
        raise ValueError(f"facernet_features must be one of {FACERNET_FEATURES}. Received: {features!r}")
    parts = features.split("+")
    return tuple(t for t in ("va", "expr", "au") if t in parts)


def feature_size(features: str) -> int:
    """Per-frame representation width: 26 for "va+expr+au"."""
    return sum(FEATURE_SIZES[t] for t in feature_tasks(features))


def build_rec(config) -> keras.Model:
    """REC (Section 3.1): FaceBehaviorNet of `config` at `config.image_size`, named "rec"; outputs
    {"va", "expr" logits, "au" logits} as `model.build_facebehaviornet`."""
    from fbn_keras.model import build_facebehaviornet

    fbn = build_facebehaviornet(config)
    return keras.Model(fbn.input, fbn.output, name=REC)


def build_facernet(config, dense_units: int = DENSE_UNITS) -> keras.Model:
    """The FaceRNET functional model of `config` (Section 3, Fig. 1; module docstring).

    Uses image_size, facernet_frames (T), facernet_features, facernet_mask ("route": Mask layer and
    routing; "zero": Mask layer only; "none": neither, Table 3's "w/o Mask & Routing"), facernet_rnn
    ("gru", or "none": no recurrent layer, our ablation), rnn_units, and
    the REC's fields (backbone, width, fc_units, dropout, vgg_face_weights).

    Example:
        model = build_facernet(preset("tiny", image_size=32, facernet_frames=6))
        out = model({"frames": np.zeros((2, 6, 32, 32, 3), "float32"), "length": np.array([3, 6])})
        out["intensity"].shape == (2, 7)
    """
    # === Checks ===
    tasks = feature_tasks(config.facernet_features)
    if config.facernet_mask not in FACERNET_MASKS:
        raise ValueError(f"facernet_mask must be one of {FACERNET_MASKS}. Received: {config.facernet_mask!r}")
    if config.facernet_rnn not in FACERNET_RNNS:
        raise ValueError(f"facernet_rnn must be one of {FACERNET_RNNS}. Received: {config.facernet_rnn!r}")
    frames = int(config.facernet_frames)
    if frames < 1 or dense_units < 1:
        raise ValueError(f"facernet_frames and dense_units must be >= 1. Received: {frames}, {dense_units}")

    # === Per-frame representations ===
    size = config.image_size
    video = keras.Input((frames, size, size, 3), name="frames")
    length = keras.Input((), dtype="int32", name="length")
    rec = build_rec(config)
    out = rec(MergeTime(name="merge_time")(video))
    activated = {"va": keras.layers.Identity(name="rec_va")(out["va"]),
                 "expr": keras.layers.Softmax(name="rec_expr")(out["expr"]),
                 "au": keras.layers.Activation("sigmoid", name="rec_au")(out["au"])}
    parts = [activated[t] for t in tasks]
    per_frame = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="representation")(parts)
    sequence = SplitTime(frames, name="split_time")(per_frame)                       # (B, T, D)

    # === RNN, Mask layer, dense, output ===
    # facernet_rnn "none" (our ablation): what the GRU adds over frame-wise dense weights on the same inputs
    x = (keras.layers.GRU(config.rnn_units, return_sequences=True, name="gru")(sequence)
         if config.facernet_rnn == "gru" else sequence)
    if config.facernet_mask != "none":
        x = LengthMask(route=config.facernet_mask == "route", name="mask")([x, length])
    x = keras.layers.Flatten(name="concat_frames")(x)                               # (B, T·units)
    x = keras.layers.Dense(dense_units, activation="relu", name=ROUTED_DENSE)(x)
    intensity = keras.layers.Dense(NUM_REACTIONS, activation="sigmoid", name="intensity")(x)
    return keras.Model({"frames": video, "length": length}, {"intensity": intensity}, name="facernet")


# === Routing (Section 3.2) ===

def routed_rows(lengths, frames: int, units: int):
    """(frames·units,) bool: the rows of `routed_dense`'s kernel fed by frames t ≥ max(l) of the batch.

    The flattened GRU outputs are frame-major (row t·units + u), so these are the rows from
    max(l)·units on: no video of the batch routes an output into them. Under tf.distribute, max(l) is
    that of the global batch (all replicas).
    """
    lengths = ops.cast(ops.reshape(lengths, (-1, 1)), "int32")
    # videos routing each frame, counted over the global batch: frame t is unrouted iff none has t < l
    users = ops.sum(ops.cast(ops.arange(frames, dtype="int32")[None, :] < lengths, "float32"), axis=0)
    users = losses._global_sum(users)
    return ops.repeat(users == 0, units)


def apply_routing(variable, before, keep_rows) -> None:
    """Set the rows `keep_rows` (bool, (rows,)) of `variable` back to their values `before` the update."""
    keep = ops.reshape(ops.cast(keep_rows, "bool"), (-1, 1))
    variable.assign(ops.where(keep, ops.convert_to_tensor(before), variable.value))


def _routed_kernel(model: keras.Model):
    layer = model.get_layer(ROUTED_DENSE)
    return layer.kernel


def uses_routing(model: keras.Model) -> bool:
    """True when `model` has a Mask layer with routing on (`facernet_mask="route"`)."""
    return any(isinstance(layer, LengthMask) and layer.route for layer in model.layers)


def routing_snapshot(model: keras.Model):
    """The value of `routed_dense`'s kernel to take just before an optimizer step (a copy)."""
    return ops.copy(_routed_kernel(model).value)


def routing_hook(model: keras.Model) -> Optional[Callable[[Mapping[str, Any], Any], None]]:
    """The after-update hook of Section 3.2's routing, or None when the model does not route.

    Usage in a training step:

        hook = routing_hook(model)                 # once, after building
        snapshot = routing_snapshot(model)         # before the optimizer step
        optimizer.apply_gradients(...)
        hook(batch_inputs, snapshot)               # after it: rows of frames >= max(l) restored

    `hook(batch_inputs, snapshot)` reads `batch_inputs["length"]` (B,), finds the kernel rows no video
    of the batch routes into (`routed_rows`) and restores them bit for bit (`apply_routing`), so those
    weights stay constant for that batch even though Adam's moments would move them. Bias and output
    layer update as usual. Under tf.distribute call both inside the replica function, around
    `optimizer.apply_gradients`: the row set is that of the global batch (the per-frame counts of routing
    videos are summed over replicas), so every replica restores the same rows and 2 replicas update the
    kernel as 1 device does (tests/test_facernet.py).
    """
    if not uses_routing(model):
        return None
    kernel = _routed_kernel(model)
    rows, _ = kernel.shape
    frames = int(model.get_layer("concat_frames").input.shape[1])
    units = rows // frames

    def hook(batch_inputs: Mapping[str, Any], snapshot) -> None:
        apply_routing(kernel, snapshot, routed_rows(batch_inputs["length"], frames, units))

    return hook


# === Input: whole videos, padded or truncated to T frames (Section 3.3) ===

def make_video_dataset(data_dir, databases=None, split: str = "train", *, frames: int = PAPER_FRAMES,
                       batch_size: int = 4, image_size: int = PAPER_IMAGE_SIZE, training: Optional[bool] = None,
                       seed: int = 0):
    """Batches (inputs, labels) of whole videos from the sequence shards (`sequences.write_sequence_shards`).

    Each video gives one example: its first `frames` frames (a longer video is truncated, docs/FAITHFULNESS.md,
    "FaceRNET"), zero-padded at the end; inputs {"frames": (B, T, S, S, 3) in [-1, 1], "length": (B,) the
    real frames}, labels {"intensity": (B, 7), "intensity_mask": (B,), "group": (B,)}. training (default:
    split == "train"): shuffled, endless, full batches; otherwise one pass in file order.
    """
    import tensorflow as tf

    from fbn_keras import data, sequences

    if frames < 1 or batch_size < 1:
        raise ValueError(f"frames and batch_size must be >= 1. Received: frames={frames}, batch_size={batch_size}")
    index = sequences.load_index(data_dir)["databases"]
    names = sorted(index) if databases is None else list(databases)
    files = sequences.sequence_files(data_dir, names, split)
    training = split == "train" if training is None else bool(training)
    keys = sequences._keys(landmarks=False, audio=False, intensity=True)

    def first_frames(raw):
        seq = sequences.parse_sequence(raw, keys)
        n = tf.minimum(tf.shape(seq[data.FRAME], out_type=tf.int64)[0], frames)
        return sequences._cut(seq, tf.stack([tf.constant(0, tf.int64), n])[None, :], frames)

    def to_model(window):
        inputs, labels = sequences.window_to_model(window, image_size)
        length = tf.reduce_sum(tf.cast(window["real"], tf.int32), axis=-1)
        mask = tf.reduce_max(labels["intensity_mask"], axis=-1)
        return ({"frames": inputs["frames"], "length": length},
                {"intensity": labels["intensity"][..., 0, :], "intensity_mask": mask, "group": labels["group"]})

    ds = tf.data.TFRecordDataset(files)
    ds = ds.filter(lambda raw: tf.equal(sequences.parse_sequence(raw, [])[sequences.CHUNK], 0))   # first chunk
    if training:
        ds = ds.shuffle(1024, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.flat_map(first_frames).map(to_model, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


# === Training stages (Section 3.3) ===

@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage: what is trained, at which rate, on what."""

    trains: str                # "rec": the REC alone; "rnn": all but the REC; "all": end to end
    learning_rate: Optional[float]
    data: str
    loss: str


#: Section 3.1 and 3.3: (i) REC alone on Aff-Wild2, AffectNet, EmotioNet with L_REC (eq. 3; rate not
#: given, the FaceBehaviorNet config's); (ii) REC frozen, GRU + dense + output "from scratch" at 1e-4;
#: (iii) end to end "after having initialised each subnetwork" at 1e-5. Batch 4 videos, Adam.
STAGES: dict[str, Stage] = {
    "rec": Stage("rec", None, "per-frame VA / expression / AU databases", "rec_loss (eq. 3)"),
    "rnn": Stage("rnn", 1e-4, "Hume-Reaction videos", "pearson_loss (eq. 4)"),
    "end_to_end": Stage("all", 1e-5, "Hume-Reaction videos", "pearson_loss (eq. 4)"),
}


def freeze_rec(model: keras.Model, frozen: bool = True) -> keras.Model:
    """Make the "rec" sub-model non-trainable (stage "rnn") or trainable again (stage "end_to_end")."""
    model.get_layer(REC).trainable = not frozen
    return model


def apply_stage(model: keras.Model, stage: str) -> keras.Model:
    """Set `model`'s trainable parts for one of STAGES ("rec": only the REC trains)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {tuple(STAGES)}. Received: {stage!r}")
    trains = STAGES[stage].trains
    for layer in model.layers:
        if layer.name == REC:
            layer.trainable = trains in ("rec", "all")
        elif layer.weights:
            layer.trainable = trains in ("rnn", "all")
    return model


__all__ = ["pearson", "pearson_loss", "IntensityLoss", "rec_loss", "LengthMask", "MergeTime", "SplitTime",
           "build_rec", "build_facernet", "routed_rows", "apply_routing", "routing_snapshot", "routing_hook",
           "uses_routing", "STAGES", "Stage", "freeze_rec", "apply_stage", "feature_tasks", "feature_size"]
