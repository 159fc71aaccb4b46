"""Input streams: the base InputDStream and queueStream's QueueInputDStream.

An input stream has the context's batch duration as its slide, is started and stopped with the
graph, and reports per batch how many records it contributed (`_input_info`) for the listener bus.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from dstream.streaming.dstream import DStream
from dstream.streaming.listener import StreamInputInfo


class InputDStream(DStream[Any]):
    """A stream with no parent; subclasses compute each batch's RDD from outside data."""

    def __init__(self, ssc: Any) -> None:
        super().__init__(ssc, [])
        self._batch_ms: int = ssc.runtime.batch_ms
        self._records_per_batch: dict[int, int] = {}
        ssc.runtime.graph.add_input_stream(self)

    @property
    def _slide_ms(self) -> int:
        return self._batch_ms

    def _start(self) -> None:
        """Begin receiving (only receiver-like inputs do anything)."""

    def _stop(self) -> None:
        """Stop receiving."""

    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        count = self._records_per_batch.get(time_ms)
        if count is None:
            return None
        return StreamInputInfo(self._id, count)

    def _clear_metadata(self, time_ms: int) -> None:
        threshold = time_ms - (self._remember_ms or 0)
        for t in [t for t in self._records_per_batch if t <= threshold]:
            del self._records_per_batch[t]
        super()._clear_metadata(time_ms)


def _is_rdd(value: Any) -> bool:
    return hasattr(value, "mapPartitions") and hasattr(value, "collect")


class QueueInputDStream(InputDStream):
    """queueStream: one queued item per batch (or all at once), then `default` or an empty RDD.

    Items may be RDDs or lists; lists stay lists until their batch (so the graph pickles) and their
    length is the batch's record count.
    """

    def __init__(self, ssc: Any, items: list[Any], oneAtATime: bool, default: Any) -> None:
        super().__init__(ssc)
        self._queue: deque[Any] = deque(items)
        self._one_at_a_time = oneAtATime
        self._default = default
        self._queue_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_queue_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._queue_lock = threading.Lock()

    def _to_rdd(self, item: Any) -> Any:
        return item if _is_rdd(item) else self._sc.parallelize(list(item))

    def _compute(self, time_ms: int) -> Any:
        with self._queue_lock:
            if self._one_at_a_time and self._queue:
                taken = [self._queue.popleft()]
            else:
                taken = list(self._queue)
                self._queue.clear()
        if taken:
            self._records_per_batch[time_ms] = sum(0 if _is_rdd(x) else len(x) for x in taken)
            rdds = [self._to_rdd(x) for x in taken]
            return rdds[0] if self._one_at_a_time else self._sc.union(rdds)
        self._records_per_batch[time_ms] = 0
        if self._default is not None:
            return self._to_rdd(self._default)
        return self._sc.emptyRDD()
