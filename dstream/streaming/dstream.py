"""DStream: PySpark's DStream API, plus the streams that apply a function to parents' RDDs.

Every per-record operation is a `transform` of the matching RDD operation (as in PySpark), so a
batch's RDD is built lazily at job generation and computed by the job that uses it.
"""

from __future__ import annotations

import operator
from itertools import chain
from typing import Any, Generic, TypeVar

from dstream.errors import DStreamError, DStreamValueError
from dstream.streaming.arguments import check_callable, check_partitions
from dstream.streaming.base import DStreamBase
from dstream.streaming.duration import ms_to_datetime, positional_arity
from dstream.streaming.output import OutputOps
from dstream.streaming.pairs import PairOps
from dstream.streaming.window_ops import WindowOps

T_co = TypeVar("T_co", covariant=True)


class DStream(PairOps, WindowOps, OutputOps, DStreamBase, Generic[T_co]):
    """A discretized stream: a sequence of RDDs, one per slide interval, generic in its element type.

    ``DStream[Tuple[float, str]]`` annotations work as in PySpark; the parameter is for type checkers.
    """

    def mapPartitionsWithIndex(self, f: Any, preservesPartitioning: bool = False) -> DStream[Any]:
        """Apply f(partition_index, iterator) to every partition of every batch."""
        check_callable("mapPartitionsWithIndex", "f", f)
        return self.transform(lambda rdd: rdd.mapPartitionsWithIndex(f, preservesPartitioning))

    def mapPartitions(self, f: Any, preservesPartitioning: bool = False) -> DStream[Any]:
        """Apply f(iterator) to every partition of every batch."""
        check_callable("mapPartitions", "f", f)
        return self.mapPartitionsWithIndex(lambda _, it: f(it), preservesPartitioning)

    def map(self, f: Any, preservesPartitioning: bool = False) -> DStream[Any]:
        """Apply f to every element."""
        check_callable("map", "f", f)
        return self.mapPartitions(lambda it: map(f, it), preservesPartitioning)

    def flatMap(self, f: Any, preservesPartitioning: bool = False) -> DStream[Any]:
        """Apply f to every element and flatten the results."""
        check_callable("flatMap", "f", f)
        return self.mapPartitionsWithIndex(
            lambda _, it: chain.from_iterable(map(f, it)), preservesPartitioning
        )

    def filter(self, f: Any) -> DStream[Any]:
        """Keep the elements for which f is true."""
        check_callable("filter", "f", f)
        return self.mapPartitions(lambda it: filter(f, it), True)

    def glom(self) -> DStream[Any]:
        """Each partition of each batch becomes one list."""
        return self.mapPartitions(lambda it: [list(it)])

    def reduce(self, func: Any) -> DStream[Any]:
        """Each batch becomes at most one element: its elements reduced with func."""
        check_callable("reduce", "func", func)
        reduced: DStream[Any] = self.map(lambda x: (None, x)).reduceByKey(func, 1)
        return reduced.map(lambda kv: kv[1])

    def count(self) -> DStream[Any]:
        """Each batch becomes one element: its number of elements (none for a partitionless batch)."""
        return self.mapPartitions(lambda it: [sum(1 for _ in it)]).reduce(operator.add)

    def countByValue(self) -> DStream[Any]:
        """Each batch becomes (value, count) pairs."""
        counted: DStream[Any] = self.map(lambda x: (x, 1)).reduceByKey(operator.add)
        return counted

    def repartition(self, numPartitions: int) -> DStream[Any]:
        """Reshuffle every batch into `numPartitions` partitions."""
        check_partitions("repartition", numPartitions, optional=False)
        return self.transform(lambda rdd: rdd.repartition(numPartitions))

    def transform(self, func: Any) -> DStream[Any]:
        """Apply func(rdd) or func(time, rdd) to every batch; time is a datetime.

        Returning None gives the batch no RDD.
        """
        check_callable("transform", "func", func)
        arity = positional_arity(func)
        if arity == 1:
            return TransformedDStream(self, lambda _t, rdd: func(rdd))
        if arity == 2:
            return TransformedDStream(self, lambda t, rdd: func(ms_to_datetime(t), rdd))
        raise DStreamValueError(f"transform: func should take one or two arguments, {func!r} takes {arity}")

    def transformWith(self, func: Any, other: DStream[Any], keepSerializer: bool = False) -> DStream[Any]:
        """Apply func(rdd_a, rdd_b) or func(time, rdd_a, rdd_b) to the batches of self and other."""
        check_callable("transformWith", "func", func)
        arity = positional_arity(func)
        if arity == 2:
            return Transformed2DStream(self, other, lambda _t, a, b: func(a, b))
        if arity == 3:
            return Transformed2DStream(self, other, lambda t, a, b: func(ms_to_datetime(t), a, b))
        raise DStreamValueError(
            f"transformWith: func should take two or three arguments, {func!r} takes {arity}"
        )

    def write_to(self, sink: Any) -> None:
        """Write every batch through a `dstream.sinks.TransactionalSink`, exactly once per batch time."""
        from dstream.streaming.sink_output import write_stream

        url = getattr(sink, "url", None)
        if isinstance(url, str):
            self._sc.check_reachable_by_workers(url, f"sink {sink!r}")
        write_stream(self, sink)

    def union(self, other: DStream[Any]) -> DStream[Any]:
        """Both streams' elements in each batch; the slide durations must match."""
        if self._slide_ms != other._slide_ms:
            raise DStreamValueError(
                "the two DStream should have same slide duration "
                f"({self._slide_ms} ms vs {other._slide_ms} ms)"
            )
        return self.transformWith(lambda a, b: a.union(b), other, True)


class TransformedDStream(DStream[Any]):
    """func(time_ms, parent_rdd) per batch; no RDD where the parent has none."""

    def __init__(self, parent: DStreamBase, func: Any) -> None:
        super().__init__(parent._ssc, [parent])
        self._func = func

    def _compute(self, time_ms: int) -> Any:
        rdd = self._parents[0]._get_or_compute(time_ms)
        if rdd is None:
            return None
        return self._func(time_ms, rdd)


class Transformed2DStream(DStream[Any]):
    """func(time_ms, rdd_a, rdd_b) per batch; a parent without an RDD contributes an empty one."""

    def __init__(self, parent: DStreamBase, other: DStreamBase, func: Any) -> None:
        if parent._ssc is not other._ssc:
            raise DStreamValueError(f"{parent!r} and {other!r} belong to different StreamingContexts")
        super().__init__(parent._ssc, [parent, other])
        self._func = func

    def _compute(self, time_ms: int) -> Any:
        a, b = (p._get_or_compute(time_ms) for p in self._parents)
        a = self._sc.emptyRDD() if a is None else a
        b = self._sc.emptyRDD() if b is None else b
        return self._func(time_ms, a, b)


class UnionDStream(DStream[Any]):
    """The union of several streams with the same slide (StreamingContext.union)."""

    def __init__(self, ssc: Any, parents: list[DStreamBase]) -> None:
        slides = {p._slide_ms for p in parents}
        if len(slides) > 1:
            raise DStreamValueError(f"All DStreams should have same slide duration, got {sorted(slides)} ms")
        super().__init__(ssc, parents)

    def _compute(self, time_ms: int) -> Any:
        rdds = []
        for parent in self._parents:
            rdd = parent._get_or_compute(time_ms)
            if rdd is None:
                raise DStreamError(
                    f"Could not generate RDD from {parent!r} for unifying at time {time_ms} ms"
                )
            rdds.append(rdd)
        return self._sc.union(rdds)


class MultiTransformedDStream(DStream[Any]):
    """func(list_of_rdds) over several streams' batches (StreamingContext.transform)."""

    def __init__(self, ssc: Any, parents: list[DStreamBase], func: Any) -> None:
        if not parents:
            raise DStreamValueError("List of DStreams to transform is empty")
        slides = {p._slide_ms for p in parents}
        if len(slides) > 1:
            raise DStreamValueError(
                f"Some of the DStreams have different slide durations: {sorted(slides)} ms"
            )
        super().__init__(ssc, parents)
        self._func = func

    def _compute(self, time_ms: int) -> Any:
        rdds = []
        for parent in self._parents:
            rdd = parent._get_or_compute(time_ms)
            if rdd is None:
                raise DStreamError(f"Couldn't generate RDD from {parent!r} at time {time_ms} ms")
            rdds.append(rdd)
        result = self._func(tuple(rdds))
        if result is None:
            raise DStreamError(
                "Transform function must not return None. Return sparkContext.emptyRDD() instead to "
                "represent no element as the result of transformation."
            )
        return result
