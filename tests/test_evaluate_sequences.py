"""Scoring sequence models on tiled videos (journal Sections IV, V-B, Table IV): predictions, scores, post-processing.

A tiny shard set whose every frame is a flat image of known value is scored by a
hand-made per-frame model (va = m·(1, −1) with m the frame's mean input value), so
every prediction, utterance estimate and score below is worked out by hand.
"""

import numpy as np
import pytest

from fbn_keras import evaluate_sequences as es
from fbn_keras import sequences, taxonomy
from fbn_keras.config import preset
from fbn_keras.records import writer
from fbn_keras.records.items import Item

SIZE = 16
PAPER8 = [taxonomy.au_index(a) for a in taxonomy.AFFWILD2_PAPER_AUS]


def m_of(f):
    """The model's input value of frame f: pixels 25·f mapped to [-1, 1]."""
    return 25 * f / 127.5 - 1


def ccc_by_hand(t, p):
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    return 2 * np.mean((t - t.mean()) * (p - p.mean())) / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)


def _item(db, split, group, f, va=None, expr=-1, au=None):
    image = np.full((SIZE, SIZE, 3), 25 * f, np.uint8)
    mask = None
    if au is not None:
        mask = np.zeros(17, np.float32)
        mask[PAPER8] = 1
        au = np.asarray(au, np.float32)
    return Item(database=db, split=split, image_id=f"{group}/{f:03d}", load=lambda: image, group=group, frame=f,
                aligned=True, va=va, expr=expr, au=au, au_mask=mask)


#: synthv-omg utterances: (group, frames, VA), in the test and validation splits alike.
UTTERANCES = (("v0-u00", 5, (0.2, 0.1)), ("v0-u01", 6, (-0.3, 0.4)), ("v0-u02", 4, (0.5, -0.2)),
              ("v1-u00", 4, (0.0, 0.0)))
EXPR = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def _items():
    for f in range(1, 11):
        au = np.zeros(17)
        au[PAPER8[0]] = float(f >= 6)      # AU1 on from frame 6 (as the model predicts)
        au[PAPER8[1]] = 1.0                # AU2 always on
        yield _item("synthv-affwild2", "test", "test-00000", f, va=(f / 10, -f / 10), expr=EXPR[f - 1], au=au)
    for split in ("test", "validation"):
        for group, n, va in UTTERANCES:
            for f in range(1, n + 1):
                yield _item("synthv-omg", split, f"{split}-{group}", f, va=va)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("seqeval")
    writer.write_shards(_items(), out, "tiny", aligner="none", image_size=SIZE, shard_size=8)
    sequences.write_sequence_shards(out)
    return out


def per_frame_model(au=True, expr=True):
    """frames (B, T, S, S, 3) → m = mean value; va = m·(1, −1), expr logits (−m, m, 0…), au logits 10·m (8 AUs)."""
    import keras

    frames = keras.Input((None, SIZE, SIZE, 3), name="frames")
    m = keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D())(frames)     # (B, T, 3)
    outputs = {"va": keras.layers.Dense(2, name="va")(m)}
    if expr:
        outputs["expr"] = keras.layers.Dense(7, name="expr")(m)
    if au:
        outputs["au"] = keras.layers.Dense(8, name="au")(m)
    model = keras.Model({"frames": frames}, outputs)
    model.get_layer("va").set_weights([np.tile([[1 / 3, -1 / 3]], (3, 1)), np.zeros(2)])
    if expr:
        k = np.zeros((3, 7))
        k[:, 0], k[:, 1] = 10 / 3, -10 / 3
        model.get_layer("expr").set_weights([k, np.zeros(7)])
    if au:
        model.get_layer("au").set_weights([np.full((3, 8), 10 / 3), np.zeros(8)])
    return model


@pytest.fixture(scope="module")
def config():
    return preset("tiny", seq_length=4, seq_batch=2)


@pytest.fixture(scope="module")
def predictions(data_dir, config):
    return es.predict_sequences(per_frame_model(), data_dir, "test", config)


# === Predictions ===

def test_predictions_per_frame_with_labels_tiles_and_au_slots(predictions):
    g = predictions["synthv-affwild2"]["test-00000"]
    m = np.array([m_of(f) for f in range(1, 11)])
    np.testing.assert_array_equal(g["frame"], np.arange(1, 11))
    np.testing.assert_allclose(g["va"], np.stack([m, -m], 1), atol=1e-5)
    np.testing.assert_allclose(g["labels"]["va"], np.stack([np.arange(1, 11) / 10, -np.arange(1, 11) / 10], 1),
                               atol=1e-6)
    np.testing.assert_array_equal(g["labels"]["expr"], EXPR)
    assert g["expr"].shape == (10, 7) and np.allclose(g["expr"].sum(1), 1)
    assert g["au"].shape == (10, 17)
    others = [k for k in range(17) if k not in PAPER8]
    assert np.isnan(g["au"][:, others]).all() and np.isfinite(g["au"][:, PAPER8]).all()
    np.testing.assert_allclose(g["au"][:, PAPER8[0]], 1 / (1 + np.exp(-10 * m)), atol=1e-5)
    np.testing.assert_array_equal(g["tiles"], [[0, 4], [4, 8], [8, 10]])      # T = 4 from the first frame
    assert sorted(predictions["synthv-omg"]) == sorted(f"test-{u}" for u, _, _ in UTTERANCES)


def test_overlapping_tiles_average_to_the_same_per_frame_values(data_dir, config, predictions):
    import dataclasses

    over = es.predict_sequences(per_frame_model(), data_dir, "test", dataclasses.replace(config, eval_stride=2),
                                databases=["synthv-omg"])
    g = over["synthv-omg"]["test-v0-u00"]
    np.testing.assert_array_equal(g["tiles"], [[0, 4], [2, 5]])                # starts 0, 2; the second reaches the end
    np.testing.assert_allclose(g["va"], predictions["synthv-omg"]["test-v0-u00"]["va"], atol=1e-6)


def test_au_slots_must_match_the_head(data_dir, config):
    with pytest.raises(ValueError, match="au_slots must give one of the 17"):
        es.predict_sequences(per_frame_model(), data_dir, "test", config, au_slots=[0, 1, 2])


def test_model_inputs_are_checked():
    import keras

    x = keras.Input((4,), name="pixels")
    with pytest.raises(ValueError, match="Expected a sequence model"):
        es.input_names(keras.Model({"pixels": x}, {"va": keras.layers.Dense(2)(x)}))


# === Scores ===

def test_frame_scores_by_hand(predictions):
    s = es.score_sequences(predictions)["synthv-affwild2"]
    f = np.arange(1, 11)
    m = m_of(f)
    assert s["unit"] == "frame" and s["n_va"] == 10
    assert s["ccc_valence"] == pytest.approx(ccc_by_hand(f / 10, m), abs=1e-5)
    assert s["ccc_arousal"] == pytest.approx(ccc_by_hand(-f / 10, -m), abs=1e-5)
    assert s["mse_valence"] == pytest.approx(np.mean((f / 10 - m) ** 2), abs=1e-5)
    assert s["ccc_mean"] == pytest.approx(0.5 * (s["ccc_valence"] + s["ccc_arousal"]))
    # Predicted class: anger (1) on frames 1-5 (m < 0), neutral (0) on 6-10. Labels 1,1,1,0,…,0.
    # neutral: TP 5, FP 0, FN 2 → F1 10/12; anger: TP 3, FP 2, FN 0 → F1 6/8; accuracy 8/10.
    f1 = (10 / 12 + 6 / 8) / 2
    assert s["expr_f1"] == pytest.approx(f1) and s["expr_acc"] == pytest.approx(0.8)
    assert s["expr_total"] == pytest.approx(0.67 * f1 + 0.33 * 0.8)
    # AUs present from frame 6 on. AU1 (on from 6): F1 1, acc 1; AU2 (always on): F1 10/15, acc 1/2;
    # the other six (never on): F1 0, acc 1/2. AF and TAcc are means over the 8 AUs.
    af, acc = (1 + 10 / 15) / 8, (1 + 0.5 + 6 * 0.5) / 8
    assert s["au_f1"] == pytest.approx(af) and s["au_acc"] == pytest.approx(acc)
    assert s["au_total"] == pytest.approx(0.5 * af + 0.5 * acc)


def test_utterance_scores_by_hand(predictions):
    s = es.score_sequences(predictions)["synthv-omg"]
    m = {f: m_of(f) for f in range(1, 7)}
    # T = 4: tiles [1-4] (median (m2 + m3)/2), then [5] or [5-6]; the estimate is the tiles' mean.
    head = (m[2] + m[3]) / 2
    est = np.array([(head + m[5]) / 2, (head + (m[5] + m[6]) / 2) / 2, head, head])
    labels = np.array([va for _, _, va in UTTERANCES])
    assert s["unit"] == "utterance" and s["n_va"] == 4
    assert s["ccc_valence"] == pytest.approx(ccc_by_hand(labels[:, 0], est), abs=1e-5)
    assert s["ccc_arousal"] == pytest.approx(ccc_by_hand(labels[:, 1], -est), abs=1e-5)
    assert "expr_f1" not in s and "au_f1" not in s       # the OMG-like set labels VA only


def test_va_only_model_scores_va_only(data_dir, config):
    preds = es.predict_sequences(per_frame_model(au=False, expr=False), data_dir, "test", config,
                                 databases=["synthv-affwild2"])
    s = es.score_sequences(preds)["synthv-affwild2"]
    assert "ccc_valence" in s and "expr_f1" not in s and "au_f1" not in s


def test_utterance_video_names():
    assert es.utterance_video("test-00001-u03") == ("test-00001", [3])
    assert es.utterance_video("5b44393ed/utterance_10")[0] == "5b44393ed"
    assert es.utterance_video("a/utterance_9")[1] < es.utterance_video("a/utterance_10")[1]
    assert es.unit_of("omg") == es.unit_of("synthv-omg") == "utterance" and es.unit_of("synthv-affwild") == "frame"


# === Post-processing ===

def test_median_filter_by_hand():
    # window 3, ends repeated: [1, 1, 5, 2, 8, 3, 3] → medians 1, 2, 5, 3, 3
    np.testing.assert_array_equal(es.median_filter([1, 5, 2, 8, 3], 3), [1, 2, 5, 3, 3])
    # window 5: [1, 1, 1, 5, 2, 8, 3, 3, 3] → 1, 2, 3, 3, 3
    np.testing.assert_array_equal(es.median_filter([1, 5, 2, 8, 3], 5), [1, 2, 3, 3, 3])
    np.testing.assert_array_equal(es.median_filter([[1, 0], [9, 0], [2, 0]], 3), [[1, 0], [2, 0], [2, 0]])
    np.testing.assert_array_equal(es.median_filter([4, 1], 1), [4, 1])
    with pytest.raises(ValueError, match="odd number"):
        es.median_filter([1, 2], 2)


def test_moving_average_by_hand():
    # window 2: rows t-1..t (cut at the start); window 3: t-1..t+1 (cut at both ends)
    np.testing.assert_allclose(es.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(es.moving_average([1, 2, 3, 4], 3), [1.5, 2, 3, 3.5])
    np.testing.assert_allclose(es.moving_average([1, 2, 3, 4], 1), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="window must be >= 1"):
        es.moving_average([1.0], 0)


def _groups(pred, label):
    n = len(label)
    return {"v": {"frame": np.arange(n), "va": np.asarray(pred, np.float64),
                  "labels": {"va": np.asarray(label, np.float64), "va_mask": np.ones(n), "frame_mask": np.ones(n),
                             "expr": -np.ones(n, np.int64), "au": np.zeros((n, 17)), "au_mask": np.zeros((n, 17))},
                  "tiles": np.array([[0, n]])}}


def test_median_is_chosen_only_when_it_helps():
    t = np.linspace(0, 4 * np.pi, 120)
    label = np.stack([np.sin(t), np.cos(t)], 1)
    spiky = label.copy()
    spiky[::7] += 1.5                              # isolated spikes: a median filter removes them
    choice = es.choose_postprocessing({"synthv-affwild": _groups(spiky, label)})["synthv-affwild"]
    assert choice["median"] > 1 and choice["smooth"] == 1 and choice["ccc_after"] > choice["ccc_before"]
    exact = es.choose_postprocessing({"synthv-affwild": _groups(label, label)})["synthv-affwild"]
    assert exact["median"] == 1 and exact["ccc_after"] == pytest.approx(1.0)


def test_utterance_smoothing_moves_estimates_along_a_video():
    # three utterances of one video, constant predictions 0, 3, 0: window 3 → (0+3)/2, (0+3+0)/3, (3+0)/2
    groups = {}
    for k, v in enumerate((0.0, 3.0, 0.0)):
        g = _groups(np.full((4, 2), v), np.zeros((4, 2)))["v"]
        groups[f"vid-u{k:02d}"] = g
    out = es.apply_postprocessing({"synthv-omg": groups}, {"synthv-omg": {"median": 1, "smooth": 3}})
    got = [out["synthv-omg"][f"vid-u{k:02d}"]["utterance_va"][0] for k in range(3)]
    np.testing.assert_allclose(got, [1.5, 1.0, 1.5])
    assert "utterance_va" not in groups["vid-u00"]          # the input is left as it was


def test_evaluate_with_postprocessing_and_table(data_dir, config):
    model = per_frame_model()
    plain = es.evaluate_sequence_model(model, data_dir, "test", config)
    post = es.evaluate_sequence_model(model, data_dir, "test", config, postprocess=True)
    assert post["synthv-omg"]["median"] in es.MEDIAN_WINDOWS and post["synthv-omg"]["smooth"] in es.SMOOTH_WINDOWS
    assert post["synthv-affwild2"]["median"] == 1          # no validation split: left unfiltered
    assert post["synthv-affwild2"]["ccc_valence"] == pytest.approx(plain["synthv-affwild2"]["ccc_valence"])
    table = es.format_sequence_table(post, "test")
    lines = table.strip().splitlines()
    assert lines[2].startswith("| Database | unit | VA (CCC_V-CCC_A) | Expr E_total | AU E_total |")
    row = next(line for line in lines if line.startswith("| synthv-affwild2 "))
    v, a = plain["synthv-affwild2"]["ccc_valence"], plain["synthv-affwild2"]["ccc_arousal"]
    assert f"| {v:.2f}-{a:.2f} |" in row and f"| {plain['synthv-affwild2']['expr_total']:.3f} |" in row


# === python -m fbn_keras.evaluate on a sequence run ===

def test_evaluate_cli_scores_a_sequence_run(data_dir, tmp_path, capsys):
    import json

    from fbn_keras import evaluate

    run = tmp_path / "run"
    run.mkdir()
    config = preset("tiny", model="mt-vgg-gru", seq_length=4, seq_batch=2, mt_aus="paper8")
    model = per_frame_model()
    model.save(run / "model.keras")
    config.save(run / "config.json")
    assert evaluate.main([str(run), "--data", str(data_dir), "--postprocess"]) == 0
    printed = capsys.readouterr().out
    assert "| Database | unit | VA (CCC_V-CCC_A) |" in printed and "| synthv-omg | utterance |" in printed
    saved = json.loads((run / "eval_test.json").read_text())
    want = es.evaluate_sequence_model(model, data_dir, "test", config, postprocess=True)
    assert saved["postprocess"] is True and saved["model"] == "mt-vgg-gru"
    for db in want:
        assert saved["results"][db]["ccc_mean"] == pytest.approx(want[db]["ccc_mean"], abs=1e-6)
    assert (run / "eval_test.md").read_text().startswith("### mt-vgg-gru on test")


def test_window_sizes_from_the_model_the_config_or_the_paper():
    import keras

    fixed = keras.Input((6, SIZE, SIZE, 3), name="frames")
    model_fixed = keras.Model({"frames": fixed}, {"va": keras.layers.Dense(2)(fixed[:, :, 0, 0, :])})
    assert es.window_sizes(model_fixed, preset("tiny", seq_length=4)) == (6, 2)      # T fixed by the input
    free = per_frame_model(au=False, expr=False)
    assert es.window_sizes(free, preset("tiny", seq_length=4, seq_batch=3)) == (4, 3)
    # unset: AffWildNet's 4 × 80 (journal Section V-A), MT-VGG-GRU's 10 × 90 (Section VI-A)
    assert es.window_sizes(free, preset("paper", model="affwildnet")) == (80, 4)
    assert es.window_sizes(free, preset("paper", model="mt-vgg-gru")) == (90, 10)
