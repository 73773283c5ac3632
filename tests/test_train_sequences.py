"""The one trainer for every network: the registry, each video network's update step, a sequence run and its
resume, the optimizers and the learning-rate schedule."""

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import registry, taxonomy
from fbn_keras.config import MODELS, preset
from fbn_keras.train import (first_non_finite, learning_rate_for, make_checkpoint, make_optimizer, make_train_step,
                             train)

SEQUENCE_MODELS = [name for name, spec in registry.SPECS.items() if spec.kind == "sequence"]
T, B, SIZE = 4, 2, 32


def test_every_model_name_has_a_registry_entry():
    assert sorted(MODELS) == sorted(registry.SPECS)
    assert registry.spec("facebehaviornet").kind == "frames"
    with pytest.raises(ValueError, match="Unknown model 'nonesuch'"):
        registry.spec("nonesuch")


def _window_batch(config, rng):
    """A hand-made (inputs, labels) batch of B windows of T frames, the last frame of window 1 padding."""
    frame_mask = np.ones((B, T), np.float32)
    frame_mask[1, -1] = 0.0
    inputs = {"frames": rng.uniform(-1, 1, (B, T, SIZE, SIZE, 3)).astype(np.float32)}
    if "landmarks" in registry.sequence_inputs(config):
        inputs["landmarks"] = rng.uniform(-1, 1, (B, T, 136)).astype(np.float32)
    if "audio" in registry.sequence_inputs(config):
        inputs["audio"] = rng.uniform(-1, 1, (B, T, 96, 96, 1)).astype(np.float32)
    expr = rng.integers(0, taxonomy.NUM_EXPRESSIONS, (B, T))
    expr[1, -1] = -1
    labels = {"va": rng.uniform(-1, 1, (B, T, 2)).astype(np.float32), "va_mask": frame_mask,
              "expr": expr.astype(np.int64), "au": (rng.random((B, T, taxonomy.NUM_AUS)) < 0.4).astype(np.float32),
              "au_mask": np.repeat(frame_mask[..., None], taxonomy.NUM_AUS, -1), "frame_mask": frame_mask}
    return ({k: tf.constant(v) for k, v in inputs.items()}, {k: tf.constant(v) for k, v in labels.items()})


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_each_video_network_takes_finite_update_steps(name, one_cpu_strategy, rng):
    """Two steps of the one update step on a window batch: finite losses, each of the network's heads
    has a term, the update is applied and the weights move."""
    config = preset("tiny", model=name, image_size=SIZE, seq_length=T, seq_batch=B)
    spec = registry.spec(name)
    with one_cpu_strategy.scope():
        model = spec.build(config)
        loss_fn = spec.make_loss(config, model, None)
        optimizer = make_optimizer(config, 10)
        optimizer.build(model.trainable_variables)
    step = make_train_step(model, loss_fn, optimizer, one_cpu_strategy)
    batch = _window_batch(config, rng)
    before = [w.copy() for w in model.get_weights()]
    for _ in range(2):
        losses, applied = step(batch)
        values = {k: float(v) for k, v in losses.items()}
        assert bool(applied) and first_non_finite(values) is None, values
    assert set(values) == {*registry.video_info(config).heads, "total"}
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    """A small synthetic Aff-Wild2-like folder (VA, expressions, AUs, landmarks) with its sequence shards."""
    from fbn_keras import sequences
    from fbn_keras.records import synthetic_video, writer

    out = tmp_path_factory.mktemp("video")
    writer.write_shards(synthetic_video.items(scale=0.5, databases=["synthv-affwild2"], length=24), out,
                        synthetic_video.BUILD, aligner="none", image_size=SIZE)
    sequences.write_sequence_shards(out)
    return out


def test_a_sequence_network_trains_resumes_and_is_scored(video_dir, tmp_path):
    """`train` runs AffWildNet (landmarks) through the one loop: checkpoints, a resume continuing at the
    saved step, the saved model, and the sequence evaluation per frame."""
    out = tmp_path / "run"
    config = preset("tiny", model="affwildnet", image_size=SIZE, seq_length=T, seq_batch=B, steps=2,
                    checkpoint_every=1, log_every=1, eval_every=0)
    first = train(config, video_dir, out, verbose=False)
    assert first.step == 2 and tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-2")
    longer = preset("tiny", model="affwildnet", image_size=SIZE, seq_length=T, seq_batch=B, steps=3,
                    checkpoint_every=1, log_every=1, eval_every=0)
    resumed = train(longer, video_dir, out, resume=True, verbose=False)
    assert resumed.step == 3 and tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-3")
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows if not r.startswith("step")] == ["1", "2", "3"]
    # Images per step in the log: B windows of T frames.
    assert (out / "model.keras").exists()
    scores = registry.spec("affwildnet").evaluate(resumed.model, video_dir, "test", longer)
    assert set(scores) == {"synthv-affwild2"}
    assert -1.0 <= scores["synthv-affwild2"]["ccc_valence"] <= 1.0


def test_a_sequence_network_refuses_databases_it_cannot_train_on(video_dir, tmp_path):
    config = preset("tiny", model="cnn", image_size=SIZE, seq_length=T, seq_batch=B, steps=1,
                    video_databases="synthv-omg")
    with pytest.raises(ValueError, match=r"video_databases \['synthv-omg'\] have no 'train' sequence shards"):
        train(config, video_dir, tmp_path / "run", verbose=False)


def test_exp_after_schedule_is_constant_then_decays_per_interval():
    """1e-4 for 10 steps, then x0.9 every 5 steps: worked out by hand."""
    config = preset("tiny", learning_rate=1e-4, lr_schedule="exp_after", lr_decay_start=10, lr_decay_every=5,
                    lr_decay_rate=0.9)
    schedule = learning_rate_for(config, 100)
    expected = {0: 1e-4, 10: 1e-4, 14: 1e-4, 15: 9e-5, 19: 9e-5, 20: 8.1e-5, 30: 6.561e-5}
    for step, rate in expected.items():
        assert float(schedule(step)) == pytest.approx(rate, rel=1e-5), step


def test_weight_decay_spares_a_loss_own_variables():
    """SGD with decoupled weight decay 0.5 at rate 0.1 on a zero gradient: a weight of 1 becomes
    1 - 0.1 * 0.5 = 0.95; a loss's own variable (excluded) stays at 1."""
    config = preset("tiny", optimizer="sgd", learning_rate=0.1, weight_decay=0.5)
    weight, own = tf.Variable(1.0, name="w"), tf.Variable(1.0, name="log_var")
    optimizer = make_optimizer(config, 10, no_decay=(own,))
    optimizer.apply([tf.zeros(()), tf.zeros(())], [weight, own])
    assert float(weight.numpy()) == pytest.approx(0.95) and float(own.numpy()) == 1.0
    with pytest.raises(ValueError, match="weight_decay needs optimizer adamw or sgd"):
        preset("tiny", weight_decay=0.1)


def test_a_loss_own_variables_are_trained_and_checkpointed(one_cpu_strategy, tmp_path):
    """A loss with a trainable variable: the update step moves it (loss = (s - 3)^2, Adam moves s by
    about the rate from 0), and the checkpoint saves and restores it."""
    class OwnLoss:
        def __init__(self):
            self.s = tf.Variable(0.0, name="s")

        @property
        def trainable_variables(self):
            return [self.s]

        def __call__(self, outputs, labels):
            total = tf.square(self.s - 3.0) + 0.0 * tf.reduce_sum(outputs["va"])
            return {"own": total, "total": total}

    config = preset("tiny", learning_rate=0.01)
    with one_cpu_strategy.scope():
        model = registry.spec("facebehaviornet").build(preset("tiny", image_size=SIZE))
        loss_fn = OwnLoss()
        variables = list(model.trainable_variables) + loss_fn.trainable_variables
        optimizer = make_optimizer(config, 10)
        optimizer.build(variables)
        step_var = tf.Variable(0, dtype=tf.int64)
        checkpoint = make_checkpoint(model, optimizer, step_var, loss_fn.trainable_variables)
    step = make_train_step(model, loss_fn, optimizer, one_cpu_strategy, variables)
    images = tf.zeros((2, SIZE, SIZE, 3))
    step((images, {}))
    assert float(loss_fn.s.numpy()) == pytest.approx(0.01, rel=1e-3)   # Adam's first step: + rate
    path = checkpoint.save(str(tmp_path / "ckpt"))
    loss_fn.s.assign(-7.0)
    checkpoint.restore(path)
    assert float(loss_fn.s.numpy()) == pytest.approx(0.01, rel=1e-3)


def test_mtanet_trains_its_task_uncertainties_through_the_one_trainer(tmp_path):
    """`--model mtanet` with eq. 5: the run moves log sigma^2 away from 0 (its init), checkpoints it
    under the loss's key, logs sigma per task, and is scored on its 8 AUs only."""
    from fbn_keras import testbed
    from fbn_keras.mtanet import mtanet_au_slots

    data = testbed.ensure_synthetic_testbed(scale=0.1)
    config = preset("tiny", model="mtanet", image_size=SIZE, steps=2, eval_every=0, checkpoint_every=1,
                    log_every=1, mtanet_weighting="uncertainty", optimizer="sgd", learning_rate=0.1,
                    weight_decay=5e-3)
    result = train(config, data, tmp_path / "run", verbose=False)
    assert {"sigma_va", "sigma_au", "sigma_expr"} <= set(result.last_losses)
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints"))
    saved = [n for n in reader.get_variable_to_shape_map() if n.startswith("loss/") and "OPTIMIZER" not in n]
    assert len(saved) == 3 and all(float(reader.get_tensor(n)) != 0.0 for n in saved), saved
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "loss/sigma_au" in header
    scores = registry.spec("mtanet").evaluate(result.model, data, "test", config)
    bp4d_aus = set(taxonomy.database("synth-bp4d").aus)
    assert bp4d_aus - {taxonomy.AUS[i] for i in mtanet_au_slots()}       # BP4D has AUs MTANet lacks...
    assert 0.0 <= scores["synth-bp4d"]["au_f1"] <= 1.0                   # ...and is scored on the shared ones
