"""The events of the streaming listener bus and the info objects they carry, in PySpark's getter-call form.

PySpark reads Spark's Scala case classes (BatchInfo, ReceiverInfo, StreamInputInfo,
OutputOperationInfo and the StreamingListener* events) through py4j, so every field is a getter
call: `batchCompleted.batchInfo().numRecords()`, `batchInfo().batchTime().milliseconds()`,
`receiverInfo().name()`. These classes have the same names and are read the same way, so a
PySpark listener ports unchanged; it is the one form, used by dstream's own code too.

Units: `batchTime()` is a `Time` (its `milliseconds()` since the epoch, like Spark's
`org.apache.spark.streaming.Time`); other times are integer milliseconds since the epoch, delays
milliseconds. A value Spark holds as an `Option` (a processing delay before the batch completed,
a failure reason of a job that succeeded) is None when absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import total_ordering
from typing import Any


@total_ordering
class Time:
    """A batch time (Spark's `Time`): read it with `milliseconds()`."""

    __slots__ = ("_ms",)

    def __init__(self, millis: int) -> None:
        self._ms = int(millis)

    def milliseconds(self) -> int:
        """Milliseconds since the epoch."""
        return self._ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and other._ms == self._ms

    def __lt__(self, other: Time) -> bool:
        return self._ms < other._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __str__(self) -> str:
        return f"{self._ms} ms"

    def __repr__(self) -> str:
        return f"Time({self._ms})"


class _Info:
    """Equality and repr over the constructor's fields (`_fields`), for tests and logs."""

    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, "_" + f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash((type(self), *map(repr, self._values())))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={v!r}" for f, v in zip(self._fields, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


class StreamInputInfo(_Info):
    """What one input stream contributed to one batch."""

    _fields = ("inputStreamId", "numRecords", "metadata")

    def __init__(
        self, inputStreamId: int, numRecords: int, metadata: Mapping[str, Any] | None = None
    ) -> None:
        self._inputStreamId = inputStreamId
        self._numRecords = numRecords
        self._metadata: Mapping[str, Any] = dict(metadata or {})

    def inputStreamId(self) -> int:
        return self._inputStreamId

    def numRecords(self) -> int:
        return self._numRecords

    def metadata(self) -> Mapping[str, Any]:
        return self._metadata

    def metadataDescription(self) -> str | None:
        """The ``"Description"`` entry of the metadata, as Spark shows it in its UI."""
        description = self._metadata.get("Description")
        return None if description is None else str(description)


class OutputOperationInfo(_Info):
    """One output operation (job) of a batch; failureReason() is set when its job raised."""

    _fields = ("batchTime", "id", "name", "description", "startTime", "endTime", "failureReason")

    def __init__(
        self,
        batchTime: int,
        id: int,
        name: str,
        description: str,
        startTime: int | None,
        endTime: int | None,
        failureReason: str | None,
    ) -> None:
        self._batchTime = batchTime
        self._id = id
        self._name = name
        self._description = description
        self._startTime = startTime
        self._endTime = endTime
        self._failureReason = failureReason

    def batchTime(self) -> Time:
        return Time(self._batchTime)

    def id(self) -> int:
        return self._id

    def name(self) -> str:
        return self._name

    def description(self) -> str:
        return self._description

    def startTime(self) -> int | None:
        return self._startTime

    def endTime(self) -> int | None:
        return self._endTime

    def failureReason(self) -> str | None:
        return self._failureReason

    def duration(self) -> int | None:
        """Milliseconds the job ran, once it has ended."""
        if self._startTime is None or self._endTime is None:
            return None
        return self._endTime - self._startTime


class BatchInfo(_Info):
    """A batch as seen by listeners at one point of its life."""

    _fields = (
        "batchTime",
        "streamIdToInputInfo",
        "submissionTime",
        "processingStartTime",
        "processingEndTime",
        "outputOperationInfos",
    )

    def __init__(
        self,
        batchTime: int,
        streamIdToInputInfo: Mapping[int, StreamInputInfo],
        submissionTime: int,
        processingStartTime: int | None,
        processingEndTime: int | None,
        outputOperationInfos: Mapping[int, OutputOperationInfo],
    ) -> None:
        self._batchTime = batchTime
        self._streamIdToInputInfo = streamIdToInputInfo
        self._submissionTime = submissionTime
        self._processingStartTime = processingStartTime
        self._processingEndTime = processingEndTime
        self._outputOperationInfos = outputOperationInfos

    def batchTime(self) -> Time:
        return Time(self._batchTime)

    def streamIdToInputInfo(self) -> Mapping[int, StreamInputInfo]:
        return self._streamIdToInputInfo

    def submissionTime(self) -> int:
        return self._submissionTime

    def processingStartTime(self) -> int | None:
        return self._processingStartTime

    def processingEndTime(self) -> int | None:
        return self._processingEndTime

    def outputOperationInfos(self) -> Mapping[int, OutputOperationInfo]:
        return self._outputOperationInfos

    def numRecords(self) -> int:
        """Records the input streams put into this batch."""
        return sum(info.numRecords() for info in self._streamIdToInputInfo.values())

    def schedulingDelay(self) -> int | None:
        """Milliseconds from submission until the first job started."""
        if self._processingStartTime is None:
            return None
        return self._processingStartTime - self._submissionTime

    def processingDelay(self) -> int | None:
        """Milliseconds from the first job's start to the last job's end."""
        if self._processingStartTime is None or self._processingEndTime is None:
            return None
        return self._processingEndTime - self._processingStartTime

    def totalDelay(self) -> int | None:
        """Scheduling delay plus processing delay."""
        scheduling, processing = self.schedulingDelay(), self.processingDelay()
        if scheduling is None or processing is None:
            return None
        return scheduling + processing


class ReceiverInfo(_Info):
    """A receiver (or a receiver-like input such as socketTextStream) as listeners see it.

    `location()` and `executorId()` say where the receiver runs: "driver" on the local backend, the
    worker's address on the Dask backend.
    """

    _fields = ("streamId", "name", "active", "location", "lastErrorMessage", "lastError")

    def __init__(
        self,
        streamId: int,
        name: str,
        active: bool,
        location: str = "driver",
        lastErrorMessage: str = "",
        lastError: str = "",
    ) -> None:
        self._streamId = streamId
        self._name = name
        self._active = active
        self._location = location
        self._lastErrorMessage = lastErrorMessage
        self._lastError = lastError

    def streamId(self) -> int:
        return self._streamId

    def name(self) -> str:
        return self._name

    def active(self) -> bool:
        return self._active

    def location(self) -> str:
        return self._location

    def executorId(self) -> str:
        return self._location

    def lastErrorMessage(self) -> str:
        return self._lastErrorMessage

    def lastError(self) -> str:
        return self._lastError


class StreamingListenerStreamingStarted(_Info):
    """The context started; `time()` is the wall time in ms."""

    _fields = ("time",)

    def __init__(self, time: int) -> None:
        self._time = time

    def time(self) -> int:
        return self._time


class _BatchEvent(_Info):
    _fields = ("batchInfo",)

    def __init__(self, batchInfo: BatchInfo) -> None:
        self._batchInfo = batchInfo

    def batchInfo(self) -> BatchInfo:
        return self._batchInfo


class StreamingListenerBatchSubmitted(_BatchEvent):
    """A batch's jobs were generated and queued."""


class StreamingListenerBatchStarted(_BatchEvent):
    """A batch's first job started."""


class StreamingListenerBatchCompleted(_BatchEvent):
    """A batch's last job ended."""


class _OutputOperationEvent(_Info):
    _fields = ("outputOperationInfo",)

    def __init__(self, outputOperationInfo: OutputOperationInfo) -> None:
        self._outputOperationInfo = outputOperationInfo

    def outputOperationInfo(self) -> OutputOperationInfo:
        return self._outputOperationInfo


class StreamingListenerOutputOperationStarted(_OutputOperationEvent):
    """One output operation of a batch started."""


class StreamingListenerOutputOperationCompleted(_OutputOperationEvent):
    """One output operation of a batch ended."""


class _ReceiverEvent(_Info):
    _fields = ("receiverInfo",)

    def __init__(self, receiverInfo: ReceiverInfo) -> None:
        self._receiverInfo = receiverInfo

    def receiverInfo(self) -> ReceiverInfo:
        return self._receiverInfo


class StreamingListenerReceiverStarted(_ReceiverEvent):
    """A receiver started."""


class StreamingListenerReceiverError(_ReceiverEvent):
    """A receiver reported an error."""


class StreamingListenerReceiverStopped(_ReceiverEvent):
    """A receiver stopped."""


class _CheckpointEvent(_Info):
    _fields: tuple[str, ...] = ("batchTime", "kind", "url")

    def __init__(self, batchTime: int, kind: str, url: str) -> None:
        self._batchTime = batchTime
        self._kind = kind
        self._url = url

    def batchTime(self) -> Time:
        return Time(self._batchTime)

    def kind(self) -> str:
        return self._kind

    def url(self) -> str:
        return self._url


class StreamingListenerCheckpointWritten(_CheckpointEvent):
    """A metadata checkpoint (kind "metadata") or an RDD data checkpoint (kind "rdd") is durable.

    dstream's own event (Spark has none).
    """


class StreamingListenerCheckpointFailed(_CheckpointEvent):
    """A checkpoint write failed; `error()` is its repr. Data checkpoints are retried next interval."""

    _fields = ("batchTime", "kind", "url", "error")

    def __init__(self, batchTime: int, kind: str, url: str, error: str) -> None:
        super().__init__(batchTime, kind, url)
        self._error = error

    def error(self) -> str:
        return self._error


class StreamingListenerBatchQuarantined(_Info):
    """A batch failed every attempt and was quarantined (policy `quarantine`, docs/recovery.md).

    dstream's own event (Spark has none). `location()` is the quarantine file holding the batch's input
    and error (None without a checkpoint directory: then nothing was copied and the batch stays
    pending); `numRecords()` counts its input records per stream id; `failureReason()` is the last
    failure's traceback text.
    """

    _fields = ("batchTime", "attempts", "failureReason", "location", "numRecords")

    def __init__(
        self,
        batchTime: int,
        attempts: int,
        failureReason: str,
        location: str | None,
        numRecords: Mapping[int, int],
    ) -> None:
        self._batchTime = batchTime
        self._attempts = attempts
        self._failureReason = failureReason
        self._location = location
        self._numRecords = dict(numRecords)

    def batchTime(self) -> Time:
        return Time(self._batchTime)

    def attempts(self) -> int:
        return self._attempts

    def failureReason(self) -> str:
        return self._failureReason

    def location(self) -> str | None:
        return self._location

    def numRecords(self) -> dict[int, int]:
        return dict(self._numRecords)


class StreamingListenerBlockRecovered(_Info):
    """A lost block was recovered: recomputed from lineage, or read from the receiver WAL.

    dstream's own event (Spark only logs it). `block()` is the block's name (`shuffle_<shuffle>_<map>_
    <reduce>`, `rdd_<rdd>_<partition>`, `input-<block id>`), `recoveredBy()` is "lineage" (what produced
    it ran again) or "wal" (a received block read from its write-ahead log copy), and `reason()` says
    why it was found lost.
    """

    _fields = ("block", "recoveredBy", "reason")

    def __init__(self, block: str, recoveredBy: str, reason: str) -> None:
        self._block = block
        self._recoveredBy = recoveredBy
        self._reason = reason

    def block(self) -> str:
        return self._block

    def recoveredBy(self) -> str:
        return self._recoveredBy

    def reason(self) -> str:
        return self._reason
