"""Key-value operations of DStreams (PySpark's pair methods), each a per-batch RDD operation.

Like PySpark, every method is a `transform` or `transformWith` of the matching RDD method, with
`numPartitions` defaulting to the context's default parallelism.
"""

from __future__ import annotations

from typing import Any

from dstream.streaming.arguments import check_callable, check_partitions


def _default_partitions(stream: Any, numPartitions: int | None) -> int | None:
    if numPartitions is not None:
        return numPartitions
    return getattr(stream._sc, "defaultParallelism", None)


class PairOps:
    """Mixin of DStream: methods for streams of (key, value) pairs."""

    def reduceByKey(self: Any, func: Any, numPartitions: int | None = None) -> Any:
        """Merge the values of each key with `func` in each batch."""
        check_callable("reduceByKey", "func", func)
        check_partitions("reduceByKey", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.combineByKey(lambda x: x, func, func, n)

    def combineByKey(
        self: Any, createCombiner: Any, mergeValue: Any, mergeCombiners: Any, numPartitions: int | None = None
    ) -> Any:
        """RDD.combineByKey on every batch."""
        check_callable("combineByKey", "createCombiner", createCombiner)
        check_callable("combineByKey", "mergeValue", mergeValue)
        check_callable("combineByKey", "mergeCombiners", mergeCombiners)
        check_partitions("combineByKey", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transform(lambda rdd: rdd.combineByKey(createCombiner, mergeValue, mergeCombiners, n))

    def partitionBy(self: Any, numPartitions: int, partitionFunc: Any = None) -> Any:
        """Hash-partition every batch into `numPartitions` partitions (by `partitionFunc` if given)."""
        check_partitions("partitionBy", numPartitions, optional=False)
        check_callable("partitionBy", "partitionFunc", partitionFunc, optional=True)
        if partitionFunc is None:
            return self.transform(lambda rdd: rdd.partitionBy(numPartitions))
        return self.transform(lambda rdd: rdd.partitionBy(numPartitions, partitionFunc))

    def groupByKey(self: Any, numPartitions: int | None = None) -> Any:
        """Group the values of each key in each batch."""
        check_partitions("groupByKey", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transform(lambda rdd: rdd.groupByKey(n))

    def mapValues(self: Any, f: Any) -> Any:
        """Apply `f` to every value, keeping keys (and partitioning)."""
        check_callable("mapValues", "f", f)
        return self.map(lambda kv: (kv[0], f(kv[1])), preservesPartitioning=True)

    def flatMapValues(self: Any, f: Any) -> Any:
        """Apply `f` to every value and flatten, keeping keys."""
        check_callable("flatMapValues", "f", f)
        return self.flatMap(lambda kv: ((kv[0], x) for x in f(kv[1])), preservesPartitioning=True)

    def cogroup(self: Any, other: Any, numPartitions: int | None = None) -> Any:
        """Per batch: for each key, (values in this stream, values in `other`)."""
        check_partitions("cogroup", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transformWith(lambda a, b: a.cogroup(b, n), other)

    def join(self: Any, other: Any, numPartitions: int | None = None) -> Any:
        """Per batch inner join on keys."""
        check_partitions("join", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transformWith(lambda a, b: a.join(b, n), other)

    def leftOuterJoin(self: Any, other: Any, numPartitions: int | None = None) -> Any:
        """Per batch left outer join on keys."""
        check_partitions("leftOuterJoin", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transformWith(lambda a, b: a.leftOuterJoin(b, n), other)

    def rightOuterJoin(self: Any, other: Any, numPartitions: int | None = None) -> Any:
        """Per batch right outer join on keys."""
        check_partitions("rightOuterJoin", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transformWith(lambda a, b: a.rightOuterJoin(b, n), other)

    def fullOuterJoin(self: Any, other: Any, numPartitions: int | None = None) -> Any:
        """Per batch full outer join on keys."""
        check_partitions("fullOuterJoin", numPartitions)
        n = _default_partitions(self, numPartitions)
        return self.transformWith(lambda a, b: a.fullOuterJoin(b, n), other)

    def updateStateByKey(
        self: Any, updateFunc: Any, numPartitions: int | None = None, initialRDD: Any = None
    ) -> Any:
        """Keep a state per key across batches: state = updateFunc(new_values, last_state_or_None).

        updateFunc runs for every key in the state or in the batch; returning None drops the key.
        `initialRDD` (an RDD or a list of pairs) is the state before the first batch.
        """
        from dstream.streaming.state import StateDStream, state_reduce_func

        check_callable("updateStateByKey", "updateFunc", updateFunc)
        check_partitions("updateStateByKey", numPartitions)
        n = _default_partitions(self, numPartitions)
        return StateDStream(self, state_reduce_func(updateFunc, n), initialRDD)
