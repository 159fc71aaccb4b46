"""The push receiver: a TCP server on 127.0.0.1 that producers push records to, exactly once.

Frames and the exactly-once rule are specified in `dstream.receiver.push_protocol`. Per producer the
receiver keeps the highest durable sequence number; a DATA frame's records at or below it are dropped as
duplicates. Connection threads hand decoded frames to one committer thread, which stores every frame
waiting at that moment as one block (receiver-side group commit: one WAL write and one tracker event for
many producers' frames) with metadata `{"producers": {producer_id: [seq_first, seq_last]}}`; the block's
records are grouped by producer in the order of that mapping, so recovery can cut a block by producer.
Only when `store` returned, i.e. with the receiver WAL on when the block is durable and registered with
the driver's tracker, are the frames' ACKs sent. The per-producer state survives a restart:
`on_recovered_blocks` rebuilds it from the metadata of the blocks in the receiver WAL and from the snapshot
`{"durable": {producer_id: last_seq}}` (`recovery_state`) that is written to the receiver WAL before each
cleanup of old segments, so cleaning the blocks that carried a producer's ranges does not forget them.
A block whose write timed out (`WALTimeoutError`) may commit late while the producer's resend is stored
as another block; at recovery `adopt_recovered_block` trims such an unreported block to the sequence
numbers no known block holds, so each (producer, seq) reaches the stream once (docs/receivers.md).

Without the receiver WAL the push source is at-most-once across a process crash (acked blocks live only
in memory); the deduplication still holds while the process lives.

The socket is bound when the receiver is created, so `port` is known before the streaming context starts;
clients that connect early wait in the backlog. A bad frame gets an ERROR reply and the connection is
closed; it never stops the receiver. Connections are bounded (`connections_max`) and so is the time a
connection may stay silent (`idle_timeout_s`).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from dstream.errors import DStreamValueError
from dstream.rdd.storage import StorageLevel
from dstream.receiver.push_protocol import (
    DATA,
    FRAME_BYTES_MAX_DEFAULT,
    HELLO,
    RETRY,
    ProtocolError,
    decode_data,
    decode_hello,
    encode_ack,
    encode_error,
    read_frame,
)
from dstream.receiver.receiver import Receiver

CONNECTIONS_MAX_DEFAULT = 64
IDLE_TIMEOUT_S_DEFAULT = 300.0
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
        connections_max: concurrent connections at most; more are refused with an ERROR frame.
        idle_timeout_s: a connection silent this long is closed.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2,
        frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT,
        connections_max: int = CONNECTIONS_MAX_DEFAULT,
        idle_timeout_s: float = IDLE_TIMEOUT_S_DEFAULT,
    ) -> None:
        super().__init__(storageLevel)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise DStreamValueError(f"port must be an int in 0..65535, got {port!r}")
        if frame_bytes_max <= 0 or connections_max <= 0 or idle_timeout_s <= 0:
            raise DStreamValueError(
                f"frame_bytes_max, connections_max and idle_timeout_s must be positive, got "
                f"{frame_bytes_max!r}, {connections_max!r}, {idle_timeout_s!r}"
            )
        self.host = host
        self.frame_bytes_max = frame_bytes_max
        self.connections_max = connections_max
        self.idle_timeout_s = idle_timeout_s
        self._durable: dict[str, int] = {}
        self._state_lock = threading.Lock()
        self._commit_cond = threading.Condition()
        self._pending: list[_PendingFrame] = []
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
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
        if self._listener is None:
            self._bind()  # same port as before: clients reconnect to it
        self._accepting.set()
        self._spawn(self._run_committer, "push-commit")
        self._spawn(self._accept_loop, "push-accept")

    def onStop(self) -> None:
        self._accepting.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._state_lock:
            conns = list(self._conns)
        for conn in conns:
            _shutdown(conn)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(_JOIN_TIMEOUT_S)
        self._threads = [t for t in self._threads if t.is_alive()]

    def on_recovered_blocks(self, metadata: list[dict[str, Any]]) -> None:
        with self._state_lock:
            for meta in metadata:
                lasts = [(p, last) for p, (_, last) in dict(meta.get("producers") or {}).items()]
                lasts += list(dict(meta.get("durable") or {}).items())
                for producer, last in lasts:
                    self._durable[producer] = max(self._durable.get(producer, -1), int(last))

    def adopt_recovered_block(
        self, records: list[Any], metadata: dict[str, Any] | None
    ) -> tuple[list[Any], dict[str, Any] | None]:
        """Keep only the records of an unreported block that no known or adopted block or snapshot holds.

        Such a block was never acknowledged, so its producers resend it: if the resend was stored (the
        first write timed out and committed late) the block is dropped here, whole or in part. A
        producer's part that does not continue its durable sequence (a gap) is dropped too: its
        producer resends it. Records are grouped by producer in `producers` order (see `_commit`).
        """
        logged = dict((metadata or {}).get("producers") or {})
        ranges = {p: (int(first), int(last)) for p, (first, last) in logged.items()}
        if sum(last - first + 1 for first, last in ranges.values()) != len(records):
            return [], None  # not a push block of this layout: cannot tell its records apart
        kept: list[Any] = []
        kept_ranges: dict[str, list[int]] = {}
        offset = 0
        with self._state_lock:
            for producer, (first, last) in ranges.items():
                part, offset = records[offset : offset + last - first + 1], offset + last - first + 1
                durable = self._durable.get(producer, -1)
                if first > durable + 1 or last <= durable:
                    continue
                kept.extend(part[durable + 1 - first :])
                kept_ranges[producer] = [max(first, durable + 1), last]
        return (kept, {"producers": kept_ranges}) if kept else ([], None)

    def recovery_state(self) -> dict[str, Any] | None:
        """Every producer's durable sequence number, `{"durable": {producer_id: last_seq}}`."""
        with self._state_lock:
            return {"durable": dict(self._durable)} if self._durable else None

    def durable_seq(self, producer_id: str) -> int:
        """The highest durable sequence number of a producer (-1 for none)."""
        with self._state_lock:
            return self._durable.get(producer_id, -1)

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
        self._conns = set()

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
            with self._state_lock:
                full = len(self._conns) >= self.connections_max
                if not full:
                    self._conns.add(conn)
            if full:
                message = f"too many connections (connections_max={self.connections_max})"
                _reply_and_close(conn, encode_error(message, RETRY))
                conn.close()  # no serving thread owns it
            else:
                self._spawn(self._serve, "push-conn", conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.idle_timeout_s)
        producer: str | None = None
        try:
            while self._accepting.is_set():
                frame = read_frame(conn, self.frame_bytes_max)
                if frame is None:
                    return
                producer, reply = self._handle(producer, frame.kind, frame.payload)
                conn.sendall(reply)
        except ProtocolError as exc:
            _reply_and_close(conn, encode_error(str(exc)))
        except _StoreFailedError as exc:  # the client gets no ack and will resend
            _reply_and_close(conn, encode_error(str(exc), RETRY))
        except OSError:
            pass  # the client went away or onStop shut the socket
        finally:
            with self._state_lock:
                self._conns.discard(conn)
            conn.close()

    def _handle(self, producer: str | None, kind: int, payload: bytes) -> tuple[str, bytes]:
        if kind == HELLO:
            if producer is not None:
                raise ProtocolError(f"second HELLO on a connection of producer {producer!r}")
            producer = decode_hello(payload)
            return producer, encode_ack(self.durable_seq(producer))
        if kind != DATA:
            raise ProtocolError(f"unexpected frame kind {kind} from a client; expected HELLO or DATA")
        if producer is None:
            raise ProtocolError("DATA before HELLO; a connection must start with HELLO")
        return producer, encode_ack(self._store_frame(producer, payload))

    def _store_frame(self, producer: str, payload: bytes) -> int:
        """Queue a decoded frame for the committer; return the producer's durable seq once it is stored."""
        first_seq, records = decode_data(payload)
        frame = _PendingFrame(producer, first_seq, records)
        with self._commit_cond:
            self._pending.append(frame)
            self._commit_cond.notify()
        if not frame.done.wait(self.idle_timeout_s):
            message = f"frame of producer {producer!r} not stored within {self.idle_timeout_s} s"
            raise _StoreFailedError(message)
        if isinstance(frame.error, ProtocolError):
            raise frame.error
        if frame.error is not None:  # a WAL timeout is an OSError too: still answer the client
            raise _StoreFailedError(f"store failed: {frame.error}") from frame.error
        return self.durable_seq(producer)

    def _run_committer(self) -> None:
        while True:
            with self._commit_cond:
                while not self._pending and self._accepting.is_set():
                    self._commit_cond.wait(_ACCEPT_POLL_S)
                group, self._pending = self._pending[:_GROUP_FRAMES_MAX], self._pending[_GROUP_FRAMES_MAX:]
            if not group:
                return  # stopped and drained
            self._commit(group)

    def _commit(self, group: list[_PendingFrame]) -> None:
        """Store the new records of every frame of the group as one block, then release their acks."""
        planned: dict[str, int] = {}
        ranges: dict[str, list[int]] = {}
        by_producer: dict[str, list[Any]] = {}  # the block's records, grouped in `ranges` order
        accepted: list[_PendingFrame] = []
        for frame in group:
            durable = planned.get(frame.producer, self.durable_seq(frame.producer))
            if frame.first_seq > durable + 1:
                frame.fail(ProtocolError(f"producer {frame.producer!r} sent seq {frame.first_seq} but only "
                                         f"{durable} is durable: a gap"))  # fmt: skip
                continue
            fresh = frame.records[durable + 1 - frame.first_seq :]
            if fresh:
                last = frame.first_seq + len(frame.records) - 1
                ranges.setdefault(frame.producer, [durable + 1, last])[1] = last
                planned[frame.producer] = last
                by_producer.setdefault(frame.producer, []).extend(fresh)
            accepted.append(frame)
        records = [r for producer in ranges for r in by_producer[producer]]
        try:
            if records:
                self.store(records, {"producers": ranges})
        except Exception as exc:  # nothing of the group is acknowledged; clients resend
            for frame in accepted:
                frame.fail(exc)
            return
        with self._state_lock:
            for producer, last in planned.items():
                self._durable[producer] = max(self._durable.get(producer, -1), last)
        for frame in accepted:
            frame.done.set()


class _StoreFailedError(Exception):
    """Storing a frame failed or took too long; the client is told to retry."""


class _PendingFrame:
    """A decoded DATA frame waiting for the committer."""

    def __init__(self, producer: str, first_seq: int, records: list[Any]) -> None:
        self.producer, self.first_seq, self.records = producer, first_seq, records
        self.done = threading.Event()
        self.error: Exception | None = None

    def fail(self, error: Exception) -> None:
        self.error = error
        self.done.set()


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
