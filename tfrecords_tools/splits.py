"""Deterministic splits by subject or video (main paper Section 4, "Train/Validation/Test splits").

Where a database publishes no test set, its validation set is our test set
and its training set is divided 85/15 into train/validation, by subject or
video so that no person appears on both sides. The choice of held-out groups
depends only on the group names and a seed (a hash rank, not a shuffled
list), so it is the same on every machine and barely moves when one group is
added or removed.
"""

from __future__ import annotations

import hashlib
from typing import Collection, Iterable

#: Main paper Section 4: "randomly divide the training set into a training and a validation subset (85/15)".
VALIDATION_FRACTION = 0.15


def _rank(group: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def holdout(groups: Iterable[str], fraction: float, seed: int = 0) -> frozenset[str]:
    """The groups held out: round(fraction · n) of the n distinct groups, chosen by seed.

    With 0 < fraction < 1 and at least two groups, at least one group is held
    out and at least one is kept, so tiny databases still get both sides.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1). Received: fraction={fraction}")
    unique = sorted(set(groups))
    n = len(unique)
    k = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    ranked = sorted(unique, key=lambda g: _rank(g, seed))
    return frozenset(ranked[:k])


def train_validation(groups: Iterable[str], fraction: float = VALIDATION_FRACTION,
                     seed: int = 0) -> dict[str, str]:
    """Each group → "train" or "validation" (fraction of the groups to validation)."""
    groups = list(groups)
    held = holdout(groups, fraction, seed)
    return {g: ("validation" if g in held else "train") for g in groups}


def our_split(published: str, group: str, validation_groups: Collection[str], has_test: bool) -> str:
    """Our split for an item in a database's published `published` split ("train", "validation" or "test").

    A database without a published test set (`has_test=False`) tests on its
    validation set; its training groups in `validation_groups` become our
    validation split.
    """
    if published not in ("train", "validation", "test"):
        raise ValueError(f"published split must be train, validation or test. Received: {published!r}")
    if published == "train":
        return "validation" if group in validation_groups else "train"
    if published == "validation" and not has_test:
        return "test"
    return published
