"""The block-manager contract: where data lives between tasks, owned by the backend (Spark's BlockManager).

Data lives where it is computed (docs/architecture.md). Received blocks, persisted and in-memory RDD
partitions and shuffle map outputs are *blocks*, kept by the executor that made them and named by a
typed id; the driver keeps only ids and locations (the map-output tracker and the block-location
table of `dstream.rdd`). A task is handed references (`BlockRef`: an id and the executors holding a
copy) and resolves them through the block manager of the executor it runs on
(`current_executor_env().block_manager`), which serves a local copy or fetches one from a holder.

One contract, many implementations, one conformance suite
(`tests/backends/test_block_manager_contract.py`):

- `LocalBlockManager` (dstream.backends.local_blocks): in process, for the local backend; `get`
  returns the stored object itself, no copy.
- `dstream.backends.dask_blocks`: a Dask worker plugin per worker and a driver-side client.

Semantics every implementation keeps:

- `put(block_id, value, level)` stores on the executor the manager stands for (a driver-side client
  picks one) and, when `level.replication >= 2`, a second copy on another holder; it returns the
  executor ids now holding the block. Putting an id again replaces the value.
- `get(block_id, locations)` returns the value, or a `Lost` answer when no holder has it: losing a block (its
  executor died, it was removed) is a normal outcome the scheduler acts on (recompute from lineage,
  read the WAL copy), not an exception.
- `locations(block_id)` lists the executors holding a copy (empty: lost); `remove` drops every copy
  (idempotent); `remove_rdd` / `remove_shuffle` drop every block of an RDD or a shuffle.
- `replicate(block_id)` makes one more copy on a holder that has none and returns the new locations.
- `put_near(executors, block_id, value)` is `put` on the first live one of `executors` for a manager
  that places blocks (the Dask driver-side client); the others store where `put` does.

Values are any picklable object; a block that crosses processes is pickled (protocol 5) by the
implementation, never by the caller.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Final

from dstream.errors import DStreamError
from dstream.storage_level import StorageLevel


@dataclass(frozen=True, order=True)
class BlockId:
    """A block's typed id; `name` is its stable string form (Spark's block names)."""

    @property
    def name(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class ReceivedBlockId(BlockId):
    """A block of records a receiver stored (the tracker's block id string)."""

    block: str

    @property
    def name(self) -> str:
        return f"input-{self.block}"


@dataclass(frozen=True, order=True)
class RDDBlockId(BlockId):
    """Partition `split` of RDD `rdd_id` (persisted, or an in-memory source)."""

    rdd_id: int
    split: int

    @property
    def name(self) -> str:
        return f"rdd_{self.rdd_id}_{self.split}"


@dataclass(frozen=True, order=True)
class ShuffleBlockId(BlockId):
    """Bucket `reduce_index` of map task `map_index` of shuffle `shuffle_id` (pickled bytes)."""

    shuffle_id: int
    map_index: int
    reduce_index: int

    @property
    def name(self) -> str:
        return f"shuffle_{self.shuffle_id}_{self.map_index}_{self.reduce_index}"


@dataclass(frozen=True)
class Lost:
    """The answer of `get` for a block no holder has; falsy, and says which block."""

    block_id: BlockId

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class BlockRef:
    """What a task carries instead of a block's bytes: its id and the executors that hold it."""

    block_id: BlockId
    locations: tuple[str, ...] = ()


class BlockLostError(DStreamError):
    """A task needed a block that no holder has any more (Spark's FetchFailed).

    The DAG scheduler catches it, forgets the block's location and runs what produced the block again
    (lineage); it reaches the user only when that is impossible or keeps failing.
    """

    def __init__(self, block_id: BlockId, detail: str = "") -> None:
        super().__init__(block_id, detail)
        self.block_id = block_id
        self.detail = detail

    def __str__(self) -> str:
        more = f": {self.detail}" if self.detail else ""
        return f"block {self.block_id.name} is lost (no executor holds a copy){more}"


class BlockStoreFullError(DStreamError):
    """A memory-only block does not fit in the holder's memory budget."""


MEMORY_ONLY: Final = StorageLevel.MEMORY_ONLY


class BlockManager(abc.ABC):
    """Put, get and remove blocks by id; replication, locations, and lost as a normal answer."""

    @property
    @abc.abstractmethod
    def executor_id(self) -> str:
        """The executor this manager stands for (where `put` keeps the first copy)."""

    @abc.abstractmethod
    def put(
        self, block_id: BlockId, value: Any, level: StorageLevel = MEMORY_ONLY, size_records: int = 0
    ) -> tuple[str, ...]:
        """Store `value` under `block_id`; a second copy elsewhere when `level.replication >= 2`.

        Args:
            block_id: the block's id; a second put replaces the value.
            value: the block (records, pickled bucket bytes, ...).
            level: memory and/or disk, and how many copies.
            size_records: records counted against the holder's memory budget (received blocks
                give their record count; computed partitions and buckets are not budgeted).

        Returns:
            The executor ids holding the block after the put, first copy first.

        Raises:
            BlockStoreFullError: a memory-only level and the holder's memory budget is used up.
            DStreamValueError: a level that stores nothing.
        """

    def put_near(self, executors: tuple[str, ...], block_id: BlockId, value: Any) -> tuple[str, ...]:
        """Store a memory-only block, on the first of `executors` that can hold it if this manager
        places blocks (a driver-side client of many workers); otherwise as `put` does.

        The driver holds an in-memory partition near what its task will read (a block RDD's reference
        beside the received block), so that the task finds both on the worker it prefers.

        Returns:
            The executor ids holding the block.
        """
        return self.put(block_id, value)

    @abc.abstractmethod
    def get(self, block_id: BlockId, locations: tuple[str, ...] = ()) -> Any:
        """The block's value (a local copy, else fetched from a holder), or `Lost(block_id)`.

        Args:
            block_id: the block.
            locations: where the driver believes copies are (a `BlockRef`'s), tried for a remote
                fetch; an implementation that can find holders itself may ignore it.
        """

    @abc.abstractmethod
    def locations(self, block_id: BlockId) -> tuple[str, ...]:
        """The executors holding a copy (empty when the block is lost)."""

    @abc.abstractmethod
    def replicate(self, block_id: BlockId) -> tuple[str, ...]:
        """Copy the block to one more holder; returns the new locations (unchanged if lost or no peer)."""

    @abc.abstractmethod
    def remove(self, block_id: BlockId) -> None:
        """Drop every copy of the block. Idempotent."""

    @abc.abstractmethod
    def remove_rdd(self, rdd_id: int) -> None:
        """Drop every block of RDD `rdd_id` on every holder. Idempotent."""

    @abc.abstractmethod
    def remove_shuffle(self, shuffle_id: int) -> None:
        """Drop every map output of shuffle `shuffle_id` on every holder. Idempotent."""

    @abc.abstractmethod
    def block_ids(self) -> set[BlockId]:
        """Every block held anywhere this manager can see (tests check that memory is released)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop every block this manager holds (its executor is going away). Idempotent."""
