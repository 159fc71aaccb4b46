"""A receiver stream across a driver restart: the tracker WAL is replayed, blocks already allocated
to a completed batch are not counted again, and the receiver is started again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from tests.receiver.helpers import CountingReceiver, wait_for
from tests.recovery.support import BATCH_MS, SINK, new_context, record, run_batches


class PicklableCountingReceiver(CountingReceiver):
    """CountingReceiver whose receiving thread stays behind when the graph is checkpointed."""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_thread"] = None
        return state


def add_values(values: list[int], state: int | None) -> int:
    return sum(values) + (state or 0)


def keyed(x: int) -> tuple[str, int]:
    return ("k", x)


def test_receiver_stream_state_survives_a_restart_without_double_counting(tmp_path: Path) -> None:
    Context(conf=Conf().setMaster("local[2]").set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    path, clock = str(tmp_path / "ckpt"), ManualClock(0)
    receiver = PicklableCountingReceiver(6, chunk=3)

    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        stream = ssc.receiverStream(receiver).map(keyed)
        stream.updateStateByKey(add_values).checkpoint(1).foreachRDD(record)
        return ssc

    first = StreamingContext.getOrCreate(path, setup, clock=clock)
    first.start()
    wait_for(lambda: receiver.next == 6)
    tracker = first.runtime.block_allocator
    assert tracker is not None
    wait_for(lambda: len(tracker.block_tracker.get_unallocated_blocks(first.graph.input_streams[0]._id)) == 2)
    run_batches(first, clock, BATCH_MS, 2 * BATCH_MS)
    first.stop(stopSparkContext=False)
    assert SINK == {1000: [("k", 15)], 2000: [("k", 15)]}
    SINK.clear()

    second = StreamingContext.getOrCreate(path, setup, clock=clock)
    second.start()
    restarted: Any = second.graph.input_streams[0]._receiver
    wait_for(lambda: second.runtime.block_allocator is not None)
    run_batches(second, clock, 3 * BATCH_MS, 4 * BATCH_MS)
    second.stop(stopSparkContext=False)
    assert restarted is not receiver and restarted.starts >= 1  # the restored receiver was started
    assert SINK == {3000: [("k", 15)], 4000: [("k", 15)]}
