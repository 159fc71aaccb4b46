"""ReceiverTracker: starts the receivers, restarts failed ones with bounded backoff, owns the block tracker.

With the local backend each receiver runs under its own `ReceiverSupervisor` on a thread of the driver
process. With the Dask backend a `ReceiverLauncher` (dstream.receiver.worker_launcher) runs it on a worker
instead and hands back a handle with the supervisor's life-cycle methods (`SupervisorHandle`); the restart
logic below is the same for both: a handle whose worker died ends with an error like a supervisor that
stopped on one, so the receiver is started again on another alive worker. When a supervisor ends while the
tracker is running (its `onStart` raised, or it stopped on an error) the receiver is started again after a
delay that doubles from `restart_delay_ms` up to `restart_delay_max_ms`; after `restarts_max` consecutive
failed starts it is given up: reported as an error, and the application fails with it (`on_given_up`:
the streaming context's `awaitTermination` raises it), since a stream that no longer receives would go on
as empty batches while its unacknowledged producers wait, and on a worker a given-up receiver never
writes the snapshot that received-block cleanup waits for, so every stream's blocks and metadata would
grow without bound. (Spark instead restarts a receiver forever.) A start that succeeded (`onStart`
returned) resets the count and the delay: a receiver that listened again and then failed (a store whose
report failed, a `restart` gone wrong) is started again after `restart_delay_ms`, never after a delay
grown by earlier failures. A start reads the receiver WAL (recovery); that read retries transient
storage errors itself (`ReceiverSupervisor`), so one failed read among many does not cost a start and a
doubled delay.

Directory layout under the checkpoint directory (`checkpoint.layout`, docs/checkpoint-format.md):
    receivedBlockMetadata/     metadata WAL of the ReceivedBlockTracker (group-committed)
    receivedData/<stream_id>/  receiver WAL of block payloads, one per receiver input stream

The tracker implements the streaming core's `BlockAllocator` protocol: the JobGenerator allocates
through it and decides when it cleans; the context starts and stops it. It also holds each stream's
bounds across supervisor restarts: the `RecordBudget` of records stored but not yet allocated (given
back here when a batch takes them) and the rate limit the backpressure controller last set
(`update_rate_limit`, capped by `spark.streaming.receiver.maxRate`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from checkpoint.envelope import signing_key_from_env
from checkpoint.layout import received_block_metadata_dir, received_data_dir
from dstream.backends.executor_env import ExecutorEnv
from dstream.clock import Clock
from dstream.config import BackpressureConfig, ReceiverConfig
from dstream.errors import CleanupDeferredError, DStreamStateError, DStreamValueError
from dstream.receiver.block_handler import (
    BlockStoreHandler,
    StateRecord,
    WriteAheadLogHandler,
    encode_state_record,
)
from dstream.receiver.block_store import ReceivedBlocks, received_blocks
from dstream.receiver.rate_limit import check_rate, effective_rate
from dstream.receiver.received_block_tracker import EventLog, ReceivedBlockInfo, ReceivedBlockTracker
from dstream.receiver.receiver import Receiver
from dstream.receiver.record_budget import RecordBudget
from dstream.receiver.supervisor import (
    RECOVERY_READ_ATTEMPTS_MAX,
    RECOVERY_READ_BACKOFF_MS,
    BlockHandler,
    NoEvents,
    ReceiverEvents,
    ReceiverSupervisor,
)
from dstream.receiver.wal_registry import ReceiverWALs, receiver_wals
from wal import WriteAheadLog, open_wal
from wal.transient_errors import is_transient

JOIN_TIMEOUT_S = 30.0


class SupervisorHandle(Protocol):
    """What the tracker's restart loop needs of a running receiver: a local `ReceiverSupervisor`, or the
    driver's handle on one that runs on a Dask worker."""

    @property
    def started_once(self) -> bool: ...

    @property
    def stop_message(self) -> str: ...

    @property
    def error(self) -> BaseException | None: ...

    def start(self) -> None: ...

    def stop(self, message: str, error: BaseException | None = None) -> None: ...

    def await_termination(self, timeout_s: float | None = None) -> bool: ...

    def set_rate_limit(self, rate_per_s: float | None) -> None: ...


class ReceiverLauncher(Protocol):
    """Runs receivers somewhere else than a driver thread (the Dask backend's workers)."""

    def bind(self, tracker: ReceiverTracker) -> None:
        """Serve `tracker` to the receivers it launches (reports, budgets, events)."""

    def launch(self, stream_id: int, receiver: Receiver) -> SupervisorHandle:
        """A handle for a new start of the receiver (nothing runs before its `start`)."""

    def write_recovery_state(self, stream_id: int) -> bool:
        """Have the running receiver write its `recovery_state` to its WAL; False when it cannot now."""

    def clean_wal(self, stream_id: int, threshold_ms: int) -> None:
        """Let the stream's receiver WAL drop segments older than the threshold."""

    def remove_blocks(self, block_ids: list[str]) -> None:
        """Drop every copy of these received blocks wherever they are held."""

    def close(self) -> None:
        """Stop serving; close the receiver WALs the receivers held open."""


def open_receiver_log(
    url: str, config: ReceiverConfig, storage_options: Mapping[str, Any], batched: bool
) -> WriteAheadLog:
    """Open a WAL of the tracker (metadata) or of a receiver with the receiver settings.

    The checkpoint key (DSTREAM_CHECKPOINT_KEY) authenticates every WAL record, as it signs the metadata
    checkpoints: both logs hold pickles that a replay would otherwise run.
    """
    return open_wal(
        url,
        rolling_interval_ms=config.wal_rolling_interval_ms,
        fsync=config.wal_fsync,
        storage_options=dict(storage_options),
        batched=batched,
        timeout_s=config.store_timeout_s,
        key=signing_key_from_env(),
    )


def receiver_wal_url(checkpoint_dir: str, stream_id: int) -> str:
    """`<checkpoint>/receivedData/<stream_id>`: the receiver WAL of one input stream."""
    return received_data_dir(checkpoint_dir, stream_id)


def metadata_wal_url(checkpoint_dir: str) -> str:
    """`<checkpoint>/receivedBlockMetadata`: the ReceivedBlockTracker's event log."""
    return received_block_metadata_dir(checkpoint_dir)


class ReceiverTracker:
    """Run receivers and track their blocks for the driver.

    Args:
        clock: the driver's clock (block intervals, restart delays, WAL record times).
        config: receiver settings (see `ReceiverConfig`).
        checkpoint_dir: fsspec URL of the checkpoint directory; None keeps block metadata in memory and
            forbids the receiver WAL.
        storage_options: fsspec options for `checkpoint_dir`.
        events: lifecycle event sink (the listener bus adapter).
        recover: rebuild the block tracker from the metadata WAL (restart from a checkpoint).
        receiver_wal_wrapper: a seam for fault injection: `(stream_id, log) -> log` wraps the receiver
            WAL that blocks are written through (e.g. one whose write times out and commits later).
        executor: the environment of the executor the receivers run on (its received blocks and open
            receiver WALs); default: a private one that lives as long as the tracker.
        backpressure: with `enabled`, receivers start at `initial_rate_per_s` (capped by maxRate).
        fence: called before and after each stored block is recorded; raising (this driver lost its
            checkpoint directory's lease) means the block is not reported stored, so it is never
            acknowledged (see `record_block`).
        launcher: runs the receivers elsewhere (the Dask backend's workers); None runs each on a thread
            of this process.
        on_given_up: called with the stream id, the message and the last error when a receiver is given
            up (the streaming context fails the application with it).
    """

    def __init__(
        self,
        clock: Clock,
        config: ReceiverConfig | None = None,
        checkpoint_dir: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        events: ReceiverEvents | None = None,
        recover: bool = False,
        receiver_wal_wrapper: Callable[[int, WriteAheadLog], EventLog] | None = None,
        executor: ExecutorEnv | None = None,
        backpressure: BackpressureConfig | None = None,
        fence: Callable[[], None] | None = None,
        launcher: ReceiverLauncher | None = None,
        on_given_up: Callable[[int, str, BaseException | None], None] | None = None,
    ) -> None:
        self.clock = clock
        self._on_given_up = on_given_up
        self._fence = fence
        self.executor = executor if executor is not None else ExecutorEnv("receiver-tracker")
        self.blocks: ReceivedBlocks = received_blocks(self.executor)
        self._wal_registry: ReceiverWALs = receiver_wals(self.executor)
        self.config = config or ReceiverConfig()
        if self.config.wal_enabled and checkpoint_dir is None:
            raise DStreamValueError("Cannot enable receiver write-ahead log without checkpoint directory set")
        self.checkpoint_dir = checkpoint_dir
        self.storage_options = dict(storage_options or {})
        self._events = events or NoEvents()
        self._receivers: dict[int, Receiver] = {}
        self._supervisors: dict[int, SupervisorHandle] = {}
        self._recovered_streams: set[int] = set()  # a supervisor rebuilt the receiver's state, this process
        self._threads: list[threading.Thread] = []
        self._wals: dict[int, WriteAheadLog] = {}
        self._wal_wrapper = receiver_wal_wrapper
        self._block_logs: dict[int, EventLog] = {}  # what block writes go through (wrapped or not)
        self._stopping = threading.Event()
        self._started = False
        self._budgets: dict[int, RecordBudget] = {}
        bp = backpressure or BackpressureConfig()
        self._estimates: dict[int, float | None] = {}
        self._initial_estimate = bp.initial_rate_per_s if bp.enabled else None
        self._metadata_log = (
            self._open(metadata_wal_url(checkpoint_dir), batched=True) if checkpoint_dir else None
        )
        self.block_tracker = ReceivedBlockTracker(clock, (), self._metadata_log, recover=recover)
        self._launcher = launcher
        if launcher is not None:
            launcher.bind(self)

    @property
    def launcher(self) -> ReceiverLauncher | None:
        """What runs the receivers elsewhere (None: threads of this process)."""
        return self._launcher

    @property
    def events(self) -> ReceiverEvents:
        """Where receiver lifecycle events go (the listener bus adapter)."""
        return self._events

    def budget(self, stream_id: int) -> RecordBudget:
        """The bound on stream `stream_id`'s records stored and not yet allocated."""
        return self._budgets[stream_id]

    def tracker_view(self, stream_id: int) -> tuple[set[str], int]:
        """What a starting supervisor's recovery needs: the known block ids and the stream's cleaned bound."""
        return self.block_tracker.known_block_ids(), self.block_tracker.cleaned_written_max_ms(stream_id)

    def _open(self, url: str, batched: bool) -> WriteAheadLog:
        return open_receiver_log(url, self.config, self.storage_options, batched)

    def add_receiver(self, stream_id: int, receiver: Receiver) -> None:
        """Register a receiver for input stream `stream_id`; before `start` only."""
        if self._started:
            raise DStreamStateError(f"cannot add receiver for stream {stream_id} after the tracker started")
        if stream_id in self._receivers:
            raise DStreamValueError(f"stream {stream_id} already has a receiver")
        if not isinstance(receiver, Receiver):
            raise TypeError(f"expected a dstream.Receiver, got {receiver!r}")
        self._receivers[stream_id] = receiver
        self._budgets[stream_id] = RecordBudget(self.config.unallocated_records_max)
        self._estimates[stream_id] = self._initial_estimate

    def rate_limit(self, stream_id: int) -> float | None:
        """The records-per-second limit stream `stream_id`'s receiver applies now (None: none)."""
        return effective_rate(self.config.max_rate_per_s, self._estimates.get(stream_id))

    def update_rate_limit(self, stream_id: int, records_per_s: float) -> None:
        """Set a stream's estimated rate (backpressure); its receiver applies it capped by maxRate."""
        check_rate("records_per_s", records_per_s)
        if stream_id not in self._receivers:
            raise DStreamValueError(f"no receiver for stream {stream_id}; known: {sorted(self._receivers)}")
        self._estimates[stream_id] = records_per_s
        supervisor = self._supervisors.get(stream_id)
        if supervisor is not None:
            supervisor.set_rate_limit(self.rate_limit(stream_id))

    def start(self) -> None:
        """Start every registered receiver on its own thread."""
        if self._started:
            raise DStreamStateError("ReceiverTracker.start() called twice")
        self._started = True
        for stream_id, receiver in sorted(self._receivers.items()):
            thread = threading.Thread(
                target=self._run, args=(stream_id, receiver), name=f"receiver-{stream_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, stream_id: int, receiver: Receiver) -> None:
        failures = 0
        delay_ms = self.config.restart_delay_ms
        error: BaseException | None
        while not self._stopping.is_set():
            try:
                supervisor = self._new_supervisor_retrying(stream_id, receiver)
            except Exception as exc:  # opening the receiver WAL failed: a failed start, retried
                message, error = f"error starting receiver {stream_id}: {exc}", exc
            else:
                try:
                    supervisor.start()
                except Exception as exc:  # recovery or WAL trouble: like a failed onStart
                    supervisor.stop(f"error starting receiver {stream_id}: {exc}", exc)
                while not supervisor.await_termination(0.1) and not self._stopping.is_set():
                    pass
                if self._stopping.is_set():
                    supervisor.stop("stopped by ReceiverTracker")
                    return
                message = supervisor.stop_message or f"receiver {stream_id} stopped"
                error = supervisor.error
                if supervisor.started_once:  # it listened again: a later failure starts the back-off anew
                    failures, delay_ms = 0, self.config.restart_delay_ms
            failures += 1
            if failures > self.config.restarts_max:
                given_up = f"giving up receiver {stream_id} after {failures} failed starts; last: {message}"
                self._events.on_receiver_error(stream_id, given_up, error)
                if self._on_given_up is not None:
                    self._on_given_up(stream_id, given_up, error)
                return
            wake_ms = self.clock.time_ms() + delay_ms  # fixed before anyone hears of the failure
            self._events.on_receiver_error(stream_id, f"restarting in {delay_ms} ms: {message}", error)
            self.clock.wait_until(wake_ms, self._stopping)
            delay_ms = min(delay_ms * 2, self.config.restart_delay_max_ms)

    def _new_supervisor_retrying(self, stream_id: int, receiver: Receiver) -> SupervisorHandle:
        """`_new_supervisor` (or the launcher's handle), whose first opening of the receiver WAL (it
        reads the log's tail) retries transient storage errors like the supervisor's recovery read
        (`RECOVERY_READ_ATTEMPTS_MAX`)."""
        if self._launcher is not None:  # the worker opens the receiver WAL and retries its own reads
            handle = self._supervisors[stream_id] = self._launcher.launch(stream_id, receiver)
            return handle
        pause_ms = RECOVERY_READ_BACKOFF_MS
        for attempt in range(1, RECOVERY_READ_ATTEMPTS_MAX + 1):
            try:
                return self._new_supervisor(stream_id, receiver)
            except OSError as exc:
                last = attempt == RECOVERY_READ_ATTEMPTS_MAX
                if not is_transient(exc) or last or self._stopping.is_set():
                    raise
                self._events.on_receiver_error(
                    stream_id,
                    f"opening the receiver WAL of stream {stream_id} failed (attempt {attempt} of "
                    f"{RECOVERY_READ_ATTEMPTS_MAX}), retrying in {pause_ms} ms: {exc}",
                    exc,
                )
                self.clock.wait_until(self.clock.time_ms() + pause_ms, self._stopping)
                pause_ms *= 2
        raise AssertionError("unreachable")

    def record_block(self, info: ReceivedBlockInfo) -> None:
        """Record a stored block with the block tracker, fenced on both sides: a driver that lost its
        lease records nothing new, and a record written while it was being fenced (a pause between
        the check and the write) is not reported as stored, so its receiver acknowledges nothing that
        the successor driver would not see."""
        if self._fence is not None:
            self._fence()
        self.block_tracker.add_block(info)
        if self._fence is not None:
            self._fence()

    def _new_supervisor(self, stream_id: int, receiver: Receiver) -> ReceiverSupervisor:
        supervisor = ReceiverSupervisor(
            receiver,
            stream_id,
            self._handler(stream_id, receiver),
            self.record_block,
            self.clock,
            self.config,
            self._events,
            tracker_view=lambda: self.tracker_view(stream_id),
            budget=self._budgets[stream_id],
            rate_per_s=self.rate_limit(stream_id),
        )
        self._supervisors[stream_id] = supervisor
        return supervisor

    def _handler(self, stream_id: int, receiver: Receiver) -> BlockHandler:
        if not self.config.wal_enabled:
            return BlockStoreHandler(receiver.storageLevel, self.blocks)
        log = self._block_logs.get(stream_id)
        if log is None:
            log = self.receiver_wal(stream_id)
            if self._wal_wrapper is not None:
                log = self._wal_wrapper(stream_id, log)
            self._block_logs[stream_id] = log
        return WriteAheadLogHandler(log, stream_id, self.clock, receiver.storageLevel, blocks=self.blocks)

    def receiver_wal(self, stream_id: int) -> WriteAheadLog:
        """The receiver WAL of a stream, opened once and registered for block readers in this process."""
        log = self._wals.get(stream_id)
        if log is None:
            assert self.checkpoint_dir is not None
            url = receiver_wal_url(self.checkpoint_dir, stream_id)
            log = self._wals[stream_id] = self._open(url, batched=self.config.wal_batched)
            self._wal_registry.register(url, log)
        return log

    def wal_location(self, stream_id: int) -> tuple[str, dict[str, Any]] | None:
        """Where block RDD tasks find the receiver WAL of a stream, or None without the WAL."""
        if not self.config.wal_enabled or self.checkpoint_dir is None:
            return None
        return receiver_wal_url(self.checkpoint_dir, stream_id), dict(self.storage_options)

    def supervisor(self, stream_id: int) -> ReceiverSupervisor | None:
        """The stream's supervisor when it runs in this process (None on a worker, or before a start)."""
        found = self._supervisors.get(stream_id)
        return found if isinstance(found, ReceiverSupervisor) else None

    def handle(self, stream_id: int) -> SupervisorHandle | None:
        """The stream's current supervisor or handle on a worker (None before its first start)."""
        return self._supervisors.get(stream_id)

    # -- driver-side block tracking ---------------------------------------------------------------
    def allocate_blocks_to_batch(self, time_ms: int) -> None:
        """Allocate, then give the allocated blocks' records back to their streams' budgets."""
        self.block_tracker.allocate_blocks_to_batch(time_ms)
        for stream_id, infos in self.block_tracker.get_blocks_of_batch(time_ms).items():
            budget = self._budgets.get(stream_id)
            if budget is not None:
                budget.release([info.block_id for info in infos])

    def get_blocks_of_batch_and_stream(self, time_ms: int, stream_id: int) -> tuple[ReceivedBlockInfo, ...]:
        return self.block_tracker.get_blocks_of_batch_and_stream(time_ms, stream_id)

    def records_of_batch(self, time_ms: int) -> dict[int, int]:
        """Records allocated to batch `time_ms` per stream (0 for a stream that got no block)."""
        counts = dict.fromkeys(self._receivers, 0)
        for stream_id, infos in self.block_tracker.get_blocks_of_batch(time_ms).items():
            counts[stream_id] = sum(i.num_records or 0 for i in infos)
        return counts

    def cleanup_old_blocks_and_batches(self, threshold_ms: int, wait: bool = False) -> None:
        """Forget batches before the threshold, drop their in-memory blocks, clean the WALs before it.

        Driven from outside: the checkpoint layer calls it once a checkpoint no longer needs them.
        First each receiver's `recovery_state` snapshot goes to its receiver WAL (stamped now, so it lands
        in a segment this cleanup keeps): the metadata of the blocks about to be forgotten is then no
        longer needed to rebuild the receiver's acknowledgement state. It is written before the tracker's
        cleanup event, because from that event on recovery ignores the cleaned blocks' metadata.

        With the receiver WAL on, nothing is cleaned until every receiver has rebuilt its state from its
        WAL in this process: before that a restored receiver holds the state pickled in the last
        checkpoint, which misses what it acknowledged since, and a snapshot of it followed by the
        cleanup would lose the truth (the producer would be told a durable seq short of its acks).

        Raises:
            DStreamStateError: a receiver has not recovered yet; nothing was written or cleaned (the
                caller retries at its next cleanup).
        """
        unrecovered = self._unrecovered_streams()
        if unrecovered:
            raise CleanupDeferredError(
                f"cleanup before {threshold_ms} ms deferred: the receivers of streams {unrecovered} have "
                "not rebuilt their state from the receiver WAL yet"
            )
        if not self._write_recovery_states():
            raise CleanupDeferredError(
                f"cleanup before {threshold_ms} ms deferred: a receiver on a worker is not running (moving "
                "or rebuilding its state), so its snapshot could not be written"
            )
        with_blocks = [self.block_tracker.get_blocks_of_batch(t) for t in self._times_before(threshold_ms)]
        self.block_tracker.cleanup_old_batches(threshold_ms, wait=wait)
        ids = [info.block_id for batch in with_blocks for infos in batch.values() for info in infos]
        if self._launcher is not None:
            self._launcher.remove_blocks(ids)
            if self.config.wal_enabled:
                for stream_id in sorted(self._receivers):
                    self._launcher.clean_wal(stream_id, threshold_ms)
            return
        for block_id in ids:
            self.blocks.remove(block_id)
        for stream_id in list(self._wals):
            self._wals[stream_id].clean(threshold_ms, wait=wait)

    def _unrecovered_streams(self) -> list[int]:
        """Streams with a receiver WAL whose receiver (on a driver thread) has not rebuilt its state in
        this process yet. A receiver on a worker answers for itself in `_write_recovery_states`."""
        if not self.config.wal_enabled or self._launcher is not None:
            return []
        for stream_id, supervisor in list(self._supervisors.items()):
            if isinstance(supervisor, ReceiverSupervisor) and supervisor.recovered:
                self._recovered_streams.add(stream_id)
        return sorted(set(self._receivers) - self._recovered_streams)

    def _write_recovery_states(self) -> bool:
        """Write each receiver's snapshot; False if one on a worker could not write it now (not running,
        or not yet rebuilt from its WAL).

        Without that snapshot the cleanup would forget the metadata the receiver's acknowledgement state
        is rebuilt from, so the cleanup waits instead.
        """
        if self._launcher is not None:
            if not self.config.wal_enabled:
                return True
            written = [self._launcher.write_recovery_state(s) for s in sorted(self._receivers)]
            return all(written)
        for stream_id, log in list(self._wals.items()):
            state = self._receivers[stream_id].recovery_state() if stream_id in self._receivers else None
            if state is not None:
                now = self.clock.time_ms()
                log.write(encode_state_record(StateRecord(stream_id, now, state)), now)
        return True

    def _times_before(self, threshold_ms: int) -> list[int]:
        return [t for t in self.block_tracker.allocated_times() if t < threshold_ms]

    def has_unallocated_received_blocks(self) -> bool:
        return self.block_tracker.has_unallocated_received_blocks()

    def stop(self, timeout_s: float = JOIN_TIMEOUT_S, close_metadata_log: bool = True) -> None:
        """Stop every receiver (flushing their buffered records) and close the receiver WALs.

        Args:
            timeout_s: bound on waiting for each receiver thread.
            close_metadata_log: also close the tracker's metadata WAL. A streaming context keeps it open
                so that batches generated after the receivers stopped (graceful stop) can still be
                allocated, and closes it with `close()`.
        """
        self._stopping.set()
        for supervisor in list(self._supervisors.values()):
            supervisor.stop("stopped by ReceiverTracker")
        for thread in self._threads:
            thread.join(timeout_s)
        if self._launcher is not None:
            self._launcher.close()
        for stream_id, log in self._wals.items():
            self._wal_registry.unregister(receiver_wal_url(self.checkpoint_dir or "", stream_id), log)
            log.close()
        self._wals.clear()
        self._block_logs.clear()
        if close_metadata_log:
            self.close()

    def stop_receivers(self) -> None:
        """Stop the receivers but keep the metadata WAL open: a graceful stop still allocates batches."""
        self.stop(close_metadata_log=False)

    def close(self) -> None:
        """Close the metadata WAL (idempotent).

        The executor's received blocks stay readable: they belong to the executor (closed with the
        Context's backend), or to a private one that lives as long as this tracker.
        """
        if self._metadata_log is not None:
            self._metadata_log.close()
