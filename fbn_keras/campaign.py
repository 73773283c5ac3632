"""The experiment campaign behind Tables 2–7: the plan of runs, their result files, and the runner.

A run is (table, configuration, seed) with a stable name, e.g. `table6/soft_dm-s1`.
It trains through `fbn_keras.train` into a run folder outside the repository
(`$FBN_CACHE/experiments/<config and data digest>`; a killed run resumes from its
checkpoint, and tables that need the same network share the folder), scores the
test splits with `fbn_keras.evaluate` (Table 7 also fine-tunes a compound head,
`fbn_keras.finetune_compound`), and writes one small JSON into
`notebooks/results/<table>/<run>.json` (tmp file + rename): the resolved config,
the git commit, the data fingerprint, steps, wall time, host and every metric.

    python -m fbn_keras.experiments --list                       # the plan and what exists
    python -m fbn_keras.experiments run --seeds 0,1,2            # everything missing
    python -m fbn_keras.experiments run --table table6 --max-runs 2

A result whose config or data fingerprint no longer matches the plan is stale:
listed as such, never counted, and replaced only with `--replace-stale`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from fbn_keras.config import BACKBONES, COUPLINGS, SEQUENCE_FIELDS, Config, preset

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "notebooks" / "results"
#: The files whose last commit dates the code that made a result (the notebooks compare it).
CODE_PATHS: tuple[str, ...] = ("fbn_keras", "tfrecords_tools")
#: The main paper's tables (image test-bed), then the video tables (video test-bed, `video_overrides`): the
#: journal's Tables II–V and the generation paper's Tables X–XI ("attention", VGGFACE-GRU-attention).
IMAGE_TABLES: tuple[str, ...] = ("table2", "tables3_5", "table6", "table7", "control")
VIDEO_TABLES: tuple[str, ...] = ("video2", "video3", "video4", "video5", "attention")
#: Other papers' tables: MTANet's Table I (image test-bed) and FaceRNET's Tables 2-3 (synthetic reaction
#: videos; its REC on the image test-bed), the generation paper's Table IX ("gan": the semi-supervised GAN's
#: discriminator, `fbn_keras.train_gan`, on the image test-bed's AU set).
OTHER_TABLES: tuple[str, ...] = ("mtanet", "facernet", "gan")
#: Tables whose runs are GanConfigs (`Run.config` gives one), trained by `fbn_keras.train_gan`.
GAN_TABLES: tuple[str, ...] = ("gan",)
TABLES: tuple[str, ...] = IMAGE_TABLES + VIDEO_TABLES + OTHER_TABLES
RESULT_FORMAT = 1
#: Config fields the runner sets itself (a collapsed network's fresh draw): not part of the plan, so a
#: result whose network was drawn again still matches its run.
RUNNER_FIELDS: tuple[str, ...] = ("restart",)
TIMING_FILE = "experiment_timing.json"


#: The synthetic stand-ins of the journal's video databases (fbn_keras/synthetic/video.py).
AFFWILD, AFFWILD_CONTROL, AFFWILD2, OMG = "synthv-affwild", "synthv-affwild-control", "synthv-affwild2", "synthv-omg"


@dataclasses.dataclass(frozen=True)
class RunPreset:
    """How a campaign trains: the config preset and overrides, the test-bed scale, Table 7's fine-tuning,
    and what the video tables set on top (`video_overrides`, on the video test-bed at `video_scale`)."""

    config_preset: str
    overrides: dict[str, Any]
    scale: float
    finetune_steps: int
    finetune_batch: int
    video_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    video_scale: float = 1.0
    #: A video table on its own test-bed: table → (scale, databases), e.g. a larger OMG-like set for Table III.
    video_sets: dict[str, tuple[float, tuple[str, ...]]] = dataclasses.field(default_factory=dict)
    #: FaceRNET's video-level runs: config fields on top, and the synthetic reaction videos per split.
    reaction_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    reaction_videos: dict[str, int] = dataclasses.field(default_factory=dict)
    #: The GAN's runs (Table IX): the GanConfig preset (`fbn_keras.gan.GAN_PRESETS`) and fields on top.
    gan_preset: str = "paper"
    gan_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How many times a FaceBehaviorNet whose trained head collapsed (`fbn_keras.collapse`) is trained again
    #: from a fresh draw (`Config.restart`); every attempt is recorded in the result.
    restarts: int = 0


#: Where a video network starts: the journal's start from VGG-FACE, a face network; ours from the
#: FaceBehaviorNet of Table 6's 'none' run, seed 0 (trained on the image test-bed, `_resolve_members`).
PRETRAINED = "@image"

#: Table IX's GAN at `small` (docs/FAITHFULNESS.md, "Table IX on the synthetic test-bed"): configuration 1
#: (32x32) at a quarter of the channels, batch 32, 1,200 steps; one update of G per update of D and a larger
#: learning rate of D than the paper's, so that D learns in about 3 minutes on 2 CPU cores (measured: the
#: joint row at 1,500 steps reached CCC-V/A 0.32/0.51 and AU F1 0.45 on synth-affwild2's test split).
GAN_SMALL: dict[str, Any] = dict(gan_config="1", width=0.25, batch=32, steps=1200, update_ratio=1,
                                 lr_discriminator=1e-3, lr_generator=2e-4, shuffle_buffer=2000, log_every=250,
                                 image_every=500, checkpoint_every=500)

#: `small`: the config preset `small` (96x96, width 1/8, 900 steps), on the full synthetic test-bed; the
#: video networks from `PRETRAINED`, windows 4 x 32, 400 steps at the paper's 1e-4 (docs/VIDEO.md).
#: `tiny`: a smoke setting for CI (32x32, 3 steps, a tenth of the test-bed): it checks the plumbing only.
#: Both: no validation during training (the test splits are scored at the end).
RUN_PRESETS: dict[str, RunPreset] = {
    "small": RunPreset("small", {"eval_every": 0}, scale=1.0, finetune_steps=300, finetune_batch=32,
                       video_overrides={"steps": 400, "learning_rate": 1e-4, "dropout": 0.0,
                                        "init_from": PRETRAINED},
                       video_scale=1.0,
                       # Table III scores utterances: the default OMG-like split has 5 / 1 / 1 videos, so ~5
                       # test utterances and ~40 labelled training ones. Eight times that (40 / 8 / 8 videos,
                       # ~30 test utterances), on its own test-bed of the OMG-like set alone.
                       video_sets={"video3": (8.0, (OMG,))},
                       # Ten times the generator's default split (24 / 4 / 6 videos): a Pearson rho over
                       # 6 test videos says little.
                       reaction_videos={"train": 240, "validation": 40, "test": 60},
                       gan_overrides=GAN_SMALL,
                       # At most 4 draws: with the 4-in-9 collapse rate first seen for single-task networks,
                       # all four collapse with probability (4/9)^4 < 0.04.
                       restarts=3),
    "tiny": RunPreset("tiny", {"eval_every": 0, "image_size": 32, "steps": 3, "checkpoint_every": 2},
                      scale=0.1, finetune_steps=2, finetune_batch=8, video_overrides={"seq_length": 4},
                      video_scale=0.2, reaction_overrides={"facernet_frames": 8},
                      reaction_videos={"train": 4, "validation": 2, "test": 3},
                      gan_preset="tiny"),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One planned run: its table, its label in that table, the config fields it sets, and its seed."""

    table: str
    label: str
    fields: tuple[tuple[str, Any], ...]
    seed: int
    finetune: bool = False     # Table 7: also fine-tune a compound head
    fuse: tuple[str, ...] = ()  # decision-level fusion (journal eq. 3) of these runs' labels: no training
    estimate: bool = False     # journal Table V: the relatedness estimator on the data, no training
    baseline: bool = False     # FaceRNET's tables: the training-set mean predictor, no training

    @property
    def video(self) -> bool:
        return self.table in VIDEO_TABLES

    @property
    def data_kind(self) -> str:
        """The test-bed the run trains on: "video" (the journal's video tables), "reaction" (a network whose
        registry kind is "video": FaceRNET past its REC stage), else "image"."""
        if self.video:
            return "video"
        from fbn_keras import registry

        fields = dict(self.fields)
        if "model" in fields and registry.kind(preset("paper", **fields)) == "video":
            return "reaction"
        return "image"

    @property
    def name(self) -> str:
        safe = self.label.replace("+", "_").replace(", ", "-").replace(" ", "_")
        return f"{safe}-s{self.seed}"

    @property
    def id(self) -> str:
        return f"{self.table}/{self.name}"

    @property
    def gan(self) -> bool:
        """A run of the semi-supervised GAN: its fields are GanConfig's, `config` gives a GanConfig."""
        return self.table in GAN_TABLES

    def config(self, run_preset: RunPreset) -> Config:
        """The run's Config (for a GAN run its GanConfig: `gan_config`)."""
        if self.gan:
            return self.gan_config(run_preset)
        video = (run_preset.video_overrides if self.video else
                 run_preset.reaction_overrides if self.data_kind == "reaction" else {})
        return preset(run_preset.config_preset,
                      **{**run_preset.overrides, **video, **dict(self.fields), "seed": self.seed})

    def gan_config(self, run_preset: RunPreset):
        """The GanConfig of a GAN run: the preset's GAN preset and overrides, the run's fields, its seed."""
        from fbn_keras.gan import gan_preset

        return gan_preset(run_preset.gan_preset, **{**run_preset.gan_overrides, **dict(self.fields), "seed": self.seed})


#: Model-level fusion starts from the trained members of the same seed: `init_from` names them by label
#: ("@cnn1rnn"); `execute` puts their run folders there (the result keeps the labels, no machine paths).
MEMBER = "@"


def _video_labels(table: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, config fields, extras: fuse / estimate) of every configuration of a video table."""
    if table == "video2":           # Table II, on Aff-Wild-like video with the context knobs, and the control
        return ([(m, {"model": m, "video_databases": AFFWILD}, {}) for m in ("cnn", "vgg-face-lstm", "affwildnet")]
                + [(f"{m}, control", {"model": m, "video_databases": AFFWILD_CONTROL}, {})
                   for m in ("cnn", "affwildnet")])
    if table == "video3":           # Table III, OMG-like utterances
        members = [(m, {"model": m, "video_databases": OMG}, {}) for m in ("cnn1rnn", "cnn3rnn")]
        fused = [(m, {"model": m, "video_databases": OMG, "learning_rate": 1e-4,
                      "init_from": f"{MEMBER}cnn1rnn,{MEMBER}cnn3rnn"}, {}) for m in ("fusion-fc", "fusion-rnn")]
        return members + [("decision-level fusion", {"model": "cnn1rnn", "video_databases": OMG},
                           {"fuse": ("cnn1rnn", "cnn3rnn")})] + fused
    if table == "video4":           # Table IV's Aff-Wild2 column
        return ([(m, {"model": m, "video_databases": AFFWILD2}, {}) for m in ("mt-vgg", "mt-vgg-gru")]
                + [("av-mt-vgg-gru", {"model": "av-mt-vgg-gru", "video_databases": AFFWILD2,   # Section VI-A:
                                      "init_from": f"visual_stream={MEMBER}mt-vgg-gru"}, {})])   # streams first
    if table == "video5":           # Table V's right half: the empirical relatedness estimator
        return [("estimator", {"model": "mt-vgg", "video_databases": AFFWILD2}, {"estimate": True})]
    if table == "attention":        # the generation paper's Tables X-XI
        return [(label, fields, {}) for label, fields in ATTENTION_ROWS.items()]
    raise ValueError(f"Unknown video table {table!r}; expected one of {VIDEO_TABLES}")


#: VGGFACE-GRU-attention's runs (generation paper, Section V-B, Tables X-XI) on the Aff-Wild2-like video (VA on
#: every frame, expressions on most videos, the context knobs), at Table XI's best learning rate 1e-3 on top of
#: the video settings (docs/FAITHFULNESS.md, "Tables X-XI on synthetic video"). First the paper's best
#: (eq. 6 with the CCC loss and cross entropy, alpha = beta = 0.5) and the same network without attention (ours);
#: then Table X's single-task weights, Table XI's expression losses and its MSE VA loss.
ATTENTION_LR = 1e-3
_ATTENTION = {"model": "vggface-gru-attention", "video_databases": AFFWILD2, "learning_rate": ATTENTION_LR}
ATTENTION_ROWS: dict[str, dict[str, Any]] = {
    "attention": _ATTENTION,
    "no attention": {**_ATTENTION, "attention": False},
    "only expressions (0, 1)": {**_ATTENTION, "attn_alpha": 0.0, "attn_beta": 1.0},
    "only VA (1, 0)": {**_ATTENTION, "attn_alpha": 1.0, "attn_beta": 0.0},
    "MSE after softmax": {**_ATTENTION, "attn_expr_loss": "mse_softmax"},
    "MSE before softmax": {**_ATTENTION, "attn_expr_loss": "mse_logits"},
    "MSE + CE": {**_ATTENTION, "attn_va_loss": "mse"},
}


#: FaceRNET's REC, the stage-"rec" run of the same table and seed that every FaceRNET run starts from.
REC = "rec"


def _other_labels(table: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, config fields, extras: baseline) of every configuration of MTANet's or FaceRNET's table."""
    if table == "mtanet":       # Table I: three backbones, stage 1's plain sum; then eq. 5 on SENet-50
        from fbn_keras.mtanet import STAGES

        # build_mtanet reads no init_from, so the eq. 5 run cannot fine-tune the stage-1 run as the paper's
        # stage 2 does (SGD 1e-4): it trains from scratch at stage 1's optimiser, the loss its only change.
        stage1 = {"model": "mtanet", **STAGES["stage1"]}
        return ([(bb, {**stage1, "mtanet_backbone": bb}, {}) for bb in ("se_resnet50", "resnext50", "resnext50_cbam")]
                + [("se_resnet50, uncertainty", {**stage1, "mtanet_backbone": "se_resnet50",
                                                 "mtanet_weighting": "uncertainty"}, {})])
    if table == "facernet":     # Tables 2-3: the REC (Section 3.1), then the RNN part on it (Section 3.3)
        from fbn_keras.facernet import STAGES

        rnn = {"model": "facernet", "facernet_stage": "rnn", "learning_rate": STAGES["rnn"].learning_rate,
               "init_from": f"{MEMBER}{REC}"}
        return ([(REC, {"model": "facernet", "facernet_stage": "rec"}, {}),
                 ("FaceRNET", rnn, {})]
                + [(f"features {f}", {**rnn, "facernet_features": f}, {}) for f in ("va", "expr", "au")]
                + [("no mask", {**rnn, "facernet_mask": "none"}, {}),
                   ("no GRU", {**rnn, "facernet_rnn": "none"}, {}),        # ours: what the GRU adds
                   ("mean predictor", {k: v for k, v in rnn.items() if k != "init_from"}, {"baseline": True})])
    if table == "gan":          # generation paper, Table IX; then the semi-supervised comparison (ours)
        return [(label, fields, {}) for label, fields in GAN_ROWS.items()]
    raise ValueError(f"Unknown table {table!r}; expected one of {OTHER_TABLES}")


#: Share of the AU set's training images that keep their labels in the semi-supervised rows of table "gan"
#: (`GanConfig.label_fraction`): few enough that D without the fake class is starved of labelled data on the
#: synthetic test-bed (docs/FAITHFULNESS.md, "Table IX on the synthetic test-bed").
GAN_SCARCE = 0.05
#: Table IX's rows (D's heads, its VA loss) at full labels, then D with and without the fake class (no G, no
#: adversarial term) when only `GAN_SCARCE` of the images are labelled. GanConfig fields.
GAN_ROWS: dict[str, dict[str, Any]] = {
    "only VA, CCC": {"d_outputs": "va+fake", "va_loss": "ccc"},
    "only VA, MSE": {"d_outputs": "va+fake", "va_loss": "mse"},
    "only AU": {"d_outputs": "au+fake"},
    "VA+AU, CCC+CE": {"d_outputs": "va+au+fake", "va_loss": "ccc"},
    "VA+AU, MSE+CE": {"d_outputs": "va+au+fake", "va_loss": "mse"},
    "VA+AU, scarce labels": {"d_outputs": "va+au+fake", "va_loss": "ccc", "label_fraction": GAN_SCARCE},
    "VA+AU, no fake class, scarce labels": {"d_outputs": "va+au", "va_loss": "ccc", "label_fraction": GAN_SCARCE},
}


#: Tables 3-5 compare single-task with multi-task training, which the paper starts from VGG-FACE. From
#: scratch with Keras' default (Glorot) initialisation at `small`, 8 of 10 draws of the single-task
#: expression network stayed at the class prior (and 1 of 5 of the AU one), against none of 24
#: multi-task networks: the comparison would measure trainability. With He-normal trunks (He et al.,
#: 2015) the single-task expression network learned at seeds 1 and 2, whose every Glorot draw had
#: collapsed, and at seed 3 (validation F1 0.84-0.94); all four networks of the tables use them, so the
#: tables stay like for like. (A single-task VA head can still diverge from them; the runner's collapse
#: probe restarts such a draw.)
TABLES3_5_INIT: dict[str, Any] = {"trunk_init": "he_normal"}


def _labels(table: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, config fields, fine-tune?) of every configuration a table needs."""
    if table == "table2":
        return [(bb, {"backbone": bb, "coupling": "none"}, False) for bb in BACKBONES]
    if table == "tables3_5":
        # All four networks start from He-normal trunks (`TABLES3_5_INIT`): with Keras' default, most
        # single-task expression networks never left the class prior (docs/FAITHFULNESS.md §10).
        return ([(f"single {t}", {"tasks": t, "coupling": "none", **TABLES3_5_INIT}, False)
                 for t in ("va", "expr", "au")]
                + [("multi-task", {"coupling": "none", **TABLES3_5_INIT}, False)])
    if table == "table6":
        return [(c, {"coupling": c}, False) for c in COUPLINGS]
    if table == "table7":
        return [(c, {"coupling": c}, True) for c in ("none", "coann+soft+dm")]
    if table == "control":
        return [("none", {"coupling": "none"}, False),
                ("soft+dm, cognitive", {"coupling": "soft+dm", "relation": "cognitive"}, False),
                ("soft+dm, affwild2", {"coupling": "soft+dm", "relation": "affwild2"}, False)]
    raise ValueError(f"Unknown table {table!r}; expected one of {TABLES}")


def plan(seeds: Sequence[int] = (0, 1, 2), tables: Optional[Sequence[str]] = None) -> list[Run]:
    """Every run of `tables` (default all) for each seed, in table order then seed order (the estimator of
    Table V has no seed: seed 0 only)."""
    runs = []
    for t in tables or TABLES:
        for seed in seeds:
            if t in VIDEO_TABLES:
                runs += [Run(t, label, tuple(sorted(fields.items())), seed, fuse=tuple(extra.get("fuse", ())),
                             estimate=bool(extra.get("estimate")))
                         for label, fields, extra in _video_labels(t) if seed == 0 or not extra.get("estimate")]
            elif t in OTHER_TABLES:
                runs += [Run(t, label, tuple(sorted(fields.items())), seed, baseline=bool(extra.get("baseline")))
                         for label, fields, extra in _other_labels(t)]
            else:
                runs += [Run(t, label, tuple(sorted(fields.items())), seed, ft) for label, fields, ft in _labels(t)]
    return runs


# === Provenance ===

def git_state(paths: Sequence[str] = CODE_PATHS, repo: Path = REPO) -> dict[str, Any]:
    """{"commit": HEAD, "code_commit": last commit touching `paths`, "dirty": uncommitted changes there}."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "code_commit": git("log", "-1", "--format=%H", "--", *paths) or None,
            "dirty": bool(git("status", "--porcelain", "--", *paths))}


def data_fingerprint(data_dir: str | Path) -> dict[str, Any]:
    """Records per database and split from the folder's manifest, the synthetic generator version, a digest."""
    from fbn_keras import testbed
    from fbn_keras.manifest import Manifest
    from fbn_keras.records import synthetic_video
    from fbn_keras.synthetic import intensity

    m = Manifest.load(data_dir)
    counts = {db: {split: int(entry.get("records", 0)) for split, entry in sorted(m.splits(db).items())}
              for db in m.databases()}
    generator = (testbed.VERSION if m.build_complete(testbed.BUILD) else
                 f"video-{synthetic_video.VERSION}" if m.build_complete(synthetic_video.BUILD) else
                 intensity.BUILD if m.build_complete(intensity.BUILD) else None)
    body = {"counts": counts, "generator": generator}
    body["digest"] = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return body


def host_info() -> dict[str, Any]:
    """The machine in a few words: OS, Python, TensorFlow, Keras, CPU count and accelerators."""
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "cpus": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def _field_defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(Config)}


#: Fields FaceBehaviorNet never reads (the other networks' own): they do not name its run folders.
_FBN_UNREAD: frozenset[str] = frozenset(
    SEQUENCE_FIELDS + ("video_batch", "freeze_cnn")
    + tuple(f.name for f in dataclasses.fields(Config) if f.name.startswith(("facernet_", "attn", "attention",
                                                                                 "mtanet_"))))


def _non_default(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of `config` that differ from `Config`'s defaults: a field added later with a default that
    keeps the old behaviour changes neither a run's folder nor the status of its committed result."""
    defaults = _field_defaults()
    unread = _FBN_UNREAD if config.get("model", "facebehaviornet") == "facebehaviornet" else ()
    return {k: v for k, v in config.items() if k not in unread and (k not in defaults or v != defaults[k])}


def run_folder(runs_dir: Path, config: Config, fingerprint: dict[str, Any]) -> Path:
    """The run folder of (config, data): shared by every table that needs this network."""
    blob = json.dumps({"config": _non_default(config.to_dict()), "data": fingerprint["digest"]}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:12]
    if config.model != "facebehaviornet":
        return runs_dir / f"{config.model}-{digest}"
    return runs_dir / f"{config.backbone}-{config.tasks.replace('+', '')}-{config.coupling.replace('+', '_')}-{digest}"


def gan_run_folder(runs_dir: Path, config, fingerprint: dict[str, Any]) -> Path:
    """The run folder of a GAN run (GanConfig, data): `gan-<heads>-<digest of the fields that differ from
    GanConfig's defaults and of the data>`, as `run_folder` names the others."""
    from fbn_keras.gan import GanConfig

    defaults = {f.name: f.default for f in dataclasses.fields(GanConfig)}
    fields = {k: v for k, v in config.to_dict().items() if k not in defaults or v != defaults[k]}
    blob = json.dumps({"gan": fields, "data": fingerprint["digest"]}, sort_keys=True)
    return runs_dir / f"gan-{config.d_outputs.replace('+', '_')}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def gan_run_dir(label: str = "VA+AU, CCC+CE", seed: int = 0, preset_name: str = "small",
                runs_dir: Optional[Path] = None, data_dir: Optional[Path] = None) -> Optional[Path]:
    """The run folder of table "gan"'s run `label`, `seed` at `preset_name` on `data_dir` (default: the preset's
    test-bed) when it holds a trained G (the notebook's grid of G(z)); None when it was not trained here or
    its data is not built."""
    from fbn_keras import testbed
    from fbn_keras.train_gan import GENERATOR_FILE

    run_preset = RUN_PRESETS[preset_name]
    run = next((r for r in plan([seed], ["gan"]) if r.label == label), None)
    data_dir = Path(data_dir) if data_dir is not None else testbed.testbed_dir(scale=run_preset.scale)
    if run is None or not (data_dir / "manifest.json").exists():
        return None
    runs_dir = Path(runs_dir) if runs_dir else testbed.cache_root() / "experiments"
    out = gan_run_folder(runs_dir, run.config(run_preset), data_fingerprint(data_dir))
    return out if (out / GENERATOR_FILE).exists() else None


# === Result files ===

def result_path(results_dir: Path, run: Run) -> Path:
    return Path(results_dir) / run.table / f"{run.name}.json"


def write_json(path: Path, body: dict) -> Path:
    """Write atomically: a temporary file beside `path`, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_results(results_dir: str | Path, table: Optional[str] = None) -> list[dict]:
    """Every result JSON under `results_dir` (of one table when given), sorted by path."""
    root = Path(results_dir)
    pattern = f"{table}/*.json" if table else "*/*.json"
    return [json.loads(p.read_text()) for p in sorted(root.glob(pattern))]


def status(run: Run, run_preset: RunPreset, results_dir: Path, fingerprint: Optional[dict] = None) -> str:
    """'done', 'missing' or 'stale: <why>' (config, or data when `fingerprint` is known, differs)."""
    path = result_path(results_dir, run)
    if not path.exists():
        return "missing"
    found = json.loads(path.read_text())
    want = run.config(run_preset).to_dict()
    # A field the result predates is not compared: a field is added with a default (and preset values)
    # that keep the networks trained before it unchanged (the sequence models' fields, say).
    had = found.get("config", {})
    diff = sorted(k for k in set(want) | set(had)
                  if k in had and k not in RUNNER_FIELDS and want.get(k) != had.get(k))
    if diff:
        return f"stale: config differs in {', '.join(diff)}"
    if fingerprint is not None and found.get("data", {}).get("digest") != fingerprint["digest"]:
        return "stale: data fingerprint differs"
    return "done"


# === Running ===

def _train_or_load(run: Run, config: Config, data_dir: Path, runs_dir: Path, fingerprint: dict[str, Any],
                   member_dirs: Optional[dict[str, Path]] = None):
    """The run folder of `config` and its model: loaded when trained, else trained (resuming a killed run)."""
    from fbn_keras import runs, train
    from fbn_keras.manifest import locked

    out = run_folder(runs_dir, config, fingerprint)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with locked(runs_dir, f".{out.name}.lock"):     # two runners wanting one network: one trains it
        if (out / train.MODEL_FILE).exists():
            return out, runs.load_run(out / train.MODEL_FILE)[0]
        t0 = time.perf_counter()
        prior = json.loads((out / TIMING_FILE).read_text())["train_s"] if (out / TIMING_FILE).exists() else 0.0
        log.info("%s: training in %s", run.id, out)
        trained = dataclasses.replace(config, init_from=_resolve_members(config.init_from, member_dirs or {}))
        model = train.train(trained, data_dir, out, resume=True, verbose=True).model
        write_json(out / TIMING_FILE, {"train_s": prior + time.perf_counter() - t0})
        return out, model


def _train_checked(run: Run, config: Config, data_dir: Path, runs_dir: Path, fingerprint: dict[str, Any],
                   run_preset: RunPreset, member_dirs: Optional[dict[str, Path]] = None):
    """`_train_or_load`, then, for a FaceBehaviorNet on images, the collapse probe (`fbn_keras.collapse`): a
    network with a constant trained head is trained again from a fresh draw (`Config.restart` 1, 2, ...),
    at most `run_preset.restarts` times. Returns (folder, model, config of that network, attempts): one
    {"restart", "collapsed", "train_s"} per network trained or loaded, [] when the probe does not apply
    (another network, or a preset that allows no restart: the tiny smoke runs, whose 3-step networks
    always give one class, skip its few seconds per network)."""
    from fbn_keras import collapse

    if config.model != "facebehaviornet" or run.data_kind != "image" or run_preset.restarts < 1:
        return (*_train_or_load(run, config, data_dir, runs_dir, fingerprint, member_dirs), config, [])
    attempts: list[dict[str, Any]] = []
    for restart in range(run_preset.restarts + 1):
        drawn = dataclasses.replace(config, restart=restart)
        out, model = _train_or_load(run, drawn, data_dir, runs_dir, fingerprint, member_dirs)
        dead = collapse.collapsed_heads(model, data_dir, sorted(drawn.task_set), drawn.au_threshold)
        attempts.append({"restart": restart, "collapsed": dead, "train_s": _train_s(out)})
        if not dead:
            break
        log.warning("%s: draw %d collapsed (%s)%s", run.id, restart, ", ".join(dead),
                    "; training a fresh draw" if restart < run_preset.restarts else "; no restarts left, kept")
    return out, model, drawn, attempts


def _train_or_load_gan(run: Run, config, data_dir: Path, runs_dir: Path, fingerprint: dict[str, Any]):
    """The run folder of a GAN run and its D: loaded when trained, else trained by `fbn_keras.train_gan`
    (resuming a killed run)."""
    from fbn_keras import gan_evaluate, train_gan
    from fbn_keras.manifest import locked

    out = gan_run_folder(runs_dir, config, fingerprint)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with locked(runs_dir, f".{out.name}.lock"):
        if (out / train_gan.DISCRIMINATOR_FILE).exists():
            return out, gan_evaluate.load_discriminator(out)[0]
        t0 = time.perf_counter()
        prior = _train_s(out) or 0.0
        log.info("%s: training in %s", run.id, out)
        discriminator = train_gan.train_gan(config, data_dir, out, resume=True, verbose=True).discriminator
        write_json(out / TIMING_FILE, {"train_s": prior + time.perf_counter() - t0})
        return out, discriminator


def pretrained_image_network(runs_dir: Path, preset_name: str) -> Path:
    """The run folder of `PRETRAINED`: Table 6's FaceBehaviorNet without coupling, seed 0, on the image
    test-bed; trained first when it is not there."""
    run_preset = RUN_PRESETS[preset_name]
    image_run = next(r for r in plan([0], ["table6"]) if r.label == "none")
    folder = data_for(image_run, run_preset)
    return _train_checked(image_run, image_run.config(run_preset), folder, runs_dir, data_fingerprint(folder),
                          run_preset)[0]


def _references(init_from: str) -> list[tuple[str, str]]:
    """[(scope or "", label)] of the '@label' parts of `init_from` ('@cnn1rnn', 'visual_stream=@mt-vgg-gru')."""
    found = []
    for part in filter(None, (p.strip() for p in init_from.split(","))):
        scope, _, ref = part.rpartition("=")
        if ref.startswith(MEMBER):
            found.append((scope, ref[len(MEMBER):]))
    return found


def _resolve_members(init_from: str, member_dirs: dict[str, Path]) -> str:
    """'@cnn1rnn,@cnn3rnn' → the members' run folders ('cnn1rnn=path', so each loads into its sub-model);
    'visual_stream=@mt-vgg-gru' → that run's folder into that sub-model; '@image' → the pretrained image
    network's folder."""
    refs = _references(init_from)
    if not refs:
        return init_from
    missing = [label for _, label in refs if label not in member_dirs]
    if missing:
        raise ValueError(f"init_from names runs {missing} that are not trained yet (run their table first)")
    parts = []
    for scope, label in refs:       # a member loads into the sub-model of its name unless a scope is given
        target = scope or (label if label != PRETRAINED[len(MEMBER):] else "")
        parts.append(f"{target}={member_dirs[label]}" if target else str(member_dirs[label]))
    return ",".join(parts)


def _train_s(out: Path) -> Optional[float]:
    return json.loads((out / TIMING_FILE).read_text())["train_s"] if (out / TIMING_FILE).exists() else None


def _members(run: Run, run_preset: RunPreset, names: Sequence[str], data_dir: Path, runs_dir: Path,
             fingerprint: dict[str, Any]) -> dict[str, tuple[Path, Any, Config]]:
    """The trained runs of `names` (labels of the same table and seed): {label: (folder, model, config)}."""
    found = {}
    for other in plan([run.seed], [run.table]):
        if other.label in names:
            config = other.config(run_preset)
            folder, print_ = data_dir, fingerprint
            if other.data_kind != run.data_kind:      # FaceRNET's REC: trained on the image test-bed
                folder = data_for(other, run_preset)
                print_ = data_fingerprint(folder)
            out, model, config, _ = _train_checked(other, config, folder, runs_dir, print_, run_preset)
            found[other.label] = (out, model, config)
    return found


def _decision_fusion(members: dict[str, tuple[Path, Any, Config]], data_dir: Path) -> dict:
    """Journal eq. 3: the members' per-frame VA weighted by their validation CCC, scored on the test split."""
    from fbn_keras import evaluate_sequences as es
    from fbn_keras import fusion

    validation = {name: es.evaluate_sequence_model(model, data_dir, "validation", config,
                                                   databases=config.video_databases.split(","))
                  for name, (_, model, config) in members.items()}
    test = {name: es.predict_sequences(model, data_dir, "test", config, config.video_databases.split(","))
            for name, (_, model, config) in members.items()}
    fused: dict = {}
    weights_by_db = {}
    first = next(iter(test.values()))
    for db, groups in first.items():
        weights = fusion.fusion_weights({name: validation[name][db] for name in members})
        for d in (0, 1):    # eq. 3 is undefined when no member is positive on a dimension: their plain mean
            if all(w[d] <= 0 for w in weights.values()):
                weights = {n: tuple(1.0 if i == d else x for i, x in enumerate(w)) for n, w in weights.items()}
        weights_by_db[db] = {n: list(map(float, w)) for n, w in weights.items()}
        fused[db] = {group: {**entry, "va": fusion.decision_fusion(
            {name: test[name][db][group]["va"] for name in members}, weights, clip_nonpositive=True)}
            for group, entry in groups.items()}
    threshold = next(iter(members.values()))[2].au_threshold
    return {"metrics": es.score_sequences(fused, threshold), "weights": weights_by_db,
            "validation": validation}


def _relatedness(data_dir: Path, databases: Sequence[str]) -> dict:
    """Journal Table V's estimator on the training frames with expression and AU labels, beside the relation
    the synthetic generator draws from (the main paper's Table 1, with p(au | emotion) = its weight w)."""
    from fbn_keras import relatedness, taxonomy

    expr, au, mask = relatedness.read_labels(data_dir, databases, ("train",))
    weights = relatedness.relation_weights(*relatedness.relation_counts(expr, au, mask))
    truth = taxonomy.relation_weights("cognitive")
    related = truth > 0
    related[taxonomy.expression_index("neutral")] = False
    annotated = np.isfinite(weights) & related
    errors = np.abs(weights - truth)[annotated]
    table = relatedness.table_from_weights(weights)
    kept = {(e, au) for e, row in table.items() for au in row.observational}
    wanted = {(taxonomy.EXPRESSIONS[i], taxonomy.AUS[k]) for i, k in zip(*np.nonzero(annotated))}
    metrics = {"mean_abs_error": float(errors.mean()) if errors.size else math.nan,
               "max_abs_error": float(errors.max()) if errors.size else math.nan,
               "pairs_compared": int(errors.size), "frames": int(len(expr)),
               "recall_of_related": len(kept & wanted) / max(1, len(wanted)),
               "precision_of_kept": len(kept & wanted) / max(1, len(kept))}
    return {"metrics": metrics,
            "table": {e: {str(au): round(w, 4) for au, w in row.observational.items()} for e, row in table.items()},
            "weights": [[None if not np.isfinite(w) else round(float(w), 4) for w in row] for row in weights]}


def execute(run: Run, run_preset: RunPreset, data_dir: Path, runs_dir: Path, results_dir: Path,
            fingerprint: dict[str, Any], preset_name: str) -> Path:
    """Train (or resume, or reuse) the run's network, score it, write its result JSON; returns the JSON path.

    Decision-level fusion trains nothing (it fuses its members' predictions); model-level fusion starts
    from its members; the estimator of Table V reads labels only."""
    from fbn_keras import evaluate, finetune_compound, registry

    config = run.config(run_preset)
    t0 = time.perf_counter()
    finetuned, extra, train_s, attempts = {}, {}, None, None
    if run.estimate:
        found = _relatedness(data_dir, config.video_databases.split(","))
        metrics, extra = {"estimator": found["metrics"]}, {"table": found["table"], "weights": found["weights"]}
    elif run.baseline:
        metrics = mean_predictor(data_dir, config)
    elif run.gan:      # Table IX: D scored on the test splits (`fbn_keras.gan_evaluate`)
        from fbn_keras import gan_evaluate

        out, discriminator = _train_or_load_gan(run, config, data_dir, runs_dir, fingerprint)
        train_s, t0 = _train_s(out), time.perf_counter()
        metrics = gan_evaluate.evaluate_discriminator(discriminator, data_dir, "test", config)
    elif run.fuse:
        members = _members(run, run_preset, run.fuse, data_dir, runs_dir, fingerprint)
        found = _decision_fusion(members, data_dir)
        metrics, extra = found["metrics"], {"weights": found["weights"]}
        train_s = sum(_train_s(folder) or 0.0 for folder, _, _ in members.values())
    else:
        labels = [label for _, label in _references(config.init_from)]
        member_dirs = {n: v[0] for n, v in _members(run, run_preset, [n for n in labels if n != PRETRAINED[len(MEMBER):]],
                                                    data_dir, runs_dir, fingerprint).items()}
        if PRETRAINED[len(MEMBER):] in labels:
            member_dirs[PRETRAINED[len(MEMBER):]] = pretrained_image_network(runs_dir, preset_name)
        out, model, config, attempts = _train_checked(run, config, data_dir, runs_dir, fingerprint, run_preset,
                                                      member_dirs)
        # Compute spent on every draw: a collapsed one cost as much as the one kept.
        train_s = sum(a["train_s"] or 0.0 for a in attempts) if attempts else _train_s(out)
        t0 = time.perf_counter()
        if run.video:
            from fbn_keras.evaluate_sequences import evaluate_sequence_model
            metrics = evaluate_sequence_model(model, data_dir, "test", config,
                                              databases=config.video_databases.split(","))
        else:
            metrics = registry.spec(config.model).evaluate(model, data_dir, "test", config) \
                if config.model != "facebehaviornet" else \
                evaluate.evaluate_model(model, data_dir, "test", au_threshold=config.au_threshold)
        if run.finetune:
            for database in finetune_compound.compound_databases(data_dir):
                result = finetune_compound.finetune(
                    model, data_dir, database, steps=run_preset.finetune_steps,
                    batch_size=run_preset.finetune_batch, learning_rate=config.learning_rate, seed=run.seed,
                    test_split="test")
                finetuned[database] = result.metrics
    body = {"format": RESULT_FORMAT, "table": run.table, "run": run.name, "label": run.label, "seed": run.seed,
            "preset": preset_name, "config": config.to_dict(), "git": git_state(), "data": fingerprint,
            "steps": config.steps if not (run.estimate or run.baseline) else 0,
            "finetune_steps": run_preset.finetune_steps if run.finetune else None,
            "wall_s": {"train": train_s, "evaluate": time.perf_counter() - t0}, "host": host_info(),
            "metrics": metrics, "finetuned": finetuned or None, **extra,
            **({"attempts": attempts} if attempts else {}),
            "command": f"python -m fbn_keras.experiments run --preset {preset_name} --table {run.table} "
                       f"--seeds {run.seed}"}
    return write_json(result_path(results_dir, run), body)


def data_for(run: Run, run_preset: RunPreset, data_dir: Optional[Path] = None) -> Path:
    """The data folder of a run: `data_dir` when given, else the synthetic test-bed of its kind and scale."""
    if data_dir is not None:
        return Path(data_dir)
    if run.data_kind == "reaction":
        return reaction_testbed(run_preset.reaction_videos)
    if run.video:
        from fbn_keras.records.synthetic_video import ensure_video_testbed
        scale, databases = video_testbed(run_preset, run.table)
        return ensure_video_testbed(scale=scale, databases=databases)
    from fbn_keras import testbed
    return testbed.ensure_synthetic_testbed(scale=run_preset.scale)


def video_testbed(run_preset: RunPreset, table: str) -> tuple[float, Optional[tuple[str, ...]]]:
    """(scale, databases) of the synthetic video test-bed a video table reads: its own (`video_sets`), or
    the shared one at `video_scale` with every database (None)."""
    return run_preset.video_sets.get(table, (run_preset.video_scale, None))


def data_key(run: Run, run_preset: RunPreset) -> str:
    """Which test-bed a run reads: its data kind, or the video table that has its own (`video_sets`)."""
    return run.table if run.video and run.table in run_preset.video_sets else run.data_kind


def reaction_testbed_dir(videos: Optional[dict[str, int]] = None, seed: int = 0) -> Path:
    """Where the synthetic reaction videos of these split sizes live (built or not); the generator's default
    split is the network's own default data (`registry.spec("facernet").default_data`)."""
    from fbn_keras import testbed

    counts = "-".join(f"{k}{v}" for k, v in sorted((videos or {}).items())) or "default"
    return testbed.cache_root() / f"synthetic-intensity-{counts}-seed{int(seed)}"


def reaction_testbed(videos: Optional[dict[str, int]] = None, seed: int = 0) -> Path:
    """The synthetic reaction videos (`fbn_keras.synthetic.intensity`) with `videos` per split, built once."""
    from fbn_keras import registry

    if not videos:
        return registry.spec("facernet").default_data()
    return registry.ensure_reaction_testbed(reaction_testbed_dir(videos, seed), videos, seed)


def mean_predictor(data_dir: Path, config: Config) -> dict:
    """FaceRNET's baseline, no training: every test video gets the training videos' mean intensity of each
    reaction. Its Pearson rho is 0 by construction (constant predictions; `registry.score_intensities`);
    its mean squared error shows how far the mean alone gets ("mse_<reaction>", "mse_mean")."""
    from fbn_keras import facernet, registry, taxonomy

    def labels(name: str, split: str) -> np.ndarray:
        found = [batch["intensity"].numpy()[batch["intensity_mask"].numpy() > 0]
                 for _, batch in facernet.make_video_dataset(data_dir, [name], split, frames=1, batch_size=16,
                                                             image_size=config.image_size, training=False)]
        return np.concatenate(found) if found else np.zeros((0, taxonomy.NUM_REACTIONS))

    results = {}
    for name in registry.intensity_databases(data_dir, "test"):
        train, test = labels(name, "train"), labels(name, "test")
        if not len(train) or not len(test):
            continue
        preds = np.broadcast_to(train.mean(axis=0), test.shape)
        mse = ((test - preds) ** 2).mean(axis=0)
        results[name] = {**registry.score_intensities(test, preds),
                         **{f"mse_{r}": float(v) for r, v in zip(taxonomy.REACTIONS, mse)},
                         "mse_mean": float(mse.mean()), "n_videos": int(len(test))}
    return results


def run_all(runs: Sequence[Run], preset_name: str, data_dir: Optional[Path] = None,
            runs_dir: Optional[Path] = None, results_dir: Path = RESULTS_DIR, max_runs: Optional[int] = None,
            replace_stale: bool = False, video_data_dir: Optional[Path] = None,
            reaction_data_dir: Optional[Path] = None) -> list[Path]:
    """Execute the runs of `runs` that are missing (and stale ones with `replace_stale`), at most `max_runs`.

    Image runs read `data_dir`, the journal's video tables `video_data_dir` and FaceRNET's video-level runs
    `reaction_data_dir` (default: the synthetic test-beds)."""
    from fbn_keras import testbed

    run_preset = RUN_PRESETS[preset_name]
    runs_dir = Path(runs_dir) if runs_dir else testbed.cache_root() / "experiments"
    folders: dict[str, tuple[Path, dict]] = {}
    given = {"image": data_dir, "video": video_data_dir, "reaction": reaction_data_dir}
    written: list[Path] = []
    for run in runs:
        if max_runs is not None and len(written) >= max_runs:
            break
        key = data_key(run, run_preset)
        if key not in folders:
            folder = data_for(run, run_preset, given[run.data_kind])
            folders[key] = (folder, data_fingerprint(folder))
        folder, fingerprint = folders[key]
        state = status(run, run_preset, results_dir, fingerprint)
        if state == "done" or (state.startswith("stale") and not replace_stale):
            if state != "done":
                log.warning("%s is %s; kept (pass --replace-stale to rerun it)", run.id, state)
            continue
        t0 = time.perf_counter()
        written.append(execute(run, run_preset, folder, runs_dir, results_dir, fingerprint, preset_name))
        log.info("%s: done in %.0f s -> %s", run.id, time.perf_counter() - t0, written[-1])
    return written


def listing(runs: Sequence[Run], preset_name: str, results_dir: Path = RESULTS_DIR,
            data_dir: Optional[Path] = None) -> str:
    """The plan as text: one line per run with its status, then the counts."""
    fingerprint = data_fingerprint(data_dir) if data_dir else None
    lines, counts = [], {"done": 0, "missing": 0, "stale": 0}
    for run in runs:       # `data_dir` is the image test-bed: the other kinds' data are not compared
        state = status(run, RUN_PRESETS[preset_name], results_dir, fingerprint if run.data_kind == "image" else None)
        counts[state.split(":")[0]] += 1
        lines.append(f"{run.id:<40} {state}")
    lines.append(f"{len(runs)} runs: {counts['done']} done, {counts['missing']} missing, {counts['stale']} stale"
                 + ("" if fingerprint else " (data fingerprint not checked: pass --data-dir)"))
    return "\n".join(lines)
