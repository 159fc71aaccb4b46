"""Receivers under the ReceiverTracker: restarts with bounded backoff, events, durable store with the WAL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dstream.clock import ManualClock, SystemClock
from dstream.config import ReceiverConfig
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError
from dstream.receiver.block_handler import decode_block_record
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.helpers import WAIT_S, CountingReceiver, wait_for


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, int, str]] = []

    def on_receiver_started(self, stream_id: int, name: str) -> None:
        self.log.append(("started", stream_id, name))

    def on_receiver_error(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self.log.append(("error", stream_id, message))

    def on_receiver_stopped(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self.log.append(("stopped", stream_id, message))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.log]


def fast_config(**overrides: Any) -> ReceiverConfig:
    return ReceiverConfig.from_conf(restart_delay_ms=1, restart_delay_max_ms=8, **overrides)


def received(tracker: ReceiverTracker, stream_id: int) -> list[Any]:
    infos = tracker.block_tracker.get_unallocated_blocks(stream_id)
    return [
        r
        for ref in block_refs(infos, tracker.wal_location(stream_id))
        for r in read_block(ref, tracker.executor)
    ]


def test_a_receiver_whose_start_throws_is_restarted_and_its_data_flows() -> None:
    events = Events()
    tracker = ReceiverTracker(SystemClock(), fast_config(), events=events)
    receiver = CountingReceiver(100, fail_starts=2)
    tracker.add_receiver(0, receiver)
    tracker.start()
    wait_for(lambda: receiver.next == 100)
    tracker.stop()
    assert receiver.starts == 3
    assert received(tracker, 0) == list(range(100))
    kinds = events.kinds()
    assert kinds.count("started") == 1 and kinds.index("started") > kinds.index("error")
    assert any("cannot connect (attempt 2)" in m for k, _, m in events.log if k == "error")


def test_a_receiver_that_fails_while_receiving_restarts_itself_and_loses_nothing() -> None:
    events = Events()
    tracker = ReceiverTracker(SystemClock(), fast_config(), events=events)
    receiver = CountingReceiver(100, crash_at=40)
    tracker.add_receiver(3, receiver)
    tracker.start()
    wait_for(lambda: receiver.next == 100)
    tracker.stop()
    assert receiver.starts == 2
    assert received(tracker, 3) == list(range(100))
    assert any("connection reset" in m or "source failed" in m for k, _, m in events.log if k == "error")
    assert events.kinds().count("started") == 2


def test_restarts_back_off_and_are_bounded() -> None:
    events = Events()
    clock = ManualClock(0)
    config = ReceiverConfig.from_conf(restart_delay_ms=100, restart_delay_max_ms=400, restarts_max=3)
    tracker = ReceiverTracker(clock, config, events=events)
    receiver = CountingReceiver(10, fail_starts=1000)
    tracker.add_receiver(0, receiver)
    tracker.start()
    # Each restart waits on the manual clock: 100, 200, 400 ms, then the tracker gives up.
    for delay_ms, starts in ((100, 2), (200, 3), (400, 4)):
        expected = f"restarting in {delay_ms} ms"
        wait_for(
            lambda s=starts, e=expected: (
                receiver.starts == s - 1 and bool(events.log) and e in events.log[-1][2]
            )
        )
        clock.advance(delay_ms - 1)
        assert receiver.starts == starts - 1  # not before the delay has passed
        clock.advance(1)
        wait_for(lambda s=starts: receiver.starts == s)
    wait_for(lambda: bool(events.log) and "giving up" in events.log[-1][2])
    tracker.stop()
    assert receiver.starts == 4


def test_wal_store_returns_only_when_the_block_is_logged_and_tracked(tmp_path: Path) -> None:
    tracker = ReceiverTracker(SystemClock(), fast_config(wal_enabled=True), checkpoint_dir=str(tmp_path))
    seen_at_return: list[tuple[int, int]] = []

    class Checking(CountingReceiver):
        def _receive(self) -> None:
            self.store(["a", "b"], metadata={"producer": "p"})
            log = tracker.receiver_wal(0)
            seen_at_return.append(
                (len(list(log.read_all())), len(tracker.block_tracker.get_unallocated_blocks(0)))
            )

    tracker.add_receiver(0, Checking(0))
    tracker.start()
    wait_for(lambda: bool(seen_at_return))
    tracker.stop()
    assert seen_at_return == [(1, 1)]
    records = [decode_block_record(r) for r in tracker.receiver_wal(0).read_all()]
    assert [(r.records, r.metadata) for r in records] == [(["a", "b"], {"producer": "p"})]
    assert (tmp_path / "receivedData" / "0").is_dir() and (tmp_path / "receivedBlockMetadata").is_dir()


def test_single_record_store_with_wal_waits_for_its_block(tmp_path: Path) -> None:
    clock = ManualClock(0)
    tracker = ReceiverTracker(clock, fast_config(wal_enabled=True, block_interval_ms=100), str(tmp_path))
    stored = threading.Event()

    class Single(CountingReceiver):
        def _receive(self) -> None:
            self.store("only")
            stored.set()

    tracker.add_receiver(0, Single(0))
    tracker.start()
    assert not stored.wait(0.3)  # the block is not cut before the tick, so not durable
    clock.advance(100)
    assert stored.wait(WAIT_S)
    assert received(tracker, 0) == ["only"]
    tracker.stop()


def test_receiver_wal_needs_a_checkpoint_directory() -> None:
    with pytest.raises(DStreamValueError, match="without checkpoint directory"):
        ReceiverTracker(SystemClock(), ReceiverConfig(wal_enabled=True))


def test_receiver_api_before_start_is_a_state_error() -> None:
    with pytest.raises(DStreamStateError, match="store"):
        CountingReceiver(1).store(1)
    assert CountingReceiver(1).isStopped()


def test_spark_configuration_keys_are_accepted_beside_ours() -> None:
    config = ReceiverConfig.from_conf(
        {
            "spark.streaming.blockInterval": "50ms",
            "spark.streaming.receiver.maxRate": "1000",
            "spark.streaming.receiver.writeAheadLog.enable": "true",
            "spark.streaming.receiverRestartDelay": "2s",
            "dstream.receiver.queue_size_max": 4,
        }
    )
    assert (config.block_interval_ms, config.max_rate_per_s, config.wal_enabled) == (50, 1000.0, True)
    assert (config.restart_delay_ms, config.queue_size_max) == (2000, 4)
    assert (
        ReceiverConfig.from_conf(
            {"spark.streaming.blockInterval": 300}, block_interval_ms=20
        ).block_interval_ms
        == 20
    )
    with pytest.raises(DStreamValueError, match="blockInterval"):
        ReceiverConfig.from_conf({"spark.streaming.blockInterval": "soon"})
    with pytest.raises(DStreamValueError, match="block_size"):
        ReceiverConfig.from_conf(block_size=3)


def test_store_failure_reaches_the_receiver() -> None:
    tracker = ReceiverTracker(SystemClock(), fast_config())
    failures: list[BaseException] = []

    class Full(CountingReceiver):
        def _receive(self) -> None:
            try:
                self.store(list(range(10)))
            except DStreamError as exc:
                failures.append(exc)

    from dstream.backends.local_blocks import LocalBlockManager

    # The executor's holder keeps 5 records at most: a 10-record memory-only block is refused.
    tracker.blocks.block_manager = LocalBlockManager("driver", memory_records_max=5)
    tracker.add_receiver(0, Full(0))
    tracker.start()
    wait_for(lambda: bool(failures))
    tracker.stop()
    assert "memory_records_max=5" in str(failures[0])
