"""Tests of fbn_keras.export: .keras and SavedModel exports of a tiny FaceBehaviorNet, safe-mode loading."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras.config import preset
from fbn_keras.export import export, load_model, main
from fbn_keras.model import build_facebehaviornet


@pytest.fixture
def saved_model_file(tmp_path):
    """A tiny FaceBehaviorNet saved as .keras, with its output bias set so the expected probabilities are known."""
    keras.utils.set_random_seed(0)
    model = build_facebehaviornet(preset("tiny"))
    out = model.get_layer("output")
    # Zero kernel: every face gets va = (0.5, -0.25), expr logits log(1..7), au logits 0 and log 3.
    bias = np.concatenate([[0.5, -0.25], np.log(np.arange(1, 8)), [0.0, np.log(3.0)] * 8 + [0.0]]).astype("float32")
    out.set_weights([np.zeros(out.kernel.shape, "float32"), bias])
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def _faces(n=3):
    return np.random.default_rng(1).uniform(-1, 1, (n, 96, 96, 3)).astype("float32")


def test_keras_export_reloads_in_safe_mode(saved_model_file, tmp_path):
    out = export(saved_model_file, "keras", tmp_path / "copy.keras")
    got = load_model(out)(_faces(), training=False)
    want = load_model(saved_model_file)(_faces(), training=False)
    for k in ("va", "expr", "au"):
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), atol=1e-6)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export(saved_model_file, "keras", out)
    with pytest.raises(ValueError, match=r"\.keras"):
        export(saved_model_file, "keras", tmp_path / "copy.h5")


def test_savedmodel_serves_probabilities_and_logits(saved_model_file, tmp_path, capsys):
    main([str(saved_model_file), "--format", "savedmodel", "--out", str(tmp_path / "served")])
    assert "savedmodel" in capsys.readouterr().out
    served = tf.saved_model.load(str(tmp_path / "served"))
    signature = served.signatures["serving_default"]
    x = tf.constant(_faces())
    probs = signature(image=x)
    assert sorted(probs) == ["au", "expr", "va"]
    # By hand from the bias: softmax of log(1..7) = k/28; sigmoid(0) = 0.5, sigmoid(log 3) = 0.75.
    np.testing.assert_allclose(probs["va"].numpy(), [[0.5, -0.25]] * 3, atol=1e-6)
    np.testing.assert_allclose(probs["expr"].numpy(), [np.arange(1, 8) / 28] * 3, atol=1e-6)
    np.testing.assert_allclose(probs["au"].numpy(), [[0.5, 0.75] * 8 + [0.5]] * 3, atol=1e-6)
    logits = served.serve_logits(x)
    np.testing.assert_allclose(logits["expr"].numpy(), [np.log(np.arange(1, 8))] * 3, atol=1e-5)
    # Any batch size.
    assert signature(image=tf.zeros((1, 96, 96, 3)))["au"].shape == (1, 17)


def test_load_model_is_safe_mode(tmp_path):
    x = keras.Input((2,))
    unsafe = keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x))
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(tmp_path / "lambda.keras")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="saved_model"):
        load_model(tmp_path / "served")
