"""The synthetic video test-bed as writer Items, and its shard folder built once into the cache.

Every frame of `fbn_keras.synthetic.video` becomes a per-frame Item (group =
video, or utterance for the OMG-like set; frame = its number) carrying its
68 landmarks and its audio window, written by the one shard writer; the
sequence shards (`fbn_keras.sequences`) are then made from those records.
`python -m tfrecords_tools.build synthetic-video --out DIR` and
`ensure_video_testbed()` both read these items.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from fbn_keras.manifest import Manifest, locked
from fbn_keras.records.items import SPLITS, Item

log = logging.getLogger(__name__)

BUILD = "synthetic-video"
#: Bump when the video generator or the record format changes, so stale caches are not reused.
VERSION = "v1"


def videos(scale: float = 1.0, databases: Optional[Iterable[str]] = None) -> dict[tuple[str, str], int]:
    """(database, split) → number of videos: DEFAULT_VIDEOS times `scale`, at least 1."""
    from fbn_keras.synthetic import video

    if not scale > 0:
        raise ValueError(f"scale must be > 0. Received: scale={scale}")
    names = list(video.VIDEO_RECIPES if databases is None else databases)
    unknown = sorted(set(names) - set(video.VIDEO_RECIPES))
    if unknown:
        raise ValueError(f"Unknown synthetic video databases {unknown}; expected some of {sorted(video.VIDEO_RECIPES)}")
    return {(name, split): max(1, int(round(video.DEFAULT_VIDEOS[name][split] * scale)))
            for name in names for split in SPLITS}


def to_item(frame) -> Item:
    """One `VideoFrame` as an Item: an aligned crop with its landmarks (pixels) and PNG audio window."""
    from fbn_keras import audio

    image = np.asarray(frame.image)
    has_au = frame.au_mask is not None and float(np.sum(frame.au_mask)) > 0
    return Item(
        database=frame.database, split=frame.split, image_id=frame.image_id, load=lambda: image,
        group=frame.group, frame=int(frame.frame), aligned=True, landmarks=frame.landmarks, va=frame.va,
        expr=int(frame.expr), au=np.asarray(frame.au, np.float32) if has_au else None,
        au_mask=np.asarray(frame.au_mask, np.float32) if has_au else None,
        audio=audio.encode_png(frame.audio))


def items(scale: float = 1.0, seed: int = 0, databases: Optional[Iterable[str]] = None,
          length: Optional[int] = None) -> Iterator[Item]:
    """Every frame of every video database and split, as Items, in a fixed order (the writer resumes on it).
    `length` fixes every video's frame count (quick checks)."""
    from fbn_keras.synthetic import video

    for (name, split), n in videos(scale, databases).items():
        for frame in video.generate_videos(name, split, n_videos=n, seed=seed, length=length):
            yield to_item(frame)


def testbed_dir(cache_dir: Optional[str | Path] = None, scale: float = 1.0, seed: int = 0,
                databases: Optional[Iterable[str]] = None) -> Path:
    """Where the video test-bed of this scale, seed and selection of databases (default all) lives, built or
    not, beside the image test-bed."""
    from fbn_keras.testbed import cache_root

    path = cache_root(cache_dir) / f"synthetic-video-{VERSION}-s{float(scale):g}-seed{int(seed)}"
    return path if databases is None else path.with_name(path.name + "-" + "+".join(sorted(databases)))


def ensure_video_testbed(cache_dir: Optional[str | Path] = None, scale: float = 1.0, seed: int = 0,
                         databases: Optional[Iterable[str]] = None) -> Path:
    """The synthetic video folder (per-frame shards and sequence shards), built on first use.

    `databases` picks some of the five sets (default all); each selection gets its own folder.
    """
    from fbn_keras import sequences
    from fbn_keras.records import writer

    names = None if databases is None else sorted(databases)
    path = testbed_dir(cache_dir, scale, seed, names)
    index = sequences.load_index(path) if path.exists() else {"databases": {}}
    if Manifest.load(path).build_complete(BUILD) and index["databases"]:
        return path
    with locked(path.parent, f".{path.name}.lock"):
        if not Manifest.load(path).build_complete(BUILD):
            log.info("building the synthetic video test-bed into %s (scale %g, seed %d)", path, scale, seed)
            writer.write_shards(items(scale, seed, names), path, BUILD, aligner="auto")
        sequences.write_sequence_shards(path)
    return path
