"""Labels of the synthetic test-bed are learnable from pixels: a few conv layers trained briefly
on synthetic faces beat each task's chance level, computed here, by a wide margin on unseen people."""

import keras
import numpy as np
import pytest

from fbn_keras import metrics, synthetic

N_TRAIN, N_TEST, EPOCHS = 1500, 400, 12   # ~35 s of training on one core

pytestmark = pytest.mark.slow


def _arrays(samples):
    images = np.stack([s.image for s in samples]).astype(np.float32) / 127.5 - 1.0
    return (images, np.array([s.expr for s in samples]), np.stack([s.au for s in samples]),
            np.array([s.va for s in samples], np.float32))


def _small_cnn() -> keras.Model:
    inputs = keras.Input((synthetic.IMAGE_SIZE, synthetic.IMAGE_SIZE, 3))
    h = inputs
    for filters in (16, 32, 48, 64):
        h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(h))
    outputs = {"expr": keras.layers.Dense(7, name="expr")(h), "au": keras.layers.Dense(17, name="au")(h),
               "va": keras.layers.Dense(2, name="va")(h)}
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(2e-3),
                  loss={"expr": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        "au": keras.losses.BinaryCrossentropy(from_logits=True), "va": "mse"})
    return model


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    train = _arrays(list(synthetic.labelled_stills(N_TRAIN, "train")))
    test = _arrays(list(synthetic.labelled_stills(N_TEST, "test")))   # other people
    model = _small_cnn()
    model.fit(train[0], {"expr": train[1], "au": train[2], "va": train[3]}, batch_size=64, epochs=EPOCHS, verbose=0)
    return model.predict(test[0], verbose=0), test


def test_expression_beats_the_majority_class(trained):
    pred, (_, expr, _, _) = trained
    majority = np.bincount(expr, minlength=7).max() / len(expr)
    accuracy = float(np.mean(pred["expr"].argmax(axis=1) == expr))
    # Wide margin: a third of the way from always answering the majority class to perfect.
    assert accuracy >= majority + (1 - majority) / 3, (accuracy, majority)


def test_aus_beat_the_all_positive_baseline(trained):
    pred, (_, _, au, _) = trained
    present = au.sum(axis=0) >= 5          # AUs with enough positives in the test set to score
    labels = au[:, present]
    f1 = metrics.f1_mean(labels, (pred["au"][:, present] > 0).astype(int))     # logit > 0: probability > 0.5
    all_positive = metrics.f1_mean(labels, np.ones_like(labels))
    assert f1 >= all_positive + 0.12, (f1, all_positive)


def test_valence_and_arousal_correlate_with_the_labels(trained):
    pred, (_, _, _, va) = trained
    # A constant prediction scores CCC 0; the test-bed's goal is more than 0.3 on each dimension.
    for k in range(2):
        assert metrics.ccc(va[:, k], pred["va"][:, k]) > 0.3, k
