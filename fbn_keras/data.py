"""TFRecord schema of every FaceBehaviorNet record, and the readers that feed training and evaluation.

Feature keys are written here once and imported by the writer
(`tfrecords_tools/writer.py`) and by every reader. Decoding (serialized →
raw tensors) and parsing (raw → model inputs and masks) are separate steps.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fbn_keras import taxonomy

# === Schema ===

IMAGE = "image/encoded"        # JPEG of the aligned 96×96 RGB crop
SOURCE = "image/source"        # database name
ID = "image/id"                # relative path, or "video/frame"
GROUP = "image/group"          # subject or video id (sequences, per-clip metrics, subject splits)
FRAME = "image/frame"          # frame number within the group, -1 for stills
VA = "label/va"                # float ×2: valence, arousal
VA_MASK = "mask/va"            # int64: 1 when VA is labelled
EXPR = "label/expr"            # int64: index into EXPRESSIONS, -1 missing
AU = "label/au"                # float ×17 in AUS order
AU_MASK = "mask/au"            # float ×17: δ_i of eq. 1
COMPOUND = "label/compound"    # int64: index into COMPOUNDS, -1 missing

TASKS = ("va", "au", "expr")   # the three shard sets of the training input (paper Fig. 1)

FEATURES = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    SOURCE: tf.io.FixedLenFeature([], tf.string),
    ID: tf.io.FixedLenFeature([], tf.string),
    GROUP: tf.io.FixedLenFeature([], tf.string, default_value=""),
    FRAME: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    VA: tf.io.FixedLenFeature([2], tf.float32),
    VA_MASK: tf.io.FixedLenFeature([], tf.int64),
    EXPR: tf.io.FixedLenFeature([], tf.int64),
    AU: tf.io.FixedLenFeature([taxonomy.NUM_AUS], tf.float32),
    AU_MASK: tf.io.FixedLenFeature([taxonomy.NUM_AUS], tf.float32),
    COMPOUND: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}


def _bytes(v: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _ints(v) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x) for x in np.atleast_1d(v)]))


def _floats(v) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(x) for x in np.atleast_1d(v)]))


def make_example(jpeg: bytes, source: str, image_id: str, *, group: str = "", frame: int = -1,
                 va=None, expr: int = -1, au=None, au_mask=None, compound: int = -1) -> tf.train.Example:
    """One record in the schema above; a missing label is written as its 'missing' value."""
    va_arr = np.zeros(2, np.float32) if va is None else np.asarray(va, np.float32)
    au_arr = np.zeros(taxonomy.NUM_AUS, np.float32) if au is None else np.asarray(au, np.float32)
    mask_arr = np.zeros(taxonomy.NUM_AUS, np.float32) if au_mask is None else np.asarray(au_mask, np.float32)
    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE: _bytes(jpeg),
        SOURCE: _bytes(source.encode()),
        ID: _bytes(image_id.encode()),
        GROUP: _bytes(group.encode()),
        FRAME: _ints(frame),
        VA: _floats(va_arr),
        VA_MASK: _ints(0 if va is None else 1),
        EXPR: _ints(expr),
        AU: _floats(au_arr),
        AU_MASK: _floats(mask_arr),
        COMPOUND: _ints(compound),
    }))


def decode_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Serialized tf.train.Example → dict of raw tensors keyed by the schema's feature keys."""
    return tf.io.parse_single_example(serialized, FEATURES)
