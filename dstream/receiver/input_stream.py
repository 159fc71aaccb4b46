"""ReceiverInputDStream: a DStream fed by a receiver; `receiver_stream` and `push_stream` build them.

The receiver streams of a StreamingContext share one `ReceiverTracker`, which the context builds at
start (`new_receiver_tracker`, after the checkpoint directory and configuration are final) and plugs
into its runtime as the block allocator. Generating batch T:

1. the JobGenerator allocates every stream's queued blocks to T (logged); for a time already allocated
   it is a no-op, so a batch re-run after recovery gets its logged allocation;
2. computing a stream at T makes its blocks of T a block RDD, one partition per block, in allocation
   order; its listener input info counts its blocks of T whether or not it is computed at T.

The JobGenerator decides when blocks are cleaned (docs/architecture.md).

Where the receivers run is the backend's choice: on the local backend each runs on a thread of the
driver; on the Dask backend a `WorkerLauncher` runs each on a worker (dstream.receiver.worker_launcher),
and a push stream's `address()` / `resolver()` say where its receiver listens now.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dstream.errors import DStreamStateError, ReceiverGivenUpError
from dstream.receiver.block_rdd import block_rdd, block_refs
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver import Receiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.worker_launcher import WorkerLauncher, worker_launcher
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import (
    ReceiverInfo,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
    StreamInputInfo,
)
from dstream.streaming.runtime import StreamingRuntime

ADDRESS_WAIT_S = 60.0


class ListenerBusEvents:
    """Posts receiver lifecycle events to a StreamingContext's listener bus."""

    def __init__(self, bus: Any, names: dict[int, str], launcher: WorkerLauncher | None = None) -> None:
        self._bus = bus
        self._names = names
        self._launcher = launcher

    def _info(
        self, stream_id: int, active: bool, message: str = "", error: BaseException | None = None
    ) -> Any:
        name = self._names.get(stream_id, "receiver")
        location = "driver"
        if self._launcher is not None:  # the worker the receiver runs on (or ran on last)
            location = self._launcher.location(stream_id) or location
        return ReceiverInfo(stream_id, name, active, location, message, repr(error) if error else "")

    def on_receiver_started(self, stream_id: int, name: str) -> None:
        self._bus.post(StreamingListenerReceiverStarted(self._info(stream_id, True)))

    def on_receiver_error(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self._bus.post(StreamingListenerReceiverError(self._info(stream_id, False, message, error)))

    def on_receiver_stopped(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self._bus.post(StreamingListenerReceiverStopped(self._info(stream_id, False, message, error)))


def new_receiver_tracker(runtime: StreamingRuntime, streams: list[ReceiverInputDStream]) -> ReceiverTracker:
    """The ReceiverTracker of a starting context: its streams' receivers, replaying the block log.

    With a checkpoint directory the tracker's metadata WAL is replayed (blocks received before a crash
    are allocated to the next batches). The context plugs the tracker into its runtime as the block
    allocator and starts it after the job generator.
    """
    location = runtime.checkpoint
    names = {s._id: s.receiver_name() for s in streams}
    launcher = worker_launcher(
        runtime.sc.backend,
        None if location is None else location.url,
        {} if location is None else location.storage_options,
    )
    tracker = ReceiverTracker(
        runtime.clock,
        runtime.config.receiver,
        checkpoint_dir=None if location is None else location.url,
        storage_options=None if location is None else location.storage_options,
        events=ListenerBusEvents(runtime.bus, names, launcher),
        recover=location is not None,
        executor=runtime.sc.executor_env,
        backpressure=runtime.config.backpressure,
        fence=lambda: runtime.fence(),  # looked up at each call: recovery installs the lease's fence later
        launcher=launcher,
        on_given_up=lambda stream_id, message, error: runtime.report_error(
            message, given_up_error(names[stream_id], stream_id, error)
        ),
    )
    for stream in sorted(streams, key=lambda s: s._id):
        tracker.add_receiver(stream._id, stream.getReceiver())
    return tracker


def given_up_error(name: str, stream_id: int, last: BaseException | None) -> ReceiverGivenUpError:
    """The error a given-up receiver fails the application with, caused by its last start's error."""
    error = ReceiverGivenUpError(f"receiver {name} of stream {stream_id} was given up")
    error.__cause__ = last
    return error


class ReceiverInputDStream(InputDStream):
    """An input stream whose batches are the blocks its receiver stored."""

    def __init__(self, ssc: Any, receiver: Receiver) -> None:
        if not isinstance(receiver, Receiver):
            raise TypeError(f"receiverStream needs a dstream.Receiver, got {receiver!r}")
        super().__init__(ssc)
        self._receiver = receiver

    def getReceiver(self) -> Receiver:
        return self._receiver

    def receiver_name(self) -> str:
        """The name in this stream's ReceiverInfo (listener events): the receiver's class by default."""
        return type(self._receiver).__name__

    def _tracker(self) -> ReceiverTracker:
        tracker = self._runtime.block_allocator
        if not isinstance(tracker, ReceiverTracker):
            raise DStreamStateError(f"{self!r}: the streaming context has not started its receivers")
        return tracker

    def _compute(self, time_ms: int) -> Any:
        # The JobGenerator allocated the blocks of `time_ms` before asking the graph for jobs.
        tracker = self._tracker()
        infos = tracker.get_blocks_of_batch_and_stream(time_ms, self._id)
        return block_rdd(self._sc, block_refs(infos, tracker.wal_location(self._id)))

    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        # From the allocation, so a batch counts its own records even when the stream is only read
        # through a window that does not compute it at that batch.
        tracker = self._runtime.block_allocator
        if tracker is None:
            return None
        return StreamInputInfo(self._id, tracker.records_of_batch(time_ms).get(self._id, 0))


class PushInputDStream(ReceiverInputDStream):
    """`ssc.pushStream`: a push receiver's stream; `port` is bound as soon as the stream exists."""

    def __init__(self, ssc: Any, receiver: PushReceiver) -> None:
        super().__init__(ssc, receiver)

    @property
    def port(self) -> int:
        receiver = self._receiver
        assert isinstance(receiver, PushReceiver)
        return receiver.port

    @property
    def host(self) -> str:
        receiver = self._receiver
        assert isinstance(receiver, PushReceiver)
        return receiver.host

    def address(self, timeout_s: float = ADDRESS_WAIT_S) -> tuple[str, int]:
        """Where the receiver listens now: (host, port).

        On the local backend the socket bound when the stream was made. On the Dask backend the address
        the receiver bound on its worker, once placed (waits up to `timeout_s` for a placement, e.g.
        while it moves after its worker died), and after a move the new one.

        Raises:
            DStreamStateError: the receiver was not placed within `timeout_s`.
        """
        tracker = self._runtime.block_allocator
        launcher = tracker.launcher if isinstance(tracker, ReceiverTracker) else None
        if isinstance(launcher, WorkerLauncher):
            return launcher.address(self._id, timeout_s)
        return (self.host, self.port)

    def resolver(self, timeout_s: float = ADDRESS_WAIT_S) -> Callable[[], tuple[str, int]]:
        """A function returning the receiver's current address (`address`), for a client that follows
        a receiver that moved (`PushClient(resolver=...)`); each call waits up to `timeout_s`."""
        return functools.partial(self.address, timeout_s)


def receiver_stream(ssc: Any, receiver: Receiver) -> ReceiverInputDStream:
    """`ssc.receiverStream(receiver)`: a DStream of what `receiver` stores."""
    return ReceiverInputDStream(ssc, receiver)


def push_stream(
    ssc: Any, host: str = "127.0.0.1", port: int = 0, **receiver_options: Any
) -> PushInputDStream:
    """`ssc.pushStream(host, port)`: a DStream of records pushed by `dstream.client.PushClient`s.

    The returned stream's `port` is the bound port (useful with port=0). Exactly-once needs the receiver
    WAL (`spark.streaming.receiver.writeAheadLog.enable`) and a checkpoint directory.
    """
    return PushInputDStream(ssc, PushReceiver(host, port, **receiver_options))
