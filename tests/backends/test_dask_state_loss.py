"""State lost with a Dask worker is recomputed from the last data checkpoint and lineage, exactly.

A stateful pipeline (updateStateByKey, data checkpoints every 2 batches) runs on ``local-cluster[2]``.
After batch 3 the state's partitions are persisted on the workers, one copy each; while batch 4 runs
(held by a task stalling on a trigger record, tests/backends/stalls.py) the test SIGKILLs the worker
holding partition 0 of batch 3's state, then lets the stalled task go on. The batch completes, each
batch's state equals the reference computed here, and the batches after the loss still run. The
windowed variant (an inverse reduce function, whose window state is a chain of persisted RDDs) is
`slow`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from dstream.clock import ManualClock
from dstream.context import Conf, Context
from tests.backends.stalls import release, stall_once, wait_for_stalled_pid
from tests.streaming.conftest import collect, to_ms
from tests.support.contexts import engine_context, streaming_context

pytestmark = pytest.mark.chaos

WAIT_S = 120.0
BATCHES = 6
KILLED_IN = 4  # the batch (1-based) during which the worker dies
KEYS = 6
BATCH = [[1000 * k + i for i in range(60)] for k in range(BATCHES)]
TRIGGER = BATCH[KILLED_IN - 1][37]


@pytest.fixture
def cluster_sc() -> Iterator[Context]:
    conf = Conf().set("dstream.dask.workerTimeout", "2s").set("dstream.checkpoint.async", "false")
    with engine_context(conf, "local-cluster[2]") as sc:
        yield sc


def running_sum(values: list[int], state: int | None) -> int:
    return (state or 0) + sum(values)


def stateful(stream: Any, stall: Callable[[Any], Any]) -> Any:
    pairs = stream.map(stall).map(lambda x: (x % KEYS, x))
    return pairs.updateStateByKey(running_sum, numPartitions=4).checkpoint(2)


def windowed(stream: Any, stall: Callable[[Any], Any]) -> Any:
    pairs = stream.map(stall).map(lambda x: (x % KEYS, x))
    return pairs.reduceByKeyAndWindow(lambda a, b: a + b, lambda a, b: a - b, 3, 1, 4).checkpoint(2)


def state_reference(batches: int) -> list[tuple[int, int]]:
    seen = [x for batch in BATCH[:batches] for x in batch]
    return sorted(((k, sum(x for x in seen if x % KEYS == k)) for k in range(KEYS)), key=repr)


def window_reference(batches: int) -> list[tuple[int, int]]:
    seen = [x for batch in BATCH[max(0, batches - 3) : batches] for x in batch]
    return sorted(((k, sum(x for x in seen if x % KEYS == k)) for k in range(KEYS)), key=repr)


def _run_losing_a_worker(
    sc: Context, tmp_path: Path, build: Callable[[Any, Any], Any]
) -> dict[int, list[Any]]:
    clock = ManualClock(0)
    markers = tmp_path / "markers"
    markers.mkdir()
    with streaming_context(sc, clock) as ssc:
        sc.setCheckpointDir(str(tmp_path / "ckpt"))  # data checkpoints only: queueStream has no replay
        stall = partial(stall_once, trigger=TRIGGER, marker_dir=str(markers))
        state = build(ssc.queueStream(BATCH, default=[]), stall)
        out = collect(state)
        rdd_ids: dict[int, int] = {}
        state.foreachRDD(lambda t, rdd: rdd_ids.__setitem__(to_ms(t), rdd._id))
        ssc.start()
        for n in range(1, KILLED_IN):
            clock.set_time(1000 * n)
            assert ssc.wait_for_batch(1000 * n, WAIT_S), f"batch {n} did not complete"
        clock.set_time(1000 * KILLED_IN)
        wait_for_stalled_pid(str(markers), WAIT_S)  # the batch is under way (one task waits)
        # The victim: the worker holding partition 0 of the previous batch's state (one copy each).
        (address,) = sc._block_locations.get(rdd_ids[1000 * (KILLED_IN - 1)], 0) or ("none",)
        pid = sc.worker_processes()[address]
        os.kill(pid, signal.SIGKILL)
        release(str(markers))  # the stalled task goes on, or runs again if it was on the victim
        assert ssc.wait_for_batch(1000 * KILLED_IN, WAIT_S), "the batch that lost a worker did not complete"
        for n in range(KILLED_IN + 1, BATCHES + 1):
            clock.set_time(1000 * n)
            assert ssc.wait_for_batch(1000 * n, WAIT_S), f"batch {n} after the loss did not complete"
    return out


def test_state_lost_with_a_sigkilled_worker_is_recomputed_exactly(
    cluster_sc: Context, tmp_path: Path
) -> None:
    out = _run_losing_a_worker(cluster_sc, tmp_path, stateful)
    assert out == {1000 * n: state_reference(n) for n in range(1, BATCHES + 1)}


@pytest.mark.slow
def test_window_state_lost_with_a_sigkilled_worker_is_recomputed_exactly(
    cluster_sc: Context, tmp_path: Path
) -> None:
    out = _run_losing_a_worker(cluster_sc, tmp_path, windowed)
    assert out == {1000 * n: window_reference(n) for n in range(1, BATCHES + 1)}
