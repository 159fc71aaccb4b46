"""StorageLevel: PySpark's constants and their meaning; persist rules."""

from __future__ import annotations

import pytest

from dstream import Context, StorageLevel


def test_constants_have_pyspark_flags() -> None:
    flags = {
        "DISK_ONLY": (True, False, False, False, 1),
        "DISK_ONLY_2": (True, False, False, False, 2),
        "DISK_ONLY_3": (True, False, False, False, 3),
        "MEMORY_ONLY": (False, True, False, False, 1),
        "MEMORY_ONLY_2": (False, True, False, False, 2),
        "MEMORY_AND_DISK": (True, True, False, False, 1),
        "MEMORY_AND_DISK_2": (True, True, False, False, 2),
        "MEMORY_AND_DISK_DESER": (True, True, False, True, 1),
        "OFF_HEAP": (True, True, True, False, 1),
    }
    for name, (disk, memory, off_heap, deser, replication) in flags.items():
        level = getattr(StorageLevel, name)
        assert (level.useDisk, level.useMemory, level.useOffHeap, level.deserialized, level.replication) == (
            disk,
            memory,
            off_heap,
            deser,
            replication,
        ), name
    assert StorageLevel(False, True, False, False) == StorageLevel.MEMORY_ONLY
    assert str(StorageLevel.MEMORY_AND_DISK_2) == "Disk Memory Serialized 2x Replicated"
    assert repr(StorageLevel.MEMORY_ONLY) == "StorageLevel(False, True, False, False, 1)"


def test_persist_level_cannot_change_and_must_be_a_level(sc_inline: Context) -> None:
    rdd = sc_inline.parallelize([1]).map(lambda x: x)
    rdd.persist(StorageLevel.DISK_ONLY)
    rdd.persist(StorageLevel.DISK_ONLY)  # same level again is fine
    with pytest.raises(ValueError, match="cannot change the storage level"):
        rdd.persist(StorageLevel.MEMORY_ONLY)
    with pytest.raises(ValueError, match="storageLevel must be a StorageLevel"):
        rdd.persist("MEMORY_ONLY")  # type: ignore[arg-type]
    rdd.unpersist()
    assert rdd.persist(StorageLevel.MEMORY_ONLY).getStorageLevel() == StorageLevel.MEMORY_ONLY


def test_persisted_rdd_shows_its_level_in_the_debug_string(sc_inline: Context) -> None:
    rdd = sc_inline.parallelize([1]).map(lambda x: x).persist(StorageLevel.MEMORY_AND_DISK)
    assert b"[Disk Memory Serialized 1x Replicated]" in rdd.toDebugString()
