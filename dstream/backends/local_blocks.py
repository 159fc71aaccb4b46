"""The local backend's block manager: blocks kept in the driver process, in two holders.

The local backend's only executor is the driver process, so its blocks live in this process. A
replicated level (replication 2) puts the second copy in a *peer* holder, a second store in the same
process that stands for another worker: losing one holder (`lose_executor`, what a dead worker does)
leaves the other copy, exactly as on a cluster. `get` looks in this executor's holder first, then in
the peer (a fetch from a remote holder on a cluster).

Each holder (`MemoryStore`, Spark's name) keeps values as given: `get` returns the stored object
itself, no copy and no pickling, so `local[*]` pays nothing for going through a block manager.
Receivers store their blocks pickled (dstream.receiver.block_store) and unpickle a fresh copy per
read; RDD partitions are pickled too unless their records are immutable (dstream.rdd.block_values),
so sharing never lets a task change what another one reads. A holder
has a memory budget counted in records (`size_records` of each put; only received blocks count);
a memory-and-disk block that does not fit is pickled to a spill file, a memory-only one is refused
with `BlockStoreFullError` (the caller's `store()` raises rather than losing data silently). Spill
files are scratch space, not durable storage: they die with the process.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import threading
import weakref
from typing import Any

from dstream.backends.block_manager import (
    MEMORY_ONLY,
    BlockId,
    BlockManager,
    BlockStoreFullError,
    Lost,
    RDDBlockId,
    ShuffleBlockId,
)
from dstream.errors import DStreamValueError
from dstream.storage_level import StorageLevel

MEMORY_RECORDS_MAX_DEFAULT = 50_000_000
PICKLE_PROTOCOL = 5


class MemoryStore:
    """One holder's blocks: block id -> value in memory, or a spill file.

    Args:
        name: the executor this holder stands for (used in messages and the spill directory name).
        memory_records_max: records kept in memory at most, over all budgeted blocks.
    """

    def __init__(self, name: str, memory_records_max: int = MEMORY_RECORDS_MAX_DEFAULT) -> None:
        if memory_records_max < 0:
            raise DStreamValueError(f"memory_records_max must be >= 0, got {memory_records_max}")
        self.name = name
        self.memory_records_max = memory_records_max
        self._lock = threading.Lock()
        self._memory: dict[BlockId, tuple[Any, int]] = {}  # block id -> (value, budgeted records)
        self._memory_records = 0
        self._spilled: dict[BlockId, str] = {}
        self._spill_dir: str | None = None

    def put(self, block_id: BlockId, value: Any, level: StorageLevel, size_records: int = 0) -> None:
        """Keep `value` under `block_id` at `level` (replication is the manager's business)."""
        if not (level.useMemory or level.useDisk):
            raise DStreamValueError(f"storage level {level!r} stores nothing; expected memory and/or disk")
        with self._lock:
            self._drop_locked(block_id)
            fits = self._memory_records + size_records <= self.memory_records_max
            if level.useMemory and fits:
                self._memory[block_id] = (value, size_records)
                self._memory_records += size_records
                return
            if not level.useDisk:
                raise BlockStoreFullError(
                    f"block {block_id.name} of {size_records} records does not fit in store {self.name!r} "
                    f"({self._memory_records} of memory_records_max={self.memory_records_max} used)"
                )
        path = self._spill(block_id, value)
        with self._lock:
            self._spilled[block_id] = path

    def _spill(self, block_id: BlockId, value: Any) -> str:
        with self._lock:
            if self._spill_dir is None:
                self._spill_dir = tempfile.mkdtemp(prefix=f"dstream-blocks-{self.name}-")
                # A store dropped without drop_all() (its executor went away) still removes its files.
                weakref.finalize(self, shutil.rmtree, self._spill_dir, True)
            path = os.path.join(self._spill_dir, block_id.name)
        with open(path, "wb") as f:
            pickle.dump(value, f, protocol=PICKLE_PROTOCOL)
        return path

    def get(self, block_id: BlockId) -> Any:
        """The value kept here (the object itself when in memory), or `Lost(block_id)`."""
        with self._lock:
            held = self._memory.get(block_id)
            path = self._spilled.get(block_id)
        if held is not None:
            return held[0]
        if path is None:
            return Lost(block_id)
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return Lost(block_id)  # removed while we read

    @property
    def memory_records(self) -> int:
        """Records of the blocks held in memory, as counted against `memory_records_max`."""
        with self._lock:
            return self._memory_records

    def contains(self, block_id: BlockId) -> bool:
        with self._lock:
            return block_id in self._memory or block_id in self._spilled

    def remove(self, block_id: BlockId) -> None:
        """Drop the block's copy here, if any. Idempotent."""
        with self._lock:
            path = self._drop_locked(block_id)
        if path is not None:
            _remove_file(path)

    def remove_where(self, doomed: Any) -> None:
        """Drop every block for which `doomed(block_id)` is true."""
        with self._lock:
            ids = [b for b in (*self._memory, *self._spilled) if doomed(b)]
            paths = [self._drop_locked(b) for b in ids]
        for path in paths:
            if path is not None:
                _remove_file(path)

    def _drop_locked(self, block_id: BlockId) -> str | None:
        held = self._memory.pop(block_id, None)
        if held is not None:
            self._memory_records -= held[1]
        return self._spilled.pop(block_id, None)

    def block_ids(self) -> set[BlockId]:
        with self._lock:
            return set(self._memory) | set(self._spilled)

    def drop_all(self) -> None:
        """Lose every copy, as the death of this executor would."""
        with self._lock:
            self._memory.clear()
            self._memory_records = 0
            self._spilled.clear()
            spill_dir, self._spill_dir = self._spill_dir, None
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class LocalBlockManager(BlockManager):
    """The block manager of the local backend: holder `executor_id` and its peer, in this process.

    Args:
        executor_id: the executor's id (the local backend's is "driver").
        memory_records_max: each holder's memory budget in records (see `MemoryStore`).
    """

    def __init__(
        self, executor_id: str = "driver", memory_records_max: int = MEMORY_RECORDS_MAX_DEFAULT
    ) -> None:
        self._executor_id = executor_id
        self.holders: dict[str, MemoryStore] = {
            executor_id: MemoryStore(executor_id, memory_records_max),
            f"{executor_id}-peer": MemoryStore(f"{executor_id}-peer", memory_records_max),
        }

    @property
    def executor_id(self) -> str:
        return self._executor_id

    @property
    def primary(self) -> MemoryStore:
        """This executor's own holder."""
        return self.holders[self._executor_id]

    @property
    def peer(self) -> MemoryStore:
        """The holder standing for another worker (where second copies go)."""
        return self.holders[f"{self._executor_id}-peer"]

    def put(
        self, block_id: BlockId, value: Any, level: StorageLevel = MEMORY_ONLY, size_records: int = 0
    ) -> tuple[str, ...]:
        self.primary.put(block_id, value, level, size_records)
        if level.replication >= 2:
            self.peer.put(block_id, value, level, size_records)
            return (self.primary.name, self.peer.name)
        return (self.primary.name,)

    def get(self, block_id: BlockId, locations: tuple[str, ...] = ()) -> Any:
        # Every holder is in this process, so `locations` is not needed. The primary is asked
        # first: this is on every task's path.
        value = self.primary.get(block_id)
        if isinstance(value, Lost):
            value = self.peer.get(block_id)
        return value

    def locations(self, block_id: BlockId) -> tuple[str, ...]:
        return tuple(name for name, holder in self.holders.items() if holder.contains(block_id))

    def replicate(self, block_id: BlockId) -> tuple[str, ...]:
        where = self.locations(block_id)
        spare = [name for name in self.holders if name not in where]
        if not where or not spare:
            return where
        value = self.holders[where[0]].get(block_id)
        if isinstance(value, Lost):
            return self.locations(block_id)
        self.holders[spare[0]].put(block_id, value, MEMORY_ONLY)
        return self.locations(block_id)

    def remove(self, block_id: BlockId) -> None:
        for holder in self.holders.values():
            holder.remove(block_id)

    def remove_rdd(self, rdd_id: int) -> None:
        for holder in self.holders.values():
            holder.remove_where(lambda b: isinstance(b, RDDBlockId) and b.rdd_id == rdd_id)

    def remove_shuffle(self, shuffle_id: int) -> None:
        for holder in self.holders.values():
            holder.remove_where(lambda b: isinstance(b, ShuffleBlockId) and b.shuffle_id == shuffle_id)

    def block_ids(self) -> set[BlockId]:
        return set().union(*(holder.block_ids() for holder in self.holders.values()))

    def lose_executor(self, executor_id: str) -> None:
        """Lose every block of holder `executor_id`, as the death of that worker would (tests, chaos).

        Raises:
            DStreamValueError: no such holder.
        """
        holder = self.holders.get(executor_id)
        if holder is None:
            raise DStreamValueError(f"no holder {executor_id!r}; expected one of {sorted(self.holders)}")
        holder.drop_all()

    def close(self) -> None:
        for holder in self.holders.values():
            holder.drop_all()
