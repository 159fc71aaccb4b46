"""The executor's store of received blocks, keyed by block id, one per executor (plus peers for replicas).

Each executor's `ExecutorEnv` holds one `ReceivedBlocks` (`received_blocks(env)`): in the local backend
the driver process is the executor, so a receiver and the tasks that read its blocks share it. A
replicated storage level (replication 2) puts a second copy in a *peer* store: with the local backend the
peer is a second store in the same executor that stands for another worker, so dropping one copy
(`drop_all()`, as a lost worker would) leaves the other. With the Dask backend each worker process has
its own environment and the peer is another worker.

Storage levels (`dstream.rdd.storage.StorageLevel`, PySpark's constants) decide where a block lives:
- memory only: kept in memory; a block that does not fit in `memory_records_max` is refused with
  `BlockStoreFullError` (the caller's `store()` raises rather than losing data silently);
- memory and disk: kept in memory while it fits, else pickled to a spill file in the store's directory;
- disk only: always spilled.
Blocks are removed explicitly (`remove`) when their batches are cleaned; the WAL, not the store, is the
durable copy.

Blocks are kept serialized (pickled once at `put`) and every `get` unpickles a fresh copy, as in
Spark: a task that mutates its records in place must not change what another output operation, or a
recomputation, of the same batch reads.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import threading
import weakref
from typing import Any

from dstream.backends.executor_env import ExecutorEnv, current_executor_env
from dstream.errors import DStreamError, DStreamValueError
from dstream.pickling import dumps_records
from dstream.rdd.storage import StorageLevel

MEMORY_RECORDS_MAX_DEFAULT = 50_000_000
PRIMARY = "local"
PEER = "local-peer"


class BlockStoreFullError(DStreamError):
    """A memory-only block does not fit in the store's memory budget."""


class ReceivedBlockStore:
    """Thread-safe map block id -> records, in memory or spilled to disk.

    Args:
        name: the executor this store stands for (used in messages and the spill directory name).
        memory_records_max: records kept in memory at most, over all blocks.
    """

    def __init__(self, name: str, memory_records_max: int = MEMORY_RECORDS_MAX_DEFAULT) -> None:
        if memory_records_max < 0:
            raise DStreamValueError(f"memory_records_max must be >= 0, got {memory_records_max}")
        self.name = name
        self.memory_records_max = memory_records_max
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[bytes, int]] = {}  # block id -> (pickled records, record count)
        self._memory_records = 0
        self._spilled: dict[str, str] = {}
        self._spill_dir: str | None = None

    def put(self, block_id: str, records: list[Any], level: StorageLevel) -> None:
        """Keep `records` under `block_id` at `level` (replication is the caller's business)."""
        self.put_serialized(block_id, dumps_records(records), len(records), level)

    def put_serialized(self, block_id: str, data: bytes, num_records: int, level: StorageLevel) -> None:
        """Keep an already pickled list of `num_records` records (what `put` does after pickling)."""
        if not (level.useMemory or level.useDisk):
            raise DStreamValueError(f"storage level {level!r} stores nothing; expected memory and/or disk")
        with self._lock:
            fits = self._memory_records + num_records <= self.memory_records_max
            if level.useMemory and fits:
                self._memory[block_id] = (data, num_records)
                self._memory_records += num_records
                return
            if not level.useDisk:
                raise BlockStoreFullError(
                    f"block {block_id} of {num_records} records does not fit in store {self.name!r} "
                    f"({self._memory_records} of memory_records_max={self.memory_records_max} used)"
                )
            self._spilled[block_id] = self._spill(block_id, data)

    def _spill(self, block_id: str, data: bytes) -> str:
        if self._spill_dir is None:
            self._spill_dir = tempfile.mkdtemp(prefix=f"dstream-blocks-{self.name}-")
            # A store dropped without drop_all() (its executor went away) still removes its files.
            weakref.finalize(self, shutil.rmtree, self._spill_dir, True)
        path = os.path.join(self._spill_dir, block_id)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def get(self, block_id: str) -> list[Any] | None:
        """A fresh copy of the block's records, or None when this store has no copy."""
        with self._lock:
            held = self._memory.get(block_id)
            path = self._spilled.get(block_id)
        if held is not None:
            records: list[Any] = pickle.loads(held[0])
            return records
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                loaded: list[Any] = pickle.load(f)
        except FileNotFoundError:
            return None  # removed while we read
        return loaded

    def contains(self, block_id: str) -> bool:
        with self._lock:
            return block_id in self._memory or block_id in self._spilled

    def remove(self, block_id: str) -> None:
        """Drop the block's copy here, if any. Idempotent."""
        with self._lock:
            held = self._memory.pop(block_id, None)
            if held is not None:
                self._memory_records -= held[1]
            path = self._spilled.pop(block_id, None)
        if path is not None:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def block_ids(self) -> set[str]:
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


class ReceivedBlocks:
    """An executor's received blocks: its own store and, for replicated levels, its peer's.

    One per executor, an `ExecutorEnv` service (`received_blocks(env)`): the receivers of that executor
    put blocks here and the tasks that run there read them.
    """

    def __init__(self) -> None:
        self.primary = ReceivedBlockStore(PRIMARY)
        self.peer = ReceivedBlockStore(PEER)

    def stores(self) -> list[ReceivedBlockStore]:
        """Primary first: where a reader looks for a copy."""
        return [self.primary, self.peer]

    def put_replicated(self, block_id: str, records: list[Any], level: StorageLevel) -> None:
        """Store a block at `level`, its second copy in the peer store when replication is 2 or more."""
        data = dumps_records(records)  # serialized once for both copies
        self.primary.put_serialized(block_id, data, len(records), level)
        if level.replication >= 2:
            self.peer.put_serialized(block_id, data, len(records), level)

    def find(self, block_id: str) -> list[Any] | None:
        """Any copy of the block held here, or None."""
        for store in self.stores():
            records = store.get(block_id)
            if records is not None:
                return records
        return None

    def remove(self, block_id: str) -> None:
        """Remove every copy of the block."""
        for store in self.stores():
            store.remove(block_id)

    def close(self) -> None:
        """Drop every block (the executor is going away)."""
        for store in self.stores():
            store.drop_all()


def received_blocks(env: ExecutorEnv | None = None) -> ReceivedBlocks:
    """The received blocks of executor `env` (default: the executor this task runs on)."""
    return (env or current_executor_env()).service("received-blocks", ReceivedBlocks)
