"""fbn_keras.train: what a resumed run restores (dropout RNG state), and the run's AU threshold in its evaluations."""

import csv
import dataclasses
import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import taxonomy
from fbn_keras.config import preset
from fbn_keras.train import RNG_CHECKPOINT_KEY, rng_state_variables

#: 32×32 inputs and 4 images per task set: each step is cheap.
TINY = dict(image_size=32, batch_va=4, batch_au=4, batch_expr=4, shuffle_buffer=16)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The tiny synthetic test-bed (shared with test_train.py's fixture through the same cache folder)."""
    from fbn_keras.testbed import ensure_synthetic_testbed

    return ensure_synthetic_testbed(tmp_path_factory.getbasetemp() / "fbn-cache", scale=0.02)


# === Resume restores the dropout RNG state ===

def _rng_states(run, step):
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{step}"))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith(f"{RNG_CHECKPOINT_KEY}/"))
    return names, [reader.get_tensor(n) for n in names]


def test_rng_state_variables_are_the_dropout_seed_generators():
    from fbn_keras.model import build_facebehaviornet

    model = build_facebehaviornet(preset("tiny", dropout=0.5, image_size=32))
    states = rng_state_variables(model)
    assert len(states) == 2                                   # dropout1, dropout2
    assert all(tuple(v.shape) == (2,) for v in states)
    assert rng_state_variables(build_facebehaviornet(preset("tiny", dropout=0.0, image_size=32))) == []


def _batch(seed):
    """A fixed concatenated batch (4 VA, 4 AU, 4 expression rows) of 32×32 images."""
    rng = np.random.default_rng(seed)
    n = 12
    au_mask = np.zeros((n, taxonomy.NUM_AUS), np.float32)
    au_mask[4:8] = taxonomy.au_mask_for(taxonomy.DATABASES["disfa"].aus)
    labels = {"va": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
              "va_mask": np.r_[np.ones(4), np.zeros(8)].astype(np.float32),
              "au": rng.integers(0, 2, (n, taxonomy.NUM_AUS)).astype(np.float32), "au_mask": au_mask,
              "expr": np.r_[np.full(8, -1), rng.integers(0, 7, 4)].astype(np.int32)}
    images = rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)
    return tf.constant(images), {k: tf.constant(v) for k, v in labels.items()}


def _fresh_run(config):
    """Model, optimizer, step variable and update step as `train` builds them, from the config's seed."""
    from fbn_keras.losses import MultiTaskLoss
    from fbn_keras.model import build_facebehaviornet
    from fbn_keras.train import make_train_step

    keras.utils.set_random_seed(config.seed)
    strategy = tf.distribute.get_strategy()
    model = build_facebehaviornet(config)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    return model, optimizer, step_var, make_train_step(model, MultiTaskLoss(config), optimizer, strategy)


def test_resume_on_the_same_batches_gives_the_same_weights_exactly(tmp_path, caplog):
    """Step 1, checkpoint, step 2 in one go = step 1, checkpoint, a fresh process restoring it, step 2."""
    from fbn_keras.train import make_checkpoint, restore_checkpoint

    config = preset("tiny", dropout=0.5, image_size=32)
    first, second = _batch(1), _batch(2)
    model, optimizer, step_var, step = _fresh_run(config)
    step(first)
    path = make_checkpoint(model, optimizer, step_var).save(str(tmp_path / "ckpt"))
    # The same state as a checkpoint written before the RNG states were saved.
    old = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var).save(str(tmp_path / "old"))
    step(second)
    once = model.get_weights()

    model, optimizer, step_var, step = _fresh_run(config)   # a resumed process builds everything anew
    restore_checkpoint(make_checkpoint(model, optimizer, step_var), path)
    step(second)
    for a, b in zip(once, model.get_weights()):
        np.testing.assert_array_equal(a, b)

    # Without the RNG states (the older checkpoint: restored with a warning) step 2 redraws step 1's
    # dropout masks, and the weights differ.
    model, optimizer, step_var, step = _fresh_run(config)
    with caplog.at_level(logging.WARNING, logger="fbn_keras.train"):
        restore_checkpoint(make_checkpoint(model, optimizer, step_var), old)
    assert "holds no dropout RNG state" in caplog.text
    step(second)
    assert any(not np.array_equal(a, b) for a, b in zip(once, model.get_weights()))


def test_a_resumed_run_draws_other_batches_so_final_weights_cannot_match(data_dir):
    # Why the two runs above end with different weights: the input pipeline is not checkpointed, and
    # a run resumed at step s reshuffles with seed + s, so its first batch is not the uninterrupted
    # run's batch s + 1.
    from fbn_keras.data import make_train_dataset

    config = preset("tiny", deterministic=True, **TINY)
    uninterrupted = iter(make_train_dataset(data_dir, config))
    third = [next(uninterrupted) for _ in range(3)][2]
    resumed_first = next(iter(make_train_dataset(data_dir, dataclasses.replace(config, seed=config.seed + 2))))
    assert not np.array_equal(third["expr"][0].numpy(), resumed_first["expr"][0].numpy())


# === The run's AU threshold in its own evaluations ===

def _all_present_scores(data_dir, split):
    """{database: (AU F1, AU mean accuracy)} when every annotated AU is called present.

    Each AU scores F1 = 2P / (P + n) (precision P/n, recall 1; 0 without positives) and accuracy P/n,
    over the n frames annotating it, P of them positive.
    """
    from fbn_keras.data import list_databases, make_eval_dataset

    out = {}
    for name, info in list_databases(data_dir).items():
        db = taxonomy.database(name)
        if "au" not in db.tasks or split not in info["splits"]:
            continue
        cols = [taxonomy.au_index(a) for a in db.aus]
        pos, n = np.zeros(len(cols)), np.zeros(len(cols))
        for _, labels in make_eval_dataset(data_dir, name, split=split, batch_size=256, image_size=32):
            m = labels["au_mask"].numpy()[:, cols] > 0
            y = labels["au"].numpy()[:, cols] >= 0.5
            pos += (m & y).sum(0)
            n += m.sum(0)
        seen = n > 0
        if seen.any():
            f1 = np.where(pos > 0, 2 * pos / np.maximum(pos + n, 1), 0.0)[seen]
            out[name] = (float(f1.mean()), float((pos[seen] / n[seen]).mean()))
    return out


@pytest.mark.slow
def test_a_run_checkpoints_its_dropout_rng_and_evaluates_at_its_au_threshold(data_dir, tmp_path):
    """One CLI run with dropout 0.5: validation at step 1, the final evaluation on the test split after step 2."""
    from fbn_keras.evaluate import evaluate_model
    from fbn_keras.train import main

    out = tmp_path / "run"
    # Threshold 1e-6: every AU is called present (a sigmoid that low needs a logit below −13.8, far from
    # what 2 steps from random initialisation give), so each AU F1 is known from the labels alone.
    assert main(["--data", str(data_dir), "--out", str(out), "--preset", "tiny", "--dropout", "0.5", "--steps", "2",
                 "--eval-every", "1", "--checkpoint-every", "2", "--log-every", "1", "--au-threshold", "1e-6",
                 "--image-size", "32", "--batch-va", "4", "--batch-au", "4", "--batch-expr", "4",
                 "--shuffle-buffer", "16"]) == 0

    # --- The checkpoint holds both Dropout layers' RNG states, [seed, draws]: one draw per step ---
    names, states = _rng_states(out, 2)
    assert len(names) == 2
    assert [int(s[1]) for s in states] == [2, 2]

    # --- The run's AU threshold in the periodic validation and the final evaluation ---
    validation = {(r["database"], r["metric"]): float(r["value"])
                  for r in csv.DictReader((out / "validation.csv").open()) if r["step"] == "1"}
    want_val = _all_present_scores(data_dir, "validation")
    assert want_val
    for name, (f1, _) in want_val.items():
        assert validation[(name, "au_f1")] == pytest.approx(f1, abs=1e-6), name

    final = json.loads((out / "eval_test.json").read_text())["results"]
    want_test = _all_present_scores(data_dir, "test")
    assert want_test
    for name, (f1, acc) in want_test.items():
        assert final[name]["au_f1"] == pytest.approx(f1, abs=1e-6), name
        if "au_mean_acc" in final[name]:
            assert final[name]["au_mean_acc"] == pytest.approx(acc, abs=1e-6), name

    # At the default 0.5 the same model scores differently: the numbers above came from the run's threshold.
    model = keras.saving.load_model(out / "model.keras")
    default = evaluate_model(model, data_dir, "test", databases=sorted(want_test))
    assert any(default[name]["au_f1"] != pytest.approx(final[name]["au_f1"], abs=1e-6) for name in want_test)
