"""Writing TFRecord shards: the library side of the database builders.

`items` is the contract a database parser yields (`Item`, `Skip`);
`encode` turns one Item into its record (load, align the face, JPEG);
`writer` is the single-process shard writer with its manifest, chunks and
resumption; `synthetic` gives the synthetic test-bed as Items. The parsers,
the `python -m tfrecords_tools.build` command line and the Apache Beam build
live in `tfrecords_tools/`, which imports from here, never the reverse.
"""
