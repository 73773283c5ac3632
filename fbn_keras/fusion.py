"""Decision-level fusion of valence-arousal predictions (journal Section V-B, eq. 3).

O_i = (Σ_n t_i^n)^-1 · Σ_n t_i^n · o_i^n for i ∈ {valence, arousal}: a weighted
average of the members' predictions, each member n weighted per dimension by
its validation CCC t_i^n (eq. 1). The paper fuses CNN-1RNN and CNN-3RNN; any
number of members works here.

A validation CCC ≤ 0 (a member no better than a constant for that dimension)
would make eq. 3 subtract or divide by a non-positive sum, so it is refused
with a ValueError; `clip_nonpositive=True` instead gives such a member weight 0
on that dimension (it leaves that dimension's average), and refuses only when
no member is positive (docs/FAITHFULNESS.md, "Sequence losses, fusion and task
relatedness").
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence, Union

import numpy as np

Scores = Union[Mapping[str, float], Sequence[float]]


def fusion_weights(val_scores: Mapping[str, Scores]) -> dict[str, tuple[float, float]]:
    """Eq. 3's t^n per member: its validation (CCC_v, CCC_a).

    Args:
        val_scores: member name → its validation metrics, either a mapping with
            "ccc_v" and "ccc_a" (as `fbn_keras.evaluate` reports them) or a
            (ccc_v, ccc_a) pair.
    Returns: member name → (t_v, t_a), floats.
    """
    if not val_scores:
        raise ValueError(f"Need at least one member's validation scores. Received: {dict(val_scores)!r}")
    out = {}
    for name, scores in val_scores.items():
        if isinstance(scores, Mapping):
            # fbn_keras.evaluate's names, or fbn_keras.evaluate_sequences' (the video networks').
            keys = next((k for k in (("ccc_v", "ccc_a"), ("ccc_valence", "ccc_arousal"))
                         if all(x in scores for x in k)), None)
            if keys is None:
                raise ValueError(f"Validation scores of {name!r} need 'ccc_v' and 'ccc_a' (or 'ccc_valence' and "
                                 f"'ccc_arousal'). Received keys: {sorted(scores)}")
            pair = (scores[keys[0]], scores[keys[1]])
        else:
            pair = tuple(scores)
            if len(pair) != 2:
                raise ValueError(f"Validation scores of {name!r} must be (ccc_v, ccc_a). Received: {scores!r}")
        t = tuple(float(x) for x in pair)
        if not all(math.isfinite(x) for x in t):
            raise ValueError(f"Validation CCCs of {name!r} must be finite. Received: {t}")
        out[name] = t
    return out


def decision_fusion(predictions: Mapping[str, np.ndarray], weights: Mapping[str, Sequence[float]],
                    clip_nonpositive: bool = False) -> np.ndarray:
    """Eq. 3: the per-dimension weighted average of the members' (N, 2) valence-arousal predictions.

    Args:
        predictions: member name → (N, 2) valence, arousal.
        weights: member name → (t_v, t_a), the validation CCCs (`fusion_weights`); same names.
        clip_nonpositive: weight 0 for a t ≤ 0 instead of a ValueError.
    Returns: (N, 2) float64 fused predictions.
    """
    if not predictions or set(predictions) != set(weights):
        raise ValueError(f"predictions and weights must name the same members, at least one. "
                         f"Received: predictions={sorted(predictions)}, weights={sorted(weights)}")
    names = sorted(predictions)
    preds = [np.asarray(predictions[n], np.float64) for n in names]
    shape = preds[0].shape
    for n, p in zip(names, preds):
        if p.ndim != 2 or p.shape[1] != 2 or p.shape != shape:
            raise ValueError(f"Every member's predictions must be (N, 2) of one N. "
                             f"Received: {n!r} shape {p.shape}, {names[0]!r} shape {shape}")
    t = np.array([[float(x) for x in weights[n]] for n in names], np.float64)   # (members, 2)
    if t.shape != (len(names), 2) or not np.all(np.isfinite(t)):
        raise ValueError(f"weights must be finite (t_v, t_a) pairs. Received: {dict(weights)!r}")
    if clip_nonpositive:
        t = np.maximum(t, 0.0)
        empty = [d for d, s in zip(("valence", "arousal"), t.sum(0)) if s <= 0]
        if empty:
            raise ValueError(f"No member has a positive validation CCC for {empty}. Received: {dict(weights)!r}")
    elif np.any(t <= 0):
        bad = {n: tuple(weights[n]) for n, row in zip(names, t) if np.any(row <= 0)}
        raise ValueError(f"Eq. 3 needs positive validation CCCs (or clip_nonpositive=True). Received: {bad}")
    stacked = np.stack(preds)                                   # (members, N, 2)
    return np.einsum("md,mnd->nd", t, stacked) / t.sum(0)
