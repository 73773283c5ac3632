"""`python -m tfrecords_tools.build ... --landmarks dlib`: dlib's 68 points of each aligned crop in its record
(journal Section IV), on a real face (skimage's astronaut) through RAF-DB's layout; a crop without a face is
written with landmarks mask 0 and counted, not a crash."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from fbn_keras import data, landmarks, preprocess
from fbn_keras.manifest import Manifest
from fbn_keras.records.writer import build_skips
from tfrecords_tools import build


def _jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def rafdb_root(tmp_path_factory):
    """RAF-DB's basic layout with two aligned 100×100 crops: the astronaut's face (happiness) and a flat
    grey square (neutral)."""
    root = tmp_path_factory.mktemp("rafdb")
    photo = skdata.astronaut()
    face = landmarks.Landmarker().detect(photo)[0]
    crop = preprocess.align_face(photo, preprocess.landmarks68_to_5(face), 100)
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 4\ntrain_00002.jpg 7\n")
    _jpeg(basic / "Image" / "aligned" / "train_00001_aligned.jpg", crop)
    _jpeg(basic / "Image" / "aligned" / "train_00002_aligned.jpg", np.full((100, 100, 3), 128, np.uint8))
    return root


def _records(out: Path) -> dict[int, dict]:
    """expr label → the record's landmarks and mask."""
    (path,) = sorted((out / "expr").glob("rafdb-train-*.tfrecord"))
    rows = {}
    spec = {data.EXPR: tf.io.FixedLenFeature([], tf.int64),
            data.LANDMARKS: tf.io.FixedLenFeature([136], tf.float32, default_value=[0.0] * 136),
            data.LANDMARKS_MASK: tf.io.FixedLenFeature([], tf.int64, default_value=0)}
    for raw in tf.data.TFRecordDataset(str(path)):
        f = tf.io.parse_single_example(raw, spec)
        rows[int(f[data.EXPR])] = {"points": f[data.LANDMARKS].numpy(), "mask": int(f[data.LANDMARKS_MASK])}
    return rows


def test_landmarks_dlib_writes_the_points_of_a_face_and_counts_a_crop_without_one(rafdb_root, tmp_path):
    out = tmp_path / "out"
    argv = ["rafdb", "--root", str(rafdb_root), "--out", str(out), "--writer", "inline", "--landmarks", "dlib"]
    assert build.main(argv) == 0
    rows = _records(out)
    happy, neutral = rows[4], rows[0]
    assert happy["mask"] == 1
    assert happy["points"].shape == (136,)
    # the crop spans [-1, 1]; the chin (points 7-9) of this alignment lies just below its edge, kept unclipped
    assert np.all(np.isfinite(happy["points"])) and np.all(np.abs(happy["points"]) <= 1.1)
    assert np.sum(np.all(np.abs(happy["points"].reshape(68, 2)) <= 1, axis=1)) >= 64
    # a face filling an aligned crop: the points spread over most of it, eyes above the mouth
    pts = happy["points"].reshape(68, 2)
    assert np.ptp(pts[:, 0]) > 0.8 and pts[36:48, 1].mean() < pts[48:68, 1].mean()
    assert neutral["mask"] == 0                                   # grey square: written, no landmarks
    manifest = Manifest.load(out)
    assert build_skips(manifest, "rafdb") == {"no_landmarks": 1}
    assert manifest.data["builds"]["rafdb"]["options"]["landmarks"] == "dlib"
    assert manifest.splits("rafdb")["train"]["records"] == 2


def test_landmarks_are_off_by_default_and_need_the_inline_writer(rafdb_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert build.main(["rafdb", "--root", str(rafdb_root), "--out", str(out), "--writer", "inline"]) == 0
    assert {k: v["mask"] for k, v in _records(out).items()} == {4: 0, 0: 0}
    assert build_skips(Manifest.load(out), "rafdb") == {}
    assert build.main(["rafdb", "--root", str(rafdb_root), "--out", str(tmp_path / "b"), "--landmarks", "dlib"]) == 2
    assert "--writer inline" in capsys.readouterr().err
