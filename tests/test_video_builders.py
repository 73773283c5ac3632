"""The AFEW-VA and OMG-Emotion parsers on miniature copies of their published layouts, with planted bad
inputs, end to end through the shard writer (labels and skips checked against the files written here)."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_builders import avi, build, garbage, mean_grey, ns, records, task_counts, write

from fbn_keras import audio, data
from tfrecords_tools import afew_va, omg


def _png(path: Path, grey: int, size: int = 40) -> None:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size, size, 3), grey, np.uint8))


def _points(shift: float = 0.0) -> list:
    return [[10.0 + shift + (i % 10), 8.0 + i // 4] for i in range(68)]


def _clip(root: Path, clip: str, actor: str, frames: dict, images=None) -> None:
    for key in (frames if images is None else images):
        _png(root / clip / f"{key}.png", 20 * (int(key) + 1))
    write(root / clip / f"{clip}.json", json.dumps({"video_id": clip, "actor": actor, "frames": frames}))


def _afew_va(root: Path) -> None:
    _clip(root, "001", "A", {
        "00000": {"valence": 5, "arousal": -3, "landmarks": _points()},
        "00001": {"valence": 10, "arousal": 10},                                 # no landmarks: kept, counted
        "00002": {"valence": 11, "arousal": 0, "landmarks": _points()},          # out of [-10, 10]
        "00003": {"valence": 1, "arousal": 1, "landmarks": _points()},           # no image on disk
        "00004": {"valence": "x", "arousal": 1, "landmarks": _points()},         # not a number
        "abc": {"valence": 1, "arousal": 1},                                     # not a frame number
    }, images=["00000", "00001", "00002", "00004"])
    write(root / "002" / "002.json", "{ not json")
    for i, actor in enumerate("BCDEFG", start=3):
        _clip(root, f"{i:03d}", actor, {"00000": {"valence": -2, "arousal": 4, "landmarks": _points(1.0)}})


def test_afew_va_scales_labels_keeps_landmarks_and_splits_by_actor(tmp_path):
    root, out = tmp_path / "AFEW-VA", tmp_path / "out"
    _afew_va(root / "AFEW-VA")                               # one extra level, as unpacked
    m = build(afew_va.parse(root, ns()), out, "afew-va")
    recs = records(out)
    first = recs[("va", "001/00000")]
    np.testing.assert_allclose(first[data.VA], [0.5, -0.3])
    assert first[data.GROUP] == b"001" and first[data.FRAME] == 0 and abs(mean_grey(first) - 20) < 4
    np.testing.assert_allclose(recs[("va", "001/00001")][data.VA], [1.0, 1.0])
    assert m.skips() == {"dropped_bad_landmarks": 1, "label_out_of_range": 1, "missing_file": 1,
                         "invalid_label": 2, "unreadable_annotation": 1}
    # landmarks of 00000 moved into the 96-px crop of the 40-px image (`--align none`):
    # x' = (x + ½)·96/40 − ½, then x'/48 − 1
    (raw,) = [r for r in tf.data.TFRecordDataset(str(out / m.shards("va", first["split"], ["afew-va"])[0]["file"]))
              if data.decode_example(r)[data.ID].numpy() == b"001/00000"]
    stored = tf.io.parse_single_example(raw, {data.LANDMARKS: tf.io.FixedLenFeature([136], tf.float32)})
    expected = ((np.array(_points()) + 0.5) * 96 / 40 - 0.5) / 48 - 1
    np.testing.assert_allclose(stored[data.LANDMARKS].numpy().reshape(68, 2), expected, atol=1e-5)
    # splits by actor: 7 actors → 1 test (15 %), 1 of the other 6 validation, the rest train
    by_clip = {rec[data.GROUP].decode(): rec["split"] for rec in recs.values()}
    assert sorted(by_clip.values()).count("test") == 1 and sorted(by_clip.values()).count("validation") == 1
    assert sum(task_counts(m, "afew-va")[s]["va"] for s in ("train", "validation", "test")) == 8


def test_afew_va_without_clips_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no clip folder"):
        list(afew_va.parse(tmp_path / "empty", ns()))


HEADER = "link,start,end,video,utterance,arousal,valence,EmotionMaxVote\n"


def _omg(root: Path) -> None:
    url = "https://www.youtube.com/watch?v=x"
    write(root / "omg_TrainVideos.csv", HEADER + "".join(f"{url},0.0,1.0,{v},{u},{a},{val},4\n" for v, u, a, val in [
        ("vidA", "utterance_1.mp4", "0.25", "-0.5"),
        ("vidA", "utterance_2.mp4", "1.2", "0.1"),          # arousal outside [0, 1]
        ("vidA", "utterance_3.mp4", "abc", "0.1"),          # not a number
        ("vidB", "utterance_1.mp4", "0.5", "0.5"),          # clip not downloaded
        ("vidA", "utterance_1.mp4", "0.3", "0.3"),          # the same utterance twice
        ("vidC", "utterance_1.mp4", "0.5", "0.5"),          # not a video
    ]))
    write(root / "omg_ValidationVideos.csv", HEADER + f"{url},0,1,vidD,utterance_1.mp4,0.5,0.1,3\n")
    avi(root / "Train" / "vidA" / "utterance_1.mp4", 3)
    avi(root / "Train" / "vidA" / "utterance_2.mp4", 2)
    garbage(root / "Train" / "vidC" / "utterance_1.mp4")
    avi(root / "Validation" / "vidD" / "utterance_1.mp4", 2)
    t = np.arange(audio.SAMPLE_RATE) / audio.SAMPLE_RATE
    audio.write_wav(root / "Train" / "vidA" / "utterance_1.wav", 0.5 * np.sin(2 * np.pi * 1000 * t))


def test_omg_every_frame_carries_its_utterance_label(tmp_path):
    root, out = tmp_path / "OMG", tmp_path / "out"
    _omg(root)
    m = build(omg.parse(root, ns(audio=True)), out, "omg")
    recs = records(out)
    assert sorted(i for _, i in recs) == ["vidA/utterance_1/00001", "vidA/utterance_1/00002",
                                          "vidA/utterance_1/00003", "vidD/utterance_1/00001",
                                          "vidD/utterance_1/00002"]
    for k in (1, 2, 3):
        rec = recs[("va", f"vidA/utterance_1/{k:05d}")]
        np.testing.assert_allclose(rec[data.VA], [-0.5, -0.5])            # valence, 2·0.25 − 1
        assert rec[data.GROUP] == b"vidA/utterance_1" and rec[data.FRAME] == k and rec["split"] == "train"
        assert abs(mean_grey(rec) - 20 * k) < 4
    d = recs[("va", "vidD/utterance_1/00002")]
    np.testing.assert_allclose(d[data.VA], [0.1, 0.0])
    assert d["split"] == "validation"
    assert task_counts(m, "omg") == {"train": {"va": 3}, "validation": {"va": 2}}
    assert m.skips() == {"label_out_of_range": 1, "invalid_label": 1, "missing_file": 1, "duplicate_row": 1,
                         "unreadable_video": 1, "missing_audio": 1}
    # --audio: vidA's frames carry the window of its 1 kHz track (band ⌊1000 / 83.3⌋ = 12); vidD's none
    spec = {data.ID: tf.io.FixedLenFeature([], tf.string), data.AUDIO: tf.io.FixedLenFeature([], tf.string, b"")}
    found = {}
    for shard in m.shards("va", "train", ["omg"]) + m.shards("va", "validation", ["omg"]):
        for raw in tf.data.TFRecordDataset(str(out / shard["file"])):
            f = tf.io.parse_single_example(raw, spec)
            found[f[data.ID].numpy().decode()] = f[data.AUDIO].numpy()
    assert audio.decode_png(found["vidA/utterance_1/00002"])[:, 48].argmax() == 12
    assert found["vidD/utterance_1/00001"] == b""


def test_omg_csv_without_a_label_column_is_one_line(tmp_path):
    write(tmp_path / "omg_TrainVideos.csv", "link,start,end,video,utterance,valence\n")
    with pytest.raises(ValueError, match="lacks the column"):
        list(omg.parse(tmp_path, ns()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of"):
        list(omg.parse(tmp_path / "empty", ns()))
