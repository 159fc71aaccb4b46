"""Group commit: many threads call `write`; one writer thread makes each group durable with one commit.

Why: a durable write costs one fsync (local) or one object put (S3) whatever its size, so concurrent
writers sharing one commit multiply throughput (Spark added BatchedWriteAheadLog for its driver
on S3). Unlike Spark, a group is not an opaque aggregate record: it is the records' own frames written
by `FileBasedWriteAheadLog.write_batch`, so every record keeps its own handle (`read(handle)` works)
and `read_all` needs no de-aggregation. A group goes to the segment chosen by its newest record time
(Spark's rule), so `clean` never drops a record newer than its threshold.

Limits: `queue_size_max` records may wait (a writer blocks for room, up to its timeout);
`batch_records_max` / `batch_bytes_max` cap one commit; `timeout_s` bounds each `write`. After
`close()`, queued writes fail with WALClosedError; the group already being committed completes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace

from wal.errors import WALClosedError, WALError, WALTimeoutError, WALValueError
from wal.log import FileBasedWriteAheadLog, RecordHandle, WriteAheadLog, check_record
from wal.stats import WALStatistics


class _Pending:
    """One queued record; its caller waits on a pre-acquired lock (much cheaper than an Event)."""

    __slots__ = ("_waiter", "data", "error", "handle", "time_ms")

    def __init__(self, data: bytes, time_ms: int) -> None:
        self.data = data
        self.time_ms = time_ms
        self.handle: RecordHandle | None = None
        self.error: BaseException | None = None
        self._waiter = threading.Lock()
        self._waiter.acquire()

    def finish(self, handle: RecordHandle | None, error: BaseException | None) -> None:
        """Record the outcome and wake the caller (called exactly once)."""
        self.handle, self.error = handle, error
        self._waiter.release()

    def wait(self, timeout_s: float) -> bool:
        """Whether the outcome arrived within `timeout_s`."""
        return self._waiter.acquire(timeout=max(0.0, timeout_s))


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise WALValueError(f"{name} must be a positive number, got {value!r}")


class BatchedWriteAheadLog(WriteAheadLog):
    """A WriteAheadLog whose concurrent writes are group-committed by one background thread."""

    def __init__(
        self,
        wrapped: FileBasedWriteAheadLog,
        *,
        queue_size_max: int = 10_000,
        batch_records_max: int = 4096,
        batch_bytes_max: int = 64 << 20,
        timeout_s: float = 30.0,
    ) -> None:
        for name, value in [("queue_size_max", queue_size_max), ("batch_records_max", batch_records_max),
                            ("batch_bytes_max", batch_bytes_max), ("timeout_s", timeout_s)]:  # fmt: skip
            _positive(name, value)
        self._wrapped = wrapped
        self._queue_size_max = queue_size_max
        self._batch_records_max = batch_records_max
        self._batch_bytes_max = batch_bytes_max
        self._timeout_s = timeout_s
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._closed = False
        self._batches = 0
        self._batch_records_seen_max = 0
        self._thread = threading.Thread(target=self._run, name="wal-group-commit", daemon=True)
        self._thread.start()

    def write(self, data: bytes, time_ms: int) -> RecordHandle:
        """Queue one record and block until its group is durable (or `timeout_s` passes).

        Raises:
            WALClosedError: the log was closed before the record was committed.
            WALTimeoutError: not durable within timeout_s; the record may still be committed later.
            WALError: the group's commit failed (the cause is chained).
        """
        check_record(data, time_ms)
        pending = _Pending(bytes(data), time_ms)
        deadline = time.monotonic() + self._timeout_s
        with self._cond:
            while not self._closed and len(self._queue) >= self._queue_size_max:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WALTimeoutError(f"WAL queue full ({self._queue_size_max}) for {self._timeout_s}s")
                self._cond.wait(remaining)
            if self._closed:
                raise WALClosedError(f"write(time_ms={time_ms}) after close()")
            self._queue.append(pending)
            self._cond.notify_all()
        if not pending.wait(deadline - time.monotonic()):
            raise WALTimeoutError(f"write(time_ms={time_ms}) not durable within {self._timeout_s}s")
        if isinstance(pending.error, WALClosedError):
            raise WALClosedError(str(pending.error))
        if pending.error is not None:
            raise WALError(f"group commit failed: {pending.error}") from pending.error
        assert pending.handle is not None
        return pending.handle

    def _take_batch(self) -> list[_Pending] | None:
        """Wait for records and take up to the batch limits; None once closed and drained."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            size = len(batch[0].data)
            while self._queue and len(batch) < self._batch_records_max:
                size += len(self._queue[0].data)
                if size > self._batch_bytes_max:
                    break
                batch.append(self._queue.popleft())
            self._cond.notify_all()  # room in the queue for blocked writers
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            try:
                handles = self._wrapped.write_batch([(p.data, p.time_ms) for p in batch])
            except BaseException as exc:  # hand every failure to the waiting callers
                for pending in batch:
                    pending.finish(None, exc)
                continue
            with self._cond:
                self._batches += 1
                self._batch_records_seen_max = max(self._batch_records_seen_max, len(batch))
            for pending, handle in zip(batch, handles, strict=True):
                pending.finish(handle, None)

    def read(self, handle: RecordHandle) -> bytes:
        return self._wrapped.read(handle)

    def read_all(self) -> Iterator[bytes]:
        return self._wrapped.read_all()

    def clean(self, before_ms: int, *, wait: bool = False) -> None:
        self._wrapped.clean(before_ms, wait=wait)

    def close(self) -> None:
        """Fail queued writes, let the group in flight finish, stop the thread, close the wrapped log."""
        with self._cond:
            already = self._closed
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for pending in queued:
            pending.finish(
                None, WALClosedError(f"close() was called before write(time_ms={pending.time_ms})")
            )
        if not already:
            self._thread.join(self._timeout_s)
            self._wrapped.close()

    def statistics(self) -> WALStatistics:
        with self._cond:
            batches, largest = self._batches, self._batch_records_seen_max
        return replace(self._wrapped.statistics(), batches_committed=batches, batch_records_max=largest)
