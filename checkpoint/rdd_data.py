"""RDD data checkpoints: one directory per checkpointed RDD, one framed file per partition, a marker.

Layout of a directory (`<ckpt>/rdd/<stream-id>/<batch_ms>/` by convention, see `checkpoint.layout`)::

    part-00000 ... part-<n-1>    one per partition, each published atomically (create-once)
    _COMMITTED                   JSON, published last; the directory is complete only with it

Part file format, version 2 (all integers little-endian; writers write this version)::

    offset  size  field
    0       4     magic b"DSRD"
    4       2     format version (2)
    6       2     flags: bit 0 = signed; every other bit must be 0
    8       8     payload length n
    16      4     CRC32C of the payload
    20      n     payload (opaque to this package; the engine stores pickle protocol 5)
    if signed:
    20+n    1     K, length of the key id (1..255)
    21+n    K     key id, ASCII
    21+n+K  32    HMAC-SHA256 under the key, over every preceding byte

Version 1 (still read, never written) is the same without a signature: its bytes 6..7 are a reserved
field that must be 0, which reads as "unsigned" in version 2's terms.

A part is valid iff the magic, version and flags are known, the file is exactly 20 + n bytes (plus the
signature section when signed) and the CRC32C of the payload matches. Anything else is
`CorruptCheckpointError`. Then the signature rule, the metadata envelope's (`checkpoint.envelope`):
with a key (`DSTREAM_CHECKPOINT_KEY`, the default ``key="env"``) a part must be signed with that key
id and its HMAC must verify, else `CheckpointSignatureError` naming the file is raised and the payload
is never returned, so it is never unpickled; a version-1 part is therefore refused with a key. Without
a key both versions are read (the HMAC unchecked). The signature authenticates the bytes, not the
part's place: a signed part copied over another one is accepted (it is data the key holder wrote).

`_COMMITTED` is the JSON object `{"format": "dstream-rdd-checkpoint", "version": 1, "num_partitions": n}`.
It is published only after every part 0..n-1 has been seen with a valid header, so lineage may be cut
(and a metadata checkpoint may reference the directory) only once `is_committed` is true. Deletion
removes the marker first, so a crash during deletion leaves an uncommitted directory, never a
committed one with missing parts.

Every function is a plain module-level function that resolves its storage per call (through the
registry in `wal.storage`), so it pickles into tasks that run on workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import struct
from collections.abc import Mapping
from typing import Any

import crc32c

from checkpoint.envelope import KeyChoice, SigningKey, resolve_key
from checkpoint.errors import (
    AlreadyPublishedError,
    CheckpointNotCommittedError,
    CheckpointSignatureError,
    CheckpointValueError,
    CorruptCheckpointError,
)
from checkpoint.location import join, resolve
from checkpoint.publish import publisher_for
from wal import crashpoints

MAGIC = b"DSRD"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
FLAG_SIGNED = 0x1
MARKER_VERSION = 1  # the _COMMITTED marker's own version: unchanged by part version 2
COMMIT_MARKER = "_COMMITTED"
COMMIT_FORMAT = "dstream-rdd-checkpoint"
_HEADER = struct.Struct("<4sHHQI")
HEADER_SIZE = _HEADER.size  # 20
_MAC_SIZE = 32


def part_name(index: int) -> str:
    """File name of partition `index` (`part-00007`)."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise CheckpointValueError(f"partition index must be an int >= 0, got {index!r}")
    return f"part-{index:05d}"


def encode_part(payload: bytes, key: SigningKey | None = None) -> bytes:
    """Frame a payload as a version-2 part file, signed when `key` is given."""
    flags = 0 if key is None else FLAG_SIGNED
    out = _HEADER.pack(MAGIC, FORMAT_VERSION, flags, len(payload), crc32c.crc32c(payload)) + payload
    if key is None:
        return out
    kid = key.key_id.encode("ascii")
    out += bytes([len(kid)]) + kid
    return out + hmac.new(key.secret, out, hashlib.sha256).digest()


def _check_header(header: bytes, total_size: int, where: str) -> tuple[int, int, bool]:
    """Validate a part's fixed header against the file size; returns (payload length, CRC, signed)."""
    if len(header) < HEADER_SIZE:
        raise CorruptCheckpointError(
            f"{where}: {len(header)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, version, flags, length, crc = _HEADER.unpack_from(header)
    if magic != MAGIC:
        raise CorruptCheckpointError(f"{where}: bad magic {magic!r}, expected {MAGIC!r}")
    if version not in READABLE_VERSIONS:
        raise CorruptCheckpointError(
            f"{where}: format version {version}, expected one of {READABLE_VERSIONS}"
        )
    if flags & ~(FLAG_SIGNED if version == 2 else 0):
        raise CorruptCheckpointError(f"{where}: unknown flags/reserved {flags:#x} for version {version}")
    signed = bool(flags & FLAG_SIGNED)
    section = total_size - HEADER_SIZE - length
    if (not signed and section != 0) or (signed and not 1 + 1 + _MAC_SIZE <= section <= 1 + 255 + _MAC_SIZE):
        expected = "" if not signed else " plus a signature"
        raise CorruptCheckpointError(
            f"{where}: {total_size} bytes but header says {HEADER_SIZE + length}{expected} (payload {length})"
        )
    return length, crc, signed


def _check_signature(data: bytes, end: int, signed: bool, key: SigningKey | None, where: str) -> None:
    if not signed:
        if key is not None:
            raise CheckpointSignatureError(
                f"{where}: unsigned data checkpoint part, but key {key.key_id!r} requires a signature"
            )
        return
    kid_len = data[end]
    if kid_len == 0 or len(data) != end + 1 + kid_len + _MAC_SIZE:
        raise CorruptCheckpointError(f"{where}: malformed signature section")
    if key is None:
        return
    key_id = data[end + 1 : end + 1 + kid_len].decode("ascii", errors="replace")
    if key_id != key.key_id:
        raise CheckpointSignatureError(f"{where}: signed with key id {key_id!r}, have {key.key_id!r}")
    expected = hmac.new(key.secret, data[: end + 1 + kid_len], hashlib.sha256).digest()
    if not hmac.compare_digest(expected, data[end + 1 + kid_len :]):
        raise CheckpointSignatureError(f"{where}: HMAC-SHA256 signature does not verify (tampered?)")


def decode_part(data: bytes, where: str = "part", key: SigningKey | None = None) -> bytes:
    """Validate a part file's bytes (and, with `key`, its signature) and return the payload.

    Never unpickles anything: the payload is returned only after every check passed.

    Raises:
        CorruptCheckpointError: bad magic, version, flags, length or CRC32C.
        CheckpointSignatureError: with `key`, an unsigned part (every version-1 part), another key
            id, or an HMAC that does not verify.
    """
    length, crc, signed = _check_header(data[:HEADER_SIZE], len(data), where)
    end = HEADER_SIZE + length
    payload = data[HEADER_SIZE:end]
    if crc32c.crc32c(payload) != crc:
        raise CorruptCheckpointError(f"{where}: CRC32C mismatch")
    _check_signature(data, end, signed, key, where)
    return payload


def write_part(
    dir_url: str,
    index: int,
    payload: bytes,
    *,
    storage_options: Mapping[str, Any] | None = None,
    key: KeyChoice = "env",
) -> None:
    """Durably and atomically publish partition `index` of the RDD checkpoint in `dir_url`.

    Idempotent: if the part already exists with a valid frame (a re-run task), it is left as is; if the
    existing file is corrupt (or, with a key, not signed with it), it is replaced. Signed with `key`
    (default: `DSTREAM_CHECKPOINT_KEY`, resolved where the task runs).

    Raises:
        CheckpointValueError: bad index or payload type.
        PublishError: the storage write failed.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise CheckpointValueError(f"payload must be bytes, got {type(payload).__name__}")
    storage, path = resolve(join(dir_url, part_name(index)), storage_options)
    publisher = publisher_for(storage)
    resolved = resolve_key(key)
    data = encode_part(bytes(payload), resolved)
    try:
        publisher.publish(path, data)
    except AlreadyPublishedError as exc:
        if exc.identical:
            return
        try:
            decode_part(publisher.read(path), path, resolved)
        except CorruptCheckpointError:  # CheckpointSignatureError too: never keep what we cannot read
            publisher.publish(path, data, overwrite=True)
    crashpoints.crash_point(crashpoints.RDD_AFTER_PART_WRITE)


def _verify_parts(dir_url: str, num_partitions: int, storage_options: Mapping[str, Any] | None) -> None:
    storage, dir_path = resolve(dir_url, storage_options)
    sizes = storage.list_sizes(dir_path)
    missing = [i for i in range(num_partitions) if part_name(i) not in sizes]
    if missing:
        raise CheckpointNotCommittedError(
            f"cannot commit {dir_url!r}: {len(missing)} of {num_partitions} parts missing,"
            f" first {missing[:5]}"
        )
    for i in range(num_partitions):
        name = part_name(i)
        header = storage.read_range(join(dir_path, name), 0, HEADER_SIZE)
        _check_header(header, sizes[name], f"{dir_url}/{name}")


def _marker_bytes(num_partitions: int) -> bytes:
    body = {"format": COMMIT_FORMAT, "version": MARKER_VERSION, "num_partitions": num_partitions}
    return json.dumps(body, sort_keys=True).encode()


def commit(dir_url: str, num_partitions: int, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Verify parts 0..num_partitions-1 exist with valid headers, then publish `_COMMITTED`.

    Idempotent for the same `num_partitions`.

    Raises:
        CheckpointValueError: num_partitions is not an int >= 0.
        CheckpointNotCommittedError: a part is missing (nothing is committed).
        CorruptCheckpointError: a part's header or size is invalid (nothing is committed).
        AlreadyPublishedError: the directory was committed with a different partition count.
    """
    if not isinstance(num_partitions, int) or isinstance(num_partitions, bool) or num_partitions < 0:
        raise CheckpointValueError(f"num_partitions must be an int >= 0, got {num_partitions!r}")
    _verify_parts(dir_url, num_partitions, storage_options)
    crashpoints.crash_point(crashpoints.RDD_AFTER_PARTS_BEFORE_COMMIT)
    storage, path = resolve(join(dir_url, COMMIT_MARKER), storage_options)
    try:
        publisher_for(storage).publish(path, _marker_bytes(num_partitions))
    except AlreadyPublishedError as exc:
        existing = committed_partitions(dir_url, storage_options=storage_options)
        if existing != num_partitions:
            raise AlreadyPublishedError(
                f"{dir_url!r} is already committed with {existing} partitions, not {num_partitions}"
            ) from exc


def is_committed(dir_url: str, *, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether `dir_url` holds a commit marker."""
    storage, path = resolve(join(dir_url, COMMIT_MARKER), storage_options)
    return storage.exists(path)


def committed_partitions(dir_url: str, *, storage_options: Mapping[str, Any] | None = None) -> int:
    """The partition count recorded in the commit marker.

    Raises:
        CheckpointNotCommittedError: no marker.
        CorruptCheckpointError: the marker is not the expected JSON.
    """
    storage, path = resolve(join(dir_url, COMMIT_MARKER), storage_options)
    try:
        raw = storage.read(path)
    except FileNotFoundError as exc:
        raise CheckpointNotCommittedError(f"{dir_url!r} has no {COMMIT_MARKER} marker") from exc
    try:
        body = json.loads(raw)
        count = body["num_partitions"]
        valid = body.get("format") == COMMIT_FORMAT and isinstance(count, int) and count >= 0
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptCheckpointError(f"{path!r}: unreadable commit marker: {exc}") from exc
    if not valid:
        raise CorruptCheckpointError(f"{path!r}: unexpected commit marker {body!r}")
    if body.get("version") != MARKER_VERSION:
        raise CorruptCheckpointError(f"{path!r}: marker version {body.get('version')!r}, expected 1")
    return int(count)


def read_part(
    dir_url: str, index: int, *, storage_options: Mapping[str, Any] | None = None, key: KeyChoice = "env"
) -> bytes:
    """Read and verify partition `index` (its signature too, with a key); returns the payload.

    Raises:
        CorruptCheckpointError: the part is missing, or fails its frame/CRC32C check.
        CheckpointSignatureError: a key is set (default: `DSTREAM_CHECKPOINT_KEY`) and the part is
            unsigned, signed with another key id, or its HMAC does not verify.
    """
    storage, path = resolve(join(dir_url, part_name(index)), storage_options)
    try:
        data = storage.read(path)
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(f"{dir_url!r}: {part_name(index)} is missing") from exc
    return decode_part(data, path, resolve_key(key))


def delete(dir_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove an RDD checkpoint directory, marker first; a missing directory is not an error."""
    storage, path = resolve(dir_url, storage_options)
    with contextlib.suppress(FileNotFoundError):
        storage.delete(join(path, COMMIT_MARKER))
    with contextlib.suppress(FileNotFoundError):
        storage.delete(path, recursive=True)
