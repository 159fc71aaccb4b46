"""How a receiver's block is stored: in the block store only, or in the receiver WAL first, then memory.

`BlockStoreHandler` keeps blocks in the executor's block manager at the receiver's storage level.
`WriteAheadLogHandler` serializes the block once, writes it to the receiver WAL
(`<checkpoint>/receivedData/<stream_id>/`), and only when that write returned (durable) puts the records
in the block store; its `store_block` therefore returns only once the block is durable. The storage level
is forced to one copy: the WAL already is the second copy (Spark's SPARK-4671 rule).

Receiver WAL record format, version 1 (one WAL record per block):

    offset  size  field
    0       3     magic b"RBK"
    3       1     format version, 1
    4       ...   pickle (protocol 5) of the tuple
                    (stream_id: int, block_id: str, written_ms: int, metadata: dict | None, records: list)
                  (lines of text without the memo, see dstream.pickling; any pickle reads it)

`written_ms` is the receiver clock's time at the write; recovery uses it to tell a block that never reached
the driver's tracker (written after every block of its stream the tracker has cleaned) from one already
cleaned.

Receiver state record, version 1 (written just before old segments are cleaned, so that the newest
segment always holds it, see `Receiver.recovery_state`; and whenever a receiver asks, `Receiver.store_state`):

    offset  size  field
    0       3     magic b"RST"
    3       1     format version, 1
    4       ...   pickle (protocol 5) of the tuple (stream_id: int, written_ms: int, state: dict)

A record with another magic or version is refused with `BlockRecordError`.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from dstream.clock import Clock
from dstream.errors import DStreamError
from dstream.pickling import dumps_text_in, holds_no_shared_mutable
from dstream.rdd.storage import StorageLevel
from dstream.receiver.block_store import ReceivedBlocks
from dstream.receiver.received_block_tracker import EventLog

MAGIC = b"RBK"
FORMAT_VERSION = 1
STATE_MAGIC = b"RST"
STATE_FORMAT_VERSION = 1


class BlockRecordError(DStreamError):
    """A receiver WAL record is not a block record of a known version."""


@dataclass(frozen=True)
class BlockRecord:
    """One block as written to the receiver WAL."""

    stream_id: int
    block_id: str
    written_ms: int
    metadata: dict[str, Any] | None
    records: list[Any]


@dataclass(frozen=True)
class StateRecord:
    """A receiver's acknowledgement state as written to the receiver WAL before a cleanup."""

    stream_id: int
    written_ms: int
    state: dict[str, Any]


@dataclass(frozen=True)
class StoreResult:
    """What `store_block` reports to the tracker: the block, its size and, with the WAL, its handle."""

    block_id: str
    num_records: int
    wal_handle: Any = None
    written_ms: int | None = None
    locations: tuple[str, ...] = ()


def encode_block_record(record: BlockRecord) -> bytes:
    """Serialize a block as a version-1 receiver WAL record (layout in the module docstring)."""
    body = (record.stream_id, record.block_id, record.written_ms, record.metadata, record.records)
    payload = None
    if holds_no_shared_mutable(record.metadata, besides=(record.records,)):
        payload = dumps_text_in(body, record.records)  # lines of text: the memo would change nothing
    if payload is None:
        payload = pickle.dumps(body, protocol=5)
    return MAGIC + bytes([FORMAT_VERSION]) + payload


def decode_block_record(data: bytes) -> BlockRecord:
    """Parse a record written by `encode_block_record`."""
    if len(data) < 5 or data[:3] != MAGIC:
        raise BlockRecordError(f"not a receiver block record: starts with {data[:8]!r}, expected {MAGIC!r}")
    if data[3] != FORMAT_VERSION:
        raise BlockRecordError(f"block record format version {data[3]} is unknown; expected {FORMAT_VERSION}")
    stream_id, block_id, written_ms, metadata, records = pickle.loads(data[4:])
    return BlockRecord(stream_id, block_id, written_ms, metadata, records)


def encode_state_record(record: StateRecord) -> bytes:
    """Serialize a receiver state snapshot as a version-1 state record (layout in the module docstring)."""
    body = (record.stream_id, record.written_ms, record.state)
    return STATE_MAGIC + bytes([STATE_FORMAT_VERSION]) + pickle.dumps(body, protocol=5)


def decode_log_record(data: bytes) -> BlockRecord | StateRecord:
    """Parse any receiver WAL record: a block or a state snapshot."""
    if data[:3] != STATE_MAGIC:
        return decode_block_record(data)
    if len(data) < 5 or data[3] != STATE_FORMAT_VERSION:
        version = data[3] if len(data) > 3 else None
        raise BlockRecordError(
            f"receiver state record format version {version} is unknown; expected {STATE_FORMAT_VERSION}"
        )
    stream_id, written_ms, state = pickle.loads(data[4:])
    return StateRecord(stream_id, written_ms, state)


class BlockStoreHandler:
    """Store blocks in the executor's block store at `level` (replicated when the level says so)."""

    def __init__(self, level: StorageLevel, blocks: ReceivedBlocks) -> None:
        self.level = level
        self.blocks = blocks

    def store_block(self, block_id: str, records: list[Any], metadata: dict[str, Any] | None) -> StoreResult:
        locations = self.blocks.put_replicated(block_id, records, self.level)
        return StoreResult(block_id, len(records), locations=locations)

    def store_state(self, state: dict[str, Any]) -> None:
        """Nothing to do: without the WAL a receiver's state lives only in memory."""

    def cleanup_old_blocks(self, threshold_ms: int) -> None:
        """Nothing to do: block-store copies are removed when their batches are cleaned."""


class WriteAheadLogHandler:
    """Write each block to the receiver WAL, then keep it in memory; durable when `store_block` returns.

    Args:
        log: the receiver WAL of this stream.
        stream_id: the input stream, written into each record.
        clock: stamps each record (the WAL's cleanup works on these times).
        level: the receiver's storage level; only its memory/disk choice is kept, with one copy.
        blocks: the executor's received blocks, where the in-memory copy goes.
    """

    def __init__(
        self, log: EventLog, stream_id: int, clock: Clock, level: StorageLevel, *, blocks: ReceivedBlocks
    ) -> None:
        self.log = log
        self.blocks = blocks
        self.stream_id = stream_id
        self.clock = clock
        self.level = StorageLevel(level.useDisk, level.useMemory or not level.useDisk, False, False, 1)

    def store_block(self, block_id: str, records: list[Any], metadata: dict[str, Any] | None) -> StoreResult:
        now = self.clock.time_ms()
        data = encode_block_record(BlockRecord(self.stream_id, block_id, now, metadata, records))
        handle = self.log.write(data, now)
        # One copy (see `level`): the WAL is the other.
        locations = self.blocks.put_replicated(block_id, records, self.level)
        return StoreResult(block_id, len(records), handle, now, locations)

    def store_state(self, state: dict[str, Any]) -> None:
        """Write a receiver state record; durable when this returns (recovery hands it back in log order)."""
        now = self.clock.time_ms()
        self.log.write(encode_state_record(StateRecord(self.stream_id, now, state)), now)

    def cleanup_old_blocks(self, threshold_ms: int) -> None:
        """Let the WAL drop segments older than the threshold (in the background)."""
        self.log.clean(threshold_ms, wait=False)

    def read_all_records(self) -> list[BlockRecord | StateRecord]:
        """Every block and state snapshot still in the receiver WAL, in write order (recovery)."""
        return [decode_log_record(data) for data in self.log.read_all()]
