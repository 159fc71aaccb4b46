"""Helpers for the recovery tests: a replayable input stream and an output sink that survive pickling.

Functions here are module-level so that cloudpickle pickles them by reference: a recovered graph's
output function is the same function, writing into the same `SINK`, as before the restart.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from dstream.streaming.inputs import InputDStream

WAIT_S = 30.0
BATCH_MS = 1000

SINK: dict[int, list[Any]] = {}
"""batch time (ms) -> sorted output of that batch; cleared by each test."""


class ReplayInputDStream(InputDStream):
    """Batch i (1-based from the zero time) is `batches[i - 1]`; replayable like Spark's TestInputStream."""

    def __init__(self, ssc: Any, batches: list[list[Any]], num_partitions: int = 2) -> None:
        super().__init__(ssc)
        self._batches = [list(b) for b in batches]
        self._num_partitions = num_partitions

    def _compute(self, time_ms: int) -> Any:
        assert self._zero_time_ms is not None
        index = (time_ms - self._zero_time_ms) // self._batch_ms - 1
        data = self._batches[index] if 0 <= index < len(self._batches) else []
        self._records_per_batch[time_ms] = len(data)
        return self._sc.parallelize(data, self._num_partitions)


def to_ms(t: Any) -> int:
    return round(t.timestamp() * 1000)


def record(t: Any, rdd: Any) -> None:
    """foreachRDD target: keep each batch's sorted output in SINK."""
    SINK[to_ms(t)] = sorted(rdd.collect(), key=repr)


def running_count(values: list[int], state: int | None) -> int:
    return sum(values) + (state or 0)


def new_context(
    clock: ManualClock, path: str, storage_options: dict[str, Any] | None = None
) -> StreamingContext:
    sc = Context.getOrCreate(Conf().setMaster("local[2]").setAppName("recovery-test"))
    ssc = StreamingContext(sc, BATCH_MS / 1000, clock=clock)
    ssc.checkpoint(path, **(storage_options or {}))
    return ssc


add = operator.add
sub = operator.sub


def run_batches(ssc: StreamingContext, clock: ManualClock, first_ms: int, last_ms: int) -> None:
    """Advance the clock batch by batch from `first_ms` to `last_ms`, waiting for each batch, its
    completion checkpoint and its data checkpoints (so what a checkpoint references is deterministic)."""
    for t in range(first_ms, last_ms + 1, BATCH_MS):
        clock.set_time(t)
        assert ssc.wait_for_batch(t, WAIT_S), f"batch {t} ms did not complete in {WAIT_S}s"
        assert ssc.wait_for_checkpoint(t, WAIT_S), f"no checkpoint after batch {t} ms in {WAIT_S}s"
        assert ssc.runtime.checkpointer.rdds.wait_idle(WAIT_S)


def stop_all() -> Iterator[None]:
    yield
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=True)
    ctx = Context._active
    if ctx is not None:
        ctx.stop()


def lineage_size(rdd: Any) -> int:
    """How many distinct RDDs the lineage of `rdd` reaches (itself included)."""
    seen: set[int] = set()
    stack = [rdd]
    while stack:
        r = stack.pop()
        if r is None or r._id in seen:
            continue
        seen.add(r._id)
        stack.extend(dep.rdd for dep in r._node.deps)
    return len(seen)


LINEAGE: dict[int, int] = {}


def record_lineage(t: Any, rdd: Any) -> None:
    """foreachRDD target: the batch's lineage size, then its output."""
    LINEAGE[to_ms(t)] = lineage_size(rdd)
    record(t, rdd)
