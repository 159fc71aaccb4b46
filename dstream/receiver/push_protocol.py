"""The push ingestion wire protocol, version 1: frames between `PushClient` and the push receiver.

Every frame, in both directions (integers big-endian):

    offset  size  field
    0       4     magic b"DSPF"
    4       1     protocol version, 1
    5       1     kind: 1 HELLO, 2 DATA, 3 ACK, 4 ERROR
    6       2     flags, 0 (a receiver refuses any other value)
    8       4     payload length n, at most the receiver's frame_bytes_max (default 16 MiB)
    12      4     CRC32C of the payload
    16      n     payload

Payloads:
    HELLO  (client -> receiver)  producer id, UTF-8, 1..256 bytes. Must be the first frame.
    DATA   (client -> receiver)  first_seq u64 | count u32 | count records, each
                                 type u8 (0 bytes, 1 UTF-8 str) | length u32 | bytes
    ACK    (receiver -> client)  durable_seq i64: the producer's highest sequence number that is durable
                                 (-1 for none). Sent in reply to HELLO and to each DATA.
    ERROR  (receiver -> client)  code u8 | UTF-8 message; the receiver then closes the connection.
                                 code 1 REFUSED: the frame is bad, resending it fails again;
                                 code 2 RETRY: a temporary failure (e.g. storing failed), resend later.

Exactly-once rule: record i of a DATA frame has sequence number first_seq + i. Records whose sequence
number is at most the producer's durable_seq are duplicates (a resend after a lost ack) and are dropped; the
rest are stored as one block. A frame whose first_seq is beyond durable_seq + 1 leaves a gap and is refused.
The ACK goes out only after the block is durable, so a client that resends its unacknowledged records until
acknowledged delivers each record exactly once.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import crc32c

from dstream.errors import DStreamError, DStreamValueError

MAGIC = b"DSPF"
VERSION = 1
HELLO, DATA, ACK, ERROR = 1, 2, 3, 4
REFUSED, RETRY = 1, 2
KINDS = (HELLO, DATA, ACK, ERROR)
FRAME_BYTES_MAX_DEFAULT = 16 << 20
PRODUCER_ID_BYTES_MAX = 256
HEADER = struct.Struct(">4sBBHII")
_DATA_HEAD = struct.Struct(">QI")
_RECORD_HEAD = struct.Struct(">BI")
_ACK = struct.Struct(">q")
_BYTES, _STR = 0, 1


class ProtocolError(DStreamError):
    """A frame breaks the protocol; the message says how (the peer gets it in an ERROR frame)."""


class FrameTooLargeError(ProtocolError, DStreamValueError):
    """A frame's payload is over the size limit."""


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes


def encode_frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, VERSION, kind, 0, len(payload), crc32c.crc32c(payload)) + payload


def read_frame(sock: socket.socket, frame_bytes_max: int) -> Frame | None:
    """Read one frame; None on a clean end of stream before a header. Raises ProtocolError on bad frames."""
    head = _recv_exact(sock, HEADER.size, allow_eof=True)
    if head is None:
        return None
    magic, version, kind, flags, length, crc = HEADER.unpack(head)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}; expected {MAGIC!r}")
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported; expected {VERSION}")
    if kind not in KINDS or flags != 0:
        raise ProtocolError(f"bad frame kind {kind} or flags {flags}; expected kind in {KINDS}, flags 0")
    if length > frame_bytes_max:
        raise FrameTooLargeError(f"frame of {length} bytes exceeds frame_bytes_max={frame_bytes_max}")
    payload = _recv_exact(sock, length, allow_eof=False) or b""
    if crc32c.crc32c(payload) != crc:
        raise ProtocolError(f"payload CRC mismatch in a frame of {length} bytes")
    return Frame(kind, payload)


def _recv_exact(sock: socket.socket, n: int, allow_eof: bool) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            if allow_eof and got == 0:
                return None
            raise ProtocolError(f"connection closed inside a frame ({got} of {n} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def encode_hello(producer_id: str) -> bytes:
    raw = producer_id.encode("utf-8") if isinstance(producer_id, str) else b""
    if not 1 <= len(raw) <= PRODUCER_ID_BYTES_MAX:
        raise DStreamValueError(
            f"producer_id must be a str of 1..{PRODUCER_ID_BYTES_MAX} UTF-8 bytes, got {producer_id!r}"
        )
    return encode_frame(HELLO, raw)


def decode_hello(payload: bytes) -> str:
    if not 1 <= len(payload) <= PRODUCER_ID_BYTES_MAX:
        raise ProtocolError(f"HELLO producer id of {len(payload)} bytes; expected 1..{PRODUCER_ID_BYTES_MAX}")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"HELLO producer id is not UTF-8: {exc}") from None


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


def encode_error(message: str, code: int = REFUSED) -> bytes:
    return encode_frame(ERROR, bytes([code]) + message.encode("utf-8")[:4096])


def decode_error(payload: bytes) -> tuple[int, str]:
    """(code, message) of an ERROR payload."""
    if not payload:
        return REFUSED, "(empty ERROR frame)"
    return payload[0], payload[1:].decode("utf-8", "replace")
