"""BlockGenerator (after Spark's BlockGeneratorSuite): ticks, order, stop, errors, backpressure."""

from __future__ import annotations

import itertools
import threading

import pytest

from dstream.clock import ManualClock
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError
from dstream.receiver.block_generator import BlockGenerator
from tests.receiver.helpers import WAIT_S, Pushed, wait_for


def make(pushed: Pushed, clock: ManualClock, **kwargs: object) -> BlockGenerator:
    ids = itertools.count()
    gen = BlockGenerator(pushed.push, pushed.on_error, lambda: f"b{next(ids)}", clock, **kwargs)  # type: ignore[arg-type]
    gen.start()
    return gen


def test_blocks_are_cut_on_clock_ticks_and_pushed_in_order() -> None:
    clock, pushed = ManualClock(0), Pushed()
    gen = make(pushed, clock, block_interval_ms=100)
    for i in range(5):
        gen.add_data(i)
    assert pushed.blocks == []  # nothing before the tick
    clock.advance(100)
    wait_for(lambda: len(pushed.blocks) == 1)
    for i in range(5, 8):
        gen.add_data(i)
    clock.advance(100)
    wait_for(lambda: len(pushed.blocks) == 2)
    assert pushed.blocks == [("b0", [0, 1, 2, 3, 4]), ("b1", [5, 6, 7])]
    gen.stop()


def test_stop_flushes_the_last_block_and_refuses_more_data() -> None:
    clock, pushed = ManualClock(0), Pushed()
    gen = make(pushed, clock, block_interval_ms=100)
    pending = [gen.add_data(i) for i in range(3)]
    gen.stop()
    assert pushed.records() == [0, 1, 2]
    pending[0].wait(WAIT_S)  # the final block was pushed
    with pytest.raises(DStreamStateError, match="stopped"):
        gen.add_data(3)
    with pytest.raises(DStreamStateError, match="starts once"):
        gen.start()


def test_push_errors_reach_on_error_and_the_waiting_store() -> None:
    clock, pushed = ManualClock(0), Pushed()
    pushed.fail = True
    gen = make(pushed, clock, block_interval_ms=100)
    pending = gen.add_data("x")
    clock.advance(100)
    with pytest.raises(DStreamError, match="store failed"):
        pending.wait(WAIT_S)
    assert [type(e) for _, e in pushed.errors] == [OSError]
    gen.stop()


def test_a_slow_store_blocks_the_producer_instead_of_buffering_without_bound() -> None:
    clock, pushed = ManualClock(0), Pushed()
    pushed.gate.clear()  # the store is stuck
    gen = make(pushed, clock, block_interval_ms=100, queue_size_max=1, block_records_max=2)
    added: list[int] = []

    def produce() -> None:
        for i in range(20):
            gen.add_data(i)
            added.append(i)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # One block in the pusher, one queued, one buffer being filled: the producer must stall.
    wait_for(lambda: len(added) >= 5)
    producer.join(0.3)
    assert producer.is_alive() and len(added) <= 8
    pushed.gate.set()
    producer.join(WAIT_S)
    assert not producer.is_alive()
    gen.stop()
    assert pushed.records() == list(range(20))
    assert max(len(rs) for _, rs in pushed.blocks) <= 2


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"block_interval_ms": 0}, "block_interval_ms"),
        ({"queue_size_max": -1}, "queue_size_max"),
        ({"block_records_max": 1.5}, "block_records_max"),
    ],
)
def test_bad_limits_are_refused_by_name(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(DStreamValueError, match=named):
        BlockGenerator(lambda b, r: None, lambda m, e: None, lambda: "b", ManualClock(0), **kwargs)  # type: ignore[arg-type]


def test_add_many_joins_the_current_block_and_cuts_at_block_records_max() -> None:
    clock, pushed = ManualClock(0), Pushed()
    gen = make(pushed, clock, block_interval_ms=100, block_records_max=4)
    gen.add_data("a")
    joined = gen.add_many(["b", "c", "d", "e", "f"])  # fills the first block, starts the next
    assert len(joined) == 2 and gen.records_added == 6
    wait_for(lambda: len(pushed.blocks) == 1)
    gen.add_many(["g"])
    assert gen.wait_for_timer(0, WAIT_S) == 100
    clock.advance(100)
    assert gen.wait_for_pushed(7, WAIT_S)
    assert pushed.blocks == [("b0", ["a", "b", "c", "d"]), ("b1", ["e", "f", "g"])]
    joined[-1].wait(WAIT_S)
    gen.stop()


def test_add_many_blocks_while_the_queue_is_full() -> None:
    clock, pushed = ManualClock(0), Pushed()
    pushed.gate.clear()  # the pusher holds the first block
    gen = make(pushed, clock, block_records_max=2, queue_size_max=1)
    adder = threading.Thread(target=gen.add_many, args=(list(range(8)),), daemon=True)
    adder.start()
    assert gen.wait_until_blocked(WAIT_S)  # one block pushing, one queued, the third waits
    assert adder.is_alive()
    pushed.gate.set()
    adder.join(WAIT_S)
    assert not adder.is_alive()
    gen.stop()
    assert pushed.records() == list(range(8))
