"""Partitioners: a process-independent hash (`portable_hash`), hash and range partitioning.

Python salts ``hash()`` of str and bytes per process (PYTHONHASHSEED), and map tasks of one
shuffle may run in different worker processes, so the default partitioner must not use it for
those types: the same key must land in the same partition on every worker and on every re-run.
"""

from __future__ import annotations

import bisect
import sys
import zlib
from collections.abc import Callable, Hashable, Sequence
from typing import Any

_MASK = sys.maxsize


def portable_hash(x: Hashable) -> int:
    """A hash of ``x`` that is the same in every Python process (PySpark's name).

    Stable for None, bool, int, float, str, bytes and tuples/frozensets of these. Equal keys
    hash equal (``1 == 1.0 == True`` share a hash, as Python requires). Other types fall back to
    ``hash()``, which is stable only if their ``__hash__`` is built from stable parts.
    """
    if x is None:
        return 0
    if isinstance(x, str):
        return zlib.crc32(x.encode("utf-8", "surrogatepass"))
    if isinstance(x, bytes | bytearray | memoryview):
        return zlib.crc32(x) ^ 0x5BD1E995  # differ from the str hash of the same text, cheaply
    if isinstance(x, tuple):
        return _tuple_hash(x)
    if isinstance(x, frozenset):
        h = 0x1F3D5B79
        for item in x:  # order-free combination: iteration order of a set is not stable
            h ^= (portable_hash(item) * 0x9E3779B1) & _MASK
        return h ^ len(x)
    return hash(x)  # int, float, bool: unsalted in CPython


def _tuple_hash(t: tuple[Any, ...]) -> int:
    h = 0x345678
    for item in t:
        h ^= portable_hash(item)
        h = (h * 1000003) & _MASK
    return h ^ len(t)


class Partitioner:
    """Maps a key to a partition in ``range(numPartitions)``; equal when count and function are."""

    def __init__(self, numPartitions: int, partitionFunc: Callable[[Any], int] = portable_hash) -> None:
        self.numPartitions = numPartitions
        self.partitionFunc = partitionFunc

    def __call__(self, key: Any) -> int:
        return self.partitionFunc(key) % self.numPartitions

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Partitioner)
            and self.numPartitions == other.numPartitions
            and self.partitionFunc == other.partitionFunc
        )

    def __hash__(self) -> int:
        return hash((self.numPartitions, self.partitionFunc))

    def __repr__(self) -> str:
        func = getattr(self.partitionFunc, "__name__", self.partitionFunc)
        return f"Partitioner({self.numPartitions}, {func})"


class RangeBounds:
    """Partition function for sortByKey: the index of the range holding ``keyfunc(key)``.

    ``bounds`` are the upper bounds of every partition but the last, sorted ascending; a
    descending sort numbers the ranges from the other end.
    """

    def __init__(self, bounds: Sequence[Any], keyfunc: Callable[[Any], Any], ascending: bool) -> None:
        self.bounds = list(bounds)
        self.keyfunc = keyfunc
        self.ascending = ascending

    def __call__(self, key: Any) -> int:
        p = bisect.bisect_left(self.bounds, self.keyfunc(key))
        return p if self.ascending else len(self.bounds) - p


def range_bounds(sorted_sample: Sequence[Any], num_partitions: int) -> list[Any]:
    """Pick ``num_partitions - 1`` evenly spaced upper bounds from a sorted key sample."""
    if not sorted_sample or num_partitions <= 1:
        return []
    n = len(sorted_sample)
    return [sorted_sample[min(n - 1, (i + 1) * n // num_partitions)] for i in range(num_partitions - 1)]
