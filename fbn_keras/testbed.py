"""The synthetic test-bed on disk: built once into a cache folder, then reused (tests, notebooks, `train`).

`ensure_synthetic_testbed()` returns a TFRecord folder holding every synthetic
database (`fbn_keras/records/synthetic.py`). The folder is
`<cache>/synthetic-v2-s<scale>-seed<seed>`, with `<cache>` = `cache_dir`, else
`$FBN_CACHE`, else `~/.cache/fbn_keras`. Concurrent callers (pytest-xdist
workers, several notebooks) serialise on a lock file: the first builds, the
others wait and then find the manifest complete. An interrupted build resumes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from fbn_keras.manifest import Manifest, locked

log = logging.getLogger(__name__)

#: Bump when the generator or the record format changes, so stale caches are not reused.
VERSION = "v2"
BUILD = "synthetic"


def cache_root(cache_dir: Optional[str | Path] = None) -> Path:
    """`cache_dir`, else `$FBN_CACHE`, else `~/.cache/fbn_keras`."""
    return Path(cache_dir or os.environ.get("FBN_CACHE") or Path.home() / ".cache" / "fbn_keras")


def testbed_dir(cache_dir: Optional[str | Path] = None, scale: float = 1.0, seed: int = 0) -> Path:
    """Where the test-bed of this scale and seed lives (built or not)."""
    return cache_root(cache_dir) / f"synthetic-{VERSION}-s{float(scale):g}-seed{int(seed)}"


def ensure_synthetic_testbed(cache_dir: Optional[str | Path] = None, scale: float = 1.0, seed: int = 0) -> Path:
    """The synthetic shard folder, built on first use (a few minutes at scale 1 on 2 cores)."""
    path = testbed_dir(cache_dir, scale, seed)
    if Manifest.load(path).build_complete(BUILD):
        return path
    with locked(path.parent, f".{path.name}.lock"):
        if not Manifest.load(path).build_complete(BUILD):       # another process may have built it meanwhile
            from fbn_keras.records import synthetic, writer
            log.info("building the synthetic test-bed into %s (scale %g, seed %d)", path, scale, seed)
            writer.write_shards(synthetic.items(scale, seed), path, BUILD, aligner="auto")
    return path
