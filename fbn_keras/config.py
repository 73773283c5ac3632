"""Typed configuration of a FaceBehaviorNet run, with named presets.

An experiment is data: pick a preset (`paper`, `small`, `tiny`) and override
fields from the command line (`--batch-va 32`, `--coupling soft+dm`). The
resolved config is saved beside every run as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import typing
from pathlib import Path
from typing import Any, Callable, Optional

#: The coupling configurations: main paper Table 6's seven rows, then co-annotation + distr-matching,
#: which Section 7.4's text lists (its item vi) but the table has no row for.
COUPLINGS: tuple[str, ...] = ("none", "coann", "soft", "dm", "coann+soft", "coann+soft+dm", "soft+dm", "coann+dm")
BACKBONES: tuple[str, ...] = ("vgg_face", "resnet50", "densenet121")
RELATIONS: tuple[str, ...] = ("cognitive", "affwild2")
TASKS: tuple[str, ...] = ("va", "au", "expr")
#: `au_pos_weight` modes → the power on negatives/positives (`losses.balanced_au_pos_weight`); none: plain BCE.
AU_POS_WEIGHT_POWERS: dict[str, Optional[float]] = {"none": None, "balanced": 1.0, "sqrt_balanced": 0.5}
AU_POS_WEIGHTS: tuple[str, ...] = tuple(AU_POS_WEIGHT_POWERS)
#: How AUs a database does not annotate enter the soft co-annotation score (docs/FAITHFULNESS.md).
SOFT_UNANNOTATED: tuple[str, ...] = ("ignore", "absent")
#: AU→expression co-annotation when several emotions qualify equally: no label, or the lowest index.
COANN_ON_TIE: tuple[str, ...] = ("drop", "first")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "exp_after")
#: How the VGG-FACE trunk's convolutions start when no pretrained weights are loaded: Keras' default, or
#: He et al. (2015)'s normal, which keeps a 13-layer plain ReLU trunk's signal alive from scratch.
TRUNK_INITS: tuple[str, ...] = ("glorot_uniform", "he_normal")
#: Optimizers the trainer builds: Adam (ours for FaceBehaviorNet: the paper names none), AdamW and plain SGD.
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
#: Forms of eq. 3 (`losses.DM_FORMS`): as printed, or footnote 5's per-AU Bernoulli KL.
DM_FORMS: tuple[str, ...] = ("positive", "bernoulli")
#: How eq. 3 reduces over the AUs (`losses.DM_REDUCTIONS`): the mean over the AUs the relation covers
#: (ours, L_AU's per-AU scale), or the sum as printed.
DM_REDUCTIONS: tuple[str, ...] = ("mean", "sum")
#: The networks `python -m fbn_keras.train --model NAME` builds (`fbn_keras.registry` maps each to its
#: builder, loss, input and evaluation): FaceBehaviorNet, then the journal's video networks (Sections V, VI-A).
MODELS: tuple[str, ...] = ("facebehaviornet", "affwildnet", "cnn", "vgg-face-lstm", "cnn1rnn", "cnn3rnn",
                           "fusion-rnn", "fusion-fc", "mt-vgg", "mt-vgg-gru", "av-mt-vgg-gru",
                           "facernet", "vggface-gru-attention", "mtanet")
#: Fields only the sequence networks read: they do not name a FaceBehaviorNet run (fbn_keras.campaign).
SEQUENCE_FIELDS: tuple[str, ...] = ("seq_length", "seq_batch", "video_databases", "landmarks", "rnn_units",
                                    "rnn_dropout", "va_activation", "tap_pool", "mt_aus", "au_reduction",
                                    "ccc_scope", "eval_stride", "split_at_gap", "init_from", "freeze_init")
VA_ACTIVATIONS: tuple[str, ...] = ("linear", "tanh")
#: How the pool2 / pool5 taps of the multi-RNN nets enter their GRUs: flattened (the paper) or averaged.
TAP_POOLS: tuple[str, ...] = ("flatten", "gap")
#: The AUs of the video multi-task nets: the journal's 8 (1, 2, 4, 6, 12, 15, 20, 25) or the later
#: Aff-Wild2 release's 12 (no AU20).
MT_AUS: tuple[str, ...] = ("paper8", "release")
AU_REDUCTIONS: tuple[str, ...] = ("sum", "mean")
#: Scope of the CCC in the sequence losses: all masked frames of the global batch, or the mean of per-sequence CCCs.
CCC_SCOPES: tuple[str, ...] = ("batch", "sequence")
#: FaceRNET's per-frame representations fed to its GRU (FaceRNET paper, Table 2's subsets of the REC's tasks).
FACERNET_FEATURES: tuple[str, ...] = ("va+expr+au", "va", "expr", "au", "va+expr", "va+au", "expr+au")
#: FaceRNET's Mask layer (Section 3.2): zeroing plus routing, zeroing only, or neither (Table 3's ablation).
FACERNET_MASKS: tuple[str, ...] = ("route", "zero", "none")
#: FaceRNET's temporal part: the paper's GRU, or none (our ablation: the per-frame representations go straight
#: to the Mask layer and the dense layer, so nothing models time beyond the dense layer's frame-wise weights).
FACERNET_RNNS: tuple[str, ...] = ("gru", "none")
#: FaceRNET's training stages (Sections 3.1, 3.3; `facernet.STAGES`): the REC alone, the RNN part on a frozen
#: REC, end to end.
FACERNET_STAGES: tuple[str, ...] = ("rec", "rnn", "end_to_end")
#: VGGFACE-GRU-attention's eq. 6 options (multi-task learning and generation paper, Section IV-C):
#: L'_VA the CCC loss (eq. 4) or MSE; L_expr cross entropy, or MSE on the softmax output or on the logits.
ATTN_VA_LOSSES: tuple[str, ...] = ("ccc", "mse")
ATTN_EXPR_LOSSES: tuple[str, ...] = ("ce", "mse_softmax", "mse_logits")
#: MTANet's backbones (Zhang & Gu, ABAW 2020, Table I): SENet-50 (the paper's), ResNeXt-50, ResNeXt-50 + CBAM.
MTANET_BACKBONES: tuple[str, ...] = ("se_resnet50", "resnext50", "resnext50_cbam")
#: MTANet's total loss (Section III-B): the plain sum (stage 1) or eq. 5's uncertainty weighting (stage 2).
MTANET_WEIGHTINGS: tuple[str, ...] = ("sum", "uncertainty")


@dataclasses.dataclass
class Config:
    """Everything a training or evaluation run needs besides the data (main paper Sections 3, 5, 6)."""

    preset: str = "paper"
    # --- model ---
    model: str = "facebehaviornet"     # the network (MODELS); the rest of this block applies to all
    backbone: str = "vgg_face"
    trunk_init: str = "glorot_uniform"  # vgg_face from scratch only (ours; the paper starts from VGG-FACE)
    width: float = 1.0                 # multiplier on conv channels (1.0 = VGG-16's 64…512)
    fc_units: int = 4096               # width of the two FC layers after the trunk
    dropout: float = 0.5
    image_size: int = 96
    vgg_face_weights: Optional[str] = None
    vgg_face_input: Optional[bool] = None  # VGG-FACE's input scale layer (None: exactly when weights are given)
    # --- sequence models (journal Sections V, VI-A; docs/VIDEO.md) ---
    seq_length: Optional[int] = None   # frames per window T (unset: the model's paper value, 80 or 90)
    seq_batch: Optional[int] = None    # windows per step B (unset: the model's paper value, 4 or 10)
    video_databases: str = ""          # ','-joined sequence databases to train on ("": every one labelling
                                       # the model's tasks)
    landmarks: bool = True             # feed the 68 landmarks to the models that take them (off: ablation)
    rnn_units: int = 128               # units of each GRU / LSTM layer
    rnn_dropout: float = 0.2           # dropout on the first GRU layer's outputs: "0.8 probability" read as
                                       # TF1's keep probability (set 0.8 for the literal reading)
    va_activation: str = "linear"      # VA output: linear (the paper does not name one) or tanh
    tap_pool: str = "flatten"          # pool2 / pool5 taps of the multi-RNN nets: flattened or averaged
    mt_aus: str = "paper8"             # AUs of the video multi-task nets
    au_reduction: str = "sum"          # video multi-task AU loss over AUs: eq. 5's sum, or the mean
    ccc_scope: str = "batch"           # sequence CCC loss over all masked frames of the batch, or per sequence
    eval_stride: Optional[int] = None  # test tiles overlap by T - stride, averaged (unset: stride T)
    split_at_gap: Optional[int] = None  # a run of this many missing frames starts a new window sequence
    init_from: str = ""                # ','-joined model.keras files or run folders whose weights load by name
    freeze_init: bool = False          # keep the layers loaded by init_from frozen
    # --- FaceRNET (Kollias et al., ABAW5; docs/FAITHFULNESS.md, "FaceRNET") ---
    facernet_features: str = "va+expr+au"  # REC representations fed to the GRU (Table 2; all three: the paper's)
    facernet_frames: int = 480         # frames every video is padded to (Section 3.3, t = 480)
    facernet_mask: str = "route"       # Mask layer with routing (Section 3.2), "zero": zeroing only, "none": neither
    facernet_rnn: str = "gru"          # the GRU of Section 3.2; "none": no recurrent layer (our ablation)
    facernet_stage: str = "rnn"        # stage trained (Section 3.3): GRU + dense + output on a frozen REC at 1e-4
    video_batch: int = 4               # whole videos per step of a video-level network (Section 3.3: 4)
    # --- VGGFACE-GRU-attention (multi-task learning and generation paper, Section IV; eq. 6) ---
    attention: bool = True             # attention GRU on top of the RNN (off: plain 2-layer GRU, the ablation)
    attention_length: int = 32         # the paper's attention length: window of past outputs attended over
    freeze_cnn: bool = False           # keep the VGG-FACE conv layers fixed, train RNN, attention and output
    attn_alpha: float = 0.5            # α of eq. 6 (weight of the VA loss); the paper's best 0.5
    attn_beta: float = 0.5             # β of eq. 6 (weight of the expression loss); the paper's best 0.5
    attn_va_loss: str = "ccc"          # L'_VA of eq. 6: CCC loss (eq. 4, the paper's best) or MSE
    attn_expr_loss: str = "ce"         # L_expr of eq. 6: cross entropy (the paper's best), MSE after or
                                       # before the softmax
    # --- MTANet (Zhang & Gu, ABAW 2020; docs/FAITHFULNESS.md, "MTANet") ---
    mtanet_backbone: str = "se_resnet50"  # Table I's backbone; SENet-50 is the paper's best
    mtanet_weighting: str = "sum"      # total loss: plain sum (stage 1) or eq. 5's uncertainty weighting (stage 2)
    # --- input: one batch per task set each step (paper: 401/247/103) ---
    batch_va: int = 401
    batch_au: int = 247
    batch_expr: int = 103
    use_all_labels: bool = False       # feed every label a record has, not only its task set's
    train_compound_databases: bool = False  # compound databases' basic-class records join the EXPR-Set
                                       # (Section 4's EXPR-Set is AFEW, RAF-DB, Aff-Wild2, AffectNet only)
    shuffle_buffer: int = 10000
    deterministic: bool = False
    skip_corrupt_records: bool = False  # a corrupt TFRecord ends the run naming the shard (True: skip, count)
    # --- objective (eq. 1–3) ---
    tasks: str = "va+au+expr"          # the tasks trained; one task = the paper's single-task baselines
    coupling: str = "soft+dm"          # best row of Table 6
    relation: str = "cognitive"        # one of RELATIONS, or a .json table (fbn_keras.relatedness)
    relation_weighted: bool = False    # footnote 4: p(au|emo) = w instead of 1 in DM
    # The λ values are ours: eq. 1 names λ1, λ2 and the paper gives no value for any of the four.
    lambda_au: float = 1.0             # λ1 of eq. 1
    lambda_va: float = 1.0             # λ2 of eq. 1
    lambda_soft: float = 1.0           # weight of the soft co-annotation term
    lambda_dm: float = 1.0             # weight of the distribution-matching term
    soft_include_neutral: bool = True  # neutral (score 0) takes part in the soft-label softmax
    soft_weighted: bool = True         # soft score Σ w·y / Σ w with the table's w (False: all w = 1)
    soft_unannotated: str = "absent"   # unannotated AUs count as 0 over the full Σw, as the paper's worked
                                       # example ("ignore": they leave the soft score)
    au_normalise_by_weights: bool = False  # co-annotated AU loss normalised by Σδ (True: by Σδ·w)
    au_pos_weight: str = "none"        # eq. 1's plain BCE; "balanced": positives × negatives/positives per AU,
                                       # "sqrt_balanced": × its square root
    au_pos_weight_max: float = 10.0    # cap on the balanced weights (and 1/cap floor)
    coann_on_tie: str = "drop"         # AU→expression co-annotation tie: no label ("first": lowest index)
    dm_average_emotions: bool = False  # eq. 2/8 as written (True: the worked example's ½-style average)
    dm_stop_gradient_target: bool = True   # p(au|x) is DM's soft target, held constant as in distillation
    dm_form: str = "positive"          # eq. 3 as printed, −p·log q ("bernoulli": footnote 5's per-AU KL)
    dm_reduction: str = "mean"         # over the covered AUs (ours: eq. 3's sum at weight 1 collapsed the trunk)
    # --- optimisation ---
    learning_rate: float = 1e-4        # Section 6's rate; the optimizer, Adam (train.py), is ours: none is named
    optimizer: str = "adam"            # adam, adamw (decoupled weight decay) or sgd
    weight_decay: float = 0.0          # adamw / sgd weight decay (never on a loss's own variables)
    lr_schedule: str = "constant"      # the paper's constant rate; "cosine" decays it to 5 % over the run;
                                       # "exp_after": constant, then x lr_decay_rate per lr_decay_every steps
    lr_decay_start: int = 0            # exp_after: steps at the initial rate (AffWildNet: 10 epochs)
    lr_decay_every: int = 1000         # exp_after: steps per decay (AffWildNet: one epoch)
    lr_decay_rate: float = 0.9         # exp_after: factor per decay
    steps: Optional[int] = 200000      # ours (Section 6 gives ~2 days on one V100, no count); one of steps / epochs
    epochs: Optional[float] = None
    seed: int = 0
    restart: int = 0                   # a fresh draw for the same seed (the experiment runner's restart of a
                                       # network that collapsed); 0: the seed's own draw
    # --- bookkeeping ---
    log_every: int = 100
    eval_every: int = 5000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    au_threshold: float = 0.5          # sigmoid probability above which an AU is called present

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values before any layer or dataset is built; errors quote what was received."""
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}. Received: {name}={getattr(self, name)!r}")
        for names, ok, allowed in RANGES:
            for name in names:
                value = getattr(self, name)
                if value is not None and not (math.isfinite(value) and ok(value)):
                    raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")
        bad = [t for t in self.tasks.split("+") if t not in TASKS] if self.tasks else ["(empty)"]
        if bad:
            raise ValueError(f"tasks must be '+'-joined names from {TASKS}. Received: tasks={self.tasks!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"Set exactly one of steps and epochs. Received: steps={self.steps}, epochs={self.epochs}")
        if self.weight_decay and self.optimizer == "adam":
            raise ValueError(f"weight_decay needs optimizer adamw or sgd (Adam's L2 is not decoupled). "
                             f"Received: optimizer={self.optimizer!r}, weight_decay={self.weight_decay}")
        if self.relation not in RELATIONS and not (self.relation.endswith(".json") and Path(self.relation).is_file()):
            raise ValueError(f"relation must be one of {RELATIONS} or an existing .json table "
                             f"(python -m fbn_keras.relatedness). Received: relation={self.relation!r}")
        if self.trunk_init != TRUNK_INITS[0] and self.backbone != "vgg_face":
            raise ValueError(f"trunk_init only applies to backbone 'vgg_face' (the ResNet-50 and DenseNet-121 trunks "
                             f"have batch normalisation). Received: backbone={self.backbone!r}, "
                             f"trunk_init={self.trunk_init!r}")
        if self.vgg_face_input and self.backbone != "vgg_face":
            raise ValueError(f"vgg_face_input only applies to backbone 'vgg_face'. Received: backbone={self.backbone!r}")

    @property
    def coupling_terms(self) -> frozenset[str]:
        """The coupling terms switched on, e.g. {'soft', 'dm'} for 'soft+dm'."""
        return frozenset() if self.coupling == "none" else frozenset(self.coupling.split("+"))

    @property
    def task_set(self) -> frozenset[str]:
        """The tasks trained, e.g. {'va', 'au', 'expr'}."""
        return frozenset(self.tasks.split("+"))

    @property
    def draw_seed(self) -> int:
        """The seed of initialisation, input order and dropout: `seed` itself at restart 0, else a seed
        derived from (seed, restart) that no plain `seed` value reproduces by accident."""
        if not self.restart:
            return self.seed
        digest = hashlib.sha256(f"seed {self.seed} restart {self.restart}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x3FFFFFFF   # headroom for `+ step` offsets

    @property
    def global_batch(self) -> int:
        return self.batch_va + self.batch_au + self.batch_expr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls(**json.loads(Path(path).read_text()))


#: One line of `--help` text per Config field (`add_config_flags`); a test checks every field has one.
FLAG_HELP: dict[str, str] = {
    "preset": "named preset whose values the other flags override",
    "model": "the network to train: FaceBehaviorNet, or one of the journal's video networks (docs/VIDEO.md)",
    "seq_length": "frames per training window T of a sequence model (unset: the model's paper value)",
    "seq_batch": "windows per step of a sequence model (unset: the model's paper value)",
    "video_databases": "','-joined sequence databases a sequence model trains on (empty: all that label its tasks)",
    "landmarks": "feed the 68 facial landmarks to the sequence models that take them (off: the ablation)",
    "rnn_units": "units of each recurrent layer of a sequence model",
    "rnn_dropout": "dropout rate on the first GRU layer's outputs, in [0, 1) (0.2: the paper's 0.8 read as a keep probability)",
    "va_activation": "activation of the VA outputs of a sequence model (the paper names none)",
    "tap_pool": "how the pool2/pool5 taps of the multi-RNN nets reach their GRUs (flatten: the paper)",
    "mt_aus": "AUs of the video multi-task nets (paper8: 1, 2, 4, 6, 12, 15, 20, 25; release: Aff-Wild2's 12)",
    "au_reduction": "video multi-task AU loss over AUs: sum (eq. 5) or mean",
    "ccc_scope": "sequence CCC loss: over the batch's masked frames (batch) or the mean of per-sequence CCCs",
    "eval_stride": "stride of the test tiles of a sequence model (< T: overlapping, averaged; unset: T)",
    "split_at_gap": "start a new window sequence where this many frames or more are missing (unset: never)",
    "init_from": "','-joined model.keras files or run folders whose layers initialise this model by name",
    "freeze_init": "keep the layers loaded by --init-from frozen",
    "facernet_features": "FaceRNET: the REC representations fed to its GRU (Table 2; va+expr+au: the paper's)",
    "facernet_frames": "FaceRNET: frames every video is padded to, >= 1 (the paper's t = 480)",
    "facernet_mask": "FaceRNET: route = Mask layer and routing (the paper's); zero = Mask layer only; "
                     "none = neither (Table 3's w/o Mask & Routing)",
    "facernet_rnn": "FaceRNET's temporal layer: gru (the paper's, Section 3.2) or none (an ablation: the per-frame "
                    "representations go straight to the Mask layer and dense layer)",
    "facernet_stage": "FaceRNET stage (Section 3.3): rec = the REC alone on the per-frame VA/expression/AU sets "
                      "(eq. 3); rnn = GRU, dense and output on a frozen REC (--init-from a rec run), lr 1e-4; "
                      "end_to_end = everything (--init-from an rnn run, --learning-rate 1e-5, the paper's)",
    "video_batch": "whole videos per training step of a video-level network such as FaceRNET (the paper's 4)",
    "attention": "VGGFACE-GRU-attention: attention GRU on top of the RNN (off: a plain second GRU, the ablation)",
    "attention_length": "VGGFACE-GRU-attention: past outputs the attention attends over, >= 1 (the paper's 32)",
    "freeze_cnn": "VGGFACE-GRU-attention: keep the VGG-FACE conv layers fixed (the paper's frozen-CNN mode)",
    "attn_alpha": "alpha of eq. 6, weight of the VA loss of VGGFACE-GRU-attention, in [0, 1]",
    "attn_beta": "beta of eq. 6, weight of the expression loss of VGGFACE-GRU-attention, in [0, 1]",
    "attn_va_loss": "VA loss of VGGFACE-GRU-attention (eq. 6): ccc (eq. 4) or mse",
    "attn_expr_loss": "expression loss of VGGFACE-GRU-attention (eq. 6): ce, mse_softmax (after softmax) or "
                      "mse_logits (before softmax)",
    "optimizer": "optimizer (adam: ours for FaceBehaviorNet, the paper names none; adamw; sgd)",
    "weight_decay": "weight decay of adamw / sgd, >= 0 (a loss's own variables are excluded)",
    "lr_decay_start": "exp_after schedule: steps at the initial learning rate, >= 0",
    "lr_decay_every": "exp_after schedule: steps per decay, > 0",
    "lr_decay_rate": "exp_after schedule: factor per decay, in (0, 1]",
    "backbone": "convolutional trunk (VGG-FACE is the paper's, Section 3; the others are Table 2's)",
    "width": "multiplier on the trunk's conv channels (1.0 = VGG-16's 64..512)",
    "fc_units": "units of each of the two fully connected layers after the trunk",
    "dropout": "dropout rate after each fully connected layer, in [0, 1)",
    "image_size": "side of the square RGB input in pixels",
    "vgg_face_weights": "local file of VGG-FACE weights (.h5, .weights.h5, .npz) to load into the trunk; unset: random initialisation",
    "vgg_face_input": "map the [-1, 1] input to VGG-FACE's mean-subtracted 0..255 RGB before conv1_1 "
                      "(vgg_face backbone only; unset: exactly when --vgg-face-weights is given)",
    "batch_va": "images per step from the VA task set",
    "batch_au": "images per step from the AU task set",
    "batch_expr": "images per step from the expression task set",
    "use_all_labels": "feed every label a record has, not only its task set's",
    "shuffle_buffer": "records in each task set's shuffle buffer",
    "deterministic": "reproducible input order (slower input pipeline)",
    "skip_corrupt_records": "skip a shard's records from its first corrupt one on, count them in the log and the run folder's corrupt_records.json (off: stop, naming the shard)",
    "tasks": "'+'-joined tasks to train (va, au, expr); one task = a single-task baseline",
    "coupling": "task-coupling terms (a configuration of Table 6)",
    "relation": "emotion-AU relation table: cognitive (Table 1's study), affwild2 (the journal's Table V "
                "statistics) or the path of a .json table estimated by python -m fbn_keras.relatedness",
    "relation_weighted": "use the relation's weight w as p(au|emotion) in distribution matching (footnote 4)",
    "lambda_au": "weight of the AU loss (lambda_1 of eq. 1; 1 is our choice, the paper gives none)",
    "lambda_va": "weight of the VA loss (lambda_2 of eq. 1; 1 is our choice, the paper gives none)",
    "lambda_soft": "weight of the soft co-annotation term (1 is our choice, the paper gives none)",
    "lambda_dm": "weight of the distribution-matching term (eq. 3; 1 is our choice, the paper gives none)",
    "soft_include_neutral": "neutral (score 0) takes part in the soft-label softmax",
    "soft_weighted": "soft score sum(w*y)/sum(w) with the relation's w (off: all w = 1)",
    "soft_unannotated": "unannotated AUs in the soft score: absent = y 0 over the full sum(w), the paper's example; ignore = left out",
    "au_normalise_by_weights": "normalise the co-annotated AU loss by sum(delta*w) instead of sum(delta)",
    "au_pos_weight": "per-AU weight on positives in the AU loss (none: eq. 1's plain BCE)",
    "au_pos_weight_max": "cap on the balanced positive weights (and 1/cap floor), >= 1",
    "coann_on_tie": "AU-to-expression co-annotation when emotions tie (drop: no label; first: lowest index)",
    "dm_average_emotions": "average distribution matching over emotions as in the paper's worked example",
    "dm_stop_gradient_target": "hold p(au|x) constant as distribution matching's target",
    "dm_reduction": "distribution matching over the AUs: mean over the AUs the relation covers (ours, the per-AU "
                    "scale of the AU loss) or sum (eq. 3 as printed, 16 times larger with Table 1)",
    "dm_form": "distribution matching per AU: positive = eq. 3's -p*log(q); bernoulli = footnote 5's KL",
    "train_compound_databases": "let compound databases' basic-expression records join multi-task training",
    "learning_rate": "learning rate of the optimizer (Adam: our choice, the paper names none), > 0",
    "lr_schedule": "learning-rate schedule (constant: the paper's; cosine: decay to 5% over the run; exp_after: constant, then exponential decay)",
    "steps": "training steps, > 0 (exactly one of --steps / --epochs; paper preset's 200000 is ours)",
    "epochs": "training epochs over the largest task set, > 0 (exactly one of --steps / --epochs)",
    "seed": "random seed for initialisation, input order and dropout",
    "trunk_init": "initialiser of the VGG-FACE trunk's convolutions when no pretrained weights are loaded (glorot_uniform: Keras' default; he_normal: He et al. 2015)",
    "restart": "fresh draw of initialisation and input order for the same seed, >= 0 (0: the seed's own)",
    "log_every": "steps between log lines, > 0",
    "eval_every": "steps between validation evaluations, >= 0 (0: none during training)",
    "checkpoint_every": "steps between checkpoints, > 0",
    "keep_checkpoints": "checkpoints kept on disk, > 0",
    "au_threshold": "sigmoid probability above which an AU is called present, in (0, 1)",
    "mtanet_backbone": "MTANet's backbone (Table I): se_resnet50 (the paper's SENet-50), resnext50, resnext50_cbam",
    "mtanet_weighting": "MTANet's total loss: sum of the task losses (stage 1) or eq. 5's learned uncertainty weights (stage 2)",
}


#: The enumerated fields and their allowed values: `Config.validate` and the flags' `choices` read this.
CHOICES: dict[str, tuple[str, ...]] = {
    "model": MODELS,
    "optimizer": OPTIMIZERS,
    "va_activation": VA_ACTIVATIONS,
    "tap_pool": TAP_POOLS,
    "mt_aus": MT_AUS,
    "au_reduction": AU_REDUCTIONS,
    "ccc_scope": CCC_SCOPES,
    "facernet_features": FACERNET_FEATURES,
    "facernet_mask": FACERNET_MASKS,
    "facernet_rnn": FACERNET_RNNS,
    "facernet_stage": FACERNET_STAGES,
    "attn_va_loss": ATTN_VA_LOSSES,
    "attn_expr_loss": ATTN_EXPR_LOSSES,
    "mtanet_backbone": MTANET_BACKBONES,
    "mtanet_weighting": MTANET_WEIGHTINGS,
    "backbone": BACKBONES,
    "coupling": COUPLINGS,
    "soft_unannotated": SOFT_UNANNOTATED,
    "au_pos_weight": AU_POS_WEIGHTS,
    "coann_on_tie": COANN_ON_TIE,
    "lr_schedule": LR_SCHEDULES,
    "trunk_init": TRUNK_INITS,
    "dm_form": DM_FORMS,
    "dm_reduction": DM_REDUCTIONS,
}

#: Numeric ranges `Config.validate` enforces: (fields, test, the range in words). None (unset) passes;
#: NaN and infinities never do.
RANGES: tuple[tuple[tuple[str, ...], Callable[[float], bool], str], ...] = (
    (("batch_va", "batch_au", "batch_expr", "fc_units", "shuffle_buffer", "log_every", "checkpoint_every",
      "keep_checkpoints", "seq_length", "seq_batch", "rnn_units", "eval_stride", "split_at_gap",
      "lr_decay_every", "attention_length", "video_batch"), lambda v: v >= 1, ">= 1"),
    (("lr_decay_start", "weight_decay"), lambda v: v >= 0, ">= 0"),
    (("lr_decay_rate",), lambda v: 0 < v <= 1, "in (0, 1]"),
    (("image_size",), lambda v: v >= 32, ">= 32 (the trunks halve it five times)"),
    (("steps", "epochs", "learning_rate"), lambda v: v > 0, "> 0"),
    (("eval_every", "seed", "restart", "lambda_au", "lambda_va", "lambda_soft", "lambda_dm"), lambda v: v >= 0,
     ">= 0"),
    (("au_threshold",), lambda v: 0 < v < 1, "in (0, 1)"),
    (("dropout", "rnn_dropout"), lambda v: 0 <= v < 1, "in [0, 1)"),
    (("width",), lambda v: 0 < v <= 4, "in (0, 4]"),
    (("au_pos_weight_max",), lambda v: v >= 1, ">= 1"),
    (("facernet_frames",), lambda v: v >= 1, ">= 1"),
    (("attn_alpha", "attn_beta"), lambda v: 0 <= v <= 1, "in [0, 1]"),
)


#: Presets are plain data: the fields that differ from the defaults above.
PRESETS: dict[str, dict[str, Any]] = {
    # Main paper Section 6: VGG-FACE trunk, 2×FC-4096, dropout 0.5, batches 401/247/103, learning rate
    # 1e-4. Ours, not the paper's: the Adam optimizer, λ = 1 and 200,000 steps (docs/FAITHFULNESS.md §11).
    "paper": {},
    # Same topology at 1/8 of the channels, for the no-argument CPU demo (`python -m fbn_keras.train`):
    # 6–18 minutes on 2 cores, depending on their load (README; FAITHFULNESS.md §4, §5). From random initialisation,
    # dropout 0.5 stalls the network, so this preset trains without dropout; rare AUs are learned
    # late, so it weights each AU's positives by sqrt(negatives/positives) (docs/FAITHFULNESS.md §2).
    # The readings of eq. 3 and of soft co-annotation (dm_form, dm_stop_gradient_target,
    # soft_unannotated) were measured on this preset and hold for all three (FAITHFULNESS.md §4, §5).
    "small": dict(width=0.125, fc_units=256, dropout=0.0, batch_va=32, batch_au=32, batch_expr=32,
                  learning_rate=1e-3, steps=900, au_pos_weight="sqrt_balanced", log_every=50,
                  eval_every=300, checkpoint_every=100, shuffle_buffer=1000, seq_length=32, seq_batch=4,
                  facernet_frames=48),   # the synthetic reaction videos' longest (synthetic/intensity.py)
    # Smallest that keeps the topology: for tests and notebooks.
    "tiny": dict(width=0.0625, fc_units=32, dropout=0.0, batch_va=8, batch_au=8, batch_expr=8,
                 learning_rate=1e-3, steps=20, log_every=5, eval_every=10, checkpoint_every=10,
                 shuffle_buffer=256, seq_length=8, seq_batch=2, rnn_units=8, video_batch=2),
}


def preset(name: str, **overrides: Any) -> Config:
    """The named preset with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    fields = {**PRESETS[name], **overrides}
    if "epochs" in overrides and overrides["epochs"] is not None and "steps" not in overrides:
        fields["steps"] = None
    return Config(preset=name, **fields)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def preset_defaults_text(name: str) -> str:
    """A field's default for `--help`: '96' when every preset agrees, else "the preset's: paper 200000, …"."""
    base = {f.name: f.default for f in dataclasses.fields(Config)}[name]
    values = {p: "unset" if v is None else v for p, v in ((p, PRESETS[p].get(name, base)) for p in PRESETS)}
    if len(set(map(repr, values.values()))) == 1:
        return f"{values['paper']}"
    return "the preset's: " + ", ".join(f"{p} {v}" for p, v in values.items())


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add `--preset` and one flag per Config field, with its FLAG_HELP line, its CHOICES and each
    preset's value; an unset flag keeps the preset's value."""
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                        help=FLAG_HELP["preset"] + " (default: %(default)s)")
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        if field.name == "preset":
            continue
        hint = hints[field.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        text = FLAG_HELP.get(field.name, "").replace("%", "%%")
        kwargs: dict[str, Any] = dict(dest=field.name, default=None,
                                      help=f"{text} (default: {preset_defaults_text(field.name)})")
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = base
            kwargs["metavar"] = {int: "N", float: "X"}.get(base, "TEXT")
        if field.name in CHOICES:
            kwargs["choices"] = CHOICES[field.name]
            kwargs["metavar"] = "{" + ",".join(CHOICES[field.name]) + "}"
        parser.add_argument(_flag(field.name), **kwargs)


def config_from_args(args: argparse.Namespace) -> Config:
    """Resolve the preset named by `args.preset` with every flag that was given."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                 if f.name != "preset" and getattr(args, f.name, None) is not None}
    return preset(args.preset, **overrides)
