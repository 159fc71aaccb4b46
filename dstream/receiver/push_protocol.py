"""The push ingestion wire protocol, version 2: frames between `PushClient` and the push receiver.

Every frame, in both directions (integers big-endian):

    offset  size  field
    0       4     magic b"DSPF"
    4       1     protocol version, 2
    5       1     kind: 1 HELLO, 2 DATA, 3 ACK, 4 ERROR, 5 SESSION, 6 CHALLENGE
    6       2     flags, 0 (a receiver refuses any other value)
    8       4     payload length n, at most the receiver's frame_bytes_max (default 16 MiB)
    12      4     CRC32C of the payload
    16      n     payload

Payloads:
    HELLO    (client -> receiver)  session token 16 bytes | hello flags u8 (bit 0: resuming, set once
                                   this session had a HELLO answered; bit 1: authenticated) | with bit 1
                                   only: mac 32 bytes | producer id, UTF-8, 1..256 bytes.
                                   Must be the first frame of a connection.
    CHALLENGE (receiver -> client) nonce 16 bytes: the reply to a HELLO without a MAC when the receiver
                                   authenticates producers. The client answers with a second HELLO,
                                   authenticated: mac = HMAC-SHA256(producer secret, b"dstream-push-v2" |
                                   nonce | the HELLO payload without the mac). Any other reply to a
                                   CHALLENGE, or a wrong mac, gets ERROR UNAUTHENTICATED.
    SESSION  (receiver -> client)  epoch u64 | durable_seq i64: the reply to HELLO. `epoch` is the
                                   producer's epoch the session owns, `durable_seq` the producer's
                                   highest durable sequence number (-1 for none).
    DATA     (client -> receiver)  first_seq u64 | count u32 | count records, each
                                   type u8 (0 bytes, 1 UTF-8 str) | length u32 | bytes
    ACK      (receiver -> client)  durable_seq i64: the reply to each DATA, once its records are durable.
    ERROR    (receiver -> client)  code u8 | UTF-8 message; the receiver then closes the connection.
                                   code 1 REFUSED: the frame is bad, resending it fails again;
                                   code 2 RETRY: a temporary failure (e.g. storing failed), resend later;
                                   code 3 FENCED: a newer session of the producer id owns it now; this
                                   session must stop (the refused frame was not stored);
                                   code 4 VERSION: the peer speaks another protocol version;
                                   code 5 UNAUTHENTICATED: the HELLO's mac is missing or wrong.

Sessions (rules in `dstream.receiver.producer_sessions`): a HELLO with the token of the producer's current
session resumes it; a HELLO of a new session (resuming bit clear) opens the next epoch, durable before the
SESSION reply, and fences the previous session; a resuming HELLO or a DATA frame of a fenced session gets
ERROR FENCED. A frame is read whole within the receiver's frame_timeout_s of its first byte.

Producer authentication (optional, off unless the receiver has `producer_secret_env`): the nonce is fresh
per connection, so a recorded HELLO cannot be replayed, and only holders of the shared secret can open a
session (and so fence one). A receiver without a secret accepts HELLOs with or without a mac.

Exactly-once rule: record i of a DATA frame has sequence number first_seq + i. Records whose sequence
number is at most the producer's durable_seq are duplicates (a resend after a lost ack) and are dropped; the
rest are stored as one block. A frame whose first_seq is beyond durable_seq + 1 leaves a gap and is refused.
The ACK goes out only after the block is durable, so a client that resends its unacknowledged records until
acknowledged delivers each record exactly once.

Versions: version 1 had no sessions (HELLO = producer id only; the reply to HELLO was an ACK). A frame of
version 1 is read (same header layout) and answered with a version-1 ERROR REFUSED naming both versions,
so an old client reports it instead of misreading anything; any other version is refused unread.
Golden files: tests/receiver/golden/push-hello-v1.bin, push-hello-v2.bin, push-hello-v2-authenticated.bin.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import crc32c

from dstream.errors import DStreamError, DStreamValueError

MAGIC = b"DSPF"
VERSION = 2
OLD_VERSIONS = (1,)  # same header layout: read, then answered with an ERROR of their own version
HELLO, DATA, ACK, ERROR, SESSION, CHALLENGE = 1, 2, 3, 4, 5, 6
REFUSED, RETRY, FENCED, VERSION_REFUSED, UNAUTHENTICATED = 1, 2, 3, 4, 5
KINDS = (HELLO, DATA, ACK, ERROR, SESSION, CHALLENGE)
SESSION_TOKEN_BYTES = 16
NONCE_BYTES = 16
MAC_BYTES = 32
_MAC_CONTEXT = b"dstream-push-v2"
_RESUMING, _AUTHENTICATED = 0x01, 0x02
FRAME_BYTES_MAX_DEFAULT = 16 << 20
PRODUCER_ID_BYTES_MAX = 256
HEADER = struct.Struct(">4sBBHII")
_DATA_HEAD = struct.Struct(">QI")
_RECORD_HEAD = struct.Struct(">BI")
_ACK = struct.Struct(">q")
_SESSION = struct.Struct(">Qq")
_BYTES, _STR = 0, 1


class ProtocolError(DStreamError):
    """A frame breaks the protocol; the message says how (the peer gets it in an ERROR frame)."""


class FrameTooLargeError(ProtocolError, DStreamValueError):
    """A frame's payload is over the size limit."""


class FrameTimeoutError(ProtocolError):
    """A frame was not complete within its deadline (`frame_timeout_s` after its first byte)."""


@dataclass(frozen=True)
class Frame:
    """A frame as read; `version` differs from VERSION only for an OLD_VERSIONS peer."""

    kind: int
    payload: bytes
    version: int = VERSION


@dataclass(frozen=True)
class Hello:
    """A decoded HELLO: who the producer is and which of its sessions is speaking."""

    producer_id: str
    token: str  # hex of the 16-byte session token
    resuming: bool
    mac: bytes | None = None  # with the authenticated flag
    signed: bytes = b""  # the payload without the mac: what the mac covers, after the nonce

    @property
    def session_id(self) -> str:
        """What a receiver keeps of the token: a digest (hex), never the token itself.

        A receiver's durable state can be read by whoever can read its checkpoint directory; holding
        only the digest there, it does not let such a reader resume the session as its owner.
        """
        return hashlib.sha256(bytes.fromhex(self.token)).hexdigest()[:32]


def encode_frame(kind: int, payload: bytes, version: int = VERSION) -> bytes:
    return HEADER.pack(MAGIC, version, kind, 0, len(payload), crc32c.crc32c(payload)) + payload


def read_frame(
    sock: socket.socket,
    frame_bytes_max: int,
    frame_timeout_s: float | None = None,
    on_first_byte: Callable[[], None] | None = None,
) -> Frame | None:
    """Read one frame; None on a clean end of stream before a header. Raises ProtocolError on bad frames.

    The wait for the first byte uses the socket's own timeout (the connection's idle bound). With
    `frame_timeout_s`, the rest of the frame must arrive within that many seconds of its first byte, so
    a peer trickling bytes cannot keep a frame open (`FrameTimeoutError`); `on_first_byte` is called when
    that byte arrived. The socket's timeout is restored before returning.
    """
    idle_timeout = sock.gettimeout()
    first = sock.recv(1)
    if not first:
        return None
    if on_first_byte is not None:
        on_first_byte()
    deadline = None if frame_timeout_s is None else time.monotonic() + frame_timeout_s
    try:
        head = first + _recv_exact(sock, HEADER.size - 1, deadline, frame_timeout_s, "header")
        magic, version, kind, flags, length, crc = HEADER.unpack(head)
        if magic != MAGIC:
            raise ProtocolError(f"bad magic {magic!r}; expected {MAGIC!r}")
        if version != VERSION and version not in OLD_VERSIONS:
            raise ProtocolError(f"protocol version {version} is not supported; expected {VERSION}")
        if kind not in KINDS or flags != 0:
            raise ProtocolError(f"bad frame kind {kind} or flags {flags}; expected kind in {KINDS}, flags 0")
        if length > frame_bytes_max:
            raise FrameTooLargeError(f"frame of {length} bytes exceeds frame_bytes_max={frame_bytes_max}")
        payload = _recv_exact(sock, length, deadline, frame_timeout_s, "payload")
    finally:
        sock.settimeout(idle_timeout)
    if crc32c.crc32c(payload) != crc:
        raise ProtocolError(f"payload CRC mismatch in a frame of {length} bytes")
    return Frame(kind, payload, version)


def _recv_exact(
    sock: socket.socket, n: int, deadline: float | None, frame_timeout_s: float | None, part: str
) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise FrameTimeoutError(
                    f"frame not complete within frame_timeout_s={frame_timeout_s} of its first byte "
                    f"({got} of the {n} remaining bytes of its {part} came)"
                )
            sock.settimeout(left_s)
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except TimeoutError:
            if deadline is None:
                raise
            continue  # the deadline check above reports it
        if not chunk:
            raise ProtocolError(f"connection closed inside a frame ({got} of {n} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def new_session_token() -> str:
    """A fresh random session token (hex of SESSION_TOKEN_BYTES bytes)."""
    return os.urandom(SESSION_TOKEN_BYTES).hex()


def encode_hello(
    producer_id: str,
    token: str | None = None,
    resuming: bool = False,
    secret: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A HELLO of session `token` (a fresh one if None: a raw connection is a session of its own).

    With `secret` and a CHALLENGE's `nonce` the HELLO is authenticated (it carries the mac).
    """
    raw = producer_id.encode("utf-8") if isinstance(producer_id, str) else b""
    if not 1 <= len(raw) <= PRODUCER_ID_BYTES_MAX:
        raise DStreamValueError(
            f"producer_id must be a str of 1..{PRODUCER_ID_BYTES_MAX} UTF-8 bytes, got {producer_id!r}"
        )
    token_raw = bytes.fromhex(token if token is not None else new_session_token())
    if len(token_raw) != SESSION_TOKEN_BYTES:
        raise DStreamValueError(f"session token must be {SESSION_TOKEN_BYTES} bytes, got {token!r}")
    flags = (_RESUMING if resuming else 0) | (_AUTHENTICATED if secret is not None else 0)
    if secret is None:
        return encode_frame(HELLO, token_raw + bytes([flags]) + raw)
    if nonce is None or len(nonce) != NONCE_BYTES:
        raise DStreamValueError(f"an authenticated HELLO needs the {NONCE_BYTES}-byte nonce, got {nonce!r}")
    signed = token_raw + bytes([flags]) + raw
    mac = hello_mac(secret, nonce, signed)
    return encode_frame(HELLO, token_raw + bytes([flags]) + mac + raw)


def hello_mac(secret: bytes, nonce: bytes, signed: bytes) -> bytes:
    """The mac of an authenticated HELLO: HMAC-SHA256 over the context, the nonce and the payload."""
    return hmac.new(secret, _MAC_CONTEXT + nonce + signed, hashlib.sha256).digest()


def hello_is_authentic(hello: Hello, secret: bytes, nonce: bytes) -> bool:
    """Whether `hello` carries the right mac for this connection's nonce (constant-time compare)."""
    return hello.mac is not None and hmac.compare_digest(hello.mac, hello_mac(secret, nonce, hello.signed))


def encode_challenge(nonce: bytes) -> bytes:
    return encode_frame(CHALLENGE, nonce)


def decode_challenge(payload: bytes) -> bytes:
    if len(payload) != NONCE_BYTES:
        raise ProtocolError(f"CHALLENGE payload of {len(payload)} bytes; expected {NONCE_BYTES}")
    return payload


def decode_hello(payload: bytes) -> Hello:
    head = SESSION_TOKEN_BYTES + 1
    hello_flags = payload[SESSION_TOKEN_BYTES] if len(payload) > SESSION_TOKEN_BYTES else 0
    if hello_flags & ~(_RESUMING | _AUTHENTICATED):
        raise ProtocolError(
            f"HELLO flags {hello_flags:#x}; expected bits {_RESUMING:#x}, {_AUTHENTICATED:#x} only"
        )
    mac = None
    if hello_flags & _AUTHENTICATED:
        mac, head = payload[head : head + MAC_BYTES], head + MAC_BYTES
    name = payload[head:]
    if not 1 <= len(name) <= PRODUCER_ID_BYTES_MAX:
        raise ProtocolError(
            f"HELLO payload of {len(payload)} bytes; expected a {head}-byte session head and a producer id "
            f"of 1..{PRODUCER_ID_BYTES_MAX} bytes"
        )
    try:
        producer_id = name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"HELLO producer id is not UTF-8: {exc}") from None
    token, resuming = payload[:SESSION_TOKEN_BYTES].hex(), bool(hello_flags & _RESUMING)
    return Hello(producer_id, token, resuming, mac, payload[: SESSION_TOKEN_BYTES + 1] + name)


def encode_session(epoch: int, durable_seq: int) -> bytes:
    return encode_frame(SESSION, _SESSION.pack(epoch, durable_seq))


def decode_session(payload: bytes) -> tuple[int, int]:
    """(epoch, durable_seq) of a SESSION payload."""
    if len(payload) != _SESSION.size:
        raise ProtocolError(f"SESSION payload of {len(payload)} bytes; expected {_SESSION.size}")
    epoch, durable_seq = _SESSION.unpack(payload)
    return int(epoch), int(durable_seq)


def encode_data(first_seq: int, records: list[str | bytes]) -> bytes:
    parts = [_DATA_HEAD.pack(first_seq, len(records))]
    for record in records:
        if isinstance(record, str):
            raw, kind = record.encode("utf-8"), _STR
        elif isinstance(record, bytes | bytearray | memoryview):
            raw, kind = bytes(record), _BYTES
        else:
            raise TypeError(f"push records must be str or bytes, got {type(record).__name__}: {record!r:.80}")
        parts.append(_RECORD_HEAD.pack(kind, len(raw)))
        parts.append(raw)
    return encode_frame(DATA, b"".join(parts))


def decode_data(payload: bytes) -> tuple[int, list[str | bytes]]:
    """(first_seq, records) of a DATA payload; ProtocolError if it is malformed."""
    if len(payload) < _DATA_HEAD.size:
        raise ProtocolError(
            f"DATA payload of {len(payload)} bytes is shorter than its {_DATA_HEAD.size}-byte head"
        )
    first_seq, count = _DATA_HEAD.unpack_from(payload)
    records: list[str | bytes] = []
    offset = _DATA_HEAD.size
    for i in range(count):
        if offset + _RECORD_HEAD.size > len(payload):
            raise ProtocolError(f"DATA frame ends inside the head of record {i} of {count}")
        kind, length = _RECORD_HEAD.unpack_from(payload, offset)
        offset += _RECORD_HEAD.size
        raw = payload[offset : offset + length]
        if len(raw) != length or kind not in (_BYTES, _STR):
            raise ProtocolError(
                f"DATA record {i} of {count}: type {kind}, {len(raw)} of {length} bytes present"
            )
        offset += length
        records.append(raw if kind == _BYTES else _decode_str(raw, i))
    if offset != len(payload):
        raise ProtocolError(f"DATA frame has {len(payload) - offset} bytes after its {count} records")
    return first_seq, records


def _decode_str(raw: bytes, index: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"DATA record {index} is marked str but is not UTF-8: {exc}") from None


def encode_ack(durable_seq: int) -> bytes:
    return encode_frame(ACK, _ACK.pack(durable_seq))


def decode_ack(payload: bytes) -> int:
    if len(payload) != _ACK.size:
        raise ProtocolError(f"ACK payload of {len(payload)} bytes; expected {_ACK.size}")
    value: int = _ACK.unpack(payload)[0]
    return value


def encode_error(message: str, code: int = REFUSED, version: int = VERSION) -> bytes:
    return encode_frame(ERROR, bytes([code]) + message.encode("utf-8")[:4096], version)


def decode_error(payload: bytes) -> tuple[int, str]:
    """(code, message) of an ERROR payload."""
    if not payload:
        return REFUSED, "(empty ERROR frame)"
    return payload[0], payload[1:].decode("utf-8", "replace")
