"""The listener bus: order, a raising listener, bounded queue; events from a running context."""

from __future__ import annotations

from dstream.streaming import StreamingListener
from dstream.streaming.listener import StreamingListenerBus, StreamingListenerStreamingStarted
from tests.streaming.conftest import WAIT_S, run


class Broken(StreamingListener):
    def onStreamingStarted(self, e):
        raise RuntimeError("listener bug")


class Times(StreamingListener):
    def __init__(self):
        self.seen = []

    def onStreamingStarted(self, e):
        self.seen.append(e.time())


def test_events_are_delivered_in_order_and_a_raising_listener_is_isolated(caplog):
    bus = StreamingListenerBus()
    times = Times()
    bus.add_listener(Broken())
    bus.add_listener(times)
    for t in range(100):
        bus.post(StreamingListenerStreamingStarted(t))
    bus.start()  # events posted before start are kept
    assert bus.wait_until_empty(WAIT_S)
    assert times.seen == list(range(100))
    assert "listener bug" in caplog.text
    bus.stop()


def test_a_full_queue_drops_events_instead_of_growing():
    bus = StreamingListenerBus(queue_size_max=3)
    for t in range(5):
        bus.post(StreamingListenerStreamingStarted(t))
    assert bus.dropped_count == 2
    times = Times()
    bus.add_listener(times)
    bus.start()
    assert bus.wait_until_empty(WAIT_S)
    assert times.seen == [0, 1, 2]
    bus.stop()


class BatchRecorder(StreamingListener):
    def __init__(self):
        self.calls = []

    def onStreamingStarted(self, e):
        self.calls.append(("streaming", None))

    def onBatchSubmitted(self, e):
        self.calls.append(("submitted", e.batchInfo().batchTime().milliseconds(), e.batchInfo().numRecords()))

    def onBatchStarted(self, e):
        self.calls.append(("started", e.batchInfo().batchTime().milliseconds()))

    def onBatchCompleted(self, e):
        info = e.batchInfo()
        self.calls.append(
            ("completed", info.batchTime().milliseconds(), info.numRecords(), info.schedulingDelay() >= 0)
        )


def test_a_running_context_reports_batches_with_their_record_counts(ssc, clock):
    listener = BatchRecorder()
    ssc.addStreamingListener(listener)
    a = ssc.queueStream([[1, 2, 3], [4]])
    b = ssc.queueStream([["x"], [], ["y", "z"]])
    a.union(b).pprint()
    run(ssc, clock, 3)
    assert ssc.runtime.bus.wait_until_empty(WAIT_S)
    completed = [c for c in listener.calls if c[0] == "completed"]
    assert completed == [
        ("completed", 1000, 4, True),
        ("completed", 2000, 1, True),
        ("completed", 3000, 2, True),
    ]
    submitted = [c for c in listener.calls if c[0] == "submitted"]
    assert submitted == [("submitted", 1000, 4), ("submitted", 2000, 1), ("submitted", 3000, 2)]
    assert listener.calls[0] == ("streaming", None)


class PySparkStyleListener(StreamingListener):
    """Written as PySpark's docs and users write one: every value is read with a getter call."""

    def __init__(self):
        self.lines = []

    def onBatchSubmitted(self, batchSubmitted):
        info = batchSubmitted.batchInfo()
        # Before the batch runs, Spark's Options are empty: PySpark sees None.
        self.lines.append(
            ("submitted", info.processingDelay(), info.totalDelay(), info.processingStartTime())
        )

    def onBatchCompleted(self, batchCompleted):
        info = batchCompleted.batchInfo()
        inputs = {k: (v.inputStreamId(), v.numRecords()) for k, v in info.streamIdToInputInfo().items()}
        ops = [
            (op.id(), op.name(), op.batchTime().milliseconds(), op.failureReason(), op.duration() >= 0)
            for op in info.outputOperationInfos().values()
        ]
        self.lines.append(
            (
                "completed",
                info.batchTime().milliseconds(),
                str(info.batchTime()),
                info.numRecords(),
                info.schedulingDelay() >= 0,
                info.processingDelay() >= 0,
                info.totalDelay() == info.schedulingDelay() + info.processingDelay(),
                inputs,
                ops,
            )
        )

    def onOutputOperationCompleted(self, outputOperationCompleted):
        op = outputOperationCompleted.outputOperationInfo()
        self.lines.append(("op", op.batchTime().milliseconds(), op.startTime() <= op.endTime()))


def test_an_unchanged_pyspark_listener_reads_every_event_with_getter_calls(ssc, clock):
    listener = PySparkStyleListener()
    ssc.addStreamingListener(listener)
    stream = ssc.queueStream([[1, 2, 3]])
    stream.count().pprint()
    run(ssc, clock, 1)
    assert ssc.runtime.bus.wait_until_empty(WAIT_S)
    assert listener.lines == [
        ("submitted", None, None, None),
        ("op", 1000, True),
        (
            "completed",
            1000,
            "1000 ms",
            3,
            True,
            True,
            True,
            {stream._id: (stream._id, 3)},
            [(0, "pprint", 1000, None, True)],
        ),
    ]


def test_receiver_info_getters():
    from dstream.streaming.listener import ReceiverInfo, StreamingListenerReceiverError, Time

    event = StreamingListenerReceiverError(
        ReceiverInfo(4, "SocketReceiver-h:1", False, lastErrorMessage="refused")
    )
    info = event.receiverInfo()
    assert (info.streamId(), info.name(), info.active(), info.location(), info.executorId()) == (
        4,
        "SocketReceiver-h:1",
        False,
        "driver",
        "driver",
    )
    assert (info.lastErrorMessage(), info.lastError()) == ("refused", "")
    assert Time(2000).milliseconds() == 2000 and Time(1000) < Time(2000) and Time(5) == Time(5)
