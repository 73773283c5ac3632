"""Whether a trained network collapsed: a head that gives every face the same prediction, or a VA head
that diverged.

A network whose trunk dies early in training (every ReLU of one layer inactive for every input) outputs
its heads' biases whatever the face: a constant prediction, at chance on every metric; the training loss
shows it as a plateau at the constant predictor's value from the first log line on. A VA head trained
alone on CCC (eq. 2) can instead drift to outputs in the thousands: CCC is then ~0 and so is its
gradient, and the loss sits at 1 just the same. At the `small` preset (from scratch, Adam 1e-3) both
struck single-task networks of Tables 3-5 (docs/FAITHFULNESS.md §10). The experiment runner
(`fbn_keras.campaign`) probes each trained network on images alone (no labels are read, so no score
takes part in the decision) and trains a collapsed one again from a fresh draw (`Config.restart`),
recording every attempt in the result file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: A VA output is constant when its standard deviation over the probed faces is below this, on the
#: [-1, 1] scale of valence and arousal (a network that learned spreads them by ~0.5; a dead trunk by
#: ~1e-6, float round-off of the same bias).
VA_SPREAD = 0.01
#: A VA output has diverged when its standard deviation over the probed faces exceeds this: ten times the
#: width of the label range [-1, 1] (measured: diverged single-task heads spread by 600 to 26,000).
VA_DIVERGED = 20.0
#: The heads the probe knows, in the order it reports them.
HEADS: tuple[str, ...] = ("va", "expr", "au")


def constant_heads(preds: Mapping[str, np.ndarray], heads: Sequence[str], au_threshold: float = 0.5,
                   va_spread: float = VA_SPREAD, va_diverged: float = VA_DIVERGED) -> list[str]:
    """The heads of `heads` whose decision is the same for every row of `preds` (faces x outputs):
    VA when no output spreads by `va_spread` (std), expressions when every face gets one class (argmax),
    AUs when every AU is called present for all faces or for none (at `au_threshold`); and VA when an
    output spreads by more than `va_diverged` (diverged, see the module's docstring)."""
    found = []
    for head in (h for h in HEADS if h in heads):
        p = np.asarray(preds[head], dtype=np.float64)
        if p.ndim != 2 or len(p) < 2:
            raise ValueError(f"{head}: need predictions of at least 2 faces as (faces, outputs). "
                             f"Received shape {p.shape}")
        if head == "va":
            spread = p.std(axis=0)
            constant = bool((spread < va_spread).all() or (spread > va_diverged).any())
        elif head == "expr":
            constant = np.unique(p.argmax(axis=-1)).size == 1
        else:
            called = p > au_threshold
            constant = bool((called == called[:1]).all())
        if constant:
            found.append(head)
    unknown = sorted(set(heads) - set(HEADS))
    if unknown:
        raise ValueError(f"Unknown head(s) {unknown}; the probe knows {HEADS}")
    return found


def probe_predictions(model, data_dir: str | Path, split: str = "validation",
                      max_per_database: Optional[int] = 256) -> dict[str, np.ndarray]:
    """The model's predictions (by head) on the images of `split` of every database in `data_dir`, at most
    `max_per_database` from each (the first ones, in record order): labels are not used."""
    from fbn_keras import data, runs

    forward = runs.make_forward(model)
    found: dict[str, list[np.ndarray]] = {}
    names = [n for n, info in data.list_databases(data_dir).items() if split in info["splits"]]
    if not names:
        raise ValueError(f"{data_dir} has no database with a {split!r} split to probe the network on")
    for name in names:
        seen = 0
        for images, _ in data.make_eval_dataset(data_dir, name, split=split, batch_size=128,
                                                image_size=int(model.input_shape[1])):
            if max_per_database is not None:
                images = images[: max_per_database - seen]
            for head, value in forward(images).items():
                found.setdefault(head, []).append(np.asarray(value))
            seen += int(images.shape[0])
            if max_per_database is not None and seen >= max_per_database:
                break
    return {head: np.concatenate(values) for head, values in found.items()}


def collapsed_heads(model, data_dir: str | Path, tasks: Sequence[str], au_threshold: float = 0.5,
                    split: Optional[str] = None) -> list[str]:
    """The trained heads (`tasks`) of `model` that give every probed face of `split` the same prediction, or
    whose VA diverged (`constant_heads`)
    (default split: "validation" where a database has one, else "train"; never the test split)."""
    from fbn_keras import data

    if split is None:
        splits = {s for info in data.list_databases(data_dir).values() for s in info["splits"]}
        split = "validation" if "validation" in splits else "train"
    preds = probe_predictions(model, data_dir, split)
    dead = constant_heads(preds, [t for t in HEADS if t in tasks], au_threshold)
    if dead:
        log.warning("collapsed: head(s) %s constant (or VA diverged) over %d %s faces", dead,
                    len(next(iter(preds.values()))), split)
    return dead
