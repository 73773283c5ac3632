"""The Hume-Reaction parser on miniature copies of its ABAW5 and MuSe 2022 layouts, with planted bad inputs,
end to end through the shard writer and into sequence shards (values checked against the files written here)."""

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_builders import avi, build, garbage, mean_grey, ns, records, task_counts, write

from fbn_keras import data, sequences, taxonomy
from tfrecords_tools import build as build_cli
from tfrecords_tools import hume_reaction, splits

HEADER = "File_ID,Split," + ",".join(taxonomy.REACTIONS) + "\n"
GOOD = {"00001": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "00002": [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
        "00007": [0.0, 1.0, 0.25, 0.5, 0.75, 0.0, 1.0]}


def _row(vid, split, values) -> str:
    return f"{vid},{split}," + ",".join(str(v) for v in values) + "\n"


def _abaw5(root: Path) -> None:
    """data_info.csv as ABAW5 distributes it, videos under raw/mp4/."""
    write(root / "data_info.csv", HEADER + "".join([
        _row("[00001]", "Train", GOOD["00001"]),
        _row("00002", "Train", GOOD["00002"]),
        _row("00003", "Train", [0.1, "nan", 0.1, 0.1, 0.1, 0.1, 0.1]),        # NaN intensity
        _row("00004", "Train", [0.1, 1.3, 0.1, 0.1, 0.1, 0.1, 0.1]),          # outside [0, 1]
        _row("00005", "Train", [0.1] * 7),                                     # no video file
        _row("00006", "Train", [0.1] * 7),                                     # not a video
        _row("00007", "Val", GOOD["00007"]),
        _row("00008", "Train", [0.1, "", 0.1, 0.1, 0.1, 0.1, 0.1]),           # a missing value
        _row("00002", "Train", [0.9] * 7),                                     # the same video twice
        _row("00009", "Sometime", [0.1] * 7),                                  # no such split
    ]))
    avi(root / "raw" / "mp4" / "00001.mp4", 3)
    avi(root / "raw" / "mp4" / "00002.mp4", 2)
    avi(root / "raw" / "mp4" / "00003.mp4", 2)
    avi(root / "raw" / "mp4" / "00004.mp4", 2)
    garbage(root / "raw" / "mp4" / "00006.mp4")
    avi(root / "raw" / "mp4" / "00007.mp4", 2)


def test_every_frame_carries_its_video_intensities_and_bad_videos_are_counted(tmp_path, caplog):
    root, out = tmp_path / "hume", tmp_path / "out"
    _abaw5(root)
    with caplog.at_level(logging.WARNING):
        m = build(hume_reaction.parse(root, ns()), out, "hume-reaction")
    recs = records(out)
    assert sorted(i for _, i in recs) == ["00001/00001", "00001/00002", "00001/00003", "00002/00001",
                                          "00002/00002", "00007/00001", "00007/00002"]
    assert {task for task, _ in recs} == {"intensity"}
    spec = {data.ID: tf.io.FixedLenFeature([], tf.string), **data.INTENSITY_FEATURES}
    for shard in (s for split in ("train", "validation", "test") for s in m.shards("intensity", split)):
        for raw in tf.data.TFRecordDataset(str(out / shard["file"])):
            f = tf.io.parse_single_example(raw, spec)
            vid = f[data.ID].numpy().decode().split("/")[0]
            np.testing.assert_allclose(f[data.INTENSITY].numpy(), GOOD[vid], atol=1e-7)
            assert int(f[data.INTENSITY_MASK]) == 1
    for k in (1, 2, 3):
        rec = recs[("intensity", f"00001/{k:05d}")]
        assert rec[data.GROUP] == b"00001" and rec[data.FRAME] == k and abs(mean_grey(rec) - 20 * k) < 4
        assert rec[data.VA_MASK] == 0 and rec[data.EXPR] == -1 and rec[data.AU_MASK].sum() == 0
    # no test labels published: Val is our test; 15 % of the 4 labelled training videos (one, chosen by
    # `splits.holdout` from the ids, whether or not its file is readable) is our validation
    split_of = {rec[data.GROUP].decode(): rec["split"] for rec in recs.values()}
    held = splits.holdout(["00001", "00002", "00005", "00006"], 0.15, 0)
    assert split_of["00007"] == "test" and len(held) == 1
    assert [split_of[v] for v in ("00001", "00002")] == ["validation" if v in held else "train"
                                                          for v in ("00001", "00002")]
    assert sum(sum(c.values()) for c in task_counts(m, "hume-reaction").values()) == 7
    assert m.skips() == {"nan_label": 1, "label_out_of_range": 1, "missing_file": 1, "unreadable_video": 1,
                         "invalid_label": 1, "duplicate_row": 1, "no_split": 1}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for reason in ("nan_label", "label_out_of_range", "missing_file", "unreadable_video"):
        assert f"skip {reason}" in logged, reason


def test_muse_layout_split_table_and_sequence_shards_carry_the_intensities(tmp_path):
    """MuSe 2022: labels and partition in two files; a labelled test split keeps the published splits."""
    root, out = tmp_path / "muse", tmp_path / "out"
    names = ",".join(taxonomy.REACTIONS)
    write(root / "c3_muse_reaction" / "labels.csv", f"File_ID,{names}\n" + "".join(
        f"{vid}," + ",".join(map(str, GOOD[vid])) + "\n" for vid in GOOD))
    write(root / "c3_muse_reaction" / "partition.csv", "Id,Split\n00001,train\n00002,devel\n00007,test\n")
    for vid, n in (("00001", 3), ("00002", 2), ("00007", 4)):
        avi(root / "c3_muse_reaction" / "raw" / f"{vid}.avi", n)
    m = build(hume_reaction.parse(root, ns()), out, "hume-reaction")
    assert task_counts(m, "hume-reaction") == {"train": {"intensity": 3}, "validation": {"intensity": 2},
                                               "test": {"intensity": 4}}
    index = sequences.write_sequence_shards(out, ["hume-reaction"])
    assert index["databases"]["hume-reaction"]["test"]["frames"] == 4
    ds = sequences.make_sequence_dataset(out, ["hume-reaction"], "test", length=6, batch_size=1, image_size=32,
                                         intensity=True)
    ((inputs, labels),) = list(ds)
    np.testing.assert_allclose(labels["intensity"][0, :4].numpy(), np.tile(GOOD["00007"], (4, 1)), atol=1e-7)
    np.testing.assert_array_equal(labels["intensity_mask"][0].numpy(), [1, 1, 1, 1, 0, 0])
    assert inputs["frames"].shape == (1, 6, 32, 32, 3)
    # the default reader does not parse the intensities (sequence shards written before them lack them)
    ((_, plain),) = list(sequences.make_sequence_dataset(out, ["hume-reaction"], "test", length=6, batch_size=1,
                                                          image_size=32))
    assert "intensity" not in plain


def test_no_label_table_is_one_line(tmp_path):
    write(tmp_path / "other.csv", "File_ID,Split,Adoration\n1,Train,0.5\n")
    with pytest.raises(FileNotFoundError, match="no CSV below"):
        list(hume_reaction.parse(tmp_path, ns()))
    assert "hume-reaction" in build_cli.PARSERS
    assert build_cli.parser_module("hume-reaction") is hume_reaction


def test_video_id_forms():
    assert [hume_reaction.video_id(t) for t in ("[00001]", " 00001 ", "00001.mp4", "a.b")] == \
        ["00001", "00001", "00001", "a.b"]


# === The synthetic reaction videos ===

def test_reaction_map_and_au_targets():
    from fbn_keras.synthetic import intensity

    m = intensity.reaction_matrix()
    on = {name: {taxonomy.AUS[i] for i in np.flatnonzero(m[r])} for r, name in enumerate(taxonomy.REACTIONS)}
    assert on["Disgust"] == {9, 10, 17} and on["Surprise"] == {1, 2, 5, 26} and on["Amusement"] == {6, 12, 25, 26}
    y = np.zeros(7, np.float32)
    y[taxonomy.REACTIONS.index("Fear")] = 0.6
    y[taxonomy.REACTIONS.index("Surprise")] = 0.6
    target = intensity.au_target(y)
    au = {a: target[taxonomy.au_index(a)] for a in taxonomy.AUS}
    assert au[1] == 1.0 and au[2] == 1.0                 # 0.6 + 0.6, capped at 1
    assert au[20] == pytest.approx(0.6) and au[26] == pytest.approx(0.6) and au[12] == 0.0
    with pytest.raises(ValueError, match="intensity must be 7 values"):
        intensity.au_target(np.full(7, 1.5))
    # neutral before the onset, then towards the target: only part of the video shows the reaction
    aus = intensity.au_trajectory(np.random.default_rng(0), target, 40)
    assert np.all(aus[:4] == 0) and np.abs(aus[-1] - target).max() < 0.15


def test_synthetic_reaction_intensities_reach_records_and_sequence_shards(tmp_path):
    from fbn_keras.synthetic import intensity

    videos = {"train": 2, "test": 1}
    truth = {}
    for split, n in videos.items():
        for k in range(n):
            (first, *_) = intensity.render_reaction_video(split, k, seed=3, length=10)
            truth[first.group] = first.intensity
            assert first.image.shape == (96, 96, 3)
    out = intensity.build(tmp_path / "out", videos, seed=3, length=10, image_size=32)
    recs = records(out)
    assert len(recs) == 30 and {task for task, _ in recs} == {"intensity"}
    spec = {data.GROUP: tf.io.FixedLenFeature([], tf.string), **data.INTENSITY_FEATURES}
    from fbn_keras.manifest import Manifest
    m = Manifest.load(out)
    for shard in m.shards("intensity", "train") + m.shards("intensity", "test"):
        for raw in tf.data.TFRecordDataset(str(out / shard["file"])):
            f = tf.io.parse_single_example(raw, spec)
            np.testing.assert_allclose(f[data.INTENSITY].numpy(), truth[f[data.GROUP].numpy().decode()])
    ds = sequences.make_sequence_dataset(out, [intensity.DATABASE], "test", length=10, batch_size=1, image_size=32,
                                         intensity=True)
    ((inputs, labels),) = list(ds)
    assert labels["group"][0].numpy().decode() == "test-00000"
    np.testing.assert_allclose(labels["intensity"][0].numpy(), np.tile(truth["test-00000"], (10, 1)))
    assert float(labels["intensity_mask"][0].numpy().sum()) == 10 and inputs["frames"].shape == (1, 10, 32, 32, 3)


def test_facernet_reads_whole_videos_padded_or_truncated(tmp_path):
    from fbn_keras import facernet
    from fbn_keras.synthetic import intensity

    out = intensity.build(tmp_path / "out", {"train": 1, "test": 2}, seed=4, length=5, image_size=32)
    truth = {}
    for k in range(2):
        (first, *_) = intensity.render_reaction_video("test", k, seed=4, length=5)
        truth[first.group] = first.intensity
    for frames, length in ((8, 5), (3, 3)):                 # padded to 8; truncated to the first 3
        ds = facernet.make_video_dataset(out, [intensity.DATABASE], "test", frames=frames, batch_size=2,
                                         image_size=32)
        ((inputs, labels),) = list(ds)
        assert inputs["frames"].shape == (2, frames, 32, 32, 3)
        np.testing.assert_array_equal(inputs["length"].numpy(), [length, length])
        if frames > length:
            assert np.all(inputs["frames"][:, length:].numpy() == -1.0)    # zero pixels, x/127.5 - 1
        for g, y in zip(labels["group"].numpy(), labels["intensity"].numpy()):
            np.testing.assert_allclose(y, truth[g.decode()])
        np.testing.assert_array_equal(labels["intensity_mask"].numpy(), [1, 1])
    ((inputs, _),) = list(facernet.make_video_dataset(out, [intensity.DATABASE], "train", frames=8, batch_size=1,
                                                       image_size=32).take(1))
    assert inputs["frames"].shape == (1, 8, 32, 32, 3)
