"""socketTextStream: lines from a TCP server, cut into the current batch (unreliable, like PySpark's).

A reader thread connects to the server and appends each received line to a buffer; each batch takes
every line received before it was generated. Nothing is acknowledged or logged, so lines in the
buffer are lost if the driver dies (`ssc.receiverStream`/`pushStream` with the WAL are the reliable
inputs). Lines are cut at ``\n`` (a trailing ``\r`` is dropped) and decoded as UTF-8 with malformed
bytes replaced by U+FFFD, as Spark's SocketReceiver does with its InputStreamReader, so a bad byte
costs only the characters it spoils, never the lines around it. The reader takes what each read
returns and cuts all of its complete lines at once (`LineSplitter`, which gives exactly what reading
line by line gives), so it spends little time holding the GIL per line.

When the connection fails or ends, or reading raises anything else, the thread reports it on the
listener bus (onReceiverError) and reconnects after `restart_delay_ms` until the stream stops
(Spark's SocketReceiver restarts too).

Bound: at most `buffer_lines_max` lines wait for a batch, plus the bytes of the line being read (no
bound on a line that never ends, as with Spark's readLine). When the buffer is full the reader
*blocks* (it stops reading the socket, so TCP flow control pushes back on the server) until the next
batch takes the buffer; nothing is dropped. Batches do not pile up behind a slow job either: the
scheduler queues at most `dstream.streaming.pendingBatchesMax` batches and the generator then waits,
so no batch takes the buffer and the reader stops (docs/backpressure.md). The default bound, 200,000
lines, also caps the stream at that many lines per batch interval (1M lines/s with 200 ms batches);
pass a larger `buffer_lines_max` for more, at the cost of memory.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from dstream.errors import DStreamValueError
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import (
    ReceiverInfo,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
)

log = logging.getLogger(__name__)

RESTART_DELAY_MS = 2_000
CONNECT_TIMEOUT_S = 5.0
# Bound on buffered, not yet batched lines; at it the reader stops reading (TCP back-pressure). With
# at most pendingBatchesMax queued batches of this many lines each, it bounds the stream's memory.
BUFFER_LINES_MAX = 200_000
STOP_CHECK_INTERVAL_S = 1.0  # how often a reader blocked on a full buffer rechecks for stop
# The reader's read size. Each read releases the GIL, and while tasks run Python on the local
# backend's threads the reader waits about a switch interval (5 ms) to get it back: a few hundred
# reads a second. With io's default 8 KiB, line by line, that capped ingest near 70,000 lines/s while
# jobs ran; 1 MiB takes whatever the kernel has buffered in one read (bench/gil.py).
READ_BUFFER_BYTES = 1 << 20


class SocketInputDStream(InputDStream):
    """Lines read from hostname:port, one batch per batch interval."""

    def __init__(
        self,
        ssc: Any,
        hostname: str,
        port: int,
        restart_delay_ms: int = RESTART_DELAY_MS,
        buffer_lines_max: int = BUFFER_LINES_MAX,
    ) -> None:
        if not isinstance(hostname, str) or not hostname:
            raise DStreamValueError(f"hostname must be a non-empty str, got {hostname!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise DStreamValueError(f"port must be an int in 1..65535, got {port!r}")
        for name, value in (("restart_delay_ms", restart_delay_ms), ("buffer_lines_max", buffer_lines_max)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DStreamValueError(f"{name} must be an int >= 1, got {value!r}")
        super().__init__(ssc)
        self._hostname = hostname
        self._port = port
        self._restart_delay_ms = restart_delay_ms
        self._buffer_lines_max = buffer_lines_max
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._buffer: list[str] = []
        self._cond = threading.Condition()
        self._received = 0
        self._waiting_for_room = False
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        transient_fields = (
            "_buffer",
            "_cond",
            "_received",
            "_waiting_for_room",
            "_stop_event",
            "_thread",
            "_sock",
        )
        for transient in transient_fields:
            state.pop(transient, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._init_runtime()

    @property
    def received_count(self) -> int:
        """Lines received so far (batched or not)."""
        with self._cond:
            return self._received

    def wait_for_received(self, count: int, timeout_s: float) -> bool:
        """Wait until at least `count` lines have been received; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._received >= count, timeout=timeout_s)

    def wait_until_full(self, timeout_s: float) -> bool:
        """Wait until the reader is blocked on a full buffer; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._waiting_for_room, timeout=timeout_s)

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"socket-stream-{self._id}", daemon=True
        )
        self._thread.start()

    def _stop(self) -> None:
        self._stop_event.set()
        with self._cond:
            self._cond.notify_all()  # a reader blocked on a full buffer sees the stop now
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(CONNECT_TIMEOUT_S + 1)

    def _info(self, active: bool, error: str = "") -> ReceiverInfo:
        return ReceiverInfo(
            self._id, f"SocketReceiver-{self._hostname}:{self._port}", active, lastErrorMessage=error
        )

    def _receive_loop(self) -> None:
        bus = self._runtime.bus
        while not self._stop_event.is_set():
            try:
                message = self._connect_and_read()
            except Exception as exc:  # anything else (a bug, a decoder): report and reconnect, never die
                log.exception("socket stream %d: reading failed", self._id)
                message = f"Error receiving data from {self._hostname}:{self._port}: {exc!r}"
            finally:
                self._sock = None
            if self._stop_event.is_set():
                break
            log.warning(
                "socket stream %d: %s; restarting in %d ms", self._id, message, self._restart_delay_ms
            )
            bus.post(StreamingListenerReceiverError(self._info(False, message)))
            self._stop_event.wait(self._restart_delay_ms / 1000)
        bus.post(StreamingListenerReceiverStopped(self._info(False)))

    def _connect_and_read(self) -> str:
        """One connection: read lines until it ends; returns why it ended (OSError is an answer too)."""
        try:
            with socket.create_connection((self._hostname, self._port), timeout=CONNECT_TIMEOUT_S) as sock:
                sock.settimeout(None)
                self._sock = sock
                self._runtime.bus.post(StreamingListenerReceiverStarted(self._info(True)))
                self._read_lines(sock)
        except OSError as exc:
            return f"Error connecting to {self._hostname}:{self._port}: {exc}"
        return "Socket data stream had no more data"

    def _read_lines(self, sock: socket.socket) -> None:
        buffer = bytearray(READ_BUFFER_BYTES)
        view = memoryview(buffer)
        splitter = LineSplitter()
        while n := sock.recv_into(buffer):
            lines = splitter.feed(view[:n])
            if lines and not self._append(lines):
                return
        self._append(splitter.finish())

    def _append(self, lines: list[str]) -> bool:
        """Buffer lines, blocking while the buffer is full; False once the stream is stopping."""
        taken = 0
        with self._cond:
            while taken < len(lines):
                while len(self._buffer) >= self._buffer_lines_max and not self._stop_event.is_set():
                    self._waiting_for_room = True
                    self._cond.notify_all()
                    self._cond.wait(timeout=STOP_CHECK_INTERVAL_S)
                self._waiting_for_room = False
                if self._stop_event.is_set():
                    return False
                room = self._buffer_lines_max - len(self._buffer)
                self._buffer.extend(lines[taken : taken + room])
                self._received += min(room, len(lines) - taken)
                taken += room
                self._cond.notify_all()
        return True

    def _compute(self, time_ms: int) -> Any:
        with self._cond:
            taken, self._buffer = self._buffer, []
            self._waiting_for_room = False  # there is room now, whether or not the reader woke yet
            self._cond.notify_all()
        self._records_per_batch[time_ms] = len(taken)
        return self._sc.parallelize(taken) if taken else self._sc.emptyRDD()


class LineSplitter:
    r"""Cuts a byte stream, fed in chunks of any size, into lines as the reader delivers them.

    Exactly what reading the stream line by line gives (a pure function of the bytes, whatever the
    chunk boundaries): lines end at ``\n``; each is decoded as UTF-8 with malformed bytes replaced by
    U+FFFD and its trailing ``\r`` characters dropped; `finish` returns the last line if the stream
    did not end with ``\n``. Decoding the complete lines of a chunk in one call gives the same text as
    decoding them one by one, since the byte ``\n`` is never part of a multi-byte UTF-8 sequence: a
    malformed sequence ends at it either way. Bytes after the last ``\n`` wait for the next chunk.
    """

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # bytes of the unfinished line, in the order they came

    def feed(self, chunk: bytes | memoryview) -> list[str]:
        r"""The lines that `chunk` completes (none if it holds no ``\n``)."""
        data = bytes(chunk)
        cut = data.rfind(b"\n")
        if cut < 0:
            if data:
                self._tail.append(data)
            return []
        head = data[:cut]
        if self._tail:
            head = b"".join([*self._tail, head])
        self._tail = [data[cut + 1 :]] if cut + 1 < len(data) else []
        lines = head.decode("utf-8", errors="replace").split("\n")
        if b"\r" in head:
            lines = [line.rstrip("\r") for line in lines]
        return lines

    def finish(self) -> list[str]:
        r"""The last line, if the stream ended without ``\n`` after it."""
        if not self._tail:
            return []
        tail, self._tail = b"".join(self._tail), []
        return [tail.decode("utf-8", errors="replace").rstrip("\r")]
