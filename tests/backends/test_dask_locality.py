"""Tasks run where their input is, on a real two-worker Dask cluster (dstream.rdd.locality,
dstream.backends.dask.locality).

Each task reports the worker it ran on (its executor id, the worker's address) beside its records, so
the assertions are about placement, never timing. A preference is loose, and Dask's work stealing may
move a task queued behind others on a busy worker to an idle one (that is the point of a loose
preference); so the placement checks run one task per job, where no worker is ever busy. The workers'
fetch counters (`DaskBlockManagerClient.fetch_counts`) show what locality saves: no block crosses
between workers when tasks run where their blocks are.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from dstream.backends.dask_blocks import DaskBlockManagerClient
from dstream.backends.executor_env import current_executor_env
from dstream.client import PushClient
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.rdd.rdd import RDD
from dstream.rdd.storage import StorageLevel
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.worker_launcher import RemoteSupervisor
from dstream.streaming import StreamingContext
from tests.backends.stalls import release, stall_once, wait_for_stalled_pid
from tests.support.contexts import engine_context, streaming_context
from tests.support.dask_cluster import dask_conf, kill_all, wait_gone

log = logging.getLogger(__name__)

WAIT_S = 120.0
PARTITIONS = 6
TRIGGER = "stall"


def _where(records: Iterator[Any]) -> list[tuple[str, list[Any]]]:
    return [(current_executor_env().executor_id, list(records))]


def _run_each_partition(sc: Context, rdd: RDD[Any]) -> dict[int, tuple[str, list[Any]]]:
    """Each partition in a job of its own: where its task ran and its records."""
    return {p: sc.runJob(rdd, _where, [p])[0] for p in range(rdd.getNumPartitions())}


def _holders(sc: Context, rdd: RDD[Any]) -> dict[int, tuple[str, ...]]:
    found = {p: sc._block_locations.get(rdd.id(), p) for p in range(rdd.getNumPartitions())}
    assert all(found.values()), found
    return found  # type: ignore[return-value]


def _fetched(sc: Context) -> tuple[int, int]:
    """Blocks and bytes all workers' tasks fetched from other workers so far."""
    blocks = sc.backend.block_manager
    assert isinstance(blocks, DaskBlockManagerClient)
    counts = blocks.fetch_counts().values()
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _persisted(sc: Context) -> RDD[Any]:
    rdd = sc.parallelize(range(600), PARTITIONS).map(lambda x: ("k" * 50, x)).persist()
    assert rdd.count() == 600  # computes and keeps every partition where its task ran
    return rdd


@pytest.mark.parametrize("locality", [True, False], ids=["locality", "anywhere"])
def test_a_persisted_partition_is_read_on_the_worker_holding_it(dask_master: str, locality: bool) -> None:
    conf = dask_conf(Conf().set("dstream.dask.locality", str(locality).lower()))
    with engine_context(conf, dask_master) as sc:
        rdd = _persisted(sc)
        holders = _holders(sc, rdd)
        before = _fetched(sc)
        ran = _run_each_partition(sc, rdd)
        fetched = tuple(a - b for a, b in zip(_fetched(sc), before, strict=True))
        log.info("locality=%s: %d blocks, %d bytes fetched between workers", locality, *fetched)
        print(f"locality={locality}: {fetched[0]} blocks, {fetched[1]} bytes fetched between workers")
        assert [ran[p][1] for p in range(PARTITIONS)] == [
            [("k" * 50, x) for x in range(p * 100, (p + 1) * 100)] for p in range(PARTITIONS)
        ]
        if locality:
            assert {p: ran[p][0] for p in ran} == {p: holders[p][0] for p in holders}
            assert fetched == (0, 0)
        else:  # where Dask put them: each task not on its block's worker fetched it
            moved = [p for p in ran if ran[p][0] not in holders[p]]
            assert fetched[0] == len(moved)


def test_a_busy_preferred_worker_does_not_hold_tasks_back(dask_master: str, tmp_path: Path) -> None:
    with engine_context(dask_conf(), dask_master) as sc:
        workers = sc.worker_processes()
        busy, idle = sorted(workers)
        stalled = sc.makeRDD([(TRIGGER, [busy])]).map(
            partial(stall_once, trigger=TRIGGER, marker_dir=str(tmp_path))
        )
        first: list[Any] = []
        job = threading.Thread(target=lambda: first.extend(stalled.collect()), daemon=True)
        job.start()
        try:
            assert wait_for_stalled_pid(str(tmp_path), WAIT_S) == workers[busy]  # preferred while idle
            # Every task prefers the worker whose one thread is taken: they run on the other one.
            ran = sc.makeRDD([(i, [busy]) for i in range(3)]).mapPartitions(_where).collect()
            assert ran == [(idle, [i]) for i in range(3)]
            assert job.is_alive(), "the stalled task went on before the others ran"
        finally:
            release(str(tmp_path))
            job.join(WAIT_S)
        assert first == [TRIGGER]


def _tracker(ssc: StreamingContext) -> ReceiverTracker:
    tracker = ssc.runtime.block_allocator
    assert isinstance(tracker, ReceiverTracker)
    return tracker


def _receiver_worker(ssc: StreamingContext, stream: Any) -> RemoteSupervisor:
    stream.address()  # placed and started
    handle = _tracker(ssc).handle(stream._id)
    assert isinstance(handle, RemoteSupervisor) and handle.worker is not None, handle
    return handle


def _batch(ssc: StreamingContext, clock: ManualClock) -> int:
    target = (clock.time_ms() // 1000 + 1) * 1000
    clock.set_time(target)
    assert ssc.wait_for_batch(target, WAIT_S), f"batch {target} did not complete"
    return target


def test_a_block_rdd_task_runs_on_the_receiving_worker(dask_master: str) -> None:
    clock = ManualClock(0)
    conf = dask_conf().set("spark.streaming.receiver.writeAheadLog.enable", "false")
    with engine_context(conf, dask_master) as sc, streaming_context(sc, clock) as ssc:
        stream = ssc.pushStream(storageLevel=StorageLevel.MEMORY_ONLY)
        out: list[tuple[str, list[Any]]] = []
        stream.mapPartitions(_where).foreachRDD(lambda rdd: out.extend(rdd.collect()))
        ssc.start()
        receiver = _receiver_worker(ssc, stream)
        expected = []
        for batch in range(3):  # one block per batch: one task per job, never queued behind another
            records = [f"b{batch}-{i}" for i in range(50)]
            with PushClient(*stream.address(), producer_id=f"p{batch}", timeout_s=WAIT_S) as client:
                client.send(records)  # one commit: one block, stored on the receiver's worker
            expected.append((receiver.worker, records))
            before = _fetched(sc)
            _batch(ssc, clock)
            assert _fetched(sc) == before, "a block was fetched from the receiving worker"
        assert out == expected


@pytest.fixture
def cluster_sc() -> Iterator[Context]:
    """A private local-cluster[2]: the test kills one of its workers."""
    with engine_context(Conf(), "local-cluster[2]") as sc:
        pids = list(sc.worker_processes().values())
        try:
            yield sc
        finally:
            sc.stop()
            kill_all(wait_gone(pids))


@pytest.mark.chaos
def test_with_the_preferred_worker_sigkilled_tasks_run_elsewhere_and_the_output_is_exact(
    cluster_sc: Context,
) -> None:
    sc = cluster_sc
    kept = sc.parallelize(range(600), PARTITIONS).map(lambda x: x * 3).persist()
    twice = sc.parallelize(range(600), PARTITIONS).map(lambda x: x * 5).persist(StorageLevel.MEMORY_ONLY_2)
    assert kept.count() == twice.count() == 600
    workers = sc.worker_processes()
    victim = _holders(sc, kept)[0][0]  # the worker holding partition 0 (and a copy of every `twice` one)
    lost = threading.Event()
    sc.backend.add_executor_listener(lambda w: lost.set() if w == victim else None)
    os.kill(workers[victim], signal.SIGKILL)
    assert lost.wait(WAIT_S), f"the driver never noticed that {victim} died"
    copies = _holders(sc, twice)  # the loss is applied: only the survivor's copies are left
    assert all(victim not in holders for holders in copies.values()), copies
    for rdd, factor in ((kept, 3), (twice, 5)):
        ran = _run_each_partition(sc, rdd)
        assert victim not in {ran[p][0] for p in ran}, ran  # a dead preferred worker held nothing back
        assert [ran[p][1] for p in range(PARTITIONS)] == [
            [x * factor for x in range(p * 100, (p + 1) * 100)] for p in range(PARTITIONS)
        ]
        if rdd is twice:  # read on the worker holding the surviving copy, not recomputed elsewhere
            assert {p: ran[p][0] for p in ran} == {p: copies[p][0] for p in copies}
