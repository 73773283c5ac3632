"""The networks `python -m fbn_keras.train --model NAME` trains: each one's builder, loss, input and evaluation.

Every network goes through the one trainer (`fbn_keras.train`: its explicit
distributed loop, checkpoints, resume, NaN guard, TensorBoard); what differs
between networks is held here, as data:

- `kind`: "frames" (FaceBehaviorNet: one batch from each of the VA, AU and
  EXPR task sets per step, `fbn_keras.data`) or "sequence" (the journal's
  video networks: (B, T) windows of consecutive frames, `fbn_keras.sequences`);
- `build(config)`: the Keras functional model;
- `make_loss(config, model, au_pos_weight)`: a callable `(outputs, labels) ->
  {term: loss, "total": ...}`, each replica returning its share of the global
  loss; a loss with variables of its own (learned task weights) exposes them as
  `trainable_variables`, and the trainer optimises and checkpoints them too;
- `evaluate(model, data_dir, split, config)`: {database: {metric: value}},
  and `format(results, config)` its printed tables;
- `default_data()`: the synthetic test-bed the network trains on when no
  `--data` is given.

The builders of the video networks live in `fbn_keras.video_models`, their
losses in `fbn_keras.sequence_losses` and their evaluation in
`fbn_keras.evaluate_sequences`; they are imported only when such a network is asked for.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

from fbn_keras import taxonomy
from fbn_keras.config import Config

KINDS: tuple[str, ...] = ("frames", "sequence")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the trainer needs to know of one network (module docstring)."""

    name: str
    kind: str
    summary: str
    build: Callable[[Config], Any]
    make_loss: Callable[[Config, Any, Any], Callable]
    evaluate: Callable[[Any, Path, str, Config], dict]
    format: Callable[[dict, Config], str]
    default_data: Callable[[], Path]


# === FaceBehaviorNet (main paper) ===

def _fbn_build(config: Config):
    from fbn_keras.model import build_facebehaviornet

    return build_facebehaviornet(config)


def _fbn_loss(config: Config, model, au_pos_weight=None):
    from fbn_keras.losses import MultiTaskLoss

    return MultiTaskLoss(config, au_pos_weight=au_pos_weight)


def _fbn_evaluate(model, data_dir: Path, split: str, config: Config) -> dict:
    from fbn_keras.evaluate import evaluate_model

    return evaluate_model(model, data_dir, split, au_threshold=config.au_threshold,
                          skip_corrupt=config.skip_corrupt_records)


def _fbn_format(results: dict, config: Config) -> str:
    from fbn_keras.evaluate import format_table

    return format_table(results, coupling=config.coupling)


def _image_testbed() -> Path:
    from fbn_keras.testbed import ensure_synthetic_testbed

    return ensure_synthetic_testbed()


# === The journal's video networks ===

def _video_build(config: Config):
    from fbn_keras.video_models import build_video_model

    return build_video_model(config)


def _video_loss(config: Config, model, au_pos_weight=None):
    from fbn_keras.sequence_losses import SequenceLoss
    from fbn_keras.video_models import VIDEO_MODELS, au_slots

    return SequenceLoss(config, VIDEO_MODELS[config.model].heads, au_slots(config))


def _video_evaluate(model, data_dir: Path, split: str, config: Config) -> dict:
    from fbn_keras.evaluate_sequences import evaluate_sequence_model

    return evaluate_sequence_model(model, data_dir, split, config)


def _video_format(results: dict, config: Config) -> str:
    from fbn_keras.evaluate_sequences import format_sequence_table

    return format_sequence_table(results)


def _video_testbed() -> Path:
    from fbn_keras.records.synthetic_video import ensure_video_testbed

    return ensure_video_testbed()


_VIDEO_SUMMARIES: dict[str, str] = {
    "affwildnet": "AffWildNet: VGG-FACE + landmarks -> FC -> 2-layer GRU, VA per frame (journal Section V-A)",
    "cnn": "per-frame CNN baseline: VGG-FACE -> 2 FC -> VA (journal Table II)",
    "vgg-face-lstm": "VGG-FACE-LSTM baseline: fc1 -> 2-layer LSTM -> VA (journal Table II)",
    "cnn1rnn": "CNN-1RNN: pool2, pool5 and fc taps -> one 2-layer GRU -> VA (journal Section V-B)",
    "cnn3rnn": "CNN-3RNN: one 2-layer GRU per tap -> VA (journal Section V-B)",
    "fusion-rnn": "model-level fusion of CNN-1RNN and CNN-3RNN with a GRU (journal Section V-B)",
    "fusion-fc": "model-level fusion of CNN-1RNN and CNN-3RNN with an FC layer (journal Section V-B)",
    "mt-vgg": "MT-VGG: per-frame VA, 7 expressions, 8 AUs (journal Section VI-A)",
    "mt-vgg-gru": "MT-VGG-GRU: fc1 -> 2-layer GRU -> VA, expressions, AUs (journal Section VI-A)",
    "av-mt-vgg-gru": "A/V-MT-VGG-GRU: visual and audio streams -> 2-layer GRU (journal Section VI-A, Fig. 3)",
}

# === The generation paper's VGGFACE-GRU-attention (Section V) ===

def _attention_build(config: Config):
    from fbn_keras.attention import build_attention_model

    return build_attention_model(config)


def _attention_loss(config: Config, model, au_pos_weight=None):
    from fbn_keras.attention_losses import AttentionLoss

    return AttentionLoss(config)


def attention_info():
    """VGGFACE-GRU-attention as a sequence network: frames in, VA and 7 expressions out; 10 × 80 at 1e-3."""
    from fbn_keras.video_models import VideoModelInfo

    return VideoModelInfo(("frames",), ("va", "expr"), 80, 10, 1e-3, False, False,
                          "VGGFACE-GRU-attention: VGG-FACE -> FC -> GRU -> attention GRU -> VA, 7 expressions "
                          "(generation paper, Section V)")


# === MTANet (Zhang & Gu, ABAW 2020) ===

def _mtanet_build(config: Config):
    from fbn_keras.mtanet import build_mtanet

    return build_mtanet(config)


def _mtanet_loss(config: Config, model, au_pos_weight=None):
    from fbn_keras.mtanet import MTANetLoss

    return MTANetLoss(config)


def _mtanet_evaluate(model, data_dir: Path, split: str, config: Config) -> dict:
    """FaceBehaviorNet's scoring on MTANet's 8 AUs (the other AU columns unannotated)."""
    from fbn_keras.evaluate import evaluate_model
    from fbn_keras.mtanet import mtanet_au_slots
    from fbn_keras.runs import make_forward

    slots = mtanet_au_slots()
    return evaluate_model(model, data_dir, split, au_threshold=config.au_threshold, au_slots=slots,
                          forward=make_forward(model, au_slots=slots), skip_corrupt=config.skip_corrupt_records)


SPECS: dict[str, ModelSpec] = {
    "facebehaviornet": ModelSpec("facebehaviornet", "frames",
                                 "FaceBehaviorNet: VA, 7 expressions, 17 AUs from one face (main paper Section 3)",
                                 _fbn_build, _fbn_loss, _fbn_evaluate, _fbn_format, _image_testbed),
    **{name: ModelSpec(name, "sequence", summary, _video_build, _video_loss, _video_evaluate, _video_format,
                       _video_testbed)
       for name, summary in _VIDEO_SUMMARIES.items()},
    "vggface-gru-attention": ModelSpec("vggface-gru-attention", "sequence",
                                       "VGGFACE-GRU-attention: VA and 7 expressions per frame (generation paper, "
                                       "Section V)", _attention_build, _attention_loss, _video_evaluate,
                                       _video_format, _video_testbed),
    "mtanet": ModelSpec("mtanet", "frames", "MTANet: SE-ResNet-50, VA, 8 AUs, 7 expressions, eq. 5's learned "
                        "task weights (Zhang & Gu, ABAW 2020)", _mtanet_build, _mtanet_loss, _mtanet_evaluate,
                        _fbn_format, _image_testbed),
}


def spec(name: str) -> ModelSpec:
    """The ModelSpec of `name` (one of config.MODELS)."""
    if name not in SPECS:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(SPECS)}")
    return SPECS[name]


# === Sequence networks: windows and databases ===

def video_info(config: Config):
    """What a sequence network is (`video_models.VideoModelInfo`): inputs, heads, the paper's window sizes."""
    from fbn_keras.video_models import VIDEO_MODELS

    if config.model == "vggface-gru-attention":
        return attention_info()
    if config.model not in VIDEO_MODELS:
        raise ValueError(f"{config.model!r} is not a sequence network; those are "
                         f"{sorted(n for n, s in SPECS.items() if s.kind == 'sequence')}")
    return VIDEO_MODELS[config.model]


def sequence_inputs(config: Config) -> tuple[str, ...]:
    """The inputs a sequence network of `config` takes ("frames", and "landmarks" / "audio" where it uses them)."""
    from fbn_keras.video_models import VIDEO_MODELS, model_inputs

    return model_inputs(config) if config.model in VIDEO_MODELS else video_info(config).inputs


def window(config: Config) -> tuple[int, int]:
    """(T, B): frames per window and windows per step; the model's paper values unless the config sets them."""
    info = video_info(config)
    return (config.seq_length or info.paper_length, config.seq_batch or info.paper_batch)


def sequence_databases(config: Config, data_dir: Path, split: str = "train") -> list[str]:
    """The sequence databases a sequence network trains on: `config.video_databases`, or every database of
    the folder's sequence index whose split is built and which labels every head of the network."""
    from fbn_keras import sequences

    built = {name for name, splits in sequences.load_index(data_dir)["databases"].items()
             if splits.get(split, {}).get("complete")}
    if config.video_databases:
        wanted = [d.strip() for d in config.video_databases.split(",") if d.strip()]
        missing = sorted(set(wanted) - built)
        if missing:
            raise ValueError(f"video_databases {missing} have no {split!r} sequence shards in {data_dir}; "
                             f"it has {sorted(built)} (fbn_keras.sequences.write_sequence_shards makes them)")
        return wanted
    heads = set(video_info(config).heads)
    names = sorted(name for name in built if heads <= set(taxonomy.database(name).tasks))
    if not names:
        raise ValueError(f"No sequence database in {data_dir} labels every task of {config.model} "
                         f"({sorted(heads)}); built: {sorted(built)}")
    return names


def sequence_steps(config: Config, data_dir: Path) -> int:
    """Training length of a sequence network: `config.steps`, or `config.epochs` passes over its frames."""
    if config.steps is not None:
        return int(config.steps)
    from fbn_keras import sequences

    index = sequences.load_index(data_dir)["databases"]
    frames = sum(index[d]["train"]["frames"] for d in sequence_databases(config, data_dir))
    length, batch = window(config)
    return max(1, math.ceil(config.epochs * frames / (length * batch)))


def make_sequence_train_dataset(data_dir: Path, config: Config, input_context=None):
    """The training windows of a sequence network: (inputs, labels) batches of `window(config)`."""
    from fbn_keras import sequences

    length, batch = window(config)
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(batch)
    inputs = sequence_inputs(config)
    return sequences.make_sequence_dataset(
        data_dir, sequence_databases(config, data_dir), "train", length=length, batch_size=batch, training=True,
        split_at_gap=config.split_at_gap, image_size=config.image_size, landmarks="landmarks" in inputs,
        audio="audio" in inputs, seed=config.seed, deterministic=config.deterministic, input_context=input_context)


def frames_per_step(config: Config) -> int:
    """Images one training step sees (for the images/s log column)."""
    if spec(config.model).kind == "sequence":
        length, batch = window(config)
        return length * batch
    return sum(getattr(config, f"batch_{t}") for t in config.task_set)


def train_dataset(data_dir: Path, config: Config, input_context=None):
    """The training input of `config.model`, for `distribute_datasets_from_function`."""
    if spec(config.model).kind == "sequence":
        return make_sequence_train_dataset(data_dir, config, input_context)
    from fbn_keras import data

    return data.make_train_dataset(data_dir, config, input_context=input_context)


def total_steps(config: Config, data_dir: Path) -> int:
    """`config.steps`, or its epochs in steps, for the network's kind of input."""
    if spec(config.model).kind == "sequence":
        return sequence_steps(config, data_dir)
    from fbn_keras import data
    from fbn_keras.train import steps_for

    return config.steps if config.steps is not None else steps_for(config, data.train_sizes(data_dir))


def is_sequence(config_or_name: Config | str) -> bool:
    name = config_or_name if isinstance(config_or_name, str) else config_or_name.model
    return spec(name).kind == "sequence"
