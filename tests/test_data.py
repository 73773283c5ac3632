"""Record parsing and the training/evaluation input, on tiny shards written by the writer."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fbn_keras import config as fbn_config
from fbn_keras import data, taxonomy
from tfrecords_tools.items import Item
from tfrecords_tools.writer import write_shards

BP4D_MASK = taxonomy.au_mask_for(taxonomy.DATABASES["bp4d"].aus)


def _image(value):
    return lambda: np.full((96, 96, 3), value, np.uint8)


def _items():
    """Three databases: VA only (6 train), AU only (6 train), VA+EXPR (6 train, 3 test); grey level = 10·i."""
    au = np.zeros(taxonomy.NUM_AUS, np.float32)
    au[taxonomy.au_index(6)] = 1.0
    for i in range(6):
        yield Item("dbva", "train", f"va{i}", _image(10 * i), aligned=True, va=(i / 10, -i / 10))
        yield Item("dbau", "train", f"au{i}", _image(10 * i), aligned=True, au=au, au_mask=BP4D_MASK)
        yield Item("dbve", "train", f"ve{i}", _image(10 * i), aligned=True, va=(0.5, 0.5), expr=i)
    for i in range(3):
        yield Item("dbve", "test", f"t{i}", _image(200), group="clip7", frame=i, aligned=True,
                   va=(-0.5, 0.25), expr=6)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_shards(_items(), out, "tiny", shard_size=4)
    return out


def _cfg(**kw):
    fields = dict(batch_va=4, batch_au=3, batch_expr=2, shuffle_buffer=32, deterministic=True, seed=1)
    fields.update(kw)
    return fbn_config.preset("tiny", **fields)


def _serialized(**kw) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", np.full((50, 60, 3), 200, np.uint8))
    return data.make_example(jpeg.tobytes(), "s", "r1", **kw).SerializeToString()


@pytest.mark.parametrize("in_dataset", [False, True])
def test_parse_record_values_and_shapes(in_dataset):
    au = np.zeros(17, np.float32)
    au[2] = 1.0
    raw = _serialized(va=(0.25, -0.5), expr=3, au=au, au_mask=BP4D_MASK, compound=10)
    if in_dataset:
        image, labels = next(iter(tf.data.Dataset.from_tensors(raw).map(data.parse_record)))
    else:
        image, labels = data.parse_record(tf.constant(raw))
    assert image.shape == (96, 96, 3) and image.dtype == tf.float32       # 50×60 stored → resized
    # Grey 200 → 200/127.5 − 1 = 0.5686 (JPEG may move a level: 1/127.5 = 0.008).
    np.testing.assert_allclose(image.numpy(), 200 / 127.5 - 1, atol=0.02)
    np.testing.assert_allclose(labels["va"], [0.25, -0.5])
    assert labels["va_mask"].numpy() == 1.0 and labels["va_mask"].dtype == tf.float32
    assert labels["expr"].numpy() == 3 and labels["expr"].dtype == tf.int32
    assert labels["compound"].numpy() == 10 and labels["compound"].dtype == tf.int32
    np.testing.assert_array_equal(labels["au"], au)
    np.testing.assert_array_equal(labels["au_mask"], BP4D_MASK)


@pytest.mark.parametrize("in_dataset", [False, True])
def test_parse_record_masks_nan_and_out_of_range_labels(in_dataset, capfd):
    au = np.ones(17, np.float32)
    au[0] = np.nan
    raw = _serialized(va=(np.nan, 0.3), expr=9, au=au, au_mask=np.ones(17), compound=15)
    if in_dataset:
        _, labels = next(iter(tf.data.Dataset.from_tensors(raw).map(data.parse_record)))
    else:
        _, labels = data.parse_record(tf.constant(raw))
    np.testing.assert_array_equal(labels["va"], [0.0, 0.0])
    assert labels["va_mask"].numpy() == 0.0
    assert labels["expr"].numpy() == -1 and labels["compound"].numpy() == -1
    assert labels["au"][0].numpy() == 0.0 and labels["au_mask"][0].numpy() == 0.0
    assert labels["au_mask"].numpy().sum() == 16.0
    # Four bad values (VA pair, AU1, expr 9, compound 15), logged with the record id.
    assert 'records ["r1"] had [4] non-finite or out-of-range' in capfd.readouterr().err


def test_parse_records_batched_masks_only_the_bad_row(capfd):
    good = _serialized(va=(0.25, -0.5), expr=3)
    bad = _serialized(va=(np.inf, 0.0), expr=2)
    images, labels = data.parse_records(tf.constant([good, bad]))
    assert images.shape == (2, 96, 96, 3)
    np.testing.assert_allclose(images.numpy(), 200 / 127.5 - 1, atol=0.02)
    np.testing.assert_allclose(labels["va"], [[0.25, -0.5], [0.0, 0.0]])
    assert labels["va_mask"].numpy().tolist() == [1.0, 0.0] and labels["expr"].numpy().tolist() == [3, 2]
    assert 'records ["r1"] had [1]' in capfd.readouterr().err


def test_train_batches_per_task_are_masked(shards):
    element = next(iter(data.make_train_dataset(shards, _cfg())))
    assert sorted(element) == ["au", "expr", "va"]
    shapes = {t: tuple(images.shape) for t, (images, _) in element.items()}
    assert shapes == {"va": (4, 96, 96, 3), "au": (3, 96, 96, 3), "expr": (2, 96, 96, 3)}
    va_labels, au_labels, expr_labels = element["va"][1], element["au"][1], element["expr"][1]
    assert (va_labels["va_mask"].numpy() == 1).all()
    assert (va_labels["expr"].numpy() == -1).all() and va_labels["au_mask"].numpy().sum() == 0
    np.testing.assert_array_equal(au_labels["au_mask"], np.tile(BP4D_MASK, (3, 1)))
    assert (au_labels["va_mask"].numpy() == 0).all() and (au_labels["expr"].numpy() == -1).all()
    assert set(expr_labels["expr"].numpy()) <= set(range(6))
    assert (expr_labels["va_mask"].numpy() == 0).all() and expr_labels["au_mask"].numpy().sum() == 0
    assert set(element["au"][1]) == {"va", "va_mask", "expr", "au", "au_mask", "compound"}


def test_use_all_labels_and_task_subset(shards):
    ds = data.make_train_dataset(shards, _cfg(tasks="va", use_all_labels=True, batch_va=12), databases=["dbve"])
    (element,) = ds.take(1)
    assert list(element) == ["va"]
    labels = element["va"][1]
    # dbve's records carry VA and an expression: with use_all_labels both reach the VA batch.
    assert sorted(labels["expr"].numpy().tolist()) == sorted(list(range(6)) * 2)
    assert (labels["va_mask"].numpy() == 1).all()
    with pytest.raises(ValueError, match="No 'au' training shards"):
        data.make_train_dataset(shards, _cfg(tasks="au"), databases=["dbva"])


def _first_grey_levels(ds, n=3):
    return [np.round((el["va"][0].numpy()[:, 0, 0, 0] + 1) * 127.5).tolist() for el in ds.take(n)]


def test_seeded_order_is_deterministic(shards):
    a = _first_grey_levels(data.make_train_dataset(shards, _cfg(seed=5, tasks="va")))
    b = _first_grey_levels(data.make_train_dataset(shards, _cfg(seed=5, tasks="va")))
    c = _first_grey_levels(data.make_train_dataset(shards, _cfg(seed=6, tasks="va")))
    assert a == b
    assert a != c
    # The 3 batches of 4 from 12 VA records (dbva + dbve): one epoch of each, so every record once per epoch.
    assert sorted(sum(a, []))[:6] == [0.0, 0.0, 10.0, 10.0, 20.0, 20.0]


def test_two_replicas_get_batches_that_sum_to_the_global_batch(shards, two_cpu_strategy):
    cfg = _cfg(batch_va=5, batch_au=3, batch_expr=2)
    dist = two_cpu_strategy.experimental_distribute_datasets_from_function(
        lambda ctx: data.make_train_dataset(shards, cfg, ctx))
    element = next(iter(dist))
    sizes = {t: [int(x.shape[0]) for x in two_cpu_strategy.experimental_local_results(element[t][0])]
             for t in ("va", "au", "expr")}
    assert sizes == {"va": [3, 2], "au": [2, 1], "expr": [1, 1]}
    assert data.replica_batch_sizes(401, 2) == [201, 200]
    assert sum(data.replica_batch_sizes(247, 8)) == 247
    with pytest.raises(ValueError, match="cannot give every one of 4 replicas"):
        data.replica_batch_sizes(3, 4)


def test_eval_reads_each_record_once_with_ids(shards):
    batches = list(data.make_eval_dataset(shards, "dbve", "test", batch_size=2))
    ids = [i for _, labels in batches for i in labels["id"].numpy().tolist()]
    # Each test record is in va/ and expr/; it must come back once.
    assert ids == [b"t0", b"t1", b"t2"]
    labels = {k: np.concatenate([b[1][k].numpy() for b in batches]) for k in batches[0][1]}
    assert labels["group"].tolist() == [b"clip7"] * 3 and labels["frame"].tolist() == [0, 1, 2]
    assert labels["source"].tolist() == [b"dbve"] * 3
    assert labels["expr"].tolist() == [6, 6, 6] and labels["va_mask"].tolist() == [1.0] * 3
    np.testing.assert_allclose(labels["va"], [[-0.5, 0.25]] * 3)
    with pytest.raises(ValueError, match="no complete 'test' split"):
        data.make_eval_dataset(shards, "dbva", "test")


def test_eval_of_a_split_with_every_item_skipped_is_empty(tmp_path):
    bad = Item("dbz", "test", "z", _image(0), aligned=True, va=(5.0, 0.0))      # out of range: skipped
    write_shards([bad], tmp_path, "dbz")
    assert list(data.make_eval_dataset(tmp_path, "dbz", "test")) == []


def test_list_databases_and_sizes(shards):
    listing = data.list_databases(shards)
    assert sorted(listing) == ["dbau", "dbva", "dbve"]
    assert listing["dbve"]["tasks"] == ["va", "expr"]
    assert listing["dbve"]["splits"]["test"]["records"] == 3
    assert listing["dbau"]["splits"]["train"]["au"] == 6
    assert data.train_sizes(shards) == {"va": 12, "au": 6, "expr": 6}


def test_au_label_counts_read_the_au_set_of_the_split(tmp_path):
    """6 BP4D-style training images: AU6 on in 2, AU12 on in 1; a test image is not counted."""
    def items():
        for i in range(6):
            au = np.zeros(taxonomy.NUM_AUS, np.float32)
            au[taxonomy.au_index(6)] = float(i < 2)
            au[taxonomy.au_index(12)] = float(i == 0)
            yield Item("dbau", "train", f"au{i}", _image(10 * i), aligned=True, au=au, au_mask=BP4D_MASK)
        yield Item("dbau", "test", "t0", _image(0), aligned=True, au=np.ones(taxonomy.NUM_AUS, np.float32),
                   au_mask=BP4D_MASK)
    write_shards(items(), tmp_path, "tiny", shard_size=4)
    positives, annotated = data.au_label_counts(tmp_path)
    want_annotated = 6 * BP4D_MASK.astype(np.int64)
    want_positives = np.zeros(taxonomy.NUM_AUS, np.int64)
    want_positives[taxonomy.au_index(6)], want_positives[taxonomy.au_index(12)] = 2, 1
    np.testing.assert_array_equal(annotated, want_annotated)
    np.testing.assert_array_equal(positives, want_positives)
