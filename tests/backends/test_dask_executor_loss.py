"""A Dask worker that dies between jobs is known lost before the next job runs (``local-cluster[2]``).

The scheduler's remove-worker event reaches the backend's membership view, which drops the worker and
tells the DAG scheduler: the map outputs and persisted partitions the worker held are forgotten at once,
so the next job runs the lost map tasks without first failing to fetch their buckets (no lineage
recovery is reported), the block client and `worker_processes` no longer call the dead worker, and the
results are exact.
"""

from __future__ import annotations

import operator
import os
import queue
import signal
from collections.abc import Iterator

import pytest

from dstream.context import Conf, Context
from dstream.rdd.block_recovery import BlockRecovery
from tests.support.contexts import engine_context

pytestmark = pytest.mark.chaos

WAIT_S = 120.0


@pytest.fixture
def cluster_sc() -> Iterator[Context]:
    conf = Conf().set("dstream.dask.workerTimeout", "2s")
    with engine_context(conf, "local-cluster[2]") as sc:
        yield sc


def test_a_killed_worker_is_forgotten_before_the_next_job_uses_what_it_held(cluster_sc: Context) -> None:
    sc = cluster_sc
    backend = sc._backend
    left: queue.Queue[str] = queue.Queue()
    backend.add_executor_listener(left.put)  # called after the DAG scheduler's listener
    recoveries: list[BlockRecovery] = []
    sc.add_block_recovery_listener(recoveries.append)

    pairs = sc.parallelize(range(400), 4).map(lambda x: (x % 9, x))
    sums = pairs.reduceByKey(operator.add, 3)
    doubled = sc.parallelize(range(40), 4).map(lambda x: 2 * x).cache()
    expected = sorted((k, sum(x for x in range(400) if x % 9 == k)) for k in range(9))
    assert sorted(sums.collect()) == expected
    assert sorted(doubled.collect()) == [2 * x for x in range(40)]

    shuffle_id = sums._node.deps[0].shuffle_id
    tracker, blocks = sc._map_outputs, sc._block_locations
    holders = {ref.locations[0] for ref in tracker.refs(shuffle_id, 0)}
    assert len(holders) == 2, "both workers should hold map outputs"
    pids = backend.worker_processes()
    victim = sorted(holders)[0]
    victim_maps = [m for m, ref in enumerate(tracker.refs(shuffle_id, 0)) if ref.locations == (victim,)]
    os.kill(pids[victim], signal.SIGKILL)

    assert left.get(timeout=WAIT_S) == victim
    assert tracker.missing(shuffle_id, 4) == victim_maps  # forgotten at once, before any job
    assert all(victim not in (blocks.get(doubled._id, s) or ()) for s in range(4))
    assert victim not in backend.alive_workers()
    assert victim not in backend.worker_processes()

    assert sorted(sums.collect()) == expected
    assert sorted(doubled.collect()) == [2 * x for x in range(40)]
    assert recoveries == [], "the loss was known before the job: no block should be found lost"
    assert tracker.is_complete(shuffle_id)
