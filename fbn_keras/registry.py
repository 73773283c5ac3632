"""The networks `python -m fbn_keras.train --model NAME` trains: each one's builder, loss, input and evaluation.

Every network goes through the one trainer (`fbn_keras.train`: its explicit
distributed loop, checkpoints, resume, NaN guard, TensorBoard); what differs
between networks is held here, as data:

- `kind`: "frames" (FaceBehaviorNet: one batch from each of the VA, AU and
  EXPR task sets per step, `fbn_keras.data`), "sequence" (the journal's
  video networks: (B, T) windows of consecutive frames, `fbn_keras.sequences`)
  or "video" (FaceRNET: whole videos, one label vector per video,
  `facernet.make_video_dataset`); `kind_for(config)`, when given, says which
  a config trains (FaceRNET's stage "rec" trains its REC on frames; `kind`);
- `build(config)`: the Keras functional model;
- `make_loss(config, model, au_pos_weight)`: a callable `(outputs, labels) ->
  {term: loss, "total": ...}`, each replica returning its share of the global
  loss; a loss with variables of its own (learned task weights) exposes them as
  `trainable_variables`, and the trainer optimises and checkpoints them too;
- `evaluate(model, data_dir, split, config)`: {database: {metric: value}},
  and `format(results, config)` its printed tables;
- `default_data()`: the synthetic test-bed the network trains on when no
  `--data` is given;
- `update_hooks(model)`, optional: (before_apply, after_apply) called in each
  replica's step around the optimizer's update, `before_apply(inputs) ->
  state`, `after_apply(inputs, state)` (FaceRNET's routing, Section 3.2), or
  None.

The builders of the video networks live in `fbn_keras.video_models`, their
losses in `fbn_keras.sequence_losses` and their evaluation in
`fbn_keras.evaluate_sequences`; they are imported only when such a network is asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Callable, Optional

from fbn_keras import taxonomy
from fbn_keras.config import TASKS, Config

log = logging.getLogger("fbn_keras.registry")

KINDS: tuple[str, ...] = ("frames", "sequence", "video")


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
    update_hooks: Optional[Callable[[Any], Optional[tuple[Callable, Callable]]]] = None
    kind_for: Optional[Callable[[Config], str]] = None


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


# === FaceRNET (Kollias et al., ABAW5; docs/FAITHFULNESS.md, "FaceRNET") ===

def _facernet_kind(config: Config) -> str:
    """Stage "rec" trains the REC alone on the per-frame VA / expression / AU sets (Section 3.1); the others
    train on whole videos."""
    return "frames" if config.facernet_stage == "rec" else "video"


def _facernet_build(config: Config):
    """Stage "rec": the REC sub-model (`facernet.build_rec`, a FaceBehaviorNet named "rec", which a later
    stage's `--init-from` loads into FaceRNET's "rec" member); otherwise FaceRNET with the stage's trainable
    parts (`facernet.apply_stage`), then `init_from` (`_initialise_facernet`)."""
    from fbn_keras import facernet

    if config.facernet_stage == "rec":
        return facernet.build_rec(config)
    model = facernet.apply_stage(facernet.build_facernet(config), config.facernet_stage)
    if config.init_from:
        _initialise_facernet(model, config.init_from, config.freeze_init)
    return model


def _initialise_facernet(model, paths: str, freeze: bool) -> None:
    """`init_from` for FaceRNET: a trained REC (a stage-"rec" run, model named "rec", or an entry 'rec=path')
    loads whole into the "rec" member, its output layer included (it is the representation the GRU reads);
    other entries go through `video_models.initialise_from` (by layer name, e.g. a stage-"rnn" run)."""
    import keras

    from fbn_keras import facernet
    from fbn_keras.video_models import _init_entries, initialise_from

    rest = []
    for scope, path in _init_entries(paths):
        source = keras.saving.load_model(path, compile=False) if path.is_file() else None
        if source is None or (scope or source.name) != facernet.REC:
            rest.append(str(path) if scope is None else f"{scope}={path}")
            continue
        rec = model.get_layer(facernet.REC)
        want, have = [tuple(w.shape) for w in rec.weights], [tuple(w.shape) for w in source.weights]
        if want != have:
            raise ValueError(f"Cannot load the REC of {path}: its weights {have} differ from the model's {want} "
                             "(build both with the same backbone, width, fc_units and image_size)")
        rec.set_weights(source.get_weights())
        if freeze:
            rec.trainable = False
        log.info("Initialised FaceRNET's REC from %s%s", path, " (frozen)" if freeze else "")
    if rest:
        initialise_from(model, ",".join(rest), freeze)


def _facernet_loss(config: Config, model, au_pos_weight=None):
    """Stage "rec": L_REC of eq. 3 (`facernet.rec_loss`, all three tasks); otherwise eq. 4's Pearson loss."""
    from fbn_keras import facernet

    if config.facernet_stage == "rec":
        if config.task_set != frozenset(TASKS):
            raise ValueError(f"facernet_stage 'rec' trains all three tasks (eq. 3). Received: tasks={config.tasks!r}")
        return facernet.rec_loss(config, au_pos_weight)
    if config.facernet_stage == "rnn" and not config.init_from:
        log.warning("facernet_stage 'rnn' without init_from: the frozen REC keeps its random initialisation "
                    "(Section 3.3 trains it first: --facernet-stage rec, then --init-from that run)")
    return facernet.IntensityLoss(config)


def _facernet_hooks(model):
    """FaceRNET's routing (Section 3.2) around each update: the `routed_dense` kernel before it, and its rows
    of frames >= max(l) of the global batch restored after it; None without routing (or for the REC)."""
    from fbn_keras import facernet

    hook = facernet.routing_hook(model)
    if hook is None:
        return None
    return (lambda inputs: facernet.routing_snapshot(model)), hook


def score_intensities(labels, preds) -> dict[str, float]:
    """Pearson rho per reaction over the videos, and their mean (the challenge's score; FaceRNET Tables 1-3).

    labels, preds: (N, 7) in `taxonomy.REACTIONS` order, one row per video. A column whose labels or
    predictions do not vary has rho 0 (as eq. 4's epsilon makes it in the loss), not NaN.
    Returns {"pearson_<reaction>": rho, ..., "pearson_mean": mean of the 7}.
    """
    import numpy as np

    y = np.asarray(labels, np.float64)
    p = np.asarray(preds, np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != taxonomy.NUM_REACTIONS:
        raise ValueError(f"labels and preds must both be (N, {taxonomy.NUM_REACTIONS}). "
                         f"Received: {y.shape} and {p.shape}")
    dy, dp = y - y.mean(axis=0), p - p.mean(axis=0)
    cov = (dy * dp).sum(axis=0)
    scale = np.sqrt((dy * dy).sum(axis=0) * (dp * dp).sum(axis=0))
    rho = np.divide(cov, scale, out=np.zeros_like(cov), where=scale > 0)
    out = {f"pearson_{name}": float(r) for name, r in zip(taxonomy.REACTIONS, rho)}
    out["pearson_mean"] = float(rho.mean())
    return out


def intensity_databases(data_dir: Path, split: str) -> list[str]:
    """The databases of the folder's sequence index with reaction intensities and `split` built."""
    from fbn_keras import sequences

    built = sequences.load_index(data_dir)["databases"]
    return sorted(name for name, splits in built.items() if splits.get(split, {}).get("complete")
                  and "intensity" in taxonomy.database(name).tasks)


def evaluate_intensities(model, data_dir: Path, split: str, config: Config) -> dict:
    """{database: score_intensities over its videos of `split`, plus "n_videos"} for every database with
    intensity labels; one prediction per whole video (its first `facernet_frames` frames)."""
    import numpy as np

    from fbn_keras import facernet

    results = {}
    for name in intensity_databases(data_dir, split):
        labels, preds = [], []
        for inputs, batch in facernet.make_video_dataset(
                data_dir, [name], split, frames=config.facernet_frames, batch_size=config.video_batch,
                image_size=config.image_size, training=False):
            keep = batch["intensity_mask"].numpy() > 0
            labels.append(batch["intensity"].numpy()[keep])
            preds.append(np.asarray(model(inputs, training=False)["intensity"])[keep])
        if labels and sum(len(x) for x in labels):
            results[name] = {**score_intensities(np.concatenate(labels), np.concatenate(preds)),
                             "n_videos": int(sum(len(x) for x in labels))}
    return results


def format_intensities(results: dict, config: Config) -> str:
    """One row per database: Pearson rho per reaction and their mean."""
    names = [*taxonomy.REACTIONS, "mean"]
    lines = [" | ".join(["database", *names, "videos"])]
    for db, scores in sorted(results.items()):
        lines.append(" | ".join([db, *(f"{scores[f'pearson_{n}']:.3f}" for n in names),
                                 str(scores.get("n_videos", ""))]))
    return "\n".join(lines)


def _facernet_evaluate(model, data_dir: Path, split: str, config: Config) -> dict:
    if config.facernet_stage == "rec":
        return _fbn_evaluate(model, data_dir, split, config)
    return evaluate_intensities(model, data_dir, split, config)


def _facernet_format(results: dict, config: Config) -> str:
    if config.facernet_stage == "rec":
        return _fbn_format(results, dataclasses.replace(config, coupling="dm"))
    return format_intensities(results, config)


def _reaction_testbed(cache_dir=None, seed: int = 0) -> Path:
    """The synthetic reaction videos (`synthetic/intensity.py`, its default video counts), built once into
    the cache."""
    from fbn_keras.testbed import cache_root

    return ensure_reaction_testbed(cache_root(cache_dir) / f"synthetic-intensity-seed{int(seed)}", seed=seed)


def ensure_reaction_testbed(path: Path, videos=None, seed: int = 0) -> Path:
    """Synthetic reaction videos with `videos` per split (None: the generator's defaults) in `path`, built
    once (concurrent callers wait on a lock; a complete folder is reused)."""
    from fbn_keras import sequences
    from fbn_keras.manifest import Manifest, locked
    from fbn_keras.synthetic import intensity

    def ready() -> bool:
        return (Manifest.load(path).build_complete(intensity.BUILD)
                and intensity.DATABASE in sequences.load_index(path)["databases"])

    if path.exists() and ready():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent, f".{path.name}.lock"):
        if not (path.exists() and ready()):
            intensity.build(path, videos=dict(videos) if videos else None, seed=seed)
    return path


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
    "facernet": ModelSpec("facernet", "video", "FaceRNET: REC per frame -> GRU -> Mask layer with routing -> dense "
                          "-> 7 reaction intensities per video (Kollias et al., ABAW5)", _facernet_build,
                          _facernet_loss, _facernet_evaluate, _facernet_format, _reaction_testbed,
                          update_hooks=_facernet_hooks, kind_for=_facernet_kind),
}


def spec(name: str) -> ModelSpec:
    """The ModelSpec of `name` (one of config.MODELS)."""
    if name not in SPECS:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(SPECS)}")
    return SPECS[name]


def kind(config: Config) -> str:
    """The kind of input `config` trains on: the spec's `kind_for(config)` where it has one, else its `kind`."""
    entry = spec(config.model)
    return entry.kind_for(config) if entry.kind_for is not None else entry.kind


def default_data(config: Config) -> Path:
    """The synthetic test-bed `config` trains on without `--data`: the image test-bed for a network trained on
    frames (FaceRNET's stage "rec" too), else the network's own."""
    entry = spec(config.model)
    if kind(config) == "frames" and entry.kind != "frames":
        return _image_testbed()
    return entry.default_data()


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
    heads = {"intensity"} if kind(config) == "video" else set(video_info(config).heads)
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


# === Video-level networks (FaceRNET): whole videos, one label vector each ===

def video_steps(config: Config, data_dir: Path) -> int:
    """Training length of a video-level network: `config.steps`, or `config.epochs` passes over its videos
    in batches of `config.video_batch`."""
    if config.steps is not None:
        return int(config.steps)
    from fbn_keras import sequences

    index = sequences.load_index(data_dir)["databases"]
    videos = sum(index[d]["train"]["groups"] for d in sequence_databases(config, data_dir))
    return max(1, math.ceil(config.epochs * videos / config.video_batch))


def make_video_train_dataset(data_dir: Path, config: Config, input_context=None):
    """The training batches of a video-level network: `config.video_batch` whole videos per global step
    (`facernet.make_video_dataset`), split over replicas and, across machines, over input pipelines."""
    from fbn_keras import facernet

    batch = config.video_batch
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(batch)
    ds = facernet.make_video_dataset(data_dir, sequence_databases(config, data_dir), "train",
                                     frames=config.facernet_frames, batch_size=batch, image_size=config.image_size,
                                     training=True, seed=config.seed)
    if input_context is not None and input_context.num_input_pipelines > 1:
        # the same seeded order on every worker, every n-th batch each: disjoint batches
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def frames_per_step(config: Config) -> int:
    """Images one training step sees (for the images/s log column)."""
    if kind(config) == "sequence":
        length, batch = window(config)
        return length * batch
    if kind(config) == "video":
        return config.video_batch * config.facernet_frames
    return sum(getattr(config, f"batch_{t}") for t in config.task_set)


def train_dataset(data_dir: Path, config: Config, input_context=None):
    """The training input of `config.model`, for `distribute_datasets_from_function`."""
    if kind(config) == "sequence":
        return make_sequence_train_dataset(data_dir, config, input_context)
    if kind(config) == "video":
        return make_video_train_dataset(data_dir, config, input_context)
    from fbn_keras import data

    return data.make_train_dataset(data_dir, config, input_context=input_context)


def total_steps(config: Config, data_dir: Path) -> int:
    """`config.steps`, or its epochs in steps, for the network's kind of input."""
    if kind(config) == "sequence":
        return sequence_steps(config, data_dir)
    if kind(config) == "video":
        return video_steps(config, data_dir)
    from fbn_keras import data
    from fbn_keras.train import steps_for

    return config.steps if config.steps is not None else steps_for(config, data.train_sizes(data_dir))


def is_sequence(config_or_name: Config | str) -> bool:
    name = config_or_name if isinstance(config_or_name, str) else config_or_name.model
    return spec(name).kind == "sequence"
