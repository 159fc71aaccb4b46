"""The bound on records stored but not yet allocated: storing waits, allocation and stop release it."""

from __future__ import annotations

import threading

import pytest

from dstream.clock import ManualClock
from dstream.errors import DStreamValueError
from dstream.receiver.record_budget import RecordBudget
from tests.receiver.helpers import WAIT_S
from tests.receiver.test_rate_limit import NOT_YET_S, in_thread, started, stored_records


def test_storing_waits_for_allocation_once_the_unallocated_bound_is_reached() -> None:
    clock = ManualClock(0)
    tracker, receiver = started(clock, unallocated_records_max=100)
    receiver.store(list(range(60)))
    done = in_thread(lambda: receiver.store(list(range(60))))  # 120 > 100: waits for the next batch
    assert not done.wait(NOT_YET_S)
    assert stored_records(tracker) == 60
    tracker.allocate_blocks_to_batch(1000)  # the generator's allocation gives the 60 records back
    assert done.wait(WAIT_S)
    assert stored_records(tracker) == 60  # the second block, unallocated now
    tracker.stop()


def test_a_block_larger_than_the_bound_passes_when_nothing_else_waits() -> None:
    clock = ManualClock(0)
    tracker, receiver = started(clock, unallocated_records_max=10)
    receiver.store(list(range(50)))  # never starves
    assert stored_records(tracker) == 50
    tracker.stop()


def test_a_store_waiting_on_the_bound_wakes_on_stop() -> None:
    clock = ManualClock(0)
    tracker, receiver = started(clock, unallocated_records_max=10)
    receiver.store(list(range(10)))
    done = in_thread(lambda: receiver.store(["more"]))
    assert not done.wait(NOT_YET_S)
    tracker.stop()
    assert done.wait(WAIT_S)


def test_budget_counts_blocks_by_id_and_ignores_unknown_releases() -> None:
    budget, stop = RecordBudget(5), threading.Event()
    budget.acquire("a", 3, stop)
    budget.release(["unknown", "a", "a"])
    assert budget.outstanding_records == 0


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_bad_bounds_are_refused_by_name(bad: object) -> None:
    with pytest.raises(DStreamValueError, match="records_max"):
        RecordBudget(bad)  # type: ignore[arg-type]
