"""The quarantine writer: copies a failed batch's input to `<checkpoint>/quarantine/` (the I/O shell).

The JobScheduler decides when a batch is quarantined (dstream.streaming.failed_batch_policy); this
module collects each input stream's RDD of the batch (from the block store, or the receiver WAL
when that copy is gone) and publishes it with the error through checkpoint.quarantine, create-once.
A driver that dies after the write and before the checkpoint that records the batch re-runs it
after restart; when it fails again, the existing file is kept: the batch is quarantined once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from checkpoint.quarantine import Quarantine, QuarantinedBatch
from dstream.rdd.rdd import RDD
from dstream.streaming.runtime import CheckpointLocation, QuarantineReceipt
from wal.crashpoints import QUARANTINE_AFTER_WRITE, crash_point


class CheckpointQuarantiner:
    """Implements the core's `BatchQuarantiner` on the checkpoint directory.

    `fence` is called right before the write: a driver that lost its lease quarantines nothing (the
    batch stays pending for its successor)."""

    def __init__(self, location: CheckpointLocation, fence: Callable[[], None] | None = None) -> None:
        self._quarantine = Quarantine(location.url, location.storage_options)
        self._fence = fence

    def quarantine(
        self, time_ms: int, input_rdds: Mapping[int, RDD[Any]], error: str, attempts: int
    ) -> QuarantineReceipt:
        """Store the batch's records and error (see the module docstring); returns where and how many."""
        records = {str(sid): rdd.collect() for sid, rdd in sorted(input_rdds.items())}
        batch = QuarantinedBatch(time_ms, error, attempts, records)
        if self._fence is not None:
            self._fence()
        written = self._quarantine.put(batch)
        crash_point(QUARANTINE_AFTER_WRITE)
        stored = batch if written else self._quarantine.get(time_ms) or batch
        counts = {int(sid): n for sid, n in stored.counts().items()}
        return QuarantineReceipt(self._quarantine.location(time_ms), counts, written)
