"""socketTextStream: lines from a TCP server, cut into the current batch (unreliable, like PySpark's).

A reader thread connects to the server and appends each received line to a buffer; each batch takes
every line received before it was generated. Nothing is acknowledged or logged, so lines in the
buffer are lost if the driver dies: the receivers issue replaces this plumbing with receivers, blocks
and the WAL. When the connection fails or ends, the thread reports it on the listener bus and
reconnects after `restart_delay_ms` until the stream stops (Spark's SocketReceiver restarts too).
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
# Bound on buffered, not yet batched lines; beyond it the reader stops reading (TCP back-pressure).
BUFFER_LINES_MAX = 1_000_000


class SocketInputDStream(InputDStream):
    """Lines read from hostname:port, one batch per batch interval."""

    def __init__(self, ssc: Any, hostname: str, port: int, restart_delay_ms: int = RESTART_DELAY_MS) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise DStreamValueError(f"port must be an int in 1..65535, got {port!r}")
        super().__init__(ssc)
        self._hostname = hostname
        self._port = port
        self._restart_delay_ms = restart_delay_ms
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._buffer: list[str] = []
        self._cond = threading.Condition()
        self._received = 0
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for transient in ("_buffer", "_cond", "_received", "_stop_event", "_thread", "_sock"):
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

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"socket-stream-{self._id}", daemon=True
        )
        self._thread.start()

    def _stop(self) -> None:
        self._stop_event.set()
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
        bus = self._ssc._bus
        while not self._stop_event.is_set():
            try:
                with socket.create_connection(
                    (self._hostname, self._port), timeout=CONNECT_TIMEOUT_S
                ) as sock:
                    sock.settimeout(None)
                    self._sock = sock
                    bus.post(StreamingListenerReceiverStarted(self._info(True)))
                    self._read_lines(sock)
                message = "Socket data stream had no more data"
            except OSError as exc:
                message = f"Error connecting to {self._hostname}:{self._port}: {exc}"
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

    def _read_lines(self, sock: socket.socket) -> None:
        with sock.makefile("r", encoding="utf-8", newline="\n") as lines:
            for line in lines:
                with self._cond:
                    self._cond.wait_for(
                        lambda: len(self._buffer) < BUFFER_LINES_MAX or self._stop_event.is_set(), timeout=1.0
                    )
                    self._buffer.append(line.rstrip("\n").rstrip("\r"))
                    self._received += 1
                    self._cond.notify_all()
                if self._stop_event.is_set():
                    return

    def _compute(self, time_ms: int) -> Any:
        with self._cond:
            taken, self._buffer = self._buffer, []
            self._cond.notify_all()
        self._records_per_batch[time_ms] = len(taken)
        return self._sc.parallelize(taken) if taken else self._sc.emptyRDD()
