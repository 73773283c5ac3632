"""fbn-keras: FaceBehaviorNet (Kollias, Sharmanska, Zafeiriou) in TensorFlow 2 / Keras 3."""

import os

# TensorFlow's default CPU allocator hands large buffers back to the OS after each op, so every
# training step page-faults its activations in again: on a 2-core CPU a third of the step was
# kernel time, and the BFC allocator (which keeps and reuses them) made the `small` step ~1.4×
# faster. TensorFlow reads this once, when it starts, so it only takes effect when fbn_keras is
# imported first (as by every `python -m fbn_keras.…` command); an explicit setting wins.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
