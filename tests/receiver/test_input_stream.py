"""Receiver and push streams inside a StreamingContext: allocation per batch, listener events, block RDDs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstream import Conf, Context
from dstream.client import PushClient
from dstream.clock import ManualClock
from dstream.errors import JobFailedError, ReceiverGivenUpError
from dstream.rdd.block_recovery import BlockRecovery
from dstream.rdd.storage import StorageLevel
from dstream.receiver.block_handler import WriteAheadLogHandler
from dstream.receiver.block_rdd import BlockNotFoundError, BlockRef, block_rdd, block_refs
from dstream.receiver.block_store import ReceivedBlocks, received_blocks
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.wal_registry import receiver_wals
from dstream.streaming import StreamingContext, StreamingListener
from tests.receiver.fakes import open_memory_wal
from tests.receiver.helpers import WAIT_S, CountingReceiver, HandFedReceiver, wait_for


@pytest.fixture
def sc() -> Iterator[Context]:
    context = Context("local[2]")
    yield context
    context.stop()


@pytest.fixture
def blocks(sc: Context) -> ReceivedBlocks:
    """The received blocks of the executor the Context's tasks run on."""
    return received_blocks(sc.executor_env)


def receiver_tracker_of(ssc: StreamingContext) -> ReceiverTracker | None:
    tracker = ssc.runtime.block_allocator
    assert tracker is None or isinstance(tracker, ReceiverTracker)
    return tracker


class ReceiverEvents(StreamingListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def onReceiverStarted(self, receiverStarted: Any) -> None:
        self.events.append(("started", receiverStarted.receiverInfo().streamId()))

    def onReceiverError(self, receiverError: Any) -> None:
        self.events.append(("error", receiverError.receiverInfo().streamId()))

    def onReceiverStopped(self, receiverStopped: Any) -> None:
        self.events.append(("stopped", receiverStopped.receiverInfo().streamId()))


def collect_batches(stream: Any) -> dict[int, list[Any]]:
    batches: dict[int, list[Any]] = {}
    stream.foreachRDD(lambda t, rdd: batches.__setitem__(int(t.timestamp() * 1000), rdd.collect()))
    return batches


def context_with(**conf: str) -> Context:
    return Context("local[2]", conf=Conf().setAll((k.replace("__", "."), v) for k, v in conf.items()))


def test_receiver_stream_batches_hold_what_was_stored_before_them() -> None:
    sc = context_with(spark__streaming__receiverRestartDelay="0ms")  # Spark's key, read at start
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    receiver = CountingReceiver(50, chunk=7, fail_starts=1)
    stream = ssc.receiverStream(receiver)
    batches = collect_batches(stream)
    listener = ReceiverEvents()
    ssc.addStreamingListener(listener)
    ssc.start()
    try:
        wait_for(lambda: receiver.next == 50)
        clock.set_time(1000)
        assert ssc.wait_for_batch(1000, WAIT_S)
        assert batches[1000] == list(range(50))
        clock.set_time(2000)
        assert ssc.wait_for_batch(2000, WAIT_S)
        assert batches[2000] == []
    finally:
        ssc.stop(stopSparkContext=True)
    sid = stream._id
    wait_for(lambda: ("stopped", sid) in listener.events)
    assert listener.events.index(("error", sid)) < listener.events.index(("started", sid))


def test_a_receiver_given_up_fails_the_application_with_its_last_error() -> None:
    """After `restarts_max` failed starts the receiver is given up and awaitTermination raises: the
    stream does not run on as empty batches (and, on a worker, block cleanup would wait for it forever)."""
    sc = context_with(spark__streaming__receiverRestartDelay="0ms", dstream__receiver__restarts_max="2")
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    receiver = CountingReceiver(10, fail_starts=1000)
    collect_batches(ssc.receiverStream(receiver))
    ssc.start()
    try:
        with pytest.raises(JobFailedError, match=r"giving up receiver 0 after 3 failed starts") as failed:
            ssc.awaitTerminationOrTimeout(WAIT_S)
        given_up = failed.value.__cause__
        assert isinstance(given_up, ReceiverGivenUpError)
        assert str(given_up) == "receiver CountingReceiver of stream 0 was given up"
        assert isinstance(given_up.__cause__, RuntimeError)
        assert str(given_up.__cause__) == "cannot connect (attempt 3)"
        assert receiver.starts == 3
    finally:
        ssc.stop(stopSparkContext=True)


def test_push_stream_exposes_its_port_and_delivers_per_batch(tmp_path: Path) -> None:
    sc = context_with(spark__streaming__receiver__writeAheadLog__enable="true")
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    ssc.checkpoint(str(tmp_path / "ckpt"))
    stream = ssc.pushStream(port=0)
    assert stream.port > 0  # bound before start
    batches = collect_batches(stream.map(lambda r: r.upper()))
    ssc.start()
    try:
        with PushClient("127.0.0.1", stream.port, "p") as client:
            client.send(["a", "b"])
            clock.set_time(1000)
            assert ssc.wait_for_batch(1000, WAIT_S)
            client.send(["c"])
            clock.set_time(2000)
            assert ssc.wait_for_batch(2000, WAIT_S)
        assert batches[1000] == ["A", "B"] and batches[2000] == ["C"]
        assert (tmp_path / "ckpt" / "receivedData" / str(stream._id)).is_dir()
    finally:
        ssc.stop(stopSparkContext=True)


# -- block RDDs ------------------------------------------------------------------------------------------


def test_block_rdd_reads_from_the_wal_after_the_memory_copy_is_dropped(
    sc: Context, blocks: ReceivedBlocks
) -> None:
    log = open_memory_wal()
    handler = WriteAheadLogHandler(log, 9, ManualClock(5), StorageLevel.MEMORY_ONLY, blocks=blocks)
    results = [handler.store_block(f"blk-wal-{i}", [i * 10, i * 10 + 1], None) for i in range(3)]
    refs = [BlockRef(r.block_id, True, r.wal_handle, "unused://", {}) for r in results]
    wals = receiver_wals(sc.executor_env)
    wals.register("unused://", log)
    try:
        rdd = block_rdd(sc, refs)
        assert rdd.getNumPartitions() == 3
        assert rdd.glom().collect() == [[0, 1], [10, 11], [20, 21]]
        blocks.remove("blk-wal-1")  # one block only in the WAL: the RDD mixes both sources
        recoveries: list[BlockRecovery] = []
        sc.add_block_recovery_listener(recoveries.append)
        assert rdd.collect() == [0, 1, 10, 11, 20, 21]
        sc.remove_block_recovery_listener(recoveries.append)
        assert [(r.block, r.how) for r in recoveries] == [("input-blk-wal-1", "wal")]  # and says so
        for r in results:
            blocks.remove(r.block_id)
        assert block_rdd(sc, refs).collect() == [0, 1, 10, 11, 20, 21]
        invalid = [BlockRef(r.block_id, False, r.wal_handle, "unused://", {}) for r in results]
        blocks.put_replicated("blk-wal-0", ["stale copy"], StorageLevel.MEMORY_ONLY)
        assert block_rdd(sc, invalid).collect()[:2] == [0, 1]  # invalid blocks skip the store
    finally:
        wals.unregister("unused://", log)
        blocks.remove("blk-wal-0")


def test_block_rdd_without_wal_fails_clearly_when_the_block_is_gone(
    sc: Context, blocks: ReceivedBlocks
) -> None:
    blocks.put_replicated("blk-mem-0", ["x"], StorageLevel.MEMORY_ONLY)
    rdd = block_rdd(sc, [BlockRef("blk-mem-0")])
    assert rdd.collect() == ["x"]
    blocks.remove("blk-mem-0")
    with pytest.raises(Exception, match="blk-mem-0"):
        rdd.collect()
    assert issubclass(BlockNotFoundError, Exception)


def test_replicated_blocks_survive_the_loss_of_one_store(sc: Context, blocks: ReceivedBlocks) -> None:
    blocks.put_replicated("blk-rep-0", [1, 2], StorageLevel.MEMORY_ONLY_2)
    blocks.block_manager.lose_executor("driver")  # the primary executor is lost
    try:
        assert block_rdd(sc, [BlockRef("blk-rep-0")]).collect() == [1, 2]
    finally:
        blocks.remove("blk-rep-0")


def test_memory_and_disk_spills_blocks_that_do_not_fit(sc: Context) -> None:
    from dstream.backends.local_blocks import LocalBlockManager
    from dstream.receiver.block_store import BlockStoreFullError, ReceivedBlocks

    store = ReceivedBlocks(LocalBlockManager("small", memory_records_max=3))
    store.put_replicated("a", [1, 2], StorageLevel.MEMORY_AND_DISK)
    store.put_replicated("b", [3, 4], StorageLevel.MEMORY_AND_DISK)  # spilled
    assert store.find("a") == [1, 2] and store.find("b") == [3, 4]
    with pytest.raises(BlockStoreFullError, match="memory_records_max=3"):
        store.put_replicated("c", [5, 6], StorageLevel.MEMORY_ONLY)
    store.block_manager.close()
    assert store.find("b") is None


def test_block_refs_keep_allocation_order(sc: Context) -> None:
    from dstream.receiver.received_block_tracker import ReceivedBlockInfo

    infos = [ReceivedBlockInfo(1, f"z{i}", 1, None) for i in (3, 1, 2)]
    assert [r.block_id for r in block_refs(infos, None)] == ["z3", "z1", "z2"]
    assert receiver_tracker_of(StreamingContext(sc, 1.0)) is None


def test_every_receiver_stream_of_the_graph_gets_its_receiver_started() -> None:
    sc = Context("local[2]")
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    first = ssc.receiverStream(CountingReceiver(3))
    second = ssc.receiverStream(CountingReceiver(4))
    first.foreachRDD(lambda rdd: None)
    second.foreachRDD(lambda rdd: None)
    ssc.start()
    try:
        tracker = receiver_tracker_of(ssc)
        assert tracker is not None
        for stream in (first, second):  # both receivers run: each stores its one block
            wait_for(lambda s=stream: len(tracker.block_tracker.get_unallocated_blocks(s._id)) == 1)
    finally:
        ssc.stop(stopSparkContext=True)


def test_a_graceful_stop_still_allocates_the_last_batches(tmp_path: Path) -> None:
    sc = context_with(spark__streaming__receiver__writeAheadLog__enable="true")
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    ssc.checkpoint(str(tmp_path / "ckpt"))
    receiver = CountingReceiver(6, chunk=3)
    batches = collect_batches(ssc.receiverStream(receiver))
    ssc.start()
    wait_for(lambda: receiver.next == 6)
    clock.set_time(2000)  # batches 1000 and 2000 are due; a graceful stop must still run them
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    assert [r for t in sorted(batches) for r in batches[t]] == list(range(6))


def _bump(record: dict[str, int]) -> dict[str, int]:
    record["v"] += 100  # mutates its input in place, as user functions may
    return record


@pytest.mark.parametrize("level", [StorageLevel.MEMORY_ONLY_2, StorageLevel.DISK_ONLY])
def test_a_task_mutating_received_records_does_not_change_the_block(
    sc: Context, blocks: ReceivedBlocks, level: StorageLevel
) -> None:
    blocks.put_replicated("blk-mut-0", [{"v": 1}, {"v": 2}], level)
    try:
        rdd = block_rdd(sc, [BlockRef("blk-mut-0")])
        assert rdd.map(_bump).collect() == [{"v": 101}, {"v": 102}]  # one output operation
        assert rdd.collect() == [{"v": 1}, {"v": 2}]  # another one, or a recomputation, sees the input
        assert blocks.find("blk-mut-0") == [{"v": 1}, {"v": 2}]
    finally:
        blocks.remove("blk-mut-0")


def test_records_stored_through_the_wal_handler_are_copied_too(sc: Context, blocks: ReceivedBlocks) -> None:
    records = [{"v": 1}]
    handler = WriteAheadLogHandler(
        open_memory_wal(), 0, ManualClock(0), StorageLevel.MEMORY_ONLY, blocks=blocks
    )
    handler.store_block("blk-mut-1", records, None)
    try:
        records[0]["v"] = 7  # the receiver reuses its buffer after store()
        rdd = block_rdd(sc, [BlockRef("blk-mut-1")])
        assert rdd.map(_bump).collect() == [{"v": 101}]
        assert rdd.collect() == [{"v": 1}]
    finally:
        blocks.remove("blk-mut-1")


class RecordsPerBatch(StreamingListener):
    def __init__(self) -> None:
        self.records: dict[int, int] = {}

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        self.records[info.batchTime().milliseconds()] = info.numRecords()


def test_each_batch_reports_its_own_records_when_a_window_reads_the_stream_every_second_batch() -> None:
    # The window slides every 2 batches, so the receiver stream is computed only at even batches; its
    # blocks are allocated at every batch all the same, and each batch reports what it received. (An
    # empty queue stream's output gives the odd batches a job, so that they are reported at all.)
    sc = Context("local[2]")
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    receiver = HandFedReceiver()
    windows = collect_batches(ssc.receiverStream(receiver).window(2.0, 2.0))
    ssc.queueStream([]).foreachRDD(lambda rdd: None)
    listener = RecordsPerBatch()
    ssc.addStreamingListener(listener)
    ssc.start()
    try:
        wait_for(receiver.isStarted)
        receiver.store([1, 2, 3])
        clock.set_time(1000)
        assert ssc.wait_for_batch(1000, WAIT_S)
        receiver.store([4, 5])
        clock.set_time(2000)
        assert ssc.wait_for_batch(2000, WAIT_S)
        assert ssc.runtime.bus.wait_until_empty(WAIT_S)
    finally:
        ssc.stop(stopSparkContext=True)
    assert listener.records == {1000: 3, 2000: 2}
    assert windows == {2000: [1, 2, 3, 4, 5]}


def test_without_a_checkpoint_blocks_are_cleaned_once_no_stream_remembers_them() -> None:
    sc = Context("local[2]")
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    receiver = HandFedReceiver()
    stream = ssc.receiverStream(receiver)
    stream.foreachRDD(lambda rdd: None)
    ssc.start()
    try:
        wait_for(receiver.isStarted)
        tracker = receiver_tracker_of(ssc)
        assert tracker is not None
        receiver.store(["a"])
        clock.set_time(1000)
        assert ssc.wait_for_batch(1000, WAIT_S)
        (first,) = tracker.block_tracker.get_blocks_of_batch_and_stream(1000, stream._id)
        assert tracker.blocks.find(first.block_id) == ["a"]
        for t in (2000, 3000, 4000):  # the stream remembers one batch: batch 1000 is let go
            clock.set_time(t)
            assert ssc.wait_for_batch(t, WAIT_S)
        wait_for(lambda: tracker.blocks.find(first.block_id) is None)
        assert 1000 not in tracker.block_tracker.allocated_times()
    finally:
        ssc.stop(stopSparkContext=True)
