"""ReceiverSupervisor: runs one receiver, stores its blocks and reports them to the driver's tracker.

It owns the receiver's BlockGenerator and block handler. Storing a block is: handler (WAL first when
enabled, then memory) -> report the `ReceivedBlockInfo` to the tracker (which logs it) -> only then does
`store()` return, so a reliable receiver may acknowledge its source afterwards.

Recovery on start (receiver WAL only): a block in the receiver WAL that the tracker does not know and that
was written after every block *of this stream* the tracker ever cleaned never reached the tracker (the
process died between the two writes, the tracker's write failed, or the WAL write timed out and committed
late); it was never acknowledged. First `Receiver.on_recovered_blocks` gets the receiver's state snapshots
(written before each cleanup, see `Receiver.recovery_state`) and the metadata of the logged blocks the
tracker knows, in log order. Then each unreported block, in log order, goes to
`Receiver.adopt_recovered_block`, which keeps what the state does not hold yet (a reliable receiver drops
what a resend already stored); the kept part is stored and reported again (under its own id if whole,
a new one if trimmed) and its metadata passed to `on_recovered_blocks`. Never the metadata of an
unreported block too old to adopt: it cannot be told from a cleaned block (the snapshot covers those),
and its records are not in any batch, so acknowledging them as durable would lose them. Because a block
that is in the receiver WAL but not in the tracker can only be resolved by this recovery, a failed
report after a successful WAL write stops the supervisor (the ReceiverTracker restarts it).

Bounds (docs/backpressure.md): every record passes the supervisor's `RateLimiter` before it is stored
(`spark.streaming.receiver.maxRate`, or the backpressure estimate the tracker hands down through
`set_rate_limit`): one token for `store(record)`, n for `store(list of n)` and `store_many(list of
n)`, which adds the list to the current block one bucket's worth at a time (so the limit paces it as
it paces single records, and the block interval cuts it). Every block then takes its
records from the stream's `RecordBudget` (records stored but not yet allocated to a batch) before it
is stored; the tracker gives them back when the block is allocated. While either waits, `store()` does
not return, so a reliable receiver does not acknowledge its source. Both wake on stop.

Restarts: `restart_receiver` stops the receiver (onStop) and starts it again (onStart) after a delay on a
background thread. A receiver whose `onStart` raises, or that calls `stop`, ends the supervisor; the
ReceiverTracker then decides whether to start it again (bounded backoff).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from dstream.clock import Clock
from dstream.config import ReceiverConfig
from dstream.receiver.block_generator import BlockGenerator, PendingBlock
from dstream.receiver.block_handler import (
    BlockRecord,
    BlockStoreHandler,
    StateRecord,
    StoreResult,
    WriteAheadLogHandler,
)
from dstream.receiver.rate_limit import RateLimiter
from dstream.receiver.received_block_tracker import ReceivedBlockInfo
from dstream.receiver.receiver import Receiver
from dstream.receiver.record_budget import RecordBudget
from wal.transient_errors import is_transient

RECOVERY_READ_ATTEMPTS_MAX = 8  # reads of the receiver WAL at a start, transient errors retried
RECOVERY_READ_BACKOFF_MS = 50  # the first pause between them; it doubles
_RECOVERY_POLL_S = 0.1
BUDGET_BLOCKS_MIN = 8  # push_many cuts blocks of at most this fraction of the unallocated bound


class ReceiverEvents(Protocol):
    """Where a supervisor reports lifecycle events (the listener bus, through the ReceiverTracker)."""

    def on_receiver_started(self, stream_id: int, name: str) -> None: ...

    def on_receiver_error(self, stream_id: int, message: str, error: BaseException | None) -> None: ...

    def on_receiver_stopped(self, stream_id: int, message: str, error: BaseException | None) -> None: ...


class NoEvents:
    """A ReceiverEvents that drops everything."""

    def on_receiver_started(self, stream_id: int, name: str) -> None:
        pass

    def on_receiver_error(self, stream_id: int, message: str, error: BaseException | None) -> None:
        pass

    def on_receiver_stopped(self, stream_id: int, message: str, error: BaseException | None) -> None:
        pass


BlockHandler = BlockStoreHandler | WriteAheadLogHandler
# (known block ids, latest receiver-WAL write time of a cleaned block of this supervisor's stream)
TrackerView = Callable[[], tuple[set[str], int]]


class ReceiverSupervisor:
    """Run `receiver` for input stream `stream_id`; blocks go through `handler` to `report_block`.

    Args:
        receiver: the user's receiver.
        stream_id: its input stream.
        handler: stores a block (block store only, or receiver WAL then memory).
        report_block: registers a stored block with the driver's tracker; raises on failure.
        clock: drives block intervals and restart delays.
        config: block interval, rate, queue bounds, timeouts, restart delay.
        events: lifecycle event sink.
        tracker_view: what the tracker knows, for recovering blocks that never reached it.
        budget: the stream's bound on records stored and not yet allocated (default: a private one of
            `config.unallocated_records_max`).
        rate_per_s: the initial rate limit (default: `config.max_rate_per_s`).
    """

    def __init__(
        self,
        receiver: Receiver,
        stream_id: int,
        handler: BlockHandler,
        report_block: Callable[[ReceivedBlockInfo], None],
        clock: Clock,
        config: ReceiverConfig,
        events: ReceiverEvents | None = None,
        tracker_view: TrackerView | None = None,
        budget: RecordBudget | None = None,
        rate_per_s: float | None = None,
    ) -> None:
        self.receiver = receiver
        self.stream_id = stream_id
        self.handler = handler
        self._report_block = report_block
        self._clock = clock
        self.config = config
        self._events = events or NoEvents()
        self._tracker_view = tracker_view
        self._orphans: list[BlockRecord] = []
        self._session = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self._lock = threading.RLock()
        self._receiver_state = "initialized"  # -> started -> stopped (-> started again on restart)
        self.started_once = False  # whether onStart ever returned (the tracker resets its back-off then)
        self._recovered = threading.Event()  # set once start() has recovered: onStart may run from then on
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._stop_message = ""
        self.budget = budget if budget is not None else RecordBudget(config.unallocated_records_max)
        self.limiter = RateLimiter(
            clock, config.max_rate_per_s if rate_per_s is None else rate_per_s, self._stop_requested
        )
        self.generator = BlockGenerator(
            self._push_block,
            self.report_error,
            self.new_block_id,
            clock,
            block_interval_ms=config.block_interval_ms,
            queue_size_max=config.queue_size_max,
            block_records_max=config.block_records_max,
        )

    @property
    def recovered(self) -> bool:
        """Whether `start` has rebuilt the receiver's state from its WAL (and adopted unreported blocks)."""
        return self._recovered.is_set()

    @property
    def reliable(self) -> bool:
        return isinstance(self.handler, WriteAheadLogHandler)

    def new_block_id(self) -> str:
        """A block id unique across restarts: stream, supervisor session, sequence number."""
        return f"input-{self.stream_id}-{self._session}-{next(self._counter)}"

    def start(self) -> None:
        """Recover, start the block generator, then the receiver."""
        self.receiver._attach(self, self.stream_id)
        self.receiver.on_recovered_blocks(self._recover())
        self._adopt_orphans()
        self._recovered.set()
        self.generator.start()
        self.start_receiver()

    def _recover(self) -> list[dict[str, Any]]:
        """Split the receiver WAL into what the tracker knows and orphans; hand the former over first.

        Returns the snapshots and the metadata of known blocks (log order) for `on_recovered_blocks`.
        Orphans young enough to adopt are offered afterwards, in log order, to
        `Receiver.adopt_recovered_block`, which sees the state rebuilt from every known block (so a
        timed-out write that committed late is trimmed against the resend the tracker already has).
        """
        if not isinstance(self.handler, WriteAheadLogHandler):
            return []
        known, cleaned_written_max_ms = self._tracker_view() if self._tracker_view else (set(), -1)
        recovered: list[dict[str, Any]] = []
        self._orphans = []
        for record in self._read_receiver_wal():
            if record.stream_id != self.stream_id:
                continue
            if not isinstance(record, BlockRecord):
                recovered.append(record.state)
            elif record.block_id in known:
                if record.metadata is not None:
                    recovered.append(record.metadata)
            elif record.written_ms > cleaned_written_max_ms:  # else cleaned, or too old to tell: in no batch
                self._orphans.append(record)
        return recovered

    def _read_receiver_wal(self) -> list[BlockRecord | StateRecord]:
        """Every record of the receiver WAL, the read retried on transient storage errors.

        Transient: `wal.transient_errors.is_transient` (an I/O error, a timeout, an object store's
        SlowDown; not a missing file or a permission error). The WAL retries a read a few times
        itself; this retries the whole read when those are spent. Up to `RECOVERY_READ_ATTEMPTS_MAX`
        attempts, pausing `RECOVERY_READ_BACKOFF_MS` doubling between them; the read only reads, so a
        retry is harmless.
        Without it, one failed read among the many of a long WAL failed the start, and the tracker's
        doubling restart delay left the stream without a receiver for up to a minute.
        """
        assert isinstance(self.handler, WriteAheadLogHandler)
        pause_ms = RECOVERY_READ_BACKOFF_MS
        for attempt in range(1, RECOVERY_READ_ATTEMPTS_MAX + 1):
            try:
                return self.handler.read_all_records()
            except OSError as exc:
                last = attempt == RECOVERY_READ_ATTEMPTS_MAX
                if not is_transient(exc) or last or self._stop_requested.is_set():
                    raise
                self.report_error(
                    f"reading the receiver WAL of stream {self.stream_id} failed (attempt {attempt} of "
                    f"{RECOVERY_READ_ATTEMPTS_MAX}), retrying in {pause_ms} ms: {exc}",
                    exc,
                )
                self._clock.wait_until(self._clock.time_ms() + pause_ms, self._stop_requested)
                pause_ms *= 2
        raise AssertionError("unreachable")

    def _adopt_orphans(self) -> None:
        adopted: set[str] = set()
        for record in self._orphans:
            if record.block_id in adopted:
                continue  # the same block logged twice (an adoption whose write committed late)
            adopted.add(record.block_id)
            records, metadata = self.receiver.adopt_recovered_block(list(record.records), record.metadata)
            if not records:
                continue
            whole = len(records) == len(record.records) and metadata == record.metadata
            # A trimmed block gets a new id: the original stays unknown and is judged again at every
            # recovery, so its dropped parts never count as registered.
            self._store_and_report(record.block_id if whole else self.new_block_id(), records, metadata)
            if metadata is not None:
                self.receiver.on_recovered_blocks([metadata])
        self._orphans = []

    def start_receiver(self) -> None:
        """Call `onStart` unless the receiver runs; if it raises, the supervisor stops with that error.

        Only after recovery: `start` calls it then, and a restart requested while `start` still recovers
        waits for it (`_restart`), so the receiver never answers its source from a state that the
        recovered and adopted blocks have not rebuilt yet.
        """
        with self._lock:
            if self._stop_requested.is_set() or self._receiver_state == "started":
                return
            # Started before onStart (Spark's order): the threads it launches check isStopped() at once.
            self._receiver_state = "started"
            try:
                self.receiver.onStart()
            except Exception as exc:
                self._receiver_state = "stopped"
                start_error: Exception | None = exc
            else:
                start_error = None
        if start_error is not None:
            self.stop(f"error starting receiver {self.stream_id}: {start_error}", start_error)
        else:
            self.started_once = True
            self._events.on_receiver_started(self.stream_id, type(self.receiver).__name__)

    def stop_receiver(self, message: str, error: BaseException | None) -> None:
        """Call `onStop` once per start; errors from it are reported, not raised."""
        with self._lock:
            if self._receiver_state != "started":
                return
            self._receiver_state = "stopped"
        try:
            self.receiver.onStop()
        except Exception as exc:
            self.report_error(f"error in onStop of receiver {self.stream_id}", exc)
        self._events.on_receiver_stopped(self.stream_id, message, error)

    def set_rate_limit(self, rate_per_s: float | None) -> None:
        """Records per second this receiver may store from now on (None: no limit)."""
        self.limiter.set_rate(rate_per_s)

    def push_single(self, record: Any) -> None:
        self.limiter.acquire(1)
        pending = self.generator.add_data(record)
        if self.reliable:
            pending.wait(self.config.store_timeout_s)

    def push_many(self, records: list[Any], wait_durable: bool = True) -> None:
        """Add records to the current block, paced by the rate limit one bucket's worth at a time."""
        pending: list[PendingBlock] = []
        piece = self.limiter.piece_records_max or len(records) or 1
        for start in range(0, len(records), piece):
            part = records[start : start + piece]
            self.limiter.acquire(len(part))
            pending.extend(self.generator.add_many(part, self._many_block_records_max()))
        if self.reliable and wait_durable:
            for block in dict.fromkeys(pending):  # each block once, in order
                block.wait(self.config.store_timeout_s)

    def _many_block_records_max(self) -> int | None:
        """Blocks of `push_many` hold at most 1/8 of the unallocated bound.

        A block is admitted only while the bound has room for all of it, so blocks of half the bound
        (100,000 of 200,000 by default) beside one small block cut by the timer left the bound half
        used until the next allocation: a fast socket stored half of what the bound allows per batch.
        With eighths at least 7/8 of it is used.
        """
        records_max = self.budget.records_max
        return None if records_max is None else max(1, records_max // BUDGET_BLOCKS_MIN)

    def push_multiple(self, records: list[Any], metadata: dict[str, Any] | None = None) -> None:
        if records:
            self.limiter.acquire(len(records))
            self._store_and_report(self.new_block_id(), records, metadata)

    def push_state(self, state: dict[str, Any]) -> None:
        """Write a state record of the receiver (durable on return with the WAL; nothing without it)."""
        self.handler.store_state(state)

    def _push_block(self, block_id: str, records: list[Any]) -> None:
        self._store_and_report(block_id, records, None)

    def _store_and_report(
        self, block_id: str, records: list[Any], metadata: dict[str, Any] | None = None
    ) -> StoreResult:
        self.budget.acquire(block_id, len(records), self._stop_requested)
        try:
            return self._store_and_report_admitted(block_id, records, metadata)
        except BaseException:
            self.budget.release([block_id])
            raise

    def _store_and_report_admitted(
        self, block_id: str, records: list[Any], metadata: dict[str, Any] | None
    ) -> StoreResult:
        result = self.handler.store_block(block_id, records, metadata)
        info = ReceivedBlockInfo(
            self.stream_id,
            block_id,
            result.num_records,
            result.wal_handle,
            metadata,
            True,
            result.written_ms,
            result.locations,
        )
        try:
            self._report_block(info)
        except Exception as exc:
            if self.reliable:  # durable but untracked: only a restart's recovery can resolve it
                message = f"block {block_id} is in the receiver WAL but the tracker refused it: {exc}"
                threading.Thread(target=self.stop, args=(message, exc), daemon=True).start()
            raise
        return result

    def report_error(self, message: str, error: BaseException | None = None) -> None:
        self._events.on_receiver_error(self.stream_id, message, error)

    def restart_receiver(self, message: str, error: BaseException | None, delay_ms: int | None) -> None:
        """Stop the receiver and start it again after `delay_ms` (default: the restart delay), async."""
        delay = self.config.restart_delay_ms if delay_ms is None else delay_ms
        wake_ms = self._clock.time_ms() + delay
        self.report_error(f"restarting receiver {self.stream_id}: {message}", error)
        threading.Thread(target=self._restart, args=(message, error, wake_ms), daemon=True).start()

    def _restart(self, message: str, error: BaseException | None, wake_ms: int) -> None:
        self.stop_receiver(f"restarting: {message}", error)
        self._clock.wait_until(wake_ms, self._stop_requested)
        # A restart asked for while `start` recovers (e.g. chaos's receiver crash right after a driver
        # restart) used to start the receiver before the orphans were adopted: a push receiver then told
        # its producers a durable sequence number without them and refused their resends as gaps.
        while not self._recovered.wait(_RECOVERY_POLL_S) and not self._stop_requested.is_set():
            pass  # bounded: a start that fails stops the supervisor, which sets _stop_requested
        self.start_receiver()

    def stop(self, message: str, error: BaseException | None = None) -> None:
        """Stop the receiver and the block generator (flushing buffered records); idempotent."""
        with self._lock:
            if self._stop_requested.is_set():
                return
            self._stop_requested.set()
            self._stop_message, self._error = message, error
        self.budget.wake()
        self.stop_receiver(message, error)
        self.generator.stop()
        self._stopped.set()

    def await_termination(self, timeout_s: float | None = None) -> bool:
        """Wait until stopped; True if it stopped within the timeout."""
        return self._stopped.wait(timeout_s)

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def stop_message(self) -> str:
        return self._stop_message

    def is_receiver_started(self) -> bool:
        return self._receiver_state == "started"

    def is_receiver_stopped(self) -> bool:
        return self._receiver_state != "started"
