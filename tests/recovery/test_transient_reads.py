"""Recovery's reads retry transient storage errors (`wal.transient_errors`): the checkpoint's listing
and reading, the metadata writer's listing and the WALs' read_all (the tracker's replay), which reads
a file again from the record after the last one it returned. Permanent errors (FileNotFoundError,
PermissionError, ...) and non-storage errors are not retried."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wal
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from tests.receiver.helpers import CountingReceiver, wait_for
from tests.recovery.support import BATCH_MS, SINK, new_context, record, run_batches
from wal.storage import DelegatingStorage, LocalStorage, register_storage, unregister_storage
from wal.storage.base import RandomAccess
from wal.transient_errors import READ_ATTEMPTS_MAX, TransientRetries, is_transient, retry_transient

# -- the policy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OSError(errno.EIO, "I/O error"), True),
        (OSError(errno.EBUSY, "SlowDown"), True),
        (TimeoutError("timed out"), True),
        (ConnectionResetError("reset"), True),
        (FileNotFoundError("gone"), False),
        (PermissionError("denied"), False),
        (IsADirectoryError("dir"), False),
        (ValueError("not storage"), False),
    ],
)
def test_which_errors_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_transient_error_is_retried_with_a_doubling_delay_until_the_attempts_are_spent() -> None:
    waits: list[float] = []
    calls = 0

    def read() -> str:
        nonlocal calls
        calls += 1
        raise OSError(errno.EIO, f"flaky {calls}")

    with pytest.raises(OSError, match="flaky 3"):
        retry_transient(read, "x", read_attempts_max=3, delay_s=0.5, wait=waits.append)
    assert (calls, waits) == (3, [0.5, 1.0])


def test_a_permanent_error_is_raised_at_once() -> None:
    waits: list[float] = []
    with pytest.raises(FileNotFoundError):
        retry_transient(_raise(FileNotFoundError("gone")), "x", wait=waits.append)
    assert waits == []


def test_an_attempt_that_made_progress_starts_a_new_run_of_attempts() -> None:
    waits: list[float] = []
    retries = TransientRetries("x", read_attempts_max=2, wait=waits.append)
    for _ in range(10):  # one failure after each step forward never spends the budget
        retries.failed(OSError(errno.EIO, "flaky"))
        retries.progressed()
    retries.failed(OSError(errno.EIO, "flaky"))
    with pytest.raises(OSError, match="last"):
        retries.failed(OSError(errno.EIO, "last"))
    assert waits == [0.5] * 11


@given(
    attempts_max=st.integers(1, 5),
    events=st.lists(st.sampled_from(["fail", "progress"]), max_size=40),
)
def test_the_budget_is_spent_only_by_failures_in_a_row(attempts_max: int, events: list[str]) -> None:
    waits: list[float] = []
    retries = TransientRetries("x", read_attempts_max=attempts_max, delay_s=1.0, wait=waits.append)
    in_row, expected_waits = 0, []
    for event in events:
        if event == "progress":
            retries.progressed()
            in_row = 0
            continue
        in_row += 1
        if in_row >= attempts_max:
            with pytest.raises(OSError):
                retries.failed(OSError(errno.EIO, "flaky"))
            break
        retries.failed(OSError(errno.EIO, "flaky"))
        expected_waits.append(2.0 ** (in_row - 1))
    assert waits == expected_waits


def test_read_attempts_max_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="read_attempts_max must be an int >= 1, got 0"):
        retry_transient(lambda: None, "x", read_attempts_max=0)


def _raise(exc: BaseException) -> Any:
    def read() -> None:
        raise exc

    return read


# -- the WAL's read_all (the tracker's replay) -----------------------------------------------------------


def test_read_all_reads_every_record_in_order_when_every_other_storage_read_fails(
    tmp_path: Path, flaky: FlakyReads
) -> None:
    url = f"flakyreads://{tmp_path}/log"
    with wal.open_wal(url, rolling_interval_ms=1000) as log:
        for n in range(6):  # one segment per record
            log.write(b"r%d" % n, 1000 * n + 1)
    flaky.every = {"/log": 2}
    with wal.open_wal(url, rolling_interval_ms=1000) as reader:
        assert list(reader.read_all()) == [b"r%d" % n for n in range(6)]
    assert len(flaky.failed) >= 3  # no read of the log went through without a retry


def test_read_all_gives_up_after_read_attempts_max_failures_in_a_row(
    tmp_path: Path, flaky: FlakyReads
) -> None:
    url = f"flakyreads://{tmp_path}/log"
    with wal.open_wal(url) as log:
        log.write(b"r", 1)
    flaky.failures = {"/log": READ_ATTEMPTS_MAX}
    with wal.open_wal(url) as reader, pytest.raises(OSError, match="simulated"):
        list(reader.read_all())
    assert len(flaky.failed) == READ_ATTEMPTS_MAX


# -- a restart on a flaky checkpoint directory --------------------------------------------------------------


class FlakyReads(DelegatingStorage):
    """Local disk whose reads of paths containing a key fail `failures[key]` times (EIO), then work."""

    def __init__(self) -> None:
        super().__init__(LocalStorage())
        self.failures: dict[str, int] = {}  # the next n reads of paths containing the key fail
        self.every: dict[str, int] = {}  # every n-th read of paths containing the key fails
        self.failed: list[str] = []
        self._calls = 0

    def _maybe_fail(self, path: str) -> None:
        for key, left in self.failures.items():
            if key in path and left > 0:
                self.failures[key] = left - 1
                self.failed.append(key)
                raise OSError(errno.EIO, f"read of {path} failed (simulated)")
        for key, n in self.every.items():
            if key in path:
                self._calls += 1
                if self._calls % n == 0:
                    self.failed.append(key)
                    raise OSError(errno.EIO, f"read of {path} failed (simulated)")

    def read(self, path: str) -> bytes:
        self._maybe_fail(path)
        return super().read(path)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self._maybe_fail(path)
        return super().read_range(path, offset, length)

    def open_read(self, path: str) -> AbstractContextManager[RandomAccess]:
        self._maybe_fail(path)
        return super().open_read(path)

    def list_names(self, path: str) -> list[str]:
        self._maybe_fail(path)
        return super().list_names(path)


@pytest.fixture
def flaky() -> Iterator[FlakyReads]:
    storage = FlakyReads()
    register_storage("flakyreads", lambda protocol, options: storage)
    try:
        yield storage
    finally:
        unregister_storage("flakyreads")


class PicklableCountingReceiver(CountingReceiver):
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_thread"] = None
        return state


def test_a_restart_reads_its_checkpoint_and_replays_the_tracker_wal_through_transient_errors(
    tmp_path: Path, flaky: FlakyReads
) -> None:
    Context(conf=Conf().setMaster("local[2]").set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    path, clock = f"flakyreads://{tmp_path}/ckpt", ManualClock(0)
    receiver = PicklableCountingReceiver(6, chunk=3)

    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        ssc.receiverStream(receiver).foreachRDD(record)
        return ssc

    first = StreamingContext.getOrCreate(path, setup, clock=clock)
    first.start()
    wait_for(lambda: receiver.next == 6)
    tracker = first.runtime.block_allocator
    assert tracker is not None
    wait_for(lambda: len(tracker.block_tracker.get_unallocated_blocks(first.graph.input_streams[0]._id)) == 2)
    run_batches(first, clock, BATCH_MS, BATCH_MS)
    first.stop(stopSparkContext=False)
    assert {1000: list(range(6))} == SINK

    # Every read of the checkpoint listing and files, and of the tracker's WAL, fails twice first.
    flaky.failures = {"/metadata": 2, "/receivedBlockMetadata": 2}
    second = StreamingContext.getOrCreate(path, setup, clock=clock)
    second.start()
    assert sorted(flaky.failed) == ["/metadata"] * 2 + ["/receivedBlockMetadata"] * 2
    run_batches(second, clock, 2 * BATCH_MS, 2 * BATCH_MS)
    second.stop(stopSparkContext=False)
    assert {1000: list(range(6)), 2000: []} == SINK
