"""ResultIterable: the value type of groupByKey and cogroup (PySpark's class and attributes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class ResultIterable(Iterable[Any]):
    """A re-iterable, sized wrapper around a list of values; the list is ``.data``."""

    __slots__ = ("data", "index", "maxindex")  # one per group of a groupByKey: no __dict__ each

    def __init__(self, data: list[Any]) -> None:
        self.data = data
        self.index = 0
        self.maxindex = len(data)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"ResultIterable({self.data!r})"
