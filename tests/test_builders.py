"""Every database parser on a miniature copy of its real layout, end to end through the shard writer.

Each test writes a few real JPEGs (or small MJPG AVIs), plants bad inputs,
builds with `--align none`, and checks the manifest's counts and the decoded
labels against values worked out by hand from the files the test wrote
(docs/LABELS.md orders: neutral 0, anger 1, disgust 2, fear 3, happiness 4,
sadness 5, surprise 6; AUs 1,2,4,5,6,7,9,10,12,14,15,17,20,23,24,25,26).
Video frame k is painted grey level 20·k, so a decoded record's mean
brightness tells which frame it came from.
"""

import argparse
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import data, taxonomy
from fbn_keras.manifest import Manifest
from tfrecords_tools import afew, affectnet, affwild, affwild2, bp4d, disfa, emotionet, rafdb, splits, video
from tfrecords_tools.items import Item, Skip, SkipError
from tfrecords_tools.writer import write_shards

AU = {au: i for i, au in enumerate(taxonomy.AUS)}   # AU number → column, e.g. AU12 → 8


# === Miniature files ===

def jpeg(path: Path, seed: int = 0, size=(20, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def corrupt(path: Path) -> Path:
    """A JPEG cut in half: exists, but does not decode."""
    full = jpeg(path, seed=99).read_bytes()
    path.write_bytes(full[: len(full) // 2])
    return path


def avi(path: Path, n_frames: int, size: int = 32) -> Path:
    """An MJPG AVI whose frame k (1-based) is uniformly grey level 20·k."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    assert out.isOpened()
    for k in range(1, n_frames + 1):
        out.write(np.full((size, size, 3), 20 * k, np.uint8))
    out.release()
    return path


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a video" * 10)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# === Building and reading back ===

def build(items, out: Path, name: str) -> Manifest:
    return write_shards(items, out, name, aligner="none", shard_size=4)


def records(out: Path) -> dict[tuple[str, str], dict]:
    """(task, image_id) → decoded record (numpy), over every shard the manifest lists."""
    manifest = Manifest.load(out)
    found = {}
    for name in manifest.databases():
        for split, entry in manifest.splits(name).items():
            for task, shards in entry["shards"].items():
                for shard in shards:
                    for raw in tf.data.TFRecordDataset(str(out / shard["file"])):
                        rec = {k: v.numpy() for k, v in data.decode_example(raw).items()}
                        rec["split"] = split
                        found[(task, rec[data.ID].decode())] = rec
    return found


def task_counts(manifest: Manifest, database: str) -> dict[str, dict[str, int]]:
    """split → task → records."""
    return {split: {t: n for t, n in e["tasks"].items() if n} for split, e in manifest.splits(database).items()}


def mean_grey(rec) -> float:
    return float(tf.io.decode_jpeg(rec[data.IMAGE]).numpy().mean())


def only(items, kind=Item):
    return [x for x in items if isinstance(x, kind)]


def ns(**kw) -> argparse.Namespace:
    return argparse.Namespace(**kw)


# === splits.py ===

def test_holdout_takes_fifteen_percent_of_groups_deterministically():
    groups = [f"S{i:02d}" for i in range(20)]
    held = splits.holdout(groups, 0.15, seed=0)
    assert len(held) == 3                                   # round(0.15 · 20)
    assert held == splits.holdout(list(reversed(groups)) + groups, 0.15, seed=0)   # order, duplicates
    assert any(splits.holdout(groups, 0.15, seed=s) != held for s in range(1, 5))
    assert len(splits.holdout(["a", "b"], 0.15)) == 1        # both sides exist
    assert splits.holdout(groups, 0.0) == frozenset()
    assert splits.train_validation(["a", "b"], 0.5)["a"] in ("train", "validation")
    with pytest.raises(ValueError, match="fraction"):
        splits.holdout(groups, 1.0)


def test_our_split_turns_published_validation_into_test_without_a_test_set():
    assert splits.our_split("validation", "g", set(), has_test=False) == "test"
    assert splits.our_split("validation", "g", set(), has_test=True) == "validation"
    assert splits.our_split("train", "g", {"g"}, has_test=False) == "validation"
    assert splits.our_split("train", "h", {"g"}, has_test=False) == "train"
    assert splits.our_split("test", "g", {"g"}, has_test=True) == "test"


# === video.py ===

def test_video_frames_read_in_any_order_and_past_the_end_is_a_skip(tmp_path):
    path = avi(tmp_path / "v.avi", 5)
    assert video.frame_count(path) == 5
    for k in (2, 3, 5, 1, 4):
        assert abs(video.read_frame(str(path), k).mean() - 20 * k) < 3
    with pytest.raises(SkipError, match="^past_video_end: ") as err:
        video.frame_loader(path, 6)()
    assert err.value.reason == "past_video_end"
    with pytest.raises(SkipError, match="^unreadable_video: ") as err:
        video.frame_count(garbage(tmp_path / "bad.avi"))
    assert err.value.reason == "unreadable_video"


# === RAF-DB ===

def _rafdb(root: Path) -> None:
    basic = root / "basic"
    write(basic / "EmoLabel" / "list_patition_label.txt",
          "train_00001.jpg 4\ntrain_00002.jpg 7\ntrain_00003.jpg 1\ntrain_00004.jpg 5\n"
          "train_00005.jpg 9\ntest_0001.jpg 6\ntest_0002.jpg 3\ntest_0003.jpg 2\n")
    for i, stem in enumerate(["train_00001", "train_00002", "train_00003", "test_0001", "test_0002"]):
        jpeg(basic / "Image" / "aligned" / f"{stem}_aligned.jpg", seed=i)
        jpeg(basic / "Image" / "original" / f"{stem}.jpg", seed=i)
    corrupt(basic / "Image" / "aligned" / "test_0003_aligned.jpg")           # listed, does not decode
    comp = root / "compound"
    write(comp / "EmoLabel" / "list_patition_label.txt", "train_0001.jpg 1\ntrain_0002.jpg 11\ntest_0001.jpg 3\n")
    for i, stem in enumerate(["train_0001", "train_0002", "test_0001"]):
        jpeg(comp / "Image" / "aligned" / f"{stem}_aligned.jpg", seed=10 + i)


def test_rafdb_basic_and_compound_end_to_end(tmp_path):
    root, out = tmp_path / "RAF-DB", tmp_path / "out"
    _rafdb(root)
    m = build(rafdb.parse(root, ns(dataset="rafdb")), out, "rafdb")
    assert task_counts(m, "rafdb") == {"train": {"expr": 3}, "test": {"expr": 2}}
    assert m.skips() == {"missing_file": 1, "label_out_of_range": 1, "corrupt_image": 1}
    recs = records(out)
    # RAF-DB 4 happiness → 4; 7 neutral → 0; 1 surprise → 6; 6 anger → 1; 3 disgust → 2
    expected = {"train_00001.jpg": 4, "train_00002.jpg": 0, "train_00003.jpg": 6,
                "test_0001.jpg": 1, "test_0002.jpg": 2}
    for name, expr in expected.items():
        rec = recs[("expr", f"basic/{name}")]
        assert rec[data.EXPR] == expr and rec[data.VA_MASK] == 0 and rec[data.AU_MASK].sum() == 0
        assert rec["split"] == ("test" if name.startswith("test") else "train")

    m = build(rafdb.parse(root, ns(dataset="rafdb-compound")), out, "rafdb-compound")
    assert task_counts(m, "rafdb-compound") == {"train": {"compound": 2}, "test": {"compound": 1}}
    recs = records(out)
    # compound 1 happily surprised → 0, 11 disgustedly surprised → 11, 3 sadly fearful → 2
    assert recs[("compound", "compound/train_0001.jpg")][data.COMPOUND] == 0
    assert recs[("compound", "compound/train_0002.jpg")][data.COMPOUND] == 11
    assert recs[("compound", "compound/test_0001.jpg")][data.COMPOUND] == 2
    assert recs[("compound", "compound/test_0001.jpg")][data.EXPR] == -1


def test_rafdb_uses_aligned_crops_unless_asked_for_originals(tmp_path):
    _rafdb(tmp_path)
    aligned = only(rafdb.parse(tmp_path, ns()))
    assert all(i.aligned for i in aligned) and len(aligned) == 6
    original = only(rafdb.parse(tmp_path, ns(original=True)))
    assert not any(i.aligned for i in original)
    assert original[0].load().shape == (20, 24, 3)
    assert rafdb.image_path(tmp_path / "basic", "train_00001.jpg", False).name == "train_00001_aligned.jpg"


# === AffectNet ===

HEADER = "#subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"


def _landmarks(dx: float = 0.0) -> str:
    pts = [(3 + dx + i % 10, 4 + i // 10) for i in range(68)]
    return ";".join(f"{x};{y}" for x, y in pts)


def _affectnet(root: Path) -> None:
    lists = root / "manually_annotated_file_lists"                      # a folder spelling that varies
    images = root / "Manually_Annotated_Images"
    write(lists / "training.csv", HEADER + "".join([
        f"1/a.jpg,0,0,20,20,{_landmarks()},1,0.5,-0.25\n",             # Happy → 4, VA
        f"1/b.jpg,0,0,20,20,{_landmarks()},8,0.1,0.2\n",               # None → VA only
        f"2/c.png,0,0,20,20,{_landmarks()},0,-0.3,0.0\n",              # Neutral → 0 (a .png)
        f"2/d.jpg,0,0,20,20,{_landmarks()},9,-2,-2\n",                 # Uncertain, no VA → skipped
        f"2/e.jpg,0,0,20,20,{_landmarks()},2,0.0,0.0\n",               # not on disk
        f"2/f.jpg,0,0,20,20,{_landmarks()},3,1.5,0.0\n",               # VA out of range, Surprise → 6 kept
        f"2/g.jpg,0,0,20,20,{_landmarks()},7,-0.1,0.9\n",              # Contempt → VA only
    ]))
    write(lists / "validation.csv", HEADER + f"3/h.jpg,0,0,20,20,{_landmarks(1.0)},6,-0.5,0.5\n")
    for i, rel in enumerate(["1/a.jpg", "1/b.jpg", "2/d.jpg", "2/f.jpg", "2/g.jpg", "3/h.jpg"]):
        jpeg(images / rel, seed=i)
    png = images / "2" / "c.png"
    assert cv2.imwrite(str(png), np.zeros((20, 24, 3), np.uint8))


def test_affectnet_codes_va_and_landmarks(tmp_path):
    root, out = tmp_path / "AffectNet", tmp_path / "out"
    _affectnet(root)
    items = only(affectnet.parse(root, ns()))
    assert items[0].landmarks.shape == (68, 2) and tuple(items[0].landmarks[1]) == (4.0, 4.0)

    m = build(affectnet.parse(root, ns()), out, "affectnet")
    counts = task_counts(m, "affectnet")
    assert counts["test"] == {"va": 1, "expr": 1}
    train = {t: counts.get("train", {}).get(t, 0) + counts.get("validation", {}).get(t, 0) for t in ("va", "expr")}
    assert train == {"va": 4, "expr": 3}                              # a, b, c, g (+VA) ; a, c, f (+expr)
    assert m.skips() == {"missing_file": 1, "no_usable_label": 1, "dropped_label_out_of_range": 1}
    recs = records(out)
    a = recs[("expr", "1/a.jpg")]
    assert a[data.EXPR] == 4 and a[data.VA_MASK] == 1 and np.allclose(a[data.VA], [0.5, -0.25])
    b = recs[("va", "1/b.jpg")]
    assert b[data.EXPR] == -1 and np.allclose(b[data.VA], [0.1, 0.2])
    assert ("expr", "1/b.jpg") not in recs
    assert recs[("expr", "2/c.png")][data.EXPR] == 0
    f = recs[("expr", "2/f.jpg")]
    assert f[data.EXPR] == 6 and f[data.VA_MASK] == 0
    assert recs[("va", "2/g.jpg")][data.EXPR] == -1
    h = recs[("expr", "3/h.jpg")]
    assert h[data.EXPR] == 1 and h["split"] == "test" and np.allclose(h[data.VA], [-0.5, 0.5])


# === Aff-Wild2 ===

def _affwild2(root: Path) -> None:
    crops = root / "cropped_aligned"
    for video_name, n in (("vidA", 4), ("vidB_left", 2), ("vidB_right", 1), ("vidC", 2)):
        for k in range(1, n + 1):
            jpeg(crops / video_name / f"{k:05d}.jpg", seed=k, size=(16, 16))
    ann = root / "3rd_ABAW_Annotations"
    va, ex, au = (ann / "VA_Estimation_Challenge", ann / "EXPR_Recognition_Challenge", ann / "AU_Detection_Challenge")
    write(va / "Train_Set" / "vidA.txt", "valence,arousal\n0.5,-0.25\n-5,-5\n0.1,0.2\n0.3,0.3\n0.2,0.2\n")
    write(va / "Train_Set" / "vidB_right.txt", "valence,arousal\n-0.4,0.6\n")
    write(ex / "Train_Set" / "vidA.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n4\n7\n-1\n2\n")
    write(ex / "Validation_Set" / "vidC.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n6\n0\n")
    write(au / "Train_Set" / "vidB_left.txt", "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"
          "1,0,0,1,0,0,1,0,0,0,1,0\n" + ",".join(["-1"] * 12) + "\n")
    write(au / "Train_Set" / "vidD.txt", "AU1,AU3\n1,0\n")                     # AU3 is not one of ours


def test_affwild2_merges_challenges_per_frame_and_counts_invalid_markers(tmp_path):
    root, out = tmp_path / "Aff-Wild2", tmp_path / "out"
    _affwild2(root)
    m = build(affwild2.parse(root, ns()), out, "affwild2")
    recs = records(out)
    a1 = recs[("va", "vidA/00001.jpg")]                                 # VA + EXPR 4 (Happiness) merged
    assert np.allclose(a1[data.VA], [0.5, -0.25]) and a1[data.EXPR] == 4
    assert ("expr", "vidA/00001.jpg") in recs and a1[data.FRAME] == 1 and a1[data.GROUP] == b"vidA"
    assert ("va", "vidA/00002.jpg") not in recs and ("expr", "vidA/00002.jpg") not in recs   # -5 and Other
    a3 = recs[("va", "vidA/00003.jpg")]                                 # EXPR -1 dropped, VA kept
    assert a3[data.EXPR] == -1 and np.allclose(a3[data.VA], [0.1, 0.2])
    assert recs[("expr", "vidA/00004.jpg")][data.EXPR] == 2             # Disgust
    b1 = recs[("au", "vidB_left/00001.jpg")]
    expected = np.zeros(17)
    expected[[AU[1], AU[6], AU[12], AU[25]]] = 1
    assert np.array_equal(b1[data.AU], expected)
    assert np.array_equal(b1[data.AU_MASK], taxonomy.au_mask_for((1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)))
    assert b1[data.VA_MASK] == 0 and b1[data.EXPR] == -1
    assert recs[("va", "vidB_right/00001.jpg")]["split"] == recs[("au", "vidB_left/00001.jpg")]["split"]
    c = [recs[("expr", f"vidC/0000{k}.jpg")] for k in (1, 2)]
    assert [r[data.EXPR] for r in c] == [6, 0] and {r["split"] for r in c} == {"test"}
    # vidA and vidB: one of the two training videos is held out as validation
    assert {recs[("va", "vidA/00001.jpg")]["split"], b1["split"]} == {"train", "validation"}
    assert m.skips() == {"invalid_label": 3, "dropped_invalid_label": 1, "missing_file": 1}
    total = {t: sum(e["tasks"][t] for e in m.splits("affwild2").values()) for t in ("va", "expr", "au")}
    assert total == {"va": 4, "expr": 4, "au": 1}


def test_affwild2_challenge_folders_found_by_pattern():
    assert [affwild2.challenge_of(n) for n in ("VA_Estimation_Challenge", "EXPR_Classification_Challenge",
                                                "AU_Detection_Challenge", "Validation_Set", "3rd_ABAW_Annotations")] \
        == ["VA", "EXPR", "AU", None, None]
    assert affwild2.base_video("10-60-1280x720_right") == "10-60-1280x720"


# === EmotioNet ===

def _au_row(url: str, values: dict[int, int]) -> str:
    return "\t".join([url, url + "?orig"] + [str(values.get(a, 0)) for a in range(1, 61)])


def _emotionet(root: Path) -> argparse.Namespace:
    """The EmotioNet layout; returns the parser arguments that name its lists."""
    imgs = root / "images"
    jpeg(imgs / "img1.jpg", 1), jpeg(imgs / "sub" / "img2.jpg", 2), jpeg(imgs / "img3.jpg", 3)
    jpeg(imgs / "e1.jpg", 4), jpeg(imgs / "e2.jpg", 5), jpeg(imgs / "e3.jpg", 6)
    jpeg(imgs / "a" / "same.jpg", 7), jpeg(imgs / "b" / "same.jpg", 8)
    write(root / "lists" / "train.txt", "\n".join([
        _au_row("http://x.org/p/img1.jpg", {1: 1, 2: 999, 12: 1, 60: 1, 14: 1}),   # AU14/60: not challenge AUs
        _au_row("http://x.org/p/img2.jpg", {4: 1, 26: 1}),
        _au_row("http://x.org/p/nothere.jpg", {1: 1}),
        _au_row("http://y.org/same.jpg", {1: 1}),                                    # two files of that name
    ]) + "\n")
    header = ",".join(["URL", "URL orig"] + [f"'AU {a}'" for a in range(1, 61)])
    row = ["http://z.org/img3.jpg'", "http://orig'"] + ["999"] * 60
    row[2 + 5 - 1], row[2 + 9 - 1] = "1", "0"                                     # AU5 = 1, AU9 = 0
    write(root / "lists" / "optimization.csv", header + "\n" + ",".join(row) + "\n")
    emo_header = ",".join(["URL"] + list(emotionet.EMOTIONET_EMOTIONS))
    onehot = {name: i for i, name in enumerate(emotionet.EMOTIONET_EMOTIONS)}

    def emo(url, *on):
        return ",".join([url] + ["1" if i in [onehot[o] for o in on] else "0" for i in range(16)])
    write(root / "lists" / "emotions.csv", "\n".join([
        emo_header, emo("http://e/e1.jpg", "happily_surprised"), emo("http://e/e2.jpg", "sad"),
        emo("http://e/e3.jpg", "awed", "happy")]) + "\n")

    return ns(au_train=["lists/train.txt"], au_validation=["lists/optimization.csv"],
              emotion_test=["lists/emotions.csv"], images=imgs)


def test_emotionet_au_lists_and_emotion_set(tmp_path):
    root, out = tmp_path / "EmotioNet", tmp_path / "out"
    args = _emotionet(root)
    m = build(emotionet.parse(root, args), out, "emotionet")
    recs = records(out)
    r1 = recs[("au", "img1.jpg")]
    exp1, mask = np.zeros(17), taxonomy.au_mask_for(emotionet.CHALLENGE_AUS).copy()
    exp1[[AU[1], AU[12]]] = 1
    mask[AU[2]] = 0                                                                # 999 → not annotated
    assert np.array_equal(r1[data.AU], exp1) and np.array_equal(r1[data.AU_MASK], mask)
    r2 = recs[("au", "sub/img2.jpg")]
    assert r2[data.AU][AU[4]] == 1 and r2[data.AU][AU[26]] == 1 and r2[data.AU_MASK].sum() == 11
    r3 = recs[("au", "img3.jpg")]                                                  # header table, URL with '
    assert r3["split"] == "test" and r3[data.AU_MASK].sum() == 2 and r3[data.AU][AU[5]] == 1
    assert r3[data.AU][AU[9]] == 0 and r3[data.AU_MASK][AU[9]] == 1
    assert {r1["split"], r2["split"]} <= {"train", "validation"}                  # 85/15 of the train list
    assert recs[("compound", "e1.jpg")][data.COMPOUND] == taxonomy.compound_index("happily surprised")
    assert recs[("compound", "e1.jpg")][data.EXPR] == -1
    assert recs[("expr", "e2.jpg")][data.EXPR] == 5 and recs[("expr", "e2.jpg")]["split"] == "test"
    assert task_counts(m, "emotionet-compound") == {"test": {"expr": 1, "compound": 1}}
    assert m.skips() == {"missing_file": 1, "ambiguous_file": 1, "invalid_label": 1}


def test_emotionet_needs_a_list():
    with pytest.raises(ValueError, match="--au-train"):
        list(emotionet.parse(Path("."), ns()))


# === DISFA ===

def _disfa(root: Path) -> None:
    labels = root / "ActionUnit_Labels"
    intensities = {1: [0, 1, 2, 3, 5, 0, 1], 12: [2, 2, 0, 0, 0, 0, 0]}
    for au in disfa.AUS:
        lines = [f"{t},{v}" for t, v in enumerate(intensities.get(au, [0] * 7), 1)]
        if au == 2:
            lines[3] = "4,x"                                         # an unreadable intensity at frame 4
        write(labels / "SN001" / f"SN001_au{au}.txt", "\n".join(lines) + "\n")
        write(labels / "SN002" / f"SN002_au{au}.txt", "1,0\n2,0\n")
        write(labels / "SN003" / f"SN003_au{au}.txt", "1,3\n2,0\n3,1\n")
    avi(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi", 6)      # label line 7 is past the end
    garbage(root / "Videos_LeftCamera" / "LeftVideoSN002_comp.avi")
    avi(root / "Videos_LeftCamera" / "LeftVideoSN003_comp.avi", 3)
    avi(root / "Videos_RightCamera" / "RightVideoSN003_comp.avi", 3)


def test_disfa_binarises_at_two_and_aligns_label_lines_with_frames(tmp_path):
    root, out = tmp_path / "DISFA", tmp_path / "out"
    _disfa(root)
    m = build(disfa.parse(root, ns(camera="left", test_subjects="SN003", val_fraction=0.0)), out, "disfa")
    recs = records(out)
    # SN001 AU1 intensities 0,1,2,3,5,0 → 0,0,1,1,1,0 ; AU12 2,2,0,… → 1,1,0,…
    for t, (au1, au12) in enumerate([(0, 1), (0, 1), (1, 0), (1, 0), (1, 0), (0, 0)], 1):
        rec = recs[("au", f"SN001/left/{t:05d}")]
        assert (rec[data.AU][AU[1]], rec[data.AU][AU[12]]) == (au1, au12), t
        assert abs(mean_grey(rec) - 20 * t) < 4, t                   # record t is video frame t
        assert rec[data.AU_MASK].sum() == (11 if t == 4 else 12)     # AU2 unreadable at frame 4
        assert rec["split"] == "train"                              # --val-fraction 0: no validation
    assert recs[("au", "SN003/left/00001")][data.AU][AU[1]] == 1 and recs[("au", "SN003/left/00001")]["split"] == "test"
    assert recs[("au", "SN003/left/00003")][data.AU][AU[1]] == 0
    assert ("au", "SN003/right/00001") not in recs
    assert task_counts(m, "disfa") == {"train": {"au": 6}, "test": {"au": 3}}
    assert m.skips() == {"past_video_end": 1, "unreadable_video": 1, "dropped_invalid_label": 1}

    both = only(disfa.parse(root, ns(camera="both", test_subjects="SN003")))
    assert {i.group for i in both} == {"SN001/left", "SN003/left", "SN003/right"}
    assert {i.split for i in both if i.group.startswith("SN003")} == {"test"}
    assert len({i.split for i in both if i.group.startswith("SN001")}) == 1    # one subject, one side


# === BP4D / BP4D+ ===

def _bp4d(root: Path) -> None:
    occ = root / "AUCoding" / "AU_OCC"
    cols = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
    header = ",".join(["0"] + [str(c) for c in cols]) + "\n"

    def row(frame, **v):
        return ",".join([str(frame)] + [str(v.get(f"au{c}", 0)) for c in cols]) + "\n"
    write(occ / "F001_T1.csv", header + row(10, au1=1, au12=1, au24=1) + row(11, au2=9, au14=1)
          + "".join([row(12).replace(",0", ",9")]) + row(13, au4=1))
    write(occ / "M001_T2.csv", header + row(1, au23=1, au15=5) + row(2, au17=1))
    for f in (10, 11, 12):
        jpeg(root / "Sequences" / "F001" / "T1" / f"{f:02d}.jpg", seed=f)    # 13 has no image
    for f in (1, 2):
        jpeg(root / "Sequences" / "M001" / "T2" / f"{f:04d}.jpg", seed=f)


def test_bp4d_occurrence_csv_with_varying_padding(tmp_path):
    root, out = tmp_path / "BP4D", tmp_path / "out"
    _bp4d(root)
    m = build(bp4d.parse(root, ns(dataset="bp4d", test_subjects="M001")), out, "bp4d")
    recs = records(out)
    fera15 = taxonomy.au_mask_for((1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23))
    r10 = recs[("au", "F001/T1/10")]
    assert np.array_equal(r10[data.AU_MASK], fera15) and r10[data.AU][AU[24]] == 0   # AU24 not in FERA 2015
    assert r10[data.AU][AU[1]] == 1 and r10[data.AU][AU[12]] == 1 and r10[data.AU].sum() == 2
    r11 = recs[("au", "F001/T1/11")]
    assert r11[data.AU_MASK][AU[2]] == 0 and r11[data.AU][AU[14]] == 1                 # 9 = not coded
    assert ("au", "F001/T1/12") not in recs                                           # all 9: no label
    m1 = recs[("au", "M001/T2/1")]
    assert m1["split"] == "test" and m1[data.AU][AU[23]] == 1 and m1[data.AU_MASK][AU[15]] == 0
    assert r10["split"] == "train"
    assert m.skips() == {"missing_file": 1, "dropped_invalid_label": 1}
    assert task_counts(m, "bp4d") == {"train": {"au": 2}, "test": {"au": 2}}


def test_bp4dplus_frames_from_subject_zips_with_offset(tmp_path):
    root = tmp_path / "BP4D+"
    cols = list(range(1, 35))
    write(root / "AUCoding" / "AU_OCC" / "F001_T1.csv",
          ",".join(["0"] + [str(c) for c in cols]) + "\n"
          + ",".join(["1"] + ["1" if c in (1, 2, 6) else "0" for c in cols]) + "\n"
          + ",".join(["2"] + ["0"] * 34) + "\n")
    (root / "2D+3D").mkdir(parents=True)
    with zipfile.ZipFile(root / "2D+3D" / "F001.zip", "w") as z:
        for n in (0, 1):
            z.write(jpeg(tmp_path / f"{n}.jpg", seed=n, size=(12, 12 + n)), f"F001/T1/{n:04d}.jpg")
    items = only(bp4d.parse(root, ns(dataset="bp4dplus", frame_offset=-1, test_subjects="")))
    assert [i.frame for i in items] == [1, 2] and items[0].database == "bp4dplus"
    assert items[0].load().shape == (12, 12, 3) and items[1].load().shape == (12, 13, 3)   # frame 1 ↔ 0000.jpg
    assert np.array_equal(items[0].au_mask, taxonomy.au_mask_for((1, 4, 6, 7, 10, 12, 14, 15, 17, 23)))
    assert items[0].au[AU[1]] == 1 and items[0].au[AU[6]] == 1 and items[0].au[AU[2]] == 0  # AU2 not FERA 2017


def grey_jpeg(path: Path, level: int) -> Path:
    """A uniformly grey JPEG: its decoded mean tells which image a label landed on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((12, 12, 3), level, np.uint8))
    return path


def bp4dplus_root(tmp_path: Path, images: tuple[int, ...], zipped: bool = True) -> Path:
    """BP4D+ with one session F001/T1: CSV frames 1, 2, 3 coded AU1, AU4, AU6 alone; image n grey 40·(n+1)."""
    root = tmp_path / "BP4D+"
    cols = list(range(1, 35))
    write(root / "AUCoding" / "AU_OCC" / "F001_T1.csv", ",".join(["0"] + [str(c) for c in cols]) + "\n" + "".join(
        ",".join([str(f)] + ["1" if c == au else "0" for c in cols]) + "\n" for f, au in ((1, 1), (2, 4), (3, 6))))
    frames = root / "2D+3D"
    frames.mkdir(parents=True)
    if zipped:
        with zipfile.ZipFile(frames / "F001.zip", "w") as z:
            for n in images:
                z.write(grey_jpeg(tmp_path / "src" / f"{n}.jpg", 40 * (n + 1)), f"F001/T1/{n:04d}.jpg")
    else:
        for n in images:
            grey_jpeg(frames / "F001" / "T1" / f"{n:04d}.jpg", 40 * (n + 1))
    return root


def frame_to_image_and_au(items) -> dict[int, tuple[int, int]]:
    """CSV frame → (number of the image it loaded, the one AU labelled 1)."""
    return {i.frame: (round(i.load().mean() / 40) - 1, taxonomy.AUS[int(np.argmax(i.au))]) for i in items}


def test_bp4dplus_offset_read_from_the_files_for_both_numberings(tmp_path, caplog):
    caplog.set_level("INFO", logger="tfrecords_tools.bp4d")
    # The documented layout: zip entries 0000–0002 for CSV frames 1–3 (0000 exists, no image 3) → −1.
    recorded: dict = {}
    items = only(bp4d.parse(bp4dplus_root(tmp_path / "a", (0, 1, 2)),
                            ns(dataset="bp4dplus", test_subjects="", parser_options=recorded)))
    assert frame_to_image_and_au(items) == {1: (0, 1), 2: (1, 4), 3: (2, 6)}   # frame f ↔ image f−1
    assert recorded["frame_offset"] == -1 and recorded["frame_offset_source"].startswith("read from the files")
    assert "image number = CSV frame -1 (read from the files" in caplog.text
    # Numbered like the CSV (folders 0001–0003, no 0000) → 0.
    items = only(bp4d.parse(bp4dplus_root(tmp_path / "b", (1, 2, 3), zipped=False),
                            ns(dataset="bp4dplus", test_subjects="", parser_options=recorded)))
    assert frame_to_image_and_au(items) == {1: (1, 1), 2: (2, 4), 3: (3, 6)}   # frame f ↔ image f
    assert recorded["frame_offset"] == 0
    # Images 0000–0003 cover both readings: the files do not tell, so the documented BP4D+ layout's −1.
    items = only(bp4d.parse(bp4dplus_root(tmp_path / "c", (0, 1, 2, 3)),
                            ns(dataset="bp4dplus", test_subjects="", parser_options=recorded)))
    assert frame_to_image_and_au(items) == {1: (0, 1), 2: (1, 4), 3: (2, 6)}
    assert recorded["frame_offset"] == -1 and "documented layout" in recorded["frame_offset_source"]


def test_bp4dplus_explicit_offset_overrides_and_a_missing_frame_names_the_zip_entry(tmp_path):
    root = bp4dplus_root(tmp_path, (0, 1, 2))
    parsed = list(bp4d.parse(root, ns(dataset="bp4dplus", test_subjects="", frame_offset=0)))
    assert frame_to_image_and_au(only(parsed)) == {1: (1, 1), 2: (2, 4)}        # what the user asked for
    assert [(s.reason, s.detail) for s in only(parsed, Skip)] == [
        ("missing_file", f"{root / '2D+3D' / 'F001.zip'}:F001/T1/0003.jpg (CSV frame 3, offset +0)")]


def test_bp4dplus_build_records_the_chosen_offset_in_the_manifest(tmp_path):
    from tfrecords_tools import build as cli

    root, out = bp4dplus_root(tmp_path, (0, 1, 2)), tmp_path / "out"
    assert cli.main(["bp4dplus", "--root", str(root), "--out", str(out), "--align", "none",
                     "--test-subjects", "F001", "--writer", "inline"]) == 0
    parser = Manifest.load(out).data["builds"]["bp4dplus"]["options"]["parser"]
    assert parser["frame_offset"] == -1 and parser["frame_offset_source"].startswith("read from the files")
    recs = records(out)
    assert {rid: round(mean_grey(r) / 40) - 1 for (_, rid), r in recs.items()} == {
        "F001/T1/1": 0, "F001/T1/2": 1, "F001/T1/3": 2}
    assert recs[("au", "F001/T1/2")][data.AU][AU[4]] == 1 and recs[("au", "F001/T1/2")][data.AU].sum() == 1


# === Aff-Wild ===

def _affwild(root: Path) -> None:
    avi(root / "videos" / "train" / "101.avi", 5)
    avi(root / "videos" / "test" / "202.avi", 2)
    garbage(root / "videos" / "train" / "303.avi")
    ann = root / "annotations"
    write(ann / "train" / "valence" / "101.txt", "0.1\n0.2\nnan\n0.4\n0.5\n0.6\n0.7\n")   # 7 lines, video 5
    write(ann / "train" / "arousal" / "101.txt", "-0.1\n-0.2\n-0.3\n-0.4\n-0.5\n-0.6\n")
    write(ann / "test" / "valence" / "202.txt", "0.9\n0.8\n")
    write(ann / "test" / "arousal" / "202.txt", "0.7\n")                                  # shorter: 1 frame
    write(ann / "train" / "valence" / "303.txt", "0.1\n")
    write(ann / "train" / "arousal" / "303.txt", "0.1\n")


def test_affwild_uses_the_shorter_of_labels_and_video(tmp_path):
    root, out = tmp_path / "Aff-Wild", tmp_path / "out"
    _affwild(root)
    m = build(affwild.parse(root, ns()), out, "affwild")
    recs = records(out)
    for k, (v, a) in {1: (0.1, -0.1), 2: (0.2, -0.2), 4: (0.4, -0.4), 5: (0.5, -0.5)}.items():
        rec = recs[("va", f"101/{k:05d}")]
        assert np.allclose(rec[data.VA], [v, a]) and abs(mean_grey(rec) - 20 * k) < 4 and rec["split"] == "train"
    assert np.allclose(recs[("va", "202/00001")][data.VA], [0.9, 0.7]) and recs[("va", "202/00001")]["split"] == "test"
    assert task_counts(m, "affwild") == {"train": {"va": 4}, "test": {"va": 1}}
    assert m.skips() == {"nan_label": 1, "past_video_end": 2, "unpaired_label": 1, "unreadable_video": 1}


# === AFEW ===

def _afew(root: Path) -> None:
    avi(root / "Train_AFEW" / "Angry" / "000000001.avi", 4)
    avi(root / "Train_AFEW" / "Happy" / "000000002.avi", 3)
    avi(root / "Train_AFEW" / "AlignedFaces_LBPTOP_Points" / "000000009.avi", 3)          # not a class
    avi(root / "Val_AFEW" / "Sad" / "000000003.avi", 2)
    garbage(root / "Val_AFEW" / "Fear" / "000000004.avi")


def test_afew_frames_carry_the_clip_label(tmp_path):
    root, out = tmp_path / "AFEW", tmp_path / "out"
    _afew(root)
    m = build(afew.parse(root, ns(every=2)), out, "afew")
    recs = records(out)
    ids = sorted(i for _, i in recs)
    assert ids == ["Train_AFEW/Angry/000000001/00001", "Train_AFEW/Angry/000000001/00003",
                   "Train_AFEW/Happy/000000002/00001", "Train_AFEW/Happy/000000002/00003",
                   "Val_AFEW/Sad/000000003/00001"]
    angry = recs[("expr", "Train_AFEW/Angry/000000001/00003")]
    assert angry[data.EXPR] == 1 and angry[data.GROUP] == b"000000001" and abs(mean_grey(angry) - 60) < 4
    assert recs[("expr", "Train_AFEW/Happy/000000002/00001")][data.EXPR] == 4
    sad = recs[("expr", "Val_AFEW/Sad/000000003/00001")]
    assert sad[data.EXPR] == 5 and sad["split"] == "test"
    assert {recs[("expr", i)]["split"] for i in ids[:4]} == {"train", "validation"}    # 85/15 by clip
    assert m.skips() == {"unreadable_video": 1}


def test_parsers_yield_only_items_and_skips_that_the_writer_accepts(tmp_path):
    _rafdb(tmp_path / "r")
    _affwild2(tmp_path / "a")
    for parsed in (rafdb.parse(tmp_path / "r", ns()), affwild2.parse(tmp_path / "a", ns())):
        for x in parsed:
            assert isinstance(x, (Item, Skip))
            if isinstance(x, Item):
                assert x.validate() is None, x


# === Through the CLI ===

def test_cli_builds_rafdb_and_passes_parser_flags(tmp_path, capsys):
    from tfrecords_tools import build as cli
    _rafdb(tmp_path / "RAF-DB")
    avi(tmp_path / "AFEW" / "Train_AFEW" / "Disgust" / "000000007.avi", 5)
    out = tmp_path / "out"
    inline = ["--writer", "inline"]          # the Beam writer's CLI is tested in test_beam.py
    assert cli.main(["rafdb", "--root", str(tmp_path / "RAF-DB"), "--out", str(out), "--align", "none"] + inline) == 0
    assert cli.main(["rafdb-compound", "--root", str(tmp_path / "RAF-DB"), "--out", str(out),
                     "--align", "none"] + inline) == 0
    assert cli.main(["afew", "--root", str(tmp_path / "AFEW"), "--out", str(out), "--align", "none",
                     "--every", "3", "--val-fraction", "0"] + inline) == 0
    m = Manifest.load(out)
    assert task_counts(m, "rafdb") == {"train": {"expr": 3}, "test": {"expr": 2}}
    assert task_counts(m, "rafdb-compound") == {"train": {"compound": 2}, "test": {"compound": 1}}
    assert task_counts(m, "afew") == {"train": {"expr": 2}}                       # frames 1 and 4 of 5
    recs = records(out)
    assert recs[("expr", "Train_AFEW/Disgust/000000007/00004")][data.EXPR] == 2
    assert recs[("expr", "basic/train_00001.jpg")][data.EXPR] == 4
    assert "afew: 2 records" in capsys.readouterr().out


def test_cli_wrong_layout_is_one_line_not_a_traceback(tmp_path, capsys):
    from tfrecords_tools import build as cli
    (tmp_path / "not-bp4d").mkdir()                  # a folder with no AUCoding/AU_OCC/ inside
    assert cli.main(["bp4d", "--root", str(tmp_path / "not-bp4d"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read bp4d under") and "Traceback" not in err


def test_emotionet_tables_xlsx_header_and_one_url_column(tmp_path):
    import pandas as pd
    frame = pd.DataFrame([["http://h/a.jpg'", "http://o'", "1", "999"]], columns=["URL", "URL orig", "'AU 1'", "'AU 2'"])
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    columns, rows = emotionet.read_table(tmp_path / "t.xlsx", "au")
    assert columns == ["url", "urlorig", "au1", "au2"] and rows == [["http://h/a.jpg'", "http://o'", "1", "999"]]
    write(tmp_path / "one.txt", "\t".join(["http://h/b.jpg"] + ["0"] * 59 + ["1"]) + "\n")   # no orig_url
    columns, rows = emotionet.read_table(tmp_path / "one.txt", "au")
    assert columns[:2] == ["url", "au1"] and columns[-1] == "au60" and len(columns) == 61
    assert emotionet.clean_url(rows[0][0] + "'") == "http://h/b.jpg"


def test_afew_partition_names():
    assert [afew.partition_of(n) for n in ("Train_AFEW", "Val_AFEW", "AFEW_val", "Test_AFEW", "Angry")] \
        == ["train", "validation", "validation", None, None]
