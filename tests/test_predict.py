"""Inference end to end: a real photo, a short video, an unreadable file, aligned crops, the CLI and the plots."""

import csv

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fbn_keras import plots, predict, preprocess, taxonomy

FPS = 10.0
N_FRAMES = 5


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def probabilities_of(model, crop):
    out = model(preprocess.to_model_input(crop[None]), training=False)
    return {k: np.asarray(v, np.float64)[0] for k, v in out.items()} | {
        "expr": _softmax(np.asarray(out["expr"], np.float64)[0])}


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from fbn_keras.config import preset
    from fbn_keras.model import build_facebehaviornet

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_facebehaviornet(preset("tiny")).save(path)
    return path


@pytest.fixture(scope="module")
def predictor(model_path):
    return predict.Predictor.load(model_path)


@pytest.fixture(scope="module")
def detector():
    return preprocess.FaceDetector(min_confidence=0.9)


@pytest.fixture(scope="module")
def photo():
    """The astronaut at 256×256: one face, small enough for a fast detector pass."""
    return cv2.resize(skdata.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photo):
    """A folder with the photo (JPEG), an unreadable .png, and a 5-frame 10 fps video of the face drifting right."""
    root = tmp_path_factory.mktemp("inputs")
    cv2.imwrite(str(root / "astronaut.jpg"), photo[..., ::-1])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but truncated")
    sub = root / "videos"
    sub.mkdir()
    frame = photo[:200, 40:240]
    writer = cv2.VideoWriter(str(sub / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (200, 200))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        shift = np.float32([[1, 0, 3 * i], [0, 1, 0]])
        writer.write(cv2.warpAffine(frame, shift, (200, 200), borderMode=cv2.BORDER_REPLICATE)[..., ::-1])
    writer.release()
    return root


@pytest.fixture(scope="module")
def result(predictor, detector, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    summary = predict.run(predictor, [inputs], out / "results.csv", every=2, plots=out / "plots",
                          batch_size=3, detector=detector, progress=False)
    return summary, _read_csv(out / "results.csv"), out


# === Pieces ===

def test_csv_columns():
    cols = predict.csv_columns()
    assert len(cols) == 8 + 2 + 7 + 1 + 17 + 17 + 1
    assert cols[:10] == ["file", "frame", "face", "x", "y", "w", "h", "confidence", "valence", "arousal"]
    assert cols[10:17] == list(taxonomy.EXPRESSIONS) and cols[17] == "expression"
    assert cols[18] == "AU01" and cols[34] == "AU26" and cols[35] == "AU01_c" and cols[51] == "AU26_c"
    assert cols[-1] == "timestamp"


def test_result_rows_by_hand():
    item = predict.FaceCrop("a.jpg", 0, 0, (1.0, 2.0, 3.0, 4.0), 0.99, None, np.zeros((96, 96, 3), np.uint8))
    au = np.full(17, 0.2, np.float32)
    au[0], au[1], au[16] = 0.5, 0.49, 0.9
    preds = dict(va=np.array([[0.3, -0.4]]), expr=np.array([[0.1, 0.2, 0.6, 0.1, 0, 0, 0]]), au=au[None])
    (row,) = predict.result_rows([item], preds, au_threshold=0.5)
    assert row["expression"] == "disgust" and row["disgust"] == pytest.approx(0.6)
    assert (row["valence"], row["arousal"]) == pytest.approx((0.3, -0.4))
    assert row["AU01_c"] == 1 and row["AU02_c"] == 0 and row["AU26_c"] == 1 and row["AU04_c"] == 0
    assert row["timestamp"] is None and (row["x"], row["h"]) == (1.0, 4.0)


def test_find_inputs_recurses_and_keeps_missing(inputs, tmp_path):
    found = predict.find_inputs([inputs, tmp_path / "nope.jpg"])
    names = [p.name for p in found]
    assert names == ["astronaut.jpg", "broken.png", "clip.avi", "nope.jpg"]


def test_iter_frames_every_and_times(inputs):
    got = [(i, t, rgb.shape) for i, t, rgb in predict.iter_frames(inputs / "videos" / "clip.avi", every=2)]
    assert [g[0] for g in got] == [0, 2, 4]
    assert [g[1] for g in got] == pytest.approx([0.0, 0.2, 0.4])      # frame / 10 fps
    assert all(g[2] == (200, 200, 3) for g in got)
    (still,) = list(predict.iter_frames(inputs / "astronaut.jpg"))
    assert still[0] == 0 and still[1] is None


def test_unreadable_inputs_raise_clearly(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 3000, dtype=np.uint8).tobytes())
    for path, words in [(garbage, "garbage.mp4"), (tmp_path / "nope.png", "no such file")]:
        with pytest.raises(predict.UnreadableInput, match=words):
            list(predict.iter_frames(path))


def test_predictor_checks_crop_shape(predictor):
    with pytest.raises(ValueError, match="96, 96, 3"):
        predictor(np.zeros((2, 64, 64, 3), np.uint8))


# === A run over a folder: photo, unreadable file, video ===

def test_run_rows_per_face_per_frame(result):
    summary, rows, _ = result
    assert summary.files_read == 2 and summary.images == 1 and summary.videos == 1
    assert len(summary.skipped) == 1 and next(iter(summary.skipped)).endswith("broken.png")
    assert summary.frames == 1 + 3 and summary.faces == 4 and summary.frames_without_face == 0
    assert [(r["file"].rsplit("/", 1)[-1], r["frame"], r["face"]) for r in rows] == [
        ("astronaut.jpg", "0", "0"), ("clip.avi", "0", "0"), ("clip.avi", "2", "0"), ("clip.avi", "4", "0")]
    assert [r["timestamp"] for r in rows] == ["", "0", "0.2", "0.4"]


def test_run_probabilities_in_range(result):
    _, rows, _ = result
    for r in rows:
        expr = np.array([float(r[e]) for e in taxonomy.EXPRESSIONS])
        au = np.array([float(r[a]) for a in taxonomy.au_names()])
        assert np.all((expr >= 0) & (expr <= 1)) and abs(expr.sum() - 1.0) < 1e-5
        assert np.all((au >= 0) & (au <= 1))
        assert r["expression"] == taxonomy.EXPRESSIONS[int(np.argmax(expr))]
        # The CSV rounds the probabilities; an AU within that rounding of 0.5 (the untrained test network
        # has many) may read either side of the threshold, so it is not compared.
        clear = np.abs(au - 0.5) > 1e-3
        coded = np.array([int(r[f"{a}_c"]) for a in taxonomy.au_names()])
        assert coded[clear].tolist() == (au[clear] >= 0.5).astype(int).tolist()
        assert 0.9 <= float(r["confidence"]) <= 1.0


def test_run_boxes_follow_the_face(result):
    _, rows, _ = result
    x, y, w, h = (float(rows[0][k]) for k in "xywh")
    # Half-size astronaut: her face spans about x 90–133, y 32–86.
    assert 80 < x < 100 and 22 < y < 42 and 30 < w < 55 and 40 < h < 70
    # The video crops the photo at x ≥ 40 and shifts the face 3 px right per frame: +6 px every 2nd frame.
    xs = [float(r["x"]) for r in rows[1:]]
    assert xs[0] == pytest.approx(x - 40, abs=4)
    assert np.diff(xs) == pytest.approx([6.0, 6.0], abs=2.5)


def test_run_matches_the_model_on_the_aligned_crop(result, model_path, detector, inputs):
    """The CSV's numbers are the network's outputs on the aligned face: softmax, sigmoid and order by hand."""
    import keras

    _, rows, _ = result
    photo = preprocess.read_image(inputs / "astronaut.jpg")        # the JPEG as the run decoded it
    (face,) = detector.detect(photo)
    crop = preprocess.align_face(photo, face.landmarks)
    model = keras.saving.load_model(model_path, safe_mode=True)
    out = model(preprocess.to_model_input(crop[None]), training=False)
    va, logits, au_logits = (np.asarray(out[k], np.float64)[0] for k in ("va", "expr", "au"))
    expr = _softmax(logits)
    au = 1.0 / (1.0 + np.exp(-au_logits))
    row = rows[0]
    # The CSV keeps 6 significant digits.
    np.testing.assert_allclose([float(row[e]) for e in taxonomy.EXPRESSIONS], expr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([float(row[a]) for a in taxonomy.au_names()], au, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([float(row["valence"]), float(row["arousal"])], va, rtol=1e-5, atol=1e-6)
    # A different face gives different numbers, so the match above is not the model ignoring its input.
    # (All heads: an untrained tiny net's outputs vary little with its input, by 6e-5 to 1e-3 depending on
    # its random initialisation; 1e-5 is ten times the tolerance of the match above.)
    other = probabilities_of(model, np.zeros_like(crop))
    other["au"] = 1.0 / (1.0 + np.exp(-other["au"]))                  # probabilities_of keeps AU logits
    ours = {"va": va, "expr": expr, "au": au}
    assert max(np.abs(other[k] - ours[k]).max() for k in ours) > 1e-5


def test_run_writes_the_plots(result):
    summary, _, out = result
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == ["astronaut_face0.png", "clip_face0_series.png"]
    for name in names:
        image = cv2.imread(str(out / "plots" / name))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 600
        assert image.std() > 10                                  # something was drawn
    assert sorted(summary.plots) == sorted(str(out / "plots" / n) for n in names)


def test_run_reports_every_face_largest_first(predictor, detector, photo, tmp_path):
    """Two people in one picture: the photo and a mirrored copy at 3/4 size beside it."""
    small = cv2.resize(photo[:, ::-1], (192, 192), interpolation=cv2.INTER_AREA)
    pair = np.hstack([photo, np.pad(small, ((0, 64), (0, 0), (0, 0)), mode="edge")])
    cv2.imwrite(str(tmp_path / "pair.png"), pair[..., ::-1])
    summary = predict.run(predictor, [tmp_path / "pair.png"], tmp_path / "pair.csv", plots=tmp_path / "plots",
                          detector=detector, progress=False)
    rows = _read_csv(tmp_path / "pair.csv")
    assert summary.faces == 2 and [(r["frame"], r["face"]) for r in rows] == [("0", "0"), ("0", "1")]
    assert float(rows[0]["x"]) < 256 <= float(rows[1]["x"])             # face 0 is the larger, left one
    assert float(rows[0]["w"]) == pytest.approx(float(rows[1]["w"]) * 4 / 3, rel=0.15)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["pair_face0.png", "pair_face1.png"]


# === The command line ===

def test_cli_aligned_crops(model_path, photo, tmp_path, detector):
    crops = tmp_path / "crops"
    crops.mkdir()
    (face,) = detector.detect(photo)
    crop = preprocess.align_face(photo, face.landmarks)
    cv2.imwrite(str(crops / "a.png"), crop[..., ::-1])
    cv2.imwrite(str(crops / "b.png"), cv2.resize(crop, (128, 128))[..., ::-1])   # resized to 96 on the way in
    out = tmp_path / "aligned.csv"
    code = predict.main([str(model_path), str(crops), "--out", str(out), "--aligned", "--no-progress"])
    assert code == 0
    rows = _read_csv(out)
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.png"]
    assert rows[0]["confidence"] == "" and [rows[0][k] for k in "xywh"] == ["0", "0", "96", "96"]
    assert [rows[1][k] for k in "wh"] == ["128", "128"]
    assert abs(sum(float(rows[0][e]) for e in taxonomy.EXPRESSIONS) - 1) < 1e-5


def test_cli_nothing_readable_exits_nonzero(model_path, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    out = tmp_path / "none.csv"
    assert predict.main([str(model_path), str(bad), "--out", str(out), "--aligned", "--no-progress"]) == 1
    assert _read_csv(out) == []                                  # header only


def test_cli_rejects_bad_flags(model_path, tmp_path):
    with pytest.raises(SystemExit, match="^2$"):     # a usage error's exit status
        predict.main([str(model_path), str(tmp_path), "--out", str(tmp_path / "x.csv"), "--every", "0"])
    with pytest.raises(SystemExit, match="^2$"):
        predict.main([str(tmp_path / "no.keras"), str(tmp_path), "--out", str(tmp_path / "x.csv")])


# === Plots ===

def test_plot_face_draws_the_numbers(tmp_path):
    expr = np.array([0.05, 0.05, 0.1, 0.1, 0.5, 0.1, 0.1])
    au = np.linspace(0, 1, 17)
    fig = plots.plot_face(np.zeros((96, 96, 3), np.uint8), [1.5, -0.25], expr, au, path=tmp_path / "f.png")
    _, circle, bars, au_ax = fig.axes
    np.testing.assert_allclose(circle.collections[0].get_offsets(), [[1.0, -0.25]])   # valence clipped to 1
    np.testing.assert_allclose([p.get_width() for p in bars.patches], expr)
    assert bars.get_title() == "expression: happiness"
    np.testing.assert_allclose([p.get_height() for p in au_ax.patches], au)
    assert (tmp_path / "f.png").stat().st_size > 0
    with pytest.raises(ValueError, match="expr_probs"):
        plots.plot_face(np.zeros((96, 96, 3), np.uint8), [0, 0], expr[:6], au)


def test_plot_video_draws_the_series(tmp_path):
    t = np.array([0.0, 0.5, 1.0])
    va = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, -0.6]])
    expr = np.tile(np.eye(7)[4], (3, 1))
    au = np.zeros((3, 17))
    fig = plots.plot_video(t, va, expr, au, path=tmp_path / "v.png")
    va_ax, expr_ax = fig.axes[:2]
    np.testing.assert_allclose(va_ax.lines[0].get_xydata(), np.c_[t, va[:, 0]])
    np.testing.assert_allclose(va_ax.lines[1].get_ydata(), va[:, 1])
    np.testing.assert_allclose(expr_ax.lines[4].get_ydata(), [1, 1, 1])     # happiness
    assert (tmp_path / "v.png").stat().st_size > 0
    with pytest.raises(ValueError, match="au_probs"):
        plots.plot_video(t, va, expr, au[:2])


# === Video with tracking: frames without a face, exact frames and times, agreement, the reader thread ===

VIDEO_FPS = 25.0
BLANK = range(8, 12)          # frames where the face is replaced by a flat grey picture


def zoom_pan(t: int, n: int = 24) -> np.ndarray:
    """Frame t's warp of the 256-px photo: scale 1 → 1.15 about the face, drifting 20 px right."""
    s = 1 + 0.15 * t / n
    return np.float32([[s, 0, -30 + 20 * t / n - 110 * (s - 1)], [0, s, 10 - 60 * (s - 1)]])


@pytest.fixture(scope="module")
def tracked_video(tmp_path_factory, photo):
    """24 frames at 25 fps, 200x200 MJPEG: the face zooming and drifting slowly, grey for frames 8-11."""
    root = tmp_path_factory.mktemp("tracked")
    writer = cv2.VideoWriter(str(root / "face.avi"), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (200, 200))
    assert writer.isOpened()
    for t in range(24):
        frame = (np.full((200, 200, 3), 128, np.uint8) if t in BLANK
                 else cv2.warpAffine(photo, zoom_pan(t), (200, 200), borderMode=cv2.BORDER_REPLICATE))
        writer.write(frame[..., ::-1])
    writer.release()
    cv2.imwrite(str(root / "grey.png"), np.full((64, 64, 3), 128, np.uint8))
    return root


@pytest.fixture(scope="module")
def seeded_predictor():
    """A tiny untrained network with fixed weights (seed 0), so the agreement bound below is reproducible."""
    import keras

    from fbn_keras.config import preset
    from fbn_keras.model import build_facebehaviornet

    keras.utils.set_random_seed(0)
    return predict.Predictor(build_facebehaviornet(preset("tiny")))


@pytest.fixture(scope="module")
def tracked_runs(seeded_predictor, detector, tracked_video):
    """The video with tracking (default detect_every), with the detector on every frame, and every 3rd frame."""
    predictor, out = seeded_predictor, {}
    for name, kw in {"tracked": {}, "every_frame": dict(detect_every=1), "every3": dict(every=3)}.items():
        path = tracked_video / f"{name}.csv"
        summary = predict.run(predictor, [tracked_video / "face.avi"], path, detector=detector, progress=False,
                              batch_size=5, **kw)
        out[name] = summary, _read_csv(path)
    return out


def test_tracked_video_rows_frames_and_times(tracked_runs):
    summary, rows = tracked_runs["tracked"]
    assert [int(r["frame"]) for r in rows] == list(range(24))                  # one row per frame, in order
    assert [float(r["timestamp"]) for r in rows] == pytest.approx([t / VIDEO_FPS for t in range(24)], abs=1e-9)
    assert [r["face"] for r in rows] == ["" if t in BLANK else "0" for t in range(24)]
    blank = rows[BLANK[0]]
    assert all(blank[c] == "" for c in predict.csv_columns() if c not in ("file", "frame", "timestamp"))
    assert summary.frames == 24 and summary.faces == 20 and summary.frames_without_face == 4
    # The detector ran on frame 0, when tracking failed on the first grey frame, on the other grey frames
    # (no face held) and on frame 12, where the face came back; the other 18 frames were tracked.
    assert summary.tracking["tracked"] == 18 and summary.tracking["detected: first frame"] == 1
    assert summary.tracking["detected: no face"] == 4
    assert sum(summary.tracking.values()) == 24
    assert float(rows[12]["confidence"]) >= 0.9                               # found again


def test_tracked_video_keeps_every(tracked_runs):
    summary, rows = tracked_runs["every3"]
    assert [int(r["frame"]) for r in rows] == list(range(0, 24, 3))
    assert [float(r["timestamp"]) for r in rows] == pytest.approx([t / VIDEO_FPS for t in range(0, 24, 3)])
    assert [r["face"] for r in rows] == ["" if t in BLANK else "0" for t in range(0, 24, 3)]
    assert summary.frames == 8 and summary.tracking["tracked"] == 5


def test_tracked_predictions_agree_with_detect_every_frame(tracked_runs, seeded_predictor, detector,
                                                          tracked_video):
    """Tracking's VA and AU probabilities stay closer to detect-every-frame's than a 3 px misalignment moves them.

    The bound is measured in the test itself, on the same (untrained, tiny) network: align six frames with
    their detected landmarks and with the landmarks shifted 3 px left, right, up and down (6 % of the ~50 px
    face), and take the mean absolute difference of the outputs. Tracking measured 0.60 of that bound for VA
    and 0.50 for AU with seed 0 (0.44-0.73 and 0.45-0.73 over five unseeded initialisations, hence the
    fixed seed). Boxes: centres within 1.5 px on average (measured 0.9 px, largest 1.7 px).
    """
    summary, every = tracked_runs["every_frame"]
    _, tracked = tracked_runs["tracked"]
    assert summary.tracking == {} and [r["face"] for r in every] == [r["face"] for r in tracked]
    faces = [i for i, r in enumerate(every) if r["face"] == "0"]

    def mad(a, b, cols):
        return float(np.mean([[abs(float(a[i][c]) - float(b[i][c])) for c in cols] for i in faces]))

    frames = [rgb for _, _, rgb in predict.iter_frames(tracked_video / "face.avi")]
    shift = {"va": [], "au": []}
    for t in (0, 3, 6, 13, 16, 20):
        (face,) = detector.detect(frames[t])
        p0 = seeded_predictor(preprocess.align_face(frames[t], face.landmarks)[None])
        for d in ([3, 0], [-3, 0], [0, 3], [0, -3]):
            p3 = seeded_predictor(preprocess.align_face(frames[t], face.landmarks + d)[None])
            for k in shift:
                shift[k].append(np.abs(p0[k] - p3[k]).mean())
    bound = {k: float(np.mean(v)) for k, v in shift.items()}
    assert mad(tracked, every, taxonomy.VA_NAMES) < bound["va"]
    assert mad(tracked, every, taxonomy.au_names()) < bound["au"]
    centre = [np.hypot(*(float(tracked[i][c]) + float(tracked[i][s]) / 2 - float(every[i][c]) - float(every[i][s]) / 2
                         for c, s in (("x", "w"), ("y", "h")))) for i in faces]
    assert np.mean(centre) < 1.5 and max(centre) < 3.0


def test_a_still_without_a_face_gets_a_row(seeded_predictor, detector, tracked_video, tmp_path):
    summary = predict.run(seeded_predictor, [tracked_video / "grey.png"], tmp_path / "grey.csv", detector=detector,
                          progress=False)
    (row,) = _read_csv(tmp_path / "grey.csv")
    assert row["frame"] == "0" and row["face"] == "" and row["valence"] == "" and row["timestamp"] == ""
    assert summary.frames_without_face == 1 and summary.faces == 0 and summary.images == 1


def test_prefetch_order_errors_and_early_stop():
    assert list(predict.prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield from range(5)
        raise ValueError("frame 5 is bad")

    got = []
    with pytest.raises(ValueError, match="frame 5 is bad"):
        for x in predict.prefetch(failing(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    stream = predict.prefetch(endless(), depth=2)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()                                   # the consumer stops: the reader thread ends too
    assert closed == [True]
    with pytest.raises(ValueError, match="depth must be >= 1"):
        next(predict.prefetch(iter([]), depth=0))


def test_cli_rejects_detect_every_0(model_path, tmp_path):
    with pytest.raises(SystemExit, match="^2$"):     # a usage error's exit status
        predict.main([str(model_path), str(tmp_path), "--out", str(tmp_path / "x.csv"), "--detect-every", "0"])
