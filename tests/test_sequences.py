"""Sequence data: per-frame records → sequence shards → (B, T) windows with masks; tiling and stitching.

A tiny shard set whose every frame and label is known is written through the
shard writer; every number below is worked out from how the items were made.
"""

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import audio, data, landmarks, preprocess, sequences
from fbn_keras.records import writer
from fbn_keras.records.items import Item

SIZE = 16


def _frame_item(db: str, group: str, f: int, *, va=None, expr=-1, au_on=None, points=False, sound=False):
    image = np.full((SIZE, SIZE, 3), 10 * f, np.uint8)
    au = mask = None
    if au_on is not None:
        mask = np.zeros(17, np.float32)
        mask[0] = 1.0
        au = np.zeros(17, np.float32)
        au[0] = float(au_on)
    pts = np.stack([np.full(68, float(f)), np.full(68, 8.0)], axis=1) if points else None
    window = np.full((96, 96), f / 10.0 - 0.5, np.float32)
    return Item(database=db, split="test", image_id=f"{group}/{f:03d}", load=lambda: image, group=group,
                frame=f, aligned=True, landmarks=pts, va=va, expr=expr, au=au, au_mask=mask,
                audio=audio.encode_png(window) if sound else None)


def _items():
    # tiny-a / v1: frames 1..10, VA (f/10, -f/10) except frame 4 (expression 2 only, so it lives in expr/
    # alone); expression 1 on frames 1-3 (those records are in va/ and expr/); AU1 on 5 (1) and 6 (0);
    # landmarks x = f px, y = 8 px; audio windows of value f/10 - 1/2.
    for f in range(1, 11):
        if f == 4:
            yield _frame_item("tiny-a", "v1", f, expr=2, points=True, sound=True)
            continue
        yield _frame_item("tiny-a", "v1", f, va=(f / 10, -f / 10), expr=1 if f <= 3 else -1,
                          au_on={5: 1, 6: 0}.get(f), points=True, sound=True)
    # tiny-b / v2: frames 1-5 and 8-9 (6 and 7 have no crop), VA (0.5, 0.5), no landmarks, no audio.
    for f in (1, 2, 3, 4, 5, 8, 9):
        yield _frame_item("tiny-b", "v2", f, va=(0.5, 0.5))
    # a still database: not a video, left out of the default conversion
    yield Item(database="tiny-stills", split="test", image_id="s/1", load=lambda: np.zeros((8, 8, 3), np.uint8),
               aligned=True, expr=3)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq")
    writer.write_shards(_items(), out, "tiny", aligner="none", image_size=SIZE, shard_size=4)
    sequences.write_sequence_shards(out)
    return out


def _batches(out, databases, **kw):
    kw.setdefault("image_size", SIZE)
    batches = list(sequences.make_sequence_dataset(out, databases, "test", length=4, batch_size=16, **kw))
    assert len(batches) == 1
    return batches[0]


# === Windows, by hand ===

def test_train_windows_by_hand():
    np.testing.assert_array_equal(sequences.train_windows(10, 4, 1), [[0, 1], [1, 5], [5, 9], [9, 10]])
    np.testing.assert_array_equal(sequences.train_windows(10, 4, 0), [[0, 4], [4, 8], [8, 10]])
    np.testing.assert_array_equal(sequences.train_windows(10, 4, 5), [[0, 1], [1, 5], [5, 9], [9, 10]])
    # frames 1-5 and 8-9 with split_at_gap 2: runs [0, 5) and [5, 7), each cut at its own offset
    frames = [1, 2, 3, 4, 5, 8, 9]
    np.testing.assert_array_equal(sequences.train_windows(frames, 4, 2, split_at_gap=2),
                                  [[0, 2], [2, 5], [5, 7]])
    np.testing.assert_array_equal(sequences.train_windows(frames, 4, 2, split_at_gap=3), [[0, 2], [2, 6], [6, 7]])


def test_test_windows_by_hand():
    np.testing.assert_array_equal(sequences.test_windows(10, 4), [[0, 4], [4, 8], [8, 10]])
    np.testing.assert_array_equal(sequences.test_windows(10, 4, stride=2), [[0, 4], [2, 6], [4, 8], [6, 10]])
    np.testing.assert_array_equal(sequences.test_windows([1, 2, 3, 4, 5, 8, 9], 4, split_at_gap=2),
                                  [[0, 4], [4, 5], [5, 7]])
    with pytest.raises(ValueError, match="stride"):
        sequences.test_windows(10, 4, stride=5)


def test_stitch_averages_overlapping_tiles_by_hand():
    preds = np.array([[10.0, 20, 30, 40], [50, 60, 70, 99]])
    out = sequences.stitch(preds, [b"a", b"a"], np.array([[1, 2, 3, 4], [3, 4, 5, -1]]))
    frames, values = out["a"]
    np.testing.assert_array_equal(frames, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(values, [10, 20, 40, 50, 70])      # (30+50)/2, (40+60)/2; 99 is padding
    with pytest.raises(ValueError, match="must agree"):
        sequences.stitch(preds, ["a"], np.zeros((2, 4)))


# === Conversion ===

def test_conversion_merges_task_folders_sorts_and_counts(shards):
    index = sequences.load_index(shards)["databases"]
    assert sorted(index) == ["tiny-a", "tiny-b"]                     # the still database is not a video
    a, b = index["tiny-a"]["test"], index["tiny-b"]["test"]
    assert (a["groups"], a["frames"], a["landmarks"], a["audio"], a["duplicates"]) == (1, 10, 10, 10, 0)
    assert (b["groups"], b["frames"], b["landmarks"], b["audio"], b["placeholders"]) == (1, 7, 0, 0, 0)
    (raw,) = list(tf.data.TFRecordDataset(sequences.sequence_files(shards, ["tiny-a"], "test")))
    seq = sequences.parse_sequence(raw)
    # frame 4 came from expr/, frames 1-3 from va/ only once although also in expr/, frame 5 once though in au/
    np.testing.assert_array_equal(seq[data.FRAME], np.arange(1, 11))
    assert seq[data.GROUP].numpy() == b"v1" and int(seq[sequences.LENGTH]) == 10


def test_unknown_database_and_unconverted_split_fail_with_one_line(shards):
    with pytest.raises(ValueError, match="not in"):
        sequences.write_sequence_shards(shards, ["nope"])
    with pytest.raises(ValueError, match="tiny-stills holds stills"):
        sequences.write_sequence_shards(shards, ["tiny-stills"])
    with pytest.raises(ValueError, match="No sequence shards"):
        sequences.make_sequence_dataset(shards, ["tiny-a"], "train")


# === Test tiling: frames, labels, masks ===

def test_test_tiles_carry_frames_labels_and_masks(shards):
    inputs, labels = _batches(shards, ["tiny-a"], landmarks=True, audio=True)
    frames = labels["frame"].numpy()
    np.testing.assert_array_equal(frames, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, -1, -1]])
    mask = labels["frame_mask"].numpy()
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]])
    assert inputs["frames"].shape == (3, 4, SIZE, SIZE, 3)
    pixels = (inputs["frames"].numpy().mean(axis=(2, 3, 4)) + 1) * 127.5
    np.testing.assert_allclose(pixels[mask > 0], 10 * frames[mask > 0], atol=2)   # a flat JPEG decodes to ±2
    np.testing.assert_allclose(pixels[mask == 0], 0, atol=1e-6)                   # padding is black
    f = np.where(frames > 0, frames, 0)
    va_mask = labels["va_mask"].numpy()
    np.testing.assert_array_equal(va_mask, (mask > 0) & (f != 4))
    np.testing.assert_allclose(labels["va"].numpy()[..., 0], np.where(va_mask > 0, f / 10, 0), atol=1e-6)
    np.testing.assert_allclose(labels["va"].numpy()[..., 1], np.where(va_mask > 0, -f / 10, 0), atol=1e-6)
    np.testing.assert_array_equal(labels["expr"].numpy(), [[1, 1, 1, 2], [-1] * 4, [-1] * 4])
    au_mask = labels["au_mask"].numpy()[..., 0]
    np.testing.assert_array_equal(au_mask, [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    assert labels["au"].numpy()[1, 0, 0] == 1 and labels["au"].numpy()[1, 1, 0] == 0
    assert labels["au_mask"].numpy()[..., 1:].sum() == 0
    # landmarks: x = f px, y = 8 px in a 16-px crop → x/8 - 1, 0; zero on padding
    lm = inputs["landmarks"].numpy().reshape(3, 4, 68, 2)
    np.testing.assert_allclose(lm[..., 0][mask > 0], np.repeat(f[mask > 0] / 8 - 1, 68).reshape(-1, 68), atol=1e-6)
    np.testing.assert_allclose(lm[..., 1][mask > 0], 0, atol=1e-6)
    assert np.all(lm[mask == 0] == 0) and np.all(labels["landmarks_mask"].numpy() == mask)
    # audio: value f/10 - 1/2 after the PNG's uint8 round trip; silence (-1) on padding
    spec = inputs["audio"].numpy()
    assert spec.shape == (3, 4, 96, 96, 1)
    np.testing.assert_allclose(spec.mean(axis=(2, 3, 4))[mask > 0], f[mask > 0] / 10 - 0.5, atol=1 / 127.5)
    np.testing.assert_allclose(spec[mask == 0], -1)
    assert [g.decode() for g in labels["group"].numpy()] == ["v1"] * 3


def test_landmark_and_audio_inputs_refuse_data_without_them(shards):
    with pytest.raises(ValueError, match="tiny-b/test: none of its 7 frames carry landmarks"):
        sequences.make_sequence_dataset(shards, ["tiny-a", "tiny-b"], "test", landmarks=True)
    with pytest.raises(ValueError, match="carry audio"):
        sequences.make_sequence_dataset(shards, ["tiny-b"], "test", audio=True)


def test_gaps_are_dropped_or_split(shards):
    _, labels = _batches(shards, ["tiny-b"])
    np.testing.assert_array_equal(labels["frame"].numpy(), [[1, 2, 3, 4], [5, 8, 9, -1]])   # 6, 7 dropped
    _, labels = _batches(shards, ["tiny-b"], split_at_gap=2)
    np.testing.assert_array_equal(labels["frame"].numpy(), [[1, 2, 3, 4], [5, -1, -1, -1], [8, 9, -1, -1]])


def test_fill_gaps_keeps_frames_without_a_crop_in_place_masked(tmp_path):
    writer.write_shards(_items(), tmp_path, "tiny", aligner="none", image_size=SIZE)
    index = sequences.write_sequence_shards(tmp_path, ["tiny-b"], fill_gaps=1)     # a gap of 2 stays a gap
    assert index["databases"]["tiny-b"]["test"]["frames"] == 7
    index = sequences.write_sequence_shards(tmp_path, ["tiny-b"], fill_gaps=2)     # options changed: redone
    assert (index["databases"]["tiny-b"]["test"]["frames"], index["databases"]["tiny-b"]["test"]["placeholders"]) \
        == (9, 2)
    _, labels = _batches(tmp_path, ["tiny-b"])
    np.testing.assert_array_equal(labels["frame"].numpy(), [[1, 2, 3, 4], [5, 6, 7, 8], [9, -1, -1, -1]])
    np.testing.assert_array_equal(labels["frame_mask"].numpy(), [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 0]])
    np.testing.assert_array_equal(labels["va_mask"].numpy(), labels["frame_mask"].numpy())


def test_training_windows_are_consecutive_padded_at_the_tail_and_masked(shards):
    ds = sequences.make_sequence_dataset(shards, ["tiny-a", "tiny-b"], "test", training=True, length=4,
                                         batch_size=2, image_size=SIZE, seed=3)
    order = {b"v1": list(range(1, 11)), b"v2": [1, 2, 3, 4, 5, 8, 9]}
    seen = 0
    for inputs, labels in ds.take(12):
        assert inputs["frames"].shape == (2, 4, SIZE, SIZE, 3)              # drop_remainder: always B
        for group, frames, mask, va_mask in zip(labels["group"].numpy(), labels["frame"].numpy(),
                                                 labels["frame_mask"].numpy(), labels["va_mask"].numpy()):
            n = int(mask.sum())
            assert n >= 1 and np.all(mask[:n] == 1) and np.all(mask[n:] == 0)    # padding only at the tail
            run = order[group]
            start = run.index(frames[0])
            assert list(frames[:n]) == run[start:start + n] and np.all(frames[n:] == -1)
            assert np.all(va_mask[n:] == 0)
            seen += 1
    assert seen == 24
    # two input pipelines, two shards: each trains on its own video
    groups = []
    for pipeline in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ds = sequences.make_sequence_dataset(shards, ["tiny-a", "tiny-b"], "test", training=True, length=4,
                                             batch_size=2, image_size=SIZE, input_context=context)
        groups.append({g for _, labels in ds.take(4) for g in labels["group"].numpy()})
    assert groups[0] | groups[1] == {b"v1", b"v2"} and not groups[0] & groups[1]


def test_tiles_stitch_back_to_every_frame_once(shards):
    ds = sequences.make_sequence_dataset(shards, ["tiny-a"], "test", length=4, stride=2, batch_size=3,
                                         image_size=SIZE)
    preds, groups, frames = [], [], []
    for _, labels in ds:
        preds.append(labels["frame"].numpy().astype(np.float64) * 2)       # a "model" that predicts 2·frame
        groups.extend(labels["group"].numpy())
        frames.append(labels["frame"].numpy())
    out = sequences.stitch(np.concatenate(preds), groups, np.concatenate(frames))
    numbers, values = out["v1"]
    np.testing.assert_array_equal(numbers, np.arange(1, 11))
    np.testing.assert_allclose(values, 2 * np.arange(1, 11))


# === Landmarks in records ===

def test_landmarks_move_into_the_crop_by_hand():
    # A pre-cropped 20×30 image: the centred square starts at x = 5 and 20 px become 96:
    # x' = (x − 5 + ½)·96/20 − ½.
    pts = np.zeros((68, 2))
    pts[0] = [5.0, 0.0]
    pts[1] = [24.5, 19.5]
    out = landmarks.in_crop(pts, (20, 30, 3), 96, aligned=True)
    np.testing.assert_allclose(out[:2], [[1.9, 1.9], [95.5, 95.5]], atol=1e-5)
    # Aligned from the points: if the five anchors sit on the template in the crop, the crop points come back.
    rng = np.random.default_rng(0)
    crop = rng.uniform(10, 86, (68, 2))
    t = preprocess.template(96)
    crop[36:42], crop[42:48], crop[30], crop[48], crop[54] = t[0], t[1], t[2], t[3], t[4]
    c, s = np.cos(0.3), np.sin(0.3)
    image_pts = crop @ (2.5 * np.array([[c, -s], [s, c]])).T + [40.0, 17.0]
    np.testing.assert_allclose(landmarks.in_crop(image_pts, (400, 400, 3), 96, aligned=False), crop, atol=1e-3)
    with pytest.raises(ValueError, match="68"):
        landmarks.in_crop(pts[:5], (20, 30, 3), 96, aligned=True)


def test_writer_stores_landmarks_aligned_from_them(tmp_path):
    rng = np.random.default_rng(1)
    crop = rng.uniform(20, 76, (68, 2))
    t = preprocess.template(96)
    crop[36:42], crop[42:48], crop[30], crop[48], crop[54] = t[0], t[1], t[2], t[3], t[4]
    image_pts = crop * 2.0 + [30.0, 10.0]
    item = Item(database="lm", split="train", image_id="x/1", load=lambda: np.zeros((240, 240, 3), np.uint8),
                group="x", frame=1, landmarks=image_pts, va=(0.1, 0.2))
    writer.write_shards([item], tmp_path, "lm")
    (raw,) = list(tf.data.TFRecordDataset(str(tmp_path / "va" / "lm-train-00000-of-00001.tfrecord")))
    stored = tf.io.parse_single_example(raw, {data.LANDMARKS: tf.io.FixedLenFeature([136], tf.float32),
                                              data.LANDMARKS_MASK: tf.io.FixedLenFeature([], tf.int64)})
    np.testing.assert_allclose(stored[data.LANDMARKS].numpy().reshape(68, 2), crop / 48.0 - 1.0, atol=1e-4)
    assert int(stored[data.LANDMARKS_MASK]) == 1
