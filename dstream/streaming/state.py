"""updateStateByKey: a stream whose RDD at time t is built from its own RDD at t - slide.

Because each state RDD depends on the previous one, its lineage grows by one step per batch; the
stream must be data-checkpointed (a checkpoint directory is required at start) so that the lineage is
cut every checkpoint interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dstream.streaming.dstream import DStream


def state_reduce_func(update_func: Any, num_partitions: int | None) -> Any:
    """The per-batch step (last_state_rdd_or_None, batch_rdd) -> new state RDD, as PySpark builds it."""

    def first(records: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        for key, values in records:
            state = update_func(list(values), None)
            if state is not None:
                yield key, state

    def update(records: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        for key, (old, new) in records:
            state = update_func(list(new), next(iter(old), None))
            if state is not None:
                yield key, state

    # PySpark's mapValues/mapValues/filter chain, fused into one pass per partition.
    def step(last: Any, batch: Any) -> Any:
        if last is None:
            return batch.groupByKey(num_partitions).mapPartitions(first, True)
        return last.cogroup(batch.partitionBy(num_partitions), num_partitions).mapPartitions(update, True)

    return step


class StateDStream(DStream):
    """The state of every key after each batch (PySpark's PythonStateDStream)."""

    _must_checkpoint = True

    def __init__(self, parent: DStream, step: Any, initial: Any = None) -> None:
        super().__init__(parent._ssc, [parent])
        self._step = step
        # Kept as given (a list stays a list) so the graph pickles; made an RDD on first use.
        self._initial = initial
        self._persisted = True

    def _initial_rdd(self) -> Any:
        if self._initial is None or hasattr(self._initial, "mapPartitions"):
            return self._initial
        return self._sc.parallelize(list(self._initial))

    def _compute(self, time_ms: int) -> Any:
        last = self._get_or_compute(time_ms - self._slide_ms)
        batch = self._parents[0]._get_or_compute(time_ms)
        if batch is None:
            return last
        if last is None:
            last = self._initial_rdd()
        return self._step(last, batch)
