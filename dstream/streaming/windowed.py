"""Windowed streams: the window of a parent's batches, and PySpark's incremental reduced window.

A windowed stream has its own slide: it has an RDD only at times T with (T - zeroTime) % slide == 0,
covering the parent's batches in (T - window, T]. Before zeroTime there is nothing, so the first
windows are partial; after the input ends the window drains batch by batch.
"""

from __future__ import annotations

from typing import Any

from dstream.streaming.dstream import DStream


class WindowedDStream(DStream[Any]):
    """The union of the parent's RDDs in each window (Spark's WindowedDStream)."""

    def __init__(self, parent: DStream[Any], window_ms: int, slide_ms: int) -> None:
        super().__init__(parent._ssc, [parent])
        self._window_ms = window_ms
        self._window_slide_ms = slide_ms
        # The parent's RDDs are read by several windows: keep them instead of recomputing (Spark does).
        parent._persisted = True

    @property
    def _slide_ms(self) -> int:
        return self._window_slide_ms

    def _parent_remember_ms(self) -> int | None:
        return (self._remember_ms or 0) + self._window_ms

    def _compute(self, time_ms: int) -> Any:
        parent = self._parents[0]
        rdds = parent._slice_ms(time_ms - self._window_ms + parent._slide_ms, time_ms)
        return self._sc.union(rdds) if rdds else self._sc.emptyRDD()


class ReducedWindowedDStream(DStream[Any]):
    """reduceByKeyAndWindow with an inverse function (PySpark's PythonReducedWindowedDStream).

    The parent is the per-batch reduced stream. When the previous window's RDD exists and the window
    is at least five slides long, the new window is the previous one minus the batches that left
    (inverse function) plus those that entered; otherwise it is reduced from scratch. Keys whose
    value was inverted back to a neutral value therefore stay unless a filter removes them.
    """

    _must_checkpoint = True

    def __init__(
        self, reduced: DStream[Any], reduce_func: Any, inv_func: Any, window_ms: int, slide_ms: int
    ) -> None:
        super().__init__(reduced._ssc, [reduced])
        self._reduce_func = reduce_func
        self._inv_func = inv_func
        self._window_ms = window_ms
        self._window_slide_ms = slide_ms
        self._persisted = True

    @property
    def _slide_ms(self) -> int:
        return self._window_slide_ms

    def _parent_remember_ms(self) -> int | None:
        return (self._remember_ms or 0) + self._window_ms

    def _union(self, rdds: list[Any]) -> Any:
        return self._sc.union(rdds) if len(rdds) > 1 else rdds[0]

    def _compute(self, time_ms: int) -> Any:
        parent = self._parents[0]
        step = parent._slide_ms
        begin, end = time_ms - self._window_ms, time_ms
        prev_begin, prev_end = begin - self._window_slide_ms, end - self._window_slide_ms
        previous = self._get_or_compute(prev_end)
        if (
            self._inv_func is not None
            and previous is not None
            and self._window_ms >= 5 * self._window_slide_ms
        ):
            old = parent._slice_ms(prev_begin + step, begin)
            subtracted = self._inv_func(previous, self._union(old)) if old else previous
            new = parent._slice_ms(prev_end + step, end)
            return self._reduce_func(subtracted, self._union(new)) if new else subtracted
        current = parent._slice_ms(begin + step, end)
        if not current:
            return None
        return self._reduce_func(None, self._union(current))
