"""`python -m fbn_keras.predict` with a sequence model: windows of T frames of a short clip, one CSV row per frame.

The clip is the astronaut panned over a few frames (as tests/test_predict.py makes it);
the model is per frame (va = mean input value), so every row is worked out from its crop.
"""

import csv

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fbn_keras import landmarks, predict, preprocess, taxonomy
from fbn_keras.config import preset

SIZE = 32
N_FRAMES = 5
FPS = 10.0


def _model(with_landmarks=False):
    """frames → va = (m, −m), m the crop's mean input value; expr logits (m, …); 8 AU logits m
    (with landmarks: va = (mean landmark x, mean landmark y) in [-1, 1])."""
    import keras

    frames = keras.Input((None, SIZE, SIZE, 3), name="frames")
    inputs = {"frames": frames}
    m = keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D())(frames)
    va = keras.layers.Dense(2, name="va")
    if with_landmarks:
        inputs["landmarks"] = keras.Input((None, 136), name="landmarks")
        outputs = {"va": va(inputs["landmarks"])}
        model = keras.Model(inputs, outputs)
        k = np.zeros((136, 2))
        k[0::2, 0], k[1::2, 1] = 1 / 68, 1 / 68
        va.set_weights([k, np.zeros(2)])
        return model
    outputs = {"va": va(m), "expr": keras.layers.Dense(7, name="expr")(m), "au": keras.layers.Dense(8, name="au")(m)}
    model = keras.Model(inputs, outputs)
    va.set_weights([np.tile([[1 / 3, -1 / 3]], (3, 1)), np.zeros(2)])
    model.get_layer("expr").set_weights([np.full((3, 7), 1 / 3) * np.arange(7), np.zeros(7)])
    model.get_layer("au").set_weights([np.full((3, 8), 1 / 3), np.zeros(8)])
    return model


def _run_folder(path, model, **config):
    path.mkdir()
    model.save(path / "model.keras")
    preset("tiny", model="mt-vgg-gru", seq_length=2, seq_batch=2, **config).save(path / "config.json")
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 5-frame 10 fps clip of the astronaut's face drifting right (tests/test_predict.py's recipe)."""
    photo = cv2.resize(skdata.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    frame = photo[:200, 40:240]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (200, 200))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        shift = np.float32([[1, 0, 3 * i], [0, 1, 0]])
        writer.write(cv2.warpAffine(frame, shift, (200, 200), borderMode=cv2.BORDER_REPLICATE)[..., ::-1])
    writer.release()
    return path


def _crops(path):
    return [preprocess.square_resize(rgb, SIZE) for _, _, rgb in predict.iter_frames(path)]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_one_row_per_frame_from_windows(clip, tmp_path):
    run = _run_folder(tmp_path / "run", _model())
    out = tmp_path / "out.csv"
    assert predict.main([str(run), str(clip), "--out", str(out), "--aligned", "--no-progress"]) == 0
    rows = _rows(out)
    au = [taxonomy.au_names()[taxonomy.au_index(a)] for a in taxonomy.AFFWILD2_PAPER_AUS]
    assert list(rows[0]) == ["file", "frame", "timestamp", "valence", "arousal", *taxonomy.EXPRESSIONS,
                             "expression", *au]
    assert [int(r["frame"]) for r in rows] == list(range(N_FRAMES))
    assert [float(r["timestamp"]) for r in rows] == pytest.approx([i / FPS for i in range(N_FRAMES)])
    # T = 2: windows [0, 1], [2, 3], [4 + padding]; the model is per frame, so each row is its own crop's.
    for row, crop in zip(rows, _crops(clip)):
        m = float(np.mean(crop.astype(np.float64) / 127.5 - 1))
        assert (float(row["valence"]), float(row["arousal"])) == pytest.approx((m, -m), abs=1e-4)
        logits = m * np.arange(7)
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert [float(row[e]) for e in taxonomy.EXPRESSIONS] == pytest.approx(probs, abs=1e-4)
        assert float(row["AU01"]) == pytest.approx(1 / (1 + np.exp(-m)), abs=1e-4)


def test_landmark_model_gets_dlib_points_of_each_crop(clip, tmp_path):
    pytest.importorskip("dlib")
    run = _run_folder(tmp_path / "run", _model(with_landmarks=True), landmarks=True)
    out = tmp_path / "out.csv"
    assert predict.main([str(run), str(clip), "--out", str(out), "--aligned", "--no-progress"]) == 0
    rows = _rows(out)
    finder = landmarks.Landmarker()
    for row, crop in zip(rows, _crops(clip)):
        points = landmarks.to_unit(finder.on_crop(crop), SIZE)          # (68, 2) in [-1, 1]
        assert (float(row["valence"]), float(row["arousal"])) == pytest.approx(points.mean(0), abs=1e-4)
    assert list(rows[0]) == ["file", "frame", "timestamp", "valence", "arousal"]


def test_landmark_model_without_dlib_says_so(monkeypatch):
    def no_dlib(*args, **kwargs):
        raise ImportError("No module named 'dlib'")

    monkeypatch.setattr(landmarks, "Landmarker", no_dlib)
    with pytest.raises(RuntimeError, match="68 facial landmarks per frame, found with dlib"):
        predict.SequencePredictor(_model(with_landmarks=True), preset("tiny", seq_length=2))


def test_sequence_predictor_checks_crops():
    p = predict.SequencePredictor(_model(), preset("tiny", model="mt-vgg-gru", seq_length=2))
    with pytest.raises(ValueError, match=r"Expected crops of shape \(N, 32, 32, 3\)"):
        p(np.zeros((3, 16, 16, 3), np.uint8))


def test_chunked_reading_gives_the_same_rows(clip, tmp_path):
    from fbn_keras.runs import load_run

    run = _run_folder(tmp_path / "run", _model())
    model, config = load_run(run)
    p = predict.SequencePredictor(model, config)
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    predict.run_sequence(p, [clip], whole, aligned=True)
    summary = predict.run_sequence(p, [clip], chunked, aligned=True, chunk_passes=1)   # 4 crops, then 1
    assert _rows(whole) == _rows(chunked)
    assert (summary.frames, summary.faces, summary.videos, summary.files_read) == (N_FRAMES, N_FRAMES, 1, 1)


def test_a_frame_without_a_face_gets_an_empty_row_and_leaves_the_windows(clip, tmp_path):
    import io

    p = predict.SequencePredictor(_model(), preset("tiny", model="mt-vgg-gru", seq_length=2))
    crops = _crops(clip)
    fh = io.StringIO()
    writer = csv.DictWriter(fh, fieldnames=p.columns())
    writer.writeheader()
    summary = predict.Summary()
    au = [taxonomy.au_names()[k] for k in p.slots]
    predict._write_sequence_rows(writer, p, "v.avi", [(0, 0.0, crops[0]), (1, 0.1, None), (2, 0.2, crops[2])],
                                 au, summary)
    rows = list(csv.DictReader(io.StringIO(fh.getvalue())))
    assert [r["frame"] for r in rows] == ["0", "1", "2"] and rows[1]["valence"] == "" and rows[1]["timestamp"] == "0.1"
    for row, crop in ((rows[0], crops[0]), (rows[2], crops[2])):
        m = float(np.mean(crop.astype(np.float64) / 127.5 - 1))
        assert float(row["valence"]) == pytest.approx(m, abs=1e-4)
    assert (summary.frames, summary.faces, summary.frames_without_face) == (3, 2, 1)
