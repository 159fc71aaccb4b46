"""spark.streaming.receiver.maxRate for every receiver: the token bucket and the supervisor's limiter."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream.clock import ManualClock
from dstream.config import ReceiverConfig
from dstream.errors import DStreamValueError
from dstream.receiver.rate_limit import RateLimiter, TokenBucket, effective_rate
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.helpers import WAIT_S, HandFedReceiver, wait_for

NOT_YET_S = 0.2  # only ever used where completing early would be a bug, never to let work finish


def started(clock: ManualClock, **settings: Any) -> tuple[ReceiverTracker, HandFedReceiver]:
    tracker = ReceiverTracker(clock, ReceiverConfig.from_conf(**settings))
    receiver = HandFedReceiver()
    tracker.add_receiver(0, receiver)
    tracker.start()
    wait_for(receiver.isStarted)
    return tracker, receiver


def stored_records(tracker: ReceiverTracker) -> int:
    return sum(info.num_records or 0 for info in tracker.block_tracker.get_unallocated_blocks(0))


def in_thread(action: Any) -> threading.Event:
    done = threading.Event()
    threading.Thread(target=lambda: (action(), done.set()), daemon=True).start()
    return done


def test_max_rate_paces_a_list_storing_receiver_on_the_clock() -> None:
    clock = ManualClock(0)
    tracker, receiver = started(clock, max_rate_per_s=100)
    receiver.store(list(range(100)))  # a full bucket: one second of records passes at once
    done = in_thread(lambda: receiver.store(list(range(250))))  # 2.5 s of tokens, taken in pieces
    assert not done.wait(NOT_YET_S)
    clock.advance(1000)
    assert not done.wait(NOT_YET_S)
    clock.advance(1000)
    assert not done.wait(NOT_YET_S)
    clock.advance(500)
    assert done.wait(WAIT_S)
    assert stored_records(tracker) == 350
    tracker.stop()


def test_max_rate_paces_single_records_too() -> None:
    clock = ManualClock(0)
    tracker, receiver = started(clock, max_rate_per_s=2)
    receiver.store("a")
    receiver.store("b")
    done = in_thread(lambda: receiver.store("c"))
    assert not done.wait(NOT_YET_S)
    clock.advance(500)
    assert done.wait(WAIT_S)
    tracker.stop()


def test_a_rate_limited_store_wakes_on_stop() -> None:
    clock = ManualClock(0)
    tracker, receiver = started(clock, max_rate_per_s=10)
    receiver.store(list(range(10)))
    done = in_thread(lambda: receiver.store(list(range(1000))))  # 100 s of clock time it never gets
    assert not done.wait(NOT_YET_S)
    tracker.stop()
    assert done.wait(WAIT_S)


def test_update_rate_limit_reaches_the_running_receiver_capped_by_max_rate() -> None:
    clock = ManualClock(0)
    tracker, _ = started(clock, max_rate_per_s=1000)
    tracker.update_rate_limit(0, 5000.0)
    assert tracker.supervisor(0).limiter.rate_per_s == 1000.0  # type: ignore[union-attr]
    tracker.update_rate_limit(0, 150.0)
    assert tracker.supervisor(0).limiter.rate_per_s == 150.0  # type: ignore[union-attr]
    with pytest.raises(DStreamValueError, match="records_per_s"):
        tracker.update_rate_limit(0, float("nan"))
    with pytest.raises(DStreamValueError, match="stream 7"):
        tracker.update_rate_limit(7, 10.0)
    tracker.stop()


@given(
    rate=st.floats(min_value=0.5, max_value=1e6),
    steps=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 10**6)), max_size=30),
)
def test_the_bucket_never_admits_more_than_a_burst_plus_the_rate_over_time(
    rate: float, steps: list[tuple[int, int]]
) -> None:
    bucket = TokenBucket.full(rate, 0)
    now_ms, taken = 0, 0
    for advance_ms, wanted in steps:
        now_ms += advance_ms
        got = bucket.take(wanted, now_ms)
        assert 0 <= got <= wanted
        taken += got
        assert taken <= bucket.capacity + rate * now_ms / 1000.0 + 1e-6
        if got < wanted:  # what is missing arrives after the announced wait
            wait = bucket.wait_ms(wanted - got)
            assert wait >= 0
            probe = TokenBucket(bucket.rate_per_s, bucket.tokens, bucket.updated_ms)
            assert probe.take(min(wanted - got, int(probe.capacity)), now_ms + wait) == min(
                wanted - got, int(probe.capacity)
            )


def test_effective_rate_is_the_estimate_capped_by_max_rate() -> None:
    assert effective_rate(None, None) is None
    assert effective_rate(100.0, None) == 100.0
    assert effective_rate(None, 50.0) == 50.0
    assert effective_rate(100.0, 500.0) == 100.0


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "10", True])
def test_bad_rates_are_refused_by_name(bad: object) -> None:
    with pytest.raises(DStreamValueError, match="rate_per_s"):
        RateLimiter(ManualClock(0), bad, threading.Event())  # type: ignore[arg-type]
