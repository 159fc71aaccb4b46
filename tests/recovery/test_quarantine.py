"""Poison batches: a batch whose job fails every time must not pin WAL cleanup forever.

A receiver stream with the receiver WAL and a checkpoint directory; the output raises for one batch's
data. With the `quarantine` policy the batch is retried a bounded number of times, its input lands in
`<checkpoint>/quarantine/`, it stops being pending and cleanup moves past it. `fail-stop` keeps
Spark's behaviour (the batch stays pending and pins cleanup).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from checkpoint.metadata import list_checkpoints, read_checkpoint
from checkpoint.quarantine import Quarantine
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.errors import JobFailedError
from dstream.streaming import StreamingContext
from dstream.streaming.listener import StreamingListener
from tests.receiver.helpers import HandFedReceiver, wait_for
from tests.recovery.support import BATCH_MS, WAIT_S

POISON = 666
BATCHES = 10  # with 10 checkpoints kept (2 per batch), cleanup passes batch 3 from batch 9 on
POISON_BATCH_MS = 3 * BATCH_MS
CALLS: dict[int, int] = {}  # batch ms -> how many times the output ran on it
FLAKY_FAILURES: list[int] = []  # batch times whose first run already failed once


def poison_output(t: Any, rdd: Any) -> None:
    """Fails deterministically on the batch holding POISON."""
    ms = round(t.timestamp() * 1000)
    CALLS[ms] = CALLS.get(ms, 0) + 1
    if POISON in rdd.collect():
        raise ValueError(f"poison record {POISON} in batch {ms}")


def flaky_output(t: Any, rdd: Any) -> None:
    """Fails the first run of the batch holding POISON only."""
    ms = round(t.timestamp() * 1000)
    CALLS[ms] = CALLS.get(ms, 0) + 1
    if POISON in rdd.collect() and ms not in FLAKY_FAILURES:
        FLAKY_FAILURES.append(ms)
        raise ValueError(f"transient failure of batch {ms}")


class QuarantineEvents(StreamingListener):
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def onBatchQuarantined(self, batchQuarantined: Any) -> None:
        with self.lock:
            self.events.append(batchQuarantined)


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FLAKY_FAILURES.clear()


def batch_records(index: int) -> list[int]:
    """The records of batch `index` (1-based); batch 3 holds the poison."""
    return [POISON, POISON + 1] if index * BATCH_MS == POISON_BATCH_MS else [index * 10, index * 10 + 1]


def start_context(path: str, clock: ManualClock, conf: dict[str, str], output: Any) -> StreamingContext:
    sc_conf = Conf().setMaster("local[2]").set("spark.streaming.receiver.writeAheadLog.enable", "true")
    for key, value in conf.items():
        sc_conf.set(key, value)
    sc = Context.getOrCreate(sc_conf)
    ssc = StreamingContext(sc, BATCH_MS / 1000, clock=clock)
    ssc.checkpoint(path)
    ssc.receiverStream(HandFedReceiver()).foreachRDD(output)
    return ssc


def feed_and_run(
    ssc: StreamingContext, clock: ManualClock, receiver: HandFedReceiver, index: int, checkpoints: int
) -> None:
    """Store batch `index`'s records, run that batch, wait for it and until `checkpoints` are written."""
    tracker: Any = ssc.runtime.block_allocator
    stream_id = ssc.graph.input_streams[0]._id
    receiver.store(batch_records(index))
    wait_for(lambda: len(tracker.block_tracker.get_unallocated_blocks(stream_id)) == 1)
    t = index * BATCH_MS
    clock.set_time(t)
    assert ssc.wait_for_batch(t, WAIT_S), f"batch {t} ms was not processed in {WAIT_S}s"
    checkpointer: Any = ssc.runtime.checkpointer
    wait_for(lambda: checkpointer.metadata_written >= checkpoints)


def run(
    path: str, conf: dict[str, str], output: Any = poison_output, pinned: bool = False
) -> tuple[StreamingContext, Any]:
    """Run BATCHES batches; each writes a generated and a completion checkpoint (a `pinned` poison batch
    never completes, so it writes only the first)."""
    clock = ManualClock(0)
    ssc = start_context(path, clock, conf, output)
    events = QuarantineEvents()
    ssc.addStreamingListener(events)
    ssc.start()
    receiver: Any = ssc.graph.input_streams[0]._receiver
    wait_for(lambda: receiver.isStarted())
    checkpoints = 0
    for index in range(1, BATCHES + 1):
        checkpoints += 1 if pinned and index * BATCH_MS == POISON_BATCH_MS else 2
        feed_and_run(ssc, clock, receiver, index, checkpoints)
    assert ssc.runtime.bus.wait_until_empty(WAIT_S)
    return ssc, events


def newest_checkpoint(path: str) -> Any:
    return read_checkpoint(path, list_checkpoints(path)[-1])


def test_a_poison_batch_is_quarantined_and_cleanup_moves_past_it(tmp_path: Path) -> None:
    path = str(tmp_path / "ckpt")
    ssc, events = run(path, {})  # the default policy is quarantine, 3 attempts
    tracker: Any = ssc.runtime.block_allocator
    stream_id = ssc.graph.input_streams[0]._id
    wait_for(lambda: tracker.block_tracker.cleaned_before_ms > POISON_BATCH_MS)
    ckpt = newest_checkpoint(path)
    with pytest.raises(JobFailedError, match="poison record"):
        ssc.awaitTerminationOrTimeout(0.01)  # the failure is still reported, as for any failed job
    ssc.stop(stopSparkContext=True)

    assert CALLS[POISON_BATCH_MS] == 3 and all(CALLS[i * BATCH_MS] == 1 for i in range(4, BATCHES + 1))
    assert POISON_BATCH_MS not in ckpt.pending_batches
    assert ckpt.wal_needed_from_ms > POISON_BATCH_MS
    assert ckpt.extra["quarantined_batches"] == [POISON_BATCH_MS]
    assert POISON_BATCH_MS not in tracker.block_tracker.allocated_times()

    quarantine = Quarantine(path)
    assert quarantine.batch_times() == [POISON_BATCH_MS]
    batch = quarantine.get(POISON_BATCH_MS)
    assert batch is not None and batch.attempts == 3
    assert batch.records == {str(stream_id): [POISON, POISON + 1]}
    assert "ValueError: poison record 666" in batch.error
    assert batch.error_first_line() == f"ValueError: poison record 666 in batch {POISON_BATCH_MS}"

    [event] = events.events
    assert event.batchTime().milliseconds() == POISON_BATCH_MS and event.attempts() == 3
    assert event.numRecords() == {stream_id: 2}
    assert event.location() == quarantine.location(POISON_BATCH_MS)
    assert "poison record" in event.failureReason()


def test_fail_stop_keeps_the_poison_batch_pending(tmp_path: Path) -> None:
    path = str(tmp_path / "ckpt")
    ssc, events = run(path, {"dstream.streaming.failedBatchPolicy": "fail-stop"}, pinned=True)
    ckpt = newest_checkpoint(path)
    tracker: Any = ssc.runtime.block_allocator
    with pytest.raises(JobFailedError, match="poison record"):
        ssc.awaitTerminationOrTimeout(0.01)
    ssc.stop(stopSparkContext=True)

    assert CALLS[POISON_BATCH_MS] == 1  # no retries
    assert POISON_BATCH_MS in ckpt.pending_batches
    assert ckpt.wal_needed_from_ms == POISON_BATCH_MS  # pins cleanup, as in Spark
    assert POISON_BATCH_MS in tracker.block_tracker.allocated_times()
    assert Quarantine(path).batch_times() == [] and events.events == []


def test_a_batch_that_fails_once_then_succeeds_is_not_quarantined(tmp_path: Path) -> None:
    path = str(tmp_path / "ckpt")
    ssc, events = run(path, {"dstream.streaming.failedBatchAttemptsMax": "2"}, output=flaky_output)
    ckpt = newest_checkpoint(path)
    assert ssc.awaitTerminationOrTimeout(0.01) is False  # a retried success is no failure
    ssc.stop(stopSparkContext=True)

    assert CALLS[POISON_BATCH_MS] == 2 and FLAKY_FAILURES == [POISON_BATCH_MS]
    assert POISON_BATCH_MS not in ckpt.pending_batches
    assert ckpt.extra["quarantined_batches"] == []
    assert Quarantine(path).batch_times() == [] and events.events == []
