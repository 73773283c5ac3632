"""fbn_keras.train: what a resumed run restores (dropout RNG state), and the run's AU threshold in its evaluations."""

import csv
import dataclasses
import json

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
def test_resumed_run_continues_its_dropout_rng_and_evaluates_at_its_au_threshold(data_dir, tmp_path):
    """One interrupted and resumed CLI run checks both (two runs would cost twice the CPU).

    Steps 1 | 2, 3 with dropout 0.5, validation at step 2, final evaluation on the test split after step 3.
    """
    from fbn_keras.evaluate import evaluate_model
    from fbn_keras.train import main

    out = tmp_path / "run"
    # Threshold 1e-6: every AU is called present (a sigmoid that low needs a logit below −13.8, far from
    # what 3 steps from random initialisation give), so each AU F1 is known from the labels alone.
    common = ["--data", str(data_dir), "--out", str(out), "--preset", "tiny", "--dropout", "0.5", "--deterministic",
              "--eval-every", "1", "--checkpoint-every", "1", "--log-every", "1", "--au-threshold", "1e-6",
              "--image-size", "32", "--batch-va", "4", "--batch-au", "4", "--batch-expr", "4",
              "--shuffle-buffer", "16"]
    assert main(common + ["--steps", "1", "--no-eval"]) == 0          # interrupted after step 1
    assert main(common + ["--steps", "3", "--resume"]) == 0           # resumed for steps 2 and 3

    # --- Dropout RNG state ---
    names, at1 = _rng_states(out, 1)
    assert len(names) == 2                    # both Dropout layers' states are in the checkpoint
    _, at3 = _rng_states(out, 3)
    # Keras' SeedGenerator state is [seed, draws] and each step draws once per Dropout layer, so an
    # uninterrupted run holds [seed, 3] after step 3. Had the resumed run restarted its generators
    # (the RNG state not checkpointed) it would have redrawn step 1's masks and hold [seed, 2].
    for s1, s3 in zip(at1, at3):
        assert s1[1] == 1 and s3[1] == 3 and s3[0] == s1[0]

    # --- The run's AU threshold in the periodic validation and the final evaluation ---
    validation = {(r["database"], r["metric"]): float(r["value"])
                  for r in csv.DictReader((out / "validation.csv").open()) if r["step"] == "2"}
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
