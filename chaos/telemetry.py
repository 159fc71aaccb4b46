"""Engine telemetry for the history: a StreamingListener that reports batches, checkpoints and receivers.

A driver child records these events in its own part of the history and echoes each one on stdout as
`@chaos <json>`, so the runner can wait on them live (a kill right after a checkpoint, a kill during
recovery). Telemetry is diagnosis and timing only; the checker's ground truth is the producers'
acknowledgements and the sink's committed output.

"batch-completed" carries "failed", the number of the batch's output operations whose job raised: a
batch with none failed is the pipeline's health signal (`chaos.checker.liveness`), since it proves
that records went from the receivers through the computation into the sink.

"receiver-started" carries "stream" (the stream id) and "location", where the receiver now runs
(`ReceiverInfo.location()`: "driver" on the local backend, the worker's address on the Dask backend),
so the nemesis can find the worker process hosting a receiver (with the driver's "workers" report) and
see it start again elsewhere once that worker was killed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dstream.streaming.listener import (
    StreamingListener,
    StreamingListenerBatchCompleted,
    StreamingListenerCheckpointWritten,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
)

LINE_PREFIX = "@chaos "

Emit = Callable[..., Any]


def encode_line(event: dict[str, Any]) -> str:
    """The stdout line that carries `event` to the runner."""
    return LINE_PREFIX + json.dumps(event, separators=(",", ":"))


def decode_line(line: str) -> dict[str, Any] | None:
    """The event of a telemetry line, or None for any other output line."""
    if not line.startswith(LINE_PREFIX):
        return None
    try:
        event = json.loads(line[len(LINE_PREFIX) :])
    except ValueError:
        return None  # a line torn by a SIGKILL
    return event if isinstance(event, dict) else None


class TelemetryListener(StreamingListener):
    """Turns listener events into telemetry events through `emit(f, **fields)`."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    def onBatchCompleted(self, batchCompleted: StreamingListenerBatchCompleted) -> None:
        info = batchCompleted.batchInfo()
        failed = sum(1 for op in info.outputOperationInfos().values() if op.failureReason() is not None)
        self._emit(
            "batch-completed", batch=info.batchTime().milliseconds(), records=info.numRecords(), failed=failed
        )

    def onCheckpointWritten(self, checkpointWritten: StreamingListenerCheckpointWritten) -> None:
        if checkpointWritten.kind() == "metadata":
            self._emit("checkpoint-completed", batch=checkpointWritten.batchTime().milliseconds())

    def onReceiverStarted(self, receiverStarted: StreamingListenerReceiverStarted) -> None:
        info = receiverStarted.receiverInfo()
        self._emit("receiver-started", stream=info.streamId(), location=info.location())

    def onReceiverError(self, receiverError: StreamingListenerReceiverError) -> None:
        info = receiverError.receiverInfo()
        self._emit("receiver-error", stream=info.streamId(), message=info.lastErrorMessage()[:200])
