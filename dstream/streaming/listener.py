"""The streaming listener bus: events delivered to StreamingListeners in order, on one thread.

Metrics, the CLI's progress display, the chaos history and tests all read the engine through these
events (docs/architecture.md). The events and their info objects (dstream.streaming.events) follow
PySpark's getter-call form, so a PySpark `StreamingListener` ports unchanged; they are re-exported
here, where PySpark users and dstream's modules import them from.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from dstream.streaming.events import (
    BatchInfo,
    OutputOperationInfo,
    ReceiverInfo,
    StreamingListenerBatchCompleted,
    StreamingListenerBatchQuarantined,
    StreamingListenerBatchStarted,
    StreamingListenerBatchSubmitted,
    StreamingListenerBlockRecovered,
    StreamingListenerCheckpointFailed,
    StreamingListenerCheckpointWritten,
    StreamingListenerOutputOperationCompleted,
    StreamingListenerOutputOperationStarted,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
    StreamingListenerStreamingStarted,
    StreamInputInfo,
    Time,
)

__all__ = [
    "BatchInfo",
    "OutputOperationInfo",
    "ReceiverInfo",
    "StreamInputInfo",
    "StreamingListener",
    "StreamingListenerBatchCompleted",
    "StreamingListenerBatchQuarantined",
    "StreamingListenerBatchStarted",
    "StreamingListenerBatchSubmitted",
    "StreamingListenerBlockRecovered",
    "StreamingListenerBus",
    "StreamingListenerCheckpointFailed",
    "StreamingListenerCheckpointWritten",
    "StreamingListenerOutputOperationCompleted",
    "StreamingListenerOutputOperationStarted",
    "StreamingListenerReceiverError",
    "StreamingListenerReceiverStarted",
    "StreamingListenerReceiverStopped",
    "StreamingListenerStreamingStarted",
    "Time",
]

log = logging.getLogger(__name__)


class StreamingListener:
    """Override the callbacks you need; every default does nothing."""

    def onStreamingStarted(self, streamingStarted: StreamingListenerStreamingStarted) -> None:
        """The context started; `streamingStarted.time()` is the wall time in ms."""

    def onReceiverStarted(self, receiverStarted: StreamingListenerReceiverStarted) -> None:
        """A receiver started."""

    def onReceiverError(self, receiverError: StreamingListenerReceiverError) -> None:
        """A receiver reported an error."""

    def onReceiverStopped(self, receiverStopped: StreamingListenerReceiverStopped) -> None:
        """A receiver stopped."""

    def onBatchSubmitted(self, batchSubmitted: StreamingListenerBatchSubmitted) -> None:
        """A batch's jobs were generated and queued."""

    def onBatchStarted(self, batchStarted: StreamingListenerBatchStarted) -> None:
        """A batch's first job started."""

    def onBatchCompleted(self, batchCompleted: StreamingListenerBatchCompleted) -> None:
        """A batch's last job ended (successfully or not)."""

    def onOutputOperationStarted(
        self, outputOperationStarted: StreamingListenerOutputOperationStarted
    ) -> None:
        """One output operation of a batch started."""

    def onOutputOperationCompleted(
        self, outputOperationCompleted: StreamingListenerOutputOperationCompleted
    ) -> None:
        """One output operation of a batch ended."""

    def onBatchQuarantined(self, batchQuarantined: StreamingListenerBatchQuarantined) -> None:
        """A batch failed every attempt and was quarantined (dstream's own callback)."""

    def onBlockRecovered(self, blockRecovered: StreamingListenerBlockRecovered) -> None:
        """A lost block was recomputed from lineage or read from the WAL (dstream's own callback)."""

    def onCheckpointWritten(self, checkpointWritten: StreamingListenerCheckpointWritten) -> None:
        """A metadata or RDD data checkpoint became durable."""

    def onCheckpointFailed(self, checkpointFailed: StreamingListenerCheckpointFailed) -> None:
        """A metadata or RDD data checkpoint could not be written."""


_CALLBACKS: dict[type, str] = {
    StreamingListenerStreamingStarted: "onStreamingStarted",
    StreamingListenerBatchSubmitted: "onBatchSubmitted",
    StreamingListenerBatchStarted: "onBatchStarted",
    StreamingListenerBatchCompleted: "onBatchCompleted",
    StreamingListenerOutputOperationStarted: "onOutputOperationStarted",
    StreamingListenerOutputOperationCompleted: "onOutputOperationCompleted",
    StreamingListenerReceiverStarted: "onReceiverStarted",
    StreamingListenerReceiverError: "onReceiverError",
    StreamingListenerReceiverStopped: "onReceiverStopped",
    StreamingListenerCheckpointWritten: "onCheckpointWritten",
    StreamingListenerCheckpointFailed: "onCheckpointFailed",
    StreamingListenerBatchQuarantined: "onBatchQuarantined",
    StreamingListenerBlockRecovered: "onBlockRecovered",
}

_STOP = object()


class StreamingListenerBus:
    """Delivers events to listeners, in posting order, on one daemon thread.

    Events posted before `start()` are kept and delivered once it runs. A full queue drops the event
    and logs it (like Spark's bus): a slow listener must not stall batch processing or fill memory.
    """

    def __init__(self, queue_size_max: int = 10_000) -> None:
        self._queue_size_max = queue_size_max
        self._queue: deque[Any] = deque()
        self._cond = threading.Condition()
        self._listeners: list[Any] = []
        self._posted = 0
        self._delivered = 0
        self._dropped = 0
        self._thread: threading.Thread | None = None

    @property
    def dropped_count(self) -> int:
        """Events dropped because the queue was full."""
        return self._dropped

    def add_listener(self, listener: Any) -> None:
        """Register a listener; it sees events delivered after this call."""
        with self._cond:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Any) -> None:
        """Unregister a listener (no error if it was not registered)."""
        with self._cond:
            self._listeners = [x for x in self._listeners if x is not listener]

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="streaming-listener-bus", daemon=True)
            self._thread.start()

    def post(self, event: Any) -> None:
        """Queue an event for delivery; never blocks."""
        with self._cond:
            if len(self._queue) >= self._queue_size_max:
                self._dropped += 1
                log.error("listener bus queue is full (%d events); dropping %r", self._queue_size_max, event)
                return
            self._queue.append(event)
            self._posted += 1
            self._cond.notify_all()

    def wait_until_empty(self, timeout_s: float) -> bool:
        """Wait until every event posted so far was delivered; False on timeout."""
        with self._cond:
            target = self._posted
            return self._cond.wait_for(lambda: self._delivered >= target, timeout=timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued, then end the thread (bounded by `timeout_s`)."""
        with self._cond:
            thread = self._thread
            if thread is None:
                return
            self._queue.append(_STOP)
            self._cond.notify_all()
        if thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                event = self._queue.popleft()
                listeners = self._listeners
            if event is _STOP:
                with self._cond:
                    self._thread = None
                    self._cond.notify_all()
                return
            self._deliver(event, listeners)
            with self._cond:
                self._delivered += 1
                self._cond.notify_all()

    @staticmethod
    def _deliver(event: Any, listeners: list[Any]) -> None:
        name = _CALLBACKS.get(type(event))
        if name is None:
            log.warning("listener bus: unknown event %r", event)
            return
        for listener in listeners:
            callback = getattr(listener, name, None)
            if callback is None:
                continue
            try:
                callback(event)
            except Exception:
                # A broken listener must not stop delivery to the others (Spark logs and goes on).
                log.exception("streaming listener %r raised in %s", listener, name)
