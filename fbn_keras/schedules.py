"""Learning-rate schedules beyond Keras' own: AffWildNet's constant-then-exponential decay (journal Section V-A)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fbn_keras")
class ConstantThenExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`rate` for `start` steps, then `rate · decay^⌊(step − start) / every⌋`.

    The journal's AffWildNet: "1e-4, exponentially decaying after 10 epochs"; its
    per-epoch factor is not given (0.9 is ours, docs/FAITHFULNESS.md).
    """

    def __init__(self, rate: float, start: int, every: int, decay: float):
        if every < 1 or start < 0 or not 0 < decay <= 1:
            raise ValueError(f"Need start >= 0, every >= 1, decay in (0, 1]. Received: start={start}, "
                             f"every={every}, decay={decay}")
        self.rate, self.start, self.every, self.decay = float(rate), int(start), int(every), float(decay)

    def __call__(self, step):
        past = ops.maximum(ops.cast(step, "float32") - self.start, 0.0)
        return self.rate * ops.power(self.decay, ops.floor(past / self.every))

    def get_config(self) -> dict:
        return {"rate": self.rate, "start": self.start, "every": self.every, "decay": self.decay}
