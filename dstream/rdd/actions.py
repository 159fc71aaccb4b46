# mypy: disable-error-code="misc"
"""Actions: operations that run a job and bring a result to the driver.

Each action reduces a partition to a small value inside its task (count, partial reduce, a
dict of counts), so only those values travel back. Every job goes through ``_run_job``, which
afterwards writes the checkpoints of RDDs marked with ``checkpoint()`` (Spark's doCheckpoint).
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from functools import reduce as _reduce
from typing import TYPE_CHECKING, Any

from dstream.errors import DStreamValueError
from dstream.rdd import checkpointing, file_io

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD


class _Empty:
    """Marks an empty partition in reduce(); a class so it keeps its identity through pickle."""


_EMPTY = _Empty


def _reduce_partition(f: Callable[[Any, Any], Any]) -> Callable[[Iterator[Any]], Any]:
    def step(it: Iterator[Any]) -> Any:
        first = next(it, _EMPTY)
        return _EMPTY if first is _EMPTY else _reduce(f, it, first)

    return step


class ActionsMixin:
    """PySpark's actions."""

    def _run_job(
        self: RDD[Any],
        func: Callable[[Iterator[Any]], Any],
        partitions: Sequence[int] | None = None,
        name: str = "job",
    ) -> list[Any]:
        results = self.context._scheduler.run_job(self, func, partitions, name)
        checkpointing.checkpoint_marked(self)
        return results

    def collect(self: RDD[Any]) -> list[Any]:
        return list(itertools.chain.from_iterable(self._run_job(list, name="collect")))

    def count(self: RDD[Any]) -> int:
        return sum(self._run_job(lambda it: sum(1 for _ in it), name="count"))

    def foreach(self: RDD[Any], f: Callable[[Any], Any]) -> None:
        def each(it: Iterator[Any]) -> None:
            for x in it:
                f(x)

        self._run_job(each, name="foreach")

    def foreachPartition(self: RDD[Any], f: Callable[[Iterator[Any]], Any]) -> None:
        def each_partition(it: Iterator[Any]) -> None:
            f(it)

        self._run_job(each_partition, name="foreachPartition")

    def take(self: RDD[Any], num: int) -> list[Any]:
        """The first ``num`` elements, scanning as few partitions as it can (more each round)."""
        out: list[Any] = []
        total, scanned = self.getNumPartitions(), 0
        while len(out) < num and scanned < total:
            batch = _next_scan(num, len(out), scanned)
            parts = list(range(scanned, min(scanned + batch, total)))
            step = partial(_head, limit=num - len(out))
            for chunk in self._run_job(step, parts, "take"):
                out.extend(chunk)
            scanned += len(parts)
        return out[:num]

    def first(self: RDD[Any]) -> Any:
        rs = self.take(1)
        if rs:
            return rs[0]
        raise DStreamValueError("RDD is empty")

    def isEmpty(self: RDD[Any]) -> bool:
        return self.getNumPartitions() == 0 or len(self.take(1)) == 0

    def reduce(self: RDD[Any], f: Callable[[Any, Any], Any]) -> Any:
        vals = [v for v in self._run_job(_reduce_partition(f), name="reduce") if v is not _EMPTY]
        if not vals:
            raise DStreamValueError("Can not reduce() empty RDD")
        return _reduce(f, vals)

    def fold(self: RDD[Any], zeroValue: Any, op: Callable[[Any, Any], Any]) -> Any:
        """Fold each partition from ``zeroValue``, then the partials from ``zeroValue``."""
        vals = self._run_job(lambda it: _reduce(op, it, zeroValue), name="fold")
        return _reduce(op, vals, zeroValue)

    def aggregate(
        self: RDD[Any], zeroValue: Any, seqOp: Callable[[Any, Any], Any], combOp: Callable[[Any, Any], Any]
    ) -> Any:
        vals = self._run_job(lambda it: _reduce(seqOp, it, zeroValue), name="aggregate")
        return _reduce(combOp, vals, zeroValue)

    def countByValue(self: RDD[Any]) -> defaultdict[Any, int]:
        def count_part(it: Iterator[Any]) -> dict[Any, int]:
            counts: dict[Any, int] = defaultdict(int)
            for x in it:
                counts[x] += 1
            return dict(counts)

        total: defaultdict[Any, int] = defaultdict(int)
        for part in self._run_job(count_part, name="countByValue"):
            for k, c in part.items():
                total[k] += c
        return total

    def sum(self: RDD[Any]) -> Any:
        return sum(self._run_job(lambda it: sum(it), name="sum"))

    def max(self: RDD[Any], key: Callable[[Any], Any] | None = None) -> Any:
        return self.reduce(lambda a, b: max(a, b, key=key) if key else max(a, b))

    def min(self: RDD[Any], key: Callable[[Any], Any] | None = None) -> Any:
        return self.reduce(lambda a, b: min(a, b, key=key) if key else min(a, b))

    def mean(self: RDD[Any]) -> float:
        """Arithmetic mean (nan for an empty RDD, like PySpark's StatCounter)."""
        parts = self._run_job(lambda it: _sum_count(it), name="mean")
        total, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
        return float(total) / n if n else float("nan")

    def top(self: RDD[Any], num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The ``num`` largest elements, largest first."""
        parts = self._run_job(lambda it: heapq.nlargest(num, it, key=key), name="top")
        return heapq.nlargest(num, itertools.chain.from_iterable(parts), key=key)

    def takeOrdered(self: RDD[Any], num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The ``num`` smallest elements, smallest first."""
        parts = self._run_job(lambda it: heapq.nsmallest(num, it, key=key), name="takeOrdered")
        return heapq.nsmallest(num, itertools.chain.from_iterable(parts), key=key)

    def saveAsTextFile(
        self: RDD[Any], path: str, compressionCodecClass: str | None = None, **storage_options: Any
    ) -> None:
        """Write ``str(x)`` lines to ``path/part-NNNNN`` and ``path/_SUCCESS`` (path must not exist)."""
        file_io.save_as_text_file(self, path, compressionCodecClass, storage_options)

    def saveAsPickleFile(self: RDD[Any], path: str, batchSize: int = 10, **storage_options: Any) -> None:
        """Write pickled batches of records to ``path/part-NNNNN`` (read back with Context.pickleFile)."""
        file_io.save_as_pickle_file(self, path, batchSize, storage_options)


def _head(it: Iterator[Any], limit: int) -> list[Any]:
    return list(itertools.islice(it, limit))


def _next_scan(num: int, found: int, scanned: int) -> int:
    """How many more partitions take() scans: 1, then up to 4x, guessed from the hit rate so far."""
    if scanned == 0:
        return 1
    if found == 0:
        return scanned * 4
    return max(1, min(int(1.5 * num * scanned / found) - scanned, scanned * 4))


def _sum_count(it: Iterator[Any]) -> tuple[Any, int]:
    total, n = 0, 0
    for x in it:
        total += x
        n += 1
    return total, n
