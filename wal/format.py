"""WAL byte format, version 1: the spec, and pure encode/decode/scan functions.

A *file* is either a local segment file (appended to) or one immutable object of an object-store
segment. Every file is one file header followed by zero or more record frames. All integers are
big-endian. CRCs are CRC32C (Castagnoli), unmasked.

File header (16 bytes)::

    offset  size  field
    0       8     magic       b"\\x89DSWAL\\r\\n"  (the 0x89 and CR/LF catch text-mode mangling)
    8       2     version     u16, 1
    10      2     flags       u16, 0 (reserved; a reader refuses any other value)
    12      4     header_crc  u32, CRC32C of bytes 0..11

Record frame (20-byte frame header, then the payload)::

    offset  size  field
    0       4     header_crc   u32, CRC32C of frame bytes 4..19
    4       4     length       u32, payload length in bytes, at most RECORD_BYTES_MAX
    8       8     time_ms      i64, the record's time (used only to decide which segments clean() may drop)
    16      4     payload_crc  u32, CRC32C of the payload
    20      n     payload

Why two CRCs: the header CRC lets a reader trust `length` before reading the payload, so a flipped
length bit is caught as corruption instead of being taken for a record that runs past the end of
the file (Spark's format silently drops everything after such a length).

Validity and torn-tail rules (what `scan` reports; the caller decides what is acceptable):

* A frame is *valid* when its header CRC matches, `length <= RECORD_BYTES_MAX`, the whole payload is
  present and the payload CRC matches.
* `TORN` damage: fewer than 20 bytes remain for a frame header; or a frame with a valid header runs
  past the end of the file; or every byte from the frame's offset to the end is zero (a file grown by
  the OS whose data never landed); or the *final* frame has a valid header, ends exactly at the end
  of the file, and its payload CRC fails (a power cut after the file size and the header page
  reached the disk but the payload pages did not: they read back as zeros or stale bytes). A file
  shorter than 16 bytes that is a prefix of a valid header, or all zeros, is TORN at offset 0.
  These are exactly the shapes a crash in the middle of an append leaves, so they are acceptable
  only at the end of the *last* local segment: those bytes were never acknowledged (the fsync
  precedes the ack), readers stop before them, and a writer reopening the log truncates them. In
  any other segment, and in any object-store object, TORN damage is reported as corruption.
* `CORRUPT` damage: anything else (bad magic, unknown version or flags, a bad header CRC with
  non-zero bytes after it, a bad payload CRC in a frame that more bytes follow, a length over the
  limit). Corruption is never a torn tail: readers raise `CorruptRecordError`, and only repair mode
  truncates it.

Consequence for single-bit flips: a flip anywhere is caught (never a wrong record). A flip in the
payload of the final frame of a file is TORN (that record is dropped, never returned wrong);
every other flip is CORRUPT.

Version history: 1 (this). The byte layout is unchanged since 1; the torn-tail rule for a final
frame whose payload CRC fails at EOF was added later (it only changes how damage is classified).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import crc32c

MAGIC = b"\x89DSWAL\r\n"
VERSION = 1
FILE_HEADER_BYTES = 16
FRAME_HEADER_BYTES = 20
RECORD_BYTES_MAX = 1 << 30  # 1 GiB: larger lengths are treated as corruption, never allocated
ZERO_CHECK_CHUNK_BYTES = 1 << 20  # how much of a tail is read at once to see if it is all zeros

_FILE_HEADER = struct.Struct(">8sHHI")
_FRAME_HEADER = struct.Struct(">IIqI")
_FRAME_FIELDS = struct.Struct(">Iq")


class DamageKind(enum.Enum):
    """How a file stops being valid: a crash shape (TORN) or anything else (CORRUPT)."""

    TORN = "torn"
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class Damage:
    """Where and why a file stops being a valid sequence of frames."""

    kind: DamageKind
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class Frame:
    """One valid record frame found by `scan`: where it starts, its time and payload."""

    offset: int
    time_ms: int
    payload: memoryview

    @property
    def end(self) -> int:
        """Offset just past this frame."""
        return self.offset + FRAME_HEADER_BYTES + len(self.payload)


def encode_file_header() -> bytes:
    """The 16-byte header every segment file or object starts with."""
    body = _FILE_HEADER.pack(MAGIC, VERSION, 0, 0)[:12]
    return body + crc32c.crc32c(body).to_bytes(4, "big")


def encode_frame_header(payload: bytes | memoryview, time_ms: int) -> bytes:
    """The 20-byte frame header for `payload` (written before it, so payloads need not be copied).

    Raises:
        ValueError: if the payload is larger than RECORD_BYTES_MAX or time_ms does not fit an i64.
    """
    if len(payload) > RECORD_BYTES_MAX:
        raise ValueError(f"record of {len(payload)} bytes exceeds RECORD_BYTES_MAX={RECORD_BYTES_MAX}")
    fields = _FRAME_FIELDS.pack(len(payload), time_ms) + crc32c.crc32c(payload).to_bytes(4, "big")
    return crc32c.crc32c(fields).to_bytes(4, "big") + fields


def encode_frame(payload: bytes | memoryview, time_ms: int) -> bytes:
    """Frame one record (header + payload) as one bytes object."""
    return encode_frame_header(payload, time_ms) + bytes(payload)


class ByteSource(Protocol):
    """Random access to one file's bytes, so a file is scanned without being loaded whole.

    `size` is fixed when the source is opened: bytes appended later are not part of this scan.
    """

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes | memoryview:
        """Up to `length` bytes at `offset` (fewer only at the end of the file)."""
        ...


class BytesSource:
    """A ByteSource over bytes already in memory (objects, tests)."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._view = memoryview(data)

    @property
    def size(self) -> int:
        return len(self._view)

    def read_at(self, offset: int, length: int) -> memoryview:
        return self._view[offset : offset + length]


def as_source(data: bytes | memoryview | ByteSource) -> ByteSource:
    """Accept raw bytes wherever a ByteSource is expected."""
    if isinstance(data, bytes | bytearray | memoryview):
        return BytesSource(data)
    return data


def is_zero_from(source: ByteSource, offset: int) -> bool:
    """Whether every byte from `offset` to the end is zero (reading in bounded chunks)."""
    while offset < source.size:
        chunk = source.read_at(offset, ZERO_CHECK_CHUNK_BYTES)
        if not chunk or any(chunk):
            return not chunk
        offset += len(chunk)
    return True


def check_file_header(data: bytes | memoryview | ByteSource) -> Damage | None:
    """Validate the file header at the start of a file; None when it is valid."""
    source = as_source(data)
    head = bytes(source.read_at(0, FILE_HEADER_BYTES))
    if len(head) < FILE_HEADER_BYTES:
        if encode_file_header().startswith(head) or not any(head):
            return Damage(DamageKind.TORN, 0, f"file header cut short at {len(head)} bytes")
        return Damage(DamageKind.CORRUPT, 0, "short file that is not a header prefix")
    magic, version, flags, crc = _FILE_HEADER.unpack(head)
    if not any(head) and is_zero_from(source, 0):
        return Damage(DamageKind.TORN, 0, "file is all zero bytes")
    if magic != MAGIC:
        return Damage(DamageKind.CORRUPT, 0, f"bad magic {magic!r}, expected {MAGIC!r}")
    if crc != crc32c.crc32c(head[:12]):
        return Damage(DamageKind.CORRUPT, 0, "file header CRC mismatch")
    if version != VERSION or flags != 0:
        return Damage(DamageKind.CORRUPT, 0, f"unsupported version {version} / flags {flags:#x}")
    return None


def frame_length(header: bytes | memoryview) -> int | None:
    """The payload length a 20-byte frame header declares, or None if its header CRC fails."""
    if len(header) < FRAME_HEADER_BYTES:
        return None
    header_crc, length, _, _ = _FRAME_HEADER.unpack_from(header)
    return length if header_crc == crc32c.crc32c(header[4:FRAME_HEADER_BYTES]) else None


def decode_frame(data: bytes | memoryview | ByteSource, offset: int) -> Frame | Damage:
    """Decode the frame at `offset` of a file, classifying any damage (see module doc)."""
    source = as_source(data)
    remaining = source.size - offset
    if remaining < FRAME_HEADER_BYTES:
        if is_zero_from(source, offset):
            return Damage(DamageKind.TORN, offset, f"{remaining} zero bytes after the last frame")
        return Damage(DamageKind.TORN, offset, f"frame header cut short at {remaining} bytes")
    header = source.read_at(offset, FRAME_HEADER_BYTES)
    if len(header) < FRAME_HEADER_BYTES:  # the file shrank under us: as good as cut
        return Damage(DamageKind.TORN, offset, "file shorter than when opened")
    header_crc, length, time_ms, payload_crc = _FRAME_HEADER.unpack_from(header)
    if header_crc != crc32c.crc32c(header[4:]):
        if is_zero_from(source, offset):
            return Damage(DamageKind.TORN, offset, "zero-filled tail")
        return Damage(DamageKind.CORRUPT, offset, "frame header CRC mismatch")
    if length > RECORD_BYTES_MAX:
        return Damage(DamageKind.CORRUPT, offset, f"length {length} over RECORD_BYTES_MAX")
    start = offset + FRAME_HEADER_BYTES
    payload = memoryview(source.read_at(start, length))
    if len(payload) < length:
        return Damage(DamageKind.TORN, offset, f"payload cut short: {len(payload)} of {length} bytes")
    if payload_crc != crc32c.crc32c(payload):
        if start + length == source.size:
            # The final frame, ending exactly at EOF: the shape of an un-fsynced append whose size
            # reached the disk but whose data pages did not (power cut). Never acknowledged.
            return Damage(DamageKind.TORN, offset, "payload CRC mismatch at the end of the file")
        return Damage(DamageKind.CORRUPT, offset, "payload CRC mismatch")
    return Frame(offset, time_ms, payload)


def iter_frames(data: bytes | memoryview | ByteSource) -> Iterator[Frame | Damage]:
    """Yield the valid frames of a file in order, then its Damage if it has one (and stop).

    Lazy: one frame's payload is read at a time.
    """
    source = as_source(data)
    header_damage = check_file_header(source)
    if header_damage is not None:
        yield header_damage
        return
    offset = FILE_HEADER_BYTES
    while offset < source.size:
        item = decode_frame(source, offset)
        yield item
        if isinstance(item, Damage):
            return
        offset = item.end


@dataclass(frozen=True, slots=True)
class FileScan:
    """The result of scanning one whole file in memory: its valid frames, then the damage."""

    frames: tuple[Frame, ...]
    damage: Damage | None
    size: int


def scan(data: bytes | memoryview) -> FileScan:
    """Scan a file held in memory eagerly (payloads are views into `data`, not copies)."""
    frames: list[Frame] = []
    damage: Damage | None = None
    for item in iter_frames(data):
        if isinstance(item, Damage):
            damage = item
        else:
            frames.append(item)
    return FileScan(tuple(frames), damage, len(data))


@dataclass(frozen=True, slots=True)
class FileSummary:
    """What a streaming pass over a file found, without keeping payloads."""

    size: int
    records: int
    payload_bytes: int
    min_time_ms: int | None
    max_time_ms: int | None
    damage: Damage | None

    @property
    def valid_bytes(self) -> int:
        """Length of the valid prefix: where a truncation would cut."""
        return self.size if self.damage is None else self.damage.offset


def summarize(data: bytes | memoryview | ByteSource) -> FileSummary:
    """Validate a whole file one frame at a time; count records, bytes and the time range."""
    source = as_source(data)
    records = payload_bytes = 0
    min_ms: int | None = None
    max_ms: int | None = None
    damage: Damage | None = None
    for item in iter_frames(source):
        if isinstance(item, Damage):
            damage = item
            break
        records += 1
        payload_bytes += len(item.payload)
        min_ms = item.time_ms if min_ms is None else min(min_ms, item.time_ms)
        max_ms = item.time_ms if max_ms is None else max(max_ms, item.time_ms)
    return FileSummary(source.size, records, payload_bytes, min_ms, max_ms, damage)
