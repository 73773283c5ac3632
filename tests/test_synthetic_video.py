"""Synthetic video: smooth trajectories, context knobs that do what they say, a control, landmarks from the
geometry, the audio stand-in, the partial labels of each video set, and its records."""

import dataclasses

import cv2
import numpy as np
import pytest

from fbn_keras import sequences, taxonomy
from fbn_keras.records import synthetic_video, writer
from fbn_keras.synthetic import Identity, Nuisance, story
from fbn_keras.synthetic import video as sv
from fbn_keras.synthetic.draw import pose_matrix

L = 60


@pytest.fixture(scope="module")
def twins():
    """Video 0 of the Aff-Wild-like set with its context knobs, and the same video as the control."""
    ctx = list(sv.render_video("synthv-affwild", "train", 0, length=L))
    ctl = list(sv.render_video("synthv-affwild-control", "train", 0, length=L))
    return ctx, ctl


def _stack(frames, name):
    return np.stack([getattr(f, name) for f in frames])


def test_trajectories_are_smooth():
    truth = sv.trajectory(np.random.default_rng(0), 300)
    dx = np.abs(np.diff(truth.intensities, axis=0))
    # x_{t+1} − x_t = r·(target − x_t) with both in [0, 1]: never more than r.
    assert dx.max() <= sv.APPROACH_RATE + 1e-6
    dva = np.abs(np.diff(truth.va, axis=0)).mean(axis=0)
    # Stills drawn independently from the same story change by ~0.3 per draw; the video by a few hundredths.
    rng = np.random.default_rng(1)
    stills = np.stack([story.draw_state(rng).va for _ in range(300)])
    assert np.all(dva < 0.05) and np.all(np.abs(np.diff(stills, axis=0)).mean(axis=0) > 0.15)
    lag1 = [np.corrcoef(truth.va[:-1, d], truth.va[1:, d])[0, 1] for d in range(2)]
    assert min(lag1) > 0.9


def test_control_has_every_knob_off_and_labels_equal_the_truth():
    assert sv.VIDEO_RECIPES["synthv-affwild-control"].knobs.off
    assert not sv.VIDEO_RECIPES["synthv-affwild"].knobs.off
    frames = list(sv.render_video("synthv-affwild2", "train", 0, knobs=sv.CONTROL, length=L))
    mask = taxonomy.au_mask_for(taxonomy.AFFWILD2_PAPER_AUS)
    assert not any(f.degraded for f in frames)
    for f in frames:
        if f.va is not None:
            np.testing.assert_allclose(f.va, f.true_va, atol=1e-6)
        if f.expr >= 0:
            assert f.expr == f.true_expr
        if f.au is not None:
            np.testing.assert_array_equal(f.au, story.au_labels(f.intensities) * mask)


def test_label_lag_shifts_labels_by_exactly_tau_frames():
    knobs = sv.CONTEXT
    frames = list(sv.render_video("synthv-affwild2", "train", 0, length=L))      # video 0 carries AUs
    x, true_va, true_expr = _stack(frames, "intensities"), _stack(frames, "true_va"), _stack(frames, "true_expr")
    mask = taxonomy.au_mask_for(taxonomy.AFFWILD2_PAPER_AUS)
    tau = knobs.lag
    # VA: y_0 = v_0, y_t = α·y_{t−1} + (1 − α)·v_{t−τ} (v_{t−τ} = v_0 before τ), worked out here
    y = np.zeros((L, 2))
    y[0] = true_va[0]
    for t in range(1, L):
        y[t] = knobs.lowpass * y[t - 1] + (1 - knobs.lowpass) * true_va[max(t - tau, 0)]
    checked = 0
    for t, f in enumerate(frames):
        if f.va is not None:
            np.testing.assert_allclose(f.va, y[t], atol=1e-5)
        if t >= tau and f.au is not None:
            np.testing.assert_array_equal(f.au, story.au_labels(x[t - tau]) * mask)
            checked += 1
        if t >= tau and f.expr >= 0:
            assert f.expr == true_expr[t - tau]
    assert checked > L // 2
    # and the labels are not the unshifted truth
    au = np.stack([f.au for f in frames if f.au is not None])
    unshifted = np.stack([story.au_labels(f.intensities) * mask for f in frames if f.au is not None])
    assert np.any(au != unshifted)


def test_motion_raises_arousal_by_k_times_the_intensity_change(twins):
    ctx, ctl = twins
    x = _stack(ctx, "intensities")
    np.testing.assert_array_equal(x, _stack(ctl, "intensities"))                # same face, same story
    a_ctx, a_ctl = _stack(ctx, "true_va")[:, 1], _stack(ctl, "true_va")[:, 1]
    np.testing.assert_allclose(_stack(ctx, "true_va")[:, 0], _stack(ctl, "true_va")[:, 0])
    speed = np.linalg.norm(np.diff(x.astype(np.float64), axis=0), axis=1)
    inside = (np.abs(a_ctx[1:]) < 0.999) & (np.abs(a_ctl[1:]) < 0.999)
    np.testing.assert_allclose((a_ctx - a_ctl)[1:][inside], sv.CONTEXT.motion * speed[inside], atol=1e-4)
    assert a_ctx[0] == a_ctl[0] and speed.max() > 0.1


def test_bursts_degrade_frames_while_labels_continue():
    knobs = dataclasses.replace(sv.CONTEXT, burst_rate=0.3)
    frames = list(sv.render_video("synthv-affwild", "train", 1, knobs=knobs, length=L))
    kinds = [f.degraded for f in frames]
    assert {"occluder", "blur", "blank"} <= set(kinds)
    clean = [f for f in frames if not f.degraded]
    sharpness = np.mean([cv2.Laplacian(f.image, cv2.CV_64F).var() for f in clean])
    for f in frames:
        assert f.va is not None                                                 # labels continue
        if f.degraded == "blank":
            assert f.image.reshape(-1, 3).std(axis=0).max() == 0 and f.landmarks is None   # one colour
        elif f.degraded == "blur":
            assert cv2.Laplacian(f.image, cv2.CV_64F).var() < 0.2 * sharpness
        else:
            assert f.landmarks.shape == (68, 2)
    control = list(sv.render_video("synthv-affwild", "train", 1, knobs=sv.CONTROL, length=L))
    assert not any(f.degraded for f in control)


def test_landmarks_sit_on_the_drawn_face():
    idn = Identity()
    pose = Nuisance(rotation=20.0, scale=1.05, shift=(3.0, -2.0))
    m = pose_matrix(pose)

    def image(p):
        return np.asarray(p, np.float64) @ m[:, :2].T + m[:, 2]

    pts = sv.face_landmarks(idn, np.zeros(taxonomy.NUM_AUS), pose)
    assert pts.shape == (68, 2)
    # eyes centred on (∓eye_sep, −8), mouth corners at (∓mouth_w, mouth_y), chin at (0, face_h) (face.py)
    np.testing.assert_allclose(pts[36:42].mean(0), image([-idn.eye_sep, -8.0]), atol=1.0)
    np.testing.assert_allclose(pts[42:48].mean(0), image([idn.eye_sep, -8.0]), atol=1.0)
    np.testing.assert_allclose(pts[[48, 54]], image([[-idn.mouth_w, idn.mouth_y], [idn.mouth_w, idn.mouth_y]]),
                               atol=1.0)
    np.testing.assert_allclose(pts[8], image([0.0, idn.face_h]), atol=1.0)
    # AU12 (lip corner puller) lifts the corners: in face coordinates their y drops
    smile = np.zeros(taxonomy.NUM_AUS)
    smile[taxonomy.au_index(12)] = 1.0
    flat, up = (sv.face_landmarks(idn, x, Nuisance())[[48, 54], 1] for x in (np.zeros(taxonomy.NUM_AUS), smile))
    assert np.all(up < flat - 3)


def test_audio_stand_in_tracks_arousal_not_valence(twins):
    ctx, _ = twins
    arousal = _stack(ctx, "true_va")[:, 1]
    windows = _stack(ctx, "audio")
    centre = windows[:, :, 48]                                  # the frame's own column
    lo, hi = sv.AUDIO_BAND
    excess = centre[:, lo:hi].mean(1) - np.concatenate([centre[:, :lo], centre[:, hi:]], axis=1).mean(1)
    np.testing.assert_allclose(excess, 0.45 * (arousal + 1.0), atol=0.06)      # 0.9·(a + 1)/2
    np.testing.assert_array_equal(windows[1:, :, 47], windows[:-1, :, 48])    # windows slide one column a frame
    assert windows.shape == (L, 96, 96) and windows.min() >= -1 and windows.max() <= 1


def test_partial_labels_of_each_set():
    paper8 = taxonomy.au_mask_for(taxonomy.AFFWILD2_PAPER_AUS)
    for k in range(8):                                          # Aff-Wild2: AUs on few videos, expressions on most
        frames = list(sv.render_video("synthv-affwild2", "train", k, length=20))
        has_au = [f.au_mask is not None for f in frames]
        has_expr = [f.expr >= 0 for f in frames]
        assert any(has_au) == (k % 4 == 0) and any(has_expr) == (k != 7)
        assert sum(f.va is not None for f in frames) >= 8          # VA on every video (an invalid run: 3–12 frames)
        for f in frames:
            if f.au_mask is not None:
                np.testing.assert_array_equal(f.au_mask, paper8)
    for f in sv.render_video("synthv-affwild", "test", 0, length=10):      # Aff-Wild: VA only
        assert f.va is not None and f.expr == -1 and f.au is None
    for f in sv.render_video("synthv-afew-va", "train", 0, length=20):      # AFEW-VA: VA on its 0.1 grid
        np.testing.assert_allclose(np.asarray(f.va) * 10, np.round(np.asarray(f.va) * 10), atol=1e-9)
    omg = list(sv.render_video("synthv-omg", "train", 0, length=160))       # OMG: utterances of 40–120 frames
    groups = sorted({f.group for f in omg})
    assert len(groups) >= 2 and all(g.startswith("train-00000-u") for g in groups)
    for g in groups:
        utt = [f for f in omg if f.group == g]
        assert [f.frame for f in utt] == list(range(1, len(utt) + 1)) and 40 <= len(utt) <= 120
        mean = np.mean([f.true_va for f in utt], axis=0)
        for f in utt:
            np.testing.assert_allclose(f.va, mean, atol=1e-5)


def test_unknown_database_or_split_fails_with_one_line():
    with pytest.raises(ValueError, match="Unknown synthetic video database"):
        next(sv.generate_videos("synth-affwild", "train"))
    with pytest.raises(ValueError, match="Unknown split"):
        next(sv.generate_videos("synthv-omg", "dev"))


def test_video_records_and_sequences_round_trip(tmp_path):
    writer.write_shards(synthetic_video.items(0.01, databases=["synthv-affwild2"], length=12), tmp_path,
                        synthetic_video.BUILD)
    index = sequences.write_sequence_shards(tmp_path, splits=["test"])["databases"]["synthv-affwild2"]
    assert index["test"]["frames"] == 12 and index["test"]["audio"] == 12 and index["test"]["landmarks"] >= 10
    ds = sequences.make_sequence_dataset(tmp_path, ["synthv-affwild2"], "test", length=8, batch_size=2,
                                         landmarks=True, audio=True)
    inputs, labels = next(iter(ds))
    assert inputs["frames"].shape == (2, 8, 96, 96, 3) and inputs["landmarks"].shape == (2, 8, 136)
    assert inputs["audio"].shape == (2, 8, 96, 96, 1)
    np.testing.assert_array_equal(labels["frame"].numpy(), [list(range(1, 9)), [9, 10, 11, 12, -1, -1, -1, -1]])
    # test video 0 has AUs: the AU mask is the paper's 8 on labelled frames
    au_mask = labels["au_mask"].numpy()
    assert set(np.flatnonzero(au_mask.sum(axis=(0, 1)))) <= {taxonomy.au_index(a) for a in taxonomy.AFFWILD2_PAPER_AUS}
    lm = inputs["landmarks"].numpy()[labels["landmarks_mask"].numpy() > 0]
    assert np.all(np.abs(lm) <= 1.0)
