"""PushClient retries with exponential back-off and jitter until its timeout_s (issue 12).

It used to give up after 20 retries 20 ms apart (0.43 s) whatever its timeout_s, shorter than any receiver
restart. Time is injected: `SteppingClock` moves to the end of each pause at once and records it, so
these tests take no wall-clock time waiting and assert no timings of the machine they run on.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

import pytest

from dstream.client import PushClient, PushError
from dstream.clock import Clock, SystemClock
from dstream.config import ReceiverConfig
from dstream.errors import DStreamValueError
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.helpers import WAIT_S, wait_for

STREAM = 0
CONFIG = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=1)


class SteppingClock(Clock):
    """Simulated time for the client: a wait jumps to its target at once; every pause is recorded."""

    def __init__(self) -> None:
        self.now_ms = 1_000_000
        self.pauses_ms: list[int] = []

    def time_ms(self) -> int:
        return self.now_ms

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        self.pauses_ms.append(target_ms - self.now_ms)
        self.now_ms = max(self.now_ms, target_ms)
        return self.now_ms


class DownForClock(SteppingClock):
    """Once the client has spent `down_ms` of its time retrying, it waits for the receiver to be back."""

    def __init__(self, down_ms: int) -> None:
        super().__init__()
        self.down_ms = down_ms
        self.retrying_since_ms: int | None = None
        self.down_long_enough = threading.Event()
        self.receiver_back = threading.Event()

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        if self.retrying_since_ms is None:
            self.retrying_since_ms = self.now_ms
        now = super().wait_until(target_ms, stop)
        if now - self.retrying_since_ms >= self.down_ms and not self.down_long_enough.is_set():
            self.down_long_enough.set()
            assert self.receiver_back.wait(WAIT_S * 6), "the test never started the receiver again"
        return now


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_send_with_nothing_listening_retries_with_growing_jittered_pauses_until_timeout_s() -> None:
    clock = SteppingClock()
    client = PushClient("127.0.0.1", closed_port(), "p", timeout_s=30, clock=clock, rng=random.Random(7))
    with pytest.raises(PushError, match=r"timeout_s=30") as raised:
        client.send(["x"])
    assert clock.now_ms - 1_000_000 == 30_000  # it kept trying for its whole timeout, not 0.43 s
    ceilings = [min(20 * 2**i, 1000) for i in range(len(clock.pauses_ms))]
    for pause, ceiling in list(zip(clock.pauses_ms, ceilings, strict=True))[:-1]:  # the last is cut short
        assert ceiling // 2 <= pause <= ceiling  # exponential, with jitter in the upper half
    assert len(set(clock.pauses_ms[7:-1])) > 1  # jittered, not one fixed pause
    assert f"after {len(clock.pauses_ms) + 1} attempts" in str(raised.value)
    client.close()


def test_retries_max_bounds_the_attempts_when_given() -> None:
    clock = SteppingClock()
    client = PushClient("127.0.0.1", closed_port(), "p", timeout_s=30, retries_max=3, clock=clock)
    with pytest.raises(PushError, match="after 4 attempts"):
        client.send(["x"])
    assert len(clock.pauses_ms) == 3
    client.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},
        {"backoff_initial_s": 0},
        {"backoff_initial_s": 2.0, "backoff_max_s": 1.0},
        {"retries_max": -1},
    ],
)
def test_bad_retry_settings_are_refused_naming_the_value(kwargs: dict[str, float]) -> None:
    with pytest.raises(DStreamValueError, match=str(next(iter(kwargs.values())))):
        PushClient("127.0.0.1", 9, "p", **kwargs)  # type: ignore[arg-type]


def unallocated(tracker: ReceiverTracker) -> list[object]:
    infos = tracker.block_tracker.get_unallocated_blocks(STREAM)
    return [
        r
        for ref in block_refs(infos, tracker.wal_location(STREAM))
        for r in read_block(ref, tracker.executor)
    ]


def start_tracker(ckpt: str, port: int, recover: bool) -> tuple[ReceiverTracker, PushReceiver]:
    tracker = ReceiverTracker(SystemClock(), CONFIG, checkpoint_dir=ckpt, recover=recover)
    receiver = PushReceiver(port=port)
    tracker.add_receiver(STREAM, receiver)
    tracker.start()
    wait_for(receiver.isStarted)
    return tracker, receiver


def test_a_client_rides_through_a_three_second_receiver_restart(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "ckpt")
    tracker, receiver = start_tracker(ckpt, 0, recover=False)
    port = receiver.port
    clock = DownForClock(down_ms=3000)
    client = PushClient("127.0.0.1", port, "p", timeout_s=60, clock=clock)
    try:
        assert client.send(["a", "b"]) == 1
        tracker.stop()  # the receiver (and its "driver") goes down
        result: list[int | BaseException] = []

        def send() -> None:
            try:
                result.append(client.send(["c", "d"]))
            except BaseException as exc:
                result.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        assert clock.down_long_enough.wait(WAIT_S * 6)  # 3 s of the client's time spent retrying
        tracker, receiver = start_tracker(ckpt, port, recover=True)  # back, on the same port
        clock.receiver_back.set()
        sender.join(WAIT_S * 6)
        assert result == [3]
        assert unallocated(tracker) == ["a", "b", "c", "d"]  # every record once
        assert receiver.producer_state("p").epoch == 1  # the client's reconnect resumed its session
    finally:
        client.close()
        tracker.stop()
