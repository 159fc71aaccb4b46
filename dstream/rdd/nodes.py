"""Lineage nodes: how each kind of RDD computes a partition from its parents.

An RDD (dstream.rdd.rdd) holds one node. Keeping "how to compute" in a separate object lets
checkpointing replace an RDD's whole lineage with one attribute assignment (a CheckpointNode),
atomically with respect to concurrent jobs, and keeps the RDD class a single user-facing type.
Parents are RDDs, reached through dependencies; narrow dependencies say which parent partitions a
partition reads, so the scheduler can find a task's inputs without running anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, zip_longest
from typing import TYPE_CHECKING, Any

from dstream.errors import DStreamError, DStreamValueError
from dstream.rdd.resultiterable import ResultIterable
from dstream.rdd.shuffle import ShuffleDependency, read_buckets

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD
    from dstream.rdd.tasks import TaskContext


class NarrowDependency:
    """A parent whose partitions are read in place (no shuffle)."""

    def __init__(self, rdd: RDD[Any]) -> None:
        self.rdd = rdd

    def parent_splits(self, split: int) -> list[int]:
        """The parent partitions that partition ``split`` of the child reads."""
        return [split]


class RangeDependency(NarrowDependency):
    """Union: child partitions [out_start, out_start + length) are the parent's 0..length-1."""

    def __init__(self, rdd: RDD[Any], out_start: int, length: int) -> None:
        super().__init__(rdd)
        self.out_start = out_start
        self.length = length

    def parent_splits(self, split: int) -> list[int]:
        i = split - self.out_start
        return [i] if 0 <= i < self.length else []


class GroupDependency(NarrowDependency):
    """Coalesce: child partition i reads the parent partitions ``groups[i]``."""

    def __init__(self, rdd: RDD[Any], groups: list[list[int]]) -> None:
        super().__init__(rdd)
        self.groups = groups

    def parent_splits(self, split: int) -> list[int]:
        return self.groups[split]


class CartesianDependency(NarrowDependency):
    """Cartesian: child partition i reads left i // n_right, or right i % n_right."""

    def __init__(self, rdd: RDD[Any], is_left: bool, n_right: int) -> None:
        super().__init__(rdd)
        self.is_left = is_left
        self.n_right = n_right

    def parent_splits(self, split: int) -> list[int]:
        return [split // self.n_right if self.is_left else split % self.n_right]


Dependency = NarrowDependency | ShuffleDependency


class Node:
    """How an RDD's partitions are computed; subclasses set ``deps`` and ``num_partitions``."""

    label = "RDD"
    deps: list[Dependency]
    num_partitions: int

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        raise NotImplementedError

    def preferred_locations(self, split: int) -> tuple[str, ...]:
        """Executors where partition `split`'s input already is (Spark's ``getPreferredLocations``).

        Only a node that reads something held somewhere declares any (dstream.rdd.locality); the
        holders of a stored block and a shuffle's buckets are the scheduler's to find, not the node's.
        """
        return ()

    def narrow(self, i: int) -> NarrowDependency:
        """Dependency ``i``, which this node knows to be narrow."""
        dep = self.deps[i]
        assert isinstance(dep, NarrowDependency)
        return dep


class BlockNode(Node):
    """Partitions held as blocks in the driver's block store (parallelize, in-memory batches).

    Args:
        num_partitions: how many partitions.
        locations: per partition, the executors it is about (Spark's ``makeRDD`` location
            preferences: a block RDD's partition names a received block and where that block is);
            empty: none.
    """

    label = "ParallelCollectionRDD"

    def __init__(self, num_partitions: int, locations: Sequence[tuple[str, ...]] = ()) -> None:
        if locations and len(locations) != num_partitions:
            raise DStreamValueError(
                f"got locations for {len(locations)} partitions; expected {num_partitions}, one per partition"
            )
        self.deps = []
        self.num_partitions = num_partitions
        self.locations = list(locations)

    def preferred_locations(self, split: int) -> tuple[str, ...]:
        return self.locations[split] if self.locations else ()

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        raise DStreamError(f"partition {split} of an in-memory RDD is missing from the block store")


PartitionFn = Callable[[int, Iterator[Any]], Iterable[Any]]


class MapPartitionsNode(Node):
    """Applies ``funcs`` in order, each ``f(split, iterator) -> iterable``, to a parent partition.

    Pipelined operations append to a flat list rather than nesting closures, so a long chain
    of maps pickles without deep recursion.
    """

    label = "PythonRDD"

    def __init__(self, parent: RDD[Any], funcs: list[PartitionFn]) -> None:
        self.deps = [NarrowDependency(parent)]
        self.num_partitions = parent.getNumPartitions()
        self.funcs = funcs

    @property
    def parent(self) -> RDD[Any]:
        return self.narrow(0).rdd

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        it: Iterable[Any] = self.parent.iterator(split, tctx)
        for f in self.funcs:
            it = f(split, iter(it))
        return iter(it)


class UnionNode(Node):
    """Partitions of each parent, one after the other."""

    label = "UnionRDD"

    def __init__(self, parents: list[RDD[Any]]) -> None:
        self.deps = []
        start = 0
        for p in parents:
            n = p.getNumPartitions()
            self.deps.append(RangeDependency(p, start, n))
            start += n
        self.num_partitions = start

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        for i in range(len(self.deps)):
            dep = self.narrow(i)
            for ps in dep.parent_splits(split):
                return dep.rdd.iterator(ps, tctx)
        raise IndexError(f"union has no partition {split}")


class PartitionerAwareUnionNode(Node):
    """Union of RDDs partitioned alike: partition i is partition i of each parent, in order.

    Keeps the common partitioner (Spark's PartitionerAwareUnionRDD), so a cogroup of
    co-partitioned inputs (a stateful stream's state and its new batch) needs no shuffle.
    """

    label = "PartitionerAwareUnionRDD"

    def __init__(self, parents: list[RDD[Any]]) -> None:
        self.deps = [NarrowDependency(p) for p in parents]
        self.num_partitions = parents[0].getNumPartitions()

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        return chain.from_iterable(self.narrow(i).rdd.iterator(split, tctx) for i in range(len(self.deps)))


def not_a_cogroup_pair(record: Any) -> DStreamValueError:
    """The error of a cogroup (either path) given a record it cannot read as ``kv[0], kv[1]``."""
    return DStreamValueError(f"cogroup expects RDDs of (key, value) pairs; a record is not one: {record!r}")


class CoGroupedNode(Node):
    """Cogroup of co-partitioned RDDs: partition i groups partition i of every parent, no shuffle.

    Spark's CoGroupedRDD when every dependency is narrow. One pass, one dict: keys in first-seen
    order (parents in order) and each parent's values in its partition's order, which is what the
    shuffle path (tag, union, combine) gives for the same input. A stateful stream cogroups its
    state with each batch, so this is on every batch's path.
    """

    label = "CoGroupedRDD"

    def __init__(self, parents: list[RDD[Any]]) -> None:
        self.deps = [NarrowDependency(p) for p in parents]
        self.num_partitions = parents[0].getNumPartitions()

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        width = len(self.deps)
        groups: dict[Any, list[list[Any]]] = {}
        for i in range(width):
            for kv in self.narrow(i).rdd.iterator(split, tctx):
                try:
                    k, v = kv[0], kv[1]  # as PySpark reads them: a longer tuple is accepted
                except (TypeError, IndexError, KeyError) as exc:
                    raise not_a_cogroup_pair(kv) from exc
                try:
                    groups[k][i].append(v)
                except KeyError:
                    if k in groups:
                        raise
                    lists: list[list[Any]] = [[] for _ in range(width)]
                    lists[i].append(v)
                    groups[k] = lists
        return ((k, tuple(map(ResultIterable, lists))) for k, lists in groups.items())


class CoalescedNode(Node):
    """Merges runs of adjacent parent partitions without a shuffle."""

    label = "CoalescedRDD"

    def __init__(self, parent: RDD[Any], groups: list[list[int]]) -> None:
        self.deps = [GroupDependency(parent, groups)]
        self.num_partitions = len(groups)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        dep = self.narrow(0)
        return chain.from_iterable(dep.rdd.iterator(p, tctx) for p in dep.parent_splits(split))


class CartesianNode(Node):
    """Every pair (a, b) with a in the left RDD and b in the right one."""

    label = "CartesianRDD"

    def __init__(self, left: RDD[Any], right: RDD[Any]) -> None:
        n_right = right.getNumPartitions()
        self.deps = [CartesianDependency(left, True, n_right), CartesianDependency(right, False, n_right)]
        self.num_partitions = left.getNumPartitions() * n_right

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        left, right = self.narrow(0), self.narrow(1)
        rights = list(right.rdd.iterator(right.parent_splits(split)[0], tctx))
        lefts = left.rdd.iterator(left.parent_splits(split)[0], tctx)
        return ((a, b) for a in lefts for b in rights)


_MISSING = object()


class ZippedNode(Node):
    """Pairs the i-th elements of two RDDs with the same partition layout."""

    label = "ZippedPartitionsRDD2"

    def __init__(self, left: RDD[Any], right: RDD[Any]) -> None:
        self.deps = [NarrowDependency(left), NarrowDependency(right)]
        self.num_partitions = left.getNumPartitions()

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        a, b = (d.rdd.iterator(split, tctx) for d in self.deps)
        for x, y in zip_longest(a, b, fillvalue=_MISSING):
            if x is _MISSING or y is _MISSING:
                raise DStreamValueError("Can only zip RDDs with same number of elements in each partition")
            yield (x, y)


class ShuffledNode(Node):
    """The reduce side of a shuffle: merges this partition's buckets from every map task."""

    label = "ShuffledRDD"

    def __init__(self, dep: ShuffleDependency) -> None:
        self.deps = [dep]
        self.num_partitions = dep.num_partitions

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        dep = self.deps[0]
        assert isinstance(dep, ShuffleDependency)
        return read_buckets(tctx.shuffle_input(dep.shuffle_id, split), dep.aggregator)
