"""WAL byte format, version 2: the spec, and pure encode/decode/scan functions.

A *file* is either a local segment file (appended to) or one immutable object of an object-store
segment. Every file is one file header followed by zero or more record frames. All integers are
big-endian. CRCs are CRC32C (Castagnoli), unmasked.

File header, version 2 (17 + K bytes; writers write this version)::

    offset  size  field
    0       8     magic       b"\\x89DSWAL\\r\\n"  (the 0x89 and CR/LF catch text-mode mangling)
    8       2     version     u16, 2
    10      2     flags       u16, bit 0 = AUTHENTICATED (every frame carries a MAC); other bits 0
    12      1     K           u8, key id length: 0 without bit 0, else 1..255
    13      K     key_id      ASCII, the id of the key the frames are authenticated with
    13+K    4     header_crc  u32, CRC32C of bytes 0..12+K

File header, version 1 (16 bytes; still read, never written)::

    0       8     magic
    8       2     version     u16, 1
    10      2     flags       u16, 0
    12      4     header_crc  u32, CRC32C of bytes 0..11

Record frame (a frame header, then the payload). Without AUTHENTICATED (and in every version-1
file) the frame header is 20 bytes; with it, 36::

    offset  size  field
    0       4     header_crc   u32, CRC32C of frame header bytes 4..end of the frame header
    4       4     length       u32, payload length in bytes, at most RECORD_BYTES_MAX
    8       8     time_ms      i64, the record's time (used only to decide which segments clean() may drop)
    16      4     payload_crc  u32, CRC32C of the payload
    20      16    mac          AUTHENTICATED only: HMAC-SHA256 truncated to 16 bytes, over a fixed label,
                               frame bytes 4..19 and the payload (`wal.auth`)
    20|36   n     payload

Why two CRCs: the header CRC lets a reader trust `length` before reading the payload, so a flipped
length bit is caught as corruption instead of being taken for a record that runs past the end of
the file (Spark's format silently drops everything after such a length).

Authentication rule (a reader holding a key; `wal.auth`): a file must be AUTHENTICATED with that
key's id, and each frame's MAC must verify, before its payload is returned. A version-1 file, a
version-2 file without AUTHENTICATED, a file under another key id, or a frame whose CRCs pass but
whose MAC does not, is `UNAUTHENTICATED` damage: readers raise `RecordAuthenticationError` naming the
file and offset, never skip it silently and never return its bytes. There is no "allow unsigned
legacy data" switch: a version-1 log is refused by a keyed reader; it is read by a reader without a
key. A reader without a key reads AUTHENTICATED files too (CRCs checked, MACs not), like an unsigned
reader of a signed checkpoint. The MAC authenticates each record's content and time, not its place:
someone who can write the storage can still delete, reorder or replay whole authenticated records
(losing or duplicating data), never make a reader return bytes the key holder did not write.

Validity and torn-tail rules (what `scan` reports; the caller decides what is acceptable):

* A frame is *valid* when its header CRC matches, `length <= RECORD_BYTES_MAX`, the whole payload is
  present and the payload CRC matches (and, for a keyed reader of an AUTHENTICATED file, its MAC).
* `TORN` damage: fewer bytes remain than a frame header; or a frame with a valid header runs past the
  end of the file; or every byte from the frame's offset to the end is zero (a file grown by the OS
  whose data never landed); or the *final* frame has a valid header, ends exactly at the end of the
  file, and its payload CRC fails (a power cut after the file size and the header page reached the
  disk but the payload pages did not: they read back as zeros or stale bytes). A file shorter than
  its header that is a prefix of a valid header, or all zeros, is TORN at offset 0 with
  `header_cut` set. These are exactly the shapes a crash in the middle of an append leaves, so they
  are acceptable only at the end of the *last* local segment: those bytes were never acknowledged
  (the fsync precedes the ack), readers stop before them, and a writer reopening the log truncates
  them. A local segment file whose header is cut (`header_cut`) holds no record wherever it is (a
  segment's header is written, and fsynced with its directory, before its first record is appended),
  so readers treat it as an empty segment in any position: a failed segment creation (ENOSPC) can
  never make a later open fail. In any other segment, and in any object-store object, TORN damage is
  reported as corruption.
* `CORRUPT` damage: anything else (bad magic, unknown version or flags, a bad key id length, a bad
  header CRC with non-zero bytes after it, a bad payload CRC in a frame that more bytes follow, a
  length over the limit). Corruption is never a torn tail: readers raise `CorruptRecordError`, and
  only repair mode truncates it.

Consequence for single-bit flips: a flip anywhere is caught (never a wrong record). A flip in the
payload of the final frame of a file is TORN (that record is dropped, never returned wrong);
every other flip is CORRUPT.

Version history: 1 (16-byte header, 20-byte frames); 2 (this: the key id in the file header and the
optional per-frame MAC; unauthenticated version-2 frames are byte-identical to version 1's). The
torn-tail rule for a final frame whose payload CRC fails at EOF was added during version 1 (it only
changes how damage is classified).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import crc32c

from wal.auth import MAC_BYTES, RecordAuthenticator

MAGIC = b"\x89DSWAL\r\n"
VERSION = 2
READABLE_VERSIONS = (1, 2)
FLAG_AUTHENTICATED = 0x1
V1_FILE_HEADER_BYTES = 16
FILE_HEADER_BYTES = 17  # version 2 without a key id; with one, 17 + K
FILE_HEADER_BYTES_MAX = 17 + 255
FRAME_HEADER_BYTES = 20
AUTH_FRAME_HEADER_BYTES = FRAME_HEADER_BYTES + MAC_BYTES  # 36
RECORD_BYTES_MAX = 1 << 30  # 1 GiB: larger lengths are treated as corruption, never allocated
ZERO_CHECK_CHUNK_BYTES = 1 << 20  # how much of a tail is read at once to see if it is all zeros

_FIXED = struct.Struct(">8sHH")  # magic, version, flags: the first 12 bytes of every version
_FRAME_HEADER = struct.Struct(">IIqI")
_FRAME_FIELDS = struct.Struct(">Iq")


class DamageKind(enum.Enum):
    """How a file stops being valid: a crash shape (TORN), not ours (UNAUTHENTICATED), or else CORRUPT."""

    TORN = "torn"
    CORRUPT = "corrupt"
    UNAUTHENTICATED = "unauthenticated"


@dataclass(frozen=True, slots=True)
class Damage:
    """Where and why a file stops being a valid sequence of frames.

    `header_cut`: the file is shorter than its header (a segment whose creation never finished).
    """

    kind: DamageKind
    offset: int
    reason: str
    header_cut: bool = False


@dataclass(frozen=True, slots=True)
class FileHeader:
    """A valid file header: its version, the key id its frames are authenticated with, its size."""

    version: int
    key_id: str | None
    size: int

    @property
    def frame_header_bytes(self) -> int:
        """Size of every frame header in this file (20, or 36 with a MAC)."""
        return FRAME_HEADER_BYTES if self.key_id is None else AUTH_FRAME_HEADER_BYTES


PLAIN_V1 = FileHeader(1, None, V1_FILE_HEADER_BYTES)


@dataclass(frozen=True, slots=True)
class Frame:
    """One valid record frame found by `scan`: where it starts, its time and payload."""

    offset: int
    time_ms: int
    payload: memoryview
    header_bytes: int = FRAME_HEADER_BYTES

    @property
    def end(self) -> int:
        """Offset just past this frame."""
        return self.offset + self.header_bytes + len(self.payload)


def encode_file_header(key_id: str | None = None) -> bytes:
    """The version-2 header every new segment file or object starts with (AUTHENTICATED with a key id)."""
    kid = b"" if key_id is None else key_id.encode("ascii")
    flags = 0 if key_id is None else FLAG_AUTHENTICATED
    body = _FIXED.pack(MAGIC, VERSION, flags) + bytes([len(kid)]) + kid
    return body + crc32c.crc32c(body).to_bytes(4, "big")


def encode_v1_file_header() -> bytes:
    """The version-1 header (tests and golden files only: writers write version 2)."""
    body = _FIXED.pack(MAGIC, 1, 0)
    return body + crc32c.crc32c(body).to_bytes(4, "big")


def encode_frame_header(
    payload: bytes | memoryview, time_ms: int, auth: RecordAuthenticator | None = None
) -> bytes:
    """The frame header for `payload` (written before it, so payloads need not be copied).

    20 bytes, or 36 with `auth` (the MAC is computed here).

    Raises:
        ValueError: if the payload is larger than RECORD_BYTES_MAX or time_ms does not fit an i64.
    """
    if len(payload) > RECORD_BYTES_MAX:
        raise ValueError(f"record of {len(payload)} bytes exceeds RECORD_BYTES_MAX={RECORD_BYTES_MAX}")
    fields = _FRAME_FIELDS.pack(len(payload), time_ms) + crc32c.crc32c(payload).to_bytes(4, "big")
    if auth is not None:
        fields += auth.mac(fields, payload)
    return crc32c.crc32c(fields).to_bytes(4, "big") + fields


def encode_frame(payload: bytes | memoryview, time_ms: int, auth: RecordAuthenticator | None = None) -> bytes:
    """Frame one record (header + payload) as one bytes object."""
    return encode_frame_header(payload, time_ms, auth) + bytes(payload)


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


_FIXED_PREFIXES = tuple(_FIXED.pack(MAGIC, v, f) for v, f in ((1, 0), (2, 0), (2, FLAG_AUTHENTICATED)))


def _cut(head: bytes) -> Damage:
    return Damage(DamageKind.TORN, 0, f"file header cut short at {len(head)} bytes", header_cut=True)


def read_file_header(data: bytes | memoryview | ByteSource) -> FileHeader | Damage:
    """Parse and validate the file header at the start of a file (either version)."""
    source = as_source(data)
    head = bytes(source.read_at(0, V1_FILE_HEADER_BYTES))
    if len(head) == V1_FILE_HEADER_BYTES and head[8:10] != b"\x00\x01":  # version 2: the key id follows
        head += bytes(
            source.read_at(V1_FILE_HEADER_BYTES, FILE_HEADER_BYTES - V1_FILE_HEADER_BYTES + head[12])
        )
    if not any(head) and is_zero_from(source, 0):
        if len(head) < V1_FILE_HEADER_BYTES:
            return _cut(head)
        return Damage(DamageKind.TORN, 0, "file is all zero bytes")
    if len(head) < _FIXED.size:
        if any(prefix.startswith(head) for prefix in _FIXED_PREFIXES):
            return _cut(head)
        return Damage(DamageKind.CORRUPT, 0, "short file that is not a header prefix")
    magic, version, flags = _FIXED.unpack_from(head)
    if magic != MAGIC:
        return Damage(DamageKind.CORRUPT, 0, f"bad magic {magic!r}, expected {MAGIC!r}")
    if version not in READABLE_VERSIONS or flags & ~(FLAG_AUTHENTICATED if version == 2 else 0):
        return Damage(DamageKind.CORRUPT, 0, f"unsupported version {version} / flags {flags:#x}")
    if version == 1:
        size, key_id = V1_FILE_HEADER_BYTES, None
    elif len(head) == _FIXED.size:
        return _cut(head)
    else:
        kid_len = head[_FIXED.size]
        if (kid_len == 0) != (flags == 0):
            return Damage(DamageKind.CORRUPT, 0, f"key id length {kid_len} does not match flags {flags:#x}")
        size = FILE_HEADER_BYTES + kid_len
        key_id = head[13 : 13 + kid_len].decode("ascii", errors="replace") if kid_len else None
    if len(head) < size:
        return _cut(head)
    if int.from_bytes(head[size - 4 : size], "big") != crc32c.crc32c(head[: size - 4]):
        return Damage(DamageKind.CORRUPT, 0, "file header CRC mismatch")
    return FileHeader(version, key_id, size)


def check_file_header(data: bytes | memoryview | ByteSource) -> Damage | None:
    """Validate the file header at the start of a file; None when it is valid."""
    header = read_file_header(data)
    return header if isinstance(header, Damage) else None


def frame_length(header: bytes | memoryview, header_bytes: int = FRAME_HEADER_BYTES) -> int | None:
    """The payload length a frame header declares, or None if its header CRC fails."""
    if len(header) < header_bytes:
        return None
    header_crc, length, _, _ = _FRAME_HEADER.unpack_from(header)
    return length if header_crc == crc32c.crc32c(header[4:header_bytes]) else None


def decode_frame(
    data: bytes | memoryview | ByteSource,
    offset: int,
    header_bytes: int = FRAME_HEADER_BYTES,
    auth: RecordAuthenticator | None = None,
) -> Frame | Damage:
    """Decode the frame at `offset` of a file, classifying any damage (see module doc).

    Args:
        header_bytes: the file's frame header size (`FileHeader.frame_header_bytes`).
        auth: verify the frame's MAC with this key (the file must be AUTHENTICATED).
    """
    source = as_source(data)
    remaining = source.size - offset
    if remaining < header_bytes:
        if is_zero_from(source, offset):
            return Damage(DamageKind.TORN, offset, f"{remaining} zero bytes after the last frame")
        return Damage(DamageKind.TORN, offset, f"frame header cut short at {remaining} bytes")
    header = source.read_at(offset, header_bytes)
    if len(header) < header_bytes:  # the file shrank under us: as good as cut
        return Damage(DamageKind.TORN, offset, "file shorter than when opened")
    header_crc, length, time_ms, payload_crc = _FRAME_HEADER.unpack_from(header)
    if header_crc != crc32c.crc32c(header[4:]):
        if is_zero_from(source, offset):
            return Damage(DamageKind.TORN, offset, "zero-filled tail")
        return Damage(DamageKind.CORRUPT, offset, "frame header CRC mismatch")
    if length > RECORD_BYTES_MAX:
        return Damage(DamageKind.CORRUPT, offset, f"length {length} over RECORD_BYTES_MAX")
    start = offset + header_bytes
    payload = memoryview(source.read_at(start, length))
    if len(payload) < length:
        return Damage(DamageKind.TORN, offset, f"payload cut short: {len(payload)} of {length} bytes")
    if payload_crc != crc32c.crc32c(payload):
        if start + length == source.size:
            # The final frame, ending exactly at EOF: the shape of an un-fsynced append whose size
            # reached the disk but whose data pages did not (power cut). Never acknowledged.
            return Damage(DamageKind.TORN, offset, "payload CRC mismatch at the end of the file")
        return Damage(DamageKind.CORRUPT, offset, "payload CRC mismatch")
    if auth is not None and not auth.verify(header[4:20], payload, header[20:header_bytes]):
        reason = f"record MAC does not verify under key id {auth.key_id!r} (tampered, or another secret)"
        return Damage(DamageKind.UNAUTHENTICATED, offset, reason)
    return Frame(offset, time_ms, payload, header_bytes)


def authentication_damage(header: FileHeader, auth: RecordAuthenticator) -> Damage | None:
    """Why a keyed reader must refuse a whole file, or None when its frames are to be verified."""
    if header.key_id is None:
        unkeyed = (
            "version 1, from before records were authenticated"
            if header.version == 1
            else "written without a key"
        )
        reason = f"file is not authenticated ({unkeyed}); the log's key {auth.key_id!r} requires it"
        return Damage(DamageKind.UNAUTHENTICATED, 0, reason)
    if header.key_id != auth.key_id:
        reason = f"file is authenticated with key id {header.key_id!r}, the log's key is {auth.key_id!r}"
        return Damage(DamageKind.UNAUTHENTICATED, 0, reason)
    return None


def iter_frames(
    data: bytes | memoryview | ByteSource, auth: RecordAuthenticator | None = None
) -> Iterator[Frame | Damage]:
    """Yield the valid frames of a file in order, then its Damage if it has one (and stop).

    Lazy: one frame's payload is read at a time. With `auth`, the file must be authenticated with
    its key and every MAC is verified before the frame is yielded.
    """
    source = as_source(data)
    header = read_file_header(source)
    if isinstance(header, Damage):
        yield header
        return
    refused = None if auth is None else authentication_damage(header, auth)
    if refused is not None:
        yield refused
        return
    offset = header.size
    header_bytes = header.frame_header_bytes
    while offset < source.size:
        item = decode_frame(source, offset, header_bytes, auth)
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


def scan(data: bytes | memoryview, auth: RecordAuthenticator | None = None) -> FileScan:
    """Scan a file held in memory eagerly (payloads are views into `data`, not copies)."""
    frames: list[Frame] = []
    damage: Damage | None = None
    for item in iter_frames(data, auth):
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


def summarize(data: bytes | memoryview | ByteSource, auth: RecordAuthenticator | None = None) -> FileSummary:
    """Validate a whole file one frame at a time; count records, bytes and the time range."""
    source = as_source(data)
    records = payload_bytes = 0
    min_ms: int | None = None
    max_ms: int | None = None
    damage: Damage | None = None
    for item in iter_frames(source, auth):
        if isinstance(item, Damage):
            damage = item
            break
        records += 1
        payload_bytes += len(item.payload)
        min_ms = item.time_ms if min_ms is None else min(min_ms, item.time_ms)
        max_ms = item.time_ms if max_ms is None else max(max_ms, item.time_ms)
    return FileSummary(source.size, records, payload_bytes, min_ms, max_ms, damage)
