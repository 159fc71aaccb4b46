"""StreamingContext: PySpark's entry point for streaming, the API facade over one StreamingRuntime.

It is the top layer of the engine: it builds the runtime (graph, job generator, job scheduler,
listener bus), and at start plugs in the checkpoint coordinator and the receivers' tracker, which the
core only knows as protocols (dstream.streaming.runtime; docs/architecture.md).

Lifecycle INITIALIZED -> ACTIVE -> STOPPED, one active context per process (like Spark). Errors from
jobs or job generation are kept by a waiter and re-raised from awaitTermination as JobFailedError,
whose message holds the original one and whose __cause__ is the original exception.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from checkpoint.location import absolute_url
from dstream.clock import Clock, ManualClock, SystemClock
from dstream.config import StreamingConfig
from dstream.errors import DStreamStateError, DStreamValueError, JobFailedError
from dstream.rdd.storage import StorageLevel
from dstream.receiver.input_stream import (
    PushInputDStream,
    ReceiverInputDStream,
    new_receiver_tracker,
    push_stream,
    receiver_stream,
)
from dstream.recovery.coordinator import CheckpointCoordinator
from dstream.recovery.fingerprints import setup_fingerprint
from dstream.recovery.quarantine import CheckpointQuarantiner
from dstream.recovery.restore import RecoveredState, recover
from dstream.streaming.dstream import DStream, MultiTransformedDStream, UnionDStream
from dstream.streaming.duration import seconds_to_ms
from dstream.streaming.file_input import FileInputDStream, binary_records_reader, read_text_lines
from dstream.streaming.graph import DStreamGraph
from dstream.streaming.inputs import QueueInputDStream
from dstream.streaming.job_generator import JobGenerator
from dstream.streaming.job_scheduler import JobScheduler
from dstream.streaming.listener import StreamingListenerBlockRecovered, StreamingListenerStreamingStarted
from dstream.streaming.rate_controller import RateController
from dstream.streaming.runtime import ACTIVE, STOPPED, CheckpointLocation, StreamingRuntime
from dstream.streaming.shutdown import install_sigterm_stop
from dstream.streaming.socket import SocketInputDStream

log = logging.getLogger(__name__)

# Non-graceful stop waits this long for the running job; graceful stop waits up to this many batches.
STOP_RUNNING_JOB_TIMEOUT_S = 2.0
GRACEFUL_STOP_TIMEOUT_BATCHES = 10
GRACEFUL_STOP_TIMEOUT_MIN_S = 10.0


class _ContextWaiter:
    """Lets awaitTermination wait for a stop or an error; keeps the latest error (as Spark does)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._error: tuple[str, BaseException] | None = None
        self._stopped = False

    def notify_error(self, message: str, error: BaseException) -> None:
        with self._cond:
            self._error = (message, error)
            self._cond.notify_all()

    def notify_stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def wait(self, timeout_s: float | None) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self._stopped or self._error is not None, timeout=timeout_s)
            if self._error is not None:
                message, error = self._error
                raise JobFailedError(f"{message}: {type(error).__name__}: {error}") from error
            return self._stopped


class StreamingContext:
    """The entry point of a streaming application (pyspark.streaming.StreamingContext).

    It owns one `StreamingRuntime` (graph, job generator, job scheduler, listener bus, receiver
    tracker, checkpoint coordinator) and is the only code that changes it.

    Args:
        sparkContext: the engine's Context.
        batchDuration: the batch interval in seconds.
        clock: the clock that drives batches (default: SystemClock, or a ManualClock when the
            conf `spark.streaming.clock` says "manual"); tests pass a ManualClock.
    """

    _activeContext: ClassVar[StreamingContext | None] = None
    _activation_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        sparkContext: Any,
        batchDuration: float | None = None,
        *,
        clock: Clock | None = None,
        _recovered: RecoveredState | None = None,
    ):
        if batchDuration is None:
            raise DStreamValueError("batchDuration (seconds) is required to create a StreamingContext")
        if clock is None:
            engine = getattr(sparkContext, "engine_config", None)
            clock = ManualClock() if engine is not None and engine.manual_clock else SystemClock()
        batch_ms = seconds_to_ms(batchDuration, "batchDuration")
        graph = _recovered.graph if _recovered is not None else DStreamGraph(batch_ms)
        self._sc = sparkContext
        self._recovered = _recovered
        self._waiter = _ContextWaiter()
        self._remove_sigterm_stop: Callable[[], None] = lambda: None
        runtime = StreamingRuntime(sparkContext, clock, batch_ms, graph)
        runtime.scheduler = JobScheduler(clock, runtime.bus, self._waiter.notify_error, self._on_batch_done)
        runtime.generator = JobGenerator(graph, runtime.scheduler, clock, batch_ms)
        self.runtime = runtime
        if _recovered is not None:
            runtime.setup_fingerprint = _recovered.setup_fingerprint
            graph.set_context(self)

    def _on_batch_done(self, time_ms: int) -> None:
        self.runtime.generator.on_batch_completion(time_ms)

    def _on_block_recovered(self, recovery: Any) -> None:
        # The engine (rdd layer) reports lost blocks through a callback; the bus makes them events.
        self.runtime.bus.post(StreamingListenerBlockRecovered(recovery.block, recovery.how, recovery.detail))

    def _block_recovery_listening(self, on: bool) -> None:
        name = "add_block_recovery_listener" if on else "remove_block_recovery_listener"
        method = getattr(self._sc, name, None)  # a test's stand-in Context may have none
        if method is not None:
            method(self._on_block_recovered)

    # -- properties ------------------------------------------------------------------------------------

    @property
    def sparkContext(self) -> Any:
        """The engine Context this streaming context runs on."""
        return self._sc

    @property
    def clock(self) -> Clock:
        """The clock that drives batch times."""
        return self.runtime.clock

    @property
    def recovered(self) -> RecoveredState | None:
        """What getOrCreate restored this context from (None for a context its setup function built)."""
        return self._recovered

    @property
    def graph(self) -> DStreamGraph:
        """The DStreamGraph (pickled into metadata checkpoints)."""
        return self.runtime.graph

    # -- configuration -------------------------------------------------------------------------------

    def remember(self, duration: float) -> None:
        """Keep every stream's RDDs for at least `duration` seconds (e.g. for slice)."""
        self.runtime.graph.remember(seconds_to_ms(duration, "remember duration"))

    def checkpoint(self, directory: str, **storage_options: Any) -> None:
        """Set the checkpoint directory (any fsspec URL; `storage_options` go to fsspec)."""
        if not isinstance(directory, str) or not directory:
            raise DStreamValueError(f"checkpoint directory must be a non-empty URL string, got {directory!r}")
        # Absolutized once, here: what is stored must not depend on the working directory.
        location = CheckpointLocation(absolute_url(directory).rstrip("/"), dict(storage_options))
        self.runtime.checkpoint = location
        # Like Spark, user code calling rdd.checkpoint() inside transforms writes under the same directory.
        set_dir = getattr(self._sc, "setCheckpointDir", None)
        if set_dir is not None:
            set_dir(location.url, dict(storage_options))

    def addStreamingListener(self, streamingListener: Any) -> None:
        """Register a StreamingListener; its callbacks run on the listener bus thread."""
        self.runtime.bus.add_listener(streamingListener)

    # -- inputs --------------------------------------------------------------------------------------

    def queueStream(self, rdds: Any, oneAtATime: bool = True, default: Any = None) -> QueueInputDStream:
        """A stream of the given RDDs or lists: one per batch (or all in the first batch)."""
        return QueueInputDStream(self, list(rdds), oneAtATime, default)

    def textFileStream(self, directory: str, **storage_options: Any) -> FileInputDStream:
        """Lines of the files that appear in `directory` (an fsspec URL) after the context was created."""
        return FileInputDStream(self, directory, read_text_lines, storage_options)

    def binaryRecordsStream(
        self, directory: str, recordLength: int, **storage_options: Any
    ) -> FileInputDStream:
        """Fixed-length byte records of the new files in `directory`."""
        return FileInputDStream(self, directory, binary_records_reader(recordLength), storage_options)

    def socketTextStream(
        self, hostname: str, port: int, storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2
    ) -> SocketInputDStream:
        """Lines read from a TCP server by a receiver (Spark's SocketReceiver; the server is never acked).

        The receiver settings apply: `storageLevel`, the receiver WAL conf, maxRate and backpressure.
        """
        return SocketInputDStream(self, hostname, port, storageLevel)

    def receiverStream(self, receiver: Any) -> ReceiverInputDStream:
        """A stream of what a user `dstream.Receiver` stores (Spark's receiverStream)."""
        return receiver_stream(self, receiver)

    def pushStream(self, host: str = "127.0.0.1", port: int = 0, **receiver_options: Any) -> PushInputDStream:
        """Records pushed by `dstream.client.PushClient`s, acknowledged once durable; `.port` is bound.

        Exactly-once into the stream needs the receiver WAL
        (`spark.streaming.receiver.writeAheadLog.enable=true`) and a checkpoint directory.
        """
        return push_stream(self, host, port, **receiver_options)

    def union(self, *dstreams: DStream[Any]) -> DStream[Any]:
        """The union of several streams with the same slide duration."""
        if not dstreams:
            raise DStreamValueError("should have at least one DStream to union")
        if len(dstreams) == 1:
            return dstreams[0]
        return UnionDStream(self, list(dstreams))

    def transform(self, dstreams: Any, transformFunc: Any) -> DStream[Any]:
        """A stream whose batch is transformFunc(tuple of the streams' RDDs)."""
        return MultiTransformedDStream(self, list(dstreams), transformFunc)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start generating and running batches."""
        runtime = self.runtime
        with StreamingContext._activation_lock, runtime.state_lock:
            if runtime.state == ACTIVE:
                raise DStreamStateError("StreamingContext has already been started")
            if runtime.state == STOPPED:
                raise DStreamStateError("StreamingContext has already been stopped")
            active = StreamingContext._activeContext
            if active is not None and active is not self:
                raise DStreamStateError("Only one StreamingContext may be started in this process")
            try:
                self._start_components()
            except Exception:
                # As in Spark, a context that failed to start is stopped (it cannot be started again).
                runtime.state = STOPPED
                self._stop_inputs()
                self._close_receivers()
                if runtime.checkpointer is not None:
                    runtime.checkpointer.stop()
                raise
            runtime.bus.start()
            runtime.scheduler.start()
            runtime.state = ACTIVE
            StreamingContext._activeContext = self
            if runtime.config.lifecycle.stop_gracefully_on_shutdown:
                self._remove_sigterm_stop = install_sigterm_stop(lambda: self.stop(True, stopGraceFully=True))
        runtime.bus.post(StreamingListenerStreamingStarted(runtime.clock.time_ms()))

    def _start_components(self) -> None:
        """Checkpointing, the receiver tracker (replaying its log), the generator (with a checkpoint
        directory and no recovered state: the initial metadata checkpoint, durable), then the receivers."""
        runtime, recovered = self.runtime, self._recovered
        self._block_recovery_listening(True)
        get_conf = getattr(self._sc, "getConf", None)
        runtime.config = StreamingConfig.from_conf(dict(get_conf().getAll()) if get_conf is not None else {})
        runtime.scheduler.pending_batches_max = runtime.config.scheduler.pending_batches_max
        runtime.generator.generator_events_max = runtime.config.scheduler.generator_events_max
        runtime.scheduler.failed_batch_policy = runtime.config.scheduler.failed_batch_policy
        runtime.scheduler.failed_batch_attempts_max = runtime.config.scheduler.failed_batch_attempts_max
        coordinator: CheckpointCoordinator | None = None
        if runtime.checkpoint is not None:
            runtime.scheduler.quarantiner = CheckpointQuarantiner(runtime.checkpoint, lambda: runtime.fence())
            coordinator = CheckpointCoordinator(runtime)
            coordinator.rdds.restore(list(recovered.data_checkpoints) if recovered is not None else [])
            coordinator.start()
            runtime.checkpointer = coordinator
            runtime.generator.checkpoint_hook = coordinator.checkpoint_hook
        receiver_streams = [s for s in runtime.graph.input_streams if isinstance(s, ReceiverInputDStream)]
        if receiver_streams:
            tracker = new_receiver_tracker(runtime, receiver_streams)
            runtime.block_allocator = tracker
            runtime.generator.block_allocator = tracker
            if runtime.config.backpressure.enabled:
                ids = [s._id for s in receiver_streams]
                bp = RateController.from_config(tracker, ids, runtime.batch_ms, runtime.config.backpressure)
                runtime.bus.add_listener(bp)
        if recovered is not None:
            runtime.generator.restart(recovered.checkpoint_ms, recovered.pending_ms)
        else:
            # A fresh context with a checkpoint directory publishes its initial checkpoint before any
            # receiver starts: a driver killed before its first batch's checkpoint then recovers (and
            # replays what its receivers acknowledged) instead of starting anew.
            runtime.generator.start(coordinator.write_initial_checkpoint if coordinator is not None else None)
        # After the graph validated (in the generator's start); the first tick is a batch away.
        if runtime.block_allocator is not None:
            runtime.block_allocator.start()

    def _stop_inputs(self) -> None:
        self.runtime.graph.stop()
        if self.runtime.block_allocator is not None:
            self.runtime.block_allocator.stop_receivers()

    def _close_receivers(self) -> None:
        if self.runtime.block_allocator is not None:
            self.runtime.block_allocator.close()

    def wait_for_checkpoint(self, time_ms: int, timeout_s: float) -> bool:
        """Wait until the checkpoint written after batch `time_ms` (or a later one) completed is durable.

        False on timeout or when checkpointing is off. Tests use it before stopping a driver.
        """
        if self.runtime.checkpointer is None:
            return False
        return self.runtime.checkpointer.wait_for_checkpoint(time_ms, timeout_s)

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop; with stopGraceFully, batches already generated are run first. Stopping twice is harmless."""
        runtime = self.runtime
        self._remove_sigterm_stop()
        with runtime.state_lock:
            state, runtime.state = runtime.state, STOPPED
        if state == ACTIVE:
            timeout_s = max(
                GRACEFUL_STOP_TIMEOUT_MIN_S, GRACEFUL_STOP_TIMEOUT_BATCHES * runtime.batch_ms / 1000
            )
            if stopGraceFully:
                self._stop_inputs()
            runtime.generator.stop(graceful=stopGraceFully, timeout_s=timeout_s)
            runtime.scheduler.stop(graceful=stopGraceFully, timeout_s=timeout_s)
            if not stopGraceFully:
                self._stop_inputs()
            self._close_receivers()
            if runtime.checkpointer is not None:
                try:
                    runtime.checkpointer.stop()
                except Exception:
                    log.exception("stopping the checkpoint writer failed")
            runtime.bus.stop()
        self._block_recovery_listening(False)
        with StreamingContext._activation_lock:
            if StreamingContext._activeContext is self:
                StreamingContext._activeContext = None
        self._waiter.notify_stop()
        if stopSparkContext and state != STOPPED:
            self._sc.stop()

    def awaitTermination(self, timeout: float | None = None) -> None:
        """Wait for stop() or a job error (re-raised as JobFailedError); `timeout` in seconds."""
        self._waiter.wait(timeout)

    def awaitTerminationOrTimeout(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True if stopped, False on timeout; re-raises job errors."""
        return self._waiter.wait(timeout)

    def wait_for_batch(self, time_ms: int, timeout_s: float) -> bool:
        """Wait until the batch at `time_ms` has been processed (its jobs ran); False on timeout."""
        return self.runtime.scheduler.wait_for_batch(time_ms, timeout_s)

    def pending_batch_times(self) -> list[int]:
        """Batches submitted and not successfully completed (for metadata checkpoints)."""
        return self.runtime.scheduler.pending_times()

    # -- class methods -------------------------------------------------------------------------------

    @classmethod
    def getActive(cls) -> StreamingContext | None:
        """The started and not yet stopped context, if any."""
        return cls._activeContext

    @classmethod
    def getOrCreate(
        cls,
        checkpointPath: str,
        setupFunc: Callable[[], StreamingContext],
        *,
        clock: Clock | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> StreamingContext:
        """Recover from `checkpointPath` if it holds a checkpoint (setupFunc is not called), else
        setupFunc() with the checkpoint directory set.

        A checkpoint written by a different setup function (changed code) raises
        CheckpointMismatchError naming what changed. `clock` drives the recovered context (tests);
        `storage_options` go to fsspec for the checkpoint directory.
        """
        options = dict(storage_options or {})
        if not isinstance(checkpointPath, str) or not checkpointPath:
            raise DStreamValueError(f"checkpointPath must be a non-empty URL string, got {checkpointPath!r}")
        checkpointPath = absolute_url(checkpointPath).rstrip("/")
        recovered = recover(checkpointPath, setupFunc, storage_options=options)
        if recovered is not None:
            ssc = cls(recovered.sc, recovered.graph.batch_ms / 1000, clock=clock, _recovered=recovered)
            ssc.checkpoint(checkpointPath, **options)
            return ssc
        ssc = setupFunc()
        location = ssc.runtime.checkpoint
        if options or location is None or location.url != checkpointPath:
            ssc.checkpoint(checkpointPath, **options)
        ssc.runtime.setup_fingerprint = setup_fingerprint(setupFunc).to_json()
        return ssc

    @classmethod
    def getActiveOrCreate(
        cls, checkpointPath: str | None, setupFunc: Callable[[], StreamingContext]
    ) -> StreamingContext:
        """The active context, else getOrCreate(checkpointPath, setupFunc), else setupFunc()."""
        if setupFunc is None:
            raise DStreamValueError("setupFunc cannot be None")
        active = cls.getActive()
        if active is not None:
            return active
        if checkpointPath is not None:
            return cls.getOrCreate(checkpointPath, setupFunc)
        return setupFunc()
