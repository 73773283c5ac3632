"""The synthetic test-bed as writer Items: `fbn_keras.synthetic` samples (already aligned 96×96 crops).

Each synthetic database (`synth-affwild`, `synth-rafdb`, …) keeps its own
partial labels, so the shards reproduce the real sets' annotation pattern.
`scale` multiplies every default size (0.1 for a quick test-bed). The
`synthetic` parser of `python -m tfrecords_tools.build` and
`fbn_keras.testbed` both read these items.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import numpy as np

from fbn_keras.records.items import SPLITS, Item


def sizes(scale: float = 1.0, databases: Optional[Iterable[str]] = None) -> dict[tuple[str, str], int]:
    """(database, split) → number of images: the generator's default size times `scale`, at least 1."""
    from fbn_keras import synthetic

    if not scale > 0:
        raise ValueError(f"scale must be > 0. Received: scale={scale}")
    names = list(synthetic.SYNTHETIC_DATABASES if databases is None else databases)
    unknown = sorted(set(names) - set(synthetic.SYNTHETIC_DATABASES))
    if unknown:
        raise ValueError(f"Unknown synthetic databases {unknown}; expected some of {synthetic.SYNTHETIC_DATABASES}")
    out = {}
    for name in names:
        for split in SPLITS:
            default = _default_size(synthetic.DEFAULT_SIZES, name, split)
            if default:
                out[(name, split)] = max(1, int(round(default * scale)))
    return out


def _default_size(table, name: str, split: str) -> int:
    """DEFAULT_SIZES[name][split] (or DEFAULT_SIZES[(name, split)]); 0 when the split is not generated."""
    if (name, split) in table:
        return int(table[(name, split)])
    entry = table.get(name, {})
    return int(entry.get(split, 0)) if isinstance(entry, dict) else 0


def to_item(database: str, split: str, sample) -> Item:
    """One `SyntheticSample` as an Item (labels are already in `fbn_keras.taxonomy` orders)."""
    image = np.asarray(sample.image)
    va = None if sample.va is None else tuple(float(v) for v in np.asarray(sample.va).reshape(-1))
    has_au = sample.au_mask is not None and float(np.sum(sample.au_mask)) > 0
    return Item(
        database=database, split=split, image_id=str(sample.image_id), load=lambda: image,
        group=str(sample.group), frame=int(sample.frame), aligned=True, va=va,
        expr=int(sample.expr), au=np.asarray(sample.au, np.float32) if has_au else None,
        au_mask=np.asarray(sample.au_mask, np.float32) if has_au else None,
        compound=int(sample.compound))


def items(scale: float = 1.0, seed: int = 0, databases: Optional[Iterable[str]] = None) -> Iterator[Item]:
    """Every synthetic database and split, as Items, in a fixed order (the writer's resume relies on it)."""
    from fbn_keras import synthetic

    for (name, split), n in sizes(scale, databases).items():
        for sample in synthetic.generate(name, split, n=n, seed=seed):
            yield to_item(name, split, sample)
