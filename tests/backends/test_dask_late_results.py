"""A paused worker's late result is ignored: SIGSTOP a worker mid-batch, SIGCONT it once the batch is done.

On ``local-cluster[N]`` a worker that misses heartbeats is restarted by its nanny, which kills the paused
process (tests/backends/test_dask_worker_loss.py covers that), so it never answers late. Workers started
without a nanny (``dask worker --no-nanny``, which a ``dask://`` cluster may have) are only removed by
the scheduler: the paused process lives on, and after SIGCONT its stalled task finishes and reports,
late. Here two such workers join a scheduler with a short worker TTL; the test pauses the worker
stalling on the trigger record, waits for the batch to complete on the other worker, then resumes the
paused one and waits until its stalled attempt has really finished. The outputs of that batch and of
the next one are exact: the late attempt counted for nothing.

The same workers check that a driver-side call in flight to a worker that is then paused ends when
the scheduler removes the worker (the scheduler drops its connections to it; the membership view
abandons calls to a worker that left, tests/backends/test_dask_membership.py), and the block is
reported lost, however long the call's own bound.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

import dstream.backends.dask_blocks as dask_blocks
from dstream.backends.block_manager import MEMORY_ONLY, Lost, RDDBlockId
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from tests.backends.stalls import release, stall_once, wait_for_finished, wait_for_stalled_pid
from tests.streaming.conftest import collect
from tests.support.children import ROOT
from tests.support.contexts import engine_context, streaming_context
from tests.support.dask_cluster import dask_conf

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

WAIT_S = 120.0
WORKERS = 2
RECORDS = list(range(200))
TRIGGER = 137


@pytest.fixture
def nannyless_sc(tmp_path: Path) -> Iterator[tuple[Context, list[subprocess.Popen[bytes]]]]:
    cluster = LocalCluster(
        n_workers=0,
        host="127.0.0.1",
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0", "worker_ttl": "2s"},
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(WORKERS):
            log = (tmp_path / f"worker-{i}.log").open("wb")
            command = [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address]
            command += ["--no-nanny", "--nthreads", "1", "--host", "127.0.0.1", "--death-timeout", "60"]
            workers.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        with Client(cluster.scheduler_address, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(WORKERS, timeout=WAIT_S)
        with engine_context(dask_conf(Conf()), cluster.scheduler_address) as sc:
            yield sc, workers
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGKILL's exit otherwise
            proc.kill()
            proc.wait(WAIT_S)
        cluster.close()


def test_a_paused_worker_that_resumes_after_its_batch_finished_elsewhere_is_ignored(
    nannyless_sc: tuple[Context, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    sc, workers = nannyless_sc
    markers = tmp_path / "markers"
    markers.mkdir()
    clock = ManualClock(0)
    with streaming_context(sc, clock) as ssc:
        stall = partial(stall_once, trigger=TRIGGER, marker_dir=str(markers))
        stream = ssc.queueStream([RECORDS, RECORDS], default=[])
        out = collect(stream.repartition(4).map(stall).filter(lambda x: x % 3 != 0).map(lambda x: x * 10))
        ssc.start()
        clock.set_time(1000)
        victim = wait_for_stalled_pid(str(markers), WAIT_S)
        assert victim in [p.pid for p in workers]
        os.kill(victim, signal.SIGSTOP)
        try:
            assert ssc.wait_for_batch(1000, WAIT_S), "the batch did not complete without the paused worker"
        finally:
            release(str(markers))
            os.kill(victim, signal.SIGCONT)
        wait_for_finished(str(markers), victim, WAIT_S)  # the late attempt really ran to its end
        clock.set_time(2000)
        assert ssc.wait_for_batch(2000, WAIT_S), "the batch after the pause did not complete"
    expected = sorted((x * 10 for x in RECORDS if x % 3 != 0), key=repr)
    assert out == {1000: expected, 2000: expected}


def test_a_call_in_flight_to_a_worker_that_leaves_ends_at_once(
    nannyless_sc: tuple[Context, list[subprocess.Popen[bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sc, _ = nannyless_sc
    monkeypatch.setattr(dask_blocks, "RPC_TIMEOUT_S", 100 * WAIT_S)  # only the worker's removal ends it
    manager = sc._backend.block_manager
    block = RDDBlockId(10_000, 0)
    victim = manager.workers()[0]
    assert manager.put_on([victim], block, [1, 2, 3], MEMORY_ONLY) == (victim,)
    pid = sc.worker_processes()[victim]
    results: queue.Queue[object] = queue.Queue()
    os.kill(pid, signal.SIGSTOP)
    try:
        getter = threading.Thread(target=lambda: results.put(manager.get(block, (victim,))), daemon=True)
        getter.start()
        found = results.get(timeout=WAIT_S)  # the worker is removed after its TTL (about 5 s)
        getter.join(WAIT_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert isinstance(found, Lost) and found.block_id == block
    assert victim not in sc._backend.alive_workers()
