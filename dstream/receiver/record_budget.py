"""The bound on a receiver's records stored but not yet allocated to a batch.

Blocks a receiver stored wait in the ReceivedBlockTracker's unallocated queue until the JobGenerator
allocates them to a batch. When the pipeline is slow the generator waits for the scheduler (its bound
on pending batches), allocation pauses, and without a bound that queue would grow with the input. The
supervisor therefore takes the block's records from this budget before storing it and waits while the
budget is spent; the ReceiverTracker gives them back when it allocates the block. A receiver waiting
here stops acknowledging (the push receiver delays its acks), so the producer is slowed.

One rule keeps a block larger than the whole budget from waiting forever: a block is admitted whenever
nothing else is outstanding. A waiter wakes as soon as the stop event is set and is admitted: a stopping
receiver flushes the records it already took (its block queue bounds them), it never drops them.

The budget lives in the tracker, one per stream, so it survives the supervisor's restarts.
"""

from __future__ import annotations

import threading
import time

from dstream.errors import DStreamValueError

_STOP_CHECK_S = 0.1  # a waiter re-checks the stop event at least this often


class RecordBudget:
    """At most `records_max` records of blocks stored and not yet allocated (None: no bound)."""

    def __init__(self, records_max: int | None) -> None:
        if records_max is not None and (
            not isinstance(records_max, int) or isinstance(records_max, bool) or records_max < 1
        ):
            raise DStreamValueError(f"records_max must be an int >= 1 or None, got {records_max!r}")
        self.records_max = records_max
        self._outstanding: dict[str, int] = {}
        self._total = 0
        self._cond = threading.Condition()

    @property
    def outstanding_records(self) -> int:
        with self._cond:
            return self._total

    def acquire(self, block_id: str, records: int, stop: threading.Event) -> None:
        """Wait for room for a block of `records` records (or for `stop`), then count it as outstanding."""
        with self._cond:
            while not self._has_room(records) and not stop.is_set():
                self._cond.wait(_STOP_CHECK_S)
            self._outstanding[block_id] = self._outstanding.get(block_id, 0) + records
            self._total += records

    def try_acquire(self, block_id: str, records: int, wait_s: float) -> bool:
        """Like `acquire`, but give up after `wait_s` seconds without room (False: nothing counted).

        For a receiver on a worker, whose requests must each be answered within a bound.
        """
        deadline = time.monotonic() + wait_s
        with self._cond:
            while not self._has_room(records):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _STOP_CHECK_S))
            self._outstanding[block_id] = self._outstanding.get(block_id, 0) + records
            self._total += records
            return True

    def _has_room(self, records: int) -> bool:
        return self.records_max is None or self._total == 0 or self._total + records <= self.records_max

    def release(self, block_ids: list[str]) -> None:
        """Give back the records of blocks allocated (or that failed to store); unknown ids are ignored."""
        with self._cond:
            for block_id in block_ids:
                self._total -= self._outstanding.pop(block_id, 0)
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every waiter so it re-checks its stop event now."""
        with self._cond:
            self._cond.notify_all()
