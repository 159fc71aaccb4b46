"""Block RDDs: one partition per received block, read from the block store or, when gone, from the WAL.

Built on the public RDD API only: `sc.makeRDD([(ref, ref.locations) for ref in refs]).flatMap(read_block)`,
so the RDD engine needs no special RDD class. Partitions follow the order of the tracker's allocation, which
is logged, so a batch re-run after recovery sees the same blocks in the same order.

`read_block` runs in a task: it looks for a copy through its executor's block manager (unless the block is
known to be invalid, i.e. recovered from the log), then reads the receiver WAL record by its handle and
says so (`TaskContext.report_recovery`, which becomes the listener bus's block-recovered event). A block
whose copies are all gone and that was not write-ahead logged fails the task with `BlockNotFoundError`
naming the block: never a silently empty partition.

The partitions are the refs themselves (`makeRDD`): they are in-memory blocks, so tasks receive
references to them. Each `BlockRef` carries the executors holding the received block (`locations`: the
receiving executor, then a replica's), and `makeRDD` declares them as the partition's preferred
locations, so on a cluster the task runs where the block is and reads it without a fetch
(dstream.rdd.locality; on the local backend they are all 'driver', and ignored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dstream.backends.block_manager import ReceivedBlockId
from dstream.backends.executor_env import ExecutorEnv
from dstream.errors import DStreamError
from dstream.rdd.block_recovery import BlockRecovery
from dstream.rdd.tasks import TaskContext
from dstream.receiver.block_handler import decode_block_record
from dstream.receiver.block_store import received_blocks
from dstream.receiver.received_block_tracker import ReceivedBlockInfo
from dstream.receiver.wal_registry import receiver_wals


class BlockNotFoundError(DStreamError):
    """A block's in-memory copies are gone and it was not write-ahead logged."""


@dataclass(frozen=True)
class BlockRef:
    """What a task needs to read one block: its id, validity, where it is, and where its WAL record is."""

    block_id: str
    block_valid: bool = True
    wal_handle: Any = None
    wal_url: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    locations: tuple[str, ...] = ()


def block_refs(
    infos: Sequence[ReceivedBlockInfo], wal_location: tuple[str, Mapping[str, Any]] | None
) -> list[BlockRef]:
    """Refs for the allocated blocks, in allocation order."""
    url, options = wal_location if wal_location is not None else (None, {})
    return [BlockRef(i.block_id, i.block_valid, i.wal_handle, url, dict(options), i.locations) for i in infos]


def read_block(ref: BlockRef, env: ExecutorEnv | None = None) -> list[Any]:
    """The block's records: from a copy on executor `env` (default: this task's), else the receiver WAL."""
    if ref.block_valid:
        records = received_blocks(env).find(ref.block_id, ref.locations)
        if records is not None:
            return records
    if ref.wal_handle is None or ref.wal_url is None:
        raise BlockNotFoundError(
            f"block {ref.block_id} is not in the block store and has no write-ahead log copy "
            "(enable spark.streaming.receiver.writeAheadLog.enable for zero data loss)"
        )
    data = receiver_wals(env).for_reading(ref.wal_url, ref.storage_options).read(ref.wal_handle)
    records = decode_block_record(data).records
    tctx = TaskContext.get()
    if tctx is not None:
        why = "its in-memory copies are gone" if ref.block_valid else "recovered from the log (no copy)"
        tctx.report_recovery(BlockRecovery(ReceivedBlockId(ref.block_id).name, "wal", why))
    return records


def _read_in_task(ref: BlockRef) -> list[Any]:
    return read_block(ref)


def block_rdd(sc: Any, refs: Sequence[BlockRef]) -> Any:
    """An RDD with one partition per block, in the given order (an empty RDD for no blocks)."""
    if not refs:
        return sc.parallelize([], 1)
    return sc.makeRDD([(ref, ref.locations) for ref in refs]).flatMap(_read_in_task)
