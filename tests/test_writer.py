"""The shard writer and the build CLI: planted bad inputs, manifest counts, strict mode, atomic and resumable writing."""

import json
import sys
import types

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import data, taxonomy
from fbn_keras.manifest import Manifest
from tfrecords_tools import build
from tfrecords_tools.items import Item, Skip
from tfrecords_tools.writer import StrictSkipError, make_aligner, write_shards

DISFA_MASK = taxonomy.au_mask_for(taxonomy.DATABASES["disfa"].aus)


def _jpeg(path, value: int, size=(40, 52)) -> None:
    cv2.imwrite(str(path), np.full(size + (3,), value, np.uint8))


def _strict_loader(path):
    """A parser-style loader: FileNotFoundError when missing, OSError from Pillow when truncated."""
    from PIL import Image

    def load():
        with Image.open(path) as im:       # FileNotFoundError for a missing file
            im.load()                      # OSError "image file is truncated"
            return np.asarray(im.convert("RGB"))
    return load


def _read(path) -> list[dict]:
    """Every record of one shard file, decoded to numpy."""
    out = []
    for raw in tf.data.TFRecordDataset(str(path)):
        f = data.decode_example(raw)
        out.append({k: v.numpy() for k, v in f.items()})
    return out


@pytest.fixture
def planted(tmp_path):
    """Two good images, a truncated JPEG and a missing file on disk, and the items that name them."""
    src = tmp_path / "src"
    src.mkdir()
    _jpeg(src / "good1.jpg", 100)
    _jpeg(src / "good2.jpg", 180)
    _jpeg(src / "bad.jpg", 50)
    raw = (src / "bad.jpg").read_bytes()
    (src / "bad.jpg").write_bytes(raw[: len(raw) // 2])      # truncated
    au = np.zeros(taxonomy.NUM_AUS, np.float32)
    au[taxonomy.au_index(12)] = 1.0
    items = [
        Item("dbx", "train", "good1.jpg", _strict_loader(src / "good1.jpg"), aligned=True, va=(0.5, -0.25), expr=4),
        Item("dbx", "train", "good2.jpg", _strict_loader(src / "good2.jpg"), group="s2", frame=7, aligned=True,
             au=au, au_mask=DISFA_MASK),
        Item("dbx", "test", "good1c.jpg", _strict_loader(src / "good1.jpg"), aligned=True, compound=3),
        Item("dbx", "train", "bad.jpg", _strict_loader(src / "bad.jpg"), aligned=True, expr=1),
        Item("dbx", "train", "gone.jpg", _strict_loader(src / "gone.jpg"), aligned=True, expr=1),
        Item("dbx", "train", "nan.jpg", _strict_loader(src / "good1.jpg"), aligned=True, va=(float("nan"), 0.0)),
        Item("dbx", "train", "range.jpg", _strict_loader(src / "good1.jpg"), aligned=True, expr=9),
        Item("dbx", "dev", "split.jpg", _strict_loader(src / "good1.jpg"), aligned=True, expr=2),
        Skip("unreadable_video", "clip.avi"),
    ]
    return items


def test_planted_bad_inputs_are_counted_and_good_ones_written(tmp_path, planted):
    out = tmp_path / "out"
    manifest = write_shards(planted, out, "dbx", aligner="auto")
    train = manifest.splits("dbx")["train"]
    # 6 train items: 2 written, 4 skipped, each by its own reason.
    assert train["items"] == 6 and train["records"] == 2
    assert train["skips"] == {"corrupt_image": 1, "missing_file": 1, "nan_label": 1, "label_out_of_range": 1}
    assert train["tasks"] == {"va": 1, "au": 1, "expr": 1, "compound": 0, "intensity": 0}
    assert manifest.data["builds"]["dbx"]["skips"] == {"bad_split": 1, "unreadable_video": 1}
    assert manifest.skips()["missing_file"] == 1 and sum(manifest.skips().values()) == 6
    assert "gone.jpg" in manifest.splits("dbx")["train"]["skip_examples"]["missing_file"][0]
    assert manifest.splits("dbx")["test"]["tasks"]["compound"] == 1

    # The va+expr record is in both folders; the AU record only in au/.
    (va_rec,) = _read(out / "va" / "dbx-train-00000-of-00001.tfrecord")
    (expr_rec,) = _read(out / "expr" / "dbx-train-00000-of-00001.tfrecord")
    (au_rec,) = _read(out / "au" / "dbx-train-00000-of-00001.tfrecord")
    assert va_rec[data.ID] == expr_rec[data.ID] == b"good1.jpg"
    np.testing.assert_allclose(va_rec[data.VA], [0.5, -0.25])
    assert va_rec[data.VA_MASK] == 1 and va_rec[data.EXPR] == 4 and va_rec[data.COMPOUND] == -1
    assert au_rec[data.ID] == b"good2.jpg" and au_rec[data.GROUP] == b"s2" and au_rec[data.FRAME] == 7
    assert au_rec[data.VA_MASK] == 0 and au_rec[data.EXPR] == -1
    np.testing.assert_array_equal(au_rec[data.AU_MASK], DISFA_MASK)
    assert au_rec[data.AU][taxonomy.au_index(12)] == 1.0 and au_rec[data.AU].sum() == 1.0
    # The stored image is the 96×96 crop of a flat grey 180 (JPEG keeps it within a level or two).
    image = tf.io.decode_jpeg(au_rec[data.IMAGE]).numpy()
    assert image.shape == (96, 96, 3) and abs(image.mean() - 180) < 2
    (compound_rec,) = _read(out / "compound" / "dbx-test-00000-of-00001.tfrecord")
    assert compound_rec[data.COMPOUND] == 3

    on_disk = json.loads((out / "manifest.json").read_text())
    assert sorted(on_disk["complete_shards"]) == sorted([
        "va/dbx-train-00000-of-00001.tfrecord", "expr/dbx-train-00000-of-00001.tfrecord",
        "au/dbx-train-00000-of-00001.tfrecord", "compound/dbx-test-00000-of-00001.tfrecord"])


def test_strict_turns_a_skip_into_an_error_naming_the_item(tmp_path, planted):
    with pytest.raises(StrictSkipError, match="corrupt_image: dbx/train/bad.jpg"):
        write_shards(planted, tmp_path / "out", "dbx", strict=True)


def test_detect_finds_no_face_on_a_blank_image(tmp_path):
    blank = Item("dbx", "train", "blank.png", lambda: np.full((120, 120, 3), 128, np.uint8), expr=0)
    manifest = write_shards([blank], tmp_path / "out", "dbx", aligner="detect")
    assert manifest.splits("dbx")["train"]["skips"] == {"no_face": 1}
    assert manifest.splits("dbx")["train"]["records"] == 0


def test_align_none_centre_crops_and_landmarks_align(tmp_path):
    # A 60×100 image whose left and right 20-pixel bands are black: centre-crop keeps only the white middle.
    rgb = np.zeros((60, 100, 3), np.uint8)
    rgb[:, 20:80] = 255
    item = Item("dbx", "train", "x", lambda: rgb, landmarks=np.zeros((5, 2)), expr=0)
    crop = make_aligner("none", size=30)(rgb, item)
    assert crop.shape == (30, 30, 3) and crop.min() == 255
    # Five identical landmarks define no similarity: a counted skip, not a crash.
    manifest = write_shards([item], tmp_path / "out", "dbx", aligner="auto")
    assert manifest.splits("dbx")["train"]["skips"] == {"bad_landmarks": 1}


def _counting_items(n, loads, fail_after=None):
    """n va items; `loads` collects the ids loaded; raise after `fail_after` items to simulate a crash."""
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise KeyboardInterrupt("simulated interruption")

        def load(i=i):
            loads.append(i)
            return np.full((96, 96, 3), 10 * i, np.uint8)
        yield Item("dbr", "train", f"img{i}", load, aligned=True, va=(i / 10, 0.0))


def test_interrupted_build_resumes_from_the_listed_chunks(tmp_path):
    out = tmp_path / "out"
    loads = []
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        write_shards(_counting_items(5, loads, fail_after=3), out, "dbr", shard_size=2)
    assert loads == [0, 1, 2]
    # Chunk 0 (items 0, 1) is committed; chunk 1 was half written and is only a temporary file.
    entry = Manifest.load(out).splits("dbr")["train"]
    assert entry["complete"] is False and entry["items"] == 2
    assert entry["chunks"]["va"] == [["va/dbr-train-chunk00000.tfrecord", 2]]
    assert (out / "va" / "dbr-train-chunk00001.tfrecord.tmp").exists()
    assert Manifest.load(out).shards("va", "train") == []           # readers see nothing yet
    (out / "va" / "dbr-train-chunk00007.tfrecord.tmp").write_bytes(b"half-written garbage")

    loads.clear()
    manifest = write_shards(_counting_items(5, loads), out, "dbr", shard_size=2)
    assert loads == [2, 3, 4]                                        # items 0 and 1 were not redone
    shards = manifest.shards("va", "train")
    assert [s["file"] for s in shards] == [f"va/dbr-train-{i:05d}-of-00003.tfrecord" for i in range(3)]
    assert [s["records"] for s in shards] == [2, 2, 1]
    ids = [r[data.ID] for s in shards for r in _read(out / s["file"])]
    assert ids == [b"img0", b"img1", b"img2", b"img3", b"img4"]
    assert sorted(p.name for p in (out / "va").iterdir()) == [s["file"][3:] for s in shards]

    # A finished build is not redone: nothing is loaded, the manifest is unchanged.
    before = (out / "manifest.json").read_text()
    loads.clear()
    write_shards(_counting_items(5, loads), out, "dbr", shard_size=2)
    assert loads == [] and (out / "manifest.json").read_text() == before


def test_two_builds_share_one_folder(tmp_path):
    out = tmp_path / "out"
    write_shards(_counting_items(2, []), out, "dbr")
    other = [Item("dbo", "test", "o", lambda: np.zeros((96, 96, 3), np.uint8), aligned=True, expr=2)]
    manifest = write_shards(other, out, "dbo")
    assert manifest.databases() == ["dbo", "dbr"]
    assert manifest.splits("dbr")["train"]["records"] == 2 and manifest.splits("dbo")["test"]["records"] == 1


@pytest.fixture
def fake_parser(monkeypatch):
    """Register a parser module 'fake' whose items come from `module.ITEMS`."""
    module = types.ModuleType("fbn_fake_parser")
    module.ITEMS = []
    module.add_arguments = lambda p: p.add_argument("--fake-flag", default="x")
    module.parse = lambda root, args: iter(module.ITEMS)
    monkeypatch.setitem(sys.modules, "fbn_fake_parser", module)
    monkeypatch.setitem(build.PARSERS, "fake", "fbn_fake_parser")
    return module


def test_cli_exit_status(tmp_path, fake_parser):
    argv = ["fake", "--root", str(tmp_path), "--align", "none", "--shard-size", "3", "--writer", "inline"]
    fake_parser.ITEMS = [Skip("missing_file", "a.jpg"),
                         Item("fake", "train", "n", lambda: np.zeros((8, 8, 3), np.uint8), va=(2.0, 0.0))]
    assert build.main(argv + ["--out", str(tmp_path / "none")]) == 1          # nothing could be written
    assert build.main(argv + ["--out", str(tmp_path / "strict"), "--strict"]) == 2
    fake_parser.ITEMS.append(Item("fake", "train", "ok", lambda: np.zeros((8, 8, 3), np.uint8), va=(0.1, 0.2)))
    assert build.main(argv + ["--out", str(tmp_path / "ok")]) == 0
    assert Manifest.load(tmp_path / "ok").splits("fake")["train"]["records"] == 1
    assert build.main(["fake", "--out", str(tmp_path / "x")]) == 2              # --root is required
    with pytest.raises(SystemExit, match="^2$"):       # argparse's usage error
        build.main(["nonesuch", "--out", str(tmp_path / "x")])


@pytest.mark.slow
def test_the_library_never_imports_the_builders_package():
    """Every fbn_keras module imports without tfrecords_tools (the builders import the library, not the reverse)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import importlib, pkgutil, sys, fbn_keras\n"
            "names = [m.name for m in pkgutil.walk_packages(fbn_keras.__path__, 'fbn_keras.')"
            " if not m.name.endswith('__main__')]\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "    assert 'tfrecords_tools' not in sys.modules, name\n"
            "print(len(names))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 30             # the walk found the package's modules
