"""Fold the time axis of a sequence into the batch and back, so per-frame layers run on every frame.

The journal's video networks (Sections V, VI-A) apply the VGG-FACE trunk to each
frame of a (B, T, S, S, C) window. `FoldTime` turns the window into B·T images,
the trunk's layers run on them as top-level layers of the video model (so
`conv1_1 … conv5_3` keep their names and VGG-FACE weights load by name), and
`UnfoldTime` gives each frame's features back as (B, T, D). B and T may be
unknown (None) when the model is built; both are read from the input at run time.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fbn_keras")
class FoldTime(keras.layers.Layer):
    """(B, T, *frame) → (B·T, *frame): every frame of every window becomes one batch row, in order."""

    def call(self, inputs):
        return ops.reshape(inputs, (-1, *inputs.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, time = input_shape[0], input_shape[1]
        return (None if batch is None or time is None else batch * time, *input_shape[2:])


@keras.saving.register_keras_serializable(package="fbn_keras")
class UnfoldTime(keras.layers.Layer):
    """[(B·T, *features), reference (B, T, ...)] → (B, T, *features): undoes `FoldTime` of `reference`."""

    def call(self, inputs):
        folded, reference = inputs
        shape = ops.shape(reference)
        return ops.reshape(folded, (shape[0], shape[1], *folded.shape[1:]))

    def compute_output_shape(self, input_shape):
        folded, reference = input_shape
        return (reference[0], reference[1], *folded[1:])
