"""The driver's ReceivedBlockTracker: which received blocks belong to which batch, durably.

A pure state machine (`TrackerState`) over three events, and a thin shell (`ReceivedBlockTracker`) that
writes each event to the metadata WAL (`<checkpoint>/receivedBlockMetadata/`) *before* the in-memory state
changes. On restart the state is rebuilt by replaying the WAL, so a re-run batch sees exactly the blocks it
saw before (spark-streaming-internals.md section 2).

Events:
- `BlockAdded(info)`: a receiver stored a block; it joins its stream's unallocated queue.
- `BatchAllocated(time_ms, blocks)`: every stream's queue, as it stood, becomes batch `time_ms`'s input.
  Allocation is strictly monotonic in time and idempotent for `time_ms <= last allocated` (Spark's rule), so
  a re-run batch keeps its logged allocation.
- `BatchesCleaned(times_ms, threshold_ms, last_allocated_ms, written_max_ms, written_max_all_ms)`:
  allocations older than the threshold are forgotten. The event repeats the last allocated time because
  cleaning the log may delete the allocation event that set it, and a replay must still refuse to
  re-allocate an old batch time. It also carries, *per stream*, the latest receiver-WAL write time of any
  block of that stream cleaned so far (cumulative, for the same reason): a block found in a stream's
  receiver WAL, unknown to the tracker and written after that stream's time never reached the tracker
  (see supervisor.py). Per stream, because each stream has its own receiver WAL and clock of progress: a
  global maximum let one busy stream's cleanup hide another stream's unreported block for good.
  `written_max_all_ms` is the floor that a version-1 record (one maximum over all streams) left behind.

Replay is ordered and idempotent: replaying stale WAL files that cleanup failed to delete gives the same
state, because an allocation removes exactly the blocks it names and a later cleanup undoes it. Replay
also tolerates a record that a timed-out write committed late (`WALTimeoutError`: "may still be committed
later"): an allocation does not take a block an earlier allocation already took, and a block added twice
is queued once. Live, such an ambiguous failure fail-stops the tracker (see `ReceivedBlockTracker`).

Event record format, version 2 (one WAL record per event; version 1 is still read):

    offset  size  field
    0       3     magic b"RBT"
    3       1     format version, 2
    4       ...   pickle (protocol 5) of a tuple made only of builtins and WAL handles:
                    ("add",   block)
                    ("alloc", time_ms, ((stream_id, (block, ...)), ...))   streams sorted by id
                    ("clean", (time_ms, ...), threshold_ms, last_allocated_ms | None,
                              ((stream_id, written_max_ms), ...), written_max_all_ms)   streams sorted
                  where block = (stream_id, block_id, num_records | None, wal_handle | None,
                                 metadata dict | None, written_ms | None)

Version 1 differs only in "clean": its last field is one `written_max_ms` over all streams, read as
`written_max_all_ms` (every stream's floor), which is what it meant when it was written.

A record with another magic or version is refused with `TrackerLogError`, never misread. Blocks decoded from
the log are marked `block_valid=False`: their in-memory copies died with the process that held them.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dstream.clock import Clock
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError

MAGIC = b"RBT"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
PICKLE_PROTOCOL = 5


class TrackerLogError(DStreamError):
    """A metadata WAL record is not a tracker event of a known version."""


class TrackerFailedError(DStreamStateError):
    """The tracker stopped after an ambiguous log write; only a rebuild from the log may continue."""


@dataclass(frozen=True)
class ReceivedBlockInfo:
    """What the driver knows of one stored block.

    Attributes:
        stream_id: the receiver input stream the block belongs to.
        block_id: unique, stable name of the block in the block store.
        num_records: records in the block, when known.
        wal_handle: the receiver-WAL record handle, when the block was write-ahead logged.
        metadata: small builtin-only dict stored with the block (e.g. producer id and sequence range).
        block_valid: False when the in-memory copy is known to be gone (recovered from the log).
        written_ms: when the block was written to the receiver WAL, if it was.
        locations: the executors whose block managers hold a copy (the driver's block-location
            table for received blocks). Not logged: a block recovered from the log has none.
    """

    stream_id: int
    block_id: str
    num_records: int | None = None
    wal_handle: Any = None
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    block_valid: bool = field(default=True, compare=False)
    written_ms: int | None = None
    locations: tuple[str, ...] = field(default=(), compare=False, hash=False)


@dataclass(frozen=True)
class BlockAdded:
    info: ReceivedBlockInfo


@dataclass(frozen=True)
class BatchAllocated:
    time_ms: int
    blocks: Mapping[int, tuple[ReceivedBlockInfo, ...]] = field(hash=False)


@dataclass(frozen=True)
class BatchesCleaned:
    times_ms: tuple[int, ...]
    threshold_ms: int
    last_allocated_ms: int | None = None
    written_max_ms: Mapping[int, int] = field(default_factory=dict, hash=False)
    written_max_all_ms: int = -1


TrackerEvent = BlockAdded | BatchAllocated | BatchesCleaned


class TrackerState:
    """The tracker's state and decisions, without I/O. `plan_*` decide an event; `apply` performs one."""

    def __init__(self, stream_ids: Iterable[int] = ()) -> None:
        self._queues: dict[int, list[ReceivedBlockInfo]] = {int(s): [] for s in stream_ids}
        self._allocated: dict[int, dict[int, tuple[ReceivedBlockInfo, ...]]] = {}
        self.last_allocated_ms: int | None = None
        self.cleaned_before_ms = 0
        self._cleaned_written_max_ms: dict[int, int] = {}
        self.cleaned_written_max_all_ms = -1  # floor from version-1 records (one maximum for all streams)
        self._ids: set[str] = set()  # every queued or allocated block id (replay ignores a repeated add)
        self._allocated_ids: set[str] = set()  # blocks of a batch not cleaned yet

    def cleaned_written_max_ms(self, stream_id: int) -> int:
        """The latest receiver-WAL write time of a cleaned block of `stream_id` (-1 before any)."""
        return max(self.cleaned_written_max_all_ms, self._cleaned_written_max_ms.get(stream_id, -1))

    def plan_add(self, info: ReceivedBlockInfo) -> BlockAdded:
        if not isinstance(info, ReceivedBlockInfo):
            raise DStreamValueError(f"add_block needs a ReceivedBlockInfo, got {info!r}")
        return BlockAdded(info)

    def plan_allocate(self, time_ms: int) -> BatchAllocated | None:
        """The allocation of every queued block to `time_ms`, or None if `time_ms` is already allocated."""
        if self.last_allocated_ms is not None and time_ms <= self.last_allocated_ms:
            return None
        return BatchAllocated(int(time_ms), {s: tuple(q) for s, q in sorted(self._queues.items())})

    def plan_cleanup(self, threshold_ms: int) -> BatchesCleaned:
        times = tuple(sorted(t for t in self._allocated if t < threshold_ms))
        written = dict(self._cleaned_written_max_ms)  # cumulative: older clean events may be deleted
        for t in times:
            for stream_id, bs in self._allocated[t].items():
                for b in bs:
                    if b.written_ms is not None:
                        written[stream_id] = max(written.get(stream_id, -1), b.written_ms)
        return BatchesCleaned(
            times, int(threshold_ms), self.last_allocated_ms, written, self.cleaned_written_max_all_ms
        )

    def apply(self, event: TrackerEvent) -> None:
        if isinstance(event, BlockAdded):
            if event.info.block_id not in self._ids:  # a late-committed add and its re-adoption: once
                self._ids.add(event.info.block_id)
                self._queues.setdefault(event.info.stream_id, []).append(event.info)
        elif isinstance(event, BatchAllocated):
            self._apply_allocation(event)
        else:
            self._apply_cleanup(event)

    def _apply_allocation(self, event: BatchAllocated) -> None:
        # The event names its blocks in full (their BlockAdded records may be cleaned from the log), but a
        # block that an earlier allocation already took (a late-committed, timed-out write) is not given
        # to a second batch. Blocks added after the snapshot stay queued.
        taken_by_stream: dict[int, tuple[ReceivedBlockInfo, ...]] = {}
        for stream_id, blocks in event.blocks.items():
            taken = tuple(b for b in blocks if b.block_id not in self._allocated_ids)
            taken_ids = {b.block_id for b in taken}
            queue = self._queues.setdefault(stream_id, [])
            queue[:] = [b for b in queue if b.block_id not in taken_ids]
            self._allocated_ids.update(taken_ids)
            self._ids.update(taken_ids)
            taken_by_stream[stream_id] = taken
        self._allocated[event.time_ms] = taken_by_stream
        self._raise_last_allocated(event.time_ms)

    def _apply_cleanup(self, event: BatchesCleaned) -> None:
        for t in event.times_ms:
            for bs in self._allocated.pop(t, {}).values():
                ids = {b.block_id for b in bs}
                self._ids.difference_update(ids)
                self._allocated_ids.difference_update(ids)
        self.cleaned_before_ms = max(self.cleaned_before_ms, event.threshold_ms)
        for stream_id, written_ms in event.written_max_ms.items():
            self._cleaned_written_max_ms[stream_id] = max(
                self._cleaned_written_max_ms.get(stream_id, -1), written_ms
            )
        self.cleaned_written_max_all_ms = max(self.cleaned_written_max_all_ms, event.written_max_all_ms)
        if event.last_allocated_ms is not None:
            self._raise_last_allocated(event.last_allocated_ms)

    def _raise_last_allocated(self, time_ms: int) -> None:
        last = self.last_allocated_ms
        self.last_allocated_ms = time_ms if last is None else max(last, time_ms)

    def blocks_of_batch(self, time_ms: int) -> dict[int, tuple[ReceivedBlockInfo, ...]]:
        return dict(self._allocated.get(time_ms, {}))

    def unallocated_blocks(self, stream_id: int) -> tuple[ReceivedBlockInfo, ...]:
        return tuple(self._queues.get(stream_id, ()))

    def has_unallocated_blocks(self) -> bool:
        return any(self._queues.values())

    def allocated_times(self) -> tuple[int, ...]:
        return tuple(sorted(self._allocated))

    def known_block_ids(self) -> set[str]:
        return set(self._ids)

    def snapshot(self) -> tuple[object, ...]:
        """A comparable summary of the whole state (used by tests to compare a replay with the original)."""
        queues = tuple((s, tuple(q)) for s, q in sorted(self._queues.items()) if q)
        allocated = tuple(
            (t, tuple(sorted((s, bs) for s, bs in batch.items())))
            for t, batch in sorted(self._allocated.items())
        )
        return (
            queues,
            allocated,
            self.last_allocated_ms,
            self.cleaned_before_ms,
            tuple(sorted(self._cleaned_written_max_ms.items())),
            self.cleaned_written_max_all_ms,
        )


def _block_tuple(b: ReceivedBlockInfo) -> tuple[Any, ...]:
    return (b.stream_id, b.block_id, b.num_records, b.wal_handle, b.metadata, b.written_ms)


def _block_from(t: Any) -> ReceivedBlockInfo:
    stream_id, block_id, num_records, wal_handle, metadata, written_ms = t
    return ReceivedBlockInfo(stream_id, block_id, num_records, wal_handle, metadata, False, written_ms)


def encode_event(event: TrackerEvent) -> bytes:
    """Serialize one event as a version-2 record (layout in the module docstring)."""
    body: tuple[Any, ...]
    if isinstance(event, BlockAdded):
        body = ("add", _block_tuple(event.info))
    elif isinstance(event, BatchAllocated):
        streams = tuple((s, tuple(_block_tuple(b) for b in bs)) for s, bs in sorted(event.blocks.items()))
        body = ("alloc", event.time_ms, streams)
    else:
        body = (
            "clean",
            tuple(event.times_ms),
            event.threshold_ms,
            event.last_allocated_ms,
            tuple(sorted(event.written_max_ms.items())),
            event.written_max_all_ms,
        )
    return MAGIC + bytes([FORMAT_VERSION]) + pickle.dumps(body, protocol=PICKLE_PROTOCOL)


def decode_event(data: bytes) -> TrackerEvent:
    """Parse a version-1 or -2 record (see `encode_event`); blocks come back with `block_valid=False`."""
    if data[:3] != MAGIC or len(data) < 5:
        raise TrackerLogError(f"not a tracker event record: starts with {data[:8]!r}, expected {MAGIC!r}")
    version = data[3]
    if version not in READABLE_VERSIONS:
        raise TrackerLogError(
            f"tracker event format version {version} is unknown; expected one of {READABLE_VERSIONS}"
        )
    body = pickle.loads(data[4:])
    kind = body[0]
    if kind == "add":
        return BlockAdded(_block_from(body[1]))
    if kind == "alloc":
        return BatchAllocated(body[1], {s: tuple(_block_from(b) for b in bs) for s, bs in body[2]})
    if kind == "clean" and version == 1:  # one maximum over all streams: every stream's floor
        return BatchesCleaned(tuple(body[1]), body[2], body[3], {}, body[4])
    if kind == "clean":
        return BatchesCleaned(tuple(body[1]), body[2], body[3], dict(body[4]), body[5])
    raise TrackerLogError(f"unknown tracker event kind {kind!r}; expected add, alloc or clean")


class EventLog(Protocol):
    """The part of `wal.WriteAheadLog` the tracker uses."""

    def write(self, data: bytes, time_ms: int) -> Any: ...

    def read_all(self) -> Iterator[bytes]: ...

    def clean(self, before_ms: int, *, wait: bool = False) -> None: ...


class ReceivedBlockTracker:
    """Thread-safe shell: every event is written to the log before `TrackerState.apply` runs.

    Fail-stop: a write that fails *ambiguously* (a timeout, `WALTimeoutError`: the record may still be
    committed later) leaves memory and log possibly disagreeing; from then on every event is refused with
    `TrackerFailedError` and the tracker must be rebuilt from the log (the log is the truth: restart the
    driver from its checkpoint). A write that fails cleanly (any other error) changes nothing and the
    tracker goes on.

    Args:
        clock: the driver's clock; event records are stamped with its time.
        stream_ids: the receiver input streams; each appears in every allocation, possibly empty.
        log: the metadata WAL, or None to keep state in memory only (no checkpoint directory).
        recover: rebuild the state by replaying `log` first (the driver restarted from a checkpoint).
    """

    def __init__(
        self, clock: Clock, stream_ids: Iterable[int] = (), log: EventLog | None = None, recover: bool = False
    ) -> None:
        self._clock = clock
        self._log = log
        self._lock = threading.RLock()
        self._state = TrackerState(stream_ids)
        self._failure: BaseException | None = None
        if recover and log is not None:
            for record in log.read_all():
                self._state.apply(decode_event(record))

    @property
    def is_write_ahead_log_enabled(self) -> bool:
        return self._log is not None

    @property
    def failure(self) -> BaseException | None:
        """The ambiguous write failure that stopped the tracker, or None while it works."""
        return self._failure

    def _write(self, event: TrackerEvent) -> None:
        if self._failure is not None:
            raise TrackerFailedError(
                f"block tracker stopped after an ambiguous metadata WAL write ({self._failure}); "
                "restart from the checkpoint to rebuild it from the log"
            ) from self._failure
        if self._log is None:
            return
        try:
            self._log.write(encode_event(event), self._clock.time_ms())
        except TimeoutError as exc:  # WALTimeoutError: may still be committed later
            self._failure = exc
            raise

    def _write_then_apply(self, event: TrackerEvent) -> None:
        self._write(event)
        self._state.apply(event)

    def add_block(self, info: ReceivedBlockInfo) -> None:
        """Log and queue a stored block. Raises whatever the log raises; then nothing changed.

        The write happens outside the lock (as in Spark) so that concurrent receivers' additions share a
        group commit. An allocation that runs meanwhile simply does not include this block, and neither
        does its replay: the allocation event names its blocks.
        """
        event = self._state.plan_add(info)
        self._write(event)
        with self._lock:
            if self._failure is not None:  # an allocation failed ambiguously meanwhile: keep memory as is
                raise TrackerFailedError(f"block tracker stopped before block {info.block_id} was queued")
            self._state.apply(event)

    def allocate_blocks_to_batch(self, time_ms: int) -> None:
        """Give every queued block to batch `time_ms`; a no-op for a time already allocated.

        If the log write raises, the exception propagates and the queues keep all their blocks.
        """
        with self._lock:
            event = self._state.plan_allocate(time_ms)
            if event is not None:
                self._write_then_apply(event)

    def cleanup_old_batches(self, threshold_ms: int, wait: bool = False) -> None:
        """Forget allocations older than `threshold_ms`, then clean the log before it."""
        now = self._clock.time_ms()
        if threshold_ms >= now:
            raise DStreamValueError(f"cleanup threshold {threshold_ms} ms must be before now ({now} ms)")
        with self._lock:
            self._write_then_apply(self._state.plan_cleanup(threshold_ms))
            if self._log is not None:
                self._log.clean(threshold_ms, wait=wait)

    def get_blocks_of_batch(self, time_ms: int) -> dict[int, tuple[ReceivedBlockInfo, ...]]:
        with self._lock:
            return self._state.blocks_of_batch(time_ms)

    def get_blocks_of_batch_and_stream(self, time_ms: int, stream_id: int) -> tuple[ReceivedBlockInfo, ...]:
        with self._lock:
            return self._state.blocks_of_batch(time_ms).get(stream_id, ())

    def get_unallocated_blocks(self, stream_id: int) -> tuple[ReceivedBlockInfo, ...]:
        with self._lock:
            return self._state.unallocated_blocks(stream_id)

    def has_unallocated_received_blocks(self) -> bool:
        with self._lock:
            return self._state.has_unallocated_blocks()

    def known_block_ids(self) -> set[str]:
        with self._lock:
            return self._state.known_block_ids()

    def allocated_times(self) -> tuple[int, ...]:
        with self._lock:
            return self._state.allocated_times()

    @property
    def last_allocated_ms(self) -> int | None:
        with self._lock:
            return self._state.last_allocated_ms

    @property
    def cleaned_before_ms(self) -> int:
        with self._lock:
            return self._state.cleaned_before_ms

    def cleaned_written_max_ms(self, stream_id: int) -> int:
        """The latest receiver-WAL write time of a cleaned block of `stream_id` (-1 before any cleanup)."""
        with self._lock:
            return self._state.cleaned_written_max_ms(stream_id)

    def snapshot(self) -> tuple[object, ...]:
        with self._lock:
            return self._state.snapshot()
