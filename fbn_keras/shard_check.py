"""Corrupt TFRecord shards: name the one behind TensorFlow's DataLossError, and count records skipped past.

TensorFlow stops on a record whose checksum fails with `DataLossError:
corrupted record at 4581`, naming the byte offset but not the file. The
readers (`fbn_keras/data.py`) read shard lists from the manifest; when one of
them fails, `corrupt_shard_error` re-reads only the framing of the listed
shards around that offset (a few bytes per record, one data checksum) to find
the file, and returns a one-line `CorruptShardError` naming it, how to list
every bad shard (`python -m tfrecords_tools.verify DATA`), and the option to
skip them (`--skip-corrupt-records`, counted by `SkippedRecords`).

A TFRecord file is a run of records, each framed as
    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
little-endian, with masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 mod 2**32, c = CRC-32C(x).
"""

from __future__ import annotations

import json
import logging
import re
import struct
import threading
from pathlib import Path
from typing import Iterable, Optional

#: TensorFlow's words for a record it cannot read, with the byte offset it was read from.
DATA_LOSS = re.compile(r"(corrupted|truncated) record at (\d+)")
HEADER, FOOTER = 12, 4           # length + its CRC; the data's CRC
MASK_DELTA = 0xA282EAD8
#: Where a run folder keeps the counts of skipped records (`--skip-corrupt-records`).
SKIPPED_FILE = "corrupt_records.json"
VERIFY_COMMAND = "python -m tfrecords_tools.verify"
log = logging.getLogger("fbn_keras.data")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)   # Castagnoli polynomial, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, as TFRecord framing uses it (pure Python: for single records)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that a TFRecord stores after its length and after its data."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


class CorruptShardError(RuntimeError):
    """A shard holds a record that cannot be read; the message is one line naming it."""


def record_problem_at(path: str | Path, offset: int) -> Optional[str]:
    """What is wrong with the record of `path` that TensorFlow read at byte `offset` (its header or its
    data), or None when `path` has no record there or that record is sound.

    Walks the framing from the start (length and its checksum of every record
    before it), so only the one record's data is read and checksummed.
    """
    try:
        f = open(path, "rb")
    except OSError:
        return None
    with f:
        size = f.seek(0, 2)
        position = 0
        while position < size and position <= offset:
            f.seek(position)
            header = f.read(HEADER)
            if len(header) < HEADER:
                return f"truncated record at {position}" if position == offset else None
            length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
            if masked_crc32c(length_bytes) != length_crc:
                return f"corrupted record at {position} (length checksum)" if position == offset else None
            length = struct.unpack("<Q", length_bytes)[0]
            if offset in (position, position + HEADER):
                payload = f.read(length)
                footer = f.read(FOOTER)
                if len(payload) < length or len(footer) < FOOTER:
                    return f"truncated record at {position}"
                if masked_crc32c(payload) != struct.unpack("<I", footer)[0]:
                    return f"corrupted record at {position + HEADER} (data checksum)"
                return None
            position += HEADER + length + FOOTER
    return None


def corrupt_shard_error(error: Exception, files: Iterable[str | Path], data_dir: str | Path,
                        what: str = "reading") -> CorruptShardError:
    """The one-line error for a DataLossError met while reading `files` (the shards the failing
    dataset was built from): the shard(s) with a bad record at the offset TensorFlow gives, the offset,
    and how to find every bad shard (`tfrecords_tools.verify`) or skip them."""
    files = list(files)
    message = getattr(error, "message", None) or str(error)
    found = DATA_LOSS.search(message)
    offset = int(found.group(2)) if found else None
    culprits = []
    if offset is not None:
        for path in files:
            problem = record_problem_at(path, offset)
            if problem:
                culprits.append(f"{path}: {problem}")
    if culprits:
        where = "Corrupt TFRecord shard " + "; ".join(culprits)
    else:
        said = found.group(0) if found else " ".join(message.split())[:200]
        where = f"A corrupt TFRecord shard ({said}, in none of the {len(files)} shards searched)"
    return CorruptShardError(
        f"{where}, met while {what}. List every bad shard with `{VERIFY_COMMAND} {data_dir}` and rebuild "
        f"them, or pass --skip-corrupt-records to skip their unreadable records")


class SkippedRecords:
    """Per shard: records a full read should give (the manifest's count), records read, and the passes
    that came up short; `--skip-corrupt-records` readers report here after each pass over a shard."""

    def __init__(self):
        self._lock = threading.Lock()
        self.expected: dict[str, int] = {}
        self.shards: dict[str, dict[str, int]] = {}

    def expect(self, path: str, records: int) -> None:
        with self._lock:
            self.expected[str(path)] = int(records)

    def report(self, path: str, read: int) -> bool:
        """One pass over `path` gave `read` records; True when some were skipped (then logged once per shard)."""
        path = str(path)
        with self._lock:
            expected = self.expected.get(path)
            if expected is None or read >= expected:
                return False
            entry = self.shards.setdefault(path, {"records": expected, "read": read, "short_passes": 0,
                                                  "skipped": 0})
            entry["read"] = read
            entry["short_passes"] += 1
            entry["skipped"] += expected - read
            first = entry["short_passes"] == 1
        if first:
            log.warning(
                "Skipping corrupt records of %s: read %d of its %d records (the rest of a TFRecord file after "
                "a corrupt record cannot be found); `%s` lists every bad shard", path, read, expected,
                VERIFY_COMMAND)
        return True

    def total(self) -> int:
        with self._lock:
            return sum(e["skipped"] for e in self.shards.values())

    def reset(self) -> None:
        with self._lock:
            self.expected.clear()
            self.shards.clear()

    def to_dict(self) -> dict:
        with self._lock:
            return {"skipped_records": sum(e["skipped"] for e in self.shards.values()),
                    "shards": {p: dict(e) for p, e in sorted(self.shards.items())}}

    def write(self, out_dir: str | Path) -> Path:
        """Write the counts to `out_dir/corrupt_records.json` (also when nothing was skipped); its path."""
        path = Path(out_dir) / SKIPPED_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


#: The process's count of skipped records: the readers of `fbn_keras/data.py` report here.
SKIPPED = SkippedRecords()
