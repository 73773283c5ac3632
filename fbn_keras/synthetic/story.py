"""The generative story behind every synthetic label (main paper Table 1).

An expression (imbalanced priors) switches on its prototypical AUs and each
observational AU with probability w (cognitive table, main paper Table 1);
other AUs fire at a low spontaneous rate. Valence-arousal is a fixed smooth
function of the expression and the AU intensities plus annotator noise.
Compound faces follow Du, Tao & Martinez (2014) and mix their two emotions' VA.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fbn_keras import taxonomy

#: Expression priors (EXPRESSIONS order): imbalanced, neutral and happiness most common, as in the wild.
EXPRESSION_PRIOR = np.array([0.28, 0.09, 0.08, 0.07, 0.25, 0.12, 0.11])

#: Valence-arousal of each expression at full strength (Russell's circumplex), EXPRESSIONS order.
EXPRESSION_VA = np.array([
    [0.00, -0.05],   # neutral
    [-0.55, 0.60],   # anger
    [-0.60, 0.30],   # disgust
    [-0.50, 0.65],   # fear
    [0.65, 0.30],    # happiness
    [-0.60, -0.35],  # sadness
    [0.25, 0.60],    # surprise
])

#: What each AU's intensity adds to (valence, arousal): smiles raise valence, wide eyes and an open jaw arousal.
_AU_VA = {1: (-0.05, 0.05), 2: (0.0, 0.10), 4: (-0.10, 0.05), 5: (0.0, 0.20), 6: (0.10, 0.0),
          7: (0.0, 0.05), 9: (-0.10, 0.0), 10: (-0.10, 0.0), 12: (0.30, 0.0), 15: (-0.25, -0.10),
          20: (-0.05, 0.10), 25: (0.0, 0.05), 26: (0.0, 0.15)}
AU_VA_WEIGHTS = np.array([_AU_VA.get(au, (0.0, 0.0)) for au in taxonomy.AUS])   # (17, 2)

VA_NOISE_STD = 0.1            # annotator noise on valence and arousal
SPONTANEOUS_RATE = 0.02       # P(an AU unrelated to the expression is active)
#: AUs that Table 1 barely uses (AU14 in no row, AU23/24 observational in anger only, AU7 in
#: anger only) yet BP4D and Aff-Wild2 annotate often occur spontaneously more often.
SPONTANEOUS_RATES = np.array([{7: 0.05, 14: 0.15, 23: 0.06, 24: 0.05}.get(au, SPONTANEOUS_RATE)
                              for au in taxonomy.AUS])
COMPOUND_OBSERVATIONAL = 0.5  # P(a compound's observational AU is active): Du et al. give no rates here
STRENGTH_RANGE = (0.55, 1.0)  # expression strength: the active AUs' intensity scale
AU_THRESHOLD = 0.5            # binary AU label = intensity ≥ 0.5


_COGNITIVE_WEIGHTS = taxonomy.relation_weights("cognitive")   # (7, 17): 1 prototypical, w observational


def va_of(expr_mix: np.ndarray, strength: float, intensities: np.ndarray) -> np.ndarray:
    """Noise-free (valence, arousal) of a face: the expression's circumplex point scaled by
    its strength plus each AU's contribution, clipped to [-1, 1].

    `expr_mix` is a (7,) weighting of expressions (one-hot for a basic expression,
    ½/½ for a compound), so compounds mix their two emotions' VA.
    """
    mix = np.asarray(expr_mix, np.float64)
    raw = strength * (mix @ EXPRESSION_VA) + np.asarray(intensities, np.float64) @ AU_VA_WEIGHTS
    return np.clip(raw, -1.0, 1.0)


def au_labels(intensities: np.ndarray) -> np.ndarray:
    """(17,) float32 binary AU occurrence: intensity ≥ AU_THRESHOLD."""
    return (np.asarray(intensities) >= AU_THRESHOLD).astype(np.float32)


def _activation_intensities(rng: np.random.Generator, p_active: np.ndarray, related: np.ndarray,
                            strength: float) -> np.ndarray:
    """Intensities of one face: AU k active with probability p_active[k] (or the spontaneous
    rate where unrelated), active AUs near `strength`, inactive ones at most a faint trace."""
    p = np.where(related, p_active, SPONTANEOUS_RATES)
    active = rng.random(taxonomy.NUM_AUS) < p
    scaled = strength * rng.uniform(0.85, 1.2, taxonomy.NUM_AUS)
    spontaneous = rng.uniform(0.5, 0.9, taxonomy.NUM_AUS)
    trace = rng.uniform(0.0, 0.25, taxonomy.NUM_AUS) * (rng.random(taxonomy.NUM_AUS) < 0.3)
    x = np.where(active, np.where(related, scaled, spontaneous), trace)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def expression_intensities(rng: np.random.Generator, expr: int, strength: float) -> np.ndarray:
    """AU intensities for basic expression `expr`: prototypical AUs on, observational ones on
    with probability w (cognitive table, main paper Table 1), others spontaneous."""
    w = _COGNITIVE_WEIGHTS[expr]
    return _activation_intensities(rng, w, w > 0, strength)


def compound_intensities(rng: np.random.Generator, compound: int, strength: float) -> np.ndarray:
    """AU intensities for compound `compound` (index into COMPOUNDS, Du et al. 2014): its
    prototypical AUs on, its observational ones on with probability COMPOUND_OBSERVATIONAL."""
    c = taxonomy.COMPOUNDS[compound]
    p = np.zeros(taxonomy.NUM_AUS)
    for au in c.observational:
        if au in taxonomy.AUS:
            p[taxonomy.au_index(au)] = COMPOUND_OBSERVATIONAL
    for au in c.prototypical:
        p[taxonomy.au_index(au)] = 1.0
    return _activation_intensities(rng, p, p > 0, strength)


def compound_mix(compound: int) -> np.ndarray:
    """(7,) expression mix of a compound class: ½ on each of its two emotions."""
    mix = np.zeros(taxonomy.NUM_EXPRESSIONS)
    for emotion in taxonomy.COMPOUNDS[compound].emotions:
        mix[taxonomy.expression_index(emotion)] += 0.5
    return mix


@dataclasses.dataclass
class FaceState:
    """The hidden truth of one face: what the labels are drawn from."""

    intensities: np.ndarray        # (17,) in [0, 1]
    expr: int                      # basic expression, -1 for a compound face
    compound: int                  # index into COMPOUNDS, -1 for a basic face
    va: np.ndarray                 # (2,) with annotator noise, clipped to [-1, 1]
    strength: float = 1.0          # scale of the active AUs' intensities


def draw_state(rng: np.random.Generator, compound_subset: tuple[int, ...] = ()) -> FaceState:
    """One face from the generative story: a basic expression from EXPRESSION_PRIOR, or, when
    `compound_subset` is given, a compound class drawn uniformly from it."""
    strength = float(rng.uniform(*STRENGTH_RANGE))
    if compound_subset:
        compound = int(compound_subset[rng.integers(len(compound_subset))])
        x = compound_intensities(rng, compound, strength)
        mix, expr = compound_mix(compound), -1
    else:
        expr, compound = int(rng.choice(taxonomy.NUM_EXPRESSIONS, p=EXPRESSION_PRIOR)), -1
        x = expression_intensities(rng, expr, strength)
        mix = np.eye(taxonomy.NUM_EXPRESSIONS)[expr]
    va = np.clip(va_of(mix, strength, x) + rng.normal(0.0, VA_NOISE_STD, 2), -1.0, 1.0)
    return FaceState(x, expr, compound, va, strength)
