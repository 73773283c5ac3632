"""The synthetic databases: each keeps only the labels of its real namesake (`taxonomy.SYNTHETIC_OF`),
with train/validation/test splits by identity, as stills, videos or (AFEW) short clips of one expression."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Iterator, Optional

import numpy as np

from fbn_keras import taxonomy
from fbn_keras.manifest import SPLITS
from fbn_keras.synthetic.appearance import Identity, Nuisance
from fbn_keras.synthetic.render import render_face
from fbn_keras.synthetic.story import VA_NOISE_STD, FaceState, au_labels, draw_state, va_of

#: The synthetic databases, each mimicking the labels of the real one it is named after.
SYNTHETIC_DATABASES: tuple[str, ...] = tuple(taxonomy.SYNTHETIC_OF)

#: Images per database and split of the default test-bed: ~22k training images, ~1.7–1.9k test
#: images per task (VA: affwild+affectnet+affwild2; EXPR: affectnet+rafdb+affwild2; AU: disfa+bp4d+emotionet+affwild2).
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "synth-affwild": {"train": 4000, "validation": 400, "test": 600},
    "synth-affectnet": {"train": 4000, "validation": 400, "test": 600},
    "synth-rafdb": {"train": 3000, "validation": 300, "test": 500},
    "synth-rafdb-compound": {"train": 800, "validation": 100, "test": 300},
    "synth-disfa": {"train": 2500, "validation": 250, "test": 400},
    "synth-bp4d": {"train": 2500, "validation": 250, "test": 400},
    "synth-emotionet": {"train": 2500, "validation": 250, "test": 400},
    "synth-affwild2": {"train": 3000, "validation": 300, "test": 600},
    # Frames of 8–16-frame clips (~200 training clips; AFEW is scored per clip), BP4D+'s ten AUs, and
    # EmotioNet's challenge set (six basic and ten compound classes).
    "synth-afew": {"train": 2400, "validation": 240, "test": 480},
    "synth-bp4dplus": {"train": 2500, "validation": 250, "test": 400},
    "synth-emotionet-compound": {"train": 800, "validation": 100, "test": 300},
}


@dataclasses.dataclass
class SyntheticSample:
    """One synthetic image with the labels its database gives it (missing labels as in docs/LABELS.md)."""

    image: np.ndarray                          # (96, 96, 3) uint8 RGB
    image_id: str
    group: str                                 # identity (stills) or video
    frame: int                                 # -1 for stills
    va: Optional[tuple[float, float]]          # None: missing
    expr: int                                  # -1: missing
    au: Optional[np.ndarray]                   # (17,) 0/1, zeros outside au_mask; None: missing
    au_mask: Optional[np.ndarray]              # (17,) δ; None: missing
    compound: int                              # index into COMPOUNDS, -1: missing
    intensities: np.ndarray                    # (17,) ground truth behind the labels
    database: str = ""
    split: str = ""


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """How a synthetic database is made: its labels, its people, its missing labels."""

    video: bool
    per_group: tuple[int, int]        # images per identity (stills) or frames per video, min and max
    unusable: float = 0.0             # AffectNet: share of images without usable labels
    invalid_run_rate: float = 0.0     # Aff-Wild2: P(an invalid run of frames starts), per task and frame
    clips: bool = False               # AFEW: short clips of one expression (video=True, one episode each)


_RECIPES: dict[str, _Recipe] = {
    "synth-affwild": _Recipe(video=True, per_group=(30, 60)),
    "synth-affectnet": _Recipe(video=False, per_group=(3, 3), unusable=0.05),
    "synth-rafdb": _Recipe(video=False, per_group=(4, 4)),
    "synth-rafdb-compound": _Recipe(video=False, per_group=(4, 4)),
    "synth-disfa": _Recipe(video=False, per_group=(20, 20)),
    "synth-bp4d": _Recipe(video=False, per_group=(15, 15)),
    "synth-emotionet": _Recipe(video=False, per_group=(2, 2)),
    "synth-affwild2": _Recipe(video=True, per_group=(30, 60), invalid_run_rate=0.007),
    "synth-afew": _Recipe(video=True, per_group=(8, 16), clips=True),
    "synth-bp4dplus": _Recipe(video=False, per_group=(15, 15)),
    "synth-emotionet-compound": _Recipe(video=False, per_group=(2, 2)),
}


def _check(database: str, split: str) -> None:
    if database not in SYNTHETIC_DATABASES:
        raise ValueError(f"Unknown synthetic database {database!r}; expected one of {SYNTHETIC_DATABASES}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")


def _rng(seed: int, database: str, split: str, *path: int) -> np.random.Generator:
    """A generator keyed by (seed, database, split, path): stable across runs and Python versions."""
    return np.random.default_rng([seed, zlib.crc32(database.encode()), SPLITS.index(split), *path])


def _labelled(database: str, split: str, image: np.ndarray, image_id: str, group: str, frame: int,
              state: FaceState, hide: frozenset = frozenset()) -> SyntheticSample:
    """A sample carrying only the labels `database` annotates, minus the tasks in `hide`."""
    db = taxonomy.database(database)
    va = tuple(float(v) for v in state.va) if "va" in db.tasks and "va" not in hide else None
    expr = state.expr if "expr" in db.tasks and "expr" not in hide else -1
    au = mask = None
    if "au" in db.tasks and "au" not in hide:
        mask = taxonomy.au_mask_for(db.aus)
        au = au_labels(state.intensities) * mask
    compound = state.compound if "compound" in db.tasks else -1
    return SyntheticSample(image, image_id, group, frame, va, expr, au, mask, compound,
                           state.intensities, database, split)


def _stills(database: str, split: str, n: int, seed: int) -> Iterator[SyntheticSample]:
    recipe = _RECIPES[database]
    subset = taxonomy.database(database).compound_subset
    per = recipe.per_group[0]
    identity, k_identity = None, -1
    for i in range(n):
        k, j = divmod(i, per)
        if k != k_identity:
            identity, k_identity = Identity.sample(_rng(seed, database, split, k, 0)), k
        rng = _rng(seed, database, split, k, j + 1)
        state = _basic_or_compound(rng, subset) if "expr" in taxonomy.database(database).tasks and subset \
            else draw_state(rng, subset)
        image = render_face(state.intensities, identity, Nuisance.sample(rng), rng)
        hide = frozenset()
        if recipe.unusable and rng.random() < recipe.unusable:
            # AffectNet: codes 7/8 (contempt, none) keep VA; 9/10 (uncertain, no face) carry VA -2 too.
            hide = frozenset({"expr"}) if rng.random() < 0.6 else frozenset({"expr", "va"})
        group = f"{split}-{k:05d}"
        yield _labelled(database, split, image, f"{group}/{j:03d}", group, -1, state, hide)


def _basic_or_compound(rng: np.random.Generator, subset: tuple[int, ...]) -> FaceState:
    """EmotioNet's challenge set: one of the six basic expressions or one of the compound classes, uniformly
    over the classes (a basic face is drawn from the story until it is not neutral)."""
    basic = len(taxonomy.BASIC_WITHOUT_NEUTRAL)
    if rng.random() < basic / (basic + len(subset)):
        while True:
            state = draw_state(rng)
            if state.expr in taxonomy.BASIC_WITHOUT_NEUTRAL:
                return state
    return draw_state(rng, subset)


def _clip(database: str, split: str, k: int, seed: int) -> Iterator[SyntheticSample]:
    """Clip k (AFEW): one person showing one expression, from a neutral onset towards its apex; every
    frame carries the clip's label, and the clip is the group it is scored by."""
    recipe = _RECIPES[database]
    rng = _rng(seed, database, split, k, 0)
    identity, nuisance = Identity.sample(rng), Nuisance.sample(rng)
    length = int(rng.integers(recipe.per_group[0], recipe.per_group[1] + 1))
    target = draw_state(rng)
    group = f"{split}-{k:05d}"
    x = np.zeros(taxonomy.NUM_AUS)
    for t in range(length):
        x = x + 0.45 * (target.intensities - x)
        state = FaceState(np.clip(x, 0, 1).astype(np.float32), target.expr, -1, target.va, target.strength)
        nuisance = nuisance.drifted(rng)
        image = render_face(state.intensities, identity, nuisance)
        yield _labelled(database, split, image, f"{group}/{t + 1:05d}", group, t + 1, state)


def _invalid_runs(rng: np.random.Generator, length: int, rate: float) -> np.ndarray:
    """(length,) bool: runs of 3–12 frames marked invalid (face lost, annotator gap)."""
    bad = np.zeros(length, bool)
    t = 0
    while t < length:
        if rng.random() < rate:
            run = int(rng.integers(3, 13))
            bad[t:t + run] = True
            t += run
        else:
            t += 1
    return bad


def _video(database: str, split: str, k: int, seed: int) -> Iterator[SyntheticSample]:
    """Frames of video k: episodes of expressions whose intensities, VA and pose move smoothly."""
    recipe = _RECIPES[database]
    rng = _rng(seed, database, split, k, 0)
    identity = Identity.sample(rng)
    nuisance = Nuisance.sample(rng)
    length = int(rng.integers(recipe.per_group[0], recipe.per_group[1] + 1))
    tasks = taxonomy.database(database).tasks
    invalid = {t: _invalid_runs(rng, length, recipe.invalid_run_rate) for t in tasks}
    group = f"{split}-{k:05d}"
    x = np.zeros(taxonomy.NUM_AUS)
    mix = np.eye(taxonomy.NUM_EXPRESSIONS)[0]
    strength, noise, episode_end, target = 0.0, np.zeros(2), 0, None
    for t in range(length):
        if t >= episode_end:
            target = draw_state(rng)
            episode_end = t + int(rng.integers(8, 26))
        # Exponential approach to the episode's target: consecutive frames differ only a little.
        x = x + 0.55 * (target.intensities - x)
        mix = mix + 0.55 * (np.eye(taxonomy.NUM_EXPRESSIONS)[target.expr] - mix)
        strength = strength + 0.55 * (target.strength - strength)
        noise = 0.7 * noise + np.sqrt(1 - 0.7 ** 2) * rng.normal(0.0, VA_NOISE_STD, 2)
        va = np.clip(va_of(mix, strength, x) + noise, -1.0, 1.0)
        state = FaceState(np.clip(x, 0, 1).astype(np.float32), target.expr, -1, va, strength)
        nuisance = nuisance.drifted(rng)
        image = render_face(state.intensities, identity, nuisance)
        hide = frozenset(task for task in tasks if invalid[task][t])
        yield _labelled(database, split, image, f"{group}/{t + 1:05d}", group, t + 1, state, hide)


def generate(database: str, split: str, n: Optional[int] = None, seed: int = 0) -> Iterator[SyntheticSample]:
    """The first `n` samples (default: DEFAULT_SIZES) of one synthetic database's split.

    Deterministic by seed; the first m samples do not depend on n. Splits never share an
    identity (each split draws its own people). Stills come `per_group` to an identity;
    video databases yield whole videos of consecutive frames (group = video, frame ≥ 1).
    """
    _check(database, split)
    n = DEFAULT_SIZES[database][split] if n is None else int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0. Received: n={n}")
    if not _RECIPES[database].video:
        yield from _stills(database, split, n, seed)
        return
    count, k = 0, 0
    episodes = _clip if _RECIPES[database].clips else _video
    while count < n:
        for sample in episodes(database, split, k, seed):
            if count >= n:
                return
            count += 1
            yield sample
        k += 1


def labelled_stills(n: int, split: str = "train", seed: int = 0) -> Iterator[SyntheticSample]:
    """`n` stills with every label (VA, expression, all 17 AUs): the generative story unmasked,
    for learnability checks and demos. One image per identity."""
    name = "synth-all-labels"
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")
    for k in range(n):
        rng = _rng(seed, name, split, k)
        identity = Identity.sample(rng)
        state = draw_state(rng)
        image = render_face(state.intensities, identity, Nuisance.sample(rng), rng)
        group = f"{split}-{k:05d}"
        yield SyntheticSample(image, f"{group}/000", group, -1, tuple(float(v) for v in state.va), state.expr,
                              au_labels(state.intensities), np.ones(taxonomy.NUM_AUS, np.float32), -1,
                              state.intensities, name, split)
