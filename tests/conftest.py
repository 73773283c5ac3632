"""Shared test set-up: quiet TensorFlow, the CPU split into 2 logical devices, small fixtures.

The CPU is split before any test touches TensorFlow (it can only be split
before the runtime initialises), so every test process sees
/cpu:0 and /cpu:1 and the distribution tests can build a 2-replica
MirroredStrategy; code that does not ask for a strategy runs on /cpu:0 as usual.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import fbn_keras  # noqa: F401,E402  (before TensorFlow starts: it sets TF's CPU allocator)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

LOGICAL_CPUS = [d.name for d in tf.config.list_logical_devices("CPU")]


def fresh_mirrored_strategy(devices):
    """A MirroredStrategy whose collective keys do not collide with earlier ones in this process.

    Every new MirroredStrategy numbers its collectives from the same base, so a
    second multi-device strategy in one process fails with "Shape mismatch in the
    collective instance"; TF's own tests move the base on, as we do here.
    """
    tf.distribute.MirroredStrategy._collective_key_base += 100000
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture
def two_cpu_strategy():
    """A MirroredStrategy with 2 replicas on the 2 logical CPUs."""
    assert len(LOGICAL_CPUS) >= 2, LOGICAL_CPUS
    return fresh_mirrored_strategy(LOGICAL_CPUS[:2])


@pytest.fixture
def one_cpu_strategy():
    """The same code path on 1 replica, for comparison with two_cpu_strategy."""
    return fresh_mirrored_strategy(LOGICAL_CPUS[:1])


@pytest.fixture
def rng():
    return np.random.default_rng(0)
