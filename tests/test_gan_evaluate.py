"""Scoring the semi-supervised GAN's discriminator (multi-task learning and generation paper, Table IX)."""

import json

import numpy as np
import pytest

from fbn_keras import gan_evaluate as ge
from fbn_keras import taxonomy
from fbn_keras.gan import GAN_AUS, build_discriminator, gan_preset

# 4 images × 3 AUs. Per AU: TP, FP, FN, correct decisions, positive support.
#   AU a: t 1 1 0 1, p 1 0 0 1 → TP 2, FP 0, FN 1: F1 4/5, 3 of 4 correct, support 3
#   AU b: t 0 1 0 0, p 1 1 0 0 → TP 1, FP 1, FN 0: F1 2/3, 3 of 4 correct, support 1
#   AU c: t 1 0 1 0, p 1 0 0 1 → TP 1, FP 1, FN 1: F1 1/2, 2 of 4 correct, support 2
T = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
P = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]])


def test_multilabel_f1_and_total_accuracy_by_hand():
    assert ge.au_f1_weighted(T, P) == pytest.approx((3 * 4 / 5 + 1 * 2 / 3 + 2 * 1 / 2) / 6)     # 61/90
    assert ge.au_f1_macro(T, P) == pytest.approx((4 / 5 + 2 / 3 + 1 / 2) / 3)                    # 59/90
    assert ge.au_total_accuracy(T, P) == pytest.approx(8 / 12)


def test_masked_decisions_are_left_out():
    # AU b annotated nowhere (left out); AU c not annotated on image 2:
    #   AU c on images 0, 1, 3: t 1 0 0, p 1 0 1 → TP 1, FP 1: F1 2/3, 2 of 3 correct, support 1
    mask = np.ones((4, 3))
    mask[:, 1] = 0
    mask[2, 2] = 0
    assert ge.au_f1_weighted(T, P, mask) == pytest.approx((3 * 4 / 5 + 1 * 2 / 3) / 4)          # 23/30
    assert ge.au_f1_macro(T, P, mask) == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert ge.au_total_accuracy(T, P, mask) == pytest.approx(5 / 7)
    # No positive label anywhere: every weight is 0, the weighted F1 is 0.
    assert ge.au_f1_weighted(np.zeros((2, 2)), np.ones((2, 2))) == 0.0
    with pytest.raises(ValueError, match="no annotated entry"):
        ge.au_total_accuracy(T, P, np.zeros((4, 3)))


def test_scores_from_outputs_pick_the_eight_aus_and_threshold_the_sigmoid():
    cols = [taxonomy.au_index(a) for a in GAN_AUS]
    au = np.zeros((4, 17))
    au_mask = np.zeros((4, 17))
    au[:, cols[:3]] = T
    au_mask[:, cols[:3]] = 1
    au_mask[:, taxonomy.au_index(5)] = 1          # an AU outside the 8 (AU5): not scored
    logits = np.full((4, 8), -3.0)
    logits[:, :3] = np.where(P == 1, 0.0, -0.1)   # sigmoid(0) = 0.5 counts as present
    va_t = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.5, 0.5]])
    va_p = va_t + np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.2]])
    labels = {"va": va_t, "va_mask": np.array([1, 1, 1, 0]), "au": au, "au_mask": au_mask}
    out = ge.score_discriminator_outputs("x", {"va": va_p, "au": logits}, labels)
    assert out["au_f1_weighted"] == pytest.approx(61 / 90)
    assert out["au_total_acc"] == pytest.approx(8 / 12)
    assert (out["n_au"], out["n_au_scored"], out["n_va"]) == (4, 3, 3)
    # The unlabelled 4th image carries the only VA error: perfect CCC and zero MSE on the 3 labelled.
    assert (out["ccc_v"], out["ccc_a"], out["va_mse"]) == pytest.approx((1.0, 1.0, 0.0))
    assert set(ge.score_discriminator_outputs("x", {"au": logits}, labels)) == {
        "au_f1_weighted", "au_f1_macro", "au_total_acc", "n_au", "n_au_scored"}


def test_paper_row_follows_the_variant():
    assert ge.paper_row(gan_preset("tiny", d_outputs="va+fake", va_loss="mse")) == {"ccc_v": 0.484, "ccc_a": 0.384}
    assert ge.paper_row(gan_preset("tiny", d_outputs="au+fake"))["au_total_acc"] == 0.824
    assert ge.paper_row(gan_preset("tiny"))["au_f1_macro"] == 0.330
    assert ge.paper_row(gan_preset("tiny", d_outputs="va+au")) is None


def test_arguments_are_checked_before_reading_data(tmp_path):
    config = gan_preset("tiny", d_outputs="va+au")
    with pytest.raises(ValueError, match=r"au_threshold must be in \(0, 1\). Received: 1.0"):
        ge.evaluate_discriminator(None, tmp_path, "test", config, au_threshold=1.0)


@pytest.fixture(scope="module")
def data_dir():
    from fbn_keras.testbed import ensure_synthetic_testbed

    return ensure_synthetic_testbed(scale=0.1)


VA_KEYS = {"ccc_v", "ccc_a", "va_mse", "n_va"}
AU_KEYS = {"au_f1_weighted", "au_f1_macro", "au_total_acc", "n_au", "n_au_scored"}
VA_DBS = {"synth-affectnet", "synth-affwild", "synth-affwild2"}
AU_DBS = {"synth-affwild2", "synth-bp4d", "synth-bp4dplus", "synth-disfa", "synth-emotionet"}


@pytest.mark.parametrize("d_outputs, va, au", [("va+au+fake", True, True), ("va+fake", True, False),
                                               ("au+fake", False, True)])
def test_evaluate_discriminator_keys_per_variant(data_dir, d_outputs, va, au):
    config = gan_preset("tiny", d_outputs=d_outputs)
    results = ge.evaluate_discriminator(build_discriminator(config), data_dir, "test", config)
    assert set(results) == (VA_DBS if va else set()) | (AU_DBS if au else set())
    for db, scores in results.items():
        assert set(scores) == (VA_KEYS if va and db in VA_DBS else set()) | (AU_KEYS if au and db in AU_DBS else set())
        assert all(np.isfinite(v) for v in scores.values())


def test_constant_discriminator_scores_worked_out_from_the_labels(data_dir):
    """D with a zero output layer: VA 0 everywhere (CCC 0, MSE = mean label²), every AU logit 0, sigmoid 0.5:
    every AU predicted present, so an AU's F1 is 2·pos / (2·pos + neg) and accuracy is the positive share."""
    from fbn_keras import data as fbn_data

    config = gan_preset("tiny")
    d = build_discriminator(config)
    layer = d.get_layer("d_output")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    scores = ge.evaluate_discriminator(d, data_dir, "test", config)["synth-affwild2"]
    labels = {}
    for _, b in fbn_data.make_eval_dataset(data_dir, "synth-affwild2", "test", image_size=32):
        for k in ("va", "va_mask", "au", "au_mask"):
            labels.setdefault(k, []).append(np.asarray(b[k]))
    labels = {k: np.concatenate(v) for k, v in labels.items()}
    va = labels["va"][labels["va_mask"] > 0]
    assert scores["ccc_v"] == 0.0 and scores["ccc_a"] == 0.0
    assert scores["va_mse"] == pytest.approx(np.mean(va ** 2), rel=1e-6)
    cols = [taxonomy.au_index(a) for a in GAN_AUS]
    m, t = labels["au_mask"][:, cols] > 0, labels["au"][:, cols] >= 0.5
    pos = np.array([(t[:, k] & m[:, k]).sum() for k in range(8) if m[:, k].any()], float)
    neg = np.array([(~t[:, k] & m[:, k]).sum() for k in range(8) if m[:, k].any()], float)
    f1 = 2 * pos / (2 * pos + neg)
    assert scores["au_f1_macro"] == pytest.approx(f1.mean())
    assert scores["au_f1_weighted"] == pytest.approx((f1 * pos).sum() / pos.sum())
    assert scores["au_total_acc"] == pytest.approx(pos.sum() / (pos + neg).sum())


def test_cli_scores_a_tiny_gan_run(data_dir, tmp_path, capsys):
    from fbn_keras import evaluate, train_gan

    run = tmp_path / "run"
    assert train_gan.main(["--data", str(data_dir), "--out", str(run), "--preset", "tiny", "--steps", "2",
                           "--d-outputs", "au+fake", "--update-ratio", "1"]) == 0
    final = json.loads((run / "eval_test.json").read_text())       # train_gan's end-of-run evaluation
    assert set(final["results"]) == AU_DBS and final["d_outputs"] == "au+fake"
    capsys.readouterr()
    out = tmp_path / "scores"
    assert evaluate.main([str(run), "--data", str(data_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Database | CCC-V | CCC-A | F1 weighted | F1 macro | Total accuracy |" in printed
    assert "| Table IX (paper, Aff-Wild) | - | - | 0.404 | 0.400 | 0.824 |" in printed
    saved = json.loads((out / "eval_test.json").read_text())
    for db, scores in final["results"].items():     # the saved D scores as the trained one did
        assert saved["results"][db] == pytest.approx(scores, abs=1e-6)
    assert set(saved["results"]["synth-disfa"]) == AU_KEYS
    assert (out / "eval_test.md").read_text().startswith("### GAN discriminator (au+fake")


def test_a_gan_run_without_a_discriminator_is_one_line(data_dir, tmp_path, capsys):
    from fbn_keras import evaluate

    gan_preset("tiny").save(tmp_path / "config.json")       # a GAN run interrupted before its first checkpoint
    assert ge.gan_config_file(tmp_path) == tmp_path / "config.json"
    (tmp_path / "fbn").mkdir()
    (tmp_path / "fbn" / "config.json").write_text(json.dumps({"model": "facebehaviornet"}))
    assert ge.gan_config_file(tmp_path / "fbn") is None                 # another network's run folder
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(tmp_path), "--data", str(data_dir)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "neither discriminator.keras nor a checkpoint" in err and len(err.splitlines()) == 1
