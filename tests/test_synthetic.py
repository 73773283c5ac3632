"""The synthetic test-bed: each AU's deformation where FACS puts it, the generative story's
rates as worked out by hand from Table 1, the databases' partial labels, splits and determinism."""

import numpy as np
import pytest

from fbn_keras import synthetic, taxonomy

AUS = taxonomy.AUS


def _only(au: int, value: float = 1.0) -> np.ndarray:
    x = np.zeros(len(AUS), np.float32)
    x[AUS.index(au)] = value
    return x


def _changed_rows(au: int) -> np.ndarray:
    """Rows of a clean default face that change when `au` goes from 0 to 1."""
    idn = synthetic.Identity()
    diff = np.abs(synthetic.render_face(_only(au), idn).astype(int)
                  - synthetic.render_face(np.zeros(len(AUS)), idn).astype(int)).max(axis=2)
    return np.nonzero((diff > 20).any(axis=1))[0]


# === The renderer ===

# Face coordinates → image rows on a clean face: row = 44 + 0.95·y (FACE_CENTER, FACE_SCALE).
# Upper-face AUs act above the lower eyelid's tension line (y ≈ −4 → row ≈ 40);
# lower-face AUs act below the nose tip (nasolabial folds start at y ≈ 7 → row ≈ 50).
@pytest.mark.parametrize("au", [1, 2, 4, 5, 7])
def test_upper_face_aus_change_only_the_upper_face(au):
    rows = _changed_rows(au)
    assert len(rows) >= 2, f"AU{au} changes nothing visible"
    assert rows.max() <= 44, (au, rows)


@pytest.mark.parametrize("au", [12, 14, 15, 17, 20, 23, 24, 25, 26])
def test_lower_face_aus_change_only_the_lower_face(au):
    rows = _changed_rows(au)
    assert len(rows) >= 2, f"AU{au} changes nothing visible"
    assert rows.min() >= 48, (au, rows)


@pytest.mark.parametrize("au, lo, hi", [(6, 30, 60), (9, 36, 64), (10, 46, 70)])
def test_mid_face_aus_change_their_region(au, lo, hi):
    rows = _changed_rows(au)
    assert len(rows) >= 2 and rows.min() >= lo and rows.max() <= hi, (au, rows)


def _lowest_skin_row(image: np.ndarray, skin) -> int:
    column = image[:, 48].astype(int)
    return int(np.nonzero(np.abs(column - np.asarray(skin)).max(axis=1) < 12)[0].max())


def test_jaw_drop_lowers_the_chin_by_seven_face_units():
    # AU26 = 1 moves the chin 7 face units down: 7 × 0.95 = 6.65 px on a clean face.
    idn = synthetic.Identity()
    rest = _lowest_skin_row(synthetic.render_face(np.zeros(len(AUS)), idn), idn.skin)
    dropped = _lowest_skin_row(synthetic.render_face(_only(26), idn), idn.skin)
    assert rest == pytest.approx(44 + 0.95 * 36, abs=1.5)
    assert dropped - rest == pytest.approx(6.65, abs=1.5)


def _lip_corner(image: np.ndarray, lip) -> tuple[float, float]:
    """(x, y) of the rightmost lip-coloured pixels in the mouth's rows (50–75)."""
    mask = np.abs(image.astype(int) - np.asarray(lip, int)).max(axis=2) < 30
    mask[:50], mask[76:] = False, False
    ys, xs = np.nonzero(mask)
    right = xs >= xs.max() - 1
    return float(xs.max()), float(ys[right].mean())


def test_lip_corner_puller_moves_the_corners_up_and_out():
    # AU12 = 1: corners 4.5 face units up and 2.5 out → 4.3 px up, 2.4 px out.
    idn = synthetic.Identity()
    x0, y0 = _lip_corner(synthetic.render_face(np.zeros(len(AUS)), idn), idn.lip)
    x1, y1 = _lip_corner(synthetic.render_face(_only(12), idn), idn.lip)
    assert y0 - y1 == pytest.approx(4.3, abs=1.5)
    assert x1 - x0 == pytest.approx(2.4, abs=1.5)


def test_upper_lid_raiser_shows_more_white_of_the_eye():
    # AU5 = 1 opens the upper lid from 3.2 to 6.6 face units: the visible sclera grows.
    idn = synthetic.Identity()
    white = lambda img: int((img.min(axis=2) > 200).sum())  # noqa: E731
    rest, raised = (white(synthetic.render_face(x, idn)) for x in (np.zeros(len(AUS)), _only(5)))
    assert raised > 1.5 * rest > 0


def test_render_is_deterministic_and_nuisance_changes_the_image():
    rng = np.random.default_rng(3)
    idn, nuisance = synthetic.Identity.sample(rng), synthetic.Nuisance.sample(rng, occlusion_rate=1.0)
    x = np.full(len(AUS), 0.3, np.float32)
    a = synthetic.render_face(x, idn, nuisance)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, synthetic.render_face(x, idn, nuisance))
    assert nuisance.occluder is not None and 60 <= nuisance.jpeg_quality <= 95
    assert np.abs(a.astype(int) - synthetic.render_face(x, idn).astype(int)).mean() > 5


def test_nuisance_stays_within_the_test_beds_ranges():
    rng = np.random.default_rng(0)
    draws = [synthetic.Nuisance.sample(rng) for _ in range(2000)]
    assert max(abs(d.rotation) for d in draws) <= 15 and max(abs(d.rotation) for d in draws) > 14
    assert all(0.9 <= d.scale <= 1.1 and max(map(abs, d.shift)) <= 4 for d in draws)
    assert {min(d.jpeg_quality for d in draws), max(d.jpeg_quality for d in draws)} == {60, 95}
    assert np.mean([d.occluder is not None for d in draws]) == pytest.approx(0.10, abs=0.02)


@pytest.mark.parametrize("bad", [np.zeros(16), np.full(17, 1.5), np.full(17, np.nan)])
def test_render_rejects_bad_intensities(bad):
    with pytest.raises(ValueError, match="intensities"):
        synthetic.render_face(bad, synthetic.Identity())


# === The generative story (main paper Table 1) ===

def _states(n: int, seed: int = 0, subset=()):
    rng = np.random.default_rng(seed)
    return [synthetic.draw_state(rng, subset) for _ in range(n)]


def _label_rate(states, au: int) -> float:
    return float(np.mean([s.intensities[AUS.index(au)] >= 0.5 for s in states]))


# An active AU has intensity strength·u, strength ~ U(0.55, 1), u ~ U(0.85, 1.2); it falls under
# 0.5 with probability ∫_{0.85}^{0.5/0.55} (0.5/u − 0.55) du / (0.45·0.35) = 0.0069.
P_ACTIVE_LABEL = 1 - 0.0069


def test_story_follows_table_1_for_sadness():
    sad = [s for s in _states(16000) if s.expr == taxonomy.expression_index("sadness")]
    assert len(sad) > 1500
    assert _label_rate(sad, 4) == pytest.approx(P_ACTIVE_LABEL, abs=0.01)       # prototypical
    assert _label_rate(sad, 15) == pytest.approx(P_ACTIVE_LABEL, abs=0.01)
    assert _label_rate(sad, 17) == pytest.approx(0.67 * P_ACTIVE_LABEL, abs=0.04)  # observational, w = 0.67
    assert _label_rate(sad, 1) == pytest.approx(0.6 * P_ACTIVE_LABEL, abs=0.04)    # w = 0.6
    assert _label_rate(sad, 12) == pytest.approx(0.02, abs=0.015)                 # unrelated: spontaneous


def test_neutral_faces_have_only_spontaneous_aus():
    neutral = [s for s in _states(8000) if s.expr == 0]
    # Spontaneous intensities are U(0.5, 0.9): every spontaneous AU is labelled present.
    boosted = {7: 0.05, 14: 0.15, 23: 0.06, 24: 0.05}
    for au in AUS:
        assert _label_rate(neutral, au) == pytest.approx(boosted.get(au, 0.02), abs=0.012), au


def test_neutral_and_happiness_are_the_most_common_expressions():
    counts = np.bincount([s.expr for s in _states(4000)], minlength=7)
    assert counts.min() > 0
    assert set(np.argsort(counts)[-2:]) == {taxonomy.expression_index("neutral"),
                                            taxonomy.expression_index("happiness")}


def test_compound_faces_show_their_du_et_al_pattern():
    idx = taxonomy.compound_index("happily surprised")
    faces = _states(3000, subset=(idx,))
    assert all(s.compound == idx and s.expr == -1 for s in faces)
    for au in (1, 2, 12, 25):
        assert _label_rate(faces, au) == pytest.approx(P_ACTIVE_LABEL, abs=0.01)
    for au in (5, 26):   # observational, on half the time
        assert _label_rate(faces, au) == pytest.approx(0.5 * P_ACTIVE_LABEL, abs=0.04)


def test_va_is_the_circumplex_point_plus_au_terms():
    happy = np.eye(7)[taxonomy.expression_index("happiness")]
    # strength 0.5, AU12 = 0.5: valence 0.5·0.65 + 0.5·0.30 = 0.475, arousal 0.5·0.30 = 0.15
    np.testing.assert_allclose(synthetic.va_of(happy, 0.5, _only(12, 0.5)), [0.475, 0.15], atol=1e-6)
    # happily surprised at strength 1, no AU: ½(0.65 + 0.25), ½(0.30 + 0.60)
    mix = synthetic.compound_mix(taxonomy.compound_index("happily surprised"))
    np.testing.assert_allclose(synthetic.va_of(mix, 1.0, np.zeros(17)), [0.45, 0.45], atol=1e-6)
    # strength 1, AU12 = AU6 = 1: valence 0.65 + 0.30 + 0.10 = 1.05 → clipped to 1; arousal 0.30
    np.testing.assert_allclose(synthetic.va_of(happy, 1.0, _only(12) + _only(6)), [1.0, 0.30], atol=1e-6)


def test_annotator_noise_on_va_is_about_0_1():
    resid = []
    for s in _states(4000):
        mix = np.eye(7)[s.expr]
        clean = synthetic.va_of(mix, s.strength, s.intensities)
        if np.all(np.abs(clean) < 0.7):
            resid.append(s.va - clean)
    assert np.std(resid) == pytest.approx(synthetic.VA_NOISE_STD, abs=0.01)


# === The databases ===

def _take(database, split="train", n=60, seed=0):
    return list(synthetic.generate(database, split, n=n, seed=seed))


def test_there_are_eleven_databases_with_default_sizes_for_every_split():
    # The eight of Section 4's training sets, then AFEW, BP4D+ and EmotioNet's compound set.
    assert set(synthetic.SYNTHETIC_DATABASES) == set(taxonomy.SYNTHETIC_OF)
    assert len(synthetic.SYNTHETIC_DATABASES) == 11
    train = sum(synthetic.DEFAULT_SIZES[d]["train"] for d in synthetic.SYNTHETIC_DATABASES)
    assert 15000 <= train <= 30000
    test_per_task = {task: sum(synthetic.DEFAULT_SIZES[d]["test"] for d in synthetic.SYNTHETIC_DATABASES
                               if task in taxonomy.database(d).tasks) for task in ("va", "expr", "au")}
    assert all(1000 <= n <= 2500 for n in test_per_task.values()), test_per_task


@pytest.mark.parametrize("database, aus", [
    ("synth-disfa", (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)),
    ("synth-bp4d", (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23)),
    ("synth-emotionet", (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26)),
])
def test_au_databases_label_only_their_aus(database, aus):
    for s in _take(database, n=30):
        assert s.va is None and s.expr == -1 and s.compound == -1
        np.testing.assert_array_equal(s.au_mask, [float(a in aus) for a in AUS])
        np.testing.assert_array_equal(s.au, (s.intensities >= 0.5) * s.au_mask)


def test_va_and_expression_databases_carry_only_their_labels():
    for s in _take("synth-affwild", n=40):
        assert s.va is not None and s.expr == -1 and s.au is None and s.compound == -1 and s.frame >= 1
        assert all(-1 <= v <= 1 for v in s.va)
    for s in _take("synth-rafdb", n=20):
        assert s.va is None and 0 <= s.expr < 7 and s.au is None and s.frame == -1


def test_rafdb_compound_draws_the_11_raf_db_classes():
    seen = {s.compound for s in _take("synth-rafdb-compound", n=150)}
    assert seen == set(taxonomy.RAFDB_COMPOUND_SUBSET)


def test_affectnet_has_a_few_percent_without_usable_labels():
    samples = _take("synth-affectnet", n=600)
    no_expr = [s for s in samples if s.expr == -1]
    assert 0.01 <= len(no_expr) / len(samples) <= 0.12
    assert any(s.va is None for s in no_expr) and any(s.va is not None for s in no_expr)
    assert all(s.expr == -1 for s in samples if s.va is None)   # codes 9/10 carry neither label


def test_affwild2_videos_have_consecutive_frames_and_invalid_runs():
    samples = _take("synth-affwild2", n=500)
    by_video = {}
    for s in samples:
        by_video.setdefault(s.group, []).append(s)
    assert len(by_video) >= 5
    for frames in by_video.values():
        assert [s.frame for s in frames] == list(range(1, len(frames) + 1))
        assert all(s.image_id == f"{s.group}/{s.frame:05d}" for s in frames)
    missing = {"va": np.mean([s.va is None for s in samples]), "expr": np.mean([s.expr == -1 for s in samples]),
               "au": np.mean([s.au is None for s in samples])}
    assert all(0.005 <= m <= 0.2 for m in missing.values()), missing
    labelled = [s for s in samples if s.au is not None]
    np.testing.assert_array_equal(labelled[0].au_mask, taxonomy.au_mask_for(taxonomy.DATABASES["affwild2"].aus))
    # Consecutive frames change little compared with frames of different videos.
    x = np.stack([s.intensities for s in samples])
    same = [np.abs(a.intensities - b.intensities).mean() for a, b in zip(samples, samples[1:]) if a.group == b.group]
    assert np.mean(same) < 0.5 * np.abs(x[:, None] - x[None, ::7]).mean()


def test_splits_are_disjoint_by_identity():
    train, test = _take("synth-rafdb", "train", 40), _take("synth-rafdb", "test", 40)
    assert not {s.group for s in train} & {s.group for s in test}
    assert all(s.group.startswith("train-") for s in train)
    # Identities are drawn per split: the same identity index gives different people.
    signature = lambda s: s.image[40:70, 30:66].mean()  # noqa: E731
    assert {round(signature(s), 3) for s in train[:4]} != {round(signature(s), 3) for s in test[:4]}


def test_generate_is_deterministic_by_seed_and_prefix_stable():
    a, b = _take("synth-affectnet", n=8), _take("synth-affectnet", n=8)
    assert all(np.array_equal(x.image, y.image) and x.va == y.va and x.expr == y.expr for x, y in zip(a, b))
    longer = _take("synth-affectnet", n=12)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, longer))
    other = _take("synth-affectnet", n=8, seed=1)
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, other))
    assert len(_take("synth-affwild2", n=7)) == 7 and _take("synth-emotionet", n=0) == []


def test_generate_rejects_unknown_names():
    with pytest.raises(ValueError, match="synth-rafdb"):
        next(synthetic.generate("rafdb", "train"))
    with pytest.raises(ValueError, match="split"):
        next(synthetic.generate("synth-rafdb", "val"))


def test_labelled_stills_carry_every_label():
    s = next(synthetic.labelled_stills(1))
    assert s.va is not None and 0 <= s.expr < 7 and s.au_mask.sum() == 17
    np.testing.assert_array_equal(s.au, s.intensities >= 0.5)


def test_contact_sheet_is_written(tmp_path):
    path = tmp_path / "sheet.png"
    sheet = synthetic.contact_sheet(str(path), identities=2)
    # 2 banners of 30 px, 7 expression rows and ceil(17 AUs / 3 pairs per row) = 6 AU rows of
    # 22 + 192 px each; 6 columns of 192 px.
    assert sheet.shape == (2 * 30 + 13 * (22 + 192), 6 * 192, 3)
    import cv2
    np.testing.assert_array_equal(cv2.imread(str(path))[:, :, ::-1], sheet)
