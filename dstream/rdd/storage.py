"""StorageLevel (PySpark's constants, defined in dstream.storage_level) and the driver's block-location table.

The driver keeps no partition bytes (docs/architecture.md, "Data lives where it is computed"): a
persisted RDD's partitions, and the partitions of RDDs built from in-memory data (parallelize), are
blocks in the backend's block manager (dstream.backends.block_manager), on the executor that computed
or received them. `BlockLocations` is the driver's table of where each one is. Entries live exactly as
long as the RDD is persisted and referenced: `unpersist()` and a weakref finalizer on the RDD drop them,
and dropping an RDD also removes its blocks from the block manager, so a long streaming run does not
accumulate blocks. A finalizer runs wherever the garbage collector happens to run, possibly inside a
block manager's locked section, so it only queues the id (`free_later`); the scheduler frees queued
RDDs at its next safe point (`drain_freed`), as Spark's ContextCleaner does on its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from dstream.backends.base import TaskNotSerializableError
from dstream.backends.block_manager import BlockManager, Lost, RDDBlockId
from dstream.rdd.block_values import from_block, to_block
from dstream.storage_level import NOT_STORED, StorageLevel

__all__ = ["NOT_STORED", "BlockId", "BlockLocations", "StorageLevel"]

BlockId = tuple[int, int]  # (rdd id, partition index)


class BlockLocations:
    """Thread-safe map (rdd id, partition) -> executor ids holding the block, for registered RDDs only.

    Args:
        block_manager: the backend's block manager; removing an RDD here removes its blocks there.
    """

    def __init__(self, block_manager: BlockManager) -> None:
        self.block_manager = block_manager
        self._lock = threading.Lock()
        self._locations: dict[int, dict[int, tuple[str, ...]]] = {}
        # In-memory sources keep their blocks' values on the driver too, as Spark's parallelize keeps
        # its slices in the driver's partitions: an executor that dies with one loses nothing that
        # cannot be put again (the local manager stores these very objects, so it costs no copy).
        self._sources: dict[int, list[Any]] = {}
        # Per in-memory source, the executors each partition is put near (makeRDD's locations): its
        # task prefers them, so the partition is held there, again when it is put back after a loss.
        self._near: dict[int, list[tuple[str, ...]]] = {}
        self._freed: queue.SimpleQueue[int] = queue.SimpleQueue()  # reentrant: safe in a finalizer

    def free_later(self, rdd_id: int) -> None:
        """Queue an RDD's blocks for removal (what a finalizer may do: no lock taken)."""
        self._freed.put(rdd_id)

    def drain_freed(self) -> None:
        """Remove the blocks of every RDD queued by `free_later`."""
        while True:
            try:
                rdd_id = self._freed.get_nowait()
            except queue.Empty:
                return
            self.remove_rdd(rdd_id)

    def register(self, rdd_id: int) -> None:
        """Start accepting blocks for an RDD (persist, or an in-memory source)."""
        with self._lock:
            self._locations.setdefault(rdd_id, {})

    def put(self, rdd_id: int, split: int, locations: tuple[str, ...]) -> bool:
        """Record where a block is; False (nothing recorded) if the RDD is not registered."""
        with self._lock:
            parts = self._locations.get(rdd_id)
            if parts is None:
                return False
            parts[split] = locations
            return True

    def get(self, rdd_id: int, split: int) -> tuple[str, ...] | None:
        """Where the block is, or None when the driver knows no copy of it."""
        with self._lock:
            parts = self._locations.get(rdd_id)
            return None if parts is None else parts.get(split)

    def splits(self, rdd_id: int) -> list[int]:
        """The partitions of an RDD whose block location is known."""
        with self._lock:
            return sorted(self._locations.get(rdd_id) or {})

    def forget(self, rdd_id: int, split: int) -> None:
        """The block was found lost: the next job computes it again (from lineage)."""
        with self._lock:
            parts = self._locations.get(rdd_id)
            if parts is not None:
                parts.pop(split, None)

    def executor_lost(self, executor_id: str) -> None:
        """Drop `executor_id` from every block's locations (a block with no location left is lost)."""
        with self._lock:
            for parts in self._locations.values():
                for split, where in list(parts.items()):
                    if executor_id in where:
                        kept = tuple(e for e in where if e != executor_id)
                        if kept:
                            parts[split] = kept
                        else:
                            del parts[split]

    def remove_rdd(self, rdd_id: int) -> None:
        """Forget every block of an RDD, remove them from the block manager, stop accepting new ones."""
        with self._lock:
            self._locations.pop(rdd_id, None)
            self._sources.pop(rdd_id, None)
            self._near.pop(rdd_id, None)
        self.block_manager.remove_rdd(rdd_id)

    def rdd_ids(self) -> set[int]:
        """Ids of the registered RDDs (tests use it to check that memory is released)."""
        self.drain_freed()
        with self._lock:
            return set(self._locations)

    def clear(self) -> None:
        with self._lock:
            ids, self._locations = set(self._locations), {}
            self._sources.clear()
            self._near.clear()
        for rdd_id in ids:
            self.block_manager.remove_rdd(rdd_id)

    def hold(self, rdd_id: int, partitions: list[list[Any]], near: Sequence[tuple[str, ...]] = ()) -> None:
        """Put an in-memory RDD's partitions into the block manager and record where they went.

        Args:
            rdd_id: the RDD.
            partitions: its partitions' records.
            near: per partition, the executors its task prefers (`BlockManager.put_near`); empty:
                wherever the block manager puts blocks.

        Raises:
            TaskNotSerializableError: a record cannot be pickled, so it could not reach a worker.
        """
        try:
            values = [to_block(part, StorageLevel.MEMORY_ONLY) for part in partitions]
        except Exception as exc:
            raise TaskNotSerializableError(
                f"a record of the in-memory data is not serializable: {type(exc).__name__}: {exc}; "
                "records of an RDD must be picklable to reach a worker"
            ) from exc
        self.register(rdd_id)
        places: list[tuple[str, ...]] = list(near) if near else [()] * len(values)
        with self._lock:
            self._sources[rdd_id] = values
            self._near[rdd_id] = places
        for split, value in enumerate(values):
            self.put(rdd_id, split, self._put(RDDBlockId(rdd_id, split), value, places[split]))

    def _put(self, block_id: RDDBlockId, value: Any, near: tuple[str, ...]) -> tuple[str, ...]:
        if near:
            return self.block_manager.put_near(near, block_id, value)
        return self.block_manager.put(block_id, value)

    def restore(self, rdd_id: int, split: int) -> tuple[str, ...] | None:
        """Put a lost partition of an in-memory RDD again from the driver's copy; its new locations.

        Returns None when the RDD is no in-memory source or was freed.
        """
        with self._lock:
            values = self._sources.get(rdd_id)
            places = self._near.get(rdd_id) or []
        if values is None or not 0 <= split < len(values):
            return None
        near = places[split] if split < len(places) else ()
        locations = self._put(RDDBlockId(rdd_id, split), values[split], near)
        return locations if self.put(rdd_id, split, locations) else None

    def read(self, rdd_id: int, split: int) -> Any:
        """A block's value through the block manager, or None when it is not known or lost."""
        if self.get(rdd_id, split) is None:
            return None
        value = self.block_manager.get(RDDBlockId(rdd_id, split))
        return None if isinstance(value, Lost) else from_block(value)
