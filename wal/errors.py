"""The WAL's errors: one root (`WALError`); misuse errors also subclass ValueError.

Why a hierarchy: callers (the receiver data WAL, the driver's tracker) must tell a record that is
damaged on storage (`CorruptRecordError`, which names where) from a log that was closed under them
(`WALClosedError`) and from their own bad arguments (`WALValueError`).
"""

from __future__ import annotations


class WALError(Exception):
    """Root of every error the write-ahead log raises on its own account."""


class WALValueError(WALError, ValueError):
    """An argument is not one the WAL accepts; the message names the value and what was expected."""


class WALClosedError(WALError, RuntimeError):
    """The log was closed before (or while) the operation could complete."""


class WALTimeoutError(WALError, TimeoutError):
    """A batched write was not durable within its timeout; it may or may not be in the log."""


class RecordNotFoundError(WALError, LookupError):
    """A handle points at a segment or object that no longer exists (cleaned, or never written)."""


class CorruptRecordError(WALError):
    """Bytes on storage fail the format's checks at a place that cannot be a torn tail.

    Attributes:
        segment: path of the segment file or object, relative to the log's root.
        offset: byte offset of the damaged header or frame inside that file.
        reason: what check failed.
    """

    def __init__(self, segment: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt WAL data in {segment!r} at offset {offset}: {reason}")
        self.segment = segment
        self.offset = offset
        self.reason = reason

    def __reduce__(self) -> tuple[type[CorruptRecordError], tuple[str, int, str]]:
        return (type(self), (self.segment, self.offset, self.reason))


class UnsupportedStorageError(WALValueError):
    """No storage implementation is registered for a URL's protocol; the message lists the supported ones."""


class LockHeldError(WALError):
    """An exclusive storage lock is held by someone else; `holder` is what that holder recorded in it."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"lock {path!r} is held by {holder}")
        self.path = path
        self.holder = holder

    def __reduce__(self) -> tuple[type[LockHeldError], tuple[str, str]]:
        return (type(self), (self.path, self.holder))


class RecordAuthenticationError(CorruptRecordError):
    """A log opened with a key met a file or record not authenticated with that key.

    Raised before the payload leaves the WAL, so nothing unauthenticated is ever unpickled by a
    caller. Covers a record whose MAC does not verify, a file written without a key (format
    version 1, or version 2 unauthenticated) and a file authenticated under another key id.
    """

    def __init__(self, segment: str, offset: int, reason: str, log_url: str | None = None) -> None:
        super().__init__(segment, offset, reason)
        self.log_url = log_url
        where = segment if log_url is None else f"{log_url.rstrip('/')}/{segment}"
        self.args = (f"WAL data in {where!r} at offset {offset} refused before it was read: {reason}",)

    def __reduce__(self) -> tuple[type[CorruptRecordError], tuple[str, int, str, str | None]]:  # type: ignore[override]
        return (type(self), (self.segment, self.offset, self.reason, self.log_url))
