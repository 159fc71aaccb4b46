"""Input streams: queueStream, textFileStream, binaryRecordsStream, socketTextStream."""

from __future__ import annotations

import os
import socket
import threading
import time

import fsspec
import pytest

from dstream.clock import ManualClock
from dstream.errors import JobFailedError
from dstream.streaming import StreamingContext, StreamingListener
from tests.streaming.conftest import WAIT_S, collect, run, store_received


def test_queue_stream_all_at_once_then_empty(ssc, clock):
    out = collect(ssc.queueStream([[1, 2], [3]], oneAtATime=False))
    counts = collect(ssc.queueStream([[1], [2]], oneAtATime=False).count())
    run(ssc, clock, 3)
    assert out == {1000: [1, 2, 3], 2000: [], 3000: []}
    # an empty batch is a partitionless RDD: count() emits nothing for it (PySpark's emptyRDD)
    assert counts == {1000: [2], 2000: [], 3000: []}


def test_queue_stream_default_after_drain_and_rdd_items(ssc, sc, clock):
    out = collect(ssc.queueStream([sc.parallelize([1, 2]), [3]], default=[0]))
    run(ssc, clock, 4)
    assert out == {1000: [1, 2], 2000: [3], 3000: [0], 4000: [0]}


def real_clock_base() -> int:
    # One second before the current wall-clock second: S3 rounds LastModified down to the second.
    return (time.time_ns() // 1_000_000 // 1000 - 1) * 1000


def advance_past_now(ssc, clock) -> int:
    """Move the clock to a batch time after every file written so far; returns that time."""
    target = max((time.time_ns() // 1_000_000 // 1000 + 2) * 1000, clock.time_ms() + 1000)
    clock.set_time(target)
    assert ssc.wait_for_batch(target, WAIT_S)
    return target


def test_text_file_stream_takes_each_new_file_once(sc, storage):
    clock = ManualClock(real_clock_base())
    ssc = StreamingContext(sc, 1.0, clock=clock)
    directory = storage.child("in")
    fs = storage.filesystem()
    fs.makedirs(directory.url, exist_ok=True)
    stream = ssc.textFileStream(directory.url, **storage.storage_options)
    out = collect(stream)
    ssc.start()
    try:
        fs.pipe_file(f"{directory.url}/a.txt", b"one\ntwo\n")
        fs.pipe_file(f"{directory.url}/.b.tmp", b"hidden\n")
        advance_past_now(ssc, clock)
        fs.pipe_file(f"{directory.url}/c.txt", b"three\r\nfour")
        advance_past_now(ssc, clock)
        lines = sorted(x for batch in out.values() for x in batch)
        assert lines == ["four", "one", "three", "two"]
        taken = {t: files for t, files in stream.batch_time_to_files.items() if files}
        names = sorted(f.rsplit("/", 1)[-1] for files in taken.values() for f in files)
        assert names == ["a.txt", "c.txt"]
        assert len(taken) == 2
    finally:
        ssc.stop(stopSparkContext=False)


def test_text_file_stream_uses_modification_times(sc, tmp_path):
    clock = ManualClock(100_000)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    old, future, now = tmp_path / "old.txt", tmp_path / "future.txt", tmp_path / "now.txt"
    stream = ssc.textFileStream(str(tmp_path))
    out = collect(stream)
    for path, mtime_s in ((old, 99.0), (future, 103.5), (now, 100.5)):
        path.write_text(path.stem + "\n")
        os.utime(path, (mtime_s, mtime_s))
    run(ssc, clock, 5)
    assert out == {101_000: ["now"], 102_000: [], 103_000: [], 104_000: ["future"], 105_000: []}
    assert stream.batch_time_to_files[104_000] == [f"file://{future}"]


def test_binary_records_stream(sc, tmp_path):
    clock = ManualClock(100_000)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    out = collect(ssc.binaryRecordsStream(str(tmp_path), 3))
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(b"abcdefghi")
    os.utime(good, (100.2, 100.2))
    bad.write_bytes(b"abcd")
    os.utime(bad, (101.2, 101.2))
    run(ssc, clock, 2)
    try:
        assert out[101_000] == [b"abc", b"def", b"ghi"]
        with pytest.raises(JobFailedError, match=r"bad\.bin has 4 bytes, not a multiple of recordLength 3"):
            ssc.awaitTermination(WAIT_S)
    finally:
        ssc.stop(stopSparkContext=False)


class ReceiverEvents(StreamingListener):
    def __init__(self):
        self.started = threading.Event()
        self.names = []

    def onReceiverStarted(self, e):
        self.names.append(e.receiverInfo().name())
        self.started.set()


def test_socket_text_stream_cuts_lines_into_batches(ssc, clock):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    listener = ReceiverEvents()
    ssc.addStreamingListener(listener)
    stream = ssc.socketTextStream("127.0.0.1", port)
    out = collect(stream, sort=False)
    ssc.start()
    conn, _ = server.accept()
    try:
        assert listener.started.wait(WAIT_S)
        assert listener.names == [f"SocketReceiver-127.0.0.1:{port}"]
        conn.sendall(b"hello world\nsecond line\r\n")
        store_received(ssc, clock, stream, 2)
        run(ssc, clock, 1)
        conn.sendall(b"third\n")
        store_received(ssc, clock, stream, 3)
        run(ssc, clock, 2)
        assert out == {1000: ["hello world", "second line"], 2000: ["third"], 3000: []}
    finally:
        conn.close()
        server.close()
        ssc.stop(stopSparkContext=False)


def test_socket_port_is_validated(ssc):
    with pytest.raises(ValueError, match=r"port must be an int in 1\.\.65535, got 70000"):
        ssc.socketTextStream("127.0.0.1", 70000)


def test_file_stream_reads_lazily_in_tasks(sc, tmp_path):
    # The batch's RDD holds file names, not contents: a file's lines are read when the job runs.
    clock = ManualClock(100_000)
    ssc = StreamingContext(sc, 1.0, clock=clock)
    stream = ssc.textFileStream(str(tmp_path))
    stream.pprint()
    path = tmp_path / "x.txt"
    path.write_text("a\nb\n")
    os.utime(path, (100.5, 100.5))
    ssc.start()
    try:
        clock.set_time(101_000)
        assert ssc.wait_for_batch(101_000, WAIT_S)
        rdd = stream._generated[101_000]
        assert rdd.getNumPartitions() == 1 and sorted(rdd.collect()) == ["a", "b"]
        with fsspec.open(f"file://{path}", "r") as f:
            assert f.read() == "a\nb\n"
    finally:
        ssc.stop(stopSparkContext=False)


class ReceiverErrors(StreamingListener):
    def __init__(self):
        self.error = threading.Event()
        self.stopped = threading.Event()
        self.messages = []

    def onReceiverError(self, e):
        self.messages.append(e.receiverInfo().lastErrorMessage())
        self.error.set()

    def onReceiverStopped(self, e):
        self.stopped.set()


def test_socket_connection_refused_is_a_receiver_error_and_batches_go_on(ssc, clock):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()  # nothing listens on this port now
    listener = ReceiverErrors()
    ssc.addStreamingListener(listener)
    out = collect(ssc.socketTextStream("127.0.0.1", port))
    ssc.start()
    assert listener.error.wait(WAIT_S)
    assert f"Error connecting to 127.0.0.1:{port}" in listener.messages[0]
    run(ssc, clock, 2)
    assert out == {1000: [], 2000: []}
    ssc.stop(stopSparkContext=False)
    assert listener.stopped.is_set()
