"""The initial metadata checkpoint: a fresh context with a checkpoint directory publishes one (its graph
at the zero time) before any receiver starts, so a driver stopped before its first batch's checkpoint
restarts through recovery, replays the tracker's WAL and runs every batch it missed with the blocks its
receivers stored. Start fails with a clear error when that checkpoint cannot be published. (The SIGKILL
proofs are in tests/e2e/test_push_to_sink_sigkill.py: at the initial publish, at the first batch's.)"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

import checkpoint.metadata_writer as metadata_writer
from checkpoint.metadata import list_checkpoints, read_latest
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.errors import DStreamError
from dstream.streaming import StreamingContext
from tests.receiver.helpers import CountingReceiver, wait_for
from tests.recovery.support import BATCH_MS, SINK, new_context, record, run_batches


class CheckingReceiver(CountingReceiver):
    """Stores 0..total-1; notes, when started, which metadata checkpoints were already durable."""

    def __init__(self, total: int, checkpoint_dir: str) -> None:
        super().__init__(total, chunk=3)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoints_at_start: list[Any] = []

    def onStart(self) -> None:
        self.checkpoints_at_start = list_checkpoints(self.checkpoint_dir)
        super().onStart()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_thread"] = None
        return state


def test_a_fresh_context_publishes_its_initial_checkpoint_before_the_receiver_starts(tmp_path: Path) -> None:
    path, clock = str(tmp_path / "ckpt"), ManualClock(0)
    receiver = CheckingReceiver(6, path)
    ssc = new_context(clock, path)
    ssc.receiverStream(receiver).foreachRDD(record)
    ssc.start()
    wait_for(lambda: receiver.next == 6)
    assert len(receiver.checkpoints_at_start) == 1
    ckpt, skipped = read_latest(path)
    assert ckpt is not None and skipped == []
    assert ckpt.batch_ms == ssc.graph.zero_time_ms == 0
    assert ckpt.pending_batches == ()
    assert ckpt.extra["completed"] is False


def test_a_driver_stopped_before_its_first_batch_recovers_what_its_receiver_stored(tmp_path: Path) -> None:
    Context(conf=Conf().setMaster("local[2]").set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    path, clock = str(tmp_path / "ckpt"), ManualClock(0)
    receiver = CheckingReceiver(6, path)

    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        ssc.receiverStream(receiver).foreachRDD(record)
        return ssc

    first = StreamingContext.getOrCreate(path, setup, clock=clock)
    first.start()
    wait_for(lambda: receiver.next == 6)
    tracker = first.runtime.block_allocator
    assert tracker is not None
    wait_for(lambda: len(tracker.block_tracker.get_unallocated_blocks(first.graph.input_streams[0]._id)) == 2)
    first.stop(stopSparkContext=False)  # no batch ran: only the initial checkpoint is there
    assert SINK == {}

    clock.set_time(2 * BATCH_MS + 500)  # two batch times passed while the driver was down
    second = StreamingContext.getOrCreate(path, setup, clock=clock)
    assert second.recovered is not None and second.recovered.checkpoint_ms == 0
    second.start()
    run_batches(second, clock, 3 * BATCH_MS, 3 * BATCH_MS)
    assert second.wait_for_batch(2 * BATCH_MS, 30.0)
    second.stop(stopSparkContext=False)
    # The missed batches re-run (1000 ms takes the stored blocks), then the timer resumes at 3000 ms.
    assert {1000: list(range(6)), 2000: [], 3000: []} == SINK


def test_start_fails_with_a_clear_error_when_the_initial_checkpoint_cannot_be_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise OSError(errno.EIO, "storage refused the write (simulated)")

    monkeypatch.setattr(metadata_writer, "write_checkpoint", refuse)
    path, clock = str(tmp_path / "ckpt"), ManualClock(0)
    receiver = CheckingReceiver(6, path)
    ssc = new_context(clock, path)
    ssc.receiverStream(receiver).foreachRDD(record)
    with pytest.raises(DStreamError, match=r"initial metadata checkpoint could not be written to .*refused"):
        ssc.start()
    assert receiver.starts == 0  # nothing was received, so nothing acknowledged
    assert StreamingContext.getActive() is None
