"""Push ingestion: acknowledged only when durable, resends deduplicated, bad frames refused cleanly."""

from __future__ import annotations

import itertools
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crc32c
import pytest

from dstream.client import PushClient, PushRejectedError
from dstream.clock import SystemClock
from dstream.config import ReceiverConfig
from dstream.errors import DStreamValueError
from dstream.receiver.block_handler import BlockRecord, decode_log_record
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.block_store import ReceivedBlocks
from dstream.receiver.push import PushReceiver
from dstream.receiver.push_protocol import (
    ACK,
    ERROR,
    REFUSED,
    SESSION,
    VERSION,
    decode_ack,
    decode_error,
    decode_session,
    encode_data,
    encode_frame,
    encode_hello,
    new_session_token,
    read_frame,
)
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.supervisor import NoEvents
from tests.receiver.helpers import wait_for
from wal import open_wal

STREAM = 0


class Running:
    def __init__(self, tmp_path: Path, **receiver_kwargs: Any) -> None:
        config = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=1)
        self.ckpt = str(tmp_path / "ckpt")
        self.tracker = ReceiverTracker(SystemClock(), config, checkpoint_dir=self.ckpt)
        self.receiver = PushReceiver(**receiver_kwargs)
        self.tracker.add_receiver(STREAM, self.receiver)
        self.tracker.start()

    @property
    def port(self) -> int:
        return self.receiver.port

    def records(self) -> list[Any]:
        infos = self.tracker.block_tracker.get_unallocated_blocks(STREAM)
        return [
            r
            for ref in block_refs(infos, self.tracker.wal_location(STREAM))
            for r in read_block(ref, self.tracker.executor)
        ]

    def logged_records(self) -> list[Any]:
        """Records in the receiver WAL as a fresh reader sees them (what survives a crash)."""
        log = open_wal(f"{self.ckpt}/receivedData/{STREAM}")
        decoded = [decode_log_record(data) for data in log.read_all()]
        return [r for d in decoded if isinstance(d, BlockRecord) for r in d.records]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path, frame_bytes_max=4096, connections_max=4)
    yield r
    r.tracker.stop()


def raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def reply(sock: socket.socket) -> tuple[int, Any]:
    """(kind, durable seq) of an ACK, (kind, (epoch, durable seq)) of a SESSION, (kind, (code, message))."""
    frame = read_frame(sock, 1 << 20)
    assert frame is not None, "expected a reply frame"
    if frame.kind == ACK:
        return frame.kind, decode_ack(frame.payload)
    if frame.kind == SESSION:
        return frame.kind, decode_session(frame.payload)
    return frame.kind, decode_error(frame.payload)


def assert_closed(sock: socket.socket) -> None:
    assert sock.recv(1) == b""


def test_send_returns_after_the_records_are_in_the_wal_and_tracked(running: Running) -> None:
    with PushClient("127.0.0.1", running.port, "p1") as client:
        assert client.send(["a", "b"]) == 1
        assert running.logged_records() == ["a", "b"]  # durable before send returned
        assert client.send([b"\x00bin", "c"]) == 3
    assert running.records() == ["a", "b", b"\x00bin", "c"]
    infos = running.tracker.block_tracker.get_unallocated_blocks(STREAM)
    assert [i.metadata for i in infos] == [
        {"producers": {"p1": [0, 1]}, "epochs": {"p1": 1}},
        {"producers": {"p1": [2, 3]}, "epochs": {"p1": 1}},
    ]


def test_a_resend_after_a_lost_ack_is_deduplicated(running: Running) -> None:
    token = new_session_token()
    sock = raw_connect(running.port)
    sock.sendall(encode_hello("p", token))
    assert reply(sock) == (SESSION, (1, -1))
    sock.sendall(encode_data(0, ["r0", "r1", "r2"]))
    sock.close()  # the ack is lost with the connection
    with raw_connect(running.port) as again:
        again.sendall(encode_hello("p", token, resuming=True))  # the same session reconnects
        kind, (epoch, durable) = reply(again)
        assert kind == SESSION and epoch == 1 and durable in (-1, 2)  # the first frame may still be in flight
        again.sendall(encode_data(0, ["r0", "r1", "r2"]))  # the client resends the unacked frame
        assert reply(again) == (ACK, 2)
        again.sendall(encode_data(1, ["r1", "r2", "r3"]))  # overlapping resend: only r3 is new
        assert reply(again) == (ACK, 3)
    assert running.records() == ["r0", "r1", "r2", "r3"]


def test_a_new_client_continues_after_the_producers_durable_sequence(running: Running) -> None:
    with PushClient("127.0.0.1", running.port, "p") as first:
        first.send(["x", "y"])
    with PushClient("127.0.0.1", running.port, "p") as second:
        assert second.send(["z"]) == 2
    with PushClient("127.0.0.1", running.port, "other") as other:
        assert other.send(["w"]) == 0
    assert running.records() == ["x", "y", "z", "w"]


def frame_with(**fields: Any) -> bytes:
    payload = fields.get("payload", b"p")
    head = struct.pack(
        ">4sBBHII",
        fields.get("magic", b"DSPF"),
        fields.get("version", VERSION),
        fields.get("kind", 1),
        fields.get("flags", 0),
        fields.get("length", len(payload)),
        fields.get("crc", crc32c.crc32c(payload)),
    )
    return head + payload


BAD_FRAMES = {
    "magic": (frame_with(magic=b"HTTP"), "bad magic"),
    "version": (frame_with(version=9), "version 9"),
    "kind": (frame_with(kind=7), "kind 7"),
    "flags": (frame_with(flags=1), "flags 1"),
    "crc": (frame_with(crc=12345), "CRC mismatch"),
    "data before hello": (encode_data(0, ["a"]), "DATA before HELLO"),
    "ack from client": (encode_hello("p") + encode_frame(ACK, b"\x00" * 8), "unexpected frame kind 3"),
    "truncated records": (encode_hello("p") + encode_frame(2, encode_data(0, ["abc"])[16:-1]), "record 0"),
    "short data": (encode_hello("p") + encode_frame(2, b"\x00\x01"), "shorter than"),
    "bad utf8": (
        encode_hello("p") + encode_frame(2, struct.pack(">QIBI", 0, 1, 1, 1) + b"\xff"),
        "not UTF-8",
    ),
    "gap": (encode_hello("p") + encode_data(5, ["a"]), "gap"),
    "empty producer": (encode_frame(1, b""), "HELLO payload of 0 bytes"),
    "hello flags": (encode_frame(1, bytes(16) + b"\x04p"), "HELLO flags 0x4"),
    "second hello": (encode_hello("p") + encode_hello("p"), "second HELLO"),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_malformed_frames_get_an_error_and_a_closed_connection(running: Running, name: str) -> None:
    data, message = BAD_FRAMES[name]
    with raw_connect(running.port) as sock:
        sock.sendall(data)
        kind, body = reply(sock)
        while kind in (ACK, SESSION):  # the HELLO before the bad frame is answered first
            kind, body = reply(sock)
        assert kind == ERROR and body[0] == REFUSED and message in body[1]
        assert_closed(sock)
    with PushClient("127.0.0.1", running.port, "good") as client:  # the receiver still serves others
        client.send(["ok"])
    assert running.records() == ["ok"]


def test_oversized_frames_are_refused_without_reading_them(running: Running) -> None:
    with raw_connect(running.port) as sock:
        sock.sendall(frame_with(length=1 << 30)[:16])  # a header announcing 1 GiB; no payload follows
        kind, (code, message) = reply(sock)
        assert kind == ERROR and code == REFUSED and "frame_bytes_max=4096" in message
        assert_closed(sock)
    client = PushClient("127.0.0.1", running.port, "big", frame_bytes_max=4096)
    with pytest.raises(DStreamValueError, match="frame_bytes_max=4096"):
        client.send(["x" * 5000])
    client.close()


def test_a_client_raising_on_refusal_keeps_its_sequence(running: Running) -> None:
    client = PushClient("127.0.0.1", running.port, "c")
    client.send(["a"])
    with pytest.raises(TypeError, match="str or bytes"):
        client.send([object()])  # type: ignore[list-item]
    assert client.send(["b"]) == 1
    client.close()
    assert running.records() == ["a", "b"]


def test_a_gap_is_refused_by_the_client_api_too(running: Running) -> None:
    with raw_connect(running.port) as sock:
        sock.sendall(encode_hello("g") + encode_data(0, ["a"]))
        assert reply(sock) == (SESSION, (1, -1)) and reply(sock) == (ACK, 0)
    client = PushClient("127.0.0.1", running.port, "g")
    client.send(["b"])
    client._next_seq = 10  # simulate a client that lost track of its sequence
    with pytest.raises(PushRejectedError, match="gap"):
        client.send(["c"])
    client.close()


def test_connections_are_bounded_when_every_one_is_inside_a_frame(running: Running) -> None:
    held = [raw_connect(running.port) for _ in range(4)]
    for i, sock in enumerate(held):
        sock.sendall(encode_hello(f"h{i}"))
        assert reply(sock)[0] == SESSION
        sock.sendall(encode_data(0, ["x"])[:5])  # inside a frame: busy, not evictable (frame_timeout_s=30)
    wait_for(lambda: running.receiver.busy_connections == 4)  # the receiver has read each frame's start
    with raw_connect(running.port) as extra:
        kind, (_code, message) = reply(extra)
        assert kind == ERROR and "connections_max=4" in message
    for sock in held:
        sock.close()


def test_a_block_logged_but_never_tracked_is_recovered_once(tmp_path: Path) -> None:
    from dstream.rdd.storage import StorageLevel
    from dstream.receiver.block_handler import WriteAheadLogHandler
    from dstream.receiver.receiver_tracker import receiver_wal_url

    ckpt = str(tmp_path / "ckpt")
    # The crash window: the block reached the receiver WAL, the tracker's add never happened.
    log = open_wal(receiver_wal_url(ckpt, STREAM))
    handler = WriteAheadLogHandler(
        log, STREAM, SystemClock(), StorageLevel.MEMORY_ONLY, blocks=ReceivedBlocks()
    )
    handler.store_block("orphan-1", ["o1", "o2"], {"producers": {"p": [0, 1]}})
    log.close()
    for _ in range(2):  # a second recovery must not adopt it again
        config = ReceiverConfig.from_conf(wal_enabled=True)
        tracker = ReceiverTracker(SystemClock(), config, checkpoint_dir=ckpt, recover=True)
        receiver = PushReceiver()
        tracker.add_receiver(STREAM, receiver)
        tracker.start()
        try:
            wait_for(lambda r=receiver: r.isStarted())
            assert receiver.durable_seq("p") == 1
            infos = tracker.block_tracker.get_unallocated_blocks(STREAM)
            assert [i.block_id for i in infos] == ["orphan-1"]
            assert [
                r
                for ref in block_refs(infos, tracker.wal_location(STREAM))
                for r in read_block(ref, tracker.executor)
            ] == [
                "o1",
                "o2",
            ]
        finally:
            tracker.stop()


def test_concurrent_producers_share_blocks_and_each_gets_its_own_ack(running: Running) -> None:
    results: dict[str, int] = {}

    def produce(name: str) -> None:
        with PushClient("127.0.0.1", running.port, name) as client:
            for i in range(10):
                results[name] = client.send([f"{name}-{i}-{j}" for j in range(5)])

    threads = [threading.Thread(target=produce, args=(f"c{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {f"c{k}": 49 for k in range(4)}
    got = running.records()
    for k in range(4):  # per producer: every record once, in order
        assert [r for r in got if r.startswith(f"c{k}-")] == [
            f"c{k}-{i}-{j}" for i in range(10) for j in range(5)
        ]
    assert len(got) == 200
    infos = running.tracker.block_tracker.get_unallocated_blocks(STREAM)
    for k in range(4):
        ranges = [i.metadata["producers"][f"c{k}"] for i in infos if f"c{k}" in i.metadata["producers"]]
        assert ranges[0][0] == 0 and ranges[-1][1] == 49
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def test_a_cleaned_block_left_in_the_receiver_wal_is_not_adopted_again(tmp_path: Path) -> None:
    from dstream.clock import ManualClock

    ckpt = str(tmp_path / "ckpt")
    clock = ManualClock(1000)
    config = ReceiverConfig.from_conf(wal_enabled=True)
    tracker = ReceiverTracker(clock, config, checkpoint_dir=ckpt)
    receiver = PushReceiver()
    tracker.add_receiver(STREAM, receiver)
    tracker.start()
    with PushClient("127.0.0.1", receiver.port, "p") as client:
        client.send(["old"])  # written at 1000 ms
    tracker.allocate_blocks_to_batch(500)  # a late allocation: batch 500 gets a block written at 1000
    clock.set_time(2000)
    tracker.cleanup_old_blocks_and_batches(600, wait=True)  # batch 500 is cleaned; the segment stays
    tracker.stop()
    assert tracker.block_tracker.cleaned_written_max_ms(STREAM) == 1000
    again = ReceiverTracker(clock, config, checkpoint_dir=ckpt, recover=True)
    receiver2 = PushReceiver()
    again.add_receiver(STREAM, receiver2)
    again.start()
    try:
        wait_for(receiver2.isStarted)
        assert again.block_tracker.get_unallocated_blocks(STREAM) == ()  # not delivered a second time
        assert receiver2.durable_seq("p") == 0  # but still deduplicated
    finally:
        again.stop()


class RestartWaitingClock(SystemClock):
    """The client's clock: a retry pause lasts until the receiver has started `starts_before_retry` times.

    So the retry never depends on how fast the supervisor restarts the receiver on a loaded machine.
    """

    def __init__(self, starts: threading.Semaphore) -> None:
        self.starts = starts

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        assert self.starts.acquire(timeout=60), "the receiver was not restarted"
        self.starts.release()
        return self.time_ms()


class StartEvents(NoEvents):
    """Counts receiver starts after the first (the restarts) in a semaphore."""

    def __init__(self) -> None:
        self.restarts = threading.Semaphore(0)
        self.started = 0

    def on_receiver_started(self, stream_id: int, name: str) -> None:
        self.started += 1
        if self.started > 1:
            self.restarts.release()


def test_a_tracker_failure_after_the_wal_write_is_resolved_by_a_restart(tmp_path: Path) -> None:
    from tests.receiver.fakes import FailingLog

    config = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=1)
    events = StartEvents()
    tracker = ReceiverTracker(SystemClock(), config, checkpoint_dir=str(tmp_path / "ckpt"), events=events)
    receiver = PushReceiver()
    tracker.add_receiver(STREAM, receiver)
    tracker.start()
    block_tracker = tracker.block_tracker
    failing = FailingLog(block_tracker._log)  # type: ignore[arg-type]
    failing.fail_next_writes = 1
    block_tracker._log = failing
    clock = RestartWaitingClock(events.restarts)
    try:
        with PushClient("127.0.0.1", receiver.port, "p", timeout_s=60, clock=clock) as client:
            # First attempt: durable in the receiver WAL, refused by the tracker -> RETRY, supervisor
            # restarts, recovery registers the block; the client's retry (after the restart) learns it is
            # durable and does not resend.
            assert client.send(["once"]) == 0
            assert client.send(["twice"]) == 1
        infos = tracker.block_tracker.get_unallocated_blocks(STREAM)
        records = [
            r
            for ref in block_refs(infos, tracker.wal_location(STREAM))
            for r in read_block(ref, tracker.executor)
        ]
        assert records == ["once", "twice"]
    finally:
        tracker.stop()
