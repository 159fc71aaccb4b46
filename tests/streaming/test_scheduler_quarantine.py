"""The JobScheduler as the failed-batch policy's shell: retries in order, then a quarantiner decides
whether the batch stops being pending (no checkpoint directory or a failed copy: it stays pending)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from dstream.clock import ManualClock
from dstream.streaming.job_scheduler import Job, JobScheduler, JobSet
from dstream.streaming.listener import StreamingListener, StreamingListenerBus, StreamInputInfo
from dstream.streaming.runtime import QuarantineReceipt

WAIT_S = 10.0


class Quarantined(StreamingListener):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def onBatchQuarantined(self, batchQuarantined: Any) -> None:
        self.events.append(batchQuarantined)


class FakeQuarantiner:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.calls: list[tuple[int, int]] = []

    def quarantine(
        self, time_ms: int, input_rdds: Mapping[int, Any], error: str, attempts: int
    ) -> QuarantineReceipt:
        self.calls.append((time_ms, attempts))
        if self.fail:
            raise OSError("disk full")
        return QuarantineReceipt(f"mem://q/{time_ms}", {0: 2}, True)


def run_batches(
    quarantiner: FakeQuarantiner | None,
) -> tuple[JobScheduler, list[Any], list[Any], list[int], list[int]]:
    clock, bus = ManualClock(0), StreamingListenerBus()
    errors: list[Any] = []
    completed: list[int] = []
    scheduler = JobScheduler(
        clock, bus, lambda m, e: errors.append((m, e)), completed.append, 4, "quarantine", 3
    )
    scheduler.quarantiner = quarantiner
    listener = Quarantined()
    bus.add_listener(listener)
    bus.start()
    scheduler.start()
    order: list[int] = []

    def job(t: int) -> Job:
        def run() -> None:
            order.append(t)
            if t == 1000:
                raise ValueError("poison")

        return Job(t, 0, run)

    try:
        for t in (1000, 2000):
            scheduler.submit_job_set(JobSet(t, [job(t)], {0: StreamInputInfo(0, 2)}, 0))
        assert scheduler.wait_for_batch(2000, WAIT_S)
        assert bus.wait_until_empty(WAIT_S)
    finally:
        scheduler.stop(graceful=False, timeout_s=WAIT_S)
        bus.stop()
    return scheduler, listener.events, errors, completed, order


def test_retries_run_before_the_next_batch_then_the_batch_is_quarantined() -> None:
    quarantiner = FakeQuarantiner(fail=False)
    scheduler, events, errors, completed, order = run_batches(quarantiner)
    assert order == [1000, 1000, 1000, 2000]
    assert quarantiner.calls == [(1000, 3)]
    assert scheduler.pending_times() == [] and completed == [1000, 2000]
    assert scheduler.quarantined_times() == [1000]
    assert [str(e) for _, e in errors] == ["poison"]
    [event] = events
    assert event.location() == "mem://q/1000" and event.numRecords() == {0: 2} and event.attempts() == 3


@pytest.mark.parametrize(
    "quarantiner", [None, FakeQuarantiner(fail=True)], ids=["no-checkpoint", "copy-fails"]
)
def test_without_a_copy_the_batch_is_reported_and_stays_pending(quarantiner: FakeQuarantiner | None) -> None:
    scheduler, events, errors, completed, order = run_batches(quarantiner)
    assert order == [1000, 1000, 1000, 2000]
    assert scheduler.pending_times() == [1000] and completed == [2000]
    assert scheduler.quarantined_times() == []
    [event] = events
    assert event.location() is None and event.numRecords() == {0: 2}
    assert "poison" in event.failureReason()
    messages = [m for m, _ in errors]
    assert messages[-1] == "Error running job streaming job 1000 ms.0"
    if quarantiner is not None:
        assert messages[0] == "could not quarantine batch 1000 ms; it stays pending"
