"""BatchedWriteAheadLog against a scripted wrapped log: grouping, errors, bounds, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import wal
from wal.batched import BatchedWriteAheadLog
from wal.stats import WALStatistics

WAIT_S = 10.0


class ScriptedLog:
    """Stands in for FileBasedWriteAheadLog: records each group; the first group can be held."""

    def __init__(self, hold_first: bool = False, fail_with: Exception | None = None) -> None:
        self.groups: list[list[tuple[bytes, int]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_with = fail_with
        self.closed = False

    def write_batch(self, records: Sequence[tuple[bytes, int]]) -> list[wal.RecordHandle]:
        self.entered.set()
        assert self.release.wait(WAIT_S)
        if self.fail_with is not None:
            raise self.fail_with
        self.groups.append(list(records))
        base = sum(len(g) for g in self.groups[:-1])
        return [wal.RecordHandle("log-0000000000-0-1", base + i, len(d)) for i, (d, _) in enumerate(records)]

    def statistics(self) -> WALStatistics:
        return WALStatistics()

    def close(self) -> None:
        self.closed = True


def batched(inner: ScriptedLog, **options: Any) -> BatchedWriteAheadLog:
    return BatchedWriteAheadLog(inner, **options)  # type: ignore[arg-type]


def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition on another thread's progress."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        threading.Event().wait(0.005)


def spawn(log: BatchedWriteAheadLog, data: bytes, time_ms: int, out: dict[int, Any]) -> threading.Thread:
    def run() -> None:
        try:
            out[time_ms] = log.write(data, time_ms)
        except Exception as exc:
            out[time_ms] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_writes_queued_behind_a_commit_go_together_in_one_group() -> None:
    inner = ScriptedLog(hold_first=True)
    log = batched(inner)
    out: dict[int, Any] = {}
    threads = [spawn(log, b"3", 3, out)]
    assert inner.entered.wait(WAIT_S)
    threads += [spawn(log, str(t).encode(), t, out) for t in (5, 8, 12, 10)]
    until(lambda: len(log._queue) == 4)
    inner.release.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert inner.groups[0] == [(b"3", 3)]
    assert sorted(inner.groups[1]) == sorted((str(t).encode(), t) for t in (5, 8, 12, 10))
    assert all(isinstance(h, wal.RecordHandle) for h in out.values())
    assert len({out[t].offset for t in out}) == 5  # each caller got its own record's handle
    log.close()
    assert log.statistics().batches_committed == 2 and log.statistics().batch_records_max == 4


def test_a_failed_commit_fails_every_writer_in_the_group_with_the_cause() -> None:
    log = batched(ScriptedLog(fail_with=OSError("disk on fire")))
    with pytest.raises(wal.WALError, match="disk on fire") as info:
        log.write(b"x", 1)
    assert isinstance(info.value.__cause__, OSError)
    log.close()


def test_close_closes_the_wrapped_log_and_later_writes_fail_clearly() -> None:
    inner = ScriptedLog()
    log = batched(inner)
    log.write(b"a", 1)
    log.close()
    log.close()
    assert inner.closed
    with pytest.raises(wal.WALClosedError, match="after close"):
        log.write(b"b", 2)


def test_close_fails_queued_writes_and_lets_the_group_in_flight_finish() -> None:
    inner = ScriptedLog(hold_first=True)
    log = batched(inner)
    out: dict[int, Any] = {}
    threads = [spawn(log, b"first", 1, out)]
    assert inner.entered.wait(WAIT_S)
    threads += [spawn(log, b"queued", t, out) for t in (2, 3, 4)]
    until(lambda: len(log._queue) == 3)
    closer = threading.Thread(target=log.close)
    closer.start()
    for thread in threads[1:]:
        thread.join(WAIT_S)
    assert all(isinstance(out[t], wal.WALClosedError) for t in (2, 3, 4))
    inner.release.set()
    closer.join(WAIT_S)
    threads[0].join(WAIT_S)
    assert isinstance(out[1], wal.RecordHandle) and inner.closed


def test_a_full_queue_blocks_then_times_out() -> None:
    inner = ScriptedLog(hold_first=True)
    log = batched(inner, queue_size_max=1, timeout_s=0.2)
    out: dict[int, Any] = {}
    threads = [spawn(log, b"in flight", 1, out)]
    assert inner.entered.wait(WAIT_S)
    threads.append(spawn(log, b"queued", 2, out))
    until(lambda: len(log._queue) == 1)
    with pytest.raises(wal.WALTimeoutError, match="queue full"):
        log.write(b"no room", 3)
    for thread in threads:
        thread.join(WAIT_S)
    assert isinstance(out[1], wal.WALTimeoutError)  # not durable within 0.2 s either
    inner.release.set()
    log.close()


@pytest.mark.parametrize("option", ["queue_size_max", "timeout_s", "batch_records_max"])
def test_limits_must_be_positive(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        batched(ScriptedLog(), **{option: 0})
