"""socketTextStream against a real 127.0.0.1 server: bad UTF-8, reader errors, the bounds, and the
receiver settings that apply to it (the receiver WAL, storageLevel, maxRate)."""

from __future__ import annotations

import io
import itertools
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dstream import Conf, StorageLevel
from dstream.clock import ManualClock
from dstream.receiver.block_store import received_blocks
from dstream.receiver.line_splitter import LineSplitter
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.supervisor import ReceiverSupervisor
from dstream.streaming import StreamingContext, StreamingListener
from dstream.streaming.socket import SocketInputDStream
from tests.receiver.helpers import wait_for
from tests.streaming.conftest import WAIT_S, collect, run, store_received
from tests.support.contexts import engine_context, streaming_context


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
    store_received(ssc, clock, stream, 3)
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
    store_received(ssc, clock, stream, 1)
    run(ssc, clock, 1)
    assert out == {1000: ["caf\u00e9 \u20ac"]}


def test_an_unexpected_reader_error_is_reported_and_the_reader_reconnects(ssc, clock, server, monkeypatch):
    errors = Errors()
    ssc.addStreamingListener(errors)
    stream = SocketInputDStream(ssc, "127.0.0.1", server.port, restart_delay_ms=10)
    out = collect(stream, sort=False)
    real_read_lines = stream.receiver._read_lines
    calls: list[int] = []

    def fail_once(sock: socket.socket) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom in the reader")
        real_read_lines(sock)

    monkeypatch.setattr(stream.receiver, "_read_lines", fail_once)
    ssc.start()
    server.accept()  # the first connection fails inside the reader
    assert errors.error.wait(WAIT_S)
    assert "RuntimeError('boom in the reader')" in errors.messages[0]
    clock.set_time(10)  # the restart delay passes on the injected clock
    server.accept().sendall(b"after the restart\n")
    store_received(ssc, clock, stream, 1)
    run(ssc, clock, 1)
    assert out == {1000: ["after the restart"]}


# Tiny bounds: at most 3 records stored and not yet in a batch, blocks of at most 3, one queued block.
TIGHT_BOUNDS = {
    "dstream.receiver.unallocated_records_max": "3",
    "dstream.receiver.block_records_max": "3",
    "spark.streaming.blockQueueSize": "1",
}


@pytest.fixture
def tight_ssc(clock: ManualClock) -> Iterator[StreamingContext]:
    with engine_context(Conf().setAll(TIGHT_BOUNDS.items())) as sc, streaming_context(sc, clock) as ssc:
        yield ssc


def supervisor_of(ssc: StreamingContext, stream: SocketInputDStream) -> ReceiverSupervisor:
    tracker = ssc.runtime.block_allocator
    assert isinstance(tracker, ReceiverTracker)
    supervisor = tracker.supervisor(stream._id)
    assert supervisor is not None
    return supervisor


def test_a_full_bound_blocks_the_reader_and_loses_nothing(tight_ssc, clock, server):
    lines = [f"line {i}" for i in range(30)]
    stream = tight_ssc.socketTextStream("127.0.0.1", server.port)
    out = collect(stream, sort=False)
    tight_ssc.start()
    server.accept().sendall("".join(f"{line}\n" for line in lines).encode())
    supervisor = supervisor_of(tight_ssc, stream)
    assert supervisor.generator.wait_until_blocked(WAIT_S)  # budget spent, queue full: reading stops
    assert supervisor.budget.outstanding_records <= 3  # the rest waits in the block queue or the socket
    assert stream.received_count < len(lines)
    for _ in range(len(lines)):  # each batch frees the budget for one more block
        if sum(len(batch) for batch in out.values()) == len(lines):
            break
        run(tight_ssc, clock, 1)
    assert [line for t in sorted(out) for line in out[t]] == lines


def test_blocks_hold_at_most_an_eighth_of_the_unallocated_bound(clock, server):
    # A block is admitted only when all of it fits the bound: blocks of half of it would leave the
    # bound half used each batch (a fast socket then stored about half of what the bound allows).
    with engine_context(Conf().set("dstream.receiver.unallocated_records_max", "80")) as sc:
        with streaming_context(sc, clock) as ssc:
            stream = ssc.socketTextStream("127.0.0.1", server.port)
            collect(stream)
            ssc.start()
            server.accept().sendall(b"".join(b"%d\n" % i for i in range(40)))
            assert stream.wait_for_received(40, WAIT_S)
            assert supervisor_of(ssc, stream).generator.wait_for_pushed(40, WAIT_S)
            tracker = ssc.runtime.block_allocator
            assert isinstance(tracker, ReceiverTracker)
            blocks = tracker.block_tracker.get_unallocated_blocks(stream._id)
            assert [info.num_records for info in blocks] == [10, 10, 10, 10]


def test_stop_wakes_a_reader_blocked_on_a_full_bound(tight_ssc, server):
    stream = tight_ssc.socketTextStream("127.0.0.1", server.port)
    collect(stream)
    tight_ssc.start()
    server.accept().sendall(b"".join(b"%d\n" % i for i in range(30)))
    assert supervisor_of(tight_ssc, stream).generator.wait_until_blocked(WAIT_S)
    tight_ssc.stop(stopSparkContext=False)
    thread = stream.receiver.reader_thread
    assert thread is not None and not thread.is_alive()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hostname": 5}, ValueError, "hostname must be a non-empty str, got 5"),
        ({"restart_delay_ms": -1}, ValueError, "restart_delay_ms must be an int >= 1 or None, got -1"),
        ({"storageLevel": "DISK"}, TypeError, "storageLevel must be a StorageLevel, got 'DISK'"),
    ],
)
def test_socket_stream_arguments_are_validated(ssc, kwargs, error, match):
    args = {"hostname": "127.0.0.1", "port": 9999, **kwargs}
    with pytest.raises(error, match=match):
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
    store_received(ssc, clock, stream, 2)
    run(ssc, clock, 1)
    assert out == {1000: ["one", "two"]}


def test_the_receiver_wal_conf_applies(clock, server, tmp_path):
    conf = Conf().set("spark.streaming.receiver.writeAheadLog.enable", "true")
    with engine_context(conf) as sc, streaming_context(sc, clock) as ssc:
        ssc.checkpoint(str(tmp_path))
        stream = ssc.socketTextStream("127.0.0.1", server.port)
        out = collect(stream, sort=False)
        ssc.start()
        server.accept().sendall(b"logged one\nlogged two\n")
        store_received(ssc, clock, stream, 2)
        run(ssc, clock, 1)
        assert out == {1000: ["logged one", "logged two"]}
        tracker = ssc.runtime.block_allocator
        assert isinstance(tracker, ReceiverTracker)
        infos = tracker.get_blocks_of_batch_and_stream(1000, stream._id)
        assert infos and all(info.wal_handle is not None for info in infos)
        segments = [p for p in (tmp_path / "receivedData" / str(stream._id)).rglob("*") if p.is_file()]
        assert any(b"logged two" in p.read_bytes() for p in segments)


def test_the_storage_level_is_honoured(sc, clock, server):
    with streaming_context(sc, clock) as ssc:
        stream = ssc.socketTextStream("127.0.0.1", server.port, StorageLevel.MEMORY_ONLY_2)
        out = collect(stream, sort=False)
        ssc.start()
        server.accept().sendall(b"kept twice\n")
        store_received(ssc, clock, stream, 1)
        run(ssc, clock, 1)
        assert out == {1000: ["kept twice"]}
        tracker = ssc.runtime.block_allocator
        assert isinstance(tracker, ReceiverTracker)
        (info,) = tracker.get_blocks_of_batch_and_stream(1000, stream._id)
        blocks = received_blocks(sc.executor_env)
        assert blocks.locations(info.block_id) == ("driver", "driver-peer")  # the replica
        assert info.locations == ("driver", "driver-peer")  # the driver knows where both are
        assert blocks.find(info.block_id) == ["kept twice"]


def test_the_default_storage_level_is_pysparks(ssc):
    stream = ssc.socketTextStream("127.0.0.1", 9999)
    assert stream.getReceiver().storageLevel == StorageLevel.MEMORY_AND_DISK_2


def test_max_rate_paces_the_reader(clock, server):
    conf = Conf().set("spark.streaming.receiver.maxRate", "100")
    with engine_context(conf) as sc, streaming_context(sc, clock) as ssc:
        stream = ssc.socketTextStream("127.0.0.1", server.port)
        collect(stream)
        ssc.start()
        server.accept().sendall(b"".join(b"%d\n" % i for i in range(250)))
        generator = supervisor_of(ssc, stream).generator
        # A full bucket (one second of records) at time 0, then 100 a second on the injected clock.
        # Each wait sees the count sit at exactly that value: a limiter that let more through would
        # jump past it and the wait would fail.
        wait_for(lambda: generator.records_added == 100)
        clock.set_time(1000)
        wait_for(lambda: generator.records_added == 200)
        clock.set_time(1500)  # the last 50 pass only now
        assert stream.wait_for_received(250, WAIT_S)
