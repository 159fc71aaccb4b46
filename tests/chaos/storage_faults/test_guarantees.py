"""Under random seeded storage faults the engine's guarantees hold: a call succeeds or fails cleanly,
and nothing acknowledged is lost, nothing unacknowledged is shown, nothing is shown twice.

Faults here are the ones an engine must survive (errors, SlowDown, torn writes that fail, ENOSPC,
latency); lost fsyncs, which no engine survives, are in test_fault_kinds. Each example is a fresh
directory and a fresh plan seed; a failure is "a restart": the writer is dropped and opened again.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import wal
from checkpoint.errors import CheckpointError, DriverLeaseError
from checkpoint.layout import CheckpointName
from checkpoint.lease import acquire_driver_lease
from checkpoint.metadata import MetadataCheckpoint, list_checkpoints, read_latest, write_checkpoint
from dstream.errors import DStreamError
from dstream.sinks.file_sinks import TransactionalFileSink
from tests.chaos.storage_faults.conftest import PROTOCOL, installed
from wal.storage import MemoryStorage, storage_for

ATTEMPTS_MAX = 60
seeds = st.integers(0, 2**31)


def survivable(rate: float) -> list[dict[str, Any]]:
    """Faults an engine must survive, each at about `rate` of the calls it can hit."""
    return [
        {"fault": "error", "probability": rate},
        {"fault": "slowdown", "probability": rate / 2},
        {"fault": "torn", "probability": rate},
        {"fault": "enospc", "probability": rate / 2},
        {"fault": "latency", "probability": rate, "latency_ms": 30},
    ]


@contextlib.contextmanager
def faulty_dir(seed: int, rate: float, *, inner_memory: bool = False) -> Iterator[tuple[str, str]]:
    """(faulty URL, plain URL) of one fresh directory under random faults; latency never sleeps."""
    if inner_memory:
        inner = MemoryStorage(storage_for("memory://").fs, "memory")  # type: ignore[attr-defined]
        root = f"/faulty-guarantees/{seed}-{rate}"
        with installed(survivable(rate), seed, inner, sleep=lambda s: None):
            yield f"{PROTOCOL}://{root}", f"memory://{root}"
        inner.delete(root, recursive=True)
        return
    with tempfile.TemporaryDirectory() as root, installed(survivable(rate), seed, sleep=lambda s: None):
        yield f"{PROTOCOL}://{root}", root


def is_subsequence(sub: Sequence[bytes], seq: Sequence[bytes]) -> bool:
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


def retried(call: Any, *args: Any, **kwargs: Any) -> Any:
    """`call` until it succeeds (each failure must be a clean error), at most ATTEMPTS_MAX times."""
    for _ in range(ATTEMPTS_MAX):
        try:
            return call(*args, **kwargs)
        except (OSError, wal.WALError, CheckpointError, DStreamError):
            continue
    raise AssertionError(f"{call.__name__} failed {ATTEMPTS_MAX} times in a row")


# -- the WAL -------------------------------------------------------------------------------------


def write_under_faults(url: str, batched: bool, records_n: int) -> tuple[list[Any], list[bytes]]:
    """Write records, reopening after each failure; returns (acknowledged (handle, payload), attempted)."""
    acked: list[Any] = []
    attempted: list[bytes] = []
    log = retried(wal.open_wal, url, batched=batched)
    try:
        for i in range(records_n):
            payload = f"record-{i}".encode() * (1 + i % 7)
            attempted.append(payload)
            try:
                acked.append((log.write(payload, i), payload))
            except wal.WALError:
                with contextlib.suppress(Exception):
                    log.close()
                log = retried(wal.open_wal, url, batched=batched)
    finally:
        with contextlib.suppress(Exception):
            log.close()
    return acked, attempted


@settings(max_examples=12)
@given(seed=seeds, batched=st.booleans(), memory=st.booleans())
def test_a_wal_round_trip_loses_no_acknowledged_record(seed: int, batched: bool, memory: bool) -> None:
    with faulty_dir(seed, 0.08, inner_memory=memory) as (url, plain):
        acked, attempted = write_under_faults(f"{url}/wal", batched, 40)
        assert acked, "no write succeeded at all: the fault rate is too high to test anything"
        with wal.open_wal(f"{plain}/wal") as log:
            found = list(log.read_all())
            assert [log.read(handle) for handle, _ in acked] == [p for _, p in acked]
        with retried(wal.open_wal, f"{url}/wal") as faulty_reader:  # reading under faults: right or raise
            for handle, payload in acked[:10]:
                assert retried(faulty_reader.read, handle) == payload
    assert is_subsequence([p for _, p in acked], found)  # every acknowledged record, in order
    assert set(found) <= set(attempted) and len(found) == len(set(found))  # nothing invented or doubled


# -- metadata checkpoints and the lease ----------------------------------------------------------


@settings(max_examples=12)
@given(seed=seeds, memory=st.booleans())
def test_metadata_checkpoints_show_exactly_the_acknowledged_ones(seed: int, memory: bool) -> None:
    with faulty_dir(seed, 0.15, inner_memory=memory) as (url, plain):
        acked: list[CheckpointName] = []
        for t in range(1, 16):
            name = CheckpointName(t * 1000, 0)
            try:
                write_checkpoint(f"{url}/ckpt", MetadataCheckpoint(t * 1000, b"graph"), name, key=None)
                acked.append(name)
            except OSError:  # PublishError is an OSError
                pass
        assert list_checkpoints(f"{plain}/ckpt") == acked
        for _ in range(5):  # read under faults: the newest acknowledged one, or a clean error
            try:
                latest, _skipped = read_latest(f"{url}/ckpt", key=None)
            except OSError:
                continue
            assert latest is not None and latest.batch_ms == acked[-1].name_ms


class StepClock:
    """A lease clock that stands still until a driver waits, then jumps (a manual clock)."""

    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def time_ms(self) -> int:
        return self.now_ms

    def wait_until(self, time_ms: int) -> None:
        self.now_ms = max(self.now_ms, time_ms)


@settings(max_examples=12)
@given(seed=seeds, memory=st.booleans())
def test_the_lease_under_faults_has_one_holder_and_is_released(seed: int, memory: bool) -> None:
    """On object stores an attempt that failed after taking its epoch leaves a lease that expires
    (as a killed driver's does): the retry waits it out, on a manual clock."""
    with faulty_dir(seed, 0.15, inner_memory=memory) as (url, plain):
        options: dict[str, Any] = {"lease_timeout_s": 60.0, "clock": StepClock()}
        lease = retried(acquire_driver_lease, f"{url}/ckpt", "driver-1", wait_timeout_s=120.0, **options)
        try:
            retried(lease.check)  # under faults the check itself may fail, cleanly
            try:
                second = acquire_driver_lease(f"{plain}/ckpt", "driver-2", **options)
            except DriverLeaseError:
                pass
            else:
                second.release()
                raise AssertionError("a second driver took a lease that was held")
        finally:
            retried(lease.release)
        acquire_driver_lease(f"{plain}/ckpt", "driver-3", **options).release()


# -- a transactional sink ------------------------------------------------------------------------


def commit_under_faults(url: str, batch_ms: int, records: list[str]) -> None:
    """Run one batch as the runner does, restarting (a fresh sink, recover) after each failure."""
    for _ in range(ATTEMPTS_MAX):
        sink = TransactionalFileSink(url, output_id="out")  # per-process state starts afresh
        try:
            sink.recover()
            if sink.is_committed(batch_ms):
                return
            txn = sink.begin(batch_ms)
            try:
                staged = [sink.stage(txn, p, records[p::2]) for p in range(2)]
            except BaseException:
                with contextlib.suppress(Exception):
                    sink.abort(txn)
                raise
            sink.commit(txn, staged)
            return
        except (OSError, CheckpointError, DStreamError):
            continue
    raise AssertionError(f"batch {batch_ms} never committed in {ATTEMPTS_MAX} attempts")


@settings(max_examples=10)
@given(seed=seeds, memory=st.booleans())
def test_a_transactional_sink_commits_each_batch_exactly_once(seed: int, memory: bool) -> None:
    with faulty_dir(seed, 0.08, inner_memory=memory) as (url, plain):
        expected: dict[int, list[str]] = {}
        for batch_ms in range(1000, 7000, 1000):
            records = [f"{batch_ms}-{i}" for i in range(5)]
            commit_under_faults(f"{url}/out", batch_ms, records)
            expected[batch_ms] = records[0::2] + records[1::2]
        assert TransactionalFileSink(f"{plain}/out", output_id="out").read_committed() == expected
