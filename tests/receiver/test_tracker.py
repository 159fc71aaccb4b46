"""ReceivedBlockTracker: Spark's ReceivedBlockTrackerSuite cases, the record format, and a stateful test."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dstream.clock import ManualClock
from dstream.errors import DStreamValueError
from dstream.receiver.received_block_tracker import (
    BatchAllocated,
    BatchesCleaned,
    BlockAdded,
    ReceivedBlockInfo,
    ReceivedBlockTracker,
    TrackerFailedError,
    TrackerLogError,
    decode_event,
    encode_event,
)
from tests.receiver.fakes import FailingLog, LateCommitLog, open_memory_wal
from wal import open_wal

GOLDEN = Path(__file__).parent / "golden"


def blocks(stream_id: int, first: int, count: int) -> list[ReceivedBlockInfo]:
    return [
        ReceivedBlockInfo(stream_id, f"b-{stream_id}-{i}", 10, ("seg", i), None)
        for i in range(first, first + count)
    ]


def test_block_addition_and_allocation_without_wal() -> None:
    tracker = ReceivedBlockTracker(ManualClock(0), stream_ids=[1])
    assert not tracker.is_write_ahead_log_enabled
    added = blocks(1, 0, 5)
    for b in added:
        tracker.add_block(b)
    assert tracker.get_unallocated_blocks(1) == tuple(added)
    assert tracker.has_unallocated_received_blocks()
    tracker.allocate_blocks_to_batch(1)
    assert tracker.get_blocks_of_batch_and_stream(1, 1) == tuple(added)
    assert tracker.get_blocks_of_batch(1) == {1: tuple(added)}
    assert tracker.get_unallocated_blocks(1) == ()
    assert not tracker.has_unallocated_received_blocks()
    tracker.allocate_blocks_to_batch(2)
    assert tracker.get_blocks_of_batch(2) == {1: ()}
    tracker.allocate_blocks_to_batch(1)  # re-allocating an allocated time is a no-op
    assert tracker.get_blocks_of_batch_and_stream(1, 1) == tuple(added)
    later = blocks(1, 5, 3)
    for b in later:
        tracker.add_block(b)
    tracker.allocate_blocks_to_batch(2)
    assert tracker.get_blocks_of_batch(2) == {1: ()}
    assert tracker.get_unallocated_blocks(1) == tuple(later)


def events_in(log: FailingLog) -> list[object]:
    return [decode_event(r) for r in log.read_all()]


def test_many_blocks_allocated_in_one_event() -> None:
    log = FailingLog(open_memory_wal())
    tracker = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log)
    added = blocks(1, 0, 5_000)
    for b in added:
        tracker.add_block(b)
    tracker.allocate_blocks_to_batch(1)
    events = events_in(log)
    assert [type(e) for e in events] == [BlockAdded] * 5_000 + [BatchAllocated]
    assert events[-1] == BatchAllocated(1, {1: tuple(added)})


def test_recovery_removes_only_allocated_blocks_from_queue() -> None:
    log = FailingLog(open_memory_wal())
    added = blocks(1, 0, 10)
    for b in added:
        log.write(encode_event(BlockAdded(b)), 0)
    log.write(encode_event(BatchAllocated(7, {1: tuple(added[:5])})), 0)
    recovered = ReceivedBlockTracker(ManualClock(10), stream_ids=[1], log=log, recover=True)
    assert recovered.get_blocks_of_batch(7) == {1: tuple(added[:5])}
    assert recovered.get_unallocated_blocks(1) == tuple(added[5:])
    assert all(not b.block_valid for b in recovered.get_unallocated_blocks(1))


def test_failed_allocation_write_propagates_and_loses_no_block() -> None:
    log = FailingLog(open_memory_wal())
    tracker = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log)
    added = blocks(1, 0, 5)
    for b in added:
        tracker.add_block(b)
    log.fail_next_writes = 1
    with pytest.raises(OSError, match="injected"):
        tracker.allocate_blocks_to_batch(1)
    assert tracker.get_unallocated_blocks(1) == tuple(added)
    assert tracker.get_blocks_of_batch(1) == {}
    tracker.allocate_blocks_to_batch(2)
    assert tracker.get_blocks_of_batch_and_stream(2, 1) == tuple(added)
    recovered = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log, recover=True)
    assert recovered.get_unallocated_blocks(1) == ()
    assert recovered.get_blocks_of_batch_and_stream(2, 1) == tuple(added)


def test_failed_add_write_raises_and_queues_nothing() -> None:
    log = FailingLog(open_memory_wal())
    tracker = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log)
    log.fail_next_writes = 1
    with pytest.raises(OSError):
        tracker.add_block(blocks(1, 0, 1)[0])
    assert tracker.get_unallocated_blocks(1) == ()


def test_a_timed_out_allocation_stops_the_tracker_and_a_late_commit_allocates_each_block_once() -> None:
    log = LateCommitLog(open_memory_wal())
    tracker = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log)
    added = blocks(1, 0, 3)
    for b in added:
        tracker.add_block(b)
    log.time_out_next_write = True
    with pytest.raises(TimeoutError, match="injected"):
        tracker.allocate_blocks_to_batch(1000)
    assert tracker.failure is not None
    # Memory and log may now disagree: every further event is refused rather than guessed at.
    with pytest.raises(TrackerFailedError, match="rebuild"):
        tracker.allocate_blocks_to_batch(2000)
    with pytest.raises(TrackerFailedError):
        tracker.add_block(blocks(1, 3, 1)[0])
    with pytest.raises(TrackerFailedError):
        tracker.cleanup_old_batches(-1)
    log.land()  # the timed-out allocation commits after all
    rebuilt = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log, recover=True)
    assert rebuilt.get_blocks_of_batch_and_stream(1000, 1) == tuple(added)
    assert rebuilt.get_unallocated_blocks(1) == ()
    rebuilt.allocate_blocks_to_batch(2000)  # the rebuilt tracker goes on
    assert rebuilt.get_blocks_of_batch(2000) == {1: ()}


def test_replay_gives_a_block_to_the_first_allocation_that_names_it_only() -> None:
    # The log a tracker without fail-stop would leave: alloc 1000 landed late, after alloc 2000 took b0, b1.
    log = FailingLog(open_memory_wal())
    added = blocks(1, 0, 3)
    for b in added[:2]:
        log.write(encode_event(BlockAdded(b)), 0)
    log.write(encode_event(BatchAllocated(2000, {1: tuple(added[:2])})), 0)
    log.write(encode_event(BlockAdded(added[2])), 0)
    log.write(encode_event(BatchAllocated(1000, {1: tuple(added[:2])})), 0)  # late
    log.write(encode_event(BlockAdded(added[0])), 0)  # and a late duplicate add
    recovered = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log, recover=True)
    assert [b.block_id for b in recovered.get_blocks_of_batch_and_stream(2000, 1)] == ["b-1-0", "b-1-1"]
    assert recovered.get_blocks_of_batch_and_stream(1000, 1) == ()
    assert [b.block_id for b in recovered.get_unallocated_blocks(1)] == ["b-1-2"]


def test_a_cleanly_failed_write_does_not_stop_the_tracker() -> None:
    log = FailingLog(open_memory_wal())
    tracker = ReceivedBlockTracker(ManualClock(0), stream_ids=[1], log=log)
    log.fail_next_writes = 1
    with pytest.raises(OSError):
        tracker.allocate_blocks_to_batch(1000)
    assert tracker.failure is None
    tracker.allocate_blocks_to_batch(2000)
    assert tracker.get_blocks_of_batch(2000) == {1: ()}


def test_cleaned_write_times_are_kept_per_stream() -> None:
    log = FailingLog(open_memory_wal())
    clock = ManualClock(0)
    tracker = ReceivedBlockTracker(clock, stream_ids=[0, 1], log=log)
    tracker.add_block(ReceivedBlockInfo(0, "s0", 1, ("h", 0), None, True, 1500))
    clock.set_time(2000)
    tracker.allocate_blocks_to_batch(2000)
    clock.set_time(3000)
    tracker.cleanup_old_batches(2500)
    assert (tracker.cleaned_written_max_ms(0), tracker.cleaned_written_max_ms(1)) == (1500, -1)
    recovered = ReceivedBlockTracker(clock, [0, 1], log, recover=True)
    assert (recovered.cleaned_written_max_ms(0), recovered.cleaned_written_max_ms(1)) == (1500, -1)


def test_recovery_and_cleanup(tmp_path: Path) -> None:
    clock = ManualClock(1000)
    # Rolling every second while the clock moves 2 s per step: every step starts a new segment.
    log = FailingLog(open_wal(str(tmp_path / "meta"), rolling_interval_ms=1000))
    tracker = ReceivedBlockTracker(clock, stream_ids=[1], log=log)
    first, second = blocks(1, 0, 5), blocks(1, 5, 5)
    for b in first:
        tracker.add_block(b)
    assert ReceivedBlockTracker(clock, [1], log, recover=False).get_unallocated_blocks(1) == ()
    assert ReceivedBlockTracker(clock, [1], log, recover=True).get_unallocated_blocks(1) == tuple(first)
    clock.set_time(3000)
    tracker.allocate_blocks_to_batch(3000)
    clock.set_time(5000)
    for b in second:
        tracker.add_block(b)
    tracker.allocate_blocks_to_batch(5000)
    kinds = [type(e).__name__ for e in events_in(log)]
    assert kinds == ["BlockAdded"] * 5 + ["BatchAllocated"] + ["BlockAdded"] * 5 + ["BatchAllocated"]
    recovered = ReceivedBlockTracker(clock, [1], log, recover=True)
    assert recovered.get_blocks_of_batch_and_stream(3000, 1) == tuple(first)
    assert recovered.get_blocks_of_batch_and_stream(5000, 1) == tuple(second)
    assert not recovered.has_unallocated_received_blocks()
    clock.set_time(7000)
    tracker.cleanup_old_batches(5000, wait=True)
    assert tracker.get_blocks_of_batch(3000) == {}
    assert events_in(log)[-1] == BatchesCleaned((3000,), 5000, 5000, {}, -1)
    assert events_in(log)[0] == BlockAdded(second[0])  # the segments before 5000 are gone
    recovered = ReceivedBlockTracker(clock, [1], log, recover=True)
    assert recovered.get_blocks_of_batch(3000) == {}
    assert recovered.get_blocks_of_batch_and_stream(5000, 1) == tuple(second)
    assert recovered.cleaned_before_ms == 5000


def test_replaying_stale_segments_that_cleanup_missed_gives_the_same_state(tmp_path: Path) -> None:
    clock = ManualClock(0)
    root = tmp_path / "meta"
    tracker = ReceivedBlockTracker(clock, [1], open_wal(str(root), rolling_interval_ms=1000))
    for t in (1000, 2000, 3000, 4000):
        clock.set_time(t)
        for b in blocks(1, t, 2):
            tracker.add_block(b)
        tracker.allocate_blocks_to_batch(t)
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    clock.set_time(5000)
    tracker.cleanup_old_batches(3000, wait=True)
    expected = tracker.snapshot()
    deleted = sorted(set(before) - {p.name for p in root.iterdir()})
    assert deleted, "cleanup should have deleted the oldest segments"
    # Put the deleted segments back, newest first, as if deleting them had failed; state is unchanged.
    for name in reversed(deleted):
        (root / name).write_bytes(before[name])
        recovered = ReceivedBlockTracker(clock, [1], open_wal(str(root)), recover=True)
        assert recovered.snapshot() == expected


def test_cleanup_threshold_must_be_in_the_past() -> None:
    tracker = ReceivedBlockTracker(ManualClock(100), [1])
    with pytest.raises(DStreamValueError, match="150"):
        tracker.cleanup_old_batches(150)


def test_add_block_rejects_non_info() -> None:
    with pytest.raises(DStreamValueError, match="ReceivedBlockInfo"):
        ReceivedBlockTracker(ManualClock(0), [1]).add_block(("not", "an", "info"))  # type: ignore[arg-type]


EVENTS = {
    "add": BlockAdded(
        ReceivedBlockInfo(
            3, "input-3-17", 42, ("log-0-1000", 96, 512), {"producer": "p", "seq": 9}, True, 1500
        )
    ),
    "alloc": BatchAllocated(2000, {3: (ReceivedBlockInfo(3, "input-3-17", 42, None, None),), 4: ()}),
    "clean": BatchesCleaned((1000, 2000), 3000, 2000, {3: 1500, 4: 900}, 700),
}
# Version 1 wrote one maximum for all streams; it is read back as every stream's floor.
EVENTS_V1 = {**EVENTS, "clean": BatchesCleaned((1000, 2000), 3000, 2000, {}, 1500)}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_event_records_match_golden_files(name: str) -> None:
    golden = (GOLDEN / f"tracker-event-v2-{name}.bin").read_bytes()
    assert encode_event(EVENTS[name]) == golden
    assert decode_event(golden) == EVENTS[name]


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_version_1_records_are_still_read(name: str) -> None:
    golden = (GOLDEN / f"tracker-event-v1-{name}.bin").read_bytes()
    assert golden[:4] == b"RBT\x01"
    assert decode_event(golden) == EVENTS_V1[name]


def test_a_version_1_cleanup_keeps_every_stream_at_its_maximum() -> None:
    log = FailingLog(open_memory_wal())
    log.write((GOLDEN / "tracker-event-v1-clean.bin").read_bytes(), 0)
    recovered = ReceivedBlockTracker(ManualClock(5000), [3, 4], log, recover=True)
    assert recovered.cleaned_written_max_ms(3) == recovered.cleaned_written_max_ms(4) == 1500
    recovered.cleanup_old_batches(4000)  # the floor is carried on, so the v1 record may be cleaned
    last = events_in(log)[-1]
    assert isinstance(last, BatchesCleaned) and last.written_max_all_ms == 1500


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_golden_files_follow_the_documented_layout(name: str) -> None:
    golden = (GOLDEN / f"tracker-event-v2-{name}.bin").read_bytes()
    assert golden[:4] == b"RBT\x02"
    body = pickle.loads(golden[4:])
    expected = {
        "add": ("add", (3, "input-3-17", 42, ("log-0-1000", 96, 512), {"producer": "p", "seq": 9}, 1500)),
        "alloc": ("alloc", 2000, ((3, ((3, "input-3-17", 42, None, None, None),)), (4, ()))),
        "clean": ("clean", (1000, 2000), 3000, 2000, ((3, 1500), (4, 900)), 700),
    }
    assert body == expected[name]


def test_decoded_blocks_are_marked_invalid() -> None:
    event = decode_event(encode_event(EVENTS["add"]))
    assert isinstance(event, BlockAdded) and not event.info.block_valid


@pytest.mark.parametrize("record", [b"XYZ\x01abc", b"RBT\x03" + encode_event(EVENTS["clean"])[4:], b"RB"])
def test_foreign_or_future_records_are_refused(record: bytes) -> None:
    with pytest.raises(TrackerLogError):
        decode_event(record)


class TrackerMachine(RuleBasedStateMachine):
    """Random add/allocate/cleanup runs: after every prefix, replay equals the live state and a model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(1)
        # A real WAL rolling every 2 ms while each event advances the clock 1 ms: cleanup deletes often.
        self.log = open_memory_wal(rolling_interval_ms=2)
        self.tracker = ReceivedBlockTracker(self.clock, [0, 1], self.log)
        self.next_block = 0
        # Plain-Python model: queued (block_id, write_time) per stream; allocations per time.
        self.queues: dict[int, list[tuple[str, int]]] = {0: [], 1: []}
        self.allocated: dict[int, dict[int, list[str]]] = {}
        self.last_allocated: int | None = None
        self.written: dict[str, int] = {}
        self.cleaned_written_max = {0: -1, 1: -1}  # per stream: one stream's cleanup says nothing of another

    def tick(self) -> int:
        self.clock.advance(1)
        return self.clock.time_ms()

    @rule(stream=st.sampled_from([0, 1]), count=st.integers(1, 3))
    def add(self, stream: int, count: int) -> None:
        for _ in range(count):
            now = self.tick()
            block_id = f"b{self.next_block}"
            self.next_block += 1
            self.tracker.add_block(ReceivedBlockInfo(stream, block_id, 1, ("h", block_id), None, True, now))
            self.queues[stream].append((block_id, now))

    @rule(back=st.integers(0, 3))
    def allocate(self, back: int) -> None:
        # Batch time = the clock time it is allocated at; sometimes re-allocate an old time (a no-op).
        time_ms = self.tick() if back == 0 or self.last_allocated is None else self.last_allocated - back
        self.tracker.allocate_blocks_to_batch(time_ms)
        if self.last_allocated is None or time_ms > self.last_allocated:
            self.allocated[time_ms] = {s: [b for b, _ in q] for s, q in self.queues.items()}
            self.written.update((b, t) for q in self.queues.values() for b, t in q)
            self.queues = {0: [], 1: []}
            self.last_allocated = time_ms

    @precondition(lambda self: self.allocated)
    @rule(pick=st.integers(0, 50))
    def cleanup(self, pick: int) -> None:
        now = self.tick()
        # The log may lose every record before the threshold: stay at or before any queued block's write.
        oldest_queued = min((t for q in self.queues.values() for _, t in q), default=now)
        threshold = min(sorted(self.allocated)[pick % len(self.allocated)] + 1, oldest_queued, now - 1)
        self.tracker.cleanup_old_batches(threshold, wait=True)
        for t in [t for t in self.allocated if t < threshold]:
            for s, ids in self.allocated.pop(t).items():
                cleaned = [self.cleaned_written_max[s], *(self.written[b] for b in ids)]
                self.cleaned_written_max[s] = max(cleaned)

    @invariant()
    def matches_model(self) -> None:
        for s in (0, 1):
            assert [b.block_id for b in self.tracker.get_unallocated_blocks(s)] == [
                b for b, _ in self.queues[s]
            ]
        for t, alloc in self.allocated.items():
            got = self.tracker.get_blocks_of_batch(t)
            assert {s: [b.block_id for b in bs] for s, bs in got.items()} == alloc
        assert self.tracker.allocated_times() == tuple(sorted(self.allocated))
        for s in (0, 1):
            assert self.tracker.cleaned_written_max_ms(s) == self.cleaned_written_max[s]

    @invariant()
    def replay_gives_the_same_state(self) -> None:
        recovered = ReceivedBlockTracker(self.clock, [0, 1], self.log, recover=True)
        assert recovered.snapshot() == self.tracker.snapshot()


TrackerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_tracker_state_machine = TrackerMachine.TestCase
