"""A worker process dies (SIGKILL) or stops answering (SIGSTOP) in the middle of a batch on
``local-cluster[2]``: the batch completes and its output is exact.

The trigger record stalls the first task that holds it (tests/backends/stalls.py) and reports that
worker's pid; the test kills or pauses exactly that worker while the batch runs, then lets the batch
go on. The lost task runs again on the other worker (or on the nanny's replacement), so each batch's
output equals the reference computed here, and the next batch still runs.
"""

from __future__ import annotations

import operator
import os
import signal
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import dstream.backends.dask.backend as dask_backend
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from tests.backends.stalls import release, stall_once, wait_for_stalled_pid
from tests.streaming.conftest import collect
from tests.support.contexts import engine_context, streaming_context

pytestmark = pytest.mark.chaos

WAIT_S = 120.0
RECORDS = list(range(200))
TRIGGER = 137


@pytest.fixture
def cluster_sc() -> Iterator[Context]:
    conf = Conf().set("dstream.dask.workerTimeout", "2s")
    with engine_context(conf, "local-cluster[2]") as sc:
        yield sc


def _worker_pids(sc: Context) -> set[int]:
    return set(sc._backend.worker_processes().values())  # type: ignore[attr-defined]


def _run_batch_losing_a_worker(
    sc: Context, tmp_path: Path, build: Any, signum: int
) -> tuple[dict[int, list[Any]], int]:
    pids = _worker_pids(sc)
    clock = ManualClock(0)
    with streaming_context(sc, clock) as ssc:
        stall = partial(stall_once, trigger=TRIGGER, marker_dir=str(tmp_path))
        out = collect(build(ssc.queueStream([RECORDS, RECORDS], default=[]), stall))
        ssc.start()
        clock.set_time(1000)
        victim = wait_for_stalled_pid(str(tmp_path), WAIT_S)
        assert victim in pids
        os.kill(victim, signum)
        try:
            assert _wait(ssc, 1000), "the batch that lost a worker did not complete"
        finally:
            release(str(tmp_path))
            if signum == signal.SIGSTOP:
                _resume(victim)
        clock.set_time(2000)
        assert _wait(ssc, 2000), "the batch after the loss did not complete"
    return out, victim


def _resume(pid: int) -> None:
    """Let a paused worker run again (its nanny usually SIGKILLed it already) so that nothing hangs."""
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def _wait(ssc: StreamingContext, batch_ms: int) -> bool:
    return ssc.wait_for_batch(batch_ms, WAIT_S)


def stateless(stream: Any, stall: Any) -> Any:
    return stream.repartition(4).map(stall).filter(lambda x: x % 3 != 0).map(lambda x: x * 10)


def shuffled(stream: Any, stall: Any) -> Any:
    # The stall sits after the shuffle, in a reduce-side task.
    pairs = stream.map(lambda x: (x % 7, x)).reduceByKey(operator.add, 3)
    return pairs.map(lambda kv: kv if kv[0] != TRIGGER % 7 else (stall(TRIGGER) % 7, kv[1]))


@pytest.mark.parametrize("scatter", [False, True], ids=["inputs-in-tasks", "inputs-scattered"])
def test_a_worker_sigkilled_mid_batch_of_a_stateless_pipeline(
    cluster_sc: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scatter: bool
) -> None:
    # Scattered inputs die with their worker too: the backend scatters them again for the re-run.
    monkeypatch.setattr(dask_backend, "SCATTER_BYTES_MIN", 0 if scatter else 1 << 62)
    out, _ = _run_batch_losing_a_worker(cluster_sc, tmp_path, stateless, signal.SIGKILL)
    expected = sorted((x * 10 for x in RECORDS if x % 3 != 0), key=repr)
    assert out == {1000: expected, 2000: expected}


def test_a_worker_sigkilled_mid_batch_of_a_shuffle_pipeline(cluster_sc: Context, tmp_path: Path) -> None:
    out, _ = _run_batch_losing_a_worker(cluster_sc, tmp_path, shuffled, signal.SIGKILL)
    sums = {k: sum(x for x in RECORDS if x % 7 == k) for k in range(7)}
    expected = sorted(sums.items(), key=repr)
    assert out == {1000: expected, 2000: expected}


@pytest.mark.slow
def test_a_paused_worker_is_declared_dead_and_its_task_runs_elsewhere(
    cluster_sc: Context, tmp_path: Path
) -> None:
    out, victim = _run_batch_losing_a_worker(cluster_sc, tmp_path, stateless, signal.SIGSTOP)
    expected = sorted((x * 10 for x in RECORDS if x % 3 != 0), key=repr)
    assert out == {1000: expected, 2000: expected}  # the paused worker's late result was not counted
    assert victim not in _worker_pids(cluster_sc), "the paused worker was not declared dead"
