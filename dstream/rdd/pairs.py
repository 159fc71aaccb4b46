# mypy: disable-error-code="misc"
"""Operations on RDDs of (key, value) pairs: aggregations, grouping, joins, partitioning, sorting.

Every aggregation is combineByKey over one shuffle with map-side combine; joins are one cogroup
(one shuffle for all inputs) followed by a per-key expansion, as in PySpark. When the input is
already partitioned by the requested partitioner, the combine runs in place with no shuffle,
which keeps a stateful stream's per-batch cost flat.
"""

from __future__ import annotations

import copy
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dstream.rdd.nodes import CoGroupedNode, ShuffledNode, not_a_cogroup_pair
from dstream.rdd.partitioner import Partitioner, RangeBounds, portable_hash, range_bounds
from dstream.rdd.resultiterable import ResultIterable
from dstream.rdd.shuffle import Aggregator, ShuffleDependency, combine, identity
from dstream.rdd.transforms import check_num_partitions, union_of

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD

HashFunc = Callable[[Any], int]


def _list_create(v: Any) -> list[Any]:
    return [v]


def _list_append(acc: list[Any], v: Any) -> list[Any]:
    acc.append(v)
    return acc


def _list_extend(acc: list[Any], more: list[Any]) -> list[Any]:
    acc.extend(more)
    return acc


class PairsMixin:
    """PySpark's pair-RDD methods."""

    def _default_reduce_partitions(self: RDD[Any]) -> int:
        if self.context.engine_config.default_parallelism is not None:
            return self.context.defaultParallelism
        return max(1, self.getNumPartitions())

    def _shuffle(self: RDD[Any], n: int, partitionFunc: HashFunc, agg: Aggregator | None) -> RDD[Any]:
        ctx = self.context
        dep = ShuffleDependency(self, ctx._new_shuffle_id(), n, partitionFunc, agg)
        node = ShuffledNode(dep)
        # Map outputs live as long as the node.
        weakref.finalize(node, ctx._map_outputs.free_later, dep.shuffle_id)
        return self._derive(node, Partitioner(n, partitionFunc))

    def partitionBy(
        self: RDD[Any], numPartitions: int | None, partitionFunc: HashFunc = portable_hash
    ) -> RDD[Any]:
        """Shuffle into ``numPartitions`` by ``partitionFunc(key) % numPartitions`` (no-op if already so)."""
        n = check_num_partitions(
            self._default_reduce_partitions() if numPartitions is None else numPartitions
        )
        if self.partitioner == Partitioner(n, partitionFunc):
            return self
        return self._shuffle(n, partitionFunc, None)

    def combineByKey(
        self: RDD[Any],
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: HashFunc = portable_hash,
    ) -> RDD[Any]:
        """Generic per-key aggregation with map-side combine (PySpark semantics)."""
        n = check_num_partitions(
            self._default_reduce_partitions() if numPartitions is None else numPartitions
        )
        agg = Aggregator(createCombiner, mergeValue, mergeCombiners)
        if self.partitioner == Partitioner(n, partitionFunc):
            return self.mapPartitions(lambda it: iter(combine(it, agg).items()), True)
        return self._shuffle(n, partitionFunc, agg)

    def reduceByKey(
        self: RDD[Any],
        func: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: HashFunc = portable_hash,
    ) -> RDD[Any]:
        return self.combineByKey(identity, func, func, numPartitions, partitionFunc)

    def reduceByKeyLocally(self: RDD[Any], func: Callable[[Any, Any], Any]) -> dict[Any, Any]:
        """Merge values per key and return the result to the driver as a dict."""
        agg = Aggregator(identity, func, func)
        out: dict[Any, Any] = {}
        for part in self.mapPartitions(lambda it: [combine(it, agg)]).collect():
            for k, v in part.items():
                out[k] = func(out[k], v) if k in out else v
        return out

    def foldByKey(
        self: RDD[Any],
        zeroValue: Any,
        func: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: HashFunc = portable_hash,
    ) -> RDD[Any]:
        return self.combineByKey(
            lambda v: func(copy.deepcopy(zeroValue), v), func, func, numPartitions, partitionFunc
        )

    def aggregateByKey(
        self: RDD[Any],
        zeroValue: Any,
        seqFunc: Callable[[Any, Any], Any],
        combFunc: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: HashFunc = portable_hash,
    ) -> RDD[Any]:
        return self.combineByKey(
            lambda v: seqFunc(copy.deepcopy(zeroValue), v), seqFunc, combFunc, numPartitions, partitionFunc
        )

    def groupByKey(
        self: RDD[Any], numPartitions: int | None = None, partitionFunc: HashFunc = portable_hash
    ) -> RDD[Any]:
        """(key, ResultIterable of values), values in input order."""
        grouped = self.combineByKey(_list_create, _list_append, _list_extend, numPartitions, partitionFunc)
        return grouped.mapValues(ResultIterable)

    def mapValues(self: RDD[Any], f: Callable[[Any], Any]) -> RDD[Any]:
        return self.map(lambda kv: (kv[0], f(kv[1])), True)

    def flatMapValues(self: RDD[Any], f: Callable[[Any], Iterable[Any]]) -> RDD[Any]:
        return self.flatMap(lambda kv: ((kv[0], x) for x in f(kv[1])), True)

    def keys(self: RDD[Any]) -> RDD[Any]:
        return self.map(lambda kv: kv[0])

    def values(self: RDD[Any]) -> RDD[Any]:
        return self.map(lambda kv: kv[1])

    def cogroup(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """(key, (ResultIterable of self's values, ResultIterable of other's values))."""
        return _cogroup([self, other], numPartitions)

    def groupWith(self: RDD[Any], other: RDD[Any], *others: RDD[Any]) -> RDD[Any]:
        """cogroup over any number of RDDs."""
        return _cogroup([self, other, *others], None)

    def join(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        return self.cogroup(other, numPartitions).flatMapValues(_pairs(False, False))

    def leftOuterJoin(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        return self.cogroup(other, numPartitions).flatMapValues(_pairs(False, True))

    def rightOuterJoin(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        return self.cogroup(other, numPartitions).flatMapValues(_pairs(True, False))

    def fullOuterJoin(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        return self.cogroup(other, numPartitions).flatMapValues(_pairs(True, True))

    def subtractByKey(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """Pairs of self whose key is not in other."""
        grouped = self.cogroup(other, numPartitions)
        return grouped.filter(lambda kv: bool(kv[1][0]) and not kv[1][1]).flatMapValues(lambda vw: vw[0])

    def subtract(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """Elements of self not in other (duplicates of self kept)."""
        theirs = other.map(lambda x: (x, True))
        return self.map(lambda x: (x, True)).subtractByKey(theirs, numPartitions).keys()

    def sortByKey(
        self: RDD[Any],
        ascending: bool = True,
        numPartitions: int | None = None,
        keyfunc: Callable[[Any], Any] = identity,
    ) -> RDD[Any]:
        """Total order by key across partitions (range partitioning from a sample of keys)."""
        n = check_num_partitions(
            self._default_reduce_partitions() if numPartitions is None else numPartitions
        )

        def sort_partition(it: Iterator[Any]) -> Iterator[Any]:
            return iter(sorted(it, key=lambda kv: keyfunc(kv[0]), reverse=not ascending))

        if n == 1:
            single = self.coalesce(1) if self.getNumPartitions() > 1 else self
            return single.mapPartitions(sort_partition, True)
        size = self.count()
        if size == 0:
            return self
        fraction = min(n * 20.0 / size, 1.0)
        sample = sorted(self.sample(False, fraction, 1).map(lambda kv: kv[0]).collect(), key=keyfunc)
        bounds = [keyfunc(k) for k in range_bounds(sample, n)]
        return self.partitionBy(n, RangeBounds(bounds, keyfunc, ascending)).mapPartitions(
            sort_partition, True
        )

    def countByKey(self: RDD[Any]) -> defaultdict[Any, int]:
        return self.map(lambda kv: kv[0]).countByValue()

    def collectAsMap(self: RDD[Any]) -> dict[Any, Any]:
        return dict(self.collect())

    def lookup(self: RDD[Any], key: Any) -> list[Any]:
        """All values for ``key``."""
        return self.filter(lambda kv: kv[0] == key).values().collect()


def _cogroup(rdds: list[RDD[Any]], numPartitions: int | None) -> RDD[Any]:
    # Default partition count is the union's (the sum of the inputs'), as in PySpark.
    union = union_of(rdds)
    n = check_num_partitions(union._default_reduce_partitions() if numPartitions is None else numPartitions)
    if union.partitioner == Partitioner(n, portable_hash):  # co-partitioned: no shuffle, one pass
        return union._derive(CoGroupedNode(rdds), union.partitioner)
    width = len(rdds)
    tagged = union_of([r.map(_tagger(i), True) for i, r in enumerate(rdds)])

    def create(iv: tuple[int, Any]) -> list[list[Any]]:
        lists: list[list[Any]] = [[] for _ in range(width)]
        lists[iv[0]].append(iv[1])
        return lists

    def merge_value(lists: list[list[Any]], iv: tuple[int, Any]) -> list[list[Any]]:
        lists[iv[0]].append(iv[1])
        return lists

    def merge_combiners(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
        for mine, theirs in zip(a, b, strict=True):
            mine.extend(theirs)
        return a

    grouped = tagged.combineByKey(create, merge_value, merge_combiners, n)
    return grouped.mapValues(lambda lists: tuple(ResultIterable(vs) for vs in lists))


def _tagger(i: int) -> Callable[[tuple[Any, Any]], tuple[Any, tuple[int, Any]]]:
    def tag(kv: tuple[Any, Any]) -> tuple[Any, tuple[int, Any]]:
        try:
            return kv[0], (i, kv[1])
        except (TypeError, IndexError, KeyError) as exc:  # as CoGroupedNode reports it
            raise not_a_cogroup_pair(kv) from exc

    return tag


def _pairs(keep_left_missing: bool, keep_right_missing: bool) -> Callable[[Any], Iterator[Any]]:
    def expand(groups: tuple[ResultIterable, ResultIterable]) -> Iterator[Any]:
        vs: list[Any] = list(groups[0]) or ([None] if keep_left_missing else [])
        ws: list[Any] = list(groups[1]) or ([None] if keep_right_missing else [])
        return ((v, w) for v in vs for w in ws)

    return expand
