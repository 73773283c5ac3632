"""Synthetic faces driven by 17 AU intensities, and eleven partially-labelled databases made of them.

The real databases can never be downloaded here, so the project trains, tests
and demonstrates on this test-bed. A procedural renderer draws
96×96 RGB faces (OpenCV anti-aliased polygons) whose geometry follows FACS for
each AU in `taxonomy.AUS`; identities and nuisance (pose, lighting,
background, noise, JPEG, occluders) vary. Labels come from the paper's
generative story: expression → prototypical AUs on, observational AUs on with
probability w (`taxonomy.COGNITIVE_TABLE`), other AUs at a low spontaneous
rate; valence-arousal a smooth function of expression and AU intensities plus
annotator noise. Each synthetic database keeps only the labels its real
namesake has (`taxonomy.SYNTHETIC_OF`), with train/validation/test split by
identity.

    python -m fbn_keras.synthetic --contact-sheet docs/synthetic_examples.png
    python -m fbn_keras.synthetic --benchmark 2000

Modules: `story` (labels), `appearance` (identity, nuisance), `draw` (primitives),
`face` (the AU deformations), `render` (`render_face`), `databases` (`generate`),
`sheet` (`contact_sheet`).
"""

from fbn_keras.synthetic.appearance import HAIR_STYLES, Identity, Nuisance, Occluder
from fbn_keras.synthetic.databases import (DEFAULT_SIZES, SYNTHETIC_DATABASES, SyntheticSample, generate,
                                           labelled_stills)
from fbn_keras.synthetic.draw import FACE_CENTER, FACE_SCALE, IMAGE_SIZE
from fbn_keras.synthetic.render import render_face
from fbn_keras.synthetic.sheet import AU_DESCRIPTIONS, contact_sheet
from fbn_keras.synthetic.story import (AU_THRESHOLD, AU_VA_WEIGHTS, COMPOUND_OBSERVATIONAL, EXPRESSION_PRIOR,
                                       EXPRESSION_VA, SPONTANEOUS_RATE, SPONTANEOUS_RATES, STRENGTH_RANGE,
                                       VA_NOISE_STD, FaceState, au_labels, compound_intensities, compound_mix,
                                       draw_state, expression_intensities, va_of)

__all__ = [
    "AU_DESCRIPTIONS", "AU_THRESHOLD", "AU_VA_WEIGHTS", "COMPOUND_OBSERVATIONAL", "DEFAULT_SIZES",
    "EXPRESSION_PRIOR", "EXPRESSION_VA", "FACE_CENTER", "FACE_SCALE", "FaceState", "HAIR_STYLES", "IMAGE_SIZE",
    "Identity", "Nuisance", "Occluder", "SPONTANEOUS_RATE", "SPONTANEOUS_RATES", "STRENGTH_RANGE",
    "SYNTHETIC_DATABASES", "SyntheticSample", "VA_NOISE_STD", "au_labels", "compound_intensities", "compound_mix",
    "contact_sheet", "draw_state", "expression_intensities", "generate", "labelled_stills", "render_face", "va_of",
]
