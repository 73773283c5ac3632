"""Zero-shot compound scoring (journal eq. 10) against scores worked out by hand from Du et al.'s table."""

import numpy as np
import pytest

from fbn_keras import compound, taxonomy
from fbn_keras.taxonomy import RAFDB_COMPOUND_SUBSET


def _expr(**probs):
    out = np.zeros((1, 7), np.float32)
    for name, p in probs.items():
        out[0, taxonomy.expression_index(name)] = p
    return out


def _aus(*on):
    out = np.zeros((1, 17), np.float32)
    for au in on:
        out[0, taxonomy.au_index(au)] = 1.0
    return out


# === Eq. 10 by hand ===

def test_happily_surprised_face_scores_by_hand():
    # p(happiness) = p(surprise) = 0.5; AUs 1, 2, 12, 25 on; valence positive.
    scores = compound.zero_shot_scores(_expr(happiness=0.5, surprise=0.5), _aus(1, 2, 12, 25), [0.4],
                                       RAFDB_COMPOUND_SUBSET)[0]
    expected = {  # AU term (present / related AUs in AUS) + emotion term + valence term
        "happily surprised": 4 / 6 + 1.0 + 1.0,      # AUs 1,2,12,25,5,26
        "happily disgusted": 2 / 6 + 0.5 + 1.0,      # AUs 10,12,25,4,6,9
        "sadly fearful": 3 / 8,                      # AUs 1,4,20,25,2,5,6,15
        "sadly angry": 0.0,                          # AUs 4,15,6,7,17 (AU11 dropped)
        "sadly surprised": 3 / 6 + 0.5,              # AUs 1,4,25,26,2,6
        "sadly disgusted": 2 / 8,                    # AUs 4,10,1,6,9,15,17,25
        "fearfully angry": 1 / 6,                    # AUs 4,20,25,5,7,10
        "fearfully surprised": 3 / 8 + 0.5,          # AUs 1,2,5,20,25,4,10,26
        "angrily surprised": 1 / 6 + 0.5,            # AUs 4,25,26,5,7,10
        "angrily disgusted": 0.0,                    # AUs 4,10,17,7,9,24
        "disgustedly surprised": 2 / 8 + 0.5,        # AUs 1,2,5,10,4,9,17,24
    }
    want = [expected[taxonomy.COMPOUND_NAMES[i]] for i in RAFDB_COMPOUND_SUBSET]
    np.testing.assert_allclose(scores, want, atol=1e-6)
    pred = compound.zero_shot_predict(_expr(happiness=0.5, surprise=0.5), _aus(1, 2, 12, 25), [0.4],
                                      RAFDB_COMPOUND_SUBSET)
    assert pred.tolist() == [taxonomy.compound_index("happily surprised")]


def test_valence_term_only_on_the_two_happily_classes():
    args = (_expr(happiness=0.5, surprise=0.5), _aus(1, 2, 12, 25))
    pos = compound.zero_shot_scores(*args, [0.3], RAFDB_COMPOUND_SUBSET)[0]
    neg = compound.zero_shot_scores(*args, [-0.7], RAFDB_COMPOUND_SUBSET)[0]
    zero = compound.zero_shot_scores(*args, [0.0], RAFDB_COMPOUND_SUBSET)[0]
    want = np.zeros(11)
    want[:2] = 1.0  # RAF-DB codes 1, 2 are happily surprised, happily disgusted
    np.testing.assert_allclose(pos - neg, want, atol=1e-6)
    np.testing.assert_allclose(zero - neg, want / 2, atol=1e-6)  # sign(0) = 0 → 0.5


def test_valence_sign_decides_between_happily_and_sadly_surprised():
    # AUs 1, 2, 25, 26: 4 of happily surprised's 6 AUs and 4 of sadly surprised's 6.
    # Emotion terms: 0.29 + 0.40 = 0.69 (happily) vs 0.31 + 0.40 = 0.71 (sadly).
    expr, aus = _expr(happiness=0.29, sadness=0.31, surprise=0.40), _aus(1, 2, 25, 26)
    subset = RAFDB_COMPOUND_SUBSET
    neg = compound.zero_shot_predict(expr, aus, [-0.2], subset)
    pos = compound.zero_shot_predict(expr, aus, [0.2], subset)
    assert neg.tolist() == [taxonomy.compound_index("sadly surprised")]     # 1.3767 > 1.3567
    assert pos.tolist() == [taxonomy.compound_index("happily surprised")]   # 2.3567


def test_batch_rows_are_scored_independently():
    expr = np.concatenate([_expr(happiness=0.5, surprise=0.5), _expr(anger=0.6, disgust=0.4)])
    aus = np.concatenate([_aus(1, 2, 12, 25), _aus(4, 7, 9, 10, 17, 24)])
    pred = compound.zero_shot_predict(expr, aus, [0.5, -0.5], RAFDB_COMPOUND_SUBSET)
    # Row 2: angrily disgusted has all 6 AUs (4,10,17,7,9,24) → 1 + 1.0 = 2.0; sadly angry 3/5 + 0.6.
    assert pred.tolist() == [taxonomy.compound_index("happily surprised"),
                             taxonomy.compound_index("angrily disgusted")]


# === EmotioNet: 6 basic + 10 compound ===

def test_emotionet_space_layout():
    space = compound.class_space("emotionet-compound")
    assert len(space) == 16
    assert space.names[:6] == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    assert space.names[6:] == tuple(taxonomy.COMPOUND_NAMES[i] for i in taxonomy.EMOTIONET_COMPOUND_SUBSET)
    raf = compound.class_space("synth-rafdb-compound")
    assert raf.basic == () and raf.compound == RAFDB_COMPOUND_SUBSET
    with pytest.raises(ValueError, match="no compound labels"):
        compound.class_space("disfa")


def test_basic_class_weight_option():
    # A clearly happy face: p(happiness) = 1, AUs 6, 12, 25 (Table 1's happiness AUs), positive valence.
    space = compound.class_space("emotionet-compound")
    args = (_expr(happiness=1.0), _aus(6, 12, 25), [0.8], space)
    col = {n: j for j, n in enumerate(space.names)}
    s2 = compound.zero_shot_scores(*args)[0]                                  # default weight 2
    assert s2[col["happiness"]] == pytest.approx(3 / 3 + 2.0)
    assert s2[col["happily disgusted"]] == pytest.approx(3 / 6 + 1.0 + 1.0)   # AUs 10,12,25,4,6,9
    assert s2[col["happily surprised"]] == pytest.approx(2 / 6 + 1.0 + 1.0)
    assert compound.zero_shot_classify(*args).tolist() == [col["happiness"]]
    # The literal reading (weight 1) lets the valence term push the face into a compound class.
    s1 = compound.zero_shot_scores(*args, basic_emotion_weight=1.0)[0]
    assert s1[col["happiness"]] == pytest.approx(2.0)
    assert compound.zero_shot_classify(*args, basic_emotion_weight=1.0).tolist() == [col["happily disgusted"]]
    s_v = compound.zero_shot_scores(*args, basic_valence=True)[0]
    assert s_v[col["happiness"]] == pytest.approx(4.0)


def test_labels_map_into_the_space():
    space = compound.class_space("emotionet-compound")
    hs = taxonomy.compound_index("happily surprised")
    got = space.labels([4, 0, -1, 1, -1], [-1, -1, hs, -1, taxonomy.compound_index("sadly fearful")])
    # happiness → col 3; neutral and sadly fearful are not EmotioNet classes → -1; happily surprised → col 6.
    assert got.tolist() == [3, -1, 6, 0, -1]


def test_bad_inputs_raise_clearly():
    with pytest.raises(ValueError, match=r"expr_probs must be \(N, 7\)"):
        compound.zero_shot_scores(np.zeros((2, 6)), np.zeros((2, 17)), np.zeros(2), RAFDB_COMPOUND_SUBSET)
    with pytest.raises(ValueError, match="au_probs"):
        compound.zero_shot_scores(np.zeros((2, 7)), np.zeros((3, 17)), np.zeros(2), RAFDB_COMPOUND_SUBSET)
    with pytest.raises(ValueError, match="non-finite"):
        compound.zero_shot_scores(np.zeros((1, 7)), np.full((1, 17), np.nan), np.zeros(1), RAFDB_COMPOUND_SUBSET)
    with pytest.raises(ValueError, match="no related AU"):
        compound.zero_shot_scores(np.zeros((1, 7)), np.zeros((1, 17)), np.zeros(1), compound.ClassSpace(basic=(0,)))


# === Metrics ===

def test_compound_metrics_by_hand():
    space = compound.ClassSpace(compound=(0, 1))
    y_true, y_pred = [0, 0, 1, 1, -1], [0, 1, 1, 1, 0]   # the -1 row is left out
    got = compound.compound_metrics(y_true, y_pred, space, "mean_diagonal")
    assert got == {"compound_mean_diag": pytest.approx((1 / 2 + 2 / 2) / 2)}
    got = compound.compound_metrics(y_true, y_pred, space, "f1_uar")
    # class 0: P 1, R 1/2 → F1 2/3; class 1: P 2/3, R 1 → F1 4/5.
    assert got["compound_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert got["compound_uar"] == pytest.approx(0.75)


# === Few-shot fine-tuning (mechanics, on class-coded images) ===

def _coded_items(database, split, n, seed):
    """Items whose class is written into the image as a bright horizontal band (row band = class)."""
    from tfrecords_tools.items import Item

    rng = np.random.default_rng(seed)
    space = compound.class_space(database)
    for i in range(n):
        col = i % len(space)
        img = rng.integers(0, 60, (96, 96, 3), dtype=np.uint8)
        top = col * 96 // len(space)
        img[top:top + 96 // len(space)] = 230
        yield Item(database=database, split=split, image_id=f"{split}/{i}", load=lambda img=img: img,
                   aligned=True, compound=space.compound[col])


@pytest.fixture(scope="module")
def coded_compound_dir(tmp_path_factory):
    from tfrecords_tools.writer import write_shards

    out = tmp_path_factory.mktemp("compound_data")
    items = [it for split, n in (("train", 110), ("test", 55)) for it in _coded_items("rafdb-compound", split, n, 1)]
    write_shards(iter(items), out, "coded", aligner="none")
    return out


def test_class_labels_in_tensorflow_match_numpy():
    from fbn_keras.finetune_compound import class_labels

    space = compound.class_space("emotionet-compound")
    expr = np.array([4, 0, -1, 1, -1, 2])
    comp = np.array([-1, -1, 0, -1, 2, 12])
    got = class_labels(space, expr, comp).numpy().tolist()
    assert got == [3, -1, 6, 0, -1, 6 + taxonomy.EMOTIONET_COMPOUND_SUBSET.index(12)]


def test_compound_head_sits_on_a_copy_of_the_base():
    import keras

    from fbn_keras import finetune_compound
    from fbn_keras.config import preset
    from fbn_keras.model import build_facebehaviornet

    base = build_facebehaviornet(preset("tiny"))
    model = finetune_compound.compound_model(base, 16)
    assert model.output_shape == (None, 16)
    # Same weights as the base up to its features, but no shared layer objects.
    assert not {id(layer) for layer in base.layers} & {id(layer) for layer in model.layers}
    np.testing.assert_array_equal(model.get_layer("fc2").get_weights()[0], base.get_layer("fc2").get_weights()[0])
    with pytest.raises(ValueError, match="no layer 'fc9'"):
        finetune_compound.compound_model(base, 11, feature_layer="fc9")


@pytest.mark.slow
def test_finetune_cli_learns_the_compound_head(coded_compound_dir, tmp_path):
    import json

    import keras

    from fbn_keras import finetune_compound
    from fbn_keras.config import preset
    from fbn_keras.model import build_facebehaviornet

    keras.utils.set_random_seed(0)
    build_facebehaviornet(preset("tiny")).save(tmp_path / "model.keras")
    rc = finetune_compound.main([str(tmp_path / "model.keras"), "--data", str(coded_compound_dir),
                                 "--steps", "40", "--batch-size", "22", "--learning-rate", "3e-3",
                                 "--out", str(tmp_path / "ft")])
    assert rc == 0
    saved = json.loads((tmp_path / "ft" / finetune_compound.RESULTS_FILE).read_text())
    assert saved["database"] == "rafdb-compound" and len(saved["classes"]) == 11
    assert saved["metrics"]["n_compound"] == 55
    # The band is plain to see: fine-tuning must beat chance (1/11) by far.
    assert saved["metrics"]["compound_mean_diag"] > 0.5, saved["metrics"]
    model = keras.saving.load_model(tmp_path / "ft" / finetune_compound.MODEL_FILE)
    assert model.output_shape == (None, 11)
    with pytest.raises(SystemExit, match="^2$"):   # not in the folder: a clear usage error, not a traceback
        finetune_compound.main([str(tmp_path / "model.keras"), "--data", str(coded_compound_dir),
                                "--database", "emotionet-compound"])


# === On the synthetic compound set, with a briefly trained FaceBehaviorNet ===

@pytest.fixture(scope="module")
def trained_on_synthetic(tmp_path_factory):
    """A `small` FaceBehaviorNet trained briefly on the synthetic test-bed, and a compound folder.

    32×32 inputs and every label of each record (`use_all_labels`) make 600 steps
    affordable on a CPU (~3 min) while the AUs and expressions are learned well
    enough for eq. 10. The compound folder holds synth-rafdb-compound at full
    scale (800 train, 300 test faces) so that the comparison is not noise.
    """
    from fbn_keras import testbed, train
    from fbn_keras.config import preset
    from tfrecords_tools import synthetic
    from tfrecords_tools.writer import write_shards

    data = testbed.ensure_synthetic_testbed(scale=0.1)
    comp = tmp_path_factory.mktemp("synth_compound")
    write_shards(synthetic.items(1.0, 0, ["synth-rafdb-compound"]), comp, "synthetic", aligner="auto")
    config = preset("small", image_size=32, steps=600, use_all_labels=True, deterministic=True,
                    au_pos_weight="none", eval_every=0, checkpoint_every=1000)
    result = train.train(config, data, tmp_path_factory.mktemp("run"), verbose=False)
    return result.model, comp


@pytest.mark.slow
def test_zero_shot_beats_chance_and_few_shot_beats_zero_shot(trained_on_synthetic):
    from fbn_keras import evaluate, finetune_compound

    model, comp = trained_on_synthetic
    zero = evaluate.evaluate_model(model, comp, "test")["synth-rafdb-compound"]
    assert zero["n_compound"] == 300
    chance = 1 / 11
    # Measured on test-bed v2 (2026-12-02): zero-shot 0.178, 0.173, 0.175 for training seeds 0, 1, 2 (mean
    # diagonal over the 11 classes; the same value again when a seed is rerun). 1.5 x chance = 0.136 sits
    # 0.037 (over 10 s.d.) below them: it fails when eq. 10 stops transferring, not by a seed's luck.
    assert zero["compound_mean_diag"] > 1.5 * chance, zero
    # Fine-tuned 400 steps at 1e-3, fine-tuning seeds 0-3: 0.328, 0.273, 0.243, 0.279 - a gain over
    # zero-shot of 0.103 on average, seed-to-seed s.d. 0.035, smallest 0.065. The margin 0.03 sits 2 s.d.
    # below the mean gain, so it fails when fine-tuning stops helping. (At the earlier 60 steps, on
    # test-bed v1, seeds gave 0.270, 0.221, 0.097, 0.209 against zero-shot 0.219: no margin held.)
    few = finetune_compound.finetune(model, comp, steps=400, batch_size=32, learning_rate=1e-3, seed=0)
    assert few.metrics["n_compound"] == 300
    assert few.metrics["compound_mean_diag"] > zero["compound_mean_diag"] + 0.03, (few.metrics, zero)
