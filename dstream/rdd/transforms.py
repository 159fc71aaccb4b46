# mypy: disable-error-code="misc"
"""Narrow and whole-RDD transformations (map, filter, union, coalesce, zip, sample, ...).

Consecutive per-partition functions are composed into one MapPartitionsNode (PySpark's
PipelinedRDD), so a chain of maps and filters costs one generator layer per operation and no
intermediate RDD in a task. Composition stops at an RDD that is persisted or checkpointed, whose
partitions must stay addressable.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from dstream.errors import DStreamValueError
from dstream.rdd.nodes import (
    CartesianNode,
    CoalescedNode,
    MapPartitionsNode,
    PartitionerAwareUnionNode,
    UnionNode,
    ZippedNode,
)
from dstream.rdd.partitioner import portable_hash

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD

PartitionFn = Callable[[int, Iterator[Any]], Iterable[Any]]


def check_num_partitions(n: object, what: str = "numPartitions") -> int:
    """Validate a partition count given by a user."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DStreamValueError(f"{what} must be a positive int, got {n!r}")
    return n


def _identity(x: Any) -> Any:
    return x


class TransformsMixin:
    """Element-wise and partition-wise transformations of any RDD."""

    def _pipelinable(self: RDD[Any]) -> bool:
        return not (
            self._storage_level.is_stored
            or self._checkpoint_marked
            or self.is_checkpointed
            or self._block_backed
        )

    def mapPartitionsWithIndex(
        self: RDD[Any], f: PartitionFn, preservesPartitioning: bool = False
    ) -> RDD[Any]:
        """Apply ``f(partition_index, iterator) -> iterable`` to every partition."""
        node = self._node
        if isinstance(node, MapPartitionsNode) and self._pipelinable():
            new = MapPartitionsNode(node.parent, [*node.funcs, f])
        else:
            new = MapPartitionsNode(self, [f])
        return self._derive(new, self.partitioner if preservesPartitioning else None)

    def mapPartitions(
        self: RDD[Any], f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD[Any]:
        """Apply ``f(iterator) -> iterable`` to every partition."""
        return self.mapPartitionsWithIndex(lambda _, it: f(it), preservesPartitioning)

    def map(self: RDD[Any], f: Callable[[Any], Any], preservesPartitioning: bool = False) -> RDD[Any]:
        return self.mapPartitionsWithIndex(lambda _, it: map(f, it), preservesPartitioning)

    def flatMap(
        self: RDD[Any], f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD[Any]:
        return self.mapPartitionsWithIndex(
            lambda _, it: chain.from_iterable(map(f, it)), preservesPartitioning
        )

    def filter(self: RDD[Any], f: Callable[[Any], bool]) -> RDD[Any]:
        return self.mapPartitionsWithIndex(lambda _, it: filter(f, it), True)

    def glom(self: RDD[Any]) -> RDD[Any]:
        """One list per partition."""
        return self.mapPartitionsWithIndex(lambda _, it: iter([list(it)]))

    def keyBy(self: RDD[Any], f: Callable[[Any], Any]) -> RDD[Any]:
        return self.map(lambda x: (f(x), x))

    def union(self: RDD[Any], other: RDD[Any]) -> RDD[Any]:
        """Partitions of self followed by partitions of other (duplicates kept).

        If both are partitioned by the same partitioner, partition i of the result is
        partition i of self then of other, and the partitioner is kept (as in Spark).
        """
        return union_of([self, other])

    def __add__(self: RDD[Any], other: RDD[Any]) -> RDD[Any]:
        return self.union(other)

    def cartesian(self: RDD[Any], other: RDD[Any]) -> RDD[Any]:
        """All pairs (a, b); partition count is the product of both."""
        return self._derive(CartesianNode(self, other))

    def distinct(self: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        return self.map(lambda x: (x, None)).reduceByKey(lambda x, _: x, numPartitions).map(lambda kv: kv[0])

    def intersection(self: RDD[Any], other: RDD[Any]) -> RDD[Any]:
        """Distinct elements present in both RDDs."""
        left, right = self.map(lambda v: (v, None)), other.map(lambda v: (v, None))
        return left.cogroup(right).filter(lambda kv: bool(kv[1][0]) and bool(kv[1][1])).keys()

    def coalesce(self: RDD[Any], numPartitions: int, shuffle: bool = False) -> RDD[Any]:
        """Reduce to ``numPartitions`` by merging adjacent partitions (or by a shuffle)."""
        n = check_num_partitions(numPartitions)
        if shuffle:
            return self._round_robin(n)
        p = self.getNumPartitions()
        n = min(n, p) if p else n
        groups = [list(range(i * p // n, (i + 1) * p // n)) for i in range(n)] if p else []
        return self._derive(CoalescedNode(self, groups))

    def repartition(self: RDD[Any], numPartitions: int) -> RDD[Any]:
        """Exactly ``numPartitions`` partitions, balanced by a shuffle."""
        return self.coalesce(numPartitions, shuffle=True)

    def _round_robin(self: RDD[Any], n: int) -> RDD[Any]:
        def spread(split: int, it: Iterator[Any]) -> Iterator[tuple[int, Any]]:
            start = (split * 2654435761) % n  # deterministic, different per input partition
            return ((i % n, x) for i, x in enumerate(it, start))

        return self.mapPartitionsWithIndex(spread).partitionBy(n, _identity).values()

    def zip(self: RDD[Any], other: RDD[Any]) -> RDD[Any]:
        """Pair elements by position; both RDDs need the same partitions and partition sizes."""
        if self.getNumPartitions() != other.getNumPartitions():
            raise DStreamValueError(
                f"Can only zip RDDs with the same number of partitions: {self.getNumPartitions()}"
                f" != {other.getNumPartitions()}"
            )
        return self._derive(ZippedNode(self, other))

    def zipWithIndex(self: RDD[Any]) -> RDD[Any]:
        """Pair each element with its global index (runs a job to size the partitions)."""
        sizes = self.mapPartitions(lambda it: [sum(1 for _ in it)]).collect()
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return self.mapPartitionsWithIndex(lambda s, it: ((x, i) for i, x in enumerate(it, starts[s])))

    def zipWithUniqueId(self: RDD[Any]) -> RDD[Any]:
        """Pair each element of partition k with ids k, n+k, 2n+k... (no job needed)."""
        n = self.getNumPartitions()
        return self.mapPartitionsWithIndex(lambda k, it: ((x, i * n + k) for i, x in enumerate(it)))

    def groupBy(
        self: RDD[Any],
        f: Callable[[Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        return self.map(lambda x: (f(x), x)).groupByKey(numPartitions, partitionFunc)

    def sortBy(
        self: RDD[Any],
        keyfunc: Callable[[Any], Any],
        ascending: bool = True,
        numPartitions: int | None = None,
    ) -> RDD[Any]:
        return self.keyBy(keyfunc).sortByKey(ascending, numPartitions).values()

    def sample(self: RDD[Any], withReplacement: bool, fraction: float, seed: int | None = None) -> RDD[Any]:
        """A deterministic (given ``seed``) random sample; each element kept with probability ``fraction``."""
        if fraction < 0 or (not withReplacement and fraction > 1):
            raise DStreamValueError(
                f"fraction must be in [0, 1] (or >= 0 with replacement), got {fraction!r}"
            )
        base = random.randrange(1 << 30) if seed is None else seed

        def pick(split: int, it: Iterator[Any]) -> Iterator[Any]:
            rng = random.Random(base * 1_000_003 + split)
            if not withReplacement:
                return (x for x in it if rng.random() < fraction)
            return (x for x in it for _ in range(_poisson(rng, fraction)))

        return self.mapPartitionsWithIndex(pick, True)


def union_of(rdds: list[RDD[Any]]) -> RDD[Any]:
    """Union of one or more RDDs of the same Context (partitioner-aware when they share one)."""
    first = rdds[0]
    partitioner = first.partitioner
    if partitioner is not None and all(r.partitioner == partitioner for r in rdds[1:]):
        return first._derive(PartitionerAwareUnionNode(rdds), partitioner)
    return first._derive(UnionNode(rdds))


def _poisson(rng: random.Random, mean: float) -> int:
    # Counting exponential inter-arrival times is exact and fine for the small means sampling uses.
    count, total = 0, rng.expovariate(1.0) if mean > 0 else float("inf")
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count
