"""RDD data checkpoints: one directory per checkpointed RDD, one framed file per partition, a marker.

Layout of a directory (`<ckpt>/rdd/<stream-id>/<batch_ms>/` by convention, see `checkpoint.layout`)::

    part-00000 ... part-<n-1>    one per partition, each published atomically (create-once)
    _COMMITTED                   JSON, published last; the directory is complete only with it

Part file format, version 1 (all integers little-endian)::

    offset  size  field
    0       4     magic b"DSRD"
    4       2     format version (1)
    6       2     reserved, must be 0
    8       8     payload length n
    16      4     CRC32C of the payload
    20      n     payload (opaque to this package; the engine stores pickle protocol 5)

A part is valid iff the magic, version and reserved field match, the file is exactly 20 + n bytes and the
CRC32C of the payload matches. Anything else is `CorruptCheckpointError`.

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
import json
import struct
from collections.abc import Mapping
from typing import Any

import crc32c

from checkpoint.errors import (
    AlreadyPublishedError,
    CheckpointNotCommittedError,
    CheckpointValueError,
    CorruptCheckpointError,
)
from checkpoint.location import join, resolve
from checkpoint.publish import publisher_for
from wal import crashpoints

MAGIC = b"DSRD"
FORMAT_VERSION = 1
COMMIT_MARKER = "_COMMITTED"
COMMIT_FORMAT = "dstream-rdd-checkpoint"
_HEADER = struct.Struct("<4sHHQI")
HEADER_SIZE = _HEADER.size  # 20


def part_name(index: int) -> str:
    """File name of partition `index` (`part-00007`)."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise CheckpointValueError(f"partition index must be an int >= 0, got {index!r}")
    return f"part-{index:05d}"


def encode_part(payload: bytes) -> bytes:
    """Frame a payload as a version-1 part file."""
    return _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(payload), crc32c.crc32c(payload)) + payload


def _check_header(header: bytes, total_size: int, where: str) -> tuple[int, int]:
    if len(header) < HEADER_SIZE:
        raise CorruptCheckpointError(
            f"{where}: {len(header)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, version, reserved, length, crc = _HEADER.unpack_from(header)
    if magic != MAGIC or reserved != 0:
        raise CorruptCheckpointError(
            f"{where}: bad magic/reserved {magic!r}/{reserved}, expected {MAGIC!r}/0"
        )
    if version != FORMAT_VERSION:
        raise CorruptCheckpointError(f"{where}: format version {version}, expected {FORMAT_VERSION}")
    if total_size != HEADER_SIZE + length:
        raise CorruptCheckpointError(
            f"{where}: {total_size} bytes but header says {HEADER_SIZE + length} (payload {length})"
        )
    return length, crc


def decode_part(data: bytes, where: str = "part") -> bytes:
    """Validate a part file's bytes and return the payload.

    Raises:
        CorruptCheckpointError: bad magic, version, length or CRC32C.
    """
    _, crc = _check_header(data[:HEADER_SIZE], len(data), where)
    payload = data[HEADER_SIZE:]
    if crc32c.crc32c(payload) != crc:
        raise CorruptCheckpointError(f"{where}: CRC32C mismatch")
    return payload


def write_part(
    dir_url: str, index: int, payload: bytes, *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Durably and atomically publish partition `index` of the RDD checkpoint in `dir_url`.

    Idempotent: if the part already exists with a valid frame (a re-run task), it is left as is; if the
    existing file is corrupt, it is replaced.

    Raises:
        CheckpointValueError: bad index or payload type.
        PublishError: the storage write failed.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise CheckpointValueError(f"payload must be bytes, got {type(payload).__name__}")
    storage, path = resolve(join(dir_url, part_name(index)), storage_options)
    publisher = publisher_for(storage)
    data = encode_part(bytes(payload))
    try:
        publisher.publish(path, data)
    except AlreadyPublishedError as exc:
        if exc.identical:
            return
        try:
            decode_part(publisher.read(path), path)
        except CorruptCheckpointError:
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
    body = {"format": COMMIT_FORMAT, "version": FORMAT_VERSION, "num_partitions": num_partitions}
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
    if body.get("version") != FORMAT_VERSION:
        raise CorruptCheckpointError(f"{path!r}: marker version {body.get('version')!r}, expected 1")
    return int(count)


def read_part(dir_url: str, index: int, *, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Read and verify partition `index`; returns the payload.

    Raises:
        CorruptCheckpointError: the part is missing, or fails its frame/CRC32C check.
    """
    storage, path = resolve(join(dir_url, part_name(index)), storage_options)
    try:
        data = storage.read(path)
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(f"{dir_url!r}: {part_name(index)} is missing") from exc
    return decode_part(data, path)


def delete(dir_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove an RDD checkpoint directory, marker first; a missing directory is not an error."""
    storage, path = resolve(dir_url, storage_options)
    with contextlib.suppress(FileNotFoundError):
        storage.delete(join(path, COMMIT_MARKER))
    with contextlib.suppress(FileNotFoundError):
        storage.delete(path, recursive=True)
