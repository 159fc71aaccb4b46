"""Segmented, checksummed, crash-safe write-ahead log, and the storage seam every layer writes through.

The leaf layer: it stores bytes with a time in milliseconds and knows nothing of batches or DStreams.
Entry point: `open_wal(url, ..., key=None)` (with a key every record is authenticated, `wal.auth`);
the byte format is specified in `wal.format`, the naming in
`wal.segments`, the crash rules in `wal.recovery`. `wal.storage` is the one storage seam (the
`Storage` contract, the local and fsspec implementations, the registry that picks one per URL) used
by the WAL, checkpoints, the driver lease and the sinks; `wal.crashpoints` holds the named crash
points of every layer.
"""

from wal.auth import RecordAuthenticator, RecordKey
from wal.batched import BatchedWriteAheadLog
from wal.errors import (
    CorruptRecordError,
    RecordAuthenticationError,
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
    "RecordAuthenticationError",
    "RecordAuthenticator",
    "RecordHandle",
    "RecordKey",
    "RecordNotFoundError",
    "WALClosedError",
    "WALError",
    "WALStatistics",
    "WALTimeoutError",
    "WALValueError",
    "WriteAheadLog",
    "open_wal",
]
