"""Synthetic videos for the sequence models: smooth AU and VA trajectories, context knobs, landmarks, audio.

The image test-bed (`databases.py`) shows one face per label; the journal's
video networks (Sections V and VI-A) earn their keep only where one frame is
not enough. So each video here is a few hundred frames of one identity whose
AU intensities move smoothly between episodes of the generative story
(`story.draw_state`), valence-arousal following `story.va_of` plus AR(1)
annotator noise, and three *context knobs* that make a single frame
insufficient (a control has all of them off):

- **lag**: every label of frame t is the truth of frame t − τ (annotators react
  late), VA also low-passed (an exponential moving average);
- **bursts**: runs of degraded frames (an occluder over the face, heavy blur, a
  blank frame) whose labels continue the video's story;
- **motion**: arousal rises with how fast the face moves, k·‖Δ intensities‖,
  which no single frame shows.

Each frame also carries 68 iBUG landmarks read off the renderer's own geometry
(after the pose transform, plus jitter) and an audio stand-in: a 96×96
"spectrogram" window whose band energy follows arousal, not valence
(docs/VIDEO.md). Five databases mimic the journal's video sets and their
partial labels (`VIDEO_RECIPES`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import cv2
import numpy as np

from fbn_keras import audio, taxonomy
from fbn_keras.manifest import SPLITS
from fbn_keras.synthetic.appearance import Identity, Nuisance, Occluder
from fbn_keras.synthetic.databases import _invalid_runs, _rng
from fbn_keras.synthetic.draw import DARK, IMAGE_SIZE, Canvas, mix, pose_matrix
from fbn_keras.synthetic.face import draw_face
from fbn_keras.synthetic.render import render_face
from fbn_keras.synthetic.story import VA_NOISE_STD, au_labels, draw_state, va_of

# === Knobs and recipes ===


@dataclasses.dataclass(frozen=True)
class ContextKnobs:
    """What makes one frame insufficient; `ContextKnobs()` (all off) is the control."""

    lag: int = 0                              # τ: labels of frame t are the truth of frame t − τ
    lowpass: float = 0.0                      # α of the VA labels' average y_t = α·y_{t−1} + (1 − α)·v_t
    burst_rate: float = 0.0                   # P(a burst of degraded frames starts), per frame
    burst_frames: tuple[int, int] = (4, 12)   # burst length, min and max
    motion: float = 0.0                       # k: arousal += k·‖x_t − x_{t−1}‖ (L2 over the 17 intensities)

    @property
    def off(self) -> bool:
        return self.lag == 0 and self.lowpass == 0 and self.burst_rate == 0 and self.motion == 0


CONTROL = ContextKnobs()
#: The knobs of every "with context" set: a lag of 6 frames (0.2 s at 30 fps), α = 0.6, a burst every ~50 frames.
CONTEXT = ContextKnobs(lag=6, lowpass=0.6, burst_rate=0.02, burst_frames=(4, 12), motion=1.5)
BURST_KINDS: tuple[str, ...] = ("occluder", "blur", "blank")

APPROACH_RATE = 0.25           # intensities move this share of the way to the episode's target per frame
EPISODE_FRAMES = (20, 60)      # frames per expression episode
NOISE_RHO = 0.95               # AR(1) coefficient of the VA annotator noise (std VA_NOISE_STD)
LANDMARK_JITTER = 0.5          # px, std of the landmark noise
AUDIO_BAND = (16, 48)          # rows of the audio stand-in whose energy follows arousal


@dataclasses.dataclass(frozen=True)
class VideoRecipe:
    """How a synthetic video database is made: lengths, knobs and which labels it keeps."""

    frames: tuple[int, int]                      # frames per video, min and max
    knobs: ContextKnobs
    tasks: tuple[str, ...] = ("va",)
    au_every: int = 0                            # video k has AU labels when k % au_every == 0 (0: never)
    expr_skip_every: int = 0                     # video k lacks expression labels when k % n == n − 1 (0: never)
    invalid_run_rate: float = 0.0                # per task and frame: P(an invalid run starts), as the image set
    utterances: Optional[tuple[int, int]] = None  # OMG: utterance lengths; each utterance is one group
    va_step: float = 0.0                         # AFEW-VA: labels on a grid of this step (its −10…10 integers)


#: The journal's video databases (Sections III, V-B, VI-A): Aff-Wild (VA per frame), with and without
#: context; Aff-Wild2 (VA, expressions on most videos, the 8 AUs on few, invalid runs); AFEW-VA (short
#: clips, VA on a 0.1 grid); OMG-Emotion (utterances labelled by their mean VA).
VIDEO_RECIPES: dict[str, VideoRecipe] = {
    "synthv-affwild": VideoRecipe((200, 400), CONTEXT),
    "synthv-affwild-control": VideoRecipe((200, 400), CONTROL),
    "synthv-affwild2": VideoRecipe((200, 400), CONTEXT, ("va", "expr", "au"), au_every=4, expr_skip_every=8,
                                   invalid_run_rate=0.007),
    "synthv-afew-va": VideoRecipe((40, 120), CONTEXT, va_step=0.1),
    "synthv-omg": VideoRecipe((200, 400), CONTEXT, utterances=(40, 120)),
}
assert set(VIDEO_RECIPES) == set(taxonomy.SYNTHETIC_VIDEO_OF)

#: Videos per database and split of the default video test-bed (13,118 frames at seed 0; one database ~2.7k).
DEFAULT_VIDEOS: dict[str, dict[str, int]] = {
    "synthv-affwild": {"train": 6, "validation": 1, "test": 2},
    "synthv-affwild-control": {"train": 6, "validation": 1, "test": 2},
    "synthv-affwild2": {"train": 6, "validation": 1, "test": 2},
    "synthv-afew-va": {"train": 20, "validation": 4, "test": 6},
    "synthv-omg": {"train": 5, "validation": 1, "test": 1},
}


@dataclasses.dataclass
class VideoFrame:
    """One frame with the labels its database keeps (missing as in the image test-bed) and its hidden truth."""

    image: np.ndarray                      # (96, 96, 3) uint8 RGB
    image_id: str
    group: str                             # video (utterance for OMG)
    frame: int                             # 1-based within the group
    va: Optional[tuple[float, float]]
    expr: int
    au: Optional[np.ndarray]               # (17,) 0/1, zeros outside au_mask
    au_mask: Optional[np.ndarray]
    landmarks: Optional[np.ndarray]        # (68, 2) pixels in the 96×96 image; None on a blank frame
    audio: np.ndarray                      # (96, 96) float32 in [-1, 1]: bands × time around this frame
    intensities: np.ndarray                # (17,) rendered AU intensities
    true_va: np.ndarray                    # (2,) VA of this frame before lag and low-pass
    true_expr: int                         # the episode's expression at this frame, before lag
    degraded: str = ""                     # "", or the burst kind
    database: str = ""
    split: str = ""


# === Trajectories ===

@dataclasses.dataclass
class Trajectory:
    """The hidden truth of a video: per-frame intensities (L, 17), expression (L,), VA (L, 2)."""

    intensities: np.ndarray
    expr: np.ndarray
    va: np.ndarray


def trajectory(rng: np.random.Generator, length: int, motion: float = 0.0) -> Trajectory:
    """Episodes of the generative story: intensities approach each episode's target by APPROACH_RATE per
    frame (so |Δx| ≤ APPROACH_RATE), VA = `story.va_of` + AR(1) noise with ±3σ-clipped innovations,
    plus `motion`·‖Δx‖ on arousal."""
    x = np.zeros(taxonomy.NUM_AUS)
    expr_mix = np.eye(taxonomy.NUM_EXPRESSIONS)[0]
    strength, noise, end, target = 0.0, np.zeros(2), 0, None
    xs = np.zeros((length, taxonomy.NUM_AUS), np.float32)
    exprs = np.zeros(length, np.int64)
    vas = np.zeros((length, 2), np.float32)
    innovation = np.sqrt(1 - NOISE_RHO ** 2) * VA_NOISE_STD
    previous = x.copy()
    for t in range(length):
        if t >= end:
            target = draw_state(rng)
            end = t + int(rng.integers(EPISODE_FRAMES[0], EPISODE_FRAMES[1] + 1))
        x = x + APPROACH_RATE * (target.intensities - x)
        expr_mix = expr_mix + APPROACH_RATE * (np.eye(taxonomy.NUM_EXPRESSIONS)[target.expr] - expr_mix)
        strength = strength + APPROACH_RATE * (target.strength - strength)
        noise = NOISE_RHO * noise + np.clip(rng.normal(0.0, innovation, 2), -3 * innovation, 3 * innovation)
        va = va_of(expr_mix, strength, x) + noise
        va[1] += motion * float(np.linalg.norm(x - previous)) if t else 0.0
        xs[t], exprs[t], vas[t] = np.clip(x, 0, 1), target.expr, np.clip(va, -1, 1)
        previous = x.copy()
    return Trajectory(xs, exprs, vas)


def lagged(values: np.ndarray, lag: int) -> np.ndarray:
    """values[max(t − lag, 0)] for every t: labels that trail the face by `lag` frames."""
    idx = np.maximum(np.arange(len(values)) - int(lag), 0)
    return values[idx]


def lowpass(values: np.ndarray, alpha: float) -> np.ndarray:
    """y_0 = v_0, y_t = α·y_{t−1} + (1 − α)·v_t along axis 0."""
    out = np.array(values, np.float64)
    for t in range(1, len(out)):
        out[t] = alpha * out[t - 1] + (1 - alpha) * out[t]
    return out.astype(np.float32)


def bursts(rng: np.random.Generator, length: int, knobs: ContextKnobs) -> list[str]:
    """Per frame "" or the kind of degradation of the burst it is in."""
    kinds = [""] * length
    t = 0
    while t < length:
        if knobs.burst_rate > 0 and rng.random() < knobs.burst_rate:
            run = int(rng.integers(knobs.burst_frames[0], knobs.burst_frames[1] + 1))
            kind = BURST_KINDS[int(rng.integers(len(BURST_KINDS)))]
            kinds[t:t + run] = [kind] * len(kinds[t:t + run])
            t += run
        else:
            t += 1
    return kinds


# === Landmarks from the renderer's geometry ===

def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """n points evenly spaced by arc length along a polyline."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    u = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(u, s, points[:, 0]), np.interp(u, s, points[:, 1])], axis=1)


def face_landmarks(identity: Identity, intensities: np.ndarray, nuisance: Nuisance) -> np.ndarray:
    """(68, 2) iBUG landmarks in image pixels: read off the shapes `face.draw_face` records (face outline,
    brows, eye whites, nostrils, lips), then through the pose transform `draw.pose_matrix`."""
    cv = Canvas()
    draw_face(cv, identity, np.asarray(intensities, np.float64))
    shapes = [(p, tuple(float(v) for v in c)) for p, c, width in cv.shapes if not width]

    def same(a, b) -> bool:
        return all(abs(x - float(y)) < 1e-6 for x, y in zip(a, b))

    def pick(color, n):
        return [p for p, c in shapes if len(p) == n and same(c, color)]

    (outline,) = pick(identity.skin, 34)
    brows = pick(mix(identity.hair, DARK, 0.4), 20)
    eyes = pick((245, 243, 238), 26)
    nostrils = pick(mix(np.asarray(identity.skin), DARK, 0.7), 12)
    lips = [p for p, c in shapes if len(p) == 34 and not same(c, identity.skin) and not same(c, (75, 25, 30))][-2:]
    if len(brows) != 2 or len(eyes) != 2 or len(nostrils) != 2 or len(lips) != 2:
        raise RuntimeError("the face renderer's shapes changed; update face_landmarks")
    low = outline[16:][::-1]                                   # chin arc, image-left to image-right
    jaw = _resample(np.concatenate([[[outline[0, 0], 0.0]], low, [[outline[15, 0], 0.0]]]), 17)
    brow_pts = []
    for brow, order in zip(brows, ([9, 7, 4, 2, 0], [0, 2, 4, 7, 9])):   # left: outer→inner; right: inner→outer
        centre = 0.5 * (brow[:10] + brow[10:][::-1])
        brow_pts.append(centre[order])
    eye_pts = [e[[0, 4, 8, 12, 13 + 4, 13 + 8]] for e in eyes]   # corner, upper ⅓, ⅔, corner, lower ⅔, ⅓
    eye_y = float(np.mean([e[:, 1].mean() for e in eyes]))
    n_left, n_right = nostrils
    nose_y = 0.5 * (n_left[:, 1].mean() + n_right[:, 1].mean())
    tip = np.array([0.0, nose_y - 0.9])
    bridge = np.linspace([0.0, eye_y], tip, 4)
    base = np.array([n_left[np.argmin(n_left[:, 0])], n_left.mean(0), [0.0, nose_y], n_right.mean(0),
                     n_right[np.argmax(n_right[:, 0])]])
    upper, lower = lips
    outer_up, inner_up = upper[:17], upper[17:][::-1]
    inner_low, outer_low = lower[:17], lower[17:][::-1]
    mouth = np.concatenate([outer_up[[0, 3, 6, 8, 10, 13, 16]], outer_low[[13, 10, 8, 6, 3]],
                            inner_up[[0, 5, 8, 11, 16]], inner_low[[11, 8, 5]]])
    pts = np.concatenate([jaw, *brow_pts, bridge, base, *eye_pts, mouth])
    m = pose_matrix(nuisance)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


# === Degradations and audio ===

def degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A burst frame: "blur" (Gaussian, σ 3.5 px) or "blank" (the image's mean colour); "occluder" is
    drawn by the renderer (`occluder_over_face`)."""
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), 3.5)
    if kind == "blank":
        return np.broadcast_to(image.reshape(-1, 3).mean(0).astype(np.uint8), image.shape).copy()
    return image


def occluder_over_face(rng: np.random.Generator) -> Occluder:
    """A large occluder (a hand, a cup) over most of the face."""
    return Occluder(kind=("ellipse", "rect")[int(rng.integers(2))],
                    center=(48 + rng.uniform(-6, 6), 52 + rng.uniform(-6, 6)),
                    size=(rng.uniform(24, 30), rng.uniform(20, 28)), angle=rng.uniform(0, 180),
                    color=tuple(rng.uniform(30, 230, 3)))


def audio_stand_in(rng: np.random.Generator, arousal: np.ndarray) -> np.ndarray:
    """(L, 96, 96) windows of a stand-in spectrogram with one column per frame: noise at −0.7 ± 0.08, plus
    0.9·(a + 1)/2 in rows AUDIO_BAND (arousal a of that frame, never valence); window t = columns
    centred on t (`audio.frame_windows`)."""
    length = len(arousal)
    cols = -0.7 + 0.08 * rng.standard_normal((length, audio.BANDS))
    cols[:, AUDIO_BAND[0]:AUDIO_BAND[1]] += 0.9 * (np.asarray(arousal)[:, None] + 1.0) / 2.0
    return audio.frame_windows(np.clip(cols, -1, 1).astype(np.float32), np.arange(length))


# === Databases ===

def _check(database: str, split: str) -> None:
    if database not in VIDEO_RECIPES:
        raise ValueError(f"Unknown synthetic video database {database!r}; expected one of {sorted(VIDEO_RECIPES)}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")


def _stream_name(database: str) -> str:
    """The random stream of a database: a control shares its context twin's faces and stories."""
    return database.replace("-control", "")


def render_video(database: str, split: str, k: int, seed: int = 0, knobs: Optional[ContextKnobs] = None,
                 length: Optional[int] = None) -> Iterator[VideoFrame]:
    """The frames of video k of one database and split (knobs: the recipe's unless given; `length`
    frames instead of the recipe's random length, for quick checks).

    The face, the story and the nuisance come from one random stream and the knobs' bursts and
    jitter from another, so a control and its context twin show the same faces.
    """
    _check(database, split)
    recipe = VIDEO_RECIPES[database]
    knobs = recipe.knobs if knobs is None else knobs
    rng = _rng(seed, _stream_name(database), split, k, 0)
    knob_rng = _rng(seed, _stream_name(database), split, k, 1)
    identity, nuisance = Identity.sample(rng), Nuisance.sample(rng, occlusion_rate=0.0)
    drawn = int(rng.integers(recipe.frames[0], recipe.frames[1] + 1))
    length = drawn if length is None else int(length)
    truth = trajectory(rng, length, knobs.motion)
    kinds = bursts(knob_rng, length, knobs)
    windows = audio_stand_in(rng, truth.va[:, 1])
    va_labels = lowpass(lagged(truth.va, knobs.lag), knobs.lowpass) if knobs.lowpass else lagged(truth.va, knobs.lag)
    expr_labels = lagged(truth.expr, knobs.lag)
    au_truth = lagged(truth.intensities, knobs.lag)
    tasks = set(recipe.tasks)
    if "au" in tasks and not (recipe.au_every and k % recipe.au_every == 0):
        tasks.discard("au")
    if "expr" in tasks and recipe.expr_skip_every and k % recipe.expr_skip_every == recipe.expr_skip_every - 1:
        tasks.discard("expr")
    invalid = {t: _invalid_runs(rng, length, recipe.invalid_run_rate) for t in recipe.tasks}
    db = taxonomy.database(database)
    mask = taxonomy.au_mask_for(db.aus) if db.aus else None
    cuts = _utterance_cuts(rng, length, recipe.utterances)
    video = f"{split}-{k:05d}"
    for u, (start, stop) in enumerate(cuts):
        group = video if recipe.utterances is None else f"{video}-u{u:02d}"
        utterance_va = truth.va[start:stop].mean(axis=0)
        for t in range(start, stop):
            nuisance = nuisance.drifted(rng)
            shown = nuisance if kinds[t] != "occluder" else dataclasses.replace(
                nuisance, occluder=occluder_over_face(knob_rng))
            image = degrade(render_face(truth.intensities[t], identity, shown), kinds[t], knob_rng)
            points = None
            if kinds[t] != "blank":
                points = face_landmarks(identity, truth.intensities[t], nuisance)
                points = points + knob_rng.normal(0.0, LANDMARK_JITTER, points.shape).astype(np.float32)
            va = utterance_va if recipe.utterances else va_labels[t]
            if recipe.va_step:
                va = np.round(np.asarray(va) / recipe.va_step) * recipe.va_step
            frame = t - start + 1
            keep = {name for name in tasks if not invalid[name][t]}
            yield VideoFrame(
                image=image, image_id=f"{group}/{frame:05d}", group=group, frame=frame,
                va=tuple(float(v) for v in np.clip(va, -1, 1)) if "va" in keep else None,
                expr=int(expr_labels[t]) if "expr" in keep else -1,
                au=au_labels(au_truth[t]) * mask if "au" in keep else None,
                au_mask=mask if "au" in keep else None,
                landmarks=points, audio=windows[t], intensities=truth.intensities[t], true_va=truth.va[t],
                true_expr=int(truth.expr[t]),
                degraded=kinds[t], database=database, split=split)


def _utterance_cuts(rng: np.random.Generator, length: int,
                    utterances: Optional[tuple[int, int]]) -> list[tuple[int, int]]:
    """[(start, stop)] of each utterance (one span covering the video when `utterances` is None)."""
    if utterances is None:
        return [(0, length)]
    cuts, start = [], 0
    while start < length:
        stop = min(length, start + int(rng.integers(utterances[0], utterances[1] + 1)))
        if length - stop < utterances[0]:      # too short a tail joins the last utterance
            stop = length
        cuts.append((start, stop))
        start = stop
    return cuts


def generate_videos(database: str, split: str, n_videos: Optional[int] = None, seed: int = 0,
                    knobs: Optional[ContextKnobs] = None, length: Optional[int] = None) -> Iterator[VideoFrame]:
    """Every frame of the first `n_videos` videos (default DEFAULT_VIDEOS) of one database and split, in order."""
    _check(database, split)
    n = DEFAULT_VIDEOS[database][split] if n_videos is None else int(n_videos)
    if n < 0:
        raise ValueError(f"n_videos must be >= 0. Received: n_videos={n_videos}")
    for k in range(n):
        yield from render_video(database, split, k, seed, knobs, length)


def frames_per_second(n_frames: int = 400, database: str = "synthv-affwild") -> float:
    """Rendering throughput of `generate_videos` on this process (one core), landmarks and audio included."""
    import time

    start = time.perf_counter()
    count = 0
    for _ in generate_videos(database, "train", n_videos=1 + n_frames // 200):
        count += 1
        if count >= n_frames:
            break
    return count / (time.perf_counter() - start)
