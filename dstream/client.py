"""PushClient: push records to a push receiver (`ssc.pushStream`) and get them acknowledged exactly once.

    client = PushClient("127.0.0.1", stream.port, producer_id="sensor-7")
    client.send(["a", "b"])     # returns once the receiver says the records are durable
    client.close()

Each record gets the next sequence number of this producer; a frame is resent, with the same numbers,
after a lost acknowledgement or a broken connection until it is acknowledged (bounded by `retries_max`
and `timeout_s`), and the receiver drops what it already holds. On (re)connecting the receiver tells the
client its producer's highest durable sequence number, so a new client for the same producer id continues
where the last acknowledged one stopped. A send that gave up (`PushError`) may still be durable, so its
records keep their numbers, stay queued in the client and the next send delivers them first. Wire format:
`dstream.receiver.push_protocol`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable

from dstream.errors import DStreamError, DStreamValueError
from dstream.receiver.push_protocol import (
    ACK,
    ERROR,
    FRAME_BYTES_MAX_DEFAULT,
    HEADER,
    RETRY,
    ProtocolError,
    decode_ack,
    decode_error,
    encode_data,
    encode_hello,
    read_frame,
)

__all__ = ["PushClient", "PushError", "PushRejectedError"]


class PushError(DStreamError):
    """Records could not be delivered within the retry bounds."""


class PushRejectedError(PushError):
    """The receiver refused a frame (its ERROR message is kept); resending it would fail again."""


class PushClient:
    """A producer's connection to a push receiver.

    Args:
        host: the receiver's address.
        port: the receiver's port (`stream.port` of `ssc.pushStream`).
        producer_id: stable name of this producer (its sequence numbers are per producer id).
        timeout_s: bound on one `send`, retries included.
        retries_max: reconnect-and-resend attempts per `send` at most.
        frame_bytes_max: a send larger than this is refused before anything is sent.
    """

    def __init__(
        self,
        host: str,
        port: int,
        producer_id: str,
        *,
        timeout_s: float = 30.0,
        retries_max: int = 20,
        frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT,
    ) -> None:
        if not isinstance(port, int) or not 0 < port <= 65535:
            raise DStreamValueError(f"port must be an int in 1..65535, got {port!r}")
        encode_hello(producer_id)  # validates the id
        self.host, self.port, self.producer_id = host, port, producer_id
        self.timeout_s, self.retries_max, self.frame_bytes_max = timeout_s, retries_max, frame_bytes_max
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._next_seq: int | None = None
        self._unacked: list[tuple[bytes, int, int]] = []  # (frame, first seq, last seq), oldest first
        self.acked_seq = -1

    def send(self, records: Iterable[str | bytes]) -> int:
        """Deliver `records` (str or bytes); return the last sequence number, once it is acknowledged.

        Raises:
            TypeError: a record is neither str nor bytes.
            DStreamValueError: the frame would exceed `frame_bytes_max`.
            PushRejectedError: the receiver refused the frame.
            PushError: not acknowledged within `retries_max` attempts / `timeout_s`. The records are
                kept with their sequence numbers and resent first by the next `send` (`send([])`
                only resends), so they end up in the stream exactly once.
        """
        batch = list(records)
        with self._lock:
            if self._next_seq is None:
                self._connect_with_retries(time.monotonic() + self.timeout_s)
            assert self._next_seq is not None
            first = self._next_seq
            frame = encode_data(first, batch) if batch else b""
            if len(frame) - HEADER.size > self.frame_bytes_max:
                raise DStreamValueError(
                    f"{len(batch)} records make a {len(frame)}-byte frame; "
                    f"frame_bytes_max={self.frame_bytes_max}"
                )
            last = first + len(batch) - 1
            if batch:  # queued behind the frames of earlier sends that raised PushError
                self._unacked.append((frame, first, last))
                self._next_seq = last + 1
            self._deliver_unacked()
            return self._next_seq - 1

    def _deliver_unacked(self) -> None:
        """Deliver the frames not acknowledged yet, oldest first.

        A frame that timed out may already be durable (the receiver's write may commit late), so its
        sequence numbers are never given to other records: it is resent as is until acknowledged. Only
        a refused frame (`PushRejectedError`) gives its numbers back, with those of the frames after it.
        """
        while self._unacked:
            frame, first, last = self._unacked[0]
            try:
                self._deliver(frame, last)
            except PushRejectedError:
                self._unacked, self._next_seq = [], first
                raise
            self._unacked.pop(0)

    @property
    def unacked(self) -> bool:
        """Whether records of a failed send still wait to be acknowledged (the next send resends them)."""
        return bool(self._unacked)

    def _deliver(self, frame: bytes, last: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        error: BaseException | None = None
        for _ in range(self.retries_max + 1):
            try:
                if self._sock is None:
                    self._connect(deadline)
                if self.acked_seq >= last:
                    return  # the ack was lost but the receiver holds everything
                sock = self._sock
                assert sock is not None
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock.sendall(frame)
                if self._read_ack(sock) >= last:
                    return
                raise PushError(f"receiver acknowledged {self.acked_seq}, expected {last}")
            except PushRejectedError:
                self._close_socket()
                raise
            except (OSError, ProtocolError, PushError) as exc:
                error = exc
                self._close_socket()
                if time.monotonic() >= deadline:
                    break
                threading.Event().wait(0.02)  # brief pause before reconnecting (a restarting receiver)
        raise PushError(
            f"records up to seq {last} of producer {self.producer_id!r} not acknowledged by "
            f"{self.host}:{self.port} (retries_max={self.retries_max}, timeout_s={self.timeout_s}): {error}"
        ) from error

    def _connect_with_retries(self, deadline: float) -> None:
        error: BaseException | None = None
        for _ in range(self.retries_max + 1):
            try:
                self._connect(deadline)
                return
            except PushRejectedError:
                raise
            except (OSError, ProtocolError, PushError) as exc:
                error = exc
                self._close_socket()
                if time.monotonic() >= deadline:
                    break
                threading.Event().wait(0.02)
        raise PushError(f"cannot connect to {self.host}:{self.port}: {error}") from error

    def _connect(self, deadline: float) -> None:
        sock = socket.create_connection(
            (self.host, self.port), timeout=max(0.001, deadline - time.monotonic())
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        sock.sendall(encode_hello(self.producer_id))
        durable = self._read_ack(sock)
        if self._next_seq is None:
            self._next_seq = durable + 1  # continue after what the receiver already holds

    def _read_ack(self, sock: socket.socket) -> int:
        frame = read_frame(sock, self.frame_bytes_max)
        if frame is None:
            raise ProtocolError("receiver closed the connection without a reply")
        if frame.kind == ERROR:
            code, message = decode_error(frame.payload)
            if code == RETRY:
                raise PushError(f"receiver asks to retry: {message}")
            raise PushRejectedError(f"receiver refused: {message}")
        if frame.kind != ACK:
            raise ProtocolError(f"expected an ACK frame, got kind {frame.kind}")
        self.acked_seq = max(self.acked_seq, decode_ack(frame.payload))
        return self.acked_seq

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._close_socket()

    def __enter__(self) -> PushClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
