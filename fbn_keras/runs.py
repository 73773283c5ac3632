"""One way to load a trained FaceBehaviorNet and one traced forward pass, for evaluate, predict, export, fine-tuning.

    model, config = load_run("runs/paper")              # a run folder written by fbn_keras.train
    model, config = load_run("runs/paper/model.keras")  # or a .keras file
    probs = make_forward(model)(images)                  # {"va", "expr", "au"} probabilities

A run folder (what `fbn_keras.train` writes) holds `config.json`, `model.keras`
once training finished, and `checkpoints/` while it runs. `load_run` takes the
newer of `model.keras` and the latest checkpoint (an interrupted or resumed run
has a checkpoint newer than the last `model.keras`); a checkpoint is restored
into the model that `config.json` describes. A `.keras` file comes with the
`config.json` beside it when there is one; otherwise the config is rebuilt from
the model (see `config_from_model`). Models load in Keras safe mode (no code
from the file runs) without their training configuration (compile=False).
Anything that cannot be loaded raises a `RunLoadError` whose one-line message
names the path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from fbn_keras.config import Config

log = logging.getLogger(__name__)

#: What fbn_keras.train writes into a run folder (train.py's MODEL_FILE, CONFIG_FILE, CHECKPOINT_DIR).
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
#: The two members every Keras 3 `.keras` archive holds.
KERAS_MEMBERS = ("config.json", "model.weights.h5")


class RunLoadError(ValueError):
    """A model or run that cannot be loaded; the message is one line naming the path."""


class RunNotFoundError(RunLoadError, FileNotFoundError):
    """The path given does not exist."""


# === Paths ===

def config_path(path: str | Path) -> Optional[Path]:
    """The run's saved `config.json`: inside a run folder, or beside a `.keras` file; None when there is none."""
    path = Path(path)
    candidate = (path if path.is_dir() else path.parent) / CONFIG_FILE
    return candidate if candidate.is_file() else None


def run_dir(path: str | Path) -> Path:
    """The folder a run's outputs go to: the run folder itself, or the folder of a `.keras` file."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def _latest_checkpoint(folder: Path) -> Optional[str]:
    import tensorflow as tf

    ckpt_dir = folder / CHECKPOINT_DIR
    return tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None


def _is_savedmodel(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() or (folder / "saved_model.pbtxt").is_file()


# === Loading ===

#: Modules whose layers (and schedules) are registered as Keras-serializable: imported before a model loads.
CUSTOM_LAYER_MODULES: tuple[str, ...] = ("fbn_keras.time_layers", "fbn_keras.attention", "fbn_keras.facernet",
                                         "fbn_keras.se_resnet", "fbn_keras.schedules")


def register_custom_layers() -> None:
    """Import every module that registers serializable layers, so any of the package's models loads in safe mode."""
    import importlib

    for module in CUSTOM_LAYER_MODULES:
        importlib.import_module(module)


def load_keras(path: str | Path):
    """A `.keras` file → its Keras model, in safe mode and uncompiled; a RunLoadError naming the path otherwise.

    A truncated or overwritten file is checked as a zip archive first: Keras
    itself reports such a file as "File not found".
    """
    import keras

    path = Path(path)
    if path.is_dir():
        hint = (" (a TF SavedModel folder: it serves, and tf.saved_model.load reads it)" if _is_savedmodel(path)
                else "")
        raise RunLoadError(f"{path}: a folder where a .keras file is needed{hint}")
    if path.suffix != ".keras":
        raise RunLoadError(f"{path}: expected a .keras file, not {path.suffix or 'a name without suffix'} "
                           "(a SavedModel folder loads with tf.saved_model.load)")
    if not path.exists():
        raise RunNotFoundError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise RunLoadError(f"{path}: not a valid .keras archive (not a zip file: truncated or overwritten?)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as err:
        raise RunLoadError(f"{path}: not a valid .keras archive ({err})") from None
    missing = [m for m in KERAS_MEMBERS if m not in names]
    if missing:
        raise RunLoadError(f"{path}: not a valid .keras archive (no {', '.join(missing)} in it)")
    register_custom_layers()
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001 - any failure inside Keras becomes one line naming the file
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "safe_mode" in str(err):
            raise RunLoadError(f"{path}: refused in safe_mode, it would run code from the file ({text})") from None
        raise RunLoadError(f"{path}: not a valid .keras archive ({type(err).__name__}: {text})") from None


def _restore_checkpoint(checkpoint: str, config: Config):
    """The model `config` describes, with the weights of a training checkpoint (optimizer state left out)."""
    import tensorflow as tf

    from fbn_keras.model import build_facebehaviornet

    # fbn_keras.train builds with the VGG-FACE input adapter exactly when weights were given.
    adapter = getattr(config, "vgg_face_input", None)
    if not isinstance(adapter, bool):
        adapter = bool(config.vgg_face_weights) and config.backbone == "vgg_face"
    if config.model == "facebehaviornet":
        model = build_facebehaviornet(config, vgg_face_input=adapter, load_weights=False)
    else:           # the trained weights come from the checkpoint, not from the files that initialised them
        import dataclasses

        from fbn_keras import registry

        model = registry.spec(config.model).build(dataclasses.replace(config, init_from="", vgg_face_weights=None))
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint)
        status.expect_partial()                 # the optimizer's slots and the step are not wanted here
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunLoadError(f"{checkpoint}: cannot restore it into the model of its config.json ({text})") from None
    return model


def _load_config(path: Path) -> Config:
    try:
        return Config.load(path)
    except (ValueError, TypeError) as err:   # bad JSON, unknown field, invalid value
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunLoadError(f"{path}: not a valid run config ({text})") from None


def load_run(path: str | Path) -> tuple[Any, Config]:
    """(model, config) of a run folder or a `.keras` file; see the module docstring for which weights are taken."""
    path = Path(path)
    if not path.exists():
        raise RunNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        model = load_keras(path)
        saved = config_path(path)
        return model, (_load_config(saved) if saved else config_from_model(model, source=path))
    if _is_savedmodel(path):
        raise RunLoadError(f"{path}: a TF SavedModel folder (an export for serving); give the run folder or its "
                           f"{MODEL_FILE}")
    model_file = path / MODEL_FILE
    checkpoint = _latest_checkpoint(path)
    if not model_file.is_file() and checkpoint is None:
        raise RunLoadError(f"{path}: neither {MODEL_FILE} nor a checkpoint in {CHECKPOINT_DIR}/: not a run folder")
    saved = config_path(path)
    if checkpoint is not None and (not model_file.is_file()
                                   or os.path.getmtime(checkpoint + ".index") > os.path.getmtime(model_file)):
        if saved is None:
            raise RunLoadError(f"{path}: a checkpoint but no {CONFIG_FILE} to rebuild its model from")
        config = _load_config(saved)
        log.info("Loading %s (newer than %s)", checkpoint, MODEL_FILE if model_file.is_file() else "any model file")
        return _restore_checkpoint(checkpoint, config), config
    model = load_keras(model_file)
    return model, (_load_config(saved) if saved else config_from_model(model, source=model_file))


def config_from_model(model, source: Any = "the model") -> Config:
    """A Config for a model without its `config.json`: the architecture read from the layers, the rest defaults.

    backbone from the layer names (conv1_1 → vgg_face, else the nested
    resnet50/densenet121), width from conv5_3's channels / 512, fc_units and
    dropout from fc1 and dropout1, image_size from the input. Every other field
    (coupling, thresholds, batches, …) is the `paper` preset's default.
    """
    from fbn_keras import backbones

    names = {layer.name for layer in model.layers}
    fields: dict[str, Any] = {}
    shape = tuple(model.inputs[0].shape)
    if len(shape) == 4 and shape[1] is not None:
        fields["image_size"] = int(shape[1])
    if "conv1_1" in names:
        fields["backbone"] = "vgg_face"
        last = backbones.VGG_CONV_NAMES[-1]
        if last in names:
            fields["width"] = model.get_layer(last).filters / backbones.VGG_BLOCKS[-1][1]
    else:
        found = [b for b in ("resnet50", "densenet121") if b in names]
        if found:
            fields["backbone"] = found[0]
    if "fc1" in names:
        fields["fc_units"] = int(model.get_layer("fc1").units)
    if "dropout1" in names:
        fields["dropout"] = float(model.get_layer("dropout1").rate)
    log.warning("%s has no %s beside it: config rebuilt from the model (%s); every other field is the paper "
                "preset's default", source, CONFIG_FILE, ", ".join(f"{k}={v}" for k, v in sorted(fields.items())))
    return dataclasses.replace(Config(), **fields)


# === The forward pass ===

def make_forward(model, au_slots: Optional[tuple[int, ...]] = None) -> Callable:
    """One traced pass `images → probabilities`, reused across batches (the last batch may be smaller).

    `au_slots`: the columns of `taxonomy.AUS` of a model whose AU head has fewer units (MTANet's 8);
    its probabilities land in those columns, zero in the others.

    For FaceBehaviorNet's output dict: `fbn_keras.model.probabilities` (VA as
    regressed, softmax over expressions, sigmoid per AU; main paper Section 3).
    For a single-output model (the compound head of fine-tuning): softmax over
    the last axis. Always in inference mode (dropout off, BatchNorm's moving
    statistics).
    """
    import tensorflow as tf

    from fbn_keras.model import probabilities

    from fbn_keras import taxonomy

    @tf.function(reduce_retracing=True)
    def forward(images):
        outputs = model(images, training=False)
        if isinstance(outputs, Mapping):
            probs = probabilities(outputs)
            if au_slots is not None:       # an AU head for some of the 17 AUs: scattered into their columns
                columns = tf.transpose(tf.scatter_nd(tf.constant([[i] for i in au_slots]),
                                                     tf.transpose(probs["au"]),
                                                     [taxonomy.NUM_AUS, tf.shape(probs["au"])[0]]))
                probs = {**probs, "au": columns}
            return probs
        return tf.nn.softmax(outputs, axis=-1)

    return forward
