"""Received blocks, stored through the executor's block manager (dstream.backends.block_manager).

A receiver's supervisor stores each block in the block manager of the executor it runs on, under a
`ReceivedBlockId`; the block RDD tasks of the batch it is allocated to read it back through the block
manager of the executor they run on (a local copy, or fetched from a holder). `ReceivedBlocks` is
that view for one executor (`received_blocks(env)`). The storage level decides the rest, in the block
manager: memory only (refused with `BlockStoreFullError` when the holder's memory budget is used up,
so the caller's `store()` raises rather than losing data silently), memory and disk (spilled when it
does not fit), disk only; replication 2 keeps a second copy on another holder. Blocks are removed
explicitly (`remove`) when their batches are cleaned; the WAL, not the block manager, is the durable
copy.

Blocks are stored pickled (once, at `put`) and every `find` unpickles a fresh copy, as in Spark: a
task that mutates its records in place must not change what another output operation, or a
recomputation, of the same batch reads.
"""

from __future__ import annotations

import pickle
from typing import Any

from dstream.backends.block_manager import BlockManager, BlockStoreFullError, Lost, ReceivedBlockId
from dstream.backends.executor_env import ExecutorEnv, current_executor_env
from dstream.backends.local_blocks import LocalBlockManager
from dstream.pickling import dumps_records
from dstream.storage_level import StorageLevel

__all__ = ["BlockStoreFullError", "ReceivedBlocks", "received_blocks"]


class ReceivedBlocks:
    """An executor's received blocks, kept in its block manager.

    Args:
        block_manager: the executor's block manager (default: a fresh in-process one, for tests).
    """

    def __init__(self, block_manager: BlockManager | None = None) -> None:
        self.block_manager = block_manager if block_manager is not None else LocalBlockManager("receiver")

    def put_replicated(self, block_id: str, records: list[Any], level: StorageLevel) -> tuple[str, ...]:
        """Store a block at `level` (a second copy elsewhere when its replication is 2 or more).

        Returns:
            The executors holding the block.
        """
        data = dumps_records(records)  # serialized once for every copy
        return self.block_manager.put(ReceivedBlockId(block_id), data, level, len(records))

    def find(self, block_id: str, locations: tuple[str, ...] = ()) -> list[Any] | None:
        """A fresh copy of the block's records, or None when every copy is lost.

        Args:
            block_id: the block.
            locations: the executors the driver was told hold it (the receiver's worker first, then a
                replica's): a copy here is used, else one is fetched from the first holder still alive.
        """
        data = self.block_manager.get(ReceivedBlockId(block_id), locations)
        if isinstance(data, Lost):
            return None
        records: list[Any] = pickle.loads(data)
        return records

    def locations(self, block_id: str) -> tuple[str, ...]:
        """The executors holding a copy of the block."""
        return self.block_manager.locations(ReceivedBlockId(block_id))

    def remove(self, block_id: str) -> None:
        """Remove every copy of the block."""
        self.block_manager.remove(ReceivedBlockId(block_id))


def received_blocks(env: ExecutorEnv | None = None) -> ReceivedBlocks:
    """The received blocks of executor `env` (default: the executor this task runs on)."""
    executor = env or current_executor_env()
    return executor.service("received-blocks", lambda: ReceivedBlocks(executor.block_manager))
