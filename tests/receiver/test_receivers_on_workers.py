"""Receivers on Dask workers (dstream.receiver.worker_launcher): they run there, their output is exact,
two of them (a join) take a worker each while tasks still run, and they survive the SIGKILL of their
worker, with the receiver WAL on (every acknowledged record exactly once) or with a replicated storage
level and no WAL (every block reported to the driver is read from its replica).

The driver runs on a `ManualClock` (the receivers on the workers cut blocks on their own clocks; push
receivers store each commit at once), so every batch holds exactly the blocks reported before the test
moved the clock, whatever the timing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstream.backends.block_manager import ReceivedBlockId
from dstream.client import PushClient
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.rdd.storage import StorageLevel
from dstream.receiver.block_handler import StateRecord, decode_log_record
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.wal_registry import receiver_wals
from dstream.receiver.worker_host import SERVICE, ReceiverHost
from dstream.receiver.worker_launcher import RemoteSupervisor, WorkerLauncher
from dstream.streaming import StreamingContext
from dstream.streaming.listener import StreamingListener
from tests.support.contexts import engine_context, streaming_context
from tests.support.dask_cluster import dask_conf, kill_all, wait_gone

WAIT_S = 120.0
BATCH_MS = 1000


def _conf(wal: bool) -> Conf:
    conf = dask_conf().set("spark.streaming.receiver.writeAheadLog.enable", str(wal).lower())
    # The default worker timeout: a SIGKILLed worker is noticed at once (its nanny sees the process
    # end), and a short one declares workers of a loaded machine dead while the cluster starts.
    return conf.set("spark.streaming.receiverRestartDelay", "200ms")


def _tracker(ssc: StreamingContext) -> ReceiverTracker:
    tracker = ssc.runtime.block_allocator
    assert isinstance(tracker, ReceiverTracker)
    return tracker


def _handle(ssc: StreamingContext, stream: Any) -> RemoteSupervisor:
    """The driver's handle on the stream's receiver, once placed on a worker (its pid known)."""
    stream.address()
    handle = _tracker(ssc).handle(stream._id)
    assert isinstance(handle, RemoteSupervisor), handle
    return handle


def _collect(stream: Any) -> list[Any]:
    out: list[Any] = []  # no lock: the graph is checkpointed (pickled), and batches run one at a time

    def record(rdd: Any) -> None:
        out.extend(rdd.collect())

    stream.foreachRDD(record)
    return out


def _batch(ssc: StreamingContext, clock: ManualClock) -> int:
    target = (clock.time_ms() // BATCH_MS + 1) * BATCH_MS
    clock.set_time(target)
    assert ssc.wait_for_batch(target, WAIT_S), f"batch {target} did not complete"
    return target


def _send(stream: Any, producer: str, records: list[str]) -> None:
    host, port = stream.address()
    with PushClient(host, port, producer_id=producer, timeout_s=WAIT_S) as client:
        for record in records:
            client.send([record])


@pytest.fixture
def shared_sc(dask_master: str) -> Iterator[Context]:
    with engine_context(_conf(wal=True), dask_master) as sc:
        yield sc


class StartedListener(StreamingListener):
    """Remembers where the first receiver started, as the listener bus says."""

    def __init__(self) -> None:
        self.location: str | None = None
        self._started = threading.Event()

    def onReceiverStarted(self, receiverStarted: Any) -> None:
        self.location = receiverStarted.receiverInfo().location()
        self._started.set()

    def wait(self, timeout_s: float) -> bool:
        return self._started.wait(timeout_s)


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "memory-only"])
def test_a_push_receiver_runs_on_a_worker_and_its_output_is_exact(
    dask_master: str, tmp_path: Path, wal: bool
) -> None:
    # Without the WAL every block is read from the receiver's worker (locally or fetched): no fallback.
    level = StorageLevel.MEMORY_AND_DISK_2 if wal else StorageLevel.MEMORY_ONLY
    clock = ManualClock(0)
    with engine_context(_conf(wal), dask_master) as sc, streaming_context(sc, clock) as ssc:
        if wal:
            ssc.checkpoint(str(tmp_path / "ck"))
        stream = ssc.pushStream(storageLevel=level)
        out = _collect(stream.map(str.upper))
        started = StartedListener()
        ssc.addStreamingListener(started)
        ssc.start()
        handle = _handle(ssc, stream)
        assert stream.address() == handle.address
        workers = sc.worker_processes()
        assert handle.worker in workers and handle.worker_pid == workers[handle.worker] != os.getpid()
        assert started.wait(WAIT_S) and started.location == handle.worker  # on the listener bus too
        records = [f"r{i}" for i in range(40)]
        _send(stream, "p", records)
        budget = _tracker(ssc).budget(stream._id)
        assert budget.outstanding_records == len(records)  # the worker took them from the driver's budget
        batch = _batch(ssc, clock)
        assert budget.outstanding_records == 0  # the allocation gave them back
        assert sorted(out) == sorted(r.upper() for r in records)
        clock.set_time(batch + BATCH_MS // 2)  # no batch due: the cleanup's threshold must be past
        _tracker(ssc).cleanup_old_blocks_and_batches(batch + 1)  # what a checkpoint's cleanup does
        assert not any(isinstance(b, ReceivedBlockId) for b in sc.backend.block_manager.block_ids())
        if wal:  # the receiver's snapshot went to its WAL on the worker before the tracker forgot
            location = _tracker(ssc).wal_location(stream._id)
            assert location is not None
            log = receiver_wals(sc.executor_env).for_reading(*location)
            states = [r for r in map(decode_log_record, log.read_all()) if isinstance(r, StateRecord)]
            assert states and states[-1].state["durable"] == {"p": len(records) - 1}


def _rate_on_worker(plugin_name: str, stream_id: int, dask_worker: Any) -> float | None:
    host = dask_worker.plugins[plugin_name].env.service(SERVICE, ReceiverHost)
    hosted = host._current(stream_id)
    return None if hosted is None else hosted.supervisor.limiter.rate_per_s


def test_the_drivers_rate_limit_reaches_the_receiver_on_its_worker(
    shared_sc: Context, tmp_path: Path
) -> None:
    with streaming_context(shared_sc, ManualClock(0)) as ssc:
        ssc.checkpoint(str(tmp_path / "ck"))
        stream = ssc.pushStream()
        _collect(stream)
        ssc.start()
        handle = _handle(ssc, stream)
        stream.address()  # placed and started
        assert handle.worker is not None
        _tracker(ssc).update_rate_limit(stream._id, 1234.0)
        plugin = shared_sc.backend.executor_plugin_name  # type: ignore[attr-defined]
        rate = shared_sc.backend.client.run(  # type: ignore[attr-defined]
            _rate_on_worker, plugin, stream._id, workers=[handle.worker]
        )
        assert rate == {handle.worker: 1234.0}


class StartsListener(StreamingListener):
    """The monotonic times at which receivers started, and their errors, as the listener bus says."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()

    def onReceiverError(self, receiverError: Any) -> None:
        with self._changed:
            self.errors.append(receiverError.receiverInfo().lastErrorMessage())

    def onReceiverStarted(self, receiverStarted: Any) -> None:
        with self._changed:
            self.times.append(time.monotonic())
            self._changed.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.times) >= count, timeout_s)


def test_a_restart_asked_on_the_driver_waits_the_delay_it_names_on_the_worker(
    shared_sc: Context, tmp_path: Path
) -> None:
    delay_ms = 4000  # far above the configured restart delay (200 ms), so a delay left behind shows
    with streaming_context(shared_sc, ManualClock(0)) as ssc:
        ssc.checkpoint(str(tmp_path / "ck"))
        stream = ssc.pushStream()
        _collect(stream)
        starts = StartsListener()
        ssc.addStreamingListener(starts)
        ssc.start()
        handle = _handle(ssc, stream)
        assert starts.wait_for(1, WAIT_S)
        asked = time.monotonic()
        handle.receiver.restart("asked by the test", None, delay_ms)
        assert starts.wait_for(2, WAIT_S), "the receiver did not start again"
        assert starts.times[1] - asked >= delay_ms / 1000  # a lower bound: no load makes it shorter
        assert handle.running and _tracker(ssc).handle(stream._id) is handle  # restarted in place
        # Reported once, by the worker's supervisor (the error was reported before the start event).
        assert [e for e in starts.errors if "asked by the test" in e] == [
            f"restarting receiver {stream._id}: asked by the test"
        ], starts.errors


def test_two_receivers_take_a_worker_each_and_their_join_is_exact(shared_sc: Context, tmp_path: Path) -> None:
    clock = ManualClock(0)
    with streaming_context(shared_sc, clock) as ssc:
        ssc.checkpoint(str(tmp_path / "ck"))
        a, b = ssc.pushStream(), ssc.pushStream()
        pairs = a.map(lambda r: (r.split(":")[0], r)).join(b.map(lambda r: (r.split(":")[0], r)))
        out = _collect(pairs)
        ssc.start()
        a.address(), b.address()  # both placed
        assert {_handle(ssc, a).worker, _handle(ssc, b).worker} == set(shared_sc.worker_processes())
        _send(a, "pa", [f"k{i}:a" for i in range(10)])
        _send(b, "pb", [f"k{i}:b" for i in range(5, 15)])
        _batch(ssc, clock)
        assert sorted(out) == [(f"k{i}", (f"k{i}:a", f"k{i}:b")) for i in sorted(range(5, 10), key=str)]


class PinnedPushReceiver(PushReceiver):
    """A push receiver that asks for one worker (`Receiver.preferredLocation`)."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def preferredLocation(self) -> str | None:
        return self.where


def test_a_receivers_preferred_location_is_honoured(shared_sc: Context, tmp_path: Path) -> None:
    wanted = sorted(shared_sc.worker_processes())[-1]  # not the one an unpinned receiver gets first
    with streaming_context(shared_sc, ManualClock(0)) as ssc:
        ssc.checkpoint(str(tmp_path / "ck"))
        stream = ssc.receiverStream(PinnedPushReceiver(wanted))
        _collect(stream)
        ssc.start()
        launcher = _tracker(ssc).launcher
        assert isinstance(launcher, WorkerLauncher)
        launcher.address(stream._id)  # placed
        assert _tracker(ssc).handle(stream._id).worker == wanted  # type: ignore[union-attr]


@pytest.fixture
def cluster_sc() -> Iterator[Context]:
    """A private local-cluster[2]: these tests kill its workers."""
    with engine_context(_conf(wal=True), "local-cluster[2]") as sc:
        pids = list(sc.worker_processes().values())
        try:
            yield sc
        finally:
            sc.stop()
            kill_all(wait_gone(pids))


class Producer(threading.Thread):
    """Sends records one frame each (retrying across the receiver's move); keeps what was acknowledged."""

    def __init__(self, address: tuple[str, int], records: list[str]) -> None:
        super().__init__(daemon=True)
        self.address, self.records = address, records
        self.acked: list[str] = []
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with PushClient(*self.address, producer_id="p", timeout_s=WAIT_S) as client:
                for record in self.records:
                    client.send([record])
                    with self.progress:
                        self.acked.append(record)
                        self.progress.notify_all()
        except BaseException as exc:
            self.error = exc

    def wait_acked(self, count: int) -> bool:
        with self.progress:
            return self.progress.wait_for(lambda: len(self.acked) >= count, WAIT_S)


def _kill(handle: RemoteSupervisor, sc: Context) -> None:
    pid = handle.worker_pid
    assert isinstance(pid, int) and pid > 0 and pid != os.getpid() and pid in sc.worker_processes().values()
    os.kill(pid, signal.SIGKILL)


def _wait_lost(handle: RemoteSupervisor) -> None:
    for _ in range(int(WAIT_S / 0.5)):
        if handle.await_termination(0.5):
            return
    raise AssertionError(f"the driver never noticed that worker {handle.worker} died")


@pytest.mark.chaos
def test_sigkill_of_the_receivers_worker_with_the_wal_loses_and_repeats_nothing(
    cluster_sc: Context, tmp_path: Path
) -> None:
    clock = ManualClock(0)
    records = [f"r{i}" for i in range(300)]
    with streaming_context(cluster_sc, clock) as ssc:
        ssc.checkpoint(str(tmp_path / "ck"))
        stream = ssc.pushStream()
        out = _collect(stream)
        ssc.start()
        victim = _handle(ssc, stream)
        producer = Producer(stream.address(), records)
        producer.start()
        assert producer.wait_acked(100), "the producer made no progress"
        _kill(victim, cluster_sc)  # mid-stream: frames are in flight
        _wait_lost(victim)
        lost_batch = _batch(ssc, clock)  # its blocks' only copies died: read from the receiver WAL
        lost_infos = _tracker(ssc).get_blocks_of_batch_and_stream(lost_batch, stream._id)
        assert any(victim.worker in i.locations for i in lost_infos)
        for _ in range(int(WAIT_S)):  # bounded: the receiver restarts elsewhere, the producer resends
            producer.join(0.2)
            _batch(ssc, clock)
            if not producer.is_alive():
                break
        assert producer.error is None, producer.error
        assert producer.acked == records
        _batch(ssc, clock)
        moved = _handle(ssc, stream)
        assert moved.launch_id != victim.launch_id and moved.worker_pid != victim.worker_pid
        assert stream.address() == stream.resolver()() == moved.address  # where it listens now
    assert sorted(out) == sorted(records)  # every acknowledged record exactly once


@pytest.mark.chaos
def test_sigkill_of_the_receivers_worker_without_wal_keeps_every_reported_block_on_its_replica(
    tmp_path: Path,
) -> None:
    """Guarantee without the WAL, with MEMORY_ONLY_2: every block the driver's tracker logged (so every
    record acknowledged to a producer) is read from its replica after the receiver's worker died, exactly
    once; records not yet stored when it died were never acknowledged (a producer resends them)."""
    with engine_context(_conf(wal=False), "local-cluster[2]") as sc:
        pids = list(sc.worker_processes().values())
        clock = ManualClock(0)
        records = [f"r{i}" for i in range(60)]
        try:
            with streaming_context(sc, clock) as ssc:
                stream = ssc.pushStream(storageLevel=StorageLevel.MEMORY_ONLY_2)
                out = _collect(stream)
                ssc.start()
                victim = _handle(ssc, stream)
                _send(stream, "p", records)  # each acknowledged: stored on two workers and reported
                _kill(victim, sc)
                _wait_lost(victim)
                batch = _batch(ssc, clock)
                infos = _tracker(ssc).get_blocks_of_batch_and_stream(batch, stream._id)
                assert infos and all(victim.worker in i.locations and len(i.locations) == 2 for i in infos)
        finally:
            sc.stop()
            kill_all(wait_gone(pids))
    assert sorted(out) == sorted(records)
