"""The push receiver: a TCP server on 127.0.0.1 that producers push records to, exactly once.

Frames and the exactly-once rule are specified in `dstream.receiver.push_protocol`; the producer session
rules (epochs, fencing) in `dstream.receiver.producer_sessions`. Per producer the receiver keeps a
`ProducerState`: the current epoch, the session owning it (a digest of its token, `Hello.session_id`: the
durable state never holds a token), and the highest durable sequence number;
a DATA frame's records at or below it are dropped as duplicates, and a frame of a fenced session is
refused with ERROR FENCED, never acknowledged. Connection threads hand decoded frames, and the HELLOs that
open a new epoch, to one committer thread, which judges them in arrival order and stores every frame
waiting at that moment as one block (receiver-side group commit: one WAL write and one tracker event for
many producers' frames) with metadata `{"producers": {producer_id: [seq_first, seq_last]}, "epochs":
{producer_id: epoch}}`; the block's records are grouped by producer in the order of that mapping, so
recovery can cut a block by producer. New epochs of the group are then written as a state record
`{"sessions": {producer_id: [epoch, session_id]}}` (`Receiver.store_state`). Only when both writes returned,
i.e. with the receiver WAL on when the block is durable and registered with the driver's tracker, are the
frames' ACKs and the HELLOs' SESSION replies sent. The per-producer state survives a restart:
`on_recovered_blocks` rebuilds it from the metadata of the blocks in the receiver WAL, the session records
and the snapshot `{"durable": {...}, "sessions": {...}}` (`recovery_state`) that is written to the receiver
WAL before each cleanup of old segments, so cleaning the blocks that carried a producer's ranges does not
forget them. A block whose write timed out (`WALTimeoutError`) may commit late while the producer's resend
is stored as another block; at recovery `adopt_recovered_block` trims such an unreported block to the
sequence numbers no known block holds, and drops the part written in an epoch that has been fenced since,
so each (producer, seq) reaches the stream once (docs/receivers.md).

Without the receiver WAL the push source is at-most-once across a process crash (acked blocks live only
in memory); the deduplication and fencing still hold while the process lives.

The socket is bound when the receiver is created, so `port` is known before the streaming context starts;
clients that connect early wait in the backlog. A bad frame gets an ERROR reply and the connection is
closed; it never stops the receiver. Connections are bounded (`connections_max`; when full, the connection
idle longest is evicted to let a new one in, see `push_connections`), a connection may stay silent
between frames for `idle_timeout_s`, and a frame must be complete within `frame_timeout_s` of its first
byte, so a client trickling bytes cannot hold a slot. With `producer_secret_env` (off by default) a HELLO
opens or resumes a session only with an HMAC of it over a per-connection challenge (docs/receivers.md).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from dstream.errors import DStreamValueError
from dstream.rdd.storage import StorageLevel
from dstream.receiver.producer_sessions import (
    NO_SESSION,
    ProducerState,
    Verdict,
    merge,
    on_hello,
)
from dstream.receiver.push_commit_plan import (
    FencedError,
    GroupPlan,
    PendingFrame,
    PendingHello,
    fenced_message,
)
from dstream.receiver.push_connections import ConnectionTable
from dstream.receiver.push_protocol import (
    DATA,
    FENCED,
    FRAME_BYTES_MAX_DEFAULT,
    HELLO,
    NONCE_BYTES,
    REFUSED,
    RETRY,
    UNAUTHENTICATED,
    VERSION,
    Hello,
    ProtocolError,
    decode_data,
    decode_hello,
    encode_ack,
    encode_challenge,
    encode_error,
    encode_session,
    hello_is_authentic,
    read_frame,
)
from dstream.receiver.receiver import Receiver

CONNECTIONS_MAX_DEFAULT = 64
IDLE_TIMEOUT_S_DEFAULT = 300.0
FRAME_TIMEOUT_S_DEFAULT = 30.0
_ACCEPT_POLL_S = 0.1
_JOIN_TIMEOUT_S = 10.0
_GROUP_FRAMES_MAX = 256  # frames stored as one block at most


class PushReceiver(Receiver):
    """Receive pushed records over TCP; acknowledge each frame once its records are stored.

    Args:
        host: address to bind; 127.0.0.1 unless told otherwise.
        port: TCP port; 0 lets the OS choose (read it from `port`).
        storageLevel: block storage level (the receiver WAL, when on, is what makes pushes durable).
        frame_bytes_max: larger frames are refused.
        connections_max: concurrent connections at most; when full, the connection idle longest (between
            frames) is evicted for a new one, and only when none is idle is the new one refused.
        idle_timeout_s: a connection silent this long between frames is closed.
        frame_timeout_s: a frame must be complete within this many seconds of its first byte.
        producer_secret_env: the name of an environment variable holding a shared secret; when given,
            only producers whose HELLO carries its HMAC over a per-connection challenge may open or
            resume a session (`PushClient(secret=...)`). Read at each start, so the secret is never
            pickled into a checkpoint; an unset or empty variable fails the start. Off by default.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2,
        frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT,
        connections_max: int = CONNECTIONS_MAX_DEFAULT,
        idle_timeout_s: float = IDLE_TIMEOUT_S_DEFAULT,
        frame_timeout_s: float = FRAME_TIMEOUT_S_DEFAULT,
        producer_secret_env: str | None = None,
    ) -> None:
        super().__init__(storageLevel)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise DStreamValueError(f"port must be an int in 0..65535, got {port!r}")
        limits = {
            "frame_bytes_max": frame_bytes_max,
            "connections_max": connections_max,
            "idle_timeout_s": idle_timeout_s,
            "frame_timeout_s": frame_timeout_s,
        }
        for name, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise DStreamValueError(f"{name} must be a positive number, got {value!r}")
        self.host = host
        self.frame_bytes_max = frame_bytes_max
        self.connections_max = connections_max
        self.idle_timeout_s = idle_timeout_s
        self.frame_timeout_s = frame_timeout_s
        self.producer_secret_env = producer_secret_env
        self._producer_secret: bytes | None = None
        self._producers: dict[str, ProducerState] = {}
        self._state_lock = threading.Lock()
        self._commit_cond = threading.Condition()
        self._pending: list[PendingFrame | PendingHello] = []
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: ConnectionTable[socket.socket] = ConnectionTable(connections_max)
        self.port = port
        self._bind()

    # -- lifecycle ------------------------------------------------------------------------------------
    def _bind(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(self.connections_max)
        except OSError:
            listener.close()
            raise
        listener.settimeout(_ACCEPT_POLL_S)
        self._listener = listener
        self.port = listener.getsockname()[1]

    def onStart(self) -> None:
        if self.producer_secret_env is not None:
            secret = os.environ.get(self.producer_secret_env, "")
            if not secret:
                raise DStreamValueError(
                    f"producer_secret_env={self.producer_secret_env!r} names an unset or empty environment "
                    "variable; expected the shared secret of the push producers"
                )
            self._producer_secret = secret.encode("utf-8")
        if self._listener is None:
            self._bind()  # same port as before: clients reconnect to it
        self._accepting.set()
        self._spawn(self._run_committer, "push-commit")
        self._spawn(self._accept_loop, "push-accept")

    def bound_address(self) -> tuple[str, int] | None:
        return (self.host, self.port)

    def detach_from_driver(self) -> None:
        """Close the socket bound on the driver; the worker's copy binds the same port (`onStart`)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def onStop(self) -> None:
        self._accepting.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for conn in self._conns.connections():
            _shutdown(conn)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(_JOIN_TIMEOUT_S)
        self._threads = [t for t in self._threads if t.is_alive()]

    def on_recovered_blocks(self, metadata: list[dict[str, Any]]) -> None:
        with self._state_lock:
            for meta in metadata:
                found: dict[str, tuple[int, str | None, int]] = {}
                for producer, (_, last) in dict(meta.get("producers") or {}).items():
                    found[producer] = (0, None, int(last))
                for producer, last in dict(meta.get("durable") or {}).items():
                    found[producer] = (0, None, int(last))
                for producer, (epoch, token) in dict(meta.get("sessions") or {}).items():
                    _, _, last = found.get(producer, (0, None, -1))
                    found[producer] = (int(epoch), str(token), last)
                for producer, (epoch, token, last) in found.items():
                    state = self._producers.get(producer, NO_SESSION)
                    self._producers[producer] = merge(state, epoch, token, last)

    def adopt_recovered_block(
        self, records: list[Any], metadata: dict[str, Any] | None
    ) -> tuple[list[Any], dict[str, Any] | None]:
        """Keep only the records of an unreported block that no known or adopted block or snapshot holds.

        Such a block was never acknowledged, so its producers resend it: if the resend was stored (the
        first write timed out and committed late) the block is dropped here, whole or in part. A
        producer's part that does not continue its durable sequence (a gap) is dropped too: its
        producer resends it. So is a part written in an epoch older than the producer's current one:
        its session was fenced (it raises for those records) and the new session numbers its records
        from the durable sequence it was told, which must not now mean the fenced session's records.
        Records are grouped by producer in `producers` order (see `_commit`).
        """
        logged = dict((metadata or {}).get("producers") or {})
        epochs = dict((metadata or {}).get("epochs") or {})
        ranges = {p: (int(first), int(last)) for p, (first, last) in logged.items()}
        if sum(last - first + 1 for first, last in ranges.values()) != len(records):
            return [], None  # not a push block of this layout: cannot tell its records apart
        kept: list[Any] = []
        kept_ranges: dict[str, list[int]] = {}
        kept_epochs: dict[str, int] = {}
        offset = 0
        with self._state_lock:
            for producer, (first, last) in ranges.items():
                part, offset = records[offset : offset + last - first + 1], offset + last - first + 1
                state = self._producers.get(producer, NO_SESSION)
                durable = state.durable_seq
                if first > durable + 1 or last <= durable or int(epochs.get(producer, 0)) < state.epoch:
                    continue
                kept.extend(part[durable + 1 - first :])
                kept_ranges[producer] = [max(first, durable + 1), last]
                kept_epochs[producer] = int(epochs.get(producer, 0))
        if not kept:
            return [], None
        return kept, {"producers": kept_ranges, **({"epochs": kept_epochs} if epochs else {})}

    def recovery_state(self) -> dict[str, Any] | None:
        """Every producer's durable sequence number and session: `{"durable": {...}, "sessions": {...}}`.

        `durable` maps producer_id to its last durable seq; `sessions` maps producer_id to
        `[epoch, session_id]` of its current session (a digest of the session's token).
        """
        with self._state_lock:
            if not self._producers:
                return None
            return {
                "durable": {p: s.durable_seq for p, s in self._producers.items()},
                "sessions": {p: [s.epoch, s.token] for p, s in self._producers.items() if s.token},
            }

    def durable_seq(self, producer_id: str) -> int:
        """The highest durable sequence number of a producer (-1 for none)."""
        return self.producer_state(producer_id).durable_seq

    def producer_state(self, producer_id: str) -> ProducerState:
        """A producer's epoch, session token and durable sequence number (as applied, i.e. durable)."""
        with self._state_lock:
            return self._producers.get(producer_id, NO_SESSION)

    @property
    def evictions(self) -> int:
        """How many idle connections were evicted to let a new one in."""
        return self._conns.evictions

    @property
    def busy_connections(self) -> int:
        """Connections inside a frame or waiting for their reply (never evicted)."""
        return self._conns.busy_count()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in (
            "_state_lock",
            "_listener",
            "_accepting",
            "_threads",
            "_conns",
            "_commit_cond",
            "_pending",
            "_producer_secret",
        ):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._state_lock = threading.Lock()
        self._commit_cond = threading.Condition()
        self._pending = []
        self._listener = None
        self._accepting = threading.Event()
        self._threads = []
        self._conns = ConnectionTable(self.connections_max)
        self._producer_secret = None

    # -- serving --------------------------------------------------------------------------------------
    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _accept_loop(self) -> None:
        listener = self._listener
        while self._accepting.is_set() and listener is not None:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by onStop
            admitted, evicted = self._conns.admit(conn)
            if evicted is not None:  # its serving thread sees the shutdown and closes it
                message = (
                    f"connection evicted: idle longest while all connections_max={self.connections_max} "
                    "slots were taken; reconnect"
                )
                _reply_and_close(evicted, encode_error(message, RETRY))
            if not admitted:
                message = f"too many busy connections (connections_max={self.connections_max})"
                _reply_and_close(conn, encode_error(message, RETRY))
                conn.close()  # no serving thread owns it
            else:
                self._spawn(self._serve, "push-conn", conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.idle_timeout_s)
        state = _ConnectionState()
        try:
            while self._accepting.is_set():  # idle since admitted, then since each reply
                frame = read_frame(
                    conn, self.frame_bytes_max, self.frame_timeout_s, lambda: self._conns.mark_busy(conn)
                )
                if frame is None:
                    return
                if frame.version != VERSION:
                    message = (
                        f"push protocol version {frame.version} is not supported: this receiver speaks "
                        f"version {VERSION}; upgrade the client (dstream.client.PushClient)"
                    )
                    _reply_and_close(conn, encode_error(message, REFUSED, frame.version))
                    return
                conn.sendall(self._handle(state, frame.kind, frame.payload))
                self._conns.mark_idle(conn)
        except FencedError as exc:
            _reply_and_close(conn, encode_error(str(exc), FENCED))
        except _UnauthenticatedError as exc:
            _reply_and_close(conn, encode_error(str(exc), UNAUTHENTICATED))
        except ProtocolError as exc:
            _reply_and_close(conn, encode_error(str(exc)))
        except _StoreFailedError as exc:  # the client gets no ack and will resend
            _reply_and_close(conn, encode_error(str(exc), RETRY))
        except OSError:
            pass  # the client went away, onStop shut the socket, or it was evicted
        finally:
            self._conns.discard(conn)
            conn.close()

    def _handle(self, state: _ConnectionState, kind: int, payload: bytes) -> bytes:
        """The reply to one frame of a connection; `state` remembers its session (and challenge)."""
        if kind == HELLO:
            if state.session is not None:
                raise ProtocolError(f"second HELLO on a connection of producer {state.session.producer_id!r}")
            hello = decode_hello(payload)
            secret = self._producer_secret
            if secret is not None and state.nonce is None:
                state.nonce = os.urandom(NONCE_BYTES)
                return encode_challenge(state.nonce)
            if secret is not None and not hello_is_authentic(hello, secret, state.nonce or b""):
                raise _UnauthenticatedError(
                    f"HELLO of producer {hello.producer_id!r} is not authenticated: its mac is missing or "
                    f"wrong (this receiver takes the producers' secret from ${self.producer_secret_env})"
                )
            state.session = hello
            return encode_session(*self._open_session(hello))
        if kind != DATA:
            raise ProtocolError(f"unexpected frame kind {kind} from a client; expected HELLO or DATA")
        if state.session is None:
            raise ProtocolError("DATA before HELLO; a connection must start with HELLO")
        return encode_ack(self._store_frame(state.session, payload))

    def _open_session(self, hello: Hello) -> tuple[int, int]:
        """(epoch, durable_seq) for the SESSION reply; a new epoch goes through the committer first."""
        state = self.producer_state(hello.producer_id)
        decision = on_hello(state, hello.session_id, hello.resuming)
        if decision.verdict is Verdict.RESUME:
            return state.epoch, state.durable_seq
        if decision.verdict is Verdict.FENCED:
            raise FencedError(fenced_message(hello.producer_id, state))
        item = PendingHello(hello)
        self._wait_committed(item)
        return item.reply

    def _store_frame(self, session: Hello, payload: bytes) -> int:
        """Queue a decoded frame for the committer; return the durable seq to acknowledge once stored."""
        first_seq, records = decode_data(payload)
        item = PendingFrame(session.producer_id, session.session_id, first_seq, records)
        self._wait_committed(item)
        return item.reply[1]

    def _wait_committed(self, item: PendingFrame | PendingHello) -> None:
        with self._commit_cond:
            self._pending.append(item)
            self._commit_cond.notify()
        if not item.done.wait(self.idle_timeout_s):
            message = f"{item} not stored within {self.idle_timeout_s} s"
            raise _StoreFailedError(message)
        if isinstance(item.error, ProtocolError | FencedError):
            raise item.error
        if item.error is not None:  # a WAL timeout is an OSError too: still answer the client
            raise _StoreFailedError(f"store failed: {item.error}") from item.error

    def _run_committer(self) -> None:
        while True:
            with self._commit_cond:
                while not self._pending and self._accepting.is_set():
                    self._commit_cond.wait(_ACCEPT_POLL_S)
                group, self._pending = self._pending[:_GROUP_FRAMES_MAX], self._pending[_GROUP_FRAMES_MAX:]
            if not group:
                return  # stopped and drained
            self._commit(group)

    def _commit(self, group: list[PendingFrame | PendingHello]) -> None:
        """Judge the group in order, store its new records as one block and its new epochs, then reply."""
        plan = GroupPlan(self.producer_state)
        for item in group:
            if isinstance(item, PendingHello):
                plan.hello(item)
            else:
                plan.frame(item)
        try:
            if plan.records:
                self.store(plan.records, plan.block_metadata())
        except Exception as exc:  # nothing of the group is acknowledged; clients resend
            plan.fail_all(exc)
            return
        self._apply(plan.durable)
        for frame in plan.frames:
            frame.done.set()
        try:
            if plan.sessions:
                self.store_state({"sessions": {p: [s.epoch, s.token] for p, s in plan.sessions.items()}})
        except Exception as exc:  # the HELLOs get RETRY; their clients open the epoch again
            for hello in plan.hellos:
                hello.fail(exc)
            return
        self._apply(plan.sessions)
        for hello in plan.hellos:  # new epochs, and resumes of a session opened earlier in the group
            hello.done.set()

    def _apply(self, states: dict[str, ProducerState]) -> None:
        with self._state_lock:
            for producer, planned in states.items():
                state = self._producers.get(producer, NO_SESSION)
                self._producers[producer] = merge(state, planned.epoch, planned.token, planned.durable_seq)


@dataclass
class _ConnectionState:
    """What a connection has said so far: its session once a HELLO was answered, the nonce it was sent."""

    session: Hello | None = None
    nonce: bytes | None = None


class _UnauthenticatedError(Exception):
    """A HELLO without the right mac reached a receiver that authenticates producers."""


class _StoreFailedError(Exception):
    """Storing a frame failed or took too long; the client is told to retry."""


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reply_and_close(conn: socket.socket, frame: bytes) -> None:
    try:
        conn.settimeout(1.0)
        conn.sendall(frame)
    except OSError:
        pass
    _shutdown(conn)
