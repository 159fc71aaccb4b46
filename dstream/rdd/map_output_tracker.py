"""The driver's map-output tracker (Spark's MapOutputTracker): where each shuffle map task's buckets are.

A shuffle map task writes its buckets into the block manager of the executor it ran on
(`ShuffleBlockId(shuffle, map, reduce)`) and returns a small `MapStatus`: that executor and the size
of each bucket. The tracker keeps, per shuffle, one status per map task; it never holds bucket bytes.
A reduce task is given references to bucket `r` of every map task (`refs`) and fetches them through
its own executor's block manager. When a map output is lost (its executor died, a reduce task found
a bucket gone) the scheduler forgets that map task's status (`forget`, `executor_lost`), and the next
job on the shuffle runs the missing map tasks only (`missing`), from lineage.

Outputs are dropped, here and in the block manager, when their ShuffledRDD node is garbage-collected:
its finalizer queues the shuffle id (`free_later`, no lock taken, since the collector may run inside a
locked section) and the scheduler removes it at its next safe point (`drain_freed`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from dstream.backends.block_manager import BlockManager, BlockRef, ShuffleBlockId
from dstream.errors import DStreamError
from dstream.rdd.locality import largest_holders


@dataclass(frozen=True)
class MapStatus:
    """What a shuffle map task returns: where its buckets are and how big each one is (bytes)."""

    location: str
    bucket_sizes: tuple[int, ...]


class MapOutputTracker:
    """Shuffle id -> per map task, its `MapStatus` (None while missing).

    Args:
        block_manager: the backend's block manager; removing a shuffle removes its buckets there.
    """

    def __init__(self, block_manager: BlockManager) -> None:
        self.block_manager = block_manager
        self._lock = threading.Lock()
        self._statuses: dict[int, list[MapStatus | None]] = {}
        self._compute_locks: dict[int, threading.RLock] = {}
        self._freed: queue.SimpleQueue[int] = queue.SimpleQueue()  # reentrant: safe in a finalizer

    def free_later(self, shuffle_id: int) -> None:
        """Queue a shuffle's outputs for removal (what a finalizer may do: no lock taken)."""
        self._freed.put(shuffle_id)

    def drain_freed(self) -> None:
        """Remove the outputs of every shuffle queued by `free_later`."""
        while True:
            try:
                shuffle_id = self._freed.get_nowait()
            except queue.Empty:
                return
            self.remove(shuffle_id)

    def compute_lock(self, shuffle_id: int) -> threading.RLock:
        """The lock a job holds while computing a shuffle's map tasks (one computation at a time)."""
        with self._lock:
            return self._compute_locks.setdefault(shuffle_id, threading.RLock())

    def missing(self, shuffle_id: int, num_maps: int) -> list[int]:
        """The map tasks of a shuffle of `num_maps` map tasks that have no output (all, when new).

        A shuffle is known from its first call on (a shuffle of no map tasks is then complete).
        """
        with self._lock:
            statuses = self._statuses.setdefault(shuffle_id, [None] * num_maps)
            return [m for m, status in enumerate(statuses) if status is None]

    def register(self, shuffle_id: int, num_maps: int, map_index: int, status: MapStatus) -> None:
        """Record map task `map_index`'s output."""
        with self._lock:
            statuses = self._statuses.setdefault(shuffle_id, [None] * num_maps)
            statuses[map_index] = status

    def is_complete(self, shuffle_id: int) -> bool:
        with self._lock:
            statuses = self._statuses.get(shuffle_id)
            return statuses is not None and all(s is not None for s in statuses)

    def refs(self, shuffle_id: int, reduce_index: int) -> tuple[BlockRef, ...]:
        """References to bucket `reduce_index` of every map task, in map order.

        Raises:
            DStreamError: a map output is missing (the scheduler computes missing ones first).
        """
        with self._lock:
            statuses = self._statuses.get(shuffle_id)
            if statuses is None or any(s is None for s in statuses):
                raise DStreamError(
                    f"shuffle {shuffle_id} has missing map outputs (never computed, lost or already freed)"
                )
            return tuple(
                BlockRef(ShuffleBlockId(shuffle_id, m, reduce_index), (s.location,))
                for m, s in enumerate(statuses)
                if s is not None
            )

    def preferred_locations(self, shuffle_id: int, reduce_index: int) -> tuple[str, ...]:
        """The executors holding a large share of bucket `reduce_index`, most bytes first (where its
        reduce task should run; dstream.rdd.locality.largest_holders)."""
        with self._lock:
            statuses = self._statuses.get(shuffle_id) or []
            sizes: dict[str, int] = {}
            for s in statuses:
                if s is not None and reduce_index < len(s.bucket_sizes):
                    sizes[s.location] = sizes.get(s.location, 0) + s.bucket_sizes[reduce_index]
        return largest_holders(sizes)

    def held(self, shuffle_id: int) -> list[int]:
        """The map tasks of a shuffle whose output is known."""
        with self._lock:
            return [m for m, s in enumerate(self._statuses.get(shuffle_id) or []) if s is not None]

    def forget(self, shuffle_id: int, map_index: int) -> None:
        """Map task `map_index`'s output was found lost: the next job runs that map task again."""
        with self._lock:
            statuses = self._statuses.get(shuffle_id)
            if statuses is not None and 0 <= map_index < len(statuses):
                statuses[map_index] = None

    def executor_lost(self, executor_id: str) -> None:
        """Forget every map output held by `executor_id` (its buckets died with it)."""
        with self._lock:
            for statuses in self._statuses.values():
                for m, s in enumerate(statuses):
                    if s is not None and s.location == executor_id:
                        statuses[m] = None

    def remove(self, shuffle_id: int) -> None:
        """Free a shuffle's outputs, here and in the block manager. Idempotent."""
        with self._lock:
            self._statuses.pop(shuffle_id, None)
            self._compute_locks.pop(shuffle_id, None)
        self.block_manager.remove_shuffle(shuffle_id)

    def shuffle_ids(self) -> set[int]:
        self.drain_freed()
        with self._lock:
            return set(self._statuses)

    def clear(self) -> None:
        with self._lock:
            ids = set(self._statuses)
            self._statuses.clear()
            self._compute_locks.clear()
        for shuffle_id in ids:
            self.block_manager.remove_shuffle(shuffle_id)
