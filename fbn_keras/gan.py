"""The semi-supervised GAN of the multi-task learning and generation paper (Section IV-A, Tables V–VIII).

G maps z ~ U[-1, 1]^100 to a face image in [-1, 1]; it is unconditional. D is
a regressor (valence, arousal), a multi-label classifier (8 Aff-Wild AUs) and
a real/fake classifier at once: its k + 1 = 11 outputs (k = 2 + 8) come from
one fully connected layer, sliced into {"va": (N, 2) linear, "au": (N, 8)
logits, "fake": (N, 1) logit}. Table IX's variants keep a subset of the heads.

Two configurations (Section IV-A):
  * "1", based on SSGAN, 32×32: G of Table V (four transposed convolutions
    from a 1×1×100 tensor, padding "valid": the printed 'SAME' cannot reach
    32×32, docs/FAITHFULNESS.md), D of Table VI;
  * "2", a modified DC-GAN, 96×96: G of Table VII, D of Table VIII;
    "2_7x7" is the same with 7×7 filters in G and D.

`GanConfig` holds every setting of the GAN with the paper's values as
defaults (Section IV-C1), named presets ("paper", "tiny") and command-line
flags (`add_gan_flags`, `gan_config_from_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import keras

from fbn_keras import taxonomy
from fbn_keras.backbones import scaled_channels

#: Section IV-A's configurations: 1 (SSGAN, 32×32), 2 (DC-GAN, 96×96), 2 with 7×7 filters.
GAN_CONFIGS: tuple[str, ...] = ("1", "2", "2_7x7")
#: D's heads (Table IX): all 11 outputs, VA + fake only, AUs + fake only, or no fake class.
D_OUTPUTS: tuple[str, ...] = ("va+au+fake", "va+fake", "au+fake", "va+au")
#: The VA loss of D (Section IV-C1): eq. 4–5's CCC loss, or the MSE averaged over V and A.
VA_LOSSES: tuple[str, ...] = ("ccc", "mse")
#: Gradient clipping "with value 20": by the global norm of all gradients (SSGAN's), or each value.
CLIPS: tuple[str, ...] = ("global_norm", "value")
#: Which network gets the extra updates of the update ratio (Section IV-C1).
EXTRA_UPDATES: tuple[str, ...] = ("generator", "discriminator")
#: The 8 AUs of the Aff-Wild AU part (Section II), in the order of D's "au" head.
GAN_AUS: tuple[int, ...] = taxonomy.AFFWILD2_PAPER_AUS
#: Width of each of D's heads.
HEAD_SIZES: dict[str, int] = {"va": 2, "au": len(GAN_AUS), "fake": 1}
#: Image side of each configuration.
IMAGE_SIZES: dict[str, int] = {"1": 32, "2": 96, "2_7x7": 96}
#: Update ratio of each configuration: 5 for configuration 1, 2 for configuration 2 (Section IV-C1).
UPDATE_RATIOS: dict[str, int] = {"1": 5, "2": 2, "2_7x7": 2}
#: LeakyReLU slope "0.2 in all models" (Section IV-C1).
LEAK = 0.2


@dataclasses.dataclass
class GanConfig:
    """Every setting of a GAN run (Section IV-A, IV-C1); the defaults are the paper's where it gives one."""

    preset: str = "paper"
    # --- networks (Tables V–VIII) ---
    gan_config: str = "2"              # configuration 2 (96×96) is our default: Table IX does not name one
    d_outputs: str = "va+au+fake"      # D's heads (Table IX's rows)
    z_dim: int = 100                   # z ~ U[-1, 1]^100
    width: float = 1.0                 # multiplier on every conv channel count (tests: small networks)
    # --- losses (eq. 1–5) ---
    va_loss: str = "ccc"               # eq. 4–5's CCC loss, or MSE averaged over V and A
    fake_target_labels: float = 0.01   # smoothed target of V, A and the AUs on a fake image
    fake_target_fake: float = 0.9      # smoothed target of the fake class on a fake image
    w_r_initial: float = 1.0           # initial weight of eq. 2's reconstruction (Huber) term
    w_r_decay_updates: int = 1500      # updates (of either network) over which w_r falls linearly to 0
                                       # (0: constant); ours, SSGAN's horizon
    huber_delta: float = 1.0           # δ of eq. 2's Huber loss
    # --- optimisation (Section IV-C1) ---
    lr_generator: float = 1e-4
    lr_discriminator: float = 1e-5
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    batch: int = 64
    clip: str = "global_norm"          # "value 20" read as SSGAN's global-norm clipping; "value": each gradient
    clip_value: float = 20.0
    update_ratio: Optional[int] = None  # updates of one network per update of the other (unset: 5 or 2)
    extra_updates: str = "generator"   # "we updated the generator network more frequently"
    # --- run (ours: the paper gives no length) ---
    steps: int = 20000                 # training steps, each one cycle of the update ratio
    seed: int = 0
    databases: str = ""                # ','-joined databases whose AU training shards feed D ("": all but
                                       # the compound ones)
    label_fraction: float = 1.0        # share of real training images that keep their labels (the rest count
                                       # as real, unlabelled: the semi-supervised setting); ours, 1 = the paper's
    shuffle_buffer: int = 10000
    skip_corrupt_records: bool = False  # a corrupt TFRecord ends the run naming the shard (True: skip, count)
    log_every: int = 100
    image_every: int = 1000            # steps between grids of G(z) in TensorBoard
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values before anything is built; errors quote what was received."""
        for name, choices in GAN_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}. Received: {name}={getattr(self, name)!r}")
        for names, ok, allowed in GAN_RANGES:
            for name in names:
                value = getattr(self, name)
                if value is not None and not (math.isfinite(value) and ok(value)):
                    raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")

    @property
    def image_size(self) -> int:
        """32 for configuration 1, 96 for configuration 2."""
        return IMAGE_SIZES[self.gan_config]

    @property
    def ratio(self) -> int:
        """`update_ratio`, or the paper's value for the configuration (5 or 2)."""
        return self.update_ratio if self.update_ratio is not None else UPDATE_RATIOS[self.gan_config]

    @property
    def heads(self) -> tuple[str, ...]:
        """D's heads, in output order, e.g. ("va", "au", "fake")."""
        return tuple(self.d_outputs.split("+"))

    @property
    def adversarial(self) -> bool:
        """D has the fake class, so G is trained against it (without it D is a supervised net alone)."""
        return "fake" in self.heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "GanConfig":
        return cls(**json.loads(Path(path).read_text()))


#: One line of `--help` per GanConfig field; a test checks every field has one.
GAN_FLAG_HELP: dict[str, str] = {
    "preset": "named preset whose values the other flags override",
    "gan_config": "network configuration: 1 (SSGAN, 32x32, Tables V-VI), 2 (DC-GAN, 96x96, Tables VII-VIII), "
                  "2_7x7 (configuration 2 with 7x7 filters)",
    "d_outputs": "the discriminator's heads besides each other: Table IX's rows (va+au: no fake class, no generator)",
    "z_dim": "length of the generator's input z ~ U[-1, 1]",
    "width": "multiplier on every convolution's channel count, in (0, 4] (1: the paper's networks)",
    "va_loss": "discriminator's valence-arousal loss: ccc (eq. 4-5) or mse (averaged over V and A)",
    "fake_target_labels": "smoothed target of valence, arousal and the AUs on a generated image, in [0, 1]",
    "fake_target_fake": "smoothed target of the fake class on a generated image, in [0, 1]",
    "w_r_initial": "initial weight of the generator's Huber reconstruction term (eq. 2), >= 0",
    "w_r_decay_updates": "updates of either network over which that weight falls linearly to 0, >= 0 (0: constant)",
    "huber_delta": "delta of the Huber loss of eq. 2, > 0",
    "lr_generator": "generator's (constant) learning rate, > 0",
    "lr_discriminator": "discriminator's (constant) learning rate, > 0",
    "adam_beta1": "Adam's beta_1 for both networks, in [0, 1)",
    "adam_beta2": "Adam's beta_2 for both networks, in [0, 1)",
    "batch": "images per step (real images, and as many generated ones)",
    "clip": "gradient clipping: global_norm (all gradients of a network together) or value (each element)",
    "clip_value": "the clipping threshold, > 0",
    "update_ratio": "updates of one network per update of the other, >= 1 (unset: 5 for configuration 1, 2 for 2)",
    "extra_updates": "the network that gets the extra updates of the update ratio",
    "steps": "training steps, > 0; a step is one update of one network and update-ratio updates of the other",
    "seed": "random seed for initialisation, input order and z",
    "databases": "','-joined databases whose AU training shards give the real images "
                 "(empty: all but the compound ones)",
    "label_fraction": "share of the real training images that keep their VA and AU labels, in (0, 1]; the others "
                      "keep only 'real' (chosen per image from its pixels and the seed, the same every epoch)",
    "shuffle_buffer": "records in the shuffle buffer of the training images",
    "skip_corrupt_records": "skip a shard's records from its first corrupt one on (off: stop, naming the shard)",
    "log_every": "steps between log lines, > 0",
    "image_every": "steps between grids of generated images in TensorBoard, > 0",
    "checkpoint_every": "steps between checkpoints, > 0",
    "keep_checkpoints": "checkpoints kept on disk, > 0",
}

#: The enumerated fields and their allowed values.
GAN_CHOICES: dict[str, tuple[str, ...]] = {
    "gan_config": GAN_CONFIGS,
    "d_outputs": D_OUTPUTS,
    "va_loss": VA_LOSSES,
    "clip": CLIPS,
    "extra_updates": EXTRA_UPDATES,
}

#: Numeric ranges `GanConfig.validate` enforces: (fields, test, the range in words). None passes.
GAN_RANGES: tuple[tuple[tuple[str, ...], Callable[[float], bool], str], ...] = (
    (("z_dim", "batch", "update_ratio", "steps", "shuffle_buffer", "log_every", "image_every",
      "checkpoint_every", "keep_checkpoints"), lambda v: v >= 1, ">= 1"),
    (("w_r_decay_updates", "seed", "w_r_initial"), lambda v: v >= 0, ">= 0"),
    (("fake_target_labels", "fake_target_fake"), lambda v: 0 <= v <= 1, "in [0, 1]"),
    (("huber_delta", "lr_generator", "lr_discriminator", "clip_value"), lambda v: v > 0, "> 0"),
    (("adam_beta1", "adam_beta2"), lambda v: 0 <= v < 1, "in [0, 1)"),
    (("width",), lambda v: 0 < v <= 4, "in (0, 4]"),
    (("label_fraction",), lambda v: 0 < v <= 1, "in (0, 1]"),
)

#: Presets: the fields that differ from the defaults above.
GAN_PRESETS: dict[str, dict[str, Any]] = {
    # Section IV-C1's settings; the run length, seed and bookkeeping are ours.
    "paper": {},
    # Configuration 1 at 1/16 of the channels: tests and a CPU smoke run.
    "tiny": dict(gan_config="1", width=0.0625, batch=8, steps=4, w_r_decay_updates=12, shuffle_buffer=64,
                 log_every=2, image_every=2, checkpoint_every=2),
}


def gan_preset(name: str, **overrides: Any) -> GanConfig:
    """The named preset with `overrides` applied."""
    if name not in GAN_PRESETS:
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(GAN_PRESETS)}")
    return GanConfig(preset=name, **{**GAN_PRESETS[name], **overrides})


def add_gan_flags(parser: argparse.ArgumentParser) -> None:
    """`--preset` and one flag per GanConfig field, with its help line and choices; an unset flag keeps
    the preset's value."""
    parser.add_argument("--preset", default="paper", choices=sorted(GAN_PRESETS),
                        help=GAN_FLAG_HELP["preset"] + " (default: %(default)s)")
    hints = typing.get_type_hints(GanConfig)
    for field in dataclasses.fields(GanConfig):
        if field.name == "preset":
            continue
        hint = hints[field.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        values = {p: GAN_PRESETS[p].get(field.name, field.default) for p in GAN_PRESETS}
        default = (values["paper"] if len(set(map(repr, values.values()))) == 1
                   else ", ".join(f"{p} {v}" for p, v in values.items()))
        kwargs: dict[str, Any] = dict(dest=field.name, default=None,
                                      help=f"{GAN_FLAG_HELP[field.name]} (default: {default})".replace("%", "%%"))
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = base
            kwargs["metavar"] = {int: "N", float: "X"}.get(base, "TEXT")
        if field.name in GAN_CHOICES:
            kwargs["choices"] = GAN_CHOICES[field.name]
            kwargs["metavar"] = "{" + ",".join(GAN_CHOICES[field.name]) + "}"
        parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)


def gan_config_from_args(args: argparse.Namespace) -> GanConfig:
    """The preset named by `args.preset` with every flag that was given."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(GanConfig)
                 if f.name != "preset" and getattr(args, f.name, None) is not None}
    return gan_preset(args.preset, **overrides)


# === Networks ===

def sample_z(batch: int, z_dim: int = 100, seed: Any = None):
    """z ~ U[-1, 1]^z_dim (Section IV-A), shape (batch, z_dim); `seed` an int or a keras SeedGenerator."""
    return keras.random.uniform((batch, z_dim), minval=-1.0, maxval=1.0, seed=seed)


def _bn_relu(x, name: str):
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_generator(config: GanConfig) -> keras.Model:
    """G: z (N, z_dim) → image (N, S, S, 3) in [-1, 1] via tanh; Table V (S = 32) or VII (S = 96)."""
    z = keras.Input((config.z_dim,), name="z")
    ch = lambda c: scaled_channels(c, config.width)  # noqa: E731
    if config.gan_config == "1":
        # Table V with padding "valid": 1 → 2 → 6 → 14 → 32 (docs/FAITHFULNESS.md).
        x = keras.layers.Reshape((1, 1, config.z_dim), name="g_reshape")(z)
        layers = ((ch(384), 2, 1), (ch(128), 4, 2), (ch(64), 4, 2))
        for i, (filters, kernel, stride) in enumerate(layers, start=1):
            x = keras.layers.Conv2DTranspose(filters, kernel, strides=stride, padding="valid", name=f"g_deconv{i}")(x)
            x = _bn_relu(x, f"g_deconv{i}")
        x = keras.layers.Conv2DTranspose(3, 6, strides=2, padding="valid", name="g_deconv4")(x)
    else:
        # Table VII: project to 6×6×1024, then 6 → 12 → 24 → 48 → 96. BN normalises the projection per
        # channel after the reshape, as in DC-GAN (docs/FAITHFULNESS.md).
        kernel = 7 if config.gan_config == "2_7x7" else 5
        x = keras.layers.Dense(6 * 6 * ch(1024), name="g_project")(z)
        x = keras.layers.Reshape((6, 6, ch(1024)), name="g_reshape")(x)
        x = _bn_relu(x, "g_project")
        for i, filters in enumerate((ch(512), ch(256), ch(128)), start=1):
            x = keras.layers.Conv2DTranspose(filters, kernel, strides=2, padding="same", name=f"g_deconv{i}")(x)
            x = _bn_relu(x, f"g_deconv{i}")
        x = keras.layers.Conv2DTranspose(3, kernel, strides=2, padding="same", name="g_deconv4")(x)
    image = keras.layers.Activation("tanh", name="image")(x)
    return keras.Model(z, image, name="generator")


def build_discriminator(config: GanConfig) -> keras.Model:
    """D: image (N, S, S, 3) → {"va": (N, 2), "au": (N, 8) logits, "fake": (N, 1) logit}, the heads of
    `config.d_outputs`; Table VI (S = 32, 3 convolutions) or VIII (S = 96, 4 convolutions).

    The AU and fake sigmoids of Tables VI and VIII are left to the losses (logits are stabler);
    VA is linear.
    """
    size = config.image_size
    images = keras.Input((size, size, 3), name="image")
    kernel = 7 if config.gan_config == "2_7x7" else 5
    filters = (64, 128, 256) if config.gan_config == "1" else (64, 128, 256, 512)
    x = images
    for i, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(scaled_channels(f, config.width), kernel, strides=2, padding="same",
                                name=f"d_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"d_conv{i}_bn")(x)
        x = keras.layers.LeakyReLU(LEAK, name=f"d_conv{i}_lrelu")(x)
    x = keras.layers.Flatten(name="d_flatten")(x)
    # One fully connected layer of 2 + 8 + 1 units (or the variant's subset), sliced into named heads
    # (built-in ops, no Lambda: the model loads in safe mode).
    out = keras.layers.Dense(sum(HEAD_SIZES[h] for h in config.heads), name="d_output")(x)
    heads, start = {}, 0
    for name in config.heads:
        heads[name] = keras.layers.Identity(name=name)(out[:, start:start + HEAD_SIZES[name]])
        start += HEAD_SIZES[name]
    return keras.Model(images, heads, name="discriminator")


def build_gan(config: GanConfig) -> tuple[Optional[keras.Model], keras.Model]:
    """(G, D) of `config`; G is None when D has no fake class (nothing would train it)."""
    return (build_generator(config) if config.adversarial else None), build_discriminator(config)
