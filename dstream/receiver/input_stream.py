"""ReceiverInputDStream: a DStream fed by a receiver; `receiver_stream` and `push_stream` build them.

Every receiver stream of a StreamingContext shares one `ReceiverTracker` (created when the first one is
started with the graph, so it sees the final checkpoint directory and configuration). Computing batch T:

1. `allocate_blocks_to_batch(T)`: the first receiver stream computed at T allocates every stream's queued
   blocks to T (logged); for a time already allocated it is a no-op, so a batch re-run after recovery gets
   its logged allocation;
2. the stream's blocks of T become a block RDD, one partition per block, in allocation order.

With a checkpoint directory the tracker's metadata WAL is replayed at start (blocks received before a crash
are allocated to the next batches) and the receiver WAL may be enabled; old batches are then cleaned by the
checkpoint layer (`receiver_tracker_of(ssc).cleanup_old_blocks_and_batches`). Without one, blocks are
cleaned here as the stream forgets old batches.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from dstream.receiver.block_rdd import block_rdd, block_refs
from dstream.receiver.config import ReceiverConfig
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver import Receiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import (
    ReceiverInfo,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
)


class ListenerBusEvents:
    """Posts receiver lifecycle events to a StreamingContext's listener bus."""

    def __init__(self, bus: Any, names: dict[int, str]) -> None:
        self._bus = bus
        self._names = names

    def _info(
        self, stream_id: int, active: bool, message: str = "", error: BaseException | None = None
    ) -> Any:
        name = self._names.get(stream_id, "receiver")
        return ReceiverInfo(stream_id, name, active, "driver", message, repr(error) if error else "")

    def on_receiver_started(self, stream_id: int, name: str) -> None:
        self._bus.post(StreamingListenerReceiverStarted(self._info(stream_id, True)))

    def on_receiver_error(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self._bus.post(StreamingListenerReceiverError(self._info(stream_id, False, message, error)))

    def on_receiver_stopped(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self._bus.post(StreamingListenerReceiverStopped(self._info(stream_id, False, message, error)))


class _ReceiverGroup:
    """The receivers of one StreamingContext and, once started, their shared ReceiverTracker.

    The tracker outlives `stop`: a graceful stop stops the receivers first and then still generates the
    remaining batches, which need the block tracker. A stopped group never starts receivers again.
    """

    def __init__(self) -> None:
        self.receivers: dict[int, Receiver] = {}
        self.tracker: ReceiverTracker | None = None
        self.stopped = False
        self.lock = threading.Lock()

    def start(self, ssc: Any) -> ReceiverTracker:
        with self.lock:
            if self.tracker is None:
                self.tracker = _new_tracker(ssc, self.receivers)
                weakref.finalize(ssc, self.tracker.close)
                if not self.stopped:
                    self.tracker.start()
            return self.tracker

    def stop(self) -> None:
        with self.lock:
            if self.stopped:
                return
            self.stopped = True
            tracker = self.tracker
        if tracker is not None:
            tracker.stop(close_metadata_log=False)


_groups: weakref.WeakKeyDictionary[Any, _ReceiverGroup] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def _group(ssc: Any) -> _ReceiverGroup:
    with _groups_lock:
        group = _groups.get(ssc)
        if group is None:
            group = _groups[ssc] = _ReceiverGroup()
        return group


def _conf_dict(ssc: Any) -> dict[str, Any]:
    get_conf = getattr(ssc.sparkContext, "getConf", None)
    return dict(get_conf().getAll()) if get_conf is not None else {}


def _new_tracker(ssc: Any, receivers: dict[int, Receiver]) -> ReceiverTracker:
    checkpoint_dir = ssc._checkpoint_dir
    names = {sid: type(r).__name__ for sid, r in receivers.items()}
    tracker = ReceiverTracker(
        ssc.clock,
        ReceiverConfig.from_conf(_conf_dict(ssc)),
        checkpoint_dir=checkpoint_dir,
        storage_options=ssc._checkpoint_storage_options,
        events=ListenerBusEvents(ssc._bus, names),
        recover=checkpoint_dir is not None,
    )
    for stream_id, receiver in sorted(receivers.items()):
        tracker.add_receiver(stream_id, receiver)
    return tracker


def receiver_tracker_of(ssc: Any) -> ReceiverTracker | None:
    """The running ReceiverTracker of a StreamingContext (None before start or without receivers)."""
    return _group(ssc).tracker


class ReceiverInputDStream(InputDStream):
    """An input stream whose batches are the blocks its receiver stored."""

    def __init__(self, ssc: Any, receiver: Receiver) -> None:
        if not isinstance(receiver, Receiver):
            raise TypeError(f"receiverStream needs a dstream.Receiver, got {receiver!r}")
        super().__init__(ssc)
        self._receiver = receiver
        _group(ssc).receivers[self._id] = receiver

    def getReceiver(self) -> Receiver:
        return self._receiver

    def _start(self) -> None:
        group = _group(self._ssc)
        # A graph restored from a checkpoint never ran __init__ in this process: register every receiver
        # stream of the graph before the first of them starts the shared tracker.
        for stream in self._ssc._graph.input_streams:
            if isinstance(stream, ReceiverInputDStream):
                group.receivers.setdefault(stream._id, stream._receiver)
        group.start(self._ssc)

    def _stop(self) -> None:
        _group(self._ssc).stop()

    def _compute(self, time_ms: int) -> Any:
        tracker = _group(self._ssc).start(self._ssc)
        tracker.allocate_blocks_to_batch(time_ms)
        infos = tracker.get_blocks_of_batch_and_stream(time_ms, self._id)
        self._records_per_batch[time_ms] = sum(i.num_records or 0 for i in infos)
        return block_rdd(self._sc, block_refs(infos, tracker.wal_location(self._id)))

    def _clear_metadata(self, time_ms: int) -> None:
        tracker = _group(self._ssc).tracker
        threshold = time_ms - (self._remember_ms or 0)
        if tracker is not None and self._ssc._checkpoint_dir is None and threshold < tracker.clock.time_ms():
            # No checkpoint: nothing will re-run these batches, so their blocks can go.
            tracker.cleanup_old_blocks_and_batches(threshold)
        super()._clear_metadata(time_ms)


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
