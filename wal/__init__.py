"""Segmented, checksummed, crash-safe write-ahead log over fsspec.

The leaf layer: it stores bytes with a time in milliseconds and knows nothing of batches or DStreams.
Entry point: `open_wal(url, ...)`; the byte format is specified in `wal.format`, the naming in
`wal.segments`, the crash rules in `wal.recovery`.
"""

from wal.batched import BatchedWriteAheadLog
from wal.errors import (
    CorruptRecordError,
    RecordNotFoundError,
    WALClosedError,
    WALError,
    WALTimeoutError,
    WALValueError,
)
from wal.log import FileBasedWriteAheadLog, RecordHandle, WriteAheadLog
from wal.opener import open_wal
from wal.stats import Drop, WALStatistics

__all__ = [
    "BatchedWriteAheadLog",
    "CorruptRecordError",
    "Drop",
    "FileBasedWriteAheadLog",
    "RecordHandle",
    "RecordNotFoundError",
    "WALClosedError",
    "WALError",
    "WALStatistics",
    "WALTimeoutError",
    "WALValueError",
    "WriteAheadLog",
    "open_wal",
]
