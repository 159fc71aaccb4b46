"""Slow or silent connections cannot hold the push receiver's slots (issue 12).

They used to: 64 silent connections locked every new producer out for idle_timeout_s (300 s), and the
timeout was per recv, so a client trickling a byte every 2 s held a slot forever. Now a frame must be
complete within frame_timeout_s of its first byte, and a full table evicts the connection idle longest.
Waits here are on the receiver's replies (select on the socket), never blind sleeps.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dstream.client import PushClient
from dstream.errors import DStreamValueError
from dstream.receiver.push import PushReceiver
from dstream.receiver.push_connections import ConnectionTable
from dstream.receiver.push_protocol import ERROR, REFUSED, RETRY, SESSION, encode_data, encode_hello
from tests.receiver.test_push import Running, raw_connect, reply

CONNECTIONS_MAX = 4
FRAME_TIMEOUT_S = 0.3
PACE_S = 0.01  # between trickled bytes: a select on the socket, so the receiver's reply ends it at once


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(
        tmp_path,
        frame_bytes_max=8192,
        connections_max=CONNECTIONS_MAX,
        idle_timeout_s=120.0,  # far beyond the test: only the frame deadline can end a trickle
        frame_timeout_s=FRAME_TIMEOUT_S,
    )
    yield r
    r.tracker.stop()


def trickle(sock: socket.socket, data: bytes) -> int:
    """Send `data` a byte at a time until the receiver answers or closes; return the bytes sent."""
    for sent in range(len(data)):  # bounded by the frame's length
        readable, _, _ = select.select([sock], [], [], PACE_S)
        if readable:
            return sent
        try:
            sock.sendall(data[sent : sent + 1])
        except OSError:
            return sent
    return len(data)


def test_a_trickling_client_is_disconnected_by_the_frame_deadline(running: Running) -> None:
    with raw_connect(running.port) as sock:
        sock.sendall(encode_hello("slow"))
        assert reply(sock)[0] == SESSION
        frame = encode_data(0, ["x" * 6000])  # at PACE_S a byte, ~60 s to trickle: far past the deadline
        sent = trickle(sock, frame)
        assert sent < len(frame)  # every recv got a byte in time; the frame as a whole did not
        kind, (code, message) = reply(sock)
        assert kind == ERROR and code == REFUSED
        assert f"frame_timeout_s={FRAME_TIMEOUT_S}" in message and "first byte" in message
        assert sock.recv(1) == b""
    with PushClient("127.0.0.1", running.port, "fast") as client:  # the slot is free again
        assert client.send(["ok"]) == 0
    assert running.records() == ["ok"]


def test_a_trickled_hello_hits_the_same_deadline(running: Running) -> None:
    with raw_connect(running.port) as sock:
        hello = encode_hello("slow-header")
        sent = trickle(sock, hello + b"\x00" * 1000)  # a HELLO frame never completed at this pace
        assert sent < len(hello) + 1000
        kind, (code, message) = reply(sock)
        assert kind == ERROR and code == REFUSED and f"frame_timeout_s={FRAME_TIMEOUT_S}" in message


def test_silent_connections_filling_the_table_do_not_lock_out_a_new_producer(running: Running) -> None:
    silent = [raw_connect(running.port) for _ in range(CONNECTIONS_MAX)]
    silent[1].sendall(encode_hello("quiet"))  # a producer between frames is idle as well
    assert reply(silent[1])[0] == SESSION
    try:
        with PushClient("127.0.0.1", running.port, "newcomer", timeout_s=30) as client:
            assert client.send(["in"]) == 0
            assert client.send(["again"]) == 1  # its connection, now the busiest, was not evicted
        assert running.records() == ["in", "again"]
        assert running.receiver.evictions == 1
        kind, (code, message) = reply(silent[0])  # the one idle longest: told why, then closed
        assert kind == ERROR and code == RETRY and f"connections_max={CONNECTIONS_MAX}" in message
        assert "evicted" in message and silent[0].recv(1) == b""
    finally:
        for sock in silent:
            sock.close()


def test_many_silent_connections_never_lock_producers_out(running: Running) -> None:
    silent: list[socket.socket] = []
    try:
        for round_n in range(3 * CONNECTIONS_MAX):  # bounded: more silent connections than slots, thrice
            silent.append(raw_connect(running.port))
            with PushClient("127.0.0.1", running.port, f"p{round_n}", timeout_s=30) as client:
                assert client.send([f"r{round_n}"]) == 0
        assert len(running.records()) == 3 * CONNECTIONS_MAX
    finally:
        for sock in silent:
            sock.close()


def test_the_table_evicts_the_longest_idle_and_never_a_busy_connection() -> None:
    now = [0.0]
    table: ConnectionTable[str] = ConnectionTable(2, monotonic_s=lambda: now[0])
    assert table.admit("a") == (True, None)
    now[0] = 1.0
    assert table.admit("b") == (True, None)
    now[0] = 2.0
    table.mark_idle("a")  # "a" answered a frame at 2.0: "b" has been idle longer
    assert table.admit("c") == (True, "b")
    table.mark_busy("a")
    table.mark_busy("c")
    assert table.admit("d") == (False, None)  # every slot inside a frame: refused, nobody evicted
    table.discard("a")
    assert table.admit("d") == (True, None)
    assert sorted(table.connections()) == ["c", "d"] and table.evictions == 1


@pytest.mark.parametrize("name", ["frame_timeout_s", "connections_max", "idle_timeout_s", "frame_bytes_max"])
def test_limits_must_be_positive_and_are_named_when_not(name: str) -> None:
    with pytest.raises(DStreamValueError, match=f"{name} must be a positive number, got 0"):
        PushReceiver(**{name: 0})
