"""The Beam build against the single-process writer: same records, labels and counts; atomic chunks; resumption."""

import itertools
import re

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from fbn_keras import data  # noqa: E402
from fbn_keras.manifest import Manifest  # noqa: E402
from fbn_keras.records.items import Item  # noqa: E402
from fbn_keras.records.writer import StrictSkipError, write_shards  # noqa: E402
from test_builders import (_affectnet, _affwild, _affwild2, _afew, _bp4d, _disfa, _emotionet,  # noqa: E402
                           _rafdb, bp4dplus_root, ns, records)
from tfrecords_tools import afew, affectnet, affwild, affwild2, bp4d, build, disfa, emotionet, rafdb  # noqa: E402
from tfrecords_tools.beam_pipeline import count_records, pipeline_options, write_shards_beam  # noqa: E402

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
SHARD = re.compile(r"^(va|au|expr|compound)/(.+)-(train|validation|test)-(\d{5})-of-(\d{5})\.tfrecord$")


def _layouts(tmp_path):
    """Every miniature database of test_builders (crops, a corrupt JPEG, video frames, zips), as one stream."""
    _rafdb(tmp_path / "RAF-DB")
    _affwild2(tmp_path / "Aff-Wild2")
    _disfa(tmp_path / "DISFA")
    plus = bp4dplus_root(tmp_path, (0, 1, 2))
    _affectnet(tmp_path / "AffectNet")
    emotionet_args = _emotionet(tmp_path / "EmotioNet")
    _bp4d(tmp_path / "BP4D")
    _affwild(tmp_path / "Aff-Wild")
    _afew(tmp_path / "AFEW")

    def stream():
        return itertools.chain(
            rafdb.parse(tmp_path / "RAF-DB", ns(dataset="rafdb")),
            affwild2.parse(tmp_path / "Aff-Wild2", ns()),
            disfa.parse(tmp_path / "DISFA", ns(camera="left", test_subjects="SN003", val_fraction=0.0)),
            bp4d.parse(plus, ns(dataset="bp4dplus", test_subjects="")),
            affectnet.parse(tmp_path / "AffectNet", ns()),
            emotionet.parse(tmp_path / "EmotioNet", emotionet_args),
            bp4d.parse(tmp_path / "BP4D", ns(dataset="bp4d", test_subjects="M001")),
            affwild.parse(tmp_path / "Aff-Wild", ns()),
            afew.parse(tmp_path / "AFEW", ns(every=2)))
    return stream


def _counts(manifest: Manifest) -> dict:
    """What must agree between the two writers: per database and split, items, records, per-task records
    (in the manifest and in its shards), skips by reason and which reasons have examples; build-level skips."""
    out = {"build": {n: {k: b[k] for k in ("complete", "skips")} for n, b in manifest.data["builds"].items()}}
    for name in manifest.databases():
        for split, e in manifest.splits(name).items():
            out[(name, split)] = {
                "complete": e["complete"], "items": e["items"], "records": e["records"], "tasks": e["tasks"],
                "skips": e["skips"], "examples": sorted(e["skip_examples"]),
                "shard_records": {t: sum(s["records"] for s in shards) for t, shards in e["shards"].items()}}
    return out


def _check_files(out, manifest: Manifest) -> None:
    """Every listed shard has its documented name, exists and holds what the manifest says; nothing else is left."""
    listed = set(manifest.data["complete_shards"])
    for name in manifest.databases():
        for split, e in manifest.splits(name).items():
            for task, shards in e["shards"].items():
                for i, s in enumerate(shards):
                    assert SHARD.match(s["file"]).groups() == (task, name, split, f"{i:05d}", f"{len(shards):05d}")
                    assert count_records(out / s["file"]) == s["records"] > 0
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk - listed == {"manifest.json", ".manifest.lock", f".build-{next(iter(manifest.data['builds']))}.lock"}


def test_beam_and_single_process_writers_agree_on_the_miniature_layouts(tmp_path):
    stream = _layouts(tmp_path)
    inline = write_shards(stream(), tmp_path / "inline", "mini", aligner="none", shard_size=4)
    beam = write_shards_beam(stream(), tmp_path / "beam", "mini", aligner="none", shard_size=4,
                             pipeline_args=IN_MEMORY)
    assert _counts(beam) == _counts(inline)
    # Images written per database, as test_builders' own tests of each layout count them.
    assert {name: sum(e["records"] for e in beam.splits(name).values()) for name in beam.databases()} == {
        "rafdb": 5, "affwild2": 7, "disfa": 9, "bp4dplus": 3, "affectnet": 6, "emotionet": 3,
        "emotionet-compound": 2, "bp4d": 4, "affwild": 5, "afew": 5}
    assert beam.skips()["corrupt_image"] == 1 and beam.skips()["unreadable_video"] == 3
    a, b = records(tmp_path / "inline"), records(tmp_path / "beam")
    assert len(a) == sum(n for name in inline.databases() for e in inline.splits(name).values()
                         for n in e["tasks"].values())
    assert a.keys() == b.keys()
    for key, rec in a.items():        # same labels, ids, groups, frames, split and JPEG bytes
        assert rec.keys() == b[key].keys(), key
        for field, value in rec.items():
            np.testing.assert_array_equal(b[key][field], value, err_msg=f"{key} {field}")
    _check_files(tmp_path / "beam", beam)
    # Readers see the same records.
    assert data.train_sizes(tmp_path / "beam") == data.train_sizes(tmp_path / "inline")


def _logged_items(n, log, fail_after=None):
    """n va items whose `load` appends its index to the file `log` (works across processes and pickling)."""
    for i in range(n):
        if i == fail_after:
            raise KeyboardInterrupt("simulated interruption")

        def load(i=i, log=str(log)):
            with open(log, "a") as handle:
                handle.write(f"{i}\n")
            return np.full((96, 96, 3), 10 * i, np.uint8)
        yield Item("dbr", "train", f"img{i}", load, aligned=True, va=(i / 10, 0.0))


def _loaded(log) -> list[int]:
    return sorted(int(x) for x in log.read_text().split()) if log.exists() else []


def test_interrupted_beam_build_redoes_only_the_unfinished_chunk(tmp_path):
    out, log = tmp_path / "out", tmp_path / "loads.txt"
    kwargs = dict(shard_size=2, commit_every=3, pipeline_args=IN_MEMORY)
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        write_shards_beam(_logged_items(5, log, fail_after=4), out, "dbr", **kwargs)
    assert _loaded(log) == [0, 1, 2]                    # the first chunk ran; item 3 was waiting for its chunk
    entry = Manifest.load(out).splits("dbr")["train"]
    assert entry["complete"] is False and entry["items"] == 3 and entry["records"] == 3
    assert [n for _, n in entry["chunks"]["va"]] in ([2, 1], [1, 2], [3])        # ceil(3 / 2) shards at most
    assert Manifest.load(out).shards("va", "train") == []                        # readers see nothing yet
    # What an interrupted pipeline run leaves behind is removed, never listed.
    (out / ".beam-dbr" / "va").mkdir(parents=True)
    (out / ".beam-dbr" / "va" / "dbr-train-chunk00001-00000-of-00001.tfrecord").write_bytes(b"half")
    (out / "va" / "dbr-train-chunk00009-00000-of-00001.tfrecord").write_bytes(b"moved, never listed")

    log.unlink()
    manifest = write_shards_beam(_logged_items(5, log), out, "dbr", **kwargs)
    assert _loaded(log) == [3, 4]                       # items 0–2 were not loaded again
    shards = manifest.shards("va", "train")
    assert sum(s["records"] for s in shards) == 5 and manifest.splits("dbr")["train"]["items"] == 5
    ids = sorted(rec[data.ID].decode() for (task, _), rec in records(out).items())
    assert ids == [f"img{i}" for i in range(5)]
    _check_files(out, manifest)

    log.unlink()                                        # a finished build is not redone
    write_shards_beam(_logged_items(5, log), out, "dbr", **kwargs)
    assert _loaded(log) == []


def test_strict_beam_build_names_the_first_skip_and_lists_nothing(tmp_path):
    bad = Item("dbx", "train", "bad.jpg", lambda: np.zeros((96, 96, 3), np.uint8), aligned=True,
               au=np.full(17, 2.0), au_mask=np.ones(17))
    good = Item("dbx", "train", "ok.jpg", lambda: np.zeros((96, 96, 3), np.uint8), aligned=True, expr=1)
    # The whole message comes back through the runner's error, brackets included.
    with pytest.raises(StrictSkipError, match=r"^label_out_of_range: dbx/train/bad\.jpg: va=None .* au=\[.*\]$"):
        write_shards_beam([good, bad], tmp_path / "out", "dbx", strict=True, pipeline_args=IN_MEMORY)
    assert Manifest.load(tmp_path / "out").shards("expr", "train") == []


def test_cli_builds_with_beam_and_passes_pipeline_options(tmp_path, capsys):
    _rafdb(tmp_path / "RAF-DB")
    out = tmp_path / "out"
    argv = ["rafdb", "--root", str(tmp_path / "RAF-DB"), "--out", str(out), "--align", "none", "--shard-size", "2"]
    assert build.main(argv + ["--"] + IN_MEMORY) == 0
    m = Manifest.load(out)
    # RAF-DB layout: train 1, 2, 3 and test 1, 2 written (test 3 corrupt, train 5 label 9, train 4 no file).
    assert {s: e["tasks"]["expr"] for s, e in m.splits("rafdb").items()} == {"train": 3, "test": 2}
    assert [s["records"] for s in m.shards("expr", "train")] in ([2, 1], [1, 2])
    assert m.skips() == {"missing_file": 1, "label_out_of_range": 1, "corrupt_image": 1}
    assert "rafdb: 5 records" in capsys.readouterr().out
    assert build.main(argv + ["--writer", "inline", "--", "--runner", "FlinkRunner"]) == 2


def test_pipeline_options_default_to_every_local_core_and_let_the_user_choose():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    import os
    default = pipeline_options([])
    assert default.view_as(StandardOptions).runner == "DirectRunner"
    assert default.view_as(DirectOptions).direct_running_mode == "multi_processing"
    assert default.view_as(DirectOptions).direct_num_workers == os.cpu_count()
    mine = pipeline_options(["--direct_num_workers=1", "--runner", "FlinkRunner", "--flink_master", "h:8081"])
    assert mine.view_as(StandardOptions).runner == "FlinkRunner"
    assert mine.view_as(DirectOptions).direct_num_workers == 1
    assert mine.get_all_options()["flink_master"] == "h:8081"


@pytest.mark.slow
def test_multi_process_beam_build_matches_the_single_process_writer(tmp_path):
    items = [Item("dbm", "train" if i % 4 else "test", f"m{i}", lambda i=i: np.full((60, 80, 3), 9 * i, np.uint8),
                  aligned=True, expr=i % 7, va=(0.1 * (i % 5), -0.2) if i % 3 else None) for i in range(20)]
    inline = write_shards(items, tmp_path / "inline", "dbm", shard_size=3)
    beam = write_shards_beam(items, tmp_path / "beam", "dbm", shard_size=3,
                             pipeline_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert _counts(beam) == _counts(inline)
    a, b = records(tmp_path / "inline"), records(tmp_path / "beam")
    assert a.keys() == b.keys() and all(a[k][data.IMAGE] == b[k][data.IMAGE] for k in a)
    _check_files(tmp_path / "beam", beam)
