"""Counters a log keeps about itself, returned as an immutable snapshot by `statistics()`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Drop:
    """Bytes removed from storage by recovery or repair: which file, from where, how much, why."""

    path: str
    offset: int
    bytes_dropped: int
    reason: str


@dataclass(frozen=True, slots=True)
class WALStatistics:
    """A snapshot of a log's counters since it was opened.

    Attributes:
        records_written: records made durable by this handle.
        payload_bytes_written: their payload bytes (frames and headers excluded).
        commits: physical writes (one append + fsync, or one object put), each holding >= 1 record.
        segments_created / segments_deleted: by this handle; delete_failures counts swallowed errors.
        dropped: torn tails truncated on reopen and corruption cut by repair, in the order found.
        batches_committed / batch_records_max: group commits by BatchedWriteAheadLog (0 otherwise).
    """

    records_written: int = 0
    payload_bytes_written: int = 0
    commits: int = 0
    segments_created: int = 0
    segments_deleted: int = 0
    delete_failures: int = 0
    dropped: tuple[Drop, ...] = field(default_factory=tuple)
    batches_committed: int = 0
    batch_records_max: int = 0
