"""The semi-supervised GAN's Table IX as a campaign table: scarce labels (GanConfig.label_fraction), the plan,
one tiny run end to end, the paper's numbers, and the verdicts on numbers worked out by hand."""

import json
import math

import numpy as np
import pytest

from fbn_keras import campaign, experiments, paper_results, verdicts
from fbn_keras.gan import GanConfig, gan_preset

DB = paper_results.GAN_TESTBED_DATABASE
VA = ((DB, "ccc_v"), (DB, "ccc_a"))
F1 = ((DB, "au_f1_weighted"), (DB, "au_f1_macro"))


@pytest.fixture(scope="module")
def data_dir():
    from fbn_keras import testbed

    return testbed.ensure_synthetic_testbed(scale=campaign.RUN_PRESETS["tiny"].scale)


# === Scarce labels ===

def test_label_fraction_is_checked():
    assert GanConfig().label_fraction == 1.0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"label_fraction must be in \(0, 1\]"):
            GanConfig(label_fraction=bad)


def test_labelled_images_is_a_seeded_hash_of_the_pixels():
    """The same pixels give the same answer; the answer is Σ w_i x_i mod p < fraction·p with w from the seed
    (worked out here in numpy); another seed picks another subset."""
    from fbn_keras.train_gan import labelled_images

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (200, 4, 4, 3))
    images = (pixels / 127.5 - 1.0).astype(np.float32)
    p = 2 ** 31 - 1
    weights = np.random.default_rng([5, 7]).integers(1, p, 4 * 4 * 3, dtype=np.int64)
    expected = (pixels.reshape(200, -1).astype(np.int64) @ weights) % p / p < 0.25
    got = labelled_images(images, 0.25, seed=5).numpy()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(labelled_images(images[::-1], 0.25, seed=5).numpy(), expected[::-1])
    assert 0.15 < got.mean() < 0.35
    assert (labelled_images(images, 0.25, seed=6).numpy() != got).any()
    assert labelled_images(images, 1.0, seed=5).numpy().all()


def test_drop_labels_zeroes_the_masks_of_the_unlabelled_images_only():
    import tensorflow as tf

    from fbn_keras.train_gan import drop_labels

    labels = {"va": tf.ones((3, 2)), "va_mask": tf.ones((3,)), "au": tf.ones((3, 17)), "au_mask": tf.ones((3, 17)),
              "expr": tf.constant([2, 4, 1])}
    got = {k: v.numpy() for k, v in drop_labels(labels, tf.constant([True, False, True])).items()}
    np.testing.assert_array_equal(got["va_mask"], [1, 0, 1])
    np.testing.assert_array_equal(got["au_mask"].sum(axis=1), [17, 0, 17])
    np.testing.assert_array_equal(got["expr"], [2, -1, 1])
    np.testing.assert_array_equal(got["va"], np.ones((3, 2)))      # the values stay; the masks say unlabelled


def test_scarce_labels_in_the_training_batches(data_dir):
    """On the tiny test-bed's AU set (1,300 images): about `label_fraction` of the distinct images keep their
    labels, each image is labelled or not the same way every time it comes back, the others have zeroed VA
    and AU masks, and no image is dropped (every batch is full)."""
    from fbn_keras.train_gan import make_gan_dataset

    config = gan_preset("tiny", batch=64, label_fraction=0.3, shuffle_buffer=64, seed=2)
    seen: dict[bytes, list[bool]] = {}
    for images, labels in make_gan_dataset(data_dir, config).take(60):     # ~3 epochs
        assert images.shape[0] == 64 and labels["z"].shape == (64, config.z_dim)
        au_mask, va_mask = labels["au_mask"].numpy(), labels["va_mask"].numpy()
        labelled = au_mask.sum(axis=1) > 0
        assert (va_mask[~labelled] == 0).all() and (labels["expr"].numpy()[~labelled] == -1).all()
        for image, flag in zip(np.round((images.numpy() + 1.0) * 127.5).astype(np.uint8), labelled):
            seen.setdefault(image.tobytes(), []).append(bool(flag))
    assert all(len(set(flags)) == 1 for flags in seen.values())          # the same images every epoch
    assert sum(len(f) > 1 for f in seen.values()) > 500                  # ... and images did come back
    share = np.mean([flags[0] for flags in seen.values()])
    assert len(seen) > 1000 and abs(share - 0.3) < 0.06


# === The plan ===

def test_gan_table_plan_and_configs():
    small, tiny = campaign.RUN_PRESETS["small"], campaign.RUN_PRESETS["tiny"]
    runs = {r.label: r for r in campaign.plan([1], ["gan"])}
    assert list(runs) == ["only VA, CCC", "only VA, MSE", "only AU", "VA+AU, CCC+CE", "VA+AU, MSE+CE",
                          "VA+AU, scarce labels", "VA+AU, no fake class, scarce labels"]
    assert list(runs) == list(experiments.GAN_METHODS)
    got = {label: (c.d_outputs, c.va_loss, c.label_fraction, c.seed)
           for label, c in ((label, r.config(small)) for label, r in runs.items())}
    assert got["only VA, MSE"] == ("va+fake", "mse", 1.0, 1)
    assert got["only AU"][0] == "au+fake"
    assert got["VA+AU, CCC+CE"] == ("va+au+fake", "ccc", 1.0, 1)
    assert got["VA+AU, scarce labels"] == ("va+au+fake", "ccc", campaign.GAN_SCARCE, 1)
    assert got["VA+AU, no fake class, scarce labels"] == ("va+au", "ccc", campaign.GAN_SCARCE, 1)
    joint = runs["VA+AU, CCC+CE"]
    assert joint.gan and joint.data_kind == "image" and joint.name == "VA_AU-CCC_CE-s1"
    c = joint.config(small)
    assert isinstance(c, GanConfig) and (c.gan_config, c.image_size, c.width, c.batch, c.ratio) == ("1", 32, 0.25,
                                                                                                    32, 1)
    assert joint.config(tiny).preset == "tiny" and joint.config(tiny).steps == 4
    # The other tables' runs are unchanged.
    other = next(r for r in campaign.plan([0], ["table6"]) if r.label == "none")
    assert not other.gan and other.config(small).coupling == "none"


def test_gan_run_folders_differ_by_config_and_data():
    small = campaign.RUN_PRESETS["small"]
    runs = {r.label: r for r in campaign.plan([0, 1], ["gan"]) if r.seed == 0}
    data = {"digest": "abc"}
    a = campaign.gan_run_folder(campaign.REPO, runs["VA+AU, CCC+CE"].config(small), data)
    b = campaign.gan_run_folder(campaign.REPO, runs["VA+AU, scarce labels"].config(small), data)
    assert a.name.startswith("gan-va_au_fake-") and b.name.startswith("gan-va_au_fake-") and a != b
    assert a == campaign.gan_run_folder(campaign.REPO, runs["VA+AU, CCC+CE"].config(small), dict(data))
    assert a != campaign.gan_run_folder(campaign.REPO, runs["VA+AU, CCC+CE"].config(small), {"digest": "abd"})


# === One run end to end ===

def test_tiny_gan_run_end_to_end(tmp_path, capsys):
    """Table IX's joint row at the tiny preset: trained by train_gan into a run folder, D scored on the test
    splits, one result JSON with provenance; a second invocation does nothing; the rendered table agrees with
    its CSV; the run's G is found for the notebook's grid."""
    args = ["run", "--preset", "tiny", "--run", "gan/VA_AU-CCC_CE-s0", "--seeds", "0", "--runs-dir",
            str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert experiments.main(args) == 0
    path = tmp_path / "results" / "gan" / "VA_AU-CCC_CE-s0.json"
    body = json.loads(path.read_text())
    assert body["config"]["d_outputs"] == "va+au+fake" and body["config"]["label_fraction"] == 1.0
    assert body["config"]["preset"] == "tiny" and body["steps"] == 4 and body["label"] == "VA+AU, CCC+CE"
    assert body["git"]["commit"] and body["data"]["counts"]["synth-affwild2"]["test"] > 0 and body["host"]["keras"]
    scores = body["metrics"]["synth-affwild2"]
    assert -1.0 <= scores["ccc_v"] <= 1.0 and 0.0 <= scores["au_f1_weighted"] <= 1.0
    assert 0.0 <= scores["au_total_acc"] <= 1.0 and body["wall_s"]["train"] > 0
    folders = list((tmp_path / "runs").glob("gan-va_au_fake-*"))
    assert len(folders) == 1 and (folders[0] / "discriminator.keras").exists()
    capsys.readouterr()
    assert experiments.main(args) == 0
    assert "0 result(s) written" in capsys.readouterr().out
    text = experiments.render("gan", tmp_path / "results", tmp_path / "tables")
    frame = experiments.load(tmp_path / "tables" / "gan.csv")
    assert experiments.show(frame) in text and "Generation paper Table IX" in text
    assert frame.loc[(DB, "ccc_v"), ("VA+AU, CCC+CE", "ours")] == pytest.approx(scores["ccc_v"])
    assert frame.loc[(DB, "ccc_v"), ("VA+AU, CCC+CE", "paper")] == pytest.approx(0.447)
    assert campaign.gan_run_dir("VA+AU, CCC+CE", 0, "tiny", tmp_path / "runs") == folders[0]
    assert campaign.gan_run_dir("only AU", 0, "tiny", tmp_path / "runs") is None


# === The paper's numbers and the claims ===

def test_table_ix_numbers_as_printed():
    """A few of Table IX's numbers typed from the paper: only VA with MSE 0.484 / 0.384, only AU F1 0.404 and
    accuracy 0.824, VA + AU with CCC + cross entropy 0.447 / 0.374 / 0.328 / 0.330 / 0.661."""
    t9 = paper_results.GAN_TABLE9
    assert t9["only VA, MSE"] == {("affwild", "ccc_v"): 0.484, ("affwild", "ccc_a"): 0.384}
    assert t9["only AU"][("affwild", "au_f1_weighted")] == 0.404 and t9["only AU"][("affwild", "au_total_acc")] == 0.824
    assert [t9["VA+AU, CCC+CE"][("affwild", m)] for m in ("ccc_v", "ccc_a", "au_f1_weighted", "au_f1_macro",
                                                           "au_total_acc")] == [0.447, 0.374, 0.328, 0.330, 0.661]
    assert ("affwild", "au_f1_macro") not in t9["only VA, CCC"]        # a dash in the table
    assert paper_results.gan_table9_on("x")["VA+AU, MSE+CE"][("x", "ccc_a")] == 0.333


def test_gan_claims_follow_the_tables_numbers():
    """Only AU above VA + AU on the AU columns ((0.404 + 0.40 + 0.824) / 3 = 0.543 vs (0.328 + 0.330 + 0.661) / 3
    = 0.440); with the CCC loss VA + AU slightly above only VA ((0.447 + 0.374) / 2 = 0.4105 vs 0.405); with MSE
    only VA above ((0.484 + 0.384) / 2 = 0.434 vs 0.392)."""
    claims = {c.id: c for c in verdicts.OTHER_CLAIMS if c.table == "gan"}
    pairs = {cid: [(p.better, p.worse) for p in c.pairs] for cid, c in claims.items()}
    assert pairs["gan-au-only-vs-joint-ccc"] == [("only AU", "VA+AU, CCC+CE")]
    assert pairs["gan-au-only-vs-joint-mse"] == [("only AU", "VA+AU, MSE+CE")]
    assert pairs["gan-va-joint-vs-only-ccc"] == [("VA+AU, CCC+CE", "only VA, CCC")]
    assert pairs["gan-va-only-vs-joint-mse"] == [("only VA, MSE", "VA+AU, MSE+CE")]
    assert pairs["gan-va-mse-vs-ccc"] == [("only VA, MSE", "only VA, CCC")]
    assert pairs["gan-fake-class-scarce"] == [("VA+AU, scarce labels", "VA+AU, no fake class, scarce labels")]
    assert "0.543 vs 0.440" in claims["gan-au-only-vs-joint-ccc"].text
    assert "0.410 vs 0.405" in claims["gan-va-joint-vs-only-ccc"].text   # 0.4105 shown at 3 digits
    assert "0.434 vs 0.392" in claims["gan-va-only-vs-joint-mse"].text


def _scores(fake: dict[int, tuple], no_fake: dict[int, tuple]) -> dict:
    keys = VA + F1
    as_keys = lambda by_seed: {s: dict(zip(keys, v)) for s, v in by_seed.items()}  # noqa: E731
    return {"gan": {"VA+AU, scarce labels": as_keys(fake), "VA+AU, no fake class, scarce labels": as_keys(no_fake)}}


def test_fake_class_claim_on_numbers_worked_out_by_hand():
    claim = next(c for c in verdicts.OTHER_CLAIMS if c.id == "gan-fake-class-scarce")
    # With the fake class, per seed (0.5 + 0.3 + 0.6 + 0.5) / 4 = 0.475 and (0.6 + 0.4 + 0.6 + 0.5) / 4 = 0.525;
    # without, (0.2 + 0.1 + 0.3 + 0.4) / 4 = 0.25 and 0.275: gap 0.5 - 0.2625 = 0.2375, sds 0.0354 and 0.0177:
    # supported.
    scores = _scores({0: (0.5, 0.3, 0.6, 0.5), 1: (0.6, 0.4, 0.6, 0.5)},
                     {0: (0.2, 0.1, 0.3, 0.4), 1: (0.2, 0.1, 0.4, 0.4)})
    overall, (v,) = verdicts.judge(claim, scores)
    assert overall == "supported" and v.keys == VA + F1
    assert v.gap == pytest.approx(0.2375) and v.sd == pytest.approx(0.05 / math.sqrt(2))
    # Without the fake class CCC-A is at chance (below 0) and F1 macro 0.25 (within 1.5 x 0.2): both left out;
    # on CCC-V and F1 weighted: (0.5 + 0.6) / 2 = 0.55 and 0.6 vs (0.2 + 0.35) / 2 = 0.275 and 0.325:
    # gap 0.575 - 0.3 = 0.275.
    scores = _scores({0: (0.5, 0.3, 0.6, 0.5), 1: (0.6, 0.4, 0.6, 0.5)},
                     {0: (0.2, -0.05, 0.35, 0.25), 1: (0.3, -0.05, 0.35, 0.25)})
    overall, (v,) = verdicts.judge(claim, scores)
    assert overall == "supported" and v.keys == (VA[0], F1[0]) and v.gap == pytest.approx(0.275)
    # The other way round, clearly: contradicted; one seed: not testable.
    flipped = {"gan": {"VA+AU, scarce labels": scores["gan"]["VA+AU, no fake class, scarce labels"],
                       "VA+AU, no fake class, scarce labels": scores["gan"]["VA+AU, scarce labels"]}}
    assert verdicts.judge(claim, flipped)[0] == "contradicted"
    one = _scores({0: (0.5, 0.3, 0.6, 0.5)}, {0: (0.2, 0.1, 0.3, 0.4)})
    assert verdicts.judge(claim, one)[0] == "not testable"
    # A gap of 0.02 with per-seed means 0.45 / 0.55 vs 0.45 / 0.51 (sd 0.0707): under 2 sd, not testable.
    close = _scores({0: (0.45, 0.45, 0.45, 0.45), 1: (0.55, 0.55, 0.55, 0.55)},
                    {0: (0.45, 0.45, 0.45, 0.45), 1: (0.51, 0.51, 0.51, 0.51)})
    overall, (v,) = verdicts.judge(claim, close)
    assert overall == "not testable" and v.gap == pytest.approx(0.02)


def test_au_only_claim_uses_the_au_columns_and_their_chance_levels():
    """Only AU per seed (0.5 + 0.45 + 0.9) / 3 = 0.6167 and (0.55 + 0.5 + 0.9) / 3 = 0.65; VA + AU 0.2 + 0.2 +
    0.7 (0.7 ≤ 1.5 x 0.5: accuracy left out, and F1 0.2 ≤ 0.3 too): no column left, not testable; with VA + AU
    at F1 0.35 / 0.35 / accuracy 0.8: (0.35 + 0.35 + 0.8) / 3 = 0.5 both seeds, gap 0.6333 - 0.5 = 0.1333."""
    claim = next(c for c in verdicts.OTHER_CLAIMS if c.id == "gan-au-only-vs-joint-ccc")
    keys = claim.pairs[0].keys
    au_only = {0: dict(zip(keys, (0.5, 0.45, 0.9))), 1: dict(zip(keys, (0.55, 0.5, 0.9)))}
    low = {s: dict(zip(keys, (0.2, 0.2, 0.7))) for s in (0, 1)}
    overall, (v,) = verdicts.judge(claim, {"gan": {"only AU": au_only, "VA+AU, CCC+CE": low}})
    assert overall == "not testable" and v.reason.startswith("near chance")
    joint = {s: dict(zip(keys, (0.35, 0.35, 0.8))) for s in (0, 1)}
    overall, (v,) = verdicts.judge(claim, {"gan": {"only AU": au_only, "VA+AU, CCC+CE": joint}})
    assert overall == "supported" and v.gap == pytest.approx((0.6167 + 0.65) / 2 - 0.5, abs=1e-3)
