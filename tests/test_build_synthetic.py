"""The synthetic builder through the CLI, and the cached test-bed (built once, reused, one builder at a time)."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import data, synthetic, taxonomy, testbed
from fbn_keras.manifest import Manifest
from tfrecords_tools import build
from tfrecords_tools import synthetic as synthetic_builder

SCALE = 0.005


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    assert build.main(["synthetic", "--out", str(out), "--scale", str(SCALE), "--shard-size", "16",
                       "--writer", "inline"]) == 0
    return out


def test_every_database_and_split_is_built_with_its_own_labels(built):
    manifest = Manifest.load(built)
    assert manifest.databases() == sorted(synthetic.SYNTHETIC_DATABASES)
    for name in synthetic.SYNTHETIC_DATABASES:
        allowed = set(taxonomy.database(name).tasks)
        for split in ("train", "validation", "test"):
            entry = manifest.splits(name)[split]
            # --scale multiplies the generator's default size (at least one image).
            expected = max(1, round(synthetic.DEFAULT_SIZES[name][split] * SCALE))
            assert entry["complete"] and entry["items"] == expected, (name, split)
            assert entry["records"] + sum(entry["skips"].values()) == expected
            assert set(entry["skips"]) <= {"no_usable_label"}
            held = {t for t, n in entry["tasks"].items() if n}
            assert held <= allowed, (name, split, held)


@pytest.mark.parametrize("name", ["synth-disfa", "synth-bp4d", "synth-emotionet"])
def test_au_databases_mark_exactly_their_aus(built, name):
    shards = Manifest.load(built).shards("au", "train", [name])
    records = [data.decode_example(raw) for s in shards for raw in tf.data.TFRecordDataset(str(built / s["file"]))]
    assert records
    expected = taxonomy.au_mask_for(taxonomy.DATABASES[taxonomy.SYNTHETIC_OF[name]].aus)
    for rec in records:
        np.testing.assert_array_equal(rec[data.AU_MASK].numpy(), expected)
        assert rec[data.VA_MASK].numpy() == 0 and rec[data.EXPR].numpy() == -1


def test_records_carry_the_generators_labels(built):
    n = max(1, round(synthetic.DEFAULT_SIZES["synth-rafdb"]["test"] * SCALE))
    samples = list(synthetic.generate("synth-rafdb", "test", n=n, seed=0))
    batches = list(data.make_eval_dataset(built, "synth-rafdb", "test", batch_size=64))
    ids = [i.decode() for _, labels in batches for i in labels["id"].numpy()]
    exprs = [int(e) for _, labels in batches for e in labels["expr"].numpy()]
    assert ids == [s.image_id for s in samples]
    assert exprs == [s.expr for s in samples]
    # Pixels survive the JPEG round trip (mean absolute error of a few grey levels at most).
    image = (batches[0][0][0].numpy() + 1) * 127.5
    assert np.abs(image - samples[0].image).mean() < 6


def test_testbed_is_built_once_and_reused(tmp_path, monkeypatch):
    from fbn_keras.records import synthetic as synthetic_items
    from fbn_keras.records import writer

    calls = []
    real = writer.write_shards

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "write_shards", counting)
    monkeypatch.setattr(synthetic_items, "sizes", lambda scale, databases=None: {("synth-rafdb", "train"): 3,
                                                                               ("synth-affwild", "test"): 2})
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(testbed.ensure_synthetic_testbed(tmp_path, 0.5, 3)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = tmp_path / f"synthetic-{testbed.VERSION}-s0.5-seed3"
    assert paths == [expected, expected] and len(calls) == 1
    manifest_file = expected / "manifest.json"
    stamp = manifest_file.stat().st_mtime_ns
    assert testbed.ensure_synthetic_testbed(tmp_path, 0.5, 3) == expected
    assert len(calls) == 1 and manifest_file.stat().st_mtime_ns == stamp
    assert data.train_sizes(expected) == {"va": 0, "au": 0, "expr": 3}
    monkeypatch.setenv("FBN_CACHE", str(tmp_path / "env"))
    assert testbed.testbed_dir(scale=1, seed=0) == tmp_path / "env" / f"synthetic-{testbed.VERSION}-s1-seed0"
