"""StreamingContext: PySpark's entry point for streaming, wired to the graph, generator and scheduler.

Lifecycle INITIALIZED -> ACTIVE -> STOPPED, one active context per process (like Spark). Errors from
jobs or job generation are kept by a waiter and re-raised from awaitTermination as JobFailedError,
whose message holds the original one and whose __cause__ is the original exception.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

from dstream.clock import Clock, ManualClock, SystemClock
from dstream.errors import DStreamStateError, DStreamValueError, JobFailedError
from dstream.streaming.duration import seconds_to_ms
from dstream.streaming.graph import DStreamGraph
from dstream.streaming.job_generator import JobGenerator
from dstream.streaming.job_scheduler import JobScheduler
from dstream.streaming.listener import StreamingListenerBus, StreamingListenerStreamingStarted

log = logging.getLogger(__name__)

INITIALIZED, ACTIVE, STOPPED = "INITIALIZED", "ACTIVE", "STOPPED"
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


def _clock_from_conf(sc: Any) -> Clock:
    get_conf = getattr(sc, "getConf", None)
    name = None
    if get_conf is not None:
        try:
            name = get_conf().get("spark.streaming.clock")
        except Exception:
            name = None
    if name and ("manual" in str(name).lower()):
        return ManualClock()
    return SystemClock()


class StreamingContext:
    """The entry point of a streaming application (pyspark.streaming.StreamingContext).

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
        _graph: DStreamGraph | None = None,
    ):
        if batchDuration is None:
            raise DStreamValueError("batchDuration (seconds) is required to create a StreamingContext")
        self._sc = sparkContext
        self._batch_ms = seconds_to_ms(batchDuration, "batchDuration")
        self._clock = clock if clock is not None else _clock_from_conf(sparkContext)
        self._state = INITIALIZED
        self._state_lock = threading.RLock()
        self._graph = _graph if _graph is not None else DStreamGraph(self._batch_ms)
        self._checkpoint_dir: str | None = None
        # Set by recovery (dstream.recovery.restore) and getOrCreate; used at start().
        self._recovery: Any = None
        self._restored_refs: list[Any] = []
        self._setup_fingerprint: dict[str, Any] | None = None
        self._checkpointer: Any = None
        self._checkpoint_storage_options: dict[str, Any] = {}
        self._waiter = _ContextWaiter()
        self._bus = StreamingListenerBus()
        self._scheduler = JobScheduler(self._clock, self._bus, self._waiter.notify_error, self._on_batch_done)
        self._generator = JobGenerator(self._graph, self._scheduler, self._clock, self._batch_ms)

    def _on_batch_done(self, time_ms: int) -> None:
        self._generator.on_batch_completion(time_ms)

    # -- properties ------------------------------------------------------------------------------------

    @property
    def sparkContext(self) -> Any:
        """The engine Context this streaming context runs on."""
        return self._sc

    @property
    def clock(self) -> Clock:
        """The clock that drives batch times."""
        return self._clock

    @property
    def graph(self) -> DStreamGraph:
        """The DStreamGraph (the checkpoint issue pickles it)."""
        return self._graph

    def _check_can_add_operation(self) -> None:
        if self._state == ACTIVE:
            raise DStreamStateError(
                "Adding new inputs, transformations, and output operations after starting a context is not "
                "supported"
            )
        if self._state == STOPPED:
            raise DStreamStateError(
                "Adding new inputs, transformations, and output operations after stopping a context is not "
                "supported"
            )

    # -- configuration -------------------------------------------------------------------------------

    def remember(self, duration: float) -> None:
        """Keep every stream's RDDs for at least `duration` seconds (e.g. for slice)."""
        self._graph.remember(seconds_to_ms(duration, "remember duration"))

    def checkpoint(self, directory: str, **storage_options: Any) -> None:
        """Set the checkpoint directory (any fsspec URL; `storage_options` go to fsspec)."""
        if not isinstance(directory, str) or not directory:
            raise DStreamValueError(f"checkpoint directory must be a non-empty URL string, got {directory!r}")
        self._checkpoint_dir = directory.rstrip("/")
        self._checkpoint_storage_options = dict(storage_options)
        # Like Spark, user code calling rdd.checkpoint() inside transforms writes under the same directory.
        set_dir = getattr(self._sc, "setCheckpointDir", None)
        if set_dir is not None:
            set_dir(self._checkpoint_dir, dict(storage_options))

    def _rdd_checkpoint_dir(self, stream_id: int, time_ms: int) -> str:
        """`<ckpt>/rdd/<stream-id>/<batch_ms>` (DESIGN.md section 5)."""
        if self._checkpoint_dir is None:
            from dstream.streaming.base import CHECKPOINT_DIR_MISSING

            raise DStreamValueError(CHECKPOINT_DIR_MISSING)
        return f"{self._checkpoint_dir}/rdd/{stream_id}/{time_ms}"

    def addStreamingListener(self, streamingListener: Any) -> None:
        """Register a StreamingListener; its callbacks run on the listener bus thread."""
        self._bus.add_listener(streamingListener)

    # -- inputs --------------------------------------------------------------------------------------

    def queueStream(self, rdds: Any, oneAtATime: bool = True, default: Any = None) -> Any:
        """A stream of the given RDDs or lists: one per batch (or all in the first batch)."""
        from dstream.streaming.inputs import QueueInputDStream

        return QueueInputDStream(self, list(rdds), oneAtATime, default)

    def textFileStream(self, directory: str, **storage_options: Any) -> Any:
        """Lines of the files that appear in `directory` (an fsspec URL) after the context was created."""
        from dstream.streaming.file_input import FileInputDStream, read_text_lines

        return FileInputDStream(self, directory, read_text_lines, storage_options)

    def binaryRecordsStream(self, directory: str, recordLength: int, **storage_options: Any) -> Any:
        """Fixed-length byte records of the new files in `directory`."""
        from dstream.streaming.file_input import FileInputDStream, binary_records_reader

        return FileInputDStream(self, directory, binary_records_reader(recordLength), storage_options)

    def socketTextStream(self, hostname: str, port: int, storageLevel: Any = None) -> Any:
        """Lines read from a TCP server (unreliable: lines received before a crash are lost)."""
        from dstream.streaming.socket import SocketInputDStream

        return SocketInputDStream(self, hostname, port)

    def receiverStream(self, receiver: Any) -> Any:
        """A stream of what a user `dstream.Receiver` stores (Spark's receiverStream)."""
        from dstream.receiver.input_stream import receiver_stream

        return receiver_stream(self, receiver)

    def pushStream(self, host: str = "127.0.0.1", port: int = 0, **receiver_options: Any) -> Any:
        """Records pushed by `dstream.client.PushClient`s, acknowledged once durable; `.port` is bound.

        Exactly-once into the stream needs the receiver WAL
        (`spark.streaming.receiver.writeAheadLog.enable=true`) and a checkpoint directory.
        """
        from dstream.receiver.input_stream import push_stream

        return push_stream(self, host, port, **receiver_options)

    def union(self, *dstreams: Any) -> Any:
        """The union of several streams with the same slide duration."""
        from dstream.streaming.dstream import UnionDStream

        if not dstreams:
            raise DStreamValueError("should have at least one DStream to union")
        if len(dstreams) == 1:
            return dstreams[0]
        return UnionDStream(self, list(dstreams))

    def transform(self, dstreams: Any, transformFunc: Any) -> Any:
        """A stream whose batch is transformFunc(tuple of the streams' RDDs)."""
        from dstream.streaming.dstream import MultiTransformedDStream

        return MultiTransformedDStream(self, list(dstreams), transformFunc)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start generating and running batches."""
        with StreamingContext._activation_lock, self._state_lock:
            if self._state == ACTIVE:
                raise DStreamStateError("StreamingContext has already been started")
            if self._state == STOPPED:
                raise DStreamStateError("StreamingContext has already been stopped")
            active = StreamingContext._activeContext
            if active is not None and active is not self:
                raise DStreamStateError("Only one StreamingContext may be started in this process")
            try:
                self._start_checkpointing()
                if self._recovery is not None:
                    info = self._recovery
                    self._generator.restart(info.checkpoint_ms, info.pending_ms)
                else:
                    self._generator.start()
            except Exception:
                # As in Spark, a context that failed to start is stopped (it cannot be started again).
                self._state = STOPPED
                self._graph.stop()
                if self._checkpointer is not None:
                    self._checkpointer.stop()
                raise
            self._bus.start()
            self._scheduler.start()
            self._state = ACTIVE
            StreamingContext._activeContext = self
        self._bus.post(StreamingListenerStreamingStarted(self._clock.time_ms()))

    def _start_checkpointing(self) -> None:
        if self._checkpoint_dir is None:
            return
        from dstream.recovery.coordinator import CheckpointCoordinator

        coordinator = CheckpointCoordinator(self, setup_fingerprint=self._setup_fingerprint)
        coordinator.rdds.restore(self._restored_refs)
        coordinator.start()
        self._checkpointer = coordinator
        self._generator.checkpoint_hook = coordinator.checkpoint_hook

    def wait_for_checkpoint(self, time_ms: int, timeout_s: float) -> bool:
        """Wait until the checkpoint written after batch `time_ms` (or a later one) completed is durable.

        False on timeout or when checkpointing is off. Tests use it before stopping a driver.
        """
        if self._checkpointer is None:
            return False
        return bool(self._checkpointer.wait_for_checkpoint(time_ms, timeout_s))

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop; with stopGraceFully, batches already generated are run first. Stopping twice is harmless."""
        with self._state_lock:
            state, self._state = self._state, STOPPED
        if state == ACTIVE:
            timeout_s = max(
                GRACEFUL_STOP_TIMEOUT_MIN_S, GRACEFUL_STOP_TIMEOUT_BATCHES * self._batch_ms / 1000
            )
            if stopGraceFully:
                self._graph.stop()
            self._generator.stop(graceful=stopGraceFully, timeout_s=timeout_s)
            self._scheduler.stop(graceful=stopGraceFully, timeout_s=timeout_s)
            if not stopGraceFully:
                self._graph.stop()
            if self._checkpointer is not None:
                try:
                    self._checkpointer.stop()
                except Exception:
                    log.exception("stopping the checkpoint writer failed")
            self._bus.stop()
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
        return self._scheduler.wait_for_batch(time_ms, timeout_s)

    def pending_batch_times(self) -> list[int]:
        """Batches submitted and not successfully completed (for metadata checkpoints)."""
        return self._scheduler.pending_times()

    # -- class methods -------------------------------------------------------------------------------

    @classmethod
    def getActive(cls) -> StreamingContext | None:
        """The started and not yet stopped context, if any."""
        return cls._activeContext

    @classmethod
    def getOrCreate(
        cls,
        checkpointPath: str,
        setupFunc: Any,
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
        from dstream.recovery.fingerprints import setup_fingerprint
        from dstream.recovery.restore import recover_context

        options = dict(storage_options or {})
        recovered: StreamingContext | None = recover_context(
            cls, checkpointPath, setupFunc, clock=clock, storage_options=options
        )
        if recovered is not None:
            return recovered
        ssc: StreamingContext = setupFunc()
        if options or ssc._checkpoint_dir != checkpointPath.rstrip("/"):
            ssc.checkpoint(checkpointPath, **options)
        ssc._setup_fingerprint = setup_fingerprint(setupFunc).to_json()
        return ssc

    @classmethod
    def getActiveOrCreate(cls, checkpointPath: str | None, setupFunc: Any) -> StreamingContext:
        """The active context, else getOrCreate(checkpointPath, setupFunc), else setupFunc()."""
        if setupFunc is None:
            raise DStreamValueError("setupFunc cannot be None")
        active = cls.getActive()
        if active is not None:
            return active
        if checkpointPath is not None:
            return cls.getOrCreate(checkpointPath, setupFunc)
        created: StreamingContext = setupFunc()
        return created
