"""Two worker processes on 127.0.0.1 with TF_CONFIG: MultiWorkerMirroredStrategy trains and ends in step."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

#: What each worker runs: the project's own `train`, then its final weights saved for comparison.
WORKER = textwrap.dedent("""
    import logging
    import sys
    import numpy as np
    from fbn_keras.config import preset
    from fbn_keras.train import train

    logging.basicConfig(level=logging.INFO)
    data, out, weights = sys.argv[1:4]
    config = preset("tiny", steps=3, image_size=32, batch_va=4, batch_au=4, batch_expr=4, shuffle_buffer=16,
                    log_every=1, checkpoint_every=2)
    result = train(config, data, out, verbose=False)
    np.savez(weights, *result.model.get_weights())
""")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from fbn_keras.testbed import ensure_synthetic_testbed

    return ensure_synthetic_testbed(tmp_path_factory.getbasetemp() / "fbn-cache", scale=0.02)


#: What TF says when a worker's gRPC port was taken between `_free_ports` and the worker's start.
PORT_TAKEN = "Could not start gRPC server"
#: Ceiling on the workers' run: only a hang reaches it (the run itself takes well under a minute).
HANG_GUARD_S = 900


def _run_workers(data_dir, out: Path, tmp_path: Path) -> tuple[list, list[str]]:
    """Start both workers on two free ports and wait for them: (processes, logs)."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs, log_files = [], [out.parent / f"{out.name}-worker{index}.log" for index in range(2)]
    for index, log_file in enumerate(log_files):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
        with log_file.open("w") as sink:
            procs.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, str(data_dir), str(out), str(tmp_path / f"w{index}.npz")],
                cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True))
    try:
        # Until both end, or one fails (its peer would otherwise wait for it forever).
        for _ in range(HANG_GUARD_S * 5):
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return procs, [f.read_text() for f in log_files]


@pytest.mark.slow
def test_two_workers_train_and_end_with_identical_weights(data_dir, tmp_path):
    # A port found free can be taken by another process before the worker binds it (other tests or
    # jobs on a shared machine): that attempt fails to start its gRPC server and is retried on new ports.
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        procs, logs = _run_workers(data_dir, out, tmp_path)
        if not any(PORT_TAKEN in log for log in logs):
            break
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    # TF names MultiWorkerMirroredStrategy's class CollectiveAllReduceStrategy.
    assert "CollectiveAllReduceStrategy with 2 replica(s); chief=True" in logs[0], logs[0][-3000:]
    assert "CollectiveAllReduceStrategy with 2 replica(s); chief=False" in logs[1], logs[1][-3000:]

    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for k in w0.files:
        np.testing.assert_allclose(w0[k], w1[k], rtol=1e-6, atol=1e-7, err_msg=k)
    # Only the chief keeps a checkpoint and the model; the other worker's scratch copy is gone.
    assert (out / "model.keras").exists()
    assert (out / "checkpoints" / "ckpt-3.index").exists()
    assert not (out / ".worker-1").exists()
