"""The block-manager contract (dstream.backends.block_manager), run against every backend's implementation.

Each backend contributes a `Harness` to `HARNESSES`: a block manager as the driver sees it, and a way
to lose one executor's blocks (what that executor's death does). The local backend's is in process;
the Dask one is the worker-plugin prototype (dstream.backends.dask_blocks) on a real two-process
`LocalCluster` started here, bound to 127.0.0.1. The Dask backend adds its own factory to run the same
suite unchanged. Every Dask case is `slow` but one smoke; the kill test SIGKILLs a worker process.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dstream.backends import dask_blocks
from dstream.backends.block_manager import (
    BlockManager,
    BlockRef,
    Lost,
    RDDBlockId,
    ReceivedBlockId,
    ShuffleBlockId,
)
from dstream.backends.local_blocks import LocalBlockManager
from dstream.errors import DStreamValueError
from dstream.storage_level import StorageLevel

CLUSTER_START_TIMEOUT_S = 60


@dataclass
class Harness:
    """A block manager under test and how to make one of its executors lose its blocks."""

    manager: BlockManager
    lose: Callable[[str], None]


def local_harness() -> Iterator[Harness]:
    manager = LocalBlockManager("driver")
    yield Harness(manager, manager.lose_executor)
    manager.close()


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster, timeout=CLUSTER_START_TIMEOUT_S)
    try:
        client.wait_for_workers(2, timeout=CLUSTER_START_TIMEOUT_S)
        yield client
    finally:
        client.close()
        cluster.close()


def dask_harness(client: Any) -> Iterator[Harness]:
    from dstream.backends.dask_blocks import DaskBlockManagerClient

    manager = DaskBlockManagerClient(client)
    yield Harness(manager, manager.lose_executor)
    manager.close()


HARNESSES = ["local", pytest.param("dask", marks=pytest.mark.slow)]


@pytest.fixture(params=HARNESSES)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "local":
        yield from local_harness()
    else:
        yield from dask_harness(request.getfixturevalue("dask_cluster"))


KINDS = [ReceivedBlockId("0-1000-1"), RDDBlockId(3, 1), ShuffleBlockId(2, 0, 1)]


@pytest.mark.parametrize("block_id", KINDS, ids=lambda b: b.name)
def test_put_then_get_returns_the_value_and_its_holder(harness: Harness, block_id: Any) -> None:
    bm = harness.manager
    where = bm.put(block_id, ["a", "b"])
    assert len(where) == 1
    assert bm.get(block_id) == ["a", "b"]
    assert bm.get(block_id, where) == ["a", "b"]
    assert bm.locations(block_id) == where
    assert block_id in bm.block_ids()


def test_a_second_put_replaces_the_value(harness: Harness) -> None:
    bm, block = harness.manager, RDDBlockId(1, 0)
    bm.put(block, [1])
    where = bm.put(block, [2])
    assert bm.get(block, where) == [2]


def test_a_block_never_put_is_lost_as_an_answer_not_an_error(harness: Harness) -> None:
    block = ShuffleBlockId(9, 9, 9)
    answer = harness.manager.get(block)
    assert isinstance(answer, Lost) and answer.block_id == block and not answer
    assert harness.manager.locations(block) == ()


def test_remove_drops_every_copy_and_is_idempotent(harness: Harness) -> None:
    bm, block = harness.manager, ReceivedBlockId("b-1")
    bm.put(block, [1], StorageLevel.MEMORY_ONLY_2)
    bm.remove(block)
    bm.remove(block)
    assert isinstance(bm.get(block), Lost) and bm.locations(block) == ()


def test_replication_keeps_a_second_copy_that_survives_the_first_holders_loss(harness: Harness) -> None:
    bm, block = harness.manager, ReceivedBlockId("rep-1")
    where = bm.put(block, ["x"], StorageLevel.MEMORY_AND_DISK_2)
    assert len(where) == 2 and len(set(where)) == 2
    assert set(bm.locations(block)) == set(where)
    harness.lose(where[0])
    assert bm.locations(block) == (where[1],)
    assert bm.get(block, where) == ["x"]


def test_a_block_whose_only_holder_is_lost_is_answered_lost(harness: Harness) -> None:
    bm, block = harness.manager, ShuffleBlockId(1, 0, 0)
    where = bm.put(block, b"bucket")
    harness.lose(where[0])
    assert isinstance(bm.get(block, where), Lost)
    assert bm.locations(block) == ()


def test_replicate_adds_a_copy_on_another_holder(harness: Harness) -> None:
    bm, block = harness.manager, RDDBlockId(5, 0)
    (first,) = bm.put(block, [1, 2, 3])
    where = bm.replicate(block)
    assert len(where) == 2 and first in where
    harness.lose(first)
    assert bm.get(block, where) == [1, 2, 3]
    assert bm.replicate(ShuffleBlockId(7, 7, 7)) == ()  # a lost block stays lost


def test_remove_rdd_and_remove_shuffle_drop_only_their_blocks(harness: Harness) -> None:
    bm = harness.manager
    for block in [RDDBlockId(1, 0), RDDBlockId(1, 1), RDDBlockId(2, 0), ShuffleBlockId(1, 0, 0)]:
        bm.put(block, [block.name])
    bm.put(ShuffleBlockId(2, 0, 0), b"x")
    bm.remove_rdd(1)
    bm.remove_shuffle(1)
    assert bm.block_ids() == {RDDBlockId(2, 0), ShuffleBlockId(2, 0, 0)}


def test_a_level_that_stores_nothing_is_refused(harness: Harness) -> None:
    with pytest.raises(DStreamValueError, match="stores nothing"):
        harness.manager.put(RDDBlockId(1, 0), [1], StorageLevel(False, False, False, False))


def test_put_near_stores_the_block_wherever_it_can(harness: Harness) -> None:
    bm, block = harness.manager, RDDBlockId(8, 0)
    where = bm.put_near(("tcp://no-such-worker:1",), block, ["near"])  # none alive: placed as by put
    assert where and bm.locations(block) == where
    assert bm.get(block, where) == ["near"]


def test_block_refs_carry_ids_and_locations() -> None:
    ref = BlockRef(ShuffleBlockId(1, 2, 3), ("driver",))
    assert ref.block_id.name == "shuffle_1_2_3" and str(RDDBlockId(4, 5)) == "rdd_4_5"
    assert ReceivedBlockId("0-1-2").name == "input-0-1-2"


def test_the_local_manager_returns_the_stored_object_itself() -> None:
    bm = LocalBlockManager("driver")
    records = [object()]
    bm.put(RDDBlockId(1, 0), records)
    assert bm.get(RDDBlockId(1, 0)) is records  # no copy: local[*] pays nothing for references


# -- Dask only: a smoke in the default run, workers fetching from each other, a real SIGKILL ---------


def test_dask_smoke_put_get_remove_lost(dask_cluster: Any) -> None:
    for harness in dask_harness(dask_cluster):
        bm, block = harness.manager, RDDBlockId(11, 0)
        where = bm.put(block, ["on a worker"])
        assert where[0] in dask_cluster.scheduler_info()["workers"]
        assert bm.get(block, where) == ["on a worker"]
        bm.remove(block)
        assert isinstance(bm.get(block, where), Lost)
        workers = sorted(dask_cluster.scheduler_info()["workers"])
        for split, worker in enumerate(workers):  # put_near places on the first live one named
            assert bm.put_near(("tcp://gone:1", worker), RDDBlockId(12, split), ["near"]) == (worker,)
            assert bm.locations(RDDBlockId(12, split)) == (worker,)


def test_text_blocks_travel_to_workers_without_pickles_memo() -> None:
    """The wire form of a block of lines has no memo entries (a tenth of the driver's pickling cost)
    and reads back as the same list; other values keep pickle's memo, so shared objects stay shared."""
    lines = [f"line {i % 7}" for i in range(1000)]
    wire = dask_blocks._dumps(lines)
    opcodes = {op.name for op, _, _ in pickletools.genops(wire)}
    assert not opcodes & {"MEMOIZE", "BINPUT", "LONG_BINPUT"}, opcodes
    assert pickle.loads(wire) == lines
    shared = [1, 2]
    rows = pickle.loads(dask_blocks._dumps([("a", shared), ("b", shared)]))
    assert rows[0][1] is rows[1][1]


def _fetch_in_a_task(block_id: Any, locations: tuple[str, ...]) -> Any:
    from distributed import get_worker

    from dstream.backends.dask_blocks import worker_block_manager

    bm = worker_block_manager(get_worker())
    value = bm.get(block_id, locations)
    return "lost" if isinstance(value, Lost) else (bm.executor_id, value)


def _put_replicated_in_a_task(block_id: Any, size_records: int = 0) -> tuple[str, ...]:
    from distributed import get_worker

    from dstream.backends.dask_blocks import worker_block_manager

    bm = worker_block_manager(get_worker())
    return bm.put(block_id, ["twice"], StorageLevel.MEMORY_ONLY_2, size_records)


def _memory_records(dask_worker: Any) -> int:
    return dask_blocks.plugin_of(dask_worker).store.memory_records  # type: ignore[union-attr]


def test_every_copy_of_a_block_counts_against_its_holders_memory_budget(dask_cluster: Any) -> None:
    """The driver's puts (straight to a worker's handler) and a task's replica on a peer count the
    block's records where they land, as a copy put locally does."""
    for harness in dask_harness(dask_cluster):
        bm = harness.manager
        before = dask_cluster.run(_memory_records)
        (a, b) = bm.put(RDDBlockId(21, 0), ["x"] * 3, StorageLevel.MEMORY_ONLY_2, size_records=3)
        where = dask_cluster.submit(_put_replicated_in_a_task, RDDBlockId(21, 1), 5, pure=False).result()
        after = dask_cluster.run(_memory_records)
        assert {a, b} == set(where) == set(after)
        assert {w: after[w] - before[w] for w in after} == {a: 3 + 5, b: 3 + 5}
        bm.remove_rdd(21)
        assert dask_cluster.run(_memory_records) == before


@pytest.mark.slow
def test_a_task_on_one_worker_reads_a_block_held_by_the_other(dask_cluster: Any) -> None:
    for harness in dask_harness(dask_cluster):
        bm, block = harness.manager, ShuffleBlockId(3, 0, 1)
        (holder,) = bm.put(block, b"bucket bytes")
        (other,) = [w for w in dask_cluster.scheduler_info()["workers"] if w != holder]
        got = dask_cluster.submit(_fetch_in_a_task, block, (holder,), workers=[other], pure=False).result()
        assert got == (other, b"bucket bytes")  # fetched over the workers' own RPC
        where = dask_cluster.submit(_put_replicated_in_a_task, RDDBlockId(8, 0), pure=False).result()
        assert len(set(where)) == 2 and set(bm.locations(RDDBlockId(8, 0))) == set(where)


@pytest.mark.slow
def test_a_sigkilled_worker_takes_its_blocks_with_it(dask_cluster: Any) -> None:
    for harness in dask_harness(dask_cluster):
        bm = harness.manager
        alone, twice = ShuffleBlockId(4, 0, 0), ReceivedBlockId("kill-1")
        (victim,) = bm.put(alone, b"only copy")
        holders = [victim, *(w for w in bm.workers() if w != victim)]  # type: ignore[attr-defined]
        where = bm.put_on(holders, twice, ["r"], StorageLevel.MEMORY_ONLY_2)  # type: ignore[attr-defined]
        pids = dask_cluster.run(os.getpid, workers=[victim])
        os.kill(pids[victim], signal.SIGKILL)
        # The nanny restarts a worker at a new address; until then and after, the victim is gone.
        assert isinstance(bm.get(alone, (victim,)), Lost)
        assert bm.get(twice, where) == ["r"]
        dask_cluster.wait_for_workers(2, timeout=CLUSTER_START_TIMEOUT_S)
