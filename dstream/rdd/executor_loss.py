"""Which executors the driver knows are gone, so that nothing they held is recorded again.

A cluster backend reports each worker that leaves (`ExecutionBackend.add_executor_listener`); the DAG
scheduler then forgets the map outputs and block locations that worker held (`MapOutputTracker` and
`BlockLocations` `.executor_lost`), so the next stage runs the lost map tasks at once instead of
discovering the loss when a reduce task fails to fetch a bucket. One race remains: a stage that was
running when the worker died may still bring back results that name it (a map status computed there
before it died, a persisted block it stored). `LostExecutors` remembers the lost executors so that
such results are dropped, as Spark drops map statuses from a lost executor's epoch: a dropped map
output is simply missing, and the scheduler runs that map task again.

An executor that joins again under the same id (a worker address reused by a replacement) is alive
again (`added`). The memory is bounded (`REMEMBERED_MAX` most recent losses): a result from an
executor lost that many losses ago cannot still be in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

REMEMBERED_MAX = 1024


class LostExecutors:
    """A thread-safe, bounded set of executor ids known to be gone."""

    def __init__(self, remembered_max: int = REMEMBERED_MAX) -> None:
        if remembered_max < 1:
            raise ValueError(f"remembered_max must be >= 1, got {remembered_max}")
        self._max = remembered_max
        self._lost: dict[str, None] = {}  # insertion-ordered: the oldest loss is forgotten first
        self._lock = threading.Lock()

    def lost(self, executor_id: str) -> None:
        """`executor_id` left: results naming it are dropped from now on."""
        with self._lock:
            self._lost.pop(executor_id, None)
            self._lost[executor_id] = None
            while len(self._lost) > self._max:
                del self._lost[next(iter(self._lost))]

    def added(self, executor_id: str) -> None:
        """`executor_id` joined (again): its results count."""
        with self._lock:
            self._lost.pop(executor_id, None)

    def is_lost(self, executor_id: str) -> bool:
        with self._lock:
            return executor_id in self._lost

    def live(self, locations: Iterable[str]) -> tuple[str, ...]:
        """The `locations` that are not known lost, in order."""
        with self._lock:
            return tuple(e for e in locations if e not in self._lost)
