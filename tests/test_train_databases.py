"""Which databases multi-task training reads: the compound sets stay out of the EXPR-Set (main paper Section 4)."""

import numpy as np
import pytest

from fbn_keras import config as fbn_config
from fbn_keras import data, taxonomy
from tfrecords_tools.items import Item
from tfrecords_tools.writer import write_shards

SURPRISE = taxonomy.expression_index("surprise")


def _image(value):
    return lambda: np.full((96, 96, 3), value, np.uint8)


def _items():
    """RAF-DB basic: 6 images, expressions 0–2, grey 20. EmotioNet's emotion list: 6 images with a basic
    class (surprise, in `expr/`) and a compound class, grey 240."""
    for i in range(6):
        yield Item("rafdb", "train", f"r{i}", _image(20), aligned=True, expr=i % 3)
        yield Item("emotionet-compound", "train", f"e{i}", _image(240), aligned=True, expr=SURPRISE,
                   compound=taxonomy.EMOTIONET_COMPOUND_SUBSET[0])


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("compound_shards")
    write_shards(_items(), out, "tiny", shard_size=4)
    return out


def _expr_labels(shards, **kw):
    cfg = fbn_config.preset("tiny", tasks="expr", batch_expr=6, shuffle_buffer=32, deterministic=True, **kw)
    labels, grey = [], []
    for element in data.make_train_dataset(shards, cfg).take(4):
        images, batch = element["expr"]
        labels += batch["expr"].numpy().tolist()
        grey += np.round((images.numpy()[:, 0, 0, 0] + 1) * 127.5).tolist()
    return labels, grey


def test_compound_database_is_written_into_expr(shards):
    # The premise: the EmotioNet emotion list does put its basic classes into the EXPR folder.
    from fbn_keras.manifest import Manifest

    files = Manifest.load(shards).shards("expr", "train", ["emotionet-compound"])
    assert sum(s["records"] for s in files) == 6


def test_compound_databases_are_left_out_of_training_by_default(shards):
    labels, grey = _expr_labels(shards)
    assert len(labels) == 24
    assert set(labels) == {0, 1, 2}                       # RAF-DB's only; never EmotioNet's surprise
    assert max(grey) < 60


def test_compound_databases_join_when_asked(shards):
    labels, grey = _expr_labels(shards, train_compound_databases=True)
    assert SURPRISE in labels and max(grey) > 200          # 6 of the 12 records are EmotioNet's


def test_training_databases_selection():
    cfg = fbn_config.preset("tiny")
    names = ["affectnet", "emotionet-compound", "rafdb", "rafdb-compound", "synth-rafdb-compound", "mydb"]
    assert data.training_databases(names, cfg) == ["affectnet", "mydb", "rafdb"]
    cfg_all = fbn_config.preset("tiny", train_compound_databases=True)
    assert data.training_databases(names, cfg_all) == sorted(names)
