"""Corrupt shards: training and evaluation stop with one line naming the shard, `tfrecords_tools.verify`
names exactly the bad shard, and `skip_corrupt_records` trains past it and counts what it skipped.

The TFRecord framing (uint64 length, masked CRC-32C of it, data, masked CRC-32C of the data) is walked
here with `struct` alone, so the offsets the tests expect do not come from the code under test.
"""

import json
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import data, shard_check, taxonomy
from fbn_keras.config import preset
from tfrecords_tools import verify
from tfrecords_tools.items import Item
from tfrecords_tools.writer import write_shards

BAD = "expr/synth-rafdb-train-00000-of-00002.tfrecord"     # 4 records (shard_size 4 of 6 items)
TINY = dict(image_size=32, batch_va=2, batch_au=2, batch_expr=2, shuffle_buffer=32, eval_every=0, log_every=1)


def _items():
    """Three databases of 6 training images each (one per task set, named like the test-bed's so that
    evaluation scores them) and 3 test images of synth-rafdb."""
    au = np.zeros(taxonomy.NUM_AUS, np.float32)
    au[taxonomy.au_index(12)] = 1.0
    mask = taxonomy.au_mask_for(taxonomy.DATABASES["bp4d"].aus)
    image = lambda v: (lambda: np.full((32, 32, 3), v, np.uint8))   # noqa: E731
    for i in range(6):
        yield Item("synth-affwild", "train", f"va{i}", image(20 * i), aligned=True, va=(i / 10, -i / 10))
        yield Item("synth-bp4d", "train", f"au{i}", image(20 * i), aligned=True, au=au, au_mask=mask)
        yield Item("synth-rafdb", "train", f"ex{i}", image(20 * i), aligned=True, expr=i)
    for i in range(3):
        yield Item("synth-rafdb", "test", f"t{i}", image(200), aligned=True, expr=6)


def record_starts(path) -> list[int]:
    """Byte offset of each record's header, from the framing's length fields."""
    blob, starts, position = path.read_bytes(), [], 0
    while position < len(blob):
        starts.append(position)
        position += 12 + struct.unpack("<Q", blob[position:position + 8])[0] + 4
    return starts


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    write_shards(_items(), out, "tiny", aligner="none", shard_size=4)
    return out


@pytest.fixture
def corrupt(clean, tmp_path):
    """A copy of `clean` with 20 bytes flipped inside the data of the 3rd record of one expr shard:
    (the copy, the bad shard's path, the offset TensorFlow reports: that record's data)."""
    out = tmp_path / "shards"
    shutil.copytree(clean, out)
    path = out / BAD
    third = record_starts(path)[2]
    blob = bytearray(path.read_bytes())
    for k in range(third + 12 + 10, third + 12 + 30):
        blob[k] ^= 0xFF
    path.write_bytes(bytes(blob))
    return out, path, third + 12


def test_masked_crc32c_matches_the_framing_tensorflow_writes(tmp_path):
    path = tmp_path / "x.tfrecord"
    payloads = [b"", b"a", bytes(range(256)) * 3]
    with tf.io.TFRecordWriter(str(path)) as w:
        for p in payloads:
            w.write(p)
    blob = path.read_bytes()
    for start, p in zip(record_starts(path), payloads):
        assert struct.unpack("<I", blob[start + 8:start + 12])[0] == shard_check.masked_crc32c(blob[start:start + 8])
        end = start + 12 + len(p)
        assert blob[start + 12:end] == p
        assert struct.unpack("<I", blob[end:end + 4])[0] == shard_check.masked_crc32c(p)
    assert shard_check.crc32c(b"123456789") == 0xE3069283        # the CRC-32C check value


def test_record_problem_at_tells_header_data_and_truncation_apart(tmp_path):
    path = tmp_path / "x.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(3):
            w.write(bytes([i]) * 100)
    clean = path.read_bytes()
    second = record_starts(path)[1]
    assert all(shard_check.record_problem_at(path, k) is None for k in (0, 12, second, second + 12))
    blob = bytearray(clean)
    blob[second + 50] ^= 1                                          # a data byte of record 2
    path.write_bytes(bytes(blob))
    assert shard_check.record_problem_at(path, second + 12) == f"corrupted record at {second + 12} (data checksum)"
    assert shard_check.record_problem_at(path, 12) is None          # record 1 is sound
    blob = bytearray(clean)
    blob[second + 2] ^= 1                                           # its length field
    path.write_bytes(bytes(blob))
    assert shard_check.record_problem_at(path, second) == f"corrupted record at {second} (length checksum)"
    path.write_bytes(clean[:second + 40])                           # cut inside record 2
    assert shard_check.record_problem_at(path, second) == f"truncated record at {second}"


def test_verify_names_exactly_the_corrupt_shard(clean, corrupt, capsys):
    assert verify.main([str(clean)]) == 0
    assert capsys.readouterr().out.strip() == "7 shards, 21 records read: 0 bad"   # 2+2+2 train, 1 test
    out, path, offset = corrupt
    assert verify.main([str(out)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[:-1] == [f"BAD {path}: corrupted record at {offset} (data checksum)"]
    assert lines[-1].startswith("7 shards, ") and ": 1 bad" in lines[-1]
    # A shard that reads cleanly but holds fewer records than the manifest lists is bad too.
    manifest = json.loads((clean / "manifest.json").read_text())
    manifest["databases"]["synth-affwild"]["splits"]["train"]["shards"]["va"][1]["records"] += 1
    short = out.parent / "short"
    shutil.copytree(clean, short)
    (short / "manifest.json").write_text(json.dumps(manifest))
    assert verify.main([str(short)]) == 1
    assert "BAD " + str(short / "va/synth-affwild-train-00001-of-00002.tfrecord") + ": holds 2 records, the manifest lists 3" \
        in capsys.readouterr().out
    assert verify.main([str(out.parent / "nothing")]) == 2


def test_training_stops_with_one_line_naming_the_shard_and_offset(corrupt, tmp_path):
    from fbn_keras.train import train

    out, path, offset = corrupt
    with pytest.raises(shard_check.CorruptShardError, match="verify") as err:
        train(preset("tiny", steps=2, **TINY), out, tmp_path / "run", verbose=False)
    message = str(err.value)
    assert "\n" not in message
    assert f"Corrupt TFRecord shard {path}: corrupted record at {offset}" in message
    assert f"python -m tfrecords_tools.verify {out}" in message and "--skip-corrupt-records" in message


def test_evaluation_stops_with_one_line_naming_the_shard(corrupt):
    from fbn_keras.evaluate import predict_database
    from fbn_keras.model import build_facebehaviornet

    out, path, offset = corrupt
    model = build_facebehaviornet(preset("tiny", **TINY))
    with pytest.raises(shard_check.CorruptShardError, match=f"shard {path}: corrupted record at {offset}") as err:
        predict_database(model, out, "synth-rafdb", "train")
    assert "\n" not in str(err.value) and "evaluating synth-rafdb/train" in str(err.value)


def test_evaluation_input_can_skip_past_the_corrupt_record_and_count_it(corrupt):
    out, path, _ = corrupt
    shard_check.SKIPPED.reset()
    ids = [i.decode() for _, labels in data.make_eval_dataset(out, "synth-rafdb", "train", skip_corrupt=True)
           for i in labels["id"].numpy()]
    # Shard 0 holds ex0–ex3 (3rd record corrupt: ex0, ex1 read), shard 1 holds ex4, ex5.
    assert ids == ["ex0", "ex1", "ex4", "ex5"]
    assert shard_check.SKIPPED.to_dict() == {"skipped_records": 2, "shards": {str(path): {
        "records": 4, "read": 2, "short_passes": 1, "skipped": 2}}}


def test_train_and_evaluate_commands_exit_1_with_one_error_line(corrupt, tmp_path, caplog):
    from fbn_keras import evaluate, train
    from fbn_keras.model import build_facebehaviornet

    out, path, offset = corrupt
    flags = ["--preset", "tiny", "--steps", "2", "--image-size", "32", "--batch-va", "2", "--batch-au", "2",
             "--batch-expr", "2", "--eval-every", "0", "--no-eval"]
    assert train.main(["--data", str(out), "--out", str(tmp_path / "run"), *flags]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert errors[0].startswith(f"Corrupt TFRecord shard {path}: corrupted record at {offset}")
    caplog.clear()
    build_facebehaviornet(preset("tiny", **TINY)).save(tmp_path / "model.keras")
    assert evaluate.main([str(tmp_path / "model.keras"), "--data", str(out), "--split", "train"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and f"shard {path}: corrupted record at {offset}" in errors[0], errors


def test_skip_corrupt_records_trains_past_the_shard_and_counts_the_skips(corrupt, tmp_path):
    from fbn_keras.train import train

    out, path, _ = corrupt
    run = tmp_path / "run"
    result = train(preset("tiny", steps=3, skip_corrupt_records=True, **TINY), out, run, verbose=False)
    assert result.step == 3 and (run / "model.keras").exists()
    written = json.loads((run / shard_check.SKIPPED_FILE).read_text())
    assert list(written["shards"]) == [str(path)]
    entry = written["shards"][str(path)]
    # Records 1–2 of 4 read, 3 (corrupt) and 4 (after it: nothing to resync on) skipped, on every pass.
    assert (entry["records"], entry["read"]) == (4, 2)
    assert entry["short_passes"] >= 1 and entry["skipped"] == 2 * entry["short_passes"]
    assert written["skipped_records"] == entry["skipped"]
    assert np.isfinite(result.last_losses["expr"]) and result.last_losses["expr"] > 0   # expr batches still came
