"""VGGFACE-GRU-attention: the multi-task VA + 7-expression video network of the multi-task learning and
generation paper (Section IV-B, Fig. 5; results Tables X–XI).

The paper says only that AffWildNet's VGGFACE-GRU gets "an attention layer on top of the RNN layer" with
"attention length ... 32" and 9 outputs (2 linear VA, 7 expressions). The attention form is TensorFlow 1's
`AttentionCellWrapper(cell, attn_length)` (the platform the paper names), with one change: window slots
not yet filled get zero weight (docs/FAITHFULNESS.md, "VGGFACE-GRU-attention").

- `AttentionGRUCell`: one step of that cell, a Keras RNN cell; `attention_gru(units, ...)` wraps it in
  `keras.layers.RNN`; `run_cell` steps it eagerly and returns the attention weights too.
- `build_attention_model(config)`: {"frames": (B, T, S, S, 3)} → {"va": (B, T, 2), "expr": (B, T, 7)}.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
from keras import ops

from fbn_keras import backbones, taxonomy
from fbn_keras.config import Config
from fbn_keras.time_layers import FoldTime, UnfoldTime

log = logging.getLogger(__name__)

#: The paper's "attention length" (Section IV-C): the window of past outputs the cell attends over.
ATTENTION_LENGTH = 32
NUM_VA = len(taxonomy.VA_NAMES)
#: The 9 outputs of the paper (2 VA + 7 expressions), in this order from the one output layer.
HEADS: tuple[tuple[str, int], ...] = (("va", NUM_VA), ("expr", taxonomy.NUM_EXPRESSIONS))
#: Name of the layer mapping [-1, 1] input to VGG-FACE's mean-subtracted scale (as in `fbn_keras.model`).
VGG_FACE_INPUT = "vgg_face_input"


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def masked_softmax(scores, filled):
    """softmax over the slots with `filled` 1; 0 on the others, and 0 everywhere when no slot is filled.

    exp(e_j − max) · filled_j / Σ_k exp(e_k − max) · filled_k, the max taken over filled slots; the sum
    is then ≥ 1 whenever a slot is filled, so dividing by max(sum, 1) is exact and gives all-zero
    weights on an empty window (no NaN, no gradient through the empty slots).
    """
    filled = ops.cast(filled, scores.dtype)
    on = filled > 0
    shifted = scores - ops.max(ops.where(on, scores, ops.full_like(scores, -1e9)), axis=-1, keepdims=True)
    weights = ops.where(on, ops.exp(ops.where(on, shifted, ops.zeros_like(shifted))), ops.zeros_like(scores))
    return weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)


@keras.saving.register_keras_serializable(package="fbn_keras")
class AttentionGRUCell(keras.layers.Layer):
    """A GRU cell with additive attention over its own last `attn_length` outputs (TF1 AttentionCellWrapper).

    One step, x_t the input, a_{t−1} the previous attention read-out, H the window of the last
    `attn_length` outputs (oldest first):
        x' = W1 [x_t; a_{t−1}] + b1                       (size of x_t)
        (h_t, s_t) = GRU(x', s_{t−1})                     (h_t = s_t for a GRU)
        e_j = vᵀ tanh(W_k H_j + W_q s_t + b_q)            (over the window, before o_t joins it)
        α = softmax(e) over the filled slots; 0 on slots not filled yet
        a_t = Σ_j α_j H_j
        o_t = W2 [h_t; a_t] + b2                          (the output, size attn_size)
        H ← H without its oldest slot, then o_t appended
    State: (s, a, H flattened to attn_length·attn_size, filled (attn_length,) 0/1). All start at zero;
    `filled` shifts with H, so at step t < attn_length only the t newest slots count, and at t = 0
    (empty window) α ≡ 0 and a_0 = 0. TF1 has no `filled` and gives the zero slots softmax weight.

    Args:
        units: GRU units (the paper's 128).
        attn_length: window length (the paper's 32).
        attn_size: size of o_t and of each window slot (TF1 default: `units`).
        attn_vec_size: size of the additive-attention space (TF1 default: `attn_size`).
    """

    def __init__(self, units: int, attn_length: int = ATTENTION_LENGTH, attn_size: int | None = None,
                 attn_vec_size: int | None = None, **kwargs):
        units = _positive_int(units, "units")
        attn_length = _positive_int(attn_length, "attn_length")
        attn_size = units if attn_size is None else _positive_int(attn_size, "attn_size")
        attn_vec_size = attn_size if attn_vec_size is None else _positive_int(attn_vec_size, "attn_vec_size")
        super().__init__(**kwargs)
        self.units, self.attn_length = units, attn_length
        self.attn_size, self.attn_vec_size = attn_size, attn_vec_size
        # Keras' GRU cell (reset gate after the recurrent matmul), as the project's plain GRU layers.
        self.gru = keras.layers.GRUCell(units, name="gru_cell")
        self.state_size = [units, attn_size, attn_length * attn_size, attn_length]
        self.output_size = attn_size

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.input_kernel = self.add_weight(shape=(d + self.attn_size, d), initializer="glorot_uniform",
                                            name="input_kernel")           # W1
        self.input_bias = self.add_weight(shape=(d,), initializer="zeros", name="input_bias")
        self.gru.build((None, d))
        self.key_kernel = self.add_weight(shape=(self.attn_size, self.attn_vec_size),
                                          initializer="glorot_uniform", name="key_kernel")  # W_k (TF1: no bias)
        self.query_kernel = self.add_weight(shape=(self.units, self.attn_vec_size), initializer="glorot_uniform",
                                            name="query_kernel")            # W_q
        self.query_bias = self.add_weight(shape=(self.attn_vec_size,), initializer="zeros", name="query_bias")
        self.score_vector = self.add_weight(shape=(self.attn_vec_size,), initializer="glorot_uniform",
                                            name="score_vector")            # v
        self.output_kernel = self.add_weight(shape=(self.units + self.attn_size, self.attn_size),
                                             initializer="glorot_uniform", name="output_kernel")  # W2
        self.output_bias = self.add_weight(shape=(self.attn_size,), initializer="zeros", name="output_bias")
        super().build(input_shape)

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    def step(self, inputs, states, training=None):
        """One step: (o_t, new states, α (B, attn_length), oldest slot first)."""
        s_prev, a_prev, window_flat, filled = states
        window = ops.reshape(window_flat, (-1, self.attn_length, self.attn_size))
        x = ops.matmul(ops.concatenate([inputs, a_prev], axis=-1), self.input_kernel) + self.input_bias
        h, new_s = self.gru(x, [s_prev], training=training)
        new_s = new_s[0] if isinstance(new_s, (list, tuple)) else new_s
        keys = ops.einsum("bld,dk->blk", window, self.key_kernel)
        query = ops.matmul(new_s, self.query_kernel) + self.query_bias
        scores = ops.sum(ops.tanh(keys + query[:, None, :]) * self.score_vector, axis=-1)   # (B, L)
        alpha = masked_softmax(scores, filled)
        attns = ops.sum(alpha[:, :, None] * window, axis=1)
        output = ops.matmul(ops.concatenate([h, attns], axis=-1), self.output_kernel) + self.output_bias
        new_window = ops.concatenate([window[:, 1:], output[:, None, :]], axis=1)
        new_filled = ops.concatenate([filled[:, 1:], ops.ones_like(filled[:, :1])], axis=1)
        new_states = [new_s, attns, ops.reshape(new_window, (-1, self.attn_length * self.attn_size)), new_filled]
        return output, new_states, alpha

    def call(self, inputs, states, training=None):
        output, new_states, _ = self.step(inputs, states, training=training)
        return output, new_states

    def get_config(self):
        return {**super().get_config(), "units": self.units, "attn_length": self.attn_length,
                "attn_size": self.attn_size, "attn_vec_size": self.attn_vec_size}


def attention_gru(units: int, attn_length: int = ATTENTION_LENGTH, name: str = "attention_gru",
                  **cell_kwargs) -> keras.layers.RNN:
    """`keras.layers.RNN` over an `AttentionGRUCell`, returning the whole sequence of o_t (B, T, attn_size)."""
    return keras.layers.RNN(AttentionGRUCell(units, attn_length, **cell_kwargs), return_sequences=True,
                            name=name)


def run_cell(cell: AttentionGRUCell, inputs) -> tuple[np.ndarray, np.ndarray]:
    """Step `cell` eagerly over (B, T, D) inputs from the zero state: (outputs (B, T, attn_size), α (B, T, L))."""
    inputs = ops.convert_to_tensor(np.asarray(inputs, np.float32))
    if len(inputs.shape) != 3:
        raise ValueError(f"inputs must be (B, T, D). Received shape {tuple(inputs.shape)}")
    if not cell.built:
        cell.build((None, int(inputs.shape[-1])))
    states = cell.get_initial_state(batch_size=int(inputs.shape[0]))
    outputs, alphas = [], []
    for t in range(int(inputs.shape[1])):
        out, states, alpha = cell.step(inputs[:, t], states)
        outputs.append(ops.convert_to_numpy(out))
        alphas.append(ops.convert_to_numpy(alpha))
    return np.stack(outputs, axis=1), np.stack(alphas, axis=1)


# === The network ===

def build_attention_model(config: Config, *, load_weights: bool = True) -> keras.Model:
    """VGGFACE-GRU-attention (multi-task learning and generation paper, Section IV-B).

    Per frame (time folded into the batch, `time_layers.FoldTime`): VGG-FACE conv + pool layers →
    flatten; then FC fc_units (ReLU) → Dropout(dropout) → GRU(rnn_units) → Dropout(rnn_dropout) →
    attention GRU (rnn_units, window `attention_length`) → one linear layer of 9 units sliced into "va"
    (2, `va_activation`) and "expr" (7 logits). `attention=False`: the same network with a plain second
    GRU (the ablation). `freeze_cnn`: the conv layers are not trained (the paper's "kept the CNN weights
    fixed"). The conv layers keep their names (conv1_1 … conv5_3), so `vgg_face_weights` (when set and
    `load_weights`) and `init_from` (`video_models.initialise_from`, e.g. a trained AffWildNet) load by
    name; the [-1, 1] → VGG-FACE input layer follows `config.vgg_face_input` (unset: on exactly when
    weights are given). Landmarks are not used (the paper does not mention them for this network).

    Example:
        model = build_attention_model(preset("tiny"))
        out = model({"frames": np.zeros((2, 8, 96, 96, 3), "float32")})   # out["expr"].shape == (2, 8, 7)
    """
    if config.backbone != "vgg_face":
        raise ValueError(f"VGGFACE-GRU-attention has a VGG-FACE trunk. Received: backbone={config.backbone!r}")
    has_weights = bool(config.vgg_face_weights) and load_weights
    vgg_face_input = config.vgg_face_input if config.vgg_face_input is not None else has_weights

    frames = keras.Input((None, config.image_size, config.image_size, 3), name="frames")
    x = backbones.vgg_face_input_adapter(frames, VGG_FACE_INPUT) if vgg_face_input else frames
    features = backbones.vgg_face_trunk(FoldTime(name="fold_time")(x), config.width, config.trunk_init)
    x = UnfoldTime(name="unfold_pool5")([features, frames])
    x = keras.layers.Dense(config.fc_units, activation="relu", name="fc")(x)
    x = keras.layers.Dropout(config.dropout, name="fc_dropout")(x)
    x = keras.layers.GRU(config.rnn_units, return_sequences=True, name="gru1")(x)
    x = keras.layers.Dropout(config.rnn_dropout, name="gru1_dropout")(x)
    if config.attention:
        x = attention_gru(config.rnn_units, config.attention_length, name="attention_gru")(x)
    else:
        x = keras.layers.GRU(config.rnn_units, return_sequences=True, name="gru2")(x)
    out = keras.layers.Dense(sum(n for _, n in HEADS), name="output")(x)
    heads, start = {}, 0
    for name, size in HEADS:
        # Built-in slicing and layers only (no Lambda): the model reloads in safe mode.
        activation = config.va_activation if name == "va" else "linear"
        heads[name] = keras.layers.Activation(activation, name=name)(out[..., start:start + size])
        start += size
    model = keras.Model({"frames": frames}, heads, name="vggface_gru_attention")

    if has_weights:
        from fbn_keras.model import load_vgg_face_weights

        load_vgg_face_weights(model, config.vgg_face_weights)
    if config.init_from:
        from fbn_keras.video_models import initialise_from

        initialise_from(model, config.init_from, config.freeze_init)
    if config.freeze_cnn:
        for name in backbones.VGG_CONV_NAMES:
            model.get_layer(name).trainable = False
    log.info("VGGFACE-GRU-attention (attention %s, width %s, CNN %s): %s", config.attention, config.width,
             "frozen" if config.freeze_cnn else "trained",
             "VGG-FACE weights loaded" if has_weights else "conv layers from random initialisation")
    return model
