"""Synthetic reaction videos for FaceRNET: 7 per-video intensities drive the faces' AU trajectories.

The stand-in for Hume-Reaction (FaceRNET paper, Section 3.3; `tfrecords_tools/hume_reaction.py`): each
video is one identity reacting to a stimulus, labelled with one vector of 7 reaction intensities in
[0, 1] (`taxonomy.REACTIONS`), written on every frame (`label/intensity`). What makes the label a
*video* label, as in the paper's motivation (Section 1), is that only part of the video shows it: the
face is neutral until an onset, then its AUs approach the reaction's target and hold it to the end.

The reaction → AU map (`REACTION_AUS`; ours, from FACS prototypes and Du et al.'s Table 1 for the basic
emotions the reactions resemble):

| reaction | AUs | reading |
|---|---|---|
| Adoration | 6, 12, 14 | a warm closed smile (cheek raiser, lip corner puller, dimpler) |
| Amusement | 6, 12, 25, 26 | laughing (the smile with lips parted, jaw dropped) |
| Anxiety | 4, 7, 23, 24 | tension (brow lowerer, lid tightener, lip tightener, lip pressor) |
| Disgust | 9, 10, 17 | Du et al.'s disgust (nose wrinkler, upper lip raiser, chin raiser) |
| Empathic-Pain | 1, 4, 15 | Du et al.'s sadness (inner brow raiser, brow lowerer, lip corner depressor) |
| Fear | 1, 2, 4, 5, 20 | Du et al.'s fear with the upper lid raiser |
| Surprise | 1, 2, 5, 26 | Du et al.'s surprise (brows and lids raised, jaw dropped) |

The AU target of a video is min(1, Σ_r y_r·M[r]) for its intensities y and the 0/1 map M; frames are
rendered by the synthetic face renderer (`render.render_face`, as `video.render_video` does) with a
slowly drifting nuisance, and written as per-frame Items through the one record path
(`fbn_keras.records.writer`), then regrouped into sequence shards (`fbn_keras.sequences`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator, Mapping, Optional

import numpy as np

from fbn_keras import taxonomy
from fbn_keras.manifest import SPLITS
from fbn_keras.records.items import Item
from fbn_keras.synthetic.appearance import Identity, Nuisance
from fbn_keras.synthetic.databases import _rng
from fbn_keras.synthetic.render import render_face
from fbn_keras.synthetic.video import APPROACH_RATE

DATABASE = "synthv-hume-reaction"
BUILD = "synthetic-intensity"
assert taxonomy.SYNTHETIC_INTENSITY_OF[DATABASE] == "hume-reaction"

#: Reaction → the AUs it raises (module docstring's table).
REACTION_AUS: dict[str, tuple[int, ...]] = {
    "Adoration": (6, 12, 14),
    "Amusement": (6, 12, 25, 26),
    "Anxiety": (4, 7, 23, 24),
    "Disgust": (9, 10, 17),
    "Empathic-Pain": (1, 4, 15),
    "Fear": (1, 2, 4, 5, 20),
    "Surprise": (1, 2, 5, 26),
}
assert tuple(REACTION_AUS) == taxonomy.REACTIONS
#: Frames per video, min and max (short: a test builds a few videos in seconds).
FRAMES = (16, 48)
#: Onset of the reaction: a share of the video, min and max.
ONSET = (0.1, 0.5)
#: Beta(a, b) of each intensity: mostly low, sometimes high, as reaction intensities are.
INTENSITY_BETA = (0.7, 1.5)
AU_NOISE = 0.03                 # std of the per-frame jitter on the AU intensities
#: Videos per split of the default synthetic set.
DEFAULT_VIDEOS: dict[str, int] = {"train": 24, "validation": 4, "test": 6}


def reaction_matrix() -> np.ndarray:
    """M (7, 17): 1 where a reaction raises an AU (REACTION_AUS), taxonomy.REACTIONS × taxonomy.AUS order."""
    out = np.zeros((taxonomy.NUM_REACTIONS, taxonomy.NUM_AUS), np.float32)
    for r, name in enumerate(taxonomy.REACTIONS):
        for au in REACTION_AUS[name]:
            out[r, taxonomy.au_index(au)] = 1.0
    return out


def au_target(intensity: np.ndarray) -> np.ndarray:
    """The AU intensities (17,) a video's reaction intensities (7,) drive: min(1, y @ M)."""
    y = np.asarray(intensity, np.float64)
    if y.shape != (taxonomy.NUM_REACTIONS,) or not np.all((y >= 0) & (y <= 1)):
        raise ValueError(f"intensity must be {taxonomy.NUM_REACTIONS} values in [0, 1]. Received: {y}")
    return np.minimum(1.0, y @ reaction_matrix()).astype(np.float32)


def au_trajectory(rng: np.random.Generator, target: np.ndarray, length: int) -> np.ndarray:
    """(length, 17): neutral until an onset in ONSET·length, then approaching `target` by APPROACH_RATE per
    frame (the journal video set's rate), plus AU_NOISE jitter, clipped to [0, 1]."""
    onset = int(round(rng.uniform(*ONSET) * length))
    x = np.zeros(taxonomy.NUM_AUS)
    out = np.zeros((length, taxonomy.NUM_AUS), np.float32)
    for t in range(length):
        if t >= onset:
            x = x + APPROACH_RATE * (target - x)
        out[t] = np.clip(x + rng.normal(0.0, AU_NOISE, x.shape) * (t >= onset), 0.0, 1.0)
    return out


@dataclasses.dataclass
class ReactionFrame:
    """One frame of a synthetic reaction video and its hidden truth."""

    image: np.ndarray                   # (96, 96, 3) uint8 RGB
    split: str
    group: str                          # the video
    frame: int                          # 1-based
    intensity: np.ndarray               # (7,) the video's label
    aus: np.ndarray                     # (17,) rendered AU intensities of this frame


def render_reaction_video(split: str, k: int, seed: int = 0, length: Optional[int] = None) -> Iterator[ReactionFrame]:
    """The frames of reaction video k of `split` (`length` frames instead of a random FRAMES length)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")
    rng = _rng(seed, DATABASE, split, k, 0)
    identity, nuisance = Identity.sample(rng), Nuisance.sample(rng, occlusion_rate=0.0)
    drawn = int(rng.integers(FRAMES[0], FRAMES[1] + 1))
    length = drawn if length is None else int(length)
    if length < 1:
        raise ValueError(f"length must be >= 1. Received: length={length}")
    intensity = rng.beta(*INTENSITY_BETA, taxonomy.NUM_REACTIONS).astype(np.float32)
    aus = au_trajectory(rng, au_target(intensity), length)
    group = f"{split}-{k:05d}"
    for t in range(length):
        nuisance = nuisance.drifted(rng)
        yield ReactionFrame(image=render_face(aus[t], identity, nuisance), split=split, group=group,
                            frame=t + 1, intensity=intensity, aus=aus[t])


def to_item(frame: ReactionFrame) -> Item:
    """One frame as a writer Item: an aligned crop carrying its video's 7 intensities."""
    image = frame.image
    return Item(database=DATABASE, split=frame.split, image_id=f"{frame.group}/{frame.frame:05d}",
                load=lambda: image, group=frame.group, frame=frame.frame, aligned=True,
                intensity=np.asarray(frame.intensity, np.float32))


def items(videos: Optional[Mapping[str, int]] = None, seed: int = 0, length: Optional[int] = None) -> Iterator[Item]:
    """Every frame of `videos` (split → count; default DEFAULT_VIDEOS) as Items, in a fixed order."""
    videos = DEFAULT_VIDEOS if videos is None else videos
    for split, n in videos.items():
        if n < 0:
            raise ValueError(f"video counts must be >= 0. Received: {split}={n}")
        for k in range(n):
            for frame in render_reaction_video(split, k, seed, length):
                yield to_item(frame)


def build(out: str | Path, videos: Optional[Mapping[str, int]] = None, seed: int = 0,
          length: Optional[int] = None, image_size: int = 96) -> Path:
    """Write the synthetic reaction videos' per-frame shards into `out`, then their sequence shards."""
    from fbn_keras import sequences
    from fbn_keras.records import writer

    out = Path(out)
    writer.write_shards(items(videos, seed, length), out, BUILD, aligner="auto", image_size=image_size)
    sequences.write_sequence_shards(out, [DATABASE])
    return out
