"""`open_wal`: one entry point that resolves the URL to a storage (`wal.storage`'s registry), lays the
log out by the storage's capabilities, and wraps it for group commit on request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wal.auth import RecordAuthenticator, RecordKey
from wal.backends import make_backend
from wal.batched import BatchedWriteAheadLog
from wal.errors import WALValueError
from wal.log import FileBasedWriteAheadLog, WriteAheadLog

FSYNC_POLICIES = ("always", "never")


def open_wal(
    url: str,
    *,
    rolling_interval_ms: int = 60_000,
    fsync: str = "always",
    storage_options: Mapping[str, Any] | None = None,
    batched: bool = False,
    repair: bool = False,
    queue_size_max: int = 10_000,
    timeout_s: float = 30.0,
    key: RecordKey | RecordAuthenticator | None = None,
) -> WriteAheadLog:
    """Open (never create) the write-ahead log at `url`.

    Nothing is created on storage until the first write; reading never creates anything.

    Args:
        url: a local path or a URL of a registered protocol (``file://``, ``memory://``,
            ``s3://bucket/prefix``, or one added with `wal.storage.register_storage`).
        rolling_interval_ms: a new segment starts when a record is later than the open segment's
            start + this interval.
        fsync: "always" (each commit is fdatasync'ed before write returns, and directories are
            fsynced after segments are created or deleted) or "never" (in the OS only: survives a
            process crash, not a power loss). Object stores are durable at each put either way.
        storage_options: options for the storage (e.g. key, secret, endpoint_url for S3).
        batched: wrap in BatchedWriteAheadLog (group commit for many concurrent writers).
        repair: scan everything now and cut each segment at its first damage, reporting the drops in
            ``statistics().dropped``, instead of raising CorruptRecordError later.
        queue_size_max: batched only: records waiting for a commit at most.
        timeout_s: batched only: how long one write may wait to be durable.
        key: authenticate records with this key (anything with `key_id` and `secret`, e.g.
            `checkpoint.SigningKey`): every record written carries a MAC, and every record read
            must carry a valid one, else `RecordAuthenticationError` (naming the file and offset) is
            raised before its bytes are returned. Files written without a key, including every
            version-1 file, are refused; there is no switch to read them with a key.

    Raises:
        WALValueError: a bad option (the message names it), or a key without an ASCII id or secret.
        UnsupportedStorageError: no storage is registered for the URL's protocol.
    """
    if not isinstance(url, str) or not url:
        raise WALValueError(f"url must be a non-empty string, got {url!r}")
    if fsync not in FSYNC_POLICIES:
        raise WALValueError(f"fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
    backend = make_backend(url, storage_options, fsync == "always")
    log = FileBasedWriteAheadLog(backend, rolling_interval_ms=rolling_interval_ms, repair=repair, key=key)
    if not batched:
        return log
    return BatchedWriteAheadLog(log, queue_size_max=queue_size_max, timeout_s=timeout_s)
