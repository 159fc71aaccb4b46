"""StorageLevel (PySpark's constants) and the driver's block store for persisted partitions.

The block store holds, per RDD id, the partitions that tasks computed for a persisted RDD and
the partitions of RDDs built from in-memory data (parallelize). Entries live exactly as long as
the RDD is persisted and referenced: `unpersist()` and a weakref finalizer on the RDD drop them,
so a long streaming run does not accumulate blocks. Every level keeps deserialized records in
driver memory (with the local backend the driver is the only process); disk and replication
flags are recorded for the Dask backend.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar


class StorageLevel:
    """Where and how an RDD's partitions are kept (PySpark's constructor and constants)."""

    DISK_ONLY: ClassVar[StorageLevel]
    DISK_ONLY_2: ClassVar[StorageLevel]
    DISK_ONLY_3: ClassVar[StorageLevel]
    MEMORY_ONLY: ClassVar[StorageLevel]
    MEMORY_ONLY_2: ClassVar[StorageLevel]
    MEMORY_AND_DISK: ClassVar[StorageLevel]
    MEMORY_AND_DISK_2: ClassVar[StorageLevel]
    MEMORY_AND_DISK_DESER: ClassVar[StorageLevel]
    OFF_HEAP: ClassVar[StorageLevel]

    def __init__(
        self, useDisk: bool, useMemory: bool, useOffHeap: bool, deserialized: bool, replication: int = 1
    ) -> None:
        self.useDisk = useDisk
        self.useMemory = useMemory
        self.useOffHeap = useOffHeap
        self.deserialized = deserialized
        self.replication = replication

    def _key(self) -> tuple[bool, bool, bool, bool, int]:
        return (self.useDisk, self.useMemory, self.useOffHeap, self.deserialized, self.replication)

    @property
    def is_stored(self) -> bool:
        """True for every level that keeps data (any of disk, memory, off-heap)."""
        return self.useDisk or self.useMemory or self.useOffHeap

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageLevel) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "StorageLevel({}, {}, {}, {}, {})".format(*self._key())

    def __str__(self) -> str:
        parts = [name for flag, name in ((self.useDisk, "Disk"), (self.useMemory, "Memory")) if flag]
        if self.useOffHeap:
            parts.append("OffHeap")
        parts.append("Deserialized" if self.deserialized else "Serialized")
        return " ".join(parts) + f" {self.replication}x Replicated"


StorageLevel.DISK_ONLY = StorageLevel(True, False, False, False)
StorageLevel.DISK_ONLY_2 = StorageLevel(True, False, False, False, 2)
StorageLevel.DISK_ONLY_3 = StorageLevel(True, False, False, False, 3)
StorageLevel.MEMORY_ONLY = StorageLevel(False, True, False, False)
StorageLevel.MEMORY_ONLY_2 = StorageLevel(False, True, False, False, 2)
StorageLevel.MEMORY_AND_DISK = StorageLevel(True, True, False, False)
StorageLevel.MEMORY_AND_DISK_2 = StorageLevel(True, True, False, False, 2)
StorageLevel.MEMORY_AND_DISK_DESER = StorageLevel(True, True, False, True)
StorageLevel.OFF_HEAP = StorageLevel(True, True, True, False, 1)

NOT_STORED = StorageLevel(False, False, False, False)

BlockId = tuple[int, int]  # (rdd id, partition index)


class PersistedPartitionStore:
    """Thread-safe map of (rdd id, partition) -> list of records, for registered RDDs only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[int, dict[int, list[Any]]] = {}

    def register(self, rdd_id: int) -> None:
        """Start accepting blocks for an RDD (persist, or an in-memory source)."""
        with self._lock:
            self._blocks.setdefault(rdd_id, {})

    def put(self, rdd_id: int, split: int, records: list[Any]) -> None:
        """Store a block; ignored if the RDD is not registered (unpersisted while its job ran)."""
        with self._lock:
            parts = self._blocks.get(rdd_id)
            if parts is not None:
                parts[split] = records

    def get(self, rdd_id: int, split: int) -> list[Any] | None:
        with self._lock:
            parts = self._blocks.get(rdd_id)
            return None if parts is None else parts.get(split)

    def remove_rdd(self, rdd_id: int) -> None:
        """Drop every block of an RDD and stop accepting new ones. Idempotent."""
        with self._lock:
            self._blocks.pop(rdd_id, None)

    def rdd_ids(self) -> set[int]:
        """Ids of the registered RDDs (tests use it to check that memory is released)."""
        with self._lock:
            return set(self._blocks)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
