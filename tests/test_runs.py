"""fbn_keras.runs: one loader for run folders and .keras files, one forward pass; one crop for writer and predict."""

import logging
import os
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import evaluate, export, finetune_compound, predict, runs, train
from fbn_keras.config import Config, preset
from fbn_keras.model import build_facebehaviornet

SIZE = 32


def _config():
    return preset("tiny", image_size=SIZE, coupling="coann", au_threshold=0.35, fc_units=24)


def _images(n=3, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")


def _outputs(model):
    return {k: np.asarray(v) for k, v in model(_images(), training=False).items()}


def _assert_same(a, b):
    for k in ("va", "expr", "au"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-6)


def _checkpoint(model, folder, step):
    """What fbn_keras.train keeps: model, optimizer and step in checkpoints/ckpt-<step>."""
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(step, dtype=tf.int64))
    return tf.train.CheckpointManager(ckpt, str(folder / runs.CHECKPOINT_DIR), max_to_keep=2).save(step)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished run as fbn_keras.train leaves it: config.json and model.keras."""
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("run")
    config = _config()
    model = build_facebehaviornet(config)
    config.save(folder / runs.CONFIG_FILE)
    model.save(folder / runs.MODEL_FILE)
    return folder, config, _outputs(model)


def test_file_names_are_the_trainers():
    assert (runs.MODEL_FILE, runs.CONFIG_FILE, runs.CHECKPOINT_DIR) == (
        train.MODEL_FILE, train.CONFIG_FILE, train.CHECKPOINT_DIR)


def test_run_folder_and_keras_file_load_the_same_model_and_config(run_folder):
    folder, config, want = run_folder
    for path in (folder, folder / runs.MODEL_FILE):
        model, loaded = runs.load_run(path)
        assert loaded == config
        _assert_same(_outputs(model), want)
        assert model.compiled is False


def test_keras_file_alone_gets_a_config_rebuilt_from_the_model(run_folder, tmp_path, caplog):
    folder, config, want = run_folder
    lone = tmp_path / "lone.keras"
    shutil.copy(folder / runs.MODEL_FILE, lone)
    with caplog.at_level(logging.WARNING, logger="fbn_keras.runs"):
        model, rebuilt = runs.load_run(lone)
    _assert_same(_outputs(model), want)
    # The architecture comes from the layers: tiny = width 1/16 (conv5_3 has 512/16 = 32 filters).
    assert (rebuilt.backbone, rebuilt.width, rebuilt.fc_units, rebuilt.dropout, rebuilt.image_size) == (
        "vgg_face", 0.0625, 24, 0.0, SIZE)
    # Everything else is the default, not the run's: the coupling and threshold are unknown without config.json.
    assert (rebuilt.coupling, rebuilt.au_threshold) == (Config().coupling, Config().au_threshold)
    assert "no config.json" in caplog.text and "lone.keras" in caplog.text
    assert runs.config_path(lone) is None and runs.config_path(folder) == folder / runs.CONFIG_FILE


def test_checkpoint_only_run_and_a_checkpoint_newer_than_the_model(run_folder, tmp_path):
    folder, config, old = run_folder
    # Interrupted run: config.json and checkpoints, no model.keras yet.
    keras.utils.set_random_seed(5)
    trained = build_facebehaviornet(config)
    want = _outputs(trained)
    assert not np.allclose(want["au"], old["au"])
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    config.save(interrupted / runs.CONFIG_FILE)
    _checkpoint(trained, interrupted, 3)
    model, loaded = runs.load_run(interrupted)
    assert loaded == config
    _assert_same(_outputs(model), want)
    # A resumed run: an old model.keras and a newer checkpoint → the checkpoint's weights.
    resumed = tmp_path / "resumed"
    shutil.copytree(interrupted, resumed)
    shutil.copy(folder / runs.MODEL_FILE, resumed / runs.MODEL_FILE)
    os.utime(resumed / runs.MODEL_FILE, (1e9, 1e9))
    _assert_same(_outputs(runs.load_run(resumed)[0]), want)
    # model.keras written after the last checkpoint (the end of training) → model.keras.
    os.utime(resumed / runs.MODEL_FILE, None)
    for f in (resumed / runs.CHECKPOINT_DIR).iterdir():
        os.utime(f, (1e9, 1e9))
    _assert_same(_outputs(runs.load_run(resumed)[0]), old)


def test_each_bad_path_is_one_line_naming_it(run_folder, tmp_path):
    folder, config, _ = run_folder
    data = (folder / runs.MODEL_FILE).read_bytes()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.keras").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "empty").mkdir()
    served = tmp_path / "served"
    tf.saved_model.save(tf.Module(), str(served))       # what `fbn_keras.export --format savedmodel` writes
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    _checkpoint(build_facebehaviornet(config), no_config, 1)
    x = keras.Input((2,))
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x)).save(tmp_path / "lambda.keras")
    cases = [
        (runs.load_run, tmp_path / "missing", runs.RunNotFoundError, "missing: no such file or folder"),
        (runs.load_keras, tmp_path / "missing.keras", FileNotFoundError, "missing.keras: no such file"),
        (runs.load_run, tmp_path / "empty", runs.RunLoadError, "empty: neither model.keras nor a checkpoint"),
        (runs.load_run, tmp_path / "truncated.keras", runs.RunLoadError, "truncated.keras: not a valid .keras archive"),
        (runs.load_run, tmp_path / "random.keras", runs.RunLoadError, "random.keras: not a valid .keras archive"),
        (runs.load_run, served, runs.RunLoadError, "served: a TF SavedModel folder"),
        (runs.load_keras, served, runs.RunLoadError, "served: a folder where a .keras file is needed"),
        (runs.load_run, no_config, runs.RunLoadError, "no_config: a checkpoint but no config.json"),
        (runs.load_run, tmp_path / "lambda.keras", runs.RunLoadError, "lambda.keras: refused in safe_mode"),
    ]
    for load, path, error, words in cases:
        with pytest.raises(error, match=words) as info:
            load(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_make_forward_gives_the_papers_probabilities():
    """Zero output kernel: va = (0.5, -0.25), expr logits log(1..7) → k/28, AU logits 0, log 3 → 0.5, 0.75."""
    model = build_facebehaviornet(_config())
    out = model.get_layer("output")
    bias = np.concatenate([[0.5, -0.25], np.log(np.arange(1, 8)), [0.0, np.log(3.0)] * 8 + [0.0]]).astype("float32")
    out.set_weights([np.zeros(out.kernel.shape, "float32"), bias])
    forward = runs.make_forward(model)
    for n in (3, 1):                       # a smaller last batch reuses the trace
        probs = forward(_images(n))
        np.testing.assert_allclose(probs["va"], [[0.5, -0.25]] * n, atol=1e-6)
        np.testing.assert_allclose(probs["expr"], [np.arange(1, 8) / 28] * n, atol=1e-6)
        np.testing.assert_allclose(probs["au"], [[0.5, 0.75] * 8 + [0.5]] * n, atol=1e-6)
    # A single-output model (the compound head): softmax over its logits.
    x = keras.Input((2,))
    single = keras.Model(x, keras.layers.Dense(3, kernel_initializer="zeros",
                                               bias_initializer=keras.initializers.Constant(np.log([1., 2., 7.])))(x))
    np.testing.assert_allclose(runs.make_forward(single)(np.zeros((2, 2), "float32")), [[0.1, 0.2, 0.7]] * 2,
                               atol=1e-6)


@pytest.fixture
def no_data_check(monkeypatch):
    """The commands check --data before loading the model; these tests need no data to reach the loader."""
    cli = sys.modules.get("fbn_keras.cli")
    if cli is not None and hasattr(cli, "check_data_dir"):
        monkeypatch.setattr(cli, "check_data_dir", lambda *args, **kwargs: {})


def test_every_command_loads_through_load_run(run_folder, tmp_path, monkeypatch, capsys, no_data_check):
    """evaluate, predict, export and finetune_compound all call runs.load_run and report its error in one line."""
    folder, _, _ = run_folder
    seen = []

    def refuse(path):
        seen.append(str(path))
        raise runs.RunLoadError(f"{path}: refused by the test")

    monkeypatch.setattr(runs, "load_run", refuse)
    monkeypatch.setattr(finetune_compound, "resolve_database", lambda data, db: "rafdb-compound")
    out, data = str(tmp_path / "out"), str(tmp_path)
    commands = [(evaluate.main, ["--data", data]), (predict.main, [data, "--out", out + ".csv"]),
                (export.main, ["--format", "keras", "--out", out + ".keras"]),
                (finetune_compound.main, ["--data", data])]
    for main, rest in commands:
        with pytest.raises(SystemExit, match="^2$") as info:
            main([str(folder), *rest])
        assert info.value.code == 2
        assert f"error: {folder}: refused by the test" in capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(runs.RunLoadError, match="refused"):
        predict.Predictor.load(folder)
    with pytest.raises(runs.RunLoadError, match="refused"):
        export.export(folder, "keras", out + ".keras")
    assert seen == [str(folder)] * 6


def test_a_truncated_model_file_is_one_line_from_the_commands(run_folder, tmp_path, capsys, no_data_check):
    folder, _, _ = run_folder
    bad = tmp_path / "bad.keras"
    bad.write_bytes((folder / runs.MODEL_FILE).read_bytes()[:1000])
    for main, rest in [(evaluate.main, ["--data", str(tmp_path)]),
                       (predict.main, [str(tmp_path), "--out", str(tmp_path / "x.csv")])]:
        with pytest.raises(SystemExit, match="^2$") as info:
            main([str(bad), *rest])
        assert info.value.code == 2
        assert f"error: {bad}: not a valid .keras archive (not a zip file: truncated or overwritten?)" in \
            capsys.readouterr().err.strip().splitlines()[-1]


# === One crop for the shard writer and predict --aligned ===

def test_writer_and_predict_aligned_crop_a_non_square_image_alike(monkeypatch):
    from fbn_keras import preprocess
    from tfrecords_tools import writer

    # 60 × 100: a uniform green centre square (columns 20..79) between a red band and a blue band.
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    image[:, 20:80] = (0, 200, 0)
    image[:, 80:] = (0, 0, 255)
    written = writer.resize(image, 96)
    ((box, confidence, served),) = predict.faces_in([image], None, 96)[0]
    # By hand: the centre crop is the 60 × 60 green square, so every one of the 96 × 96 pixels is green.
    # (Stretching the whole image would put red and blue in the first and last ~19 columns.)
    want = np.broadcast_to(np.array([0, 200, 0], np.uint8), (96, 96, 3))
    np.testing.assert_array_equal(written, want)
    np.testing.assert_array_equal(served, want)
    assert box == (20.0, 0.0, 60.0, 60.0) and confidence is None
    # A side already at 96: no resampling at all, so the crop is exactly columns (161 - 96) // 2 = 32 .. 127.
    noise = np.random.default_rng(0).integers(0, 256, (96, 161, 3), dtype=np.uint8)
    np.testing.assert_array_equal(writer.resize(noise, 96), noise[:, 32:128])
    np.testing.assert_array_equal(predict.faces_in([noise], None, 96)[0][0][2], noise[:, 32:128])
    # A tall image: rows (130 - 96) // 2 = 17 .. 112.
    tall = noise.transpose(1, 0, 2)[:130]
    np.testing.assert_array_equal(preprocess.square_resize(tall, 96), tall[17:113])
    # One function, not two copies of it: both paths call preprocess.square_resize.
    monkeypatch.setattr(preprocess, "square_resize", lambda rgb, size: np.full((size, size, 3), 7, np.uint8))
    assert (writer.resize(image, 96) == 7).all() and (predict.faces_in([image], None, 96)[0][0][2] == 7).all()


def test_every_module_with_serializable_layers_is_imported_before_loading():
    """A model using any of the package's custom layers loads in a fresh process: each module that
    registers one is in runs.CUSTOM_LAYER_MODULES."""
    from pathlib import Path

    from fbn_keras import runs

    package = Path(runs.__file__).parent
    registering = {f"fbn_keras.{p.stem}" for p in package.glob("*.py")
                   if "register_keras_serializable" in p.read_text()}
    assert registering <= set(runs.CUSTOM_LAYER_MODULES), sorted(registering - set(runs.CUSTOM_LAYER_MODULES))
