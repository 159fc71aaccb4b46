"""StorageLevel: where and how a block is kept (PySpark's `pyspark.storagelevel` constants).

It sits in the base layer because the block managers of the backends (dstream.backends.block_manager)
take a level with every `put`, below the RDDs that choose it; `dstream.rdd.storage` re-exports it where
PySpark users look for it.
"""

from __future__ import annotations

from typing import ClassVar


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
