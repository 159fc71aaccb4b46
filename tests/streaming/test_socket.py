"""socketTextStream against a real 127.0.0.1 server: bad UTF-8, reader errors, the buffer bound."""

from __future__ import annotations

import io
import itertools
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dstream.streaming import StreamingListener
from dstream.streaming.socket import LineSplitter, SocketInputDStream
from tests.streaming.conftest import WAIT_S, collect, run


class Server:
    """A 127.0.0.1 listener that hands each accepted connection to the test."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(WAIT_S)
        self.conns: list[socket.socket] = []

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


class Errors(StreamingListener):
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.error = threading.Event()

    def onReceiverError(self, e):
        self.messages.append(e.receiverInfo().lastErrorMessage())
        self.error.set()


def test_invalid_utf8_is_replaced_and_no_line_is_lost(ssc, clock, server):
    stream = ssc.socketTextStream("127.0.0.1", server.port)
    out = collect(stream, sort=False)
    ssc.start()
    server.accept().sendall(b"good line\n\xff\xfe bad utf8\nafter\n")
    assert stream.wait_for_received(3, WAIT_S)
    run(ssc, clock, 1)
    # Spark's InputStreamReader replaces each malformed byte with U+FFFD and keeps reading.
    assert out == {1000: ["good line", "\ufffd\ufffd bad utf8", "after"]}


def test_a_multibyte_character_split_across_sends_is_decoded_whole(ssc, clock, server):
    stream = ssc.socketTextStream("127.0.0.1", server.port)
    out = collect(stream, sort=False)
    ssc.start()
    conn = server.accept()
    encoded = "caf\u00e9 \u20ac\n".encode()
    conn.sendall(encoded[:4])  # ends inside the two-byte 'é'
    conn.sendall(encoded[4:])
    assert stream.wait_for_received(1, WAIT_S)
    run(ssc, clock, 1)
    assert out == {1000: ["caf\u00e9 \u20ac"]}


def test_an_unexpected_reader_error_is_reported_and_the_reader_reconnects(ssc, clock, server, monkeypatch):
    errors = Errors()
    ssc.addStreamingListener(errors)
    stream = SocketInputDStream(ssc, "127.0.0.1", server.port, restart_delay_ms=10)
    out = collect(stream, sort=False)
    real_read_lines = stream._read_lines
    calls: list[int] = []

    def fail_once(sock: socket.socket) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom in the reader")
        real_read_lines(sock)

    monkeypatch.setattr(stream, "_read_lines", fail_once)
    ssc.start()
    server.accept()  # the first connection fails inside the reader
    assert errors.error.wait(WAIT_S)
    assert "RuntimeError('boom in the reader')" in errors.messages[0]
    server.accept().sendall(b"after the restart\n")
    assert stream.wait_for_received(1, WAIT_S)
    run(ssc, clock, 1)
    assert out == {1000: ["after the restart"]}


def test_a_full_buffer_blocks_the_reader_and_loses_nothing(ssc, clock, server):
    lines = [f"line {i}" for i in range(10)]
    stream = SocketInputDStream(ssc, "127.0.0.1", server.port, buffer_lines_max=3)
    out = collect(stream, sort=False)
    ssc.start()
    server.accept().sendall("".join(f"{line}\n" for line in lines).encode())
    for batch in range(3):
        assert stream.wait_until_full(WAIT_S)
        assert stream.received_count == 3 * (batch + 1)  # never past the bound
        run(ssc, clock, 1)
    assert stream.wait_for_received(10, WAIT_S)
    run(ssc, clock, 1)
    assert out == {1000: lines[0:3], 2000: lines[3:6], 3000: lines[6:9], 4000: lines[9:]}


def test_stop_wakes_a_reader_blocked_on_a_full_buffer(ssc, server):
    stream = SocketInputDStream(ssc, "127.0.0.1", server.port, buffer_lines_max=1)
    collect(stream)
    ssc.start()
    server.accept().sendall(b"a\nb\nc\n")
    assert stream.wait_until_full(WAIT_S)
    ssc.stop(stopSparkContext=False)
    assert stream._thread is not None and not stream._thread.is_alive()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hostname": 5}, "hostname must be a non-empty str, got 5"),
        ({"buffer_lines_max": 0}, "buffer_lines_max must be an int >= 1, got 0"),
        ({"restart_delay_ms": -1}, "restart_delay_ms must be an int >= 1, got -1"),
    ],
)
def test_socket_stream_arguments_are_validated(ssc, kwargs, match):
    args = {"hostname": "127.0.0.1", "port": 9999, **kwargs}
    with pytest.raises(ValueError, match=match):
        SocketInputDStream(ssc, **args)


def _line_by_line(data: bytes) -> list[str]:
    """The reference: read line by line, each decoded and stripped on its own."""
    return [raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r") for raw in io.BytesIO(data)]


# Bytes that exercise the cutting: line ends and other whitespace (only \r may be stripped), pieces and
# whole multi-byte characters (2-, 3- and 4-byte, a BOM, U+0085 and U+2028 which are line breaks to
# str.splitlines), and bytes that are never valid UTF-8 (lone continuations, overlongs, surrogates,
# lead bytes above f4).
_pieces = st.sampled_from(
    [
        *(b"\n", b"\r", b"\r\n", b"a", b" ", b"\t"),
        *(b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xef\xbb\xbf", b"\xc2\x85", b"\xe2\x80\xa8"),
        *(b"\xe2\x82", b"\xc3", b"\xf0\x9f", b"\xff", b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf5"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(data=st.lists(_pieces, max_size=40).map(b"".join), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_line_splitter_gives_what_reading_line_by_line_gives(data: bytes, cuts: list[int]) -> None:
    """Whatever the chunk boundaries (the reader gets what each recv returns), the lines are the same."""
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    splitter = LineSplitter()
    got: list[str] = []
    for start, end in itertools.pairwise(bounds):
        got.extend(splitter.feed(memoryview(data)[start:end]))
    got.extend(splitter.finish())
    assert got == _line_by_line(data)


def test_a_final_line_without_a_newline_is_delivered(ssc, clock, server):
    stream = ssc.socketTextStream("127.0.0.1", server.port)
    out = collect(stream, sort=False)
    ssc.start()
    conn = server.accept()
    conn.sendall(b"one\r\ntwo")
    conn.close()  # the stream ends after "two"
    assert stream.wait_for_received(2, WAIT_S)
    run(ssc, clock, 1)
    assert out == {1000: ["one", "two"]}


def test_batches_do_not_pile_up_behind_a_slow_job_so_the_reader_stops(ssc, clock, server):
    # The first batch's job blocks; the scheduler queues at most pendingBatchesMax (4) batches, the
    # generator waits with the next one (its lines already taken), the buffer fills and the reader
    # stops reading: 1 running + 4 queued + 1 generated + 1 buffer = 7 batches of 3 lines, however
    # many batch times pass. Before the bound every tick took a buffer and the reader refilled it.
    gate = threading.Event()
    stream = SocketInputDStream(ssc, "127.0.0.1", server.port, buffer_lines_max=3)
    stream.foreachRDD(lambda rdd: gate.wait(WAIT_S))
    ssc.start()
    server.accept().sendall("".join(f"line {i}\n" for i in range(200)).encode())
    assert stream.wait_until_full(WAIT_S)
    for batch in range(1, 6):  # each batch takes a full buffer: 1 running, then 4 queued
        clock.set_time(batch * 1000)
        assert ssc.runtime.generator.wait_generated(batch * 1000, WAIT_S)
        assert stream.wait_until_full(WAIT_S)
    clock.set_time(30 * 1000)  # 25 more batch times are due
    assert stream.wait_for_received(21, WAIT_S)
    assert stream.wait_until_full(WAIT_S)
    assert not stream.wait_for_received(22, 0.3)  # nothing more is read while the job holds the line
    assert ssc.runtime.scheduler.queued_batches() == ssc.runtime.config.scheduler.pending_batches_max
    gate.set()
