"""A PushClient given several addresses or a resolver (dstream/client_addresses.py; issue 14).

The rotation rule is a pure value, checked with Hypothesis; the client's use of it runs against real push
receivers on 127.0.0.1 with the stepping clock of the retry tests, so pauses are counted, never timed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream.client import PushClient, PushError
from dstream.client_addresses import AddressRotation, check_addresses
from dstream.errors import DStreamValueError
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.test_push_client_retries import SteppingClock, closed_port, start_tracker, unallocated

HOST = "127.0.0.1"


@given(
    n=st.integers(min_value=1, max_value=5),
    outcomes=st.lists(st.booleans(), max_size=60),  # True: the connection to the current address worked
)
def test_a_pause_comes_only_after_every_address_failed_in_a_round(n: int, outcomes: list[bool]) -> None:
    rotation = AddressRotation(tuple((HOST, 1000 + i) for i in range(n)))
    tried: list[int] = []  # addresses that failed since the last success or pause
    for worked in outcomes:
        port = rotation.current[1]
        if worked:
            rotation = rotation.after_success()
            assert rotation.current[1] == port  # a working address is kept
            tried = []
            continue
        assert port not in tried  # no address is tried twice in a round
        tried.append(port)
        rotation, pause = rotation.after_failure()
        assert pause == (len(tried) == n)  # every address was tried before a pause
        assert rotation.current[1] == 1000 + (port - 1000 + 1) % n  # moves on to the next address
        if pause:
            tried = []


@given(
    n=st.integers(min_value=1, max_value=5),
    alive=st.integers(min_value=0, max_value=4),
    start=st.integers(0, 4),
)
def test_a_live_address_is_reached_before_any_pause(n: int, alive: int, start: int) -> None:
    rotation = AddressRotation(tuple((HOST, 1000 + i) for i in range(n)), index=start % n)
    for _ in range(n):
        if rotation.current[1] == 1000 + alive % n:
            return
        rotation, pause = rotation.after_failure()
        assert not pause
    raise AssertionError("the live address was never tried")


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[tuple[ReceiverTracker, PushReceiver]]:
    """A receiver tracker with the receiver WAL on and one push receiver on a free port."""
    tracker, receiver = start_tracker(str(tmp_path / "ckpt"), 0, recover=False)
    yield tracker, receiver
    tracker.stop()


def test_several_addresses_find_the_live_receiver_without_pausing(
    driver: tuple[ReceiverTracker, PushReceiver],
) -> None:
    tracker, receiver = driver
    clock = SteppingClock()
    addresses = [(HOST, closed_port()), (HOST, closed_port()), (HOST, receiver.port)]
    with PushClient(addresses=addresses, producer_id="p", clock=clock) as client:
        assert client.send(["a"]) == 0
        assert (client.host, client.port) == (HOST, receiver.port)
    assert clock.pauses_ms == []  # two refused connections, then the receiver: one round, no pause
    assert unallocated(tracker) == ["a"]


def test_several_dead_addresses_pause_once_per_round_and_the_error_names_them() -> None:
    clock = SteppingClock()
    ports = [closed_port(), closed_port()]
    client = PushClient(addresses=[(HOST, p) for p in ports], producer_id="p", retries_max=5, clock=clock)
    with pytest.raises(PushError, match=f"{HOST}:{ports[0]}, {HOST}:{ports[1]} failed.*after 6 attempts"):
        client.send(["x"])
    assert len(clock.pauses_ms) == 2  # after attempts 2 and 4: every address failed in each round
    client.close()


def test_a_resolver_is_asked_before_every_connection_and_its_errors_are_retried(
    driver: tuple[ReceiverTracker, PushReceiver],
) -> None:
    tracker, receiver = driver
    calls: list[int] = []

    def resolver() -> tuple[str, int]:
        calls.append(1)
        if len(calls) <= 2:
            raise LookupError("not placed yet")
        if len(calls) == 3:
            return (HOST, closed_port())  # a stale answer: the connection is refused
        return (HOST, receiver.port)

    clock = SteppingClock()
    with PushClient(resolver=resolver, producer_id="p", clock=clock, rng=random.Random(3)) as client:
        assert client.send(["a", "b"]) == 1
        assert len(calls) == 4 and len(clock.pauses_ms) == 3  # each failed answer is a round
        assert client.send(["c"]) == 2  # the connection stays up: the resolver is not asked again
        assert len(calls) == 4
    assert unallocated(tracker) == ["a", "b", "c"]


def test_a_client_follows_its_receiver_to_a_new_port_and_resumes_its_session(tmp_path: Path) -> None:
    """The move, in one process: the receiver's "driver" stops and comes back recovered, on another port."""
    ckpt = str(tmp_path / "ckpt")
    tracker, receiver = start_tracker(ckpt, 0, recover=False)
    where = [(HOST, receiver.port)]
    client = PushClient(resolver=lambda: where[-1], producer_id="p", timeout_s=30)
    try:
        assert client.send(["a", "b"]) == 1
        tracker.stop()
        tracker, receiver = start_tracker(ckpt, 0, recover=True)
        assert receiver.port != where[-1][1]
        where.append((HOST, receiver.port))
        assert client.send(["c"]) == 2  # continues its numbering on the moved receiver
        assert unallocated(tracker) == ["a", "b", "c"]
        assert receiver.producer_state("p").epoch == 1  # the same session, resumed: no new epoch
    finally:
        client.close()
        tracker.stop()


def test_a_resolver_that_keeps_failing_ends_the_send_with_its_error() -> None:
    def resolver() -> tuple[str, int]:
        raise LookupError("no receiver for stream 'orders'")

    client = PushClient(resolver=resolver, producer_id="p", timeout_s=5, clock=SteppingClock())
    with pytest.raises(PushError, match="no receiver for stream 'orders'"):
        client.send(["x"])
    client.close()


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (("127.0.0.1", 0), "port must be an int in 1..65535, got 0"),
        ("127.0.0.1:7000", r"must be a \(host, port\) pair, got '127.0.0.1:7000'"),
        ((7000, "127.0.0.1"), "host must be a non-empty str, got 7000"),
        (None, r"must be a \(host, port\) pair, got None"),
    ],
)
def test_a_resolver_answer_that_is_no_address_is_refused_naming_it(answer: Any, named: str) -> None:
    client = PushClient(resolver=lambda: answer, producer_id="p", clock=SteppingClock())
    with pytest.raises(DStreamValueError, match=f"the answer of resolver .*{named}"):
        client.send(["x"])  # refused at its first connection: nothing was sent
    assert not client.unacked
    client.close()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"producer_id": "p"}, "got none"),
        ({"host": HOST, "port": 1, "resolver": lambda: (HOST, 1), "producer_id": "p"}, "host/port, resolver"),
        ({"host": HOST, "addresses": [(HOST, 1)], "producer_id": "p"}, "host/port, addresses"),
        ({"port": 7000, "producer_id": "p"}, "host must be a non-empty str, got None"),
        ({"host": HOST, "producer_id": "p"}, "port must be an int in 1..65535, got None"),
        ({"addresses": [], "producer_id": "p"}, r"non-empty list of \(host, port\) pairs, got \[\]"),
        ({"addresses": "127.0.0.1:7000", "producer_id": "p"}, "got '127.0.0.1:7000'"),
        ({"addresses": [(HOST, 1), (HOST, 70000)], "producer_id": "p"}, r"addresses\[1\]: port .* got 70000"),
        ({"addresses": [(HOST, 1, 2)], "producer_id": "p"}, r"addresses\[0\] must be a \(host, port\) pair"),
        ({"resolver": "127.0.0.1:7000", "producer_id": "p"}, "resolver must be a callable"),
        ({"host": HOST, "port": 1}, "producer_id is required"),
        ({"host": HOST, "port": 1, "producer_id": "p", "connect_timeout_s": 0}, "connect_timeout_s=0"),
    ],
)
def test_bad_addresses_are_refused_naming_the_value(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(DStreamValueError, match=named):
        PushClient(**kwargs)


def test_check_addresses_keeps_the_order() -> None:
    assert check_addresses([(HOST, 2), [HOST, 1]]) == ((HOST, 2), (HOST, 1))
