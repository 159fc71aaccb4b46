"""Lost references: the DAG scheduler re-runs what produced a lost block (lineage) and says so.

Blocks are lost here by removing them through the backend's block manager (in process, or on the
Dask workers), as a dead executor would lose them; the job that needs them must still give exact
results, run only the lost work again, and report a `BlockRecovery` to the Context's recovery
listeners. An in-memory source is put again from the driver's copy; what cannot be recomputed (a
freed in-memory source, a locally checkpointed RDD) fails with an error naming the partition.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import pytest

from dstream import Context
from dstream.backends.block_manager import BlockManager, RDDBlockId, ShuffleBlockId
from dstream.errors import DStreamError
from dstream.rdd.block_recovery import BlockRecovery


def manager(sc: Context) -> BlockManager:
    """The driver's handle on the backend's blocks: in process (local), or every worker's (Dask)."""
    return sc._backend.block_manager


def recoveries_of(sc: Context) -> list[BlockRecovery]:
    found: list[BlockRecovery] = []
    sc.add_block_recovery_listener(found.append)
    return found


def test_a_lost_map_output_reruns_that_map_task_only(sc: Context) -> None:
    maps_run = sc.accumulator(0)

    def tag(split: int, it: Iterator[str]) -> Iterator[tuple[str, int]]:
        maps_run.add(1)
        return ((w, 1) for w in it)

    words = sc.parallelize(["a", "b", "a", "c", "b", "a"], 3)
    counts = words.mapPartitionsWithIndex(tag).reduceByKey(operator.add, 2)
    assert sorted(counts.collect()) == [("a", 3), ("b", 2), ("c", 1)]
    assert maps_run.value == 3
    (sid,) = sc._map_outputs.shuffle_ids()
    assert len(sc._map_outputs.missing(sid, 3)) == 0
    found = recoveries_of(sc)
    for r in range(2):
        manager(sc).remove(ShuffleBlockId(sid, 1, r))  # map task 1's executor died
    assert sorted(counts.collect()) == [("a", 3), ("b", 2), ("c", 1)]
    assert maps_run.value == 4, "only the lost map task ran again"
    assert [(r.block, r.how) for r in found] == [(f"shuffle_{sid}_1_0", "lineage")]  # reduce task 0's


def test_a_lost_persisted_partition_is_recomputed_from_lineage(sc: Context) -> None:
    computed = sc.accumulator(0)

    def square(x: int) -> int:
        computed.add(1)
        return x * x

    squares = sc.parallelize(range(6), 2).map(square).cache()
    assert squares.sum() == 55 and computed.value == 6
    assert squares.sum() == 55 and computed.value == 6, "served from the cached blocks"
    found = recoveries_of(sc)
    manager(sc).remove(RDDBlockId(squares.id(), 0))
    assert squares.collect() == [0, 1, 4, 9, 16, 25]
    assert computed.value == 9, "partition 0 only"
    assert [(r.block, r.how) for r in found] == [(f"rdd_{squares.id()}_0", "lineage")]
    assert sc._block_locations.get(squares.id(), 0) is not None, "the recomputed block is kept again"


def test_a_lost_in_memory_partition_is_put_again_from_the_drivers_copy(sc: Context) -> None:
    # parallelize's slices stay on the driver (Spark's ParallelCollectionPartition): an executor that
    # dies with one loses nothing.
    source = sc.parallelize([1, 2, 3, 4], 2)
    manager(sc).remove(RDDBlockId(source.id(), 1))
    assert source.map(lambda x: x + 1).collect() == [2, 3, 4, 5]
    assert sc._block_locations.get(source.id(), 1) is not None


def test_a_freed_in_memory_partition_fails_naming_it(sc: Context) -> None:
    source = sc.parallelize([1, 2, 3, 4], 2)
    mapped = source.map(lambda x: x + 1)
    sc._block_locations.remove_rdd(source.id())
    with pytest.raises(DStreamError, match=f"partition 0 of in-memory RDD {source.id()} is gone"):
        mapped.collect()


def test_a_lost_executors_many_blocks_cost_one_attempt_per_kind(sc: Context) -> None:
    state: Any = sc.parallelize([("a", 0)], 1).cache()
    for batch in range(3):
        new = sc.parallelize([("a", 1), ("b", batch)], 4)
        state = state.union(new).reduceByKey(operator.add, 4).cache()
        state.count()
    found = recoveries_of(sc)
    manager(sc).remove_rdd(state.id())  # the newest state and the shuffle under it are gone
    for sid in sc._map_outputs.shuffle_ids():
        manager(sc).remove_shuffle(sid)
    assert sorted(state.collect()) == [("a", 3), ("b", 3)]
    assert [r.block.split("_")[0] for r in found] == ["rdd", "shuffle"]  # 2 sweeps, not 4 + 5


def test_a_task_mutating_cached_records_does_not_change_the_block(sc: Context) -> None:
    def grow(records: list[int]) -> list[int]:
        records.append(0)  # in place, as a careless update function would
        return records

    cached = sc.parallelize([[1], [2]], 2).map(list).cache()
    assert cached.count() == 2
    assert cached.map(grow).collect() == [[1, 0], [2, 0]]
    assert cached.collect() == [[1], [2]]  # another action still reads the kept partition
    source = sc.parallelize([{"n": 1}], 1)
    assert source.map(lambda d: d.update(n=2) or d).collect() == [{"n": 2}]
    assert source.collect() == [{"n": 1}]


def test_immutable_records_are_shared_not_copied(sc_inline: Context) -> None:
    lines = ["a b", "c"]
    rdd = sc_inline.parallelize(lines, 1)
    assert sc_inline._block_locations.read(rdd.id(), 0) is not lines  # the partition is a slice
    kept = sc_inline._backend.block_manager.get(RDDBlockId(rdd.id(), 0))
    assert kept == lines and kept[0] is lines[0]  # the records themselves: no pickling for text
