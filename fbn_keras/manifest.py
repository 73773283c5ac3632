"""`OUT/manifest.json`: what a TFRecord folder holds, per database, split and task, and every skip by reason.

The shard writers (`fbn_keras/records/writer.py`, and the Apache Beam build in
`tfrecords_tools/beam_pipeline.py` that reuses it) are the only writers; the readers
in `fbn_keras/data.py` take their shard lists from here rather than globbing,
so half-written or stray files in OUT are never read. Several builds can share
one OUT: each read-modify-write holds an exclusive lock and replaces only the
entries of the build doing it, then renames the new file into place.

Layout of the JSON (one "split" entry shown):

    {"format": 1,
     "builds":    {"synthetic": {"complete": true, "databases": [...], "options": {...},
                                 "skips": {...}, "skip_examples": {...}}},
     "databases": {"synth-rafdb": {"splits": {"train": {
                        "complete": true, "items": 500, "records": 480,
                        "tasks": {"va": 0, "au": 0, "expr": 480, "compound": 0},
                        "skips": {"no_face": 20}, "skip_examples": {"no_face": ["id: detail"]},
                        "chunks": {"expr": [["expr/...-chunk00000.tfrecord", 480]]},
                        "shards": {"expr": [{"file": "expr/...-00000-of-00001.tfrecord",
                                             "records": 480}]}}}}},
     "complete_shards": ["expr/synth-rafdb-train-00000-of-00001.tfrecord", ...]}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

MANIFEST = "manifest.json"
FORMAT = 1
#: Task folders of a shard set: the three training sets plus the compound set (not trained on), and the
#: per-video reaction intensities (Hume-Reaction, FaceRNET; read as sequences, docs/VIDEO.md).
FOLDERS: tuple[str, ...] = ("va", "au", "expr", "compound", "intensity")
#: The splits a database is written in (main paper Section 4, "Train/Validation/Test splits").
SPLITS: tuple[str, ...] = ("train", "validation", "test")


class Manifest:
    """An in-memory view of one OUT folder's manifest (a plain JSON dict underneath)."""

    def __init__(self, data: Optional[dict] = None):
        self.data = data if data is not None else {"format": FORMAT, "builds": {}, "databases": {},
                                                    "complete_shards": []}
        if self.data.get("format") != FORMAT:
            raise ValueError(f"Unsupported manifest format {self.data.get('format')!r}; this code reads {FORMAT}")

    # === Files ===

    @classmethod
    def load(cls, out: str | Path) -> "Manifest":
        """The manifest of `out`, or an empty one when the folder has none yet."""
        path = Path(out) / MANIFEST
        if not path.exists():
            return cls()
        try:
            return cls(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); rebuild the folder or remove the file") from None

    def save(self, out: str | Path) -> None:
        """Write atomically: a temporary file in the same folder, then rename."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.data["complete_shards"] = sorted(self._complete_shards())
        tmp = out / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, out / MANIFEST)

    # === Queries ===

    def databases(self) -> list[str]:
        return sorted(self.data["databases"])

    def database(self, name: str) -> dict:
        try:
            return self.data["databases"][name]
        except KeyError:
            raise ValueError(f"Database {name!r} is not in this manifest; it holds {self.databases()}") from None

    def splits(self, database: str) -> dict[str, dict]:
        return self.database(database)["splits"]

    def build_complete(self, build: str) -> bool:
        return bool(self.data["builds"].get(build, {}).get("complete", False))

    def shards(self, task: str, split: str = "train",
               databases: Optional[Iterable[str]] = None) -> list[dict]:
        """Finished shards `{"file", "records"}` of one task folder and split, over `databases` (default all)."""
        names = self.databases() if databases is None else list(databases)
        out = []
        for name in names:
            entry = self.splits(name).get(split)
            if entry and entry.get("complete"):
                out.extend(entry.get("shards", {}).get(task, []))
        return out

    def skips(self, database: Optional[str] = None) -> dict[str, int]:
        """Skip counts by reason: one database's, or every database's plus the skips no split owns (build level)."""
        names = self.databases() if database is None else [database]
        total: dict[str, int] = {}
        for name in names:
            for split in self.splits(name).values():
                _add_counts(total, split.get("skips", {}))
        if database is None:
            for build in self.data["builds"].values():
                _add_counts(total, build.get("skips", {}))
        return total

    def _complete_shards(self) -> Iterator[str]:
        for db in self.data["databases"].values():
            for split in db["splits"].values():
                if split.get("complete"):
                    for shards in split.get("shards", {}).values():
                        yield from (s["file"] for s in shards)


def _add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for reason, n in counts.items():
        total[reason] = total.get(reason, 0) + int(n)


@contextlib.contextmanager
def locked(out: str | Path, name: str = ".manifest.lock", blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive advisory lock on `out/name` (a BlockingIOError when `blocking=False` and it is taken)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / name, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def merge(out: str | Path, build: str, build_entry: dict, databases: dict[str, dict]) -> Manifest:
    """Replace one build's entry and its databases' entries in `out`'s manifest, under the lock; return it."""
    with locked(out):
        manifest = Manifest.load(out)
        manifest.data["builds"][build] = build_entry
        manifest.data["databases"].update(databases)
        manifest.save(out)
    return manifest
