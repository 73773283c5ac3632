"""Which `tf.distribute` strategy a run uses, and who in the cluster writes files.

One code path for one device, several devices and several machines:
`MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than one worker, else
`MirroredStrategy` over the visible GPUs (or the first CPU).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import tensorflow as tf


def cluster_spec(tf_config: Optional[str] = None) -> dict:
    """The parsed `TF_CONFIG` (argument, else environment); {} when unset or empty."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw.strip():
        return {}
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: {raw!r}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object. Received: {raw!r}")
    return spec


def num_workers(tf_config: Optional[str] = None) -> int:
    """How many machines the cluster in `TF_CONFIG` has (workers plus a chief); 1 without one."""
    cluster = cluster_spec(tf_config).get("cluster", {})
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def task_id(tf_config: Optional[str] = None) -> tuple[str, int]:
    """(task type, index) of this process in `TF_CONFIG`; ("worker", 0) without one."""
    task = cluster_spec(tf_config).get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0))


def choose_strategy(devices: Optional[Sequence[str]] = None) -> tf.distribute.Strategy:
    """`MultiWorkerMirroredStrategy` when TF_CONFIG names several workers, else `MirroredStrategy`.

    `devices` (e.g. ["/cpu:0", "/cpu:1"]) overrides the single-machine default,
    which is every visible GPU, or the first CPU when there is none.
    """
    if num_workers() > 1:
        if devices is not None:
            raise ValueError(f"devices cannot be chosen under a multi-worker TF_CONFIG. Received: {devices}")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or ["/cpu:0"]
    return tf.distribute.MirroredStrategy(list(devices))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes logs, checkpoints and the final model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_dir(out_dir: str | Path, strategy: tf.distribute.Strategy) -> Path:
    """Where this process saves checkpoints: `out_dir` on the chief, a private scratch folder elsewhere.

    Under MultiWorkerMirroredStrategy every worker must take part in a save
    (the values are gathered collectively), but only the chief's copy is kept.
    """
    out_dir = Path(out_dir)
    if is_chief(strategy):
        return out_dir
    resolver = strategy.cluster_resolver
    return out_dir / f".{resolver.task_type}-{resolver.task_id}"
