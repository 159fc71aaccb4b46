"""Window operations of DStreams, matching PySpark's definitions and results.

PySpark builds countByWindow, reduceByWindow, countByValueAndWindow and groupByKeyAndWindow on
reduceByKeyAndWindow; so does this module, so that their outputs (including when a drained window
emits 0 or keeps a key with an empty group) are the same. Argument checks keep PySpark's order:
the window and slide durations first (ValueError), then this module's extra checks of functions
and partition counts.
"""

from __future__ import annotations

import operator
from typing import Any

from dstream.errors import DStreamValueError
from dstream.rdd.resultiterable import ResultIterable
from dstream.streaming.arguments import check_callable, check_partitions
from dstream.streaming.duration import seconds_to_ms
from dstream.streaming.pairs import _default_partitions


class WindowOps:
    """Mixin of DStream: sliding-window operations."""

    def _window_params(self: Any, windowDuration: Any, slideDuration: Any) -> tuple[int, int]:
        """Validate (window, slide) in seconds against this stream's slide; return them in ms."""
        step = self._slide_ms
        window_ms = seconds_to_ms(windowDuration, "windowDuration")
        if window_ms % step != 0:
            raise DStreamValueError(
                f"windowDuration {windowDuration!r} s must be a multiple of the parent dstream's slide "
                f"(batch) duration ({step} ms)"
            )
        if slideDuration is None:
            return window_ms, step
        slide_ms = seconds_to_ms(slideDuration, "slideDuration")
        if slide_ms % step != 0:
            raise DStreamValueError(
                f"slideDuration {slideDuration!r} s must be a multiple of the parent dstream's slide "
                f"(batch) duration ({step} ms)"
            )
        return window_ms, slide_ms

    def window(self: Any, windowDuration: float, slideDuration: float | None = None) -> Any:
        """Every slide, the union of this stream's batches in the last `windowDuration` seconds."""
        from dstream.streaming.windowed import WindowedDStream

        window_ms, slide_ms = self._window_params(windowDuration, slideDuration)
        return WindowedDStream(self, window_ms, slide_ms)

    def reduceByWindow(
        self: Any, reduceFunc: Any, invReduceFunc: Any, windowDuration: float, slideDuration: float
    ) -> Any:
        """Every slide, all elements in the window reduced to one value."""
        self._window_params(windowDuration, slideDuration)  # PySpark checks the window first
        check_callable("reduceByWindow", "reduceFunc", reduceFunc)
        check_callable("reduceByWindow", "invReduceFunc", invReduceFunc or None, optional=True)
        keyed = self.map(lambda x: (1, x))
        reduced = keyed.reduceByKeyAndWindow(reduceFunc, invReduceFunc, windowDuration, slideDuration, 1)
        return reduced.map(lambda kv: kv[1])

    def countByWindow(self: Any, windowDuration: float, slideDuration: float) -> Any:
        """Every slide, the number of elements in the window."""
        return self.map(lambda x: 1).reduceByWindow(operator.add, operator.sub, windowDuration, slideDuration)

    def countByValueAndWindow(
        self: Any, windowDuration: float, slideDuration: float, numPartitions: int | None = None
    ) -> Any:
        """Every slide, (value, count) for the values in the window with a positive count."""
        self._window_params(windowDuration, slideDuration)  # PySpark checks the window first
        check_partitions("countByValueAndWindow", numPartitions)
        keyed = self.map(lambda x: (x, 1))
        counted = keyed.reduceByKeyAndWindow(
            operator.add, operator.sub, windowDuration, slideDuration, numPartitions
        )
        return counted.filter(lambda kv: kv[1] > 0)

    def groupByKeyAndWindow(
        self: Any, windowDuration: float, slideDuration: float, numPartitions: int | None = None
    ) -> Any:
        """Every slide, (key, values in the window) for each key."""
        self._window_params(windowDuration, slideDuration)  # PySpark checks the window first
        check_partitions("groupByKeyAndWindow", numPartitions)
        lists = self.mapValues(lambda x: [x])
        # Non-mutating merge: cached RDDs hold live Python lists here, unlike PySpark's serialized ones.
        grouped = lists.reduceByKeyAndWindow(
            operator.add, lambda a, b: a[len(b) :], windowDuration, slideDuration, numPartitions
        )
        return grouped.mapValues(ResultIterable)

    def reduceByKeyAndWindow(
        self: Any,
        func: Any,
        invFunc: Any,
        windowDuration: float,
        slideDuration: float | None = None,
        numPartitions: int | None = None,
        filterFunc: Any = None,
    ) -> Any:
        """Every slide, the values of each key in the window reduced with `func`.

        With `invFunc`, the window is updated incrementally (and must be checkpointed); keys whose
        value went back to neutral stay unless `filterFunc` removes them.
        """
        from dstream.streaming.windowed import ReducedWindowedDStream

        # PySpark validates the window and slide before anything else.
        window_ms, slide_ms = self._window_params(windowDuration, slideDuration)
        check_callable("reduceByKeyAndWindow", "func", func)
        # PySpark tests `if not invFunc`: any falsy value means "no inverse function".
        check_callable("reduceByKeyAndWindow", "invFunc", invFunc or None, optional=True)
        check_callable("reduceByKeyAndWindow", "filterFunc", filterFunc or None, optional=True)
        check_partitions("reduceByKeyAndWindow", numPartitions)
        n = _default_partitions(self, numPartitions)
        reduced = self.reduceByKey(func, n)
        if not invFunc:
            return reduced.window(windowDuration, slideDuration).reduceByKey(func, n)

        def reduce_func(a: Any, b: Any) -> Any:
            b = b.reduceByKey(func, n)
            r = a.union(b).reduceByKey(func, n) if a is not None else b
            return r.filter(filterFunc) if filterFunc else r

        def inv_reduce_func(a: Any, b: Any) -> Any:
            b = b.reduceByKey(func, n)
            joined = a.leftOuterJoin(b, n)
            return joined.mapValues(lambda vw: invFunc(vw[0], vw[1]) if vw[1] is not None else vw[0])

        return ReducedWindowedDStream(reduced, reduce_func, inv_reduce_func, window_ms, slide_ms)
