"""Re-export of the single-process shard writer, which moved into the library (`fbn_keras/records/`).

`fbn_keras.records.encode` turns one Item into its record (load, align, JPEG);
`fbn_keras.records.writer` streams Items into shards and the manifest. The
Beam build (`tfrecords_tools/beam_pipeline.py`) uses both.
"""

from fbn_keras.records.encode import (ALIGN_MODES, IMAGE_SIZE, JPEG_QUALITY, Aligner,  # noqa: F401
                                      encode_jpeg, make_aligner, process, resize)
from fbn_keras.records.writer import (DEFAULT_SHARD_SIZE, MAX_EXAMPLES, StrictSkipError,  # noqa: F401
                                      build_records, build_skips, write_shards)

__all__ = ["ALIGN_MODES", "IMAGE_SIZE", "JPEG_QUALITY", "Aligner", "encode_jpeg", "make_aligner", "process",
           "resize", "DEFAULT_SHARD_SIZE", "MAX_EXAMPLES", "StrictSkipError", "build_records", "build_skips",
           "write_shards"]
