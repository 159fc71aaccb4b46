"""Push exactly-once when a receiver-WAL write times out and commits late (issue 4).

A group-committed WAL write that raises `WALTimeoutError` "may still be committed later". The push receiver
then sends no ack, the producer resends the same sequence numbers and the resend is stored as a second
block. The late record is never tracked, but a restart finds it in the receiver WAL as an unreported block;
recovery must not adopt what the resend already holds. `LateCommitLog` (tests/receiver/fakes.py) wraps the
real receiver WAL: the chosen write raises `WALTimeoutError` and is committed later by `land()`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dstream.client import PushClient, PushError
from dstream.clock import ManualClock
from dstream.config import ReceiverConfig
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.push import PushReceiver
from dstream.receiver.push_commit_plan import PendingFrame, PendingHello
from dstream.receiver.push_protocol import (
    ACK,
    ERROR,
    SESSION,
    Hello,
    decode_ack,
    decode_session,
    encode_data,
    encode_hello,
    new_session_token,
    read_frame,
)
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.fakes import LateCommitLog
from tests.receiver.helpers import wait_for
from wal import WriteAheadLog

CONFIG = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=1, wal_rolling_interval_ms=1000)
STREAM = 0


class Harness:
    """One push receiver with the receiver WAL behind a LateCommitLog, restartable on one checkpoint dir.

    Timed-out records not landed yet survive a restart (`held` is shared by every incarnation's wrapper),
    so a late commit can land before or after the recovery that follows it. Every allocated batch's
    records are read at allocation, so `stream()` is every record that reached a batch, in batch order.
    """

    def __init__(self, ckpt: str) -> None:
        self.ckpt = ckpt
        self.clock = ManualClock(1_000_000)
        self.held: list[tuple[bytes, int]] = []
        self.port = 0
        self.batches: dict[int, list[Any]] = {}
        self.log: LateCommitLog | None = None
        self.tracker: ReceiverTracker | None = None
        self._start(recover=False)

    def _wrap(self, stream_id: int, log: WriteAheadLog) -> LateCommitLog:
        self.log = LateCommitLog(log)
        self.log.held = self.held
        return self.log

    def _start(self, recover: bool) -> None:
        self.tracker = ReceiverTracker(
            self.clock, CONFIG, checkpoint_dir=self.ckpt, recover=recover, receiver_wal_wrapper=self._wrap
        )
        self.receiver = PushReceiver(port=self.port)
        self.tracker.add_receiver(STREAM, self.receiver)
        self.tracker.start()
        wait_for(self.receiver.isStarted)
        self.port = self.receiver.port

    def restart(self) -> None:
        self.stop()
        self._start(recover=True)

    def stop(self) -> None:
        if self.tracker is not None:
            self.tracker.stop()
            self.tracker = None

    def time_out_next_block(self) -> None:
        assert self.log is not None
        self.log.time_out_next_write = True

    def land(self) -> None:
        assert self.log is not None
        self.log.land()

    def allocate(self) -> int:
        assert self.tracker is not None
        self.clock.advance(100)
        time_ms = self.clock.time_ms()
        self.tracker.allocate_blocks_to_batch(time_ms)
        infos = self.tracker.get_blocks_of_batch_and_stream(time_ms, STREAM)
        refs = block_refs(infos, self.tracker.wal_location(STREAM))
        self.batches[time_ms] = [r for ref in refs for r in read_block(ref, self.tracker.executor)]
        return time_ms

    def cleanup(self) -> None:
        """Clean every batch allocated so far (all blocks written before the threshold are in one)."""
        assert self.tracker is not None
        threshold_ms = self.allocate() + 1  # nothing is written between the allocation and this cleanup
        self.clock.advance(1500)  # past the rolling interval: older segments may go
        self.tracker.cleanup_old_blocks_and_batches(threshold_ms, wait=True)

    def stream(self) -> list[Any]:
        self.allocate()
        return [r for t in sorted(self.batches) for r in self.batches[t]]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(str(tmp_path / "ckpt"))
    yield h
    h.stop()


def ack_or_error(sock: socket.socket) -> tuple[int, Any]:
    frame = read_frame(sock, 1 << 20)
    assert frame is not None, "expected a reply frame"
    if frame.kind == SESSION:
        return frame.kind, decode_session(frame.payload)
    return frame.kind, decode_ack(frame.payload) if frame.kind == ACK else frame.payload


@pytest.mark.parametrize("land_before_resend", [False, True])
def test_a_timed_out_write_that_commits_late_and_its_resend_reach_the_stream_once(
    harness: Harness, land_before_resend: bool
) -> None:
    client = PushClient("127.0.0.1", harness.port, "p", timeout_s=10, retries_max=0)
    harness.time_out_next_block()
    with pytest.raises(PushError):
        client.send(["a", "b", "c"])  # not acknowledged: the write timed out
    if land_before_resend:
        harness.land()  # the late record precedes the resend in the log
    client.retries_max = 3
    assert client.send([]) == 2  # the client resends seq 0..2; stored as a second block
    harness.land()  # (no-op if it already landed)
    assert harness.stream() == ["a", "b", "c"]  # live: only the resend is tracked
    harness.restart()  # the late block is in the receiver WAL, unknown to the tracker
    assert harness.receiver.durable_seq("p") == 2
    assert client.send(["d"]) == 3
    assert harness.stream() == ["a", "b", "c", "d"]
    harness.restart()  # and again: the dropped orphan stays dropped
    assert harness.stream() == ["a", "b", "c", "d"]
    client.close()


def test_a_late_block_partly_covered_by_the_resend_is_trimmed(harness: Harness) -> None:
    token = new_session_token()
    with socket.create_connection(("127.0.0.1", harness.port), timeout=10) as sock:
        sock.sendall(encode_hello("p", token))
        assert ack_or_error(sock) == (SESSION, (1, -1))
        harness.time_out_next_block()
        sock.sendall(encode_data(0, ["a", "b", "c", "d", "e"]))
        assert ack_or_error(sock)[0] == ERROR  # timed out: the connection is closed, nothing acked
    with socket.create_connection(("127.0.0.1", harness.port), timeout=10) as sock:
        sock.sendall(encode_hello("p", token, resuming=True))  # the same session reconnects
        assert ack_or_error(sock) == (SESSION, (1, -1))
        sock.sendall(encode_data(0, ["a", "b", "c"]))  # a producer that resends in smaller frames
        assert ack_or_error(sock) == (ACK, 2)
    harness.land()
    harness.restart()
    assert harness.receiver.durable_seq("p") == 4  # d, e adopted from the late block
    assert harness.stream() == ["a", "b", "c", "d", "e"]
    with PushClient("127.0.0.1", harness.port, "p", timeout_s=10) as client:
        assert client.send(["f"]) == 5  # the late block's d, e count as durable: f continues after them
    harness.restart()  # the original late block is judged again and adds nothing
    assert harness.stream() == ["a", "b", "c", "d", "e", "f"]


def test_a_late_block_older_than_a_cleaned_block_is_skipped_and_its_resend_stored(harness: Harness) -> None:
    giving_up = PushClient("127.0.0.1", harness.port, "p", timeout_s=10, retries_max=0)
    harness.time_out_next_block()
    with pytest.raises(PushError):
        giving_up.send(["a", "b"])
    harness.land()
    with PushClient("127.0.0.1", harness.port, "q", timeout_s=10) as other:
        assert other.send(["x"]) == 0  # a later block of the stream, allocated and cleaned
    harness.cleanup()
    harness.restart()  # the late block cannot be told from a cleaned one: not adopted
    assert harness.receiver.durable_seq("p") == -1
    giving_up.retries_max = 3
    assert giving_up.send(["c"]) == 2  # the resend of a, b is stored, not acknowledged as a duplicate
    assert harness.stream() == ["x", "a", "b", "c"]
    giving_up.close()


def test_adoption_trims_each_producer_of_a_grouped_block_on_its_own() -> None:
    receiver = PushReceiver(port=0)
    try:
        receiver.on_recovered_blocks([{"producers": {"p": [0, 1]}}, {"durable": {"r": 0}}])
        records = ["p0", "p1", "p2", "q0", "r2", "r3"]
        meta = {"producers": {"p": [0, 2], "q": [0, 0], "r": [2, 3]}}
        kept, kept_meta = receiver.adopt_recovered_block(records, meta)
        # p: 0..1 durable already, 2 is new; q: all new; r: 1 is missing (a gap), so r's part waits for
        # the producer's resend.
        assert kept == ["p2", "q0"]
        assert kept_meta == {"producers": {"p": [2, 2], "q": [0, 0]}}
        assert receiver.durable_seq("p") == 1  # no state change before the adoption is durable
        assert receiver.adopt_recovered_block(["x"], {"producers": {"p": [0, 1]}}) == ([], None)  # layout
        assert receiver.adopt_recovered_block(["p0"], {"producers": {"p": [0, 0]}}) == ([], None)  # all held
    finally:
        receiver.onStop()


def test_a_block_stores_its_records_grouped_by_producer(harness: Harness) -> None:
    # Two producers' frames can be committed as one block; adoption slices a block by its ranges, so
    # the records of one producer must be contiguous, in the order of the ranges.
    assert harness.tracker is not None
    hellos = [PendingHello(Hello("p", "a" * 32, False)), PendingHello(Hello("q", "b" * 32, False))]
    harness.receiver._commit(list(hellos))  # two sessions open their epochs
    assert all(h.done.is_set() and h.error is None for h in hellos)
    p_session, q_session = hellos[0].hello.session_id, hellos[1].hello.session_id
    frames = [
        PendingFrame("p", p_session, 0, ["p0"]),
        PendingFrame("q", q_session, 0, ["q0"]),
        PendingFrame("p", p_session, 1, ["p1"]),
    ]
    harness.receiver._commit(frames)  # what the committer thread does with the frames waiting at once
    assert all(f.done.is_set() and f.error is None for f in frames)
    (info,) = harness.tracker.block_tracker.get_unallocated_blocks(STREAM)
    assert info.metadata == {"producers": {"p": [0, 1], "q": [0, 0]}, "epochs": {"p": 1, "q": 1}}
    assert list(info.metadata["producers"]) == ["p", "q"]
    assert harness.stream() == ["p0", "p1", "q0"]


# -- random interleavings ----------------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("send_timeout_resend"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("send_timeout_give_up"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("land"), st.just(0), st.just(0)),
        st.tuples(st.just("restart"), st.just(0), st.just(0)),
        st.tuples(st.just("allocate"), st.just(0), st.just(0)),
        st.tuples(st.just("cleanup"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.timeout(180)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, producers_n=st.integers(1, 2))
def test_random_timeouts_late_commits_restarts_and_cleanups_keep_every_record_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]], producers_n: int
) -> None:
    harness = Harness(str(tmp_path_factory.mktemp("ckpt")))
    names = [f"p{i}" for i in range(producers_n)]
    clients = [PushClient("127.0.0.1", harness.port, n, timeout_s=10, retries_max=3) for n in names]
    sent: dict[str, list[str]] = {n: [] for n in names}  # every record each producer handed to send()
    try:
        for kind, who, count in ops:
            who %= producers_n
            if kind.startswith("send"):
                client, name = clients[who], names[who]
                batch = [f"{name}-{len(sent[name]) + i}" for i in range(count)]
                sent[name].extend(batch)
                client.retries_max = 0 if kind == "send_timeout_give_up" else 3
                if kind != "send":
                    harness.time_out_next_block()
                try:
                    client.send(batch)
                except PushError:
                    assert kind == "send_timeout_give_up" and client.unacked
                if harness.log is not None:
                    harness.log.time_out_next_write = False  # a send of only a pending frame may not write
            elif kind == "land":
                harness.land()
            elif kind == "restart":
                harness.restart()
            elif kind == "allocate":
                harness.allocate()
            else:
                harness.cleanup()
        for client in clients:  # every producer resends until acknowledged
            client.retries_max = 3
            client.send([])
            assert not client.unacked
        harness.land()
        harness.restart()  # every late record is in the log now; recovery must add nothing twice
        stream = harness.stream()
        for name in names:
            assert [r for r in stream if r.startswith(f"{name}-")] == sent[name]  # once each, in order
        assert len(stream) == sum(len(s) for s in sent.values())
    finally:
        for client in clients:
            client.close()
        harness.stop()
