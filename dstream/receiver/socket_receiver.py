"""`SocketReceiver`: the receiver behind `ssc.socketTextStream`, lines from a TCP server (Spark's).

It is an ordinary receiver, so everything the receiver path gives applies to it: the receiver WAL
(`spark.streaming.receiver.writeAheadLog.enable` with a checkpoint directory), its `storageLevel`
(a replicated level keeps a peer copy), `spark.streaming.receiver.maxRate`, backpressure, and the
unallocated-records bound. Nothing is acknowledged to the server, so it stays an unreliable source:
with the WAL on, lines stored before a driver crash are replayed; lines read but not yet stored are
lost, as with Spark's SocketReceiver.

Lines are cut at ``\\n`` (trailing ``\\r`` dropped) and decoded as UTF-8 with malformed bytes replaced
by U+FFFD, as Spark's InputStreamReader does (`LineSplitter`). The reader takes what each 1 MiB read
returns and hands all of its complete lines to `store_many` at once, so it holds the GIL briefly per
read, not per line; the lines join the block being filled, which the block generator cuts every block
interval (blocks of a block interval each, not one per read).

When the connection fails or ends, or reading raises anything else, the receiver calls `restart` (the
error is posted on the listener bus; it connects again after the restart delay), as Spark's does.

Bound: `store_many` waits while the unallocated-records budget is spent and the block queue is full
(docs/backpressure.md); the reader then stops reading, so TCP flow control pushes back on the server.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from dstream.rdd.storage import StorageLevel
from dstream.receiver.line_splitter import LineSplitter
from dstream.receiver.receiver import Receiver

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
# The reader's read size. Each read releases the GIL, and while tasks run Python on the local
# backend's threads the reader waits about a switch interval (5 ms) to get it back: a few hundred
# reads a second. With io's default 8 KiB, line by line, that capped ingest near 70,000 lines/s while
# jobs ran; 1 MiB takes whatever the kernel has buffered in one read (bench/gil.py).
READ_BUFFER_BYTES = 1 << 20
JOIN_TIMEOUT_S = CONNECT_TIMEOUT_S + 1.0  # how long onStop waits for the reader thread


class SocketReceiver(Receiver):
    """Reads lines from hostname:port and stores them; restarts on connection errors and at its end.

    Args:
        hostname: the server's host.
        port: the server's port.
        storageLevel: where the received blocks are kept.
        restart_delay_ms: the delay before connecting again; None for the receiver restart delay
            (`spark.streaming.receiverRestartDelay`).
    """

    def __init__(
        self,
        hostname: str,
        port: int,
        storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2,
        restart_delay_ms: int | None = None,
    ) -> None:
        super().__init__(storageLevel)
        self.hostname = hostname
        self.port = port
        self.restart_delay_ms = restart_delay_ms
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._cond = threading.Condition()
        self._received = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for transient in ("_cond", "_received", "_sock", "_thread"):
            state.pop(transient, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    @property
    def received_count(self) -> int:
        """Lines handed to the block generator so far (in blocks being filled, queued or stored)."""
        with self._cond:
            return self._received

    def wait_for_received(self, count: int, timeout_s: float) -> bool:
        """Wait until at least `count` lines have been handed over; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._received >= count, timeout=timeout_s)

    @property
    def reader_thread(self) -> threading.Thread | None:
        return self._thread

    def onStart(self) -> None:
        self._thread = threading.Thread(
            target=self._receive, name=f"socket-receiver-{self.hostname}:{self.port}", daemon=True
        )
        self._thread.start()

    def onStop(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the reader's recv returns at once
            except OSError:
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)

    def _receive(self) -> None:
        try:
            message, error = self._connect_and_read(), None
        except Exception as exc:  # anything else (a bug, a decoder): restart, never die silently
            log.exception("socket receiver %s:%d: reading failed", self.hostname, self.port)
            message = f"Error receiving data from {self.hostname}:{self.port}: {exc!r}"
            error = exc
        finally:
            self._sock = None
        if not self.isStopped():
            self.restart(message, error, self.restart_delay_ms)

    def _connect_and_read(self) -> str:
        """One connection: read lines until it ends; returns why it ended (OSError is an answer too)."""
        try:
            with socket.create_connection((self.hostname, self.port), timeout=CONNECT_TIMEOUT_S) as sock:
                sock.settimeout(None)
                self._sock = sock
                if not self.isStopped():  # onStop may have run before the socket was visible to it
                    self._read_lines(sock)
        except OSError as exc:
            return f"Error connecting to {self.hostname}:{self.port}: {exc}"
        return "Socket data stream had no more data"

    def _read_lines(self, sock: socket.socket) -> None:
        buffer = bytearray(READ_BUFFER_BYTES)
        view = memoryview(buffer)
        splitter = LineSplitter()
        while n := sock.recv_into(buffer):
            lines = splitter.feed(view[:n])
            if lines:
                self._store(lines)
            if self.isStopped():
                return
        self._store(splitter.finish())

    def _store(self, lines: list[str]) -> None:
        if not lines:
            return
        self.store_many(lines, wait_durable=False)  # nothing is acknowledged to the server
        with self._cond:
            self._received += len(lines)
            self._cond.notify_all()
