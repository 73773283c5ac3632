"""The contact sheet (`docs/synthetic_examples.png`): every expression on several people and
every AU at intensity 0 vs 1, labelled, so a person can check that the faces read as labelled."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from fbn_keras import taxonomy
from fbn_keras.synthetic.appearance import Identity, Nuisance
from fbn_keras.synthetic.draw import IMAGE_SIZE
from fbn_keras.synthetic.render import render_face
from fbn_keras.synthetic.story import AU_THRESHOLD, draw_state

#: FACS names of the 17 AUs, for the contact sheet's labels.
AU_DESCRIPTIONS: dict[int, str] = taxonomy.AU_NAMES


def _prototype(expr: int, strength: float = 0.9) -> np.ndarray:
    """Intensities showing an expression clearly: prototypical AUs and observational ones with w ≥ 0.5."""
    w = taxonomy.relation_weights("cognitive")[expr]
    return np.where(w >= 0.5, strength, 0.0).astype(np.float32)


def contact_sheet(path: Optional[str] = None, identities: int = 6, seed: int = 0, zoom: int = 2) -> np.ndarray:
    """Every expression on a few identities (first column: prototypical AUs, clean; the rest
    drawn from the generative story with nuisance), then every AU at intensity 0 vs 1 on a
    neutral face, each labelled. Writes a PNG to `path` when given; returns the RGB sheet."""
    cell, band = IMAGE_SIZE * zoom, 22
    cols = max(identities, 6)
    width = cols * cell
    rows = []

    def banner(text: str, height: int = band) -> np.ndarray:
        img = np.full((height, width, 3), 255, np.uint8)
        cv2.putText(img, text, (6, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        return img

    def tile(images: list[np.ndarray], labels: list[str]) -> np.ndarray:
        out = np.full((band + cell, width, 3), 255, np.uint8)
        for i, (img, label) in enumerate(zip(images, labels)):
            big = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
            out[band:, i * cell:(i + 1) * cell] = big
            cv2.putText(out, label, (i * cell + 4, band - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
        return out

    rows.append(banner("Expressions: col 1 prototypical AUs, clean; cols 2+ drawn from the generative story "
                       "with nuisance", 30))
    for e, name in enumerate(taxonomy.EXPRESSIONS):
        rng = np.random.default_rng([seed, e])
        images = [render_face(_prototype(e), Identity.sample(rng))]
        labels = [f"{name}"]
        while len(images) < identities:
            state = draw_state(rng)
            while state.expr != e:
                state = draw_state(rng)
            images.append(render_face(state.intensities, Identity.sample(rng), Nuisance.sample(rng), rng))
            on = [str(au) for au, v in zip(taxonomy.AUS, state.intensities) if v >= AU_THRESHOLD]
            labels.append("AU " + (",".join(on) or "-"))
        rows.append(tile(images, labels))
    rows.append(banner("Each AU at intensity 0 | 1 on a neutral face (FACS names)", 30))
    neutral = Identity()
    pairs_per_row = cols // 2
    for start in range(0, taxonomy.NUM_AUS, pairs_per_row):
        images, labels = [], []
        for au in taxonomy.AUS[start:start + pairs_per_row]:
            x = np.zeros(taxonomy.NUM_AUS, np.float32)
            images.append(render_face(x, neutral))
            x[taxonomy.au_index(au)] = 1.0
            images.append(render_face(x, neutral))
            labels += [f"AU{au}: 0", f"{AU_DESCRIPTIONS[au]}: 1"]
        rows.append(tile(images, labels))
    sheet = np.concatenate(rows, axis=0)
    if path is not None:
        if not cv2.imwrite(str(path), sheet[:, :, ::-1]):
            raise OSError(f"Could not write the contact sheet to {path}")
    return sheet
