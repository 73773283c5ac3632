"""fbn_keras.train: the explicit loop on a tiny synthetic test-bed (couplings, NaN handling, outputs, resume)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import taxonomy
from fbn_keras.config import COUPLINGS, preset
from fbn_keras.losses import MultiTaskLoss
from fbn_keras.train import (NonFiniteLossError, concat_batches, constant_va_output, first_non_finite,
                             make_train_step, run_loop, steps_for, train)

REPO = Path(__file__).resolve().parents[1]
#: Tiny everything: 32×32 inputs keep the VGG trunk's five pools and make each step cheap.
TINY = dict(image_size=32, batch_va=4, batch_au=4, batch_expr=4, shuffle_buffer=16)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny synthetic test-bed (every database, a few dozen images each), built once per session."""
    from fbn_keras.testbed import ensure_synthetic_testbed

    return ensure_synthetic_testbed(tmp_path_factory.getbasetemp() / "fbn-cache", scale=0.02)


# === Pure helpers ===

def test_concat_batches_orders_va_au_expr_and_joins_every_label():
    def batch(n, fill):
        return (tf.fill((n, 2, 2, 3), float(fill)),
                {"va": tf.fill((n, 2), float(fill)), "expr": tf.fill((n,), fill)})

    images, labels = concat_batches({"expr": batch(1, 3), "va": batch(2, 1), "au": batch(3, 2)})
    assert images[:, 0, 0, 0].numpy().tolist() == [1, 1, 2, 2, 2, 3]
    assert labels["expr"].numpy().tolist() == [1, 1, 2, 2, 2, 3]
    assert labels["va"].shape == (6, 2)
    with pytest.raises(ValueError, match="Label keys differ"):
        concat_batches({"va": batch(1, 1), "au": (tf.zeros((1, 2, 2, 3)), {"va": tf.zeros((1, 2))})})
    with pytest.raises(ValueError, match="Expected batches keyed"):
        concat_batches({"faces": batch(1, 1)})


def test_first_non_finite_names_a_term_before_the_total():
    assert first_non_finite({"total": float("nan"), "va": float("nan"), "au": 0.3}) == "va"
    assert first_non_finite({"total": float("inf"), "au": 0.3}) == "total"
    assert first_non_finite({"total": 1.0, "au": 0.3}) is None


def test_a_constant_va_output_is_told_from_a_slow_start():
    # 1 − CCC is exactly 1 only when the prediction does not vary; 0.9988 is the first interval of a
    # network that was still moving (the collapsed campaign run logged it at step 50, then 1.0).
    assert constant_va_output({"loss/va": 1.0, "loss/total": 1.3})
    assert not constant_va_output({"loss/va": 0.9988})
    assert not constant_va_output({"loss/total": 1.0})   # no VA head: nothing to say


def test_the_loop_warns_once_when_the_va_output_collapses(tmp_path, caplog):
    step_var = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step_var), tmp_path / "ckpt", max_to_keep=1)
    config = preset("tiny", log_every=2, checkpoint_every=100)

    def step_fn(step):   # moving for two steps, then flat at 1 − CCC(0) = 1 for six
        va = 0.9 if step <= 2 else 1.0
        return {"va": tf.constant(va), "total": tf.constant(va)}, tf.constant(True)

    with caplog.at_level("WARNING", logger="fbn_keras.train"):
        run_loop(step_fn, config, tmp_path, 0, 8, step_var, manager, verbose=False)
    warnings = [r for r in caplog.records if "collapsed" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("step 4:"), caplog.text


def test_epochs_become_steps_of_the_longest_task_pass():
    # VA: ceil(20/8) = 3 steps per pass, AU: ceil(17/8) = 3, EXPR: ceil(8/8) = 1 → 3 per epoch; 1.5 epochs → 5.
    config = preset("tiny", epochs=1.5, batch_va=8, batch_au=8, batch_expr=8)
    assert steps_for(config, {"va": 20, "au": 17, "expr": 8}) == 5
    assert steps_for(preset("tiny", steps=7), {}) == 7
    with pytest.raises(ValueError, match="No training images"):
        steps_for(config, {"va": 0, "au": 0, "expr": 0})


# === The update step on real input ===

def _step_fixture(config, data_dir):
    from fbn_keras.data import make_train_dataset
    from fbn_keras.model import build_facebehaviornet

    strategy = tf.distribute.get_strategy()   # the default strategy: same code path, one replica
    model = build_facebehaviornet(config)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, MultiTaskLoss(config), optimizer, strategy)
    return model, step, iter(make_train_dataset(data_dir, config))


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_every_coupling_trains_with_finite_losses(data_dir, coupling):
    config = preset("tiny", coupling=coupling, **TINY)
    model, step, batches = _step_fixture(config, data_dir)
    before = [w.copy() for w in model.get_weights()]
    for _ in range(2):
        losses, applied = step(next(batches))
        assert bool(applied)
    values = {k: float(v) for k, v in losses.items()}
    expected = {"total", "va", "au", "expr"} | set(config.coupling_terms - {"coann"})
    assert set(values) == expected
    assert all(np.isfinite(v) for v in values.values()), values
    assert values["total"] > 0
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def _records_with_bad_labels(size: int) -> tf.Tensor:
    """Two serialized records as the reader sees them: a NaN valence with its mask on and an expression
    index 9 (out of 0–6), then a sound VA record."""
    from fbn_keras import data

    jpeg = tf.io.encode_jpeg(tf.fill((size, size, 3), tf.constant(128, tf.uint8))).numpy()
    bad = data.make_example(jpeg, "synth-test", "bad-record", va=(np.nan, 0.3), expr=9)
    good = data.make_example(jpeg, "synth-test", "good-record", va=(0.2, -0.1))
    return tf.constant([bad.SerializeToString(), good.SerializeToString()])


def test_nan_and_out_of_range_labels_are_masked_and_counted_by_the_reader(data_dir, capfd):
    """What fbn_keras.data promises (`sanitize_labels`): a bad label is masked and counted before any
    loss sees it, so the step is applied with finite losses. Without the masking the NaN valence
    (mask 1) would make the VA loss NaN and the step would be skipped: `applied` would be False."""
    from fbn_keras.data import parse_records

    config = preset("tiny", **TINY)
    model, step, batches = _step_fixture(config, data_dir)
    bad_images, bad_labels = parse_records(_records_with_bad_labels(config.image_size), config.image_size)
    assert "records [\"bad-record\"] had [2] non-finite or out-of-range" in capfd.readouterr().err
    assert bad_labels["va_mask"].numpy().tolist() == [0.0, 1.0]               # NaN pair: masked
    assert bad_labels["va"].numpy()[0].tolist() == [0.0, 0.0]
    assert bad_labels["expr"].numpy().tolist() == [-1, -1]                    # 9 → missing
    images, labels = concat_batches(next(batches))
    images = tf.concat([bad_images, images], axis=0)
    labels = {k: tf.concat([bad_labels[k], v], axis=0) for k, v in labels.items()}
    before = model.get_weights()
    losses, applied = step((images, labels))
    values = {k: float(v) for k, v in losses.items()}
    assert bool(applied) and first_non_finite(values) is None, values
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_a_nan_label_that_reaches_the_loss_skips_the_step(data_dir):
    """Past the reader (a NaN put straight into the step's labels), the step reports the VA term as
    non-finite and applies nothing: every weight is bit-for-bit what it was."""
    config = preset("tiny", **TINY)
    model, step, batches = _step_fixture(config, data_dir)
    images, labels = concat_batches(next(batches))
    labels = dict(labels)
    va = labels["va"].numpy()
    va[0] = np.nan                                       # a labelled VA row (the VA batch comes first)
    labels["va"], labels["va_mask"] = tf.constant(va), tf.ones_like(labels["va_mask"])
    before = model.get_weights()
    losses, applied = step((images, labels))
    values = {k: float(v) for k, v in losses.items()}
    assert not bool(applied) and first_non_finite(values) == "va", values
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


class _PoisonedDM:
    """MultiTaskLoss whose distribution-matching term turns NaN from the 3rd call of the step on."""

    def __init__(self, config, **kwargs):
        self.inner = MultiTaskLoss(config, **kwargs)
        self.calls = tf.Variable(0, trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def __call__(self, outputs, labels):
        terms = dict(self.inner(outputs, labels))
        self.calls.assign_add(1)
        nan = tf.constant(np.nan, tf.float32)
        terms["dm"] = tf.where(self.calls >= 3, nan, terms["dm"])
        terms["total"] = terms["total"] + terms["dm"]
        return terms


def test_nan_loss_stops_with_the_term_and_the_step(data_dir, tmp_path, monkeypatch):
    import fbn_keras.losses

    monkeypatch.setattr(fbn_keras.losses, "MultiTaskLoss", _PoisonedDM)     # what the registry builds
    config = preset("tiny", steps=6, coupling="soft+dm", checkpoint_every=2, **TINY)
    with pytest.raises(NonFiniteLossError, match=r"step 3: term 'dm'"):
        train(config, data_dir, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run" / "model.keras").exists()
    # The checkpoint of step 2 is intact and finite: the NaN step wrote nothing.
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 2


# === A whole run: outputs, evaluation, refusal to mix runs ===

def test_train_writes_model_config_logs_and_evaluates(data_dir, tmp_path):
    from fbn_keras.evaluate import evaluate_model, format_table
    from fbn_keras.train import METRICS_FILE

    out = tmp_path / "run"
    config = preset("tiny", steps=4, log_every=2, checkpoint_every=2, eval_every=2, **TINY)
    result = train(config, data_dir, out, verbose=False)
    assert result.step == 4
    assert json.loads((out / "config.json").read_text())["image_size"] == 32
    rows = (out / METRICS_FILE).read_text().splitlines()
    assert rows[0].split(",")[:2] == ["step", "loss/au"] and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-4")
    validation = (out / "validation.csv").read_text().splitlines()
    assert validation[0] == "step,database,metric,value"
    assert "2,synth-rafdb,expr_mean_diag," in (out / "validation.csv").read_text()   # at step 2, not at the end
    assert all(r.startswith("2,") for r in validation[1:])

    loaded = keras.saving.load_model(out / "model.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x)["au"], result.model(x)["au"], rtol=1e-5, atol=1e-6)

    results = evaluate_model(loaded, data_dir, "test")
    assert {"synth-affwild", "synth-rafdb", "synth-disfa", "synth-emotionet", "synth-affwild2"} <= set(results)
    assert {"ccc_v", "ccc_a", "expr_f1", "au_f1", "expr_abaw"} <= set(results["synth-affwild2"])
    assert set(results["synth-emotionet"]) >= {"au_f1", "au_mean_acc", "au_afa"}
    for scores in results.values():
        assert all(np.isfinite(v) for v in scores.values())
    assert "synth-rafdb Mean diag. of conf. matrix" in format_table(results, config.coupling)

    with pytest.raises(FileExistsError, match="--resume"):
        train(config, data_dir, out, verbose=False)


# === Resume after a kill (the CLI, in subprocesses) ===

def _cli(args, stdout=subprocess.PIPE):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "fbn_keras.train", *args], cwd=REPO, env=env,
                            stdout=stdout, stderr=subprocess.STDOUT, text=True)


#: Ceiling on any wait of the subprocess tests: only a hang reaches it (a step takes well under a second).
HANG_GUARD_S = 900


def _latest_step(run: Path) -> int:
    """The step of the checkpoint that the `checkpoint` state file names (what --resume restores), 0 if none."""
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.mark.slow
def test_resume_after_kill_continues_from_the_last_checkpoint(data_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(data_dir), "--preset", "tiny", "--out", str(out), "--no-eval", "--log-every", "1",
              "--image-size", "32", "--batch-va", "4", "--batch-au", "4", "--batch-expr", "4"]
    first_log = tmp_path / "first.log"     # a file, not a pipe: nobody reads while it runs, so it never blocks
    with first_log.open("w") as sink:
        proc = _cli(common + ["--steps", "100000", "--checkpoint-every", "3"], stdout=sink)
    try:
        # Wait on what resume reads: the `checkpoint` state file naming ckpt-6 (CheckpointManager writes
        # ckpt-6.index before it updates that file, so the index alone may still be followed by ckpt-3).
        # The loop ends on the state file or on the process ending; a hang is the only thing the
        # generous ceiling guards against, never the machine's speed.
        for _ in range(HANG_GUARD_S * 5):
            if _latest_step(out) >= 6 or proc.poll() is not None:   # two checkpoints in: surely mid-run
                break
            time.sleep(0.2)
        assert proc.poll() is None, first_log.read_text()
        assert _latest_step(out) >= 6, f"no second checkpoint after {HANG_GUARD_S} s: hung?"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(HANG_GUARD_S)
    saved = _latest_step(out)
    assert 6 <= saved < 100000

    proc = _cli(common + ["--steps", str(saved + 2), "--checkpoint-every", "3", "--resume"])
    log, _ = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 0, log
    assert f"at step {saved}" in log
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith(f"ckpt-{saved + 2}")
    steps = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines() if r[0].isdigit()]
    # The resumed run logs exactly the steps after the checkpoint (the killed run may have logged a few
    # past it before dying), and never starts from step 1 again.
    last_start = len(steps) - 1 - steps[::-1].index(saved + 1)
    assert steps[last_start:] == [saved + 1, saved + 2]
    assert steps.count(1) == 1
    assert (out / "model.keras").exists()


def test_learning_rate_schedule_by_hand():
    from fbn_keras.train import learning_rate_for
    assert learning_rate_for(preset("tiny", lr_schedule="constant", learning_rate=0.01), 100) == 0.01
    sched = learning_rate_for(preset("tiny", lr_schedule="cosine", learning_rate=0.01), 100)
    # cosine decay to alpha = 5 %: lr(t) = 0.01·(0.05 + 0.95·½(1 + cos(π t / 100)))
    assert float(sched(0)) == pytest.approx(0.01, rel=1e-6)
    assert float(sched(50)) == pytest.approx(0.01 * (0.05 + 0.95 * 0.5), rel=1e-5)
    assert float(sched(100)) == pytest.approx(0.0005, rel=1e-5)


@pytest.mark.parametrize("mode, power", [("balanced", 1.0), ("sqrt_balanced", 0.5)])
def test_balanced_au_pos_weight_is_computed_from_the_training_labels(data_dir, tmp_path, mode, power):
    from fbn_keras.data import au_label_counts
    from fbn_keras.train import AU_POS_WEIGHT_FILE

    out = tmp_path / "run"
    config = preset("tiny", steps=2, eval_every=0, au_pos_weight=mode, au_pos_weight_max=4.0, **TINY)
    result = train(config, data_dir, out, verbose=False)
    assert all(np.isfinite(v) for v in result.last_losses.values())
    table = json.loads((out / AU_POS_WEIGHT_FILE).read_text())
    positives, annotated = au_label_counts(data_dir)
    assert annotated.sum() > 0
    for au, p, n in zip(taxonomy.AUS, positives, annotated):
        entry = table[f"AU{au}"]
        assert (entry["positives"], entry["annotated"]) == (p, n)
        want = 1.0 if p == 0 else min(4.0, max(0.25, ((n - p) / p) ** power))
        assert entry["pos_weight"] == pytest.approx(want, abs=1e-4)
