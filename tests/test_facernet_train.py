"""FaceRNET through the one trainer: its registry entry, the video input, the routing in the real update step,
a run with checkpoint and resume, and the per-reaction Pearson scores (FaceRNET paper, Sections 3.2, 3.3).

Numbers are checked against hand arithmetic, never against the module's own output.
"""

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import facernet, registry, taxonomy
from fbn_keras.config import FACERNET_STAGES, Config, preset
from fbn_keras.train import make_optimizer, make_train_step, train

T, SIZE, UNITS = 8, 32, 8               # frames, image side and GRU units of the tiny runs
VIDEO_LENGTH = 6                        # frames of each synthetic video: frames 6 and 7 are padding


def tiny(**overrides):
    return preset("tiny", model="facernet", image_size=SIZE, facernet_frames=T, rnn_units=UNITS, **overrides)


# === The registry entry ===

def test_facernet_is_a_video_network_whose_rec_stage_trains_on_frames():
    spec = registry.spec("facernet")
    assert "video" in registry.KINDS and spec.kind == "video"
    assert tuple(facernet.STAGES) == FACERNET_STAGES
    assert Config().facernet_stage == "rnn" and Config().video_batch == 4 and tiny().video_batch == 2
    assert registry.kind(tiny()) == "video" and registry.kind(tiny(facernet_stage="end_to_end")) == "video"
    assert registry.kind(tiny(facernet_stage="rec")) == "frames"
    assert registry.frames_per_step(tiny()) == 2 * T
    with pytest.raises(ValueError, match="facernet_stage must be one of"):
        tiny(facernet_stage="head")
    with pytest.raises(ValueError, match="video_batch must be >= 1"):
        tiny(video_batch=0)


def test_stage_rec_builds_the_rec_with_eq_3_and_no_routing():
    from fbn_keras.losses import MultiTaskLoss

    config = tiny(facernet_stage="rec")
    spec = registry.spec("facernet")
    model = spec.build(config)
    assert model.name == "rec" and set(model.output) == {"va", "expr", "au"}
    loss = spec.make_loss(config, model, None)
    assert isinstance(loss, MultiTaskLoss) and "dm" in loss.term_names()
    assert spec.update_hooks(model) is None
    with pytest.raises(ValueError, match="facernet_stage 'rec' trains all three tasks"):
        spec.make_loss(tiny(facernet_stage="rec", tasks="va"), model, None)


def test_stages_rnn_and_end_to_end_set_what_trains():
    spec = registry.spec("facernet")
    rnn = spec.build(tiny())
    assert not rnn.get_layer("rec").trainable and rnn.get_layer(facernet.ROUTED_DENSE).trainable
    end_to_end = spec.build(tiny(facernet_stage="end_to_end"))
    rec_weights = len(end_to_end.get_layer("rec").trainable_weights)
    assert rec_weights > 0 and len(end_to_end.trainable_weights) == len(rnn.trainable_weights) + rec_weights
    assert isinstance(spec.make_loss(tiny(), rnn, None), facernet.IntensityLoss)
    assert spec.update_hooks(rnn) is not None
    assert spec.update_hooks(spec.build(tiny(facernet_mask="zero"))) is None


# === score_intensities ===

def test_score_intensities_by_hand():
    """Three videos; per column (y, y_hat) and rho worked out by hand:
    [0,1,2] vs [0,2,4]: 1;  [0,1,2] vs [4,2,0]: -1;  [0,1,2] vs [1,0,1]: cov 0, so 0;
    [0,0,1] vs [0,1,1]: means 1/3, 2/3, cov 3/9, variances 6/9 and 6/9, so (3/9)/(6/9) = 0.5;
    [0,1,2] vs [5,5,5]: a constant prediction, 0 (not NaN); [1,2,3] vs [10,20,30]: 1;
    [0,0,1] vs [1,0,0]: cov -3/9, so -0.5.  Mean: (1 - 1 + 0 + 0.5 + 0 + 1 - 0.5) / 7 = 1/7."""
    labels = np.array([[0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 1, 2, 0], [2, 2, 2, 1, 2, 3, 1]], np.float32)
    preds = np.array([[0, 4, 1, 0, 5, 10, 1], [2, 2, 0, 1, 5, 20, 0], [4, 0, 1, 1, 5, 30, 0]], np.float32)
    got = registry.score_intensities(labels, preds)
    want = dict(zip(taxonomy.REACTIONS, [1.0, -1.0, 0.0, 0.5, 0.0, 1.0, -0.5]))
    assert set(got) == {f"pearson_{r}" for r in taxonomy.REACTIONS} | {"pearson_mean"}
    for name, value in want.items():
        assert got[f"pearson_{name}"] == pytest.approx(value, abs=1e-9), name
    assert got["pearson_mean"] == pytest.approx(1 / 7, abs=1e-9)
    with pytest.raises(ValueError, match=r"labels and preds must both be \(N, 7\)"):
        registry.score_intensities(labels[:, :6], preds[:, :6])


# === Routing in the trainer's update step ===

def _video_batch(rng, lengths):
    frames = rng.uniform(-1, 1, (len(lengths), T, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.uniform(0, 1, (len(lengths), taxonomy.NUM_REACTIONS)).astype(np.float32)
    return ({"frames": tf.constant(frames), "length": tf.constant(np.asarray(lengths, np.int32))},
            {"intensity": tf.constant(labels), "intensity_mask": tf.ones((len(lengths),))})


@pytest.mark.parametrize("routing", [True, False])
def test_the_trainer_step_keeps_unrouted_rows_bit_identical(routing, one_cpu_strategy):
    """Two Adam steps of `make_train_step` with the spec's hooks: the first with every frame routed (so
    Adam's moments are non-zero on every row), the second with lengths 3 and 5 of T = 8. Rows of frames
    5..7 (5·8 = 40 on) stay bit-identical with the hooks; without them Adam's moments move them."""
    config = tiny(learning_rate=1e-2)
    spec = registry.spec("facernet")
    with one_cpu_strategy.scope():
        model = spec.build(config)
        loss_fn = spec.make_loss(config, model, None)
        optimizer = make_optimizer(config, 10)
        optimizer.build(model.trainable_variables)
    hooks = spec.update_hooks(model) if routing else None
    step = make_train_step(model, loss_fn, optimizer, one_cpu_strategy, hooks=hooks)
    rng = np.random.default_rng(3)
    kernel = model.get_layer(facernet.ROUTED_DENSE).kernel
    _, applied = step(_video_batch(rng, [T, T]))
    assert bool(applied)
    before = np.array(kernel.numpy())
    losses, applied = step(_video_batch(rng, [3, 5]))
    after = kernel.numpy()
    assert bool(applied) and np.isfinite(float(losses["total"]))
    unrouted = np.arange(T * UNITS) >= 5 * UNITS
    assert np.abs(after[~unrouted] - before[~unrouted]).max() > 0           # routed rows learn
    if routing:
        np.testing.assert_array_equal(after[unrouted], before[unrouted])
    else:
        assert np.abs(after[unrouted] - before[unrouted]).max() > 0


# === A run ===

@pytest.fixture(scope="module")
def reaction_dir(tmp_path_factory):
    """4 training and 3 test synthetic reaction videos of VIDEO_LENGTH frames at 32 × 32."""
    from fbn_keras.synthetic import intensity

    return intensity.build(tmp_path_factory.mktemp("reaction"), {"train": 4, "test": 3}, seed=1,
                           length=VIDEO_LENGTH, image_size=SIZE)


def test_video_train_dataset_batches_whole_videos(reaction_dir):
    (inputs, labels), = registry.train_dataset(reaction_dir, tiny()).take(1)
    assert inputs["frames"].shape == (2, T, SIZE, SIZE, 3)
    np.testing.assert_array_equal(inputs["length"].numpy(), [VIDEO_LENGTH] * 2)
    assert labels["intensity"].shape == (2, taxonomy.NUM_REACTIONS)
    assert registry.total_steps(tiny(steps=None, epochs=1.5), reaction_dir) == 3     # ceil(1.5 · 4 / 2)


def test_facernet_trains_resumes_and_is_scored(reaction_dir, tmp_path):
    out = tmp_path / "run"
    common = dict(checkpoint_every=1, log_every=1, eval_every=0)
    first = train(tiny(steps=2, **common), reaction_dir, out, verbose=False)
    assert first.step == 2 and tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-2")
    assert set(first.last_losses) == {"pearson", "total"}
    assert all(np.isfinite(v) for v in first.last_losses.values())
    config = tiny(steps=3, **common)
    resumed = train(config, reaction_dir, out, resume=True, verbose=False)
    assert resumed.step == 3 and tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-3")
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows if not r.startswith("step")] == ["1", "2", "3"]
    assert (out / "model.keras").exists()
    # the frozen REC (stage rnn): restored exactly, and step 3 left it as step 2 did
    for a, b in zip(first.model.get_layer("rec").get_weights(), resumed.model.get_layer("rec").get_weights()):
        np.testing.assert_array_equal(a, b)
    scores = registry.spec("facernet").evaluate(resumed.model, reaction_dir, "test", config)
    assert set(scores) == {facernet_database()} and scores[facernet_database()]["n_videos"] == 3
    assert -1.0 <= scores[facernet_database()]["pearson_mean"] <= 1.0
    table = registry.spec("facernet").format(scores, config)
    assert "Empathic-Pain" in table and facernet_database() in table
    # stage end_to_end "after having initialised each subnetwork": every weight from the rnn run, all trainable
    end_to_end = registry.spec("facernet").build(tiny(facernet_stage="end_to_end", init_from=str(out)))
    for a, b in zip(resumed.model.get_weights(), end_to_end.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert end_to_end.get_layer("rec").trainable


def facernet_database():
    from fbn_keras.synthetic import intensity

    return intensity.DATABASE


def test_stage_rec_trains_on_frames_and_initialises_stage_rnn(tmp_path):
    """Stage "rec" (Section 3.1): one step of eq. 3 on the per-frame test-bed; its saved REC then loads
    into FaceRNET's "rec" member through `init_from` (stage "rnn", Section 3.3)."""
    from fbn_keras import testbed

    data = testbed.ensure_synthetic_testbed(scale=0.1)
    rec_config = tiny(facernet_stage="rec", steps=1, eval_every=0, checkpoint_every=1, log_every=1)
    result = train(rec_config, data, tmp_path / "rec", verbose=False)
    assert result.model.name == "rec" and {"va", "au", "expr", "dm", "total"} <= set(result.last_losses)
    assert all(np.isfinite(v) for v in result.last_losses.values())
    model = registry.spec("facernet").build(tiny(init_from=str(tmp_path / "rec")))
    for a, b in zip(result.model.get_weights(), model.get_layer("rec").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not model.get_layer("rec").trainable


def test_the_trainer_step_routes_on_the_global_batch_under_two_replicas(two_cpu_strategy):
    """Replica 0 holds a video of length 2, replica 1 one of length 5: the rows left alone are those of
    frames 5..7 of the global batch (not replica 0's 2..7), and both replicas hold the same kernel."""
    config = tiny(learning_rate=1e-2)
    spec = registry.spec("facernet")
    with two_cpu_strategy.scope():
        model = spec.build(config)
        loss_fn = spec.make_loss(config, model, None)
        optimizer = make_optimizer(config, 10)
        optimizer.build(model.trainable_variables)
    step = make_train_step(model, loss_fn, optimizer, two_cpu_strategy, hooks=spec.update_hooks(model))
    rng = np.random.default_rng(4)

    def distributed(lengths):
        inputs, labels = _video_batch(rng, lengths)
        parts = [({k: v[i:i + 1] for k, v in inputs.items()}, {k: v[i:i + 1] for k, v in labels.items()})
                 for i in range(2)]
        return two_cpu_strategy.experimental_distribute_values_from_function(
            lambda ctx: parts[ctx.replica_id_in_sync_group])

    kernel = model.get_layer(facernet.ROUTED_DENSE).kernel
    _, applied = step(distributed([T, T]))
    before = np.array(kernel.numpy())
    _, applied = step(distributed([2, 5]))
    assert bool(applied)
    after = kernel.numpy()
    unrouted = np.arange(T * UNITS) >= 5 * UNITS
    np.testing.assert_array_equal(after[unrouted], before[unrouted])
    assert np.abs(after[2 * UNITS:5 * UNITS] - before[2 * UNITS:5 * UNITS]).max() > 0   # replica 1's frames learn
    copies = [np.asarray(v) for v in getattr(kernel.value, "values", [kernel.value])]
    assert len(copies) == 2 and np.array_equal(copies[0], copies[1])
