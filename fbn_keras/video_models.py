"""The journal's video networks as Keras functional models (journal Sections V-A, V-B, VI-A).

Every network runs the VGG-FACE trunk (`backbones.vgg_face_trunk`, layers
conv1_1 … conv5_3, pool1 … pool5) on each frame of a (B, T, S, S, 3) window,
T possibly unknown, by folding time into the batch (`fbn_keras.time_layers`),
so a VGG-FACE file loads by layer name as into FaceBehaviorNet. Inputs are a
dict of "frames", "landmarks" (B, T, 136) for the landmark networks when
`config.landmarks` is on, and "audio" (B, T, 96, 96, 1) for the audiovisual
one; outputs a dict of "va" (B, T, 2) and, for the multi-task networks,
"expr" (B, T, 7) logits and "au" (B, T, n) logits over `au_slots(config)`.

    model = build_video_model(preset("tiny", model="affwildnet"))
    out = model({"frames": x, "landmarks": l})        # out["va"].shape == (B, T, 2)

The readings where the paper is silent (activations, dropout, taps, fusion,
AU set, audio stream) are in docs/FAITHFULNESS.md, "Video networks
(journal Sections V–VI)".
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable, Union

import keras

from fbn_keras import backbones, taxonomy
from fbn_keras.config import Config
from fbn_keras.time_layers import FoldTime, UnfoldTime

log = logging.getLogger(__name__)

#: Flattened x1, y1, …, x68, y68 of the 68 landmarks of each frame (Sections IV, V-A).
NUM_LANDMARKS = 136
#: Side of the per-frame spectrogram image of the audio stream (docs/VIDEO.md; `fbn_keras.audio`).
AUDIO_SIZE = 96
NUM_VA = len(taxonomy.VA_NAMES)
#: The AUs of the multi-task heads (Section VI-A): the journal's 8 (Section III) or the 12 of the later
#: Aff-Wild2 release (its `affwild2` database entry), by `config.mt_aus`.
MT_AU_SETS: dict[str, tuple[int, ...]] = {
    "paper8": taxonomy.AFFWILD2_PAPER_AUS,
    "release": taxonomy.DATABASES["affwild2"].aus,
}
#: Layers that are outputs: `initialise_from` never copies them (the paper replaces the output layer
#: whenever a network starts from another one, Section VI-A "Training implementation details").
OUTPUT_LAYERS: tuple[str, ...] = ("va", "output")
#: The per-frame input-scale layer for pretrained VGG-FACE filters (as in `model.build_facebehaviornet`).
VGG_FACE_INPUT = "vgg_face_input"
#: Names of the nested sub-models of the fusion and audiovisual networks.
FUSION_MEMBERS: tuple[str, ...] = ("cnn1rnn", "cnn3rnn")
AV_STREAMS: tuple[str, ...] = ("visual_stream", "audio_stream")


# === What each network is ===

@dataclasses.dataclass(frozen=True)
class VideoModelInfo:
    """One video network: its inputs (landmarks on), output heads and the paper's training sizes."""

    inputs: tuple[str, ...]
    heads: tuple[str, ...]
    paper_length: int            # frames per window T (1: a per-frame network)
    paper_batch: int             # windows per step (for a per-frame network: frames per step)
    paper_learning_rate: float
    uses_landmarks: bool
    uses_audio: bool
    summary: str


_VA, _MT = ("va",), ("va", "expr", "au")
_FL = ("frames", "landmarks")

#: config.model name → what it is. Sizes: Section V-A (4 × 80, lr 1e-4), V-B (4 × 80, lr 1e-4 or 1e-5),
#: VI-A (10 × 90 for the GRU nets, 256 frames for MT-VGG, lr 1e-4 or 1e-5; docs/FAITHFULNESS.md).
VIDEO_MODELS: dict[str, VideoModelInfo] = {
    "affwildnet": VideoModelInfo(_FL, _VA, 80, 4, 1e-4, True, False,
                                 "AffWildNet: VGG-FACE pool5 + 68 landmarks -> FC -> 2-layer GRU -> VA (Section V-A)"),
    "cnn": VideoModelInfo(("frames",), _VA, 80, 4, 1e-4, False, False,
                          "per-frame CNN baseline: VGG-FACE -> 2 FC -> linear VA (Section V-A, Table II)"),
    "vgg-face-lstm": VideoModelInfo(("frames",), _VA, 80, 4, 1e-4, False, False,
                                    "VGG-FACE-LSTM baseline: VGG-FACE -> fc1 -> 2-layer LSTM -> VA "
                                    "(Section V-A, Table II)"),
    "cnn1rnn": VideoModelInfo(_FL, _VA, 80, 4, 1e-4, True, False,
                              "CNN-1RNN-2nd-pool_last-pool_fc: pool2 + pool5 + fc -> one 2-layer GRU -> VA "
                              "(Section V-B, Fig. 2 left)"),
    "cnn3rnn": VideoModelInfo(_FL, _VA, 80, 4, 1e-4, True, False,
                              "CNN-3RNN-2nd-pool_last-pool_fc: fc, pool5, pool2 -> three 2-layer GRUs -> VA "
                              "(Section V-B, Fig. 2 right)"),
    "fusion-rnn": VideoModelInfo(_FL, _VA, 80, 4, 1e-5, True, False,
                                 "model-level fusion + RNN: CNN-1RNN and CNN-3RNN's GRU outputs -> GRU -> VA "
                                 "(Section V-B, Table III)"),
    "fusion-fc": VideoModelInfo(_FL, _VA, 80, 4, 1e-5, True, False,
                                "model-level fusion + FC: CNN-1RNN and CNN-3RNN's GRU outputs -> FC -> VA "
                                "(Section V-B, Table III)"),
    "mt-vgg": VideoModelInfo(("frames",), _MT, 1, 256, 1e-4, False, False,
                             "MT-VGG: per frame VGG-FACE -> 2 FC -> VA, 7 expressions, AUs (Section VI-A-1)"),
    "mt-vgg-gru": VideoModelInfo(("frames",), _MT, 90, 10, 1e-4, False, False,
                                 "MT-VGG-GRU: VGG-FACE -> fc1 -> 2-layer GRU -> VA, expressions, AUs "
                                 "(Section VI-A-2)"),
    "av-mt-vgg-gru": VideoModelInfo(("frames", "audio"), _MT, 90, 10, 1e-4, False, True,
                                    "A/V-MT-VGG-GRU: visual and spectrogram MT-VGG-GRU streams -> 2-layer GRU -> "
                                    "VA, expressions, AUs (Section VI-A-3, Fig. 3)"),
}


def _info(config: Config) -> VideoModelInfo:
    if config.model not in VIDEO_MODELS:
        raise ValueError(f"config.model must be one of the video networks {tuple(VIDEO_MODELS)}. "
                         f"Received: model={config.model!r}")
    return VIDEO_MODELS[config.model]


def model_inputs(config: Config) -> tuple[str, ...]:
    """The input names of `config`'s network: its `VideoModelInfo.inputs`, without landmarks when they are off."""
    info = _info(config)
    return tuple(n for n in info.inputs if n != "landmarks" or config.landmarks)


def au_slots(config: Config) -> tuple[int, ...]:
    """Indices into `taxonomy.AUS` of the "au" head's units, in order (empty for a network without AUs)."""
    if "au" not in _info(config).heads:
        return ()
    return tuple(taxonomy.au_index(au) for au in MT_AU_SETS[config.mt_aus])


# === Pieces ===

def _dense(x, units: int, rate: float, name: str):
    """Dense(units, ReLU) then Dropout(rate): the FC layers of every network (activation: docs/FAITHFULNESS.md)."""
    x = keras.layers.Dense(units, activation="relu", name=name)(x)
    return keras.layers.Dropout(rate, name=f"{name}_dropout")(x)


def _recurrent_stack(x, config: Config, prefix: str, cell: str = "gru"):
    """Two recurrent layers of config.rnn_units over time, dropout config.rnn_dropout on the first one's outputs."""
    layer = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    x = layer(config.rnn_units, return_sequences=True, name=f"{prefix}1")(x)
    x = keras.layers.Dropout(config.rnn_dropout, name=f"{prefix}1_dropout")(x)
    return layer(config.rnn_units, return_sequences=True, name=f"{prefix}2")(x)


def _upstream(tensor, name: str):
    """The output of the layer `name` upstream of `tensor` along a chain of one-input layers (the trunk's taps)."""
    while True:
        op = tensor._keras_history.operation  # Keras' own record of the layer that made `tensor`
        if op.name == name:
            return tensor
        tensor = op.input


def _uses_vgg_face_input(config: Config) -> bool:
    """As FaceBehaviorNet: config.vgg_face_input, else on exactly when VGG-FACE weights are given."""
    return bool(config.vgg_face_weights) if config.vgg_face_input is None else bool(config.vgg_face_input)


def _trunk(frames, config: Config, *, face: bool = True, taps: bool = False) -> dict:
    """VGG-FACE's conv + pool layers on every frame: {"pool5": (B, T, D5)} and, with `taps`, "pool2_tap",
    "pool5_tap" (flattened, or averaged with config.tap_pool "gap"; Section V-B)."""
    x = frames
    if face and _uses_vgg_face_input(config):
        x = backbones.vgg_face_input_adapter(x, VGG_FACE_INPUT)
    folded = FoldTime(name="fold_time")(x)
    flat = backbones.vgg_face_trunk(folded, config.width, config.trunk_init)
    out = {"pool5": UnfoldTime(name="unfold_pool5")([flat, frames])}
    if taps:
        for tap in ("pool2", "pool5"):
            if config.tap_pool == "flatten" and tap == "pool5":
                out["pool5_tap"] = out["pool5"]
                continue
            grid = _upstream(flat, tap)
            pool = (keras.layers.GlobalAveragePooling2D(name=f"{tap}_gap") if config.tap_pool == "gap"
                    else keras.layers.Flatten(name=f"{tap}_flatten"))
            out[f"{tap}_tap"] = UnfoldTime(name=f"unfold_{tap}_tap")([pool(grid), frames])
    return out


def _landmark_fc(pool5, inputs: dict, config: Config):
    """The FC layer fed by pool5 ⊕ the 68 landmarks (Sections V-A, V-B): pool5 alone when landmarks are off."""
    x = pool5
    if "landmarks" in inputs:
        x = keras.layers.Concatenate(name="pool5_landmarks")([pool5, inputs["landmarks"]])
    return _dense(x, config.fc_units, config.dropout, "fc")


def _va_output(x, config: Config) -> dict:
    """The VA output layer: 2 units, config.va_activation (linear unless the flag asks tanh)."""
    return {"va": keras.layers.Dense(NUM_VA, activation=config.va_activation, name="va")(x)}


def _mt_output(x, config: Config) -> dict:
    """MT-VGG's one linear output layer: 2 VA + 7 expression logits + n AU logits, then split (Section VI-A-1)."""
    n_au = len(MT_AU_SETS[config.mt_aus])
    out = keras.layers.Dense(NUM_VA + taxonomy.NUM_EXPRESSIONS + n_au, name="output")(x)
    e = NUM_VA + taxonomy.NUM_EXPRESSIONS
    # Built-in slicing and layers only (no Lambda): the model reloads in safe mode.
    return {"va": keras.layers.Activation(config.va_activation, name="va")(out[:, :, :NUM_VA]),
            "expr": keras.layers.Identity(name="expr")(out[:, :, NUM_VA:e]),
            "au": keras.layers.Identity(name="au")(out[:, :, e:])}


def _inputs(names: Iterable[str], config: Config) -> dict:
    shapes = {"frames": (None, config.image_size, config.image_size, 3), "landmarks": (None, NUM_LANDMARKS),
              "audio": (None, AUDIO_SIZE, AUDIO_SIZE, 1)}
    return {n: keras.Input(shapes[n], name=n) for n in names}


# === The networks' bodies: inputs dict → features (B, T, D) ===

def _cnn1rnn_features(inputs: dict, config: Config):
    """pool2 ⊕ pool5 ⊕ fc → one 2-layer GRU (Section V-B-2)."""
    t = _trunk(inputs["frames"], config, taps=True)
    fc = _landmark_fc(t["pool5"], inputs, config)
    x = keras.layers.Concatenate(name="taps")([t["pool2_tap"], t["pool5_tap"], fc])
    return _recurrent_stack(x, config, "gru")


def _cnn3rnn_features(inputs: dict, config: Config):
    """fc → RNN1, pool5 → RNN2, pool2 → RNN3, each a 2-layer GRU; outputs concatenated (Section V-B-1)."""
    t = _trunk(inputs["frames"], config, taps=True)
    fc = _landmark_fc(t["pool5"], inputs, config)
    rnns = [_recurrent_stack(x, config, f"rnn{i}_gru") for i, x in
            enumerate((fc, t["pool5_tap"], t["pool2_tap"]), start=1)]
    return keras.layers.Concatenate(name="rnns")(rnns)


def _mt_stream(x, config: Config, face: bool = True):
    """MT-VGG-GRU without its output layer: trunk → fc1 → 2-layer GRU (Section VI-A-2)."""
    h = _dense(_trunk(x, config, face=face)["pool5"], config.fc_units, config.dropout, "fc1")
    return _recurrent_stack(h, config, "gru")


def _sub_model(body, names: Iterable[str], config: Config, name: str, **kwargs) -> keras.Model:
    """`body` on fresh inputs as one named nested model, so it initialises from its own trained run."""
    inputs = _inputs(names, config)
    return keras.Model(inputs, body(inputs, config, **kwargs), name=name)


def _outputs(name: str, inputs: dict, config: Config) -> dict:
    """The output dict of network `name` on `inputs`."""
    if name == "affwildnet":
        t = _trunk(inputs["frames"], config)
        return _va_output(_recurrent_stack(_landmark_fc(t["pool5"], inputs, config), config, "gru"), config)
    if name in ("cnn", "mt-vgg"):
        h = _trunk(inputs["frames"], config)["pool5"]
        for i in (1, 2):
            h = _dense(h, config.fc_units, config.dropout, f"fc{i}")
        return _va_output(h, config) if name == "cnn" else _mt_output(h, config)
    if name == "vgg-face-lstm":
        h = _dense(_trunk(inputs["frames"], config)["pool5"], config.fc_units, config.dropout, "fc1")
        return _va_output(_recurrent_stack(h, config, "lstm", cell="lstm"), config)
    if name == "cnn1rnn":
        return _va_output(_cnn1rnn_features(inputs, config), config)
    if name == "cnn3rnn":
        return _va_output(_cnn3rnn_features(inputs, config), config)
    if name in ("fusion-rnn", "fusion-fc"):
        members = [_sub_model(body, tuple(inputs), config, member)(inputs)
                   for body, member in zip((_cnn1rnn_features, _cnn3rnn_features), FUSION_MEMBERS)]
        x = keras.layers.Concatenate(name="fusion_concat")(members)
        if name == "fusion-rnn":
            x = keras.layers.GRU(config.rnn_units, return_sequences=True, name="fusion_gru")(x)
        else:
            x = _dense(x, config.rnn_units, config.dropout, "fusion_fc")
        return _va_output(x, config)
    if name == "mt-vgg-gru":
        return _mt_output(_mt_stream(inputs["frames"], config), config)
    if name == "av-mt-vgg-gru":
        streams = []
        for key, stream, face in (("frames", AV_STREAMS[0], True), ("audio", AV_STREAMS[1], False)):
            inp = _inputs([key], config)[key]
            streams.append(keras.Model(inp, _mt_stream(inp, config, face=face), name=stream)(inputs[key]))
        x = keras.layers.Concatenate(name="av_concat")(streams)
        return _mt_output(_recurrent_stack(x, config, "av_gru"), config)
    raise AssertionError(name)  # every VIDEO_MODELS name is handled above


# === Public builder ===

def build_video_model(config: Config) -> keras.Model:
    """The functional model of video network `config.model` (module docstring), initialised as config says.

    Uses model, width, image_size, fc_units, dropout, rnn_units, rnn_dropout, va_activation,
    tap_pool, mt_aus, landmarks, vgg_face_weights / vgg_face_input, init_from, freeze_init.
    VGG-FACE weights load first (into the visual trunk of each nested member of the fusion and
    audiovisual networks), then `initialise_from(model, config.init_from, config.freeze_init)`.
    """
    _info(config)
    if config.backbone != "vgg_face":
        raise ValueError(f"The video networks are built on the VGG-FACE trunk (Sections V, VI-A). "
                         f"Received: backbone={config.backbone!r}")
    names = model_inputs(config)
    for au in MT_AU_SETS[config.mt_aus]:
        taxonomy.au_index(au)  # each head AU must have a slot among the 17 (raises naming it)
    inputs = _inputs(names, config)
    outputs = _outputs(config.model, inputs, config)
    model = keras.Model(inputs, outputs, name=config.model.replace("-", "_"))

    if config.vgg_face_weights:
        from fbn_keras.model import load_vgg_face_weights

        for target in _vgg_face_targets(model):
            load_vgg_face_weights(target, config.vgg_face_weights)
    else:
        log.info("%s (width %s): trunk starts from random initialisation", model.name, config.width)
    if config.init_from:
        initialise_from(model, config.init_from, config.freeze_init)
    return model


def _vgg_face_targets(model: keras.Model) -> list[keras.Model]:
    """The (sub-)models whose visual trunk VGG-FACE weights load into."""
    if any(layer.name == "conv1_1" for layer in model.layers):
        return [model]
    return [layer for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name in FUSION_MEMBERS + AV_STREAMS[:1]]


# === Initialisation from trained networks ===

def _init_entries(paths) -> list[tuple[str | None, Path]]:
    """[(scope or None, .keras file)] from 'a,b' or a list; an entry 'member=path' names the nested model."""
    items = [p for p in (paths.split(",") if isinstance(paths, str) else paths)]
    entries = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        scope, sep, rest = item.partition("=")
        scope, path = (scope.strip(), rest.strip()) if sep and "/" not in scope else (None, item)
        path = Path(path)
        if path.is_dir():
            from fbn_keras.runs import MODEL_FILE

            path = path / MODEL_FILE
        entries.append((scope, path))
    if not entries:
        raise ValueError(f"initialise_from needs at least one .keras file or run folder. Received: paths={paths!r}")
    return entries


def _weighted(model: keras.Model) -> dict:
    return {layer.name: layer for layer in model.layers if layer.weights and layer.name not in OUTPUT_LAYERS}


def initialise_from(model: keras.Model, paths: Union[str, Iterable[Union[str, Path]]],
                    freeze: bool = False) -> list[str]:
    """Copy weights by layer name from trained networks into `model`; return the names loaded.

    `paths`: ','-joined (or a list of) `.keras` files or run folders (their `model.keras`). A source
    whose model name is that of a nested member of `model` (the fusion networks' "cnn1rnn" and
    "cnn3rnn", Section V-B) loads into that member; 'member=path' names the member explicitly (the
    audiovisual network's "visual_stream" / "audio_stream", Section VI-A). Into a member, every
    layer with weights must be in the source; into the top level, every layer the source shares
    by name is copied and the VGG-FACE conv layers must be among them (the "CNN part" each network of
    Section VI-A starts from). Output layers ("va", "output") are never copied: the paper replaces
    them. Nothing is assigned unless every entry checks out; one ValueError names every missing
    or mis-shaped layer. `freeze`: the loaded layers become non-trainable (config.freeze_init).
    """
    entries = _init_entries(paths)
    members = {layer.name: layer for layer in model.layers if isinstance(layer, keras.Model)}
    problems, plan = [], []
    for scope_name, path in entries:
        if not path.is_file():
            problems.append(f"{path}: no such .keras file")
            continue
        source = keras.saving.load_model(path, compile=False)
        if scope_name is None and source.name in members:
            scope_name = source.name
        if scope_name is not None and scope_name not in members:
            problems.append(f"{path}: {model.name!r} has no nested model {scope_name!r} (it has {sorted(members)})")
            continue
        target = members[scope_name] if scope_name else model
        mine, theirs = _weighted(target), _weighted(source)
        required = (list(mine) if scope_name else [n for n in backbones.VGG_CONV_NAMES if n in mine])
        prefix = f"{scope_name}/" if scope_name else ""
        for name in required:
            if name not in theirs:
                problems.append(f"{path}: layer {prefix}{name} missing")
        shared = [n for n in mine if n in theirs]
        if not shared:
            problems.append(f"{path}: shares no layer with {target.name!r}")
        for name in shared:
            want = [tuple(w.shape) for w in mine[name].weights]
            have = [tuple(w.shape) for w in theirs[name].weights]
            if want != have:
                problems.append(f"{path}: layer {prefix}{name} has weights {have}, the model expects {want}")
            else:
                plan.append((prefix + name, mine[name], theirs[name].get_weights()))
    if problems:
        raise ValueError(f"Cannot initialise {model.name!r} from {paths!r}: {len(problems)} problem(s):\n  "
                         + "\n  ".join(problems))
    for _, layer, values in plan:
        layer.set_weights(values)
        if freeze:
            layer.trainable = False
    loaded = [name for name, _, _ in plan]
    log.info("Initialised %s from %s: %d layers%s", model.name, paths, len(loaded), " (frozen)" if freeze else "")
    return loaded
