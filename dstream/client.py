"""PushClient: push records to a push receiver (`ssc.pushStream`) and get them acknowledged exactly once.

    client = PushClient("127.0.0.1", stream.port, producer_id="sensor-7")
    client.send(["a", "b"])     # returns once the receiver says the records are durable
    client.close()

A receiver that can move (receivers on Dask workers are restarted on another worker when theirs dies)
is given as several addresses, tried in turn, or as a resolver, asked for the current address before
each connection; the client follows the receiver and keeps its session (`dstream.client_addresses`):

    PushClient(addresses=[("10.0.0.5", 7001), ("10.0.0.6", 7001)], producer_id="sensor-7")
    PushClient(resolver=lambda: lookup("orders"), producer_id="sensor-7")

A `PushClient` instance is one session of its producer id: its HELLO carries a random session token that
it keeps across its own reconnects, so a reconnect resumes the session. Each record gets the next
sequence number of this producer; a frame is resent, with the same numbers, after a lost acknowledgement
or a broken connection until it is acknowledged, and the receiver drops what it already holds. A new
session (another `PushClient` with the same producer id, in this process or another) continues after the
producer's highest durable sequence number and fences this one: the receiver refuses this session's
frames from then on, and `send` raises `ProducerFencedError` instead of reconnecting. Two live clients on
one producer id therefore lose nothing that was acknowledged; the fenced one raises for the rest.

Retries: connection failures, broken connections, timeouts and RETRY replies (a failed store, an evicted
or refused connection) are retried with exponential back-off and jitter (`backoff_initial_s` doubling up
to `backoff_max_s`, each pause drawn from its upper half) until `timeout_s` after the start of the `send`
(and at most `retries_max` times, when given), so a client rides through a receiver or driver restart.
With several addresses a failed connection moves on to the next address at once, and the back-off pause
comes after a round in which every address failed; a resolver is called before every connection, and a
resolver that raises is retried like a refused connection (a resolver's answer that is not a (host, port)
pair raises `DStreamValueError` at once; queued records stay queued). Across a move the session token and
the sequence numbers stay: the moved receiver, recovered from the receiver WAL, resumes the session and
drops the resends it already holds.
What ends a send early: `ProducerFencedError` (a newer session took over), `PushVersionError` (the
receiver speaks another protocol version), `PushAuthenticationError` (the receiver authenticates
producers and this client lacks the right `secret`), `PushRejectedError` (the receiver refused the frame
on its first delivery: it was never stored, and resending it would fail again),
`PushOutcomeUnknownError` (the receiver refused a resend of a frame whose earlier delivery may have
been stored), and bad arguments (`TypeError`, `DStreamValueError`, raised before anything is sent).
A send that gave up (`PushError`) may still be durable, so its records keep their numbers, stay queued in
the client and the next send delivers them first.

What each outcome means for the records of a `send` (the chaos workload records exactly this):
returned: durable, in the stream exactly once; `PushRejectedError`: never stored; any other `PushError`
(`PushOutcomeUnknownError`, `ProducerFencedError`, a timeout): unknown, in the stream at most once.
A refusal is a definite failure only for a frame refused on its first delivery; a frame that was sent
before (its connection broke or timed out before the reply) may have been stored, so its refusal is an
unknown outcome, and its sequence numbers are never given to other records.
Wire format: `dstream.receiver.push_protocol`.
"""

from __future__ import annotations

import functools
import random
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from dstream.client_addresses import Address, AddressRotation, check_address, check_addresses
from dstream.clock import Clock, SystemClock
from dstream.errors import DStreamError, DStreamValueError
from dstream.receiver.push_protocol import (
    ACK,
    CHALLENGE,
    ERROR,
    FENCED,
    FRAME_BYTES_MAX_DEFAULT,
    HEADER,
    RETRY,
    SESSION,
    UNAUTHENTICATED,
    VERSION,
    VERSION_REFUSED,
    Frame,
    ProtocolError,
    decode_ack,
    decode_challenge,
    decode_error,
    decode_session,
    encode_data,
    encode_hello,
    new_session_token,
    read_frame,
)

__all__ = [
    "ProducerFencedError",
    "PushAuthenticationError",
    "PushClient",
    "PushError",
    "PushOutcomeUnknownError",
    "PushRejectedError",
    "PushVersionError",
]

T = TypeVar("T")


class PushError(DStreamError):
    """Records could not be delivered within the retry bounds (the root of the client's errors)."""


class PushRejectedError(PushError):
    """The receiver refused a frame (its ERROR message is kept); resending it would fail again."""


class PushOutcomeUnknownError(PushError):
    """The receiver refused a resend of a frame whose earlier delivery may have been stored.

    Its records are in the stream at most once (maybe not at all); the client drops the frame and never
    gives its sequence numbers to other records. Not a `PushRejectedError`: that one means never stored.
    """


class PushVersionError(PushRejectedError):
    """The receiver speaks another push protocol version; the message names both."""


class PushAuthenticationError(PushRejectedError):
    """The receiver authenticates producers and this client has no secret, or not its secret."""


class ProducerFencedError(PushError):
    """A newer session of this producer id took over; this client must stop (it never reconnects)."""


class _ResolverFailed(PushError):
    """The resolver raised: retried like a refused connection (the receiver may not be placed yet)."""


@dataclass
class _Unacked:
    """A DATA frame not acknowledged yet, and how many times its bytes were sent (its outcome unknown)."""

    frame: bytes
    first: int
    last: int
    deliveries: int = 0
    refused_reply: bool = False  # the last delivery was answered with a refusal

    def may_be_stored(self) -> bool:
        """Whether a delivery other than a refused one was sent (its reply lost: it may be stored)."""
        return self.deliveries - self.refused_reply > 0


class PushClient:
    """One session of a producer with a push receiver, which may move to another address.

    Give the receiver's address one way: `host` and `port`; or `addresses`, when the receiver may be at
    one of several (tried in turn); or `resolver`, when something else knows where it is now (called
    before every connection). The session (token, sequence numbers) is kept across reconnects, so a
    client follows a receiver that moved without duplicating or losing an acknowledged record.

    Args:
        host: the receiver's host.
        port: the receiver's port (`stream.port` of `ssc.pushStream`).
        producer_id: stable name of this producer (its sequence numbers are per producer id). One live
            client per producer id: a second one fences the first.
        addresses: instead of `host` and `port`: the receiver's possible (host, port) addresses. A failed
            connection moves on to the next one at once; a back-off pause comes after every address
            failed. Each address must be this stream's receiver or nothing: another push receiver would
            not know this session and would fence it.
        resolver: instead of `host` and `port`: a callable returning the receiver's current (host, port),
            called before every connection. One that raises is retried (within `timeout_s`); an answer
            that is not a (host, port) pair raises `DStreamValueError` naming it.
        timeout_s: bound on one `send`, retries and back-off included.
        retries_max: connection-and-resend attempts per `send` at most (each address tried counts);
            None: as many as `timeout_s` allows.
        connect_timeout_s: bound on one TCP connect (within `timeout_s`), so an address that drops
            packets does not use up the send's whole time.
        frame_bytes_max: a send larger than this is refused before anything is sent.
        backoff_initial_s: the first pause before a retry; it doubles after each failed attempt.
        backoff_max_s: the pause between retries at most.
        clock: measures the deadline and waits the pauses (tests inject a manual one).
        rng: draws the jitter.
        secret: the producers' shared secret, for a receiver that authenticates producers
            (`producer_secret_env`); None for one that does not.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        producer_id: str | None = None,
        *,
        addresses: Sequence[Address] | None = None,
        resolver: Callable[[], Address] | None = None,
        timeout_s: float = 30.0,
        retries_max: int | None = None,
        connect_timeout_s: float = 5.0,
        frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT,
        backoff_initial_s: float = 0.02,
        backoff_max_s: float = 1.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
    ) -> None:
        self._rotation, self._resolver = _where_to_connect(host, port, addresses, resolver)
        if producer_id is None:
            raise DStreamValueError("producer_id is required (PushClient(host, port, producer_id, ...))")
        if not timeout_s > 0 or not connect_timeout_s > 0 or not 0 < backoff_initial_s <= backoff_max_s:
            raise DStreamValueError(
                "need timeout_s > 0, connect_timeout_s > 0 and 0 < backoff_initial_s <= backoff_max_s, got "
                f"timeout_s={timeout_s!r}, connect_timeout_s={connect_timeout_s!r}, "
                f"backoff_initial_s={backoff_initial_s!r}, backoff_max_s={backoff_max_s!r}"
            )
        if retries_max is not None and (not isinstance(retries_max, int) or retries_max < 0):
            raise DStreamValueError(f"retries_max must be None or an int >= 0, got {retries_max!r}")
        self.session_token = new_session_token()
        encode_hello(producer_id, self.session_token)  # validates the id
        self.producer_id = producer_id
        # The address of the latest connection attempt (None until a resolver answered).
        self.host: str | None = self._rotation.current[0] if self._rotation else None
        self.port: int | None = self._rotation.current[1] if self._rotation else None
        self.timeout_s, self.retries_max, self.frame_bytes_max = timeout_s, retries_max, frame_bytes_max
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._secret = secret
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._next_seq: int | None = None
        self._unacked: list[_Unacked] = []  # oldest first
        self._fenced: ProducerFencedError | None = None
        self.epoch: int | None = None  # the producer epoch this session owns, once a HELLO was answered
        self.acked_seq = -1

    def send(self, records: Iterable[str | bytes]) -> int:
        """Deliver `records` (str or bytes); return the last sequence number, once it is acknowledged.

        Raises:
            TypeError: a record is neither str nor bytes.
            DStreamValueError: the frame would exceed `frame_bytes_max`, or the resolver answered with
                something that is not a (host, port) pair (queued records stay queued, as for PushError).
            ProducerFencedError: another session of this producer id took over; this client is done.
            PushVersionError: the receiver speaks another protocol version.
            PushRejectedError: the receiver refused the frame on its first delivery; never stored.
            PushOutcomeUnknownError: the receiver refused a resend of a frame that may have been stored
                (this send's, or an earlier send's queued one); the records of this send that were
                never sent are not stored.
            PushError: not acknowledged within `timeout_s` (or `retries_max` attempts). The records are
                kept with their sequence numbers and resent first by the next `send` (`send([])`
                only resends), so they end up in the stream exactly once.
        """
        batch = list(records)
        with self._lock:
            if self._fenced is not None:
                raise self._fenced
            deadline_ms = self._clock.time_ms() + int(self.timeout_s * 1000)
            if self._next_seq is None:
                self._with_retries(deadline_ms, lambda: self._connect(deadline_ms), "connect")
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
                self._unacked.append(_Unacked(frame, first, last))
                self._next_seq = last + 1
            self._deliver_unacked(deadline_ms)
            return self._next_seq - 1

    def _deliver_unacked(self, deadline_ms: int) -> None:
        """Deliver the frames not acknowledged yet, oldest first.

        A frame that timed out may already be durable (the receiver's write may commit late), so its
        sequence numbers are never given to other records: it is resent as is until acknowledged. A
        frame refused on its first delivery was never stored: it gives its numbers back, with those of
        the frames after it (never sent), and `PushRejectedError` is raised. A frame refused on a
        resend may have been stored by an earlier delivery: it is dropped but keeps its numbers, the
        frames after it give theirs back, and `PushOutcomeUnknownError` is raised (unless the refused
        frame is an earlier send's and this send's frame was never sent: then this send's records are
        definitely not stored, and `PushRejectedError` says so). A fenced session keeps every number:
        it may not send again.
        """
        while self._unacked:
            head = self._unacked[0]
            try:
                self._with_retries(deadline_ms, functools.partial(self._deliver, head, deadline_ms), "send")
            except PushRejectedError as exc:
                own = self._unacked[-1]  # this send's frame when it had records
                self._unacked = []
                if not head.may_be_stored():  # refused at its first delivery, or before any: never stored
                    self._next_seq = head.first
                    raise
                self._next_seq = head.last + 1
                unknown = PushOutcomeUnknownError(
                    f"producer {self.producer_id!r}: the resend of seq {head.first}..{head.last} was "
                    f"refused after an earlier delivery whose reply was lost, so those records are in the "
                    f"stream at most once; their numbers are not reused: {exc}"
                )
                if own is head or own.deliveries:
                    raise unknown from exc
                raise PushRejectedError(
                    f"producer {self.producer_id!r}: seq {own.first}..{own.last} not sent (never stored): "
                    f"an earlier send's frame was refused: {unknown}"
                ) from exc
            self._unacked.pop(0)

    @property
    def unacked(self) -> bool:
        """Whether records of a failed send still wait to be acknowledged (the next send resends them)."""
        return bool(self._unacked)

    def _with_retries(self, deadline_ms: int, attempt: Callable[[], T], what: str) -> T:
        """Run `attempt` until it succeeds, pausing with back-off and jitter, until the deadline."""
        error: BaseException | None = None
        pause_s = self.backoff_initial_s
        attempts = 0
        while True:
            try:
                return attempt()
            except (ProducerFencedError, PushRejectedError):
                self._close_socket()
                raise
            except (OSError, ProtocolError, PushError) as exc:
                error = exc
                self._close_socket()
                pause = self._pause_after(exc)
            attempts += 1
            now_ms = self._clock.time_ms()
            if now_ms >= deadline_ms or (self.retries_max is not None and attempts > self.retries_max):
                break
            if pause:
                jittered_ms = int(pause_s * 1000 * (0.5 + self._rng.random() / 2))
                self._clock.wait_until(min(deadline_ms, now_ms + max(1, jittered_ms)))
                pause_s = min(pause_s * 2, self.backoff_max_s)
        unacked = f"records up to seq {self._unacked[0].last} " if self._unacked and what == "send" else ""
        raise PushError(
            f"{what} of producer {self.producer_id!r} to {self._where()} failed: {unacked}not "
            f"acknowledged after {attempts} attempts (timeout_s={self.timeout_s}, "
            f"retries_max={self.retries_max}): {error}"
        ) from error

    def _pause_after(self, error: BaseException) -> bool:
        """Whether to pause before the next attempt; a failed connection moves fixed addresses on.

        A RETRY reply (a `PushError`) came from the right receiver, so it stays; a resolver is asked
        again before the next connection anyway.
        """
        if self._rotation is None or isinstance(error, PushError):
            return True
        self._rotation, pause = self._rotation.after_failure()
        return pause

    def _where(self) -> str:
        """The receiver's address(es), for error messages."""
        if self._resolver is not None:
            return f"the address from resolver {self._resolver!r} (last {self.host}:{self.port})"
        assert self._rotation is not None
        return ", ".join(f"{host}:{port}" for host, port in self._rotation.addresses)

    def _next_address(self) -> Address:
        if self._resolver is None:
            assert self._rotation is not None
            return self._rotation.current
        try:
            answer = self._resolver()
        except Exception as exc:  # whatever the user's lookup raises: the receiver may not be placed yet
            raise _ResolverFailed(f"resolver {self._resolver!r} raised {exc!r}") from exc
        return check_address(answer, f"the answer of resolver {self._resolver!r}")

    def _deliver(self, unacked: _Unacked, deadline_ms: int) -> None:
        if self._sock is None:
            self._connect(deadline_ms)
        last = unacked.last
        if self.acked_seq >= last:
            return  # the ack was lost but the receiver holds everything
        sock = self._sock
        assert sock is not None
        sock.settimeout(self._left_s(deadline_ms))
        unacked.deliveries += 1  # from its first byte on, the receiver may store it
        sock.sendall(unacked.frame)
        try:
            acked = self._read_reply(sock, ACK)
        except PushRejectedError:
            unacked.refused_reply = True  # this delivery was judged and refused: it stored nothing
            raise
        if acked < last:
            raise PushError(f"receiver acknowledged {self.acked_seq}, expected {last}")

    def _connect(self, deadline_ms: int) -> None:
        address = self._next_address()
        self.host, self.port = address
        connect_s = min(self.connect_timeout_s, self._left_s(deadline_ms))
        sock = self._sock = socket.create_connection(address, timeout=connect_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self._left_s(deadline_ms))  # the HELLO's reply waits for its epoch to be durable
        resuming = self.epoch is not None
        sock.sendall(encode_hello(self.producer_id, self.session_token, resuming))
        frame = self._read_frame(sock)
        if frame.kind == CHALLENGE:  # the receiver authenticates producers
            if self._secret is None:
                raise PushAuthenticationError(
                    f"receiver {self.host}:{self.port} authenticates producers; this client has no secret "
                    "(expected PushClient(..., secret=...))"
                )
            nonce = decode_challenge(frame.payload)
            sock.sendall(encode_hello(self.producer_id, self.session_token, resuming, self._secret, nonce))
            frame = self._read_frame(sock)
        durable = self._take_reply(frame, SESSION)
        if self._rotation is not None:
            self._rotation = self._rotation.after_success()
        if self._next_seq is None:
            self._next_seq = durable + 1  # continue after what the receiver already holds

    def _left_s(self, deadline_ms: int) -> float:
        return max(0.001, (deadline_ms - self._clock.time_ms()) / 1000.0)

    def _read_reply(self, sock: socket.socket, expected_kind: int) -> int:
        """Read an ACK or SESSION reply; return the durable sequence number it carries."""
        return self._take_reply(self._read_frame(sock), expected_kind)

    def _read_frame(self, sock: socket.socket) -> Frame:
        """Read the receiver's next frame; raise for an ERROR frame or another protocol version."""
        frame = read_frame(sock, self.frame_bytes_max)
        if frame is None:
            raise ProtocolError("receiver closed the connection without a reply")
        if frame.kind == ERROR or frame.version != VERSION:
            self._raise_error(frame.kind, frame.payload, frame.version)
        return frame

    def _take_reply(self, frame: Frame, expected_kind: int) -> int:
        if frame.kind != expected_kind:
            raise ProtocolError(f"expected a reply of kind {expected_kind}, got kind {frame.kind}")
        if frame.kind == SESSION:
            self.epoch, durable = decode_session(frame.payload)
        else:
            durable = decode_ack(frame.payload)
        self.acked_seq = max(self.acked_seq, durable)
        return self.acked_seq

    def _raise_error(self, kind: int, payload: bytes, version: int) -> None:
        code, message = decode_error(payload) if kind == ERROR else (VERSION_REFUSED, f"a kind {kind} frame")
        if version != VERSION or code == VERSION_REFUSED:
            raise PushVersionError(
                f"receiver {self.host}:{self.port} speaks push protocol version {version}, this client "
                f"version {VERSION}: {message}"
            )
        if code == RETRY:
            raise PushError(f"receiver asks to retry: {message}")
        if code == UNAUTHENTICATED:
            raise PushAuthenticationError(f"receiver refused this producer's HELLO: {message}")
        if code == FENCED:
            pending = f"seq {self._unacked[0].first}..{self._unacked[-1].last}" if self._unacked else "none"
            self._fenced = ProducerFencedError(
                f"producer {self.producer_id!r}: this client's session (epoch {self.epoch}) was fenced by "
                f"another client using the same producer_id; unacknowledged records ({pending}) are in the "
                f"stream at most once, maybe not at all: {message}"
            )
            raise self._fenced
        raise PushRejectedError(f"receiver refused: {message}")

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


def _where_to_connect(
    host: str | None, port: int | None, addresses: object, resolver: object
) -> tuple[AddressRotation | None, Callable[[], Address] | None]:
    """Check the ways a receiver's address can be given; exactly one must be."""
    given = [
        name
        for name, value in (
            ("host/port", port if host is None else host),
            ("addresses", addresses),
            ("resolver", resolver),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise DStreamValueError(
            "give the receiver's address one way: host and port, addresses=[(host, port), ...] or "
            f"resolver=<callable returning (host, port)>; got {', '.join(given) or 'none'}: host={host!r}, "
            f"port={port!r}, addresses={addresses!r}, resolver={resolver!r}"
        )
    if resolver is not None:
        if not callable(resolver):
            raise DStreamValueError(f"resolver must be a callable returning (host, port), got {resolver!r}")
        return None, resolver
    if addresses is not None:
        return AddressRotation(check_addresses(addresses)), None
    return AddressRotation((check_address((host, port), "host and port"),)), None
